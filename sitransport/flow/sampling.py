"""Score and sampling of a :class:`~sitransport.flow.TransportFlow`: the score of the path's
marginals from the velocity (or the denoiser of a stochastic interpolant), base draws pushed
forward by the ODE or the score SDE (the bodies of its methods ``score`` and ``sample``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import (
    check_bool,
    check_choice,
    check_finite_output,
    check_positive,
    check_positive_int,
    check_times,
    torch_generator,
)
from sitransport.ends.densities import StandardNormal
from sitransport.flow import integration, likelihood
from sitransport.ode import ODEOptions
from sitransport.score import denoiser_from_velocity, score_from_velocity, sde_integrate

if TYPE_CHECKING:
    from sitransport.flow.transport import TransportFlow

#: Nothing public: these are the bodies of TransportFlow's methods, documented there.
__all__: list[str] = []


def _denoiser(flow: TransportFlow) -> Callable | None:
    """The noise denoiser of a stochastic-interpolant flow, if it has one."""
    if flow._interpolant.stochastic:
        return getattr(flow._velocity, "denoiser", None)
    return None


def _require_gaussian_base(flow: TransportFlow, what: str) -> None:
    if not flow._interpolant.spatially_linear:
        raise ValueError(
            f"{what} needs a spatially linear interpolant (alpha x0 + beta x1); this flow's "
            f"path {flow._interpolant!r} is not"
        )
    if _denoiser(flow) is not None:
        return  # stochastic interpolant: the score comes from the denoiser, any base
    if not isinstance(flow._base, StandardNormal) or flow._interpolant.stochastic:
        kind = "none" if flow._base is None else flow._base.kind
        raise ValueError(
            f"{what} needs a standard Gaussian base (fit with rho0='gaussian') and a "
            f"deterministic interpolant; this flow's base is {kind} with "
            f"{flow._interpolant!r}"
        )


def score(flow: TransportFlow, x: Any, t: Any, alpha_min: float, condition: Any = None) -> Any:
    """The body of :meth:`TransportFlow.score`."""
    _require_gaussian_base(flow, "score")
    alpha_min = check_positive(alpha_min, "alpha_min")
    xt, back, in_dtype = flow._prepare(x, "x")
    tt = check_times(t, "t", n=xt.shape[0]).to(xt)
    codes = flow._codes(condition, xt.shape[0], xt)
    flow._eval_mode()
    denoiser = _denoiser(flow)
    if denoiser is not None:  # score = -eta_z / gamma_u in normalised coordinates u
        g = flow._interpolant.gamma(tt)
        if bool((g < alpha_min).any()):
            raise ValueError(
                f"the score from the denoiser divides by gamma(t), which is "
                f"{float(g.min()):.3g} < {alpha_min:g}: it is singular at t = 0 and t = 1"
            )
        with torch.no_grad():
            z = flow._norm.encode(xt)
            eta = denoiser(z, tt) if codes is None else denoiser(z, tt, codes)
        g_x = flow._path.gamma(tt) * flow._norm.scale  # gamma(t) for files of version 2
        g_x = g_x.reshape(-1, *[1] * (xt.ndim - 1)) if g_x.ndim else g_x
        out = -eta / g_x
    else:
        with torch.no_grad():
            v = flow._v(flow._norm.encode(xt), tt, codes) * flow._norm.scale
        shift = flow._version1_shift(xt)
        out = score_from_velocity(v, xt, tt, flow._interpolant, shift, alpha_min=alpha_min)
    return back(check_finite_output(out.to(in_dtype), "score", "the scores"))


def _sample_sde(
    flow: TransportFlow,
    x0: Tensor,
    eps: float | Callable,
    steps: int,
    scheme: str,
    gen: torch.Generator,
    velocity: Callable[..., Tensor],
    codes: Tensor | None,
) -> Tensor:
    interp, norm = flow._interpolant, flow._norm

    def v_of(z: Tensor, t: Tensor) -> Tensor:
        return velocity(z, t) if codes is None else velocity(z, t, codes)

    p = flow._param()
    x = x0.to(dtype=p.dtype if p is not None else torch.float64)
    shift = flow._version1_shift(x)
    denoiser = _denoiser(flow)
    if denoiser is not None:
        # stochastic interpolant, in normalised coordinates u: eps_u(t) = eps0 gamma_u^2
        # (eps0 gamma^2 in the caller's), eps * score = -eps0 gamma_u eta_z stays bounded
        if callable(eps):
            raise TypeError("eps must be a float for stochastic-interpolant flows")
        eps0, path = float(eps), flow._path

        def drift_z(z: Tensor, t: Tensor) -> Tensor:
            with torch.no_grad():
                eta = denoiser(z, t) if codes is None else denoiser(z, t, codes)
                return v_of(z, t) - eps0 * path.gamma(t) * eta

        z = sde_integrate(
            drift_z,
            lambda t: eps0 * path.gamma(t) ** 2,
            norm.encode(x),
            0.0,
            1.0,
            steps,
            gen,
            scheme=scheme,
        )
        return norm.decode(z)
    if callable(eps):
        eps_fn = eps

        def eps_over_alpha(t: Tensor) -> Tensor:
            e = torch.as_tensor(eps_fn(t)).to(x)
            return e / interp.alpha(t) if float(e) > 0 else e
    else:
        eps0 = float(eps)

        def eps_fn(t: Tensor) -> Tensor:
            return eps0 * interp.alpha(t) ** 2

        def eps_over_alpha(t: Tensor) -> Tensor:
            return eps0 * interp.alpha(t)

    def drift(y: Tensor, t: Tensor) -> Tensor:
        with torch.no_grad():
            v = v_of(norm.encode(y), t) * norm.scale
        ea = eps_over_alpha(t)
        if float(ea) == 0.0:
            return v
        return v - ea * denoiser_from_velocity(v, y, t, interp, shift)  # v + eps * score

    return sde_integrate(drift, eps_fn, x, 0.0, 1.0, steps, gen, scheme=scheme)


@dataclass(frozen=True)
class LogProbRequest:
    """The ``return_log_prob``, ``divergence`` and ``probes`` arguments of
    :meth:`TransportFlow.sample`, checked on construction (types) and by :meth:`check` (the
    combination with the rest of the call)."""

    asked: Any = False
    divergence: str = "auto"
    probes: int = 16

    def __post_init__(self) -> None:
        check_bool(self.asked, "return_log_prob")
        if self.asked:
            return  # divergence and probes are checked with the flow's dimension
        if self.divergence != "auto":
            raise ValueError(
                f"divergence={self.divergence!r} only applies with return_log_prob=True (the "
                "divergence integrated for the samples' log-densities); drop it or ask for them"
            )
        if not (isinstance(self.probes, int) and self.probes == 16):
            raise ValueError(
                f"probes={self.probes!r} only applies with return_log_prob=True and the "
                "Hutchinson divergence; drop it or ask for the log-densities"
            )

    def check(self, method: str, guidance: float) -> None:
        """Refuse log-densities where none is defined by one ODE solve: SDE samples (their
        law is rho1's only in the limit, and a path has no change-of-variables density),
        and guided samples (they do not follow the learned rho1(x | c), see ``guidance``)."""
        if not self.asked:
            return
        if method != "ode":
            raise ValueError(
                f"return_log_prob=True needs method='ode', got method={method!r} (given, or "
                "the fit's config.sample_method): an SDE path has no log-density by change "
                "of variables; pass method='ode', or call log_prob on the SDE's samples"
            )
        if float(guidance) != 0.0:
            raise ValueError(
                f"return_log_prob=True needs guidance=0, got guidance={float(guidance):g}: "
                "guided samples do not follow the learned rho1(x | c), whose log-density "
                "log_prob gives"
            )


def sample(
    flow: TransportFlow,
    n: int,
    seed: int | None,
    ode: ODEOptions | None,
    method: str | None,
    eps: float | Callable | None,
    steps: int,
    scheme: str,
    nfe: int | None,
    condition: Any = None,
    guidance: float = 0.0,
    log_prob: LogProbRequest | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """The body of :meth:`TransportFlow.sample`; with ``log_prob`` (asked for), the samples
    and their log-densities."""
    n = check_positive_int(n, "n")
    if method is None:
        method = flow._config.sample_method if flow._config is not None else "ode"
    check_choice(method, "method", ("ode", "sde"))
    log_prob = log_prob or LogProbRequest()
    if method == "sde" and nfe is not None:
        raise ValueError(
            f"nfe={nfe!r} sets the ODE solver's budget, but method='sde': pass steps= for "
            "the SDE's steps, or method='ode'"
        )
    options = flow._options(ode, nfe) if method == "ode" else None
    if flow._base is None:
        raise ValueError(
            "sample needs rho0, but this flow has no base: pass base= to TransportFlow, or "
            "to sitransport.load for flows saved with a torch Distribution base"
        )
    velocity = flow._guided(guidance)  # checks guidance before any work
    log_prob.check(method, guidance)
    gen = torch_generator(seed)
    x0 = flow._base.sample(n, gen)
    if log_prob.asked:
        assert options is not None  # method == "ode", checked above
        return likelihood.sample_log_prob(
            flow, x0, condition, options, log_prob.divergence, log_prob.probes, gen
        )
    codes = flow._codes(condition, n, x0)
    if method == "ode":
        x = x0.numpy()
        return integration.solve(
            flow, x, "x", 0.0, 1.0, options, None, "sample", condition=condition, guidance=guidance
        ).x
    _require_gaussian_base(flow, "sample(method='sde')")
    steps = check_positive_int(steps, "steps")
    check_choice(scheme, "scheme", ("euler", "heun"))
    if eps is None:
        eps = 4.0 if _denoiser(flow) is not None else 1.0
    if not callable(eps):
        check_positive(eps, "eps", allow_zero=True)
    flow._eval_mode()
    if codes is not None:
        p = flow._param()
        codes = codes.to(device=p.device if p is not None else codes.device)
        codes = codes.to(p.dtype) if p is not None and codes.is_floating_point() else codes
    out = _sample_sde(flow, x0, eps, steps, scheme, gen, velocity, codes)
    out = out.detach().cpu().to(torch.float64)
    return check_finite_output(out, "sample", "the samples").numpy()
