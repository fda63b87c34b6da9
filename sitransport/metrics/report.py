"""The transport report: how close a fitted flow is to optimal transport.

The one job of this module is :func:`transport_report`: the flow's path energy and transport
cost against the exact :math:`W_2^2` of the samples, a Lipschitz estimate of the velocity, the
flow-matching loss as an upper estimate of :math:`H`, and the paper's :math:`W_2` bound next
to the measured distance, gathered in a :class:`TransportReport`; for a conditional flow, of
one condition value (``condition=``). Its energy-against-:math:`W_2^2` core,
:func:`energy_vs_w2`, is shared with the per-condition report
(:func:`~sitransport.metrics.conditional_npe`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sitransport._validation import (
    check_finite_output,
    check_in_range,
    check_positive_int,
    check_same_dim,
    check_seed,
    torch_generator,
)
from sitransport.couplings import Independent
from sitransport.ends.densities import EmpiricalDensity
from sitransport.losses import quadratic_loss
from sitransport.metrics.distances import samples, w2
from sitransport.metrics.quality import sample_quality

if TYPE_CHECKING:
    from sitransport.flow import TransportFlow

__all__ = ["EnergyVsW2", "TransportReport", "energy_vs_w2", "transport_report"]


@dataclass(frozen=True)
class TransportReport:
    r"""How close a flow is to optimal transport, in the caller's coordinates.

    Attributes:
        kinetic_energy: :math:`KE = \int_0^1 \mathbb{E}|v_t(X_t)|^2 dt` along the flow's
            own trajectories from ``x0`` (Monte Carlo over ``x0``; exact up to the ODE).
        kinetic_energy_stderr: its standard error over samples.
        transport_cost: :math:`\mathbb{E}|T(x_0) - x_0|^2` of the map ``T = push_forward``;
            :math:`\le KE` (equality iff the paths are straight lines at constant speed).
        w2_squared: exact :math:`W_2^2` (POT) between the ``x0`` and ``x1`` samples.
        npe: normalised path energy :math:`|KE - W_2^2| / W_2^2` (samples at
            :math:`W_2^2 = 0`, where it is undefined, are refused).
        straightness: :math:`KE - \mathbb{E}|T(x_0) - x_0|^2 \ge 0` (0: straight paths).
        lipschitz: estimate ``K`` of the Lipschitz constant of ``v`` in space: the largest
            spectral norm of the Jacobian over sampled ``(x_t, t)`` (a lower estimate of the
            true constant).
        h_upper: upper estimate of :math:`H = \int \mathbb{E}|\hat v - v|^2`: the
            flow-matching loss on fresh pairs, which exceeds H by the (non-negative)
            conditional variance of :math:`\partial_t x_t`.
        w2_bound: :math:`\sqrt{e^{1 + 2K} H_{upper}}`, the paper's bound on
            :math:`W_2(\rho_1, \hat\rho_1)` with the estimates plugged in (``inf`` beyond
            the float range, for ``K`` above about 350: a vacuous bound).
        w2_generated: measured exact :math:`W_2` between pushed samples and held-out target
            samples (``nan`` without ``held_out``); compare with ``w2_bound``.
        noise_floor: :math:`W_2` between two held-out halves (``nan`` without ``held_out``).
        n: number of samples used.
        nfe: velocity evaluations of the energy ODE per batch, averaged over batches.

    Example:
        A translation by ``(1, 1)`` at constant speed is optimal and straight:

        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> from sitransport.metrics import transport_report
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> x0 = np.random.default_rng(0).normal(size=(200, 2))
        >>> report = transport_report(flow, x0, x0 + 1.0)
        >>> round(report.kinetic_energy, 6), round(report.w2_squared, 6), report.n
        (2.0, 2.0, 200)
        >>> print(str(report).splitlines()[0])
        kinetic energy KE              2 +- 0
    """

    kinetic_energy: float
    kinetic_energy_stderr: float
    transport_cost: float
    w2_squared: float
    npe: float
    straightness: float
    lipschitz: float
    h_upper: float
    w2_bound: float
    w2_generated: float
    noise_floor: float
    n: int
    nfe: float

    def __str__(self) -> str:
        rows = [
            ("kinetic energy KE", f"{self.kinetic_energy:.5g} +- {self.kinetic_energy_stderr:.2g}"),
            ("transport cost E|T(x)-x|^2", f"{self.transport_cost:.5g}"),
            ("exact W2^2 (POT)", f"{self.w2_squared:.5g}"),
            ("NPE |KE - W2^2| / W2^2", f"{self.npe:.4g}"),
            ("straightness KE - E|T(x)-x|^2", f"{self.straightness:.4g}"),
            ("Lipschitz estimate K", f"{self.lipschitz:.4g}"),
            ("H upper estimate", f"{self.h_upper:.4g}"),
            ("W2 bound sqrt(e^(1+2K) H)", f"{self.w2_bound:.4g}"),
            ("measured W2(generated, held-out)", f"{self.w2_generated:.4g}"),
            ("noise floor", f"{self.noise_floor:.4g}"),
            ("samples / NFE", f"{self.n} / {self.nfe:.0f}"),
        ]
        rows = [r for r in rows if r[1] != "nan"]  # measured W2 only with held-out samples
        width = max(len(r[0]) for r in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


@dataclass(frozen=True, eq=False)
class EnergyVsW2:
    r"""A flow's path energy from ``x0`` against the exact :math:`W_2^2` of ``x0`` and ``x1``.

    Attributes:
        kinetic_energy: :math:`KE`, the mean path energy over ``x0`` (see
            :class:`TransportReport`).
        kinetic_energy_stderr: its standard error over samples.
        w2_squared: exact :math:`W_2^2` (POT) between the ``x0`` and ``x1`` samples.
        npe: :math:`|KE - W_2^2| / W_2^2`.
        x0: the ``x0`` samples as float arrays ``(m, d)``.
        x1: the ``x1`` samples ``(m1, d)``.
        pushed: the flow's end points from ``x0`` ``(m, d)``.
        nfe: velocity evaluations of the energy ODE per batch, averaged over batches.
    """

    kinetic_energy: float
    kinetic_energy_stderr: float
    w2_squared: float
    npe: float
    x0: np.ndarray
    x1: np.ndarray
    pushed: np.ndarray
    nfe: float


def energy_vs_w2(
    flow: TransportFlow, x0: Any, x1: Any, *, seed: int = 0, condition: Any = None
) -> EnergyVsW2:
    r"""The normalised path energy of a flow, :math:`NPE = |KE - W_2^2| / W_2^2`: its path
    energy from ``x0`` against the exact :math:`W_2^2` (POT) of the ``x0`` and ``x1``
    samples (the core of :func:`transport_report` and
    :func:`~sitransport.metrics.conditional_npe`; see the former for what is rigorous).

    Args:
        flow: a :class:`~sitransport.TransportFlow`.
        x0: samples of ``rho0``, ``(m, d)``.
        x1: samples of ``rho1`` (of the condition, for a conditional flow), ``(m1, d)``.
        seed: seed of the subsample of the exact :math:`W_2` beyond its size limit.
            Default ``0``.
        condition: a conditional flow's condition, one value for all of ``x0``. Default
            ``None`` (an unconditional flow).

    Returns:
        :class:`EnergyVsW2`.

    Raises:
        ValueError: bad samples (named), ``x0`` and ``x1`` the same points (:math:`W_2^2 =
            0`), or a condition missing or given where the flow has none (the message
            starts ``condition:``).
        NonFiniteOutputError: the path energy or the transport came out nan or inf.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> x0 = np.random.default_rng(0).normal(size=(100, 2))
        >>> round(energy_vs_w2(flow, x0, x0 + 1.0).npe, 9)
        0.0
    """
    a, b = samples(x0, "x0", min_samples=2), samples(x1, "x1", min_samples=2)
    check_same_dim(a, b, "x0", "x1")
    check_in_range(torch.from_numpy(a), "x0", flow.dtype or torch.float64)
    along = flow.path_energy(a, condition=condition)
    energy = np.asarray(along.energy, dtype=np.float64)
    ke, ke_se = float(energy.mean()), float(energy.std(ddof=1) / np.sqrt(len(energy)))
    w2sq = w2(a, b, subsample=True, seed=seed) ** 2
    if w2sq == 0.0:
        raise ValueError(
            "x0 and x1 are the same points (their exact W2^2 = 0, e.g. x1 = x0, or both "
            "constant at one point): the NPE |KE - W2^2| / W2^2 is undefined. Pass samples "
            "of rho0 as x0 and of rho1 as x1"
        )
    return EnergyVsW2(
        ke, ke_se, w2sq, abs(ke - w2sq) / w2sq, a, b, np.asarray(along.x), float(along.nfe)
    )


def _codes(flow: TransportFlow, condition: Any) -> torch.Tensor | None:
    """The network code of the one condition value reported, ``(1, ...)``; ``None`` for an
    unconditional flow.

    Raises:
        ValueError: ``condition`` given to an unconditional flow or missing for a
            conditional one (the message starts ``condition:``), or not one value.
    """
    enc = flow.condition
    if enc is None:
        if condition is not None:
            raise ValueError(
                "condition: this flow is unconditional (fitted without condition=), got "
                f"condition={condition!r}; report it without condition="
            )
        return None
    if condition is None:
        raise ValueError(
            f"condition: this flow is conditional ({enc!r}); pass condition= (one value) and "
            "x1 = the target samples of that condition, or see conditional_npe"
        )
    return enc.encode(condition, 1, dtype=flow.dtype or torch.float64)


def _velocity(flow: TransportFlow, codes: torch.Tensor | None) -> Callable[..., torch.Tensor]:
    """The flow's network ``v(z, t)`` (normalised coordinates) under the condition ``codes``."""
    net = flow.network
    if codes is None:
        return net

    def v(z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        c = codes.to(device=z.device)
        c = c.to(z.dtype) if c.is_floating_point() else c
        return net(z, t, c.expand(z.shape[0], *c.shape[1:]))

    return v


def _noise(interpolant: Any, like: torch.Tensor, gen: torch.Generator) -> torch.Tensor | None:
    """Standard normal ``z`` for stochastic interpolants, ``None`` for deterministic ones."""
    if not interpolant.stochastic:
        return None
    return torch.randn(like.shape, generator=gen, dtype=torch.float64).to(like)


def _lipschitz_estimate(
    flow: TransportFlow,
    x0: torch.Tensor,
    x1: torch.Tensor,
    gen: torch.Generator,
    codes: torch.Tensor | None = None,
) -> float:
    """Largest Jacobian spectral norm of the (normalised) velocity at interpolant points."""
    net, norm, interp = _velocity(flow, codes), flow.normalization, flow.network_path
    dtype = flow.dtype or x0.dtype
    z0, z1 = norm.encode(x0).to(dtype), norm.encode(x1).to(dtype)
    t = torch.rand(z0.shape[0], generator=gen, dtype=torch.float64).to(dtype)
    with torch.no_grad():
        zt = interp.interpolate(z0, z1, t, _noise(interp, z0, gen)).detach()
    check_finite_output(zt, "transport_report", "the path's points x_t (its coefficients)")

    def v_single(z: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        return net(z[None], s[None])[0]

    jac = torch.func.vmap(torch.func.jacrev(v_single))(zt, t).detach().to(torch.float64)
    check_finite_output(jac, "transport_report", "the velocity's Jacobian at path points")
    return float(torch.linalg.matrix_norm(jac, ord=2).max())


def _h_upper(
    flow: TransportFlow,
    x0: torch.Tensor,
    x1: torch.Tensor,
    pushed: np.ndarray,
    gen: torch.Generator,
    codes: torch.Tensor | None = None,
) -> float:
    """The flow-matching loss on fresh pairs (an upper estimate of H), with the training
    coupling: ``flow.config.coupling`` in batches of the training's size; a reflowed flow's
    own map pairs (``x0`` with ``pushed``); independent pairs in batches of 512 for a flow
    built by hand. A conditional flow's velocity is that of the condition ``codes``: all
    pairs are of one condition, so the coupling pairs them as they are."""
    net, norm, path = _velocity(flow, codes), flow.normalization, flow.network_path
    dtype = flow.dtype or torch.float64
    config = flow.config
    paired = config is not None and config.coupling.name == "paired"
    coupling = Independent() if config is None or paired else config.coupling.build()
    partner = torch.as_tensor(pushed) if paired else x1
    m = min(len(x0), len(x1))
    bs = min(config.training.batch_size if config is not None else 512, m)  # sizes may differ
    fm = []
    with torch.no_grad():
        for start in range(0, m - bs + 1, bs):
            z0 = norm.encode(x0[start : start + bs]).to(dtype)
            z1 = norm.encode(partner[start : start + bs]).to(dtype)
            z0, z1 = coupling.pair(z0, z1, gen)
            t = torch.rand(z0.shape[0], generator=gen, dtype=torch.float64).to(dtype)
            z = _noise(path, z0, gen)
            fm.append(float(quadratic_loss(net, path, z0, z1, t, z).flow_matching))
    h_upper = float(np.mean(fm)) * norm.scale**2
    return check_finite_output(h_upper, "transport_report", "the flow-matching loss (H)")


def transport_report(
    flow: TransportFlow,
    x0: Any = None,
    x1: Any = None,
    *,
    held_out: Any = None,
    n: int = 2000,
    seed: int = 0,
    condition: Any = None,
) -> TransportReport:
    r"""Optimal-transport diagnostics of a fitted flow, checked against exact OT (POT).

    What is rigorous and what is estimated:

    - ``kinetic_energy`` is the path energy of the flow itself (an ODE integral, Monte Carlo
      over ``x0`` with its standard error). By Benamou–Brenier it is at least
      :math:`W_2^2(\rho_0, \hat\rho_1)`, the squared distance to what the flow actually
      transports to; ``npe`` compares it with the exact :math:`W_2^2` of the samples, which
      carries a finite-sample bias (positive, shrinking with ``n``).
    - ``transport_cost`` is exact for the samples given; it upper-bounds the OT cost from
      ``x0``'s law to the pushed law.
    - ``w2_bound`` is the paper's bound :math:`W_2^2(\rho_1, \hat\rho_1) \le e^{1 + 2K} H`
      with two *estimates* plugged in: ``K`` is a lower estimate of the Lipschitz constant
      (maximum over sampled points), ``H`` is upper-bounded by the flow-matching loss. It is
      therefore not a certified bound; the measured ``w2_generated`` shows how it compares.
      The loss pairs ``x0`` and ``x1`` with the flow's training coupling
      (``flow.config.coupling``; a reflowed flow's own map pairs) in batches of
      ``flow.config.training.batch_size`` (independent pairs in batches of 512 for a flow
      built by hand).

    A conditional flow is reported for one condition value ``c`` (``condition=c``): ``x0`` is
    pushed under ``c``, and ``x1`` (and ``held_out``) must be the caller's target samples *of
    that condition* (the flow's own target mixes all conditions, so ``x1`` is required). For
    every condition at once see :func:`~sitransport.metrics.conditional_npe`.

    Args:
        flow: a :class:`~sitransport.TransportFlow`.
        x0: samples of ``rho0`` (default: ``n`` draws from ``flow.base``; required for a
            flow fitted with ``condition=(c0, c1)``, whose base mixes the conditions).
        x1: samples of ``rho1`` (default: ``n`` of the target samples the flow was fitted to;
            required with ``condition``: the samples of that condition).
        held_out: held-out target samples (``2 m`` rows) for the measured W2 and noise floor
            (of the condition, with ``condition``). Default ``None``: both reported as ``nan``.
        n: number of samples when drawing defaults.
        seed: seed of the draws. Default ``0``.
        condition: a conditional flow's condition value (one label or one feature vector):
            the report of the map of that condition. Required for a conditional flow,
            refused for an unconditional one. Default ``None``.

    Returns:
        :class:`TransportReport`.

    Raises:
        ValueError: ``condition`` given to an unconditional flow, or missing (or more than
            one value) for a conditional one, the message naming ``condition``; ``x1``
            missing with ``condition`` (or ``x0`` for a ``(c0, c1)`` flow).
        ValueError: ``x0`` or ``x1`` missing and the flow does not know its ends; bad
            samples (the message names them); ``x0`` and ``x1`` the same points (exact
            :math:`W_2^2 = 0`: the NPE is undefined); ``n < 1`` or ``seed`` outside
            ``[0, 2**63)``.
        TypeError: ``seed`` or ``n`` not an integer; samples not arrays of floats.
        NonFiniteOutputError: (a ``FloatingPointError``) the path energy, the transport
            cost, the path's points, the velocity's Jacobian or the flow-matching loss came
            out nan or inf (e.g. a flow with extreme or non-finite normalisation, weights or
            path coefficients); the message names the quantity and what to try.
        TransportError: the ODE solve of the path energy failed.

    Example:
        ``x -> e x`` (velocity ``z`` for one unit of time) maps ``N(0, I)`` optimally to
        ``N(0, e^2 I)`` but along curved paths, whose energy exceeds :math:`W_2^2`:

        >>> import numpy as np
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> x0 = np.random.default_rng(0).normal(size=(300, 2))
        >>> report = transport_report(flow, x0, np.e * x0)
        >>> round(report.transport_cost / report.w2_squared, 4)  # T(x) = e x is optimal
        1.0
        >>> round(report.kinetic_energy / report.transport_cost, 2)  # (e + 1) / (2 (e - 1))
        1.08
        >>> report.straightness > 0
        True
    """
    n = check_positive_int(n, "n")
    gen = torch_generator(check_seed(seed))  # an integer: the report is reproducible
    codes = _codes(flow, condition)
    x0, x1 = _default_ends(flow, x0, x1, n, gen, codes is not None)
    core = energy_vs_w2(flow, x0, x1, seed=seed, condition=condition)
    a, b, pushed = core.x0, core.x1, core.pushed
    with np.errstate(over="ignore"):  # checked below
        cost = float(np.mean(np.sum((pushed - a) ** 2, axis=1)))
    check_finite_output(cost, "transport_report", "the transport cost E|T(x0) - x0|^2")
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    m = min(len(a), len(b))
    lipschitz = _lipschitz_estimate(flow, ta[: min(m, 256)], tb[: min(m, 256)], gen, codes)
    h_upper = _h_upper(flow, ta, tb, pushed, gen, codes)
    with np.errstate(over="ignore"):  # a vacuous bound beyond the float range is inf
        bound = float(np.sqrt(np.exp(1.0 + 2.0 * lipschitz) * h_upper))
    w2_gen = floor = float("nan")
    if held_out is not None:
        q = sample_quality(pushed, held_out)
        w2_gen, floor = q.w2, q.noise_floor
    return TransportReport(
        kinetic_energy=core.kinetic_energy,
        kinetic_energy_stderr=core.kinetic_energy_stderr,
        transport_cost=cost,
        w2_squared=core.w2_squared,
        npe=core.npe,
        straightness=core.kinetic_energy - cost,
        lipschitz=lipschitz,
        h_upper=h_upper,
        w2_bound=bound,
        w2_generated=w2_gen,
        noise_floor=floor,
        n=len(a),
        nfe=core.nfe,
    )


def _default_ends(
    flow: TransportFlow, x0: Any, x1: Any, n: int, gen: torch.Generator, conditional: bool
) -> tuple[Any, Any]:
    """``x0`` and ``x1`` as given, or ``n`` draws of the flow's base and target samples."""
    if conditional and x1 is None:
        raise ValueError(
            "x1 is required with condition=: the target samples of that condition (the flow's "
            "target mixes all its conditions)"
        )
    paired = flow.config is not None and str(flow.config.condition).startswith("paired")
    if conditional and paired and x0 is None:
        raise ValueError(
            "x0 is required with condition= for a flow fitted with condition=(c0, c1): the "
            "source samples of that condition (the flow's base mixes all its conditions)"
        )
    if x0 is None:
        if flow.base is None:
            raise ValueError("x0 is required: the flow has no base to draw rho0 from")
        x0 = flow.base.sample(n, gen).numpy()
    if x1 is None:
        target = flow.target
        if target is None:
            raise ValueError("x1 is required: the flow does not know the target it was fitted to")
        if isinstance(target, EmpiricalDensity) and target.samples.shape[0] >= n:
            idx = torch.randperm(target.samples.shape[0], generator=gen)[:n]
            x1 = target.samples[idx].numpy()
        else:
            x1 = target.sample(n, gen).numpy()
    return x0, x1
