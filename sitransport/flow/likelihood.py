"""Log-densities of the learned ``rho1`` of a :class:`~sitransport.flow.TransportFlow`:
the change of variables along the reverse ODE, batch by batch, with standard errors (the body
of its method ``log_prob_estimate``)."""

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
    check_choice(method, "method", ("auto", "exact", "hutchinson"))
    if flow._base is None or not flow._base.has_density:
        kind = "no base" if flow._base is None else f"a {flow._base.kind} base"
        raise ValueError(
            f"log_prob needs a density for rho0, but this flow has {kind}: the density of "
            "samples is unknown. Fit with rho0='gaussian' or a torch Distribution"
        )
    d = math.prod(flow._shape)
    if method == "auto":
        method = "exact" if d <= 16 else "hutchinson"
    if method == "hutchinson":
        _check_probes(probes, caller, stderr)
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
        res = integrate_logdet(
            flow._v,
            flow._norm.encode(chunk),
            1.0,
            0.0,
            options,
            divergence=method,
            probes=probes,
            generator=generator,
            condition=None if code_chunks is None else code_chunks[i],
        )
        x0 = flow._norm.decode(res.x)
        lps.append(flow._base.log_prob(x0.to(torch.float64)) + res.delta_logp.to(torch.float64))
        errs.append(res.stderr)
        nfes.append(res.nfe)
    lp, err = torch.cat(lps).to(in_dtype), torch.cat(errs).to(in_dtype)
    check_finite_output(lp, caller, "the log-densities")
    if stderr:
        check_finite_output(err, caller, "the standard errors")
    return LogProbEstimate(
        back_1d(back, lp),
        back_1d(back, err),
        float(np.mean(nfes)),
    )


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
