"""One guarded solve on ``torchdiffeq.odeint``: every evaluation counted, a non-finite
state or velocity or a runaway adaptive solve stopped with a
:class:`~sitransport.errors.TransportError` that names the time and what to try; and
:func:`integrate`, the plain transport of states through a list of times."""

from __future__ import annotations

from collections.abc import Callable
from typing import overload

import torch
from torch import Tensor
from torchdiffeq import odeint

from sitransport.errors import TransportError
from sitransport.ode.options import SOLVERS, ODEOptions, ODEResult, Velocity, chunks

__all__ = ["integrate"]

#: New velocity evaluations per adaptive step (dopri5 reuses its last stage), and the
#: evaluations before the first step (the initial velocity and the step-size probe).
_ADAPTIVE_STAGES, _ADAPTIVE_START = 6, 2

#: What to try when a solve fails (every :class:`~sitransport.errors.TransportError` says it).
_ADVICE = (
    "Try: fit with dtype=torch.float64; looser rtol/atol or a larger max_steps in "
    "ODEOptions; a fixed-step method (ODEOptions(method='rk4', steps=200)); or check the "
    "network's weights for nan/inf (e.g. after training with too large an lr)"
)


def _all_finite(state: Tensor | tuple[Tensor, ...]) -> bool:
    parts = state if isinstance(state, tuple) else (state,)
    return all(bool(torch.isfinite(p).all()) for p in parts)


class _Guarded(torch.nn.Module):
    """The right-hand side as torchdiffeq calls it, counting evaluations (NFE), stopping a
    solve whose state or velocity is non-finite or that exceeds its evaluation budget
    (``limit``; ``None`` for fixed steps), and remembering the last time it was called at."""

    def __init__(self, f: Callable, limit: int | None = None) -> None:
        super().__init__()
        self.f, self.nfe, self.limit = f, 0, limit
        self.t: float | None = None
        self.in_velocity = False  # an error raised now is the velocity's own

    def forward(self, t: Tensor, state):
        self.t = float(t)
        self.nfe += 1
        if self.limit is not None and self.nfe > self.limit:
            raise _Failure("the adaptive solver exceeded its step limit", self.t)
        if not _all_finite(state):
            raise _Failure("the state became non-finite (nan or inf)", self.t)
        self.in_velocity = True
        out = self.f(t, state)
        self.in_velocity = False
        if not _all_finite(out):
            raise _Failure("the velocity became non-finite (nan or inf)", self.t)
        return out


class _Failure(Exception):
    """Raised inside a solve; :func:`solve` turns it into a :class:`TransportError`."""

    def __init__(self, what: str, t: float | None) -> None:
        super().__init__(what)
        self.what, self.t = what, t


@overload
def solve(
    rhs: Callable, y0: Tensor, times: Tensor, options: ODEOptions
) -> tuple[Tensor, float]: ...
@overload
def solve(
    rhs: Callable, y0: tuple[Tensor, ...], times: Tensor, options: ODEOptions
) -> tuple[tuple[Tensor, ...], float]: ...
def solve(
    rhs: Callable, y0: Tensor | tuple[Tensor, ...], times: Tensor, options: ODEOptions
) -> tuple[Tensor | tuple[Tensor, ...], float]:
    """``torchdiffeq.odeint`` under :class:`_Guarded`: the trajectory and the NFE.

    Raises:
        TransportError: the state or velocity became non-finite, the adaptive solver exceeded
            ``options.max_steps`` or torchdiffeq failed (step-size underflow); the message
            names the span, the time of the failure and what to try.
    """
    adaptive = SOLVERS[options.method] == "adaptive"
    limit = _ADAPTIVE_STAGES * options.max_steps + _ADAPTIVE_START if adaptive else None
    f = _Guarded(rhs, limit)
    try:
        with torch.no_grad():
            out = odeint(f, y0, times, **options.kwargs(times))
    except _Failure as err:
        raise TransportError(_failure_message(err.what, err.t, times, options)) from None
    except (AssertionError, RuntimeError) as err:
        if f.in_velocity or isinstance(err, TransportError):
            raise  # the velocity's own error, not the solver's
        what = f"the solver failed ({type(err).__name__}: {err})"
        if "max_num_steps" in str(err):
            what = "the adaptive solver exceeded its step limit"
        elif "underflow" in str(err):
            what = "the solver's step size underflowed (the field is too stiff or diverges)"
        raise TransportError(_failure_message(what, f.t, times, options)) from err
    if not _all_finite(out):  # the last step's combination is never fed back to the field
        what = "the state became non-finite (nan or inf) in the last step"
        raise TransportError(_failure_message(what, float(times[-1]), times, options))
    return out, f.nfe


def _failure_message(what: str, t: float | None, times: Tensor, options: ODEOptions) -> str:
    at = "before the first evaluation" if t is None else f"at t={t:.6g}"
    limit = f", max_steps={options.max_steps}" if SOLVERS[options.method] == "adaptive" else ""
    return (
        f"the ODE solve from t={float(times[0]):g} to t={float(times[-1]):g} "
        f"(method={options.method!r}{limit}) failed: {what} {at}. {_ADVICE}"
    )


def integrate(
    velocity: Velocity,
    x: Tensor,
    times: Tensor,
    options: ODEOptions | None = None,
    *,
    condition: Tensor | None = None,
) -> ODEResult:
    """Solve ``dx/dt = velocity(x, t)`` from ``times[0]`` through ``times`` (either direction).

    Args:
        velocity: ``v(x, t)`` with ``x`` of shape ``(n, ...)`` and ``t`` a scalar tensor
            (``v(x, t, c)`` with a ``condition``).
        x: initial states at ``times[0]``, shape ``(n, ...)``.
        times: 1-D increasing or decreasing tensor of at least 2 times.
        options: solver settings (:class:`ODEOptions`). Default ``None``.
        condition: one row per state, passed along with it to ``velocity``. Default ``None``.

    Returns:
        :class:`ODEResult` with states of shape ``(len(times), n, ...)``.

    Raises:
        TransportError: the state or velocity became non-finite, or an adaptive solve
            exceeded ``options.max_steps`` steps (or torchdiffeq's step size underflowed);
            the message names the span, the time of the failure and what to try. Errors
            raised by ``velocity`` itself propagate unchanged.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 2.0]])
        >>> back = integrate(lambda x, t: x, x, torch.tensor([1.0, 0.5, 0.0]))  # 1 -> 0
        >>> back.states.shape
        torch.Size([3, 1, 2])
        >>> [round(v, 4) for v in back.states[-1, 0].tolist()]  # x exp(-1)
        [0.3679, 0.7358]
    """
    options = options or ODEOptions()
    times = times.to(dtype=x.dtype, device=x.device)
    outs, nfes = [], []
    for chunk, v in chunks(velocity, x, condition, options.batch_size):
        states, nfe = solve(lambda t, y, _v=v: _v(y, t), chunk, times, options)
        outs.append(states)
        nfes.append(nfe)
    return ODEResult(torch.cat(outs, dim=1), sum(nfes) / len(nfes))
