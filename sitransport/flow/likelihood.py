"""Log-densities of the learned ``rho1`` of a :class:`~sitransport.flow.TransportFlow`:
the change of variables along the reverse ODE, batch by batch, with standard errors (the body
of its method ``log_prob_estimate``), and along the forward ODE for its samples (``sample``
with ``return_log_prob=True``): one augmented solve, the same divergence estimators."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import (
    check_choice,
    check_finite_output,
    check_positive_int,
    torch_generator,
)
from sitransport.flow.integration import back_1d
from sitransport.flow.results import LogProbEstimate
from sitransport.ode import ODEOptions, integrate_logdet

if TYPE_CHECKING:
    from sitransport.ends.densities import Density
    from sitransport.flow.transport import TransportFlow

#: Nothing public: these are the bodies of TransportFlow's methods, documented there.
__all__: list[str] = []


def log_prob_estimate(
    flow: TransportFlow,
    y: Any,
    caller: str,
    stderr: bool,
    *,
    method: str = "auto",
    probes: int = 16,
    seed: int | None = None,
    ode: ODEOptions | None = None,
    batch_size: int | None = None,
    progress: bool = True,
    condition: Any = None,
) -> LogProbEstimate:
    """The body of :meth:`TransportFlow.log_prob_estimate` for the public function ``caller``
    (named in errors); with ``stderr`` the standard errors are used, and need two probes."""
    method, base = divergence_method(flow, method, "method", probes, caller, stderr)
    options = flow._options(ode)
    if batch_size is not None:
        options = replace(options, batch_size=check_positive_int(batch_size, "batch_size"))
    if not isinstance(progress, bool):
        raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
    yt, back, in_dtype = flow._prepare(y, "y")
    codes = flow._codes(condition, yt.shape[0], yt)
    flow._eval_mode()
    generator = torch_generator(0 if seed is None else seed)
    lps, errs, nfes = [], [], []
    chunks = torch.split(yt, options.batch_size)
    code_chunks = torch.split(codes, options.batch_size) if codes is not None else None
    for i, chunk in enumerate(_progress(chunks, progress and len(chunks) > 1, "log_prob")):
        code = None if code_chunks is None else code_chunks[i]
        x0, delta, err, nfe = _solve(flow, chunk, 1.0, options, method, probes, generator, code)
        lps.append(base.log_prob(x0.to(torch.float64)) + delta)  # int_1^0 div v
        errs.append(err)
        nfes.append(nfe)
    lp, err = torch.cat(lps).to(in_dtype), torch.cat(errs).to(in_dtype)
    check_finite_output(lp, caller, "the log-densities")
    if stderr:
        check_finite_output(err, caller, "the standard errors")
    return LogProbEstimate(
        back_1d(back, lp),
        back_1d(back, err),
        float(np.mean(nfes)),
    )


def sample_log_prob(
    flow: TransportFlow,
    x0: Tensor,
    condition: Any,
    options: ODEOptions,
    divergence: str,
    probes: int,
    generator: torch.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    r"""The body of :meth:`TransportFlow.sample` with ``return_log_prob=True``: base draws
    ``x0`` pushed forward by the same augmented solve as :meth:`log_prob` (run from ``t = 0``),
    :math:`\log\rho_1(x_1) = \log\rho_0(x_0) - \int_0^1 \nabla\cdot v_t(X_t)\,dt`, with the
    divergence of ``divergence`` (Hutchinson probes drawn from ``generator``); returns the
    samples and their log-densities, numpy float64."""
    method, base = divergence_method(flow, divergence, "divergence", probes, "sample", False)
    xt, _, _ = flow._prepare(x0.numpy(), "x")
    codes = flow._codes(condition, xt.shape[0], xt)
    flow._eval_mode()
    x1, delta, _, _ = _solve(flow, xt, 0.0, options, method, probes, generator, codes)
    lp = base.log_prob(x0.to(torch.float64)) - delta.cpu()  # int_0^1 div v
    out = check_finite_output(x1.detach().cpu().to(torch.float64), "sample", "the samples")
    check_finite_output(lp, "sample", "the log-densities")
    return out.numpy(), lp.detach().cpu().numpy()


def divergence_method(
    flow: TransportFlow, method: Any, name: str, probes: Any, caller: str, stderr: bool
) -> tuple[str, Density]:
    """The divergence of a log-density solve (``"auto"``: exact for ``d <= 16``, named
    ``name`` in errors) and the flow's base, after checking that it has a density and the
    probes."""
    check_choice(method, name, ("auto", "exact", "hutchinson"))
    if flow._base is None or not flow._base.has_density:
        kind = "no base" if flow._base is None else f"a {flow._base.kind} base"
        what = "return_log_prob=True" if caller == "sample" else "log_prob"
        raise ValueError(
            f"{what} needs a density for rho0, but this flow has {kind}: the density of "
            "samples is unknown. Fit with rho0='gaussian' or a torch Distribution"
        )
    if method == "auto":
        method = "exact" if math.prod(flow._shape) <= 16 else "hutchinson"
    if method == "hutchinson":
        _check_probes(probes, caller, stderr)
    return method, flow._base


def _solve(
    flow: TransportFlow,
    x: Tensor,
    start: float,
    options: ODEOptions,
    method: str,
    probes: int,
    generator: torch.Generator,
    codes: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, float]:
    """The augmented ODE from ``start`` (1: ``log_prob``, backward; 0: ``sample``, forward)
    to the other end, in the caller's coordinates: the end states, the integral of the
    divergence along each path from ``start`` to the end (float64; ``log rho_end(x_end) =
    log rho_start(x_start) - delta``), its standard error and the NFE. The divergence of the
    normalised velocity is also that of the caller's (``s v((x - m) / s)``): the
    normalisation needs no Jacobian."""
    res = integrate_logdet(
        flow._v,
        flow._norm.encode(x),
        start,
        1.0 - start,
        options,
        divergence=method,
        probes=probes,
        generator=generator,
        condition=codes,
    )
    return flow._norm.decode(res.x), res.delta_logp.to(torch.float64), res.stderr, res.nfe


def _check_probes(probes: Any, caller: str, stderr: bool) -> None:
    """Hutchinson probes: at least one; at least two for a standard error (one probe has no
    spread to measure it from)."""
    check_positive_int(probes, "probes")
    if stderr and probes < 2:
        raise ValueError(
            f"probes must be at least 2 for {caller}, whose standard error is the spread of "
            f"the probes' estimates (one probe has none), got probes={probes}; use log_prob "
            "for a one-probe estimate without a standard error"
        )


def _progress(chunks: tuple[Tensor, ...], show: bool, desc: str) -> Any:
    """Iterate over batches, with a tqdm bar counting them when ``show``."""
    from tqdm.auto import tqdm

    return tqdm(chunks, desc=desc, unit="batch", disable=not show, leave=False)
