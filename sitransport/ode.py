r"""ODE integration on torchdiffeq and divergence estimators for the change of variables.

Transport solves :math:`\dot X_t = v_t(X_t)` forward (``0 -> 1``) or backward (``1 -> 0``).
Log-densities integrate the divergence along the way,

.. math::

    \log\rho_1(x) = \log\rho_0(X_{1\to0}(x)) - \int_0^1 \nabla\cdot v_t(X_{1\to t}(x))\, dt,

with the divergence exact (autograd trace, ``d`` backward passes) or estimated with
Hutchinson's trick :math:`\nabla\cdot v = \mathbb{E}[\epsilon^\top \partial_x v\, \epsilon]`
with Rademacher probes held fixed along each trajectory (an unbiased estimate of the integral).

References:
    Chen et al., Neural ODEs, arXiv:1806.07366; Grathwohl et al., FFJORD, arXiv:1810.01367.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import overload

import torch
from torch import Tensor
from torchdiffeq import odeint

from sitransport._spec import FieldsSpec
from sitransport._validation import check_choice, check_positive, check_positive_int
from sitransport.errors import TransportError

__all__ = [
    "EnergyResult",
    "LogDetResult",
    "ODEOptions",
    "ODEResult",
    "divergence_exact",
    "divergence_hutchinson",
    "integrate",
    "integrate_energy",
    "integrate_logdet",
    "probe_stderr",
]

Velocity = Callable[[Tensor, Tensor], Tensor]

#: Solvers: adaptive (error-controlled by atol/rtol) or fixed-step (``steps`` equal steps
#: over the span of the solve).
SOLVERS: dict[str, str] = {
    "dopri5": "adaptive",
    "euler": "fixed",
    "heun3": "fixed",
    "midpoint": "fixed",
    "rk4": "fixed",
}

#: Velocity evaluations per step (stages) and order of the fixed-step solvers.
STAGES: dict[str, int] = {"euler": 1, "midpoint": 2, "heun3": 3, "rk4": 4}
ORDERS: dict[str, int] = {"euler": 1, "midpoint": 2, "heun3": 3, "rk4": 4}

#: The fixed-step scheme of :meth:`ODEOptions.budget` below four evaluations, by budget.
_ONE_STEP = {1: "euler", 2: "midpoint", 3: "heun3"}

#: Weight, in degrees of freedom, of the variance pooled over rows in :func:`probe_stderr`.
_PRIOR_DOF = 8.0

#: New velocity evaluations per adaptive step (dopri5 reuses its last stage), and the
#: evaluations before the first step (the initial velocity and the step-size probe).
_ADAPTIVE_STAGES, _ADAPTIVE_START = 6, 2

#: What to try when a solve fails (every :class:`~sitransport.errors.TransportError` says it).
_ADVICE = (
    "Try: fit with dtype=torch.float64; looser rtol/atol or a larger max_steps in "
    "ODEOptions; a fixed-step method (ODEOptions(method='rk4', steps=200)); or check the "
    "network's weights for nan/inf (e.g. after training with too large an lr)"
)


@dataclass(frozen=True)
class _UniformGrid:
    """torchdiffeq ``grid_constructor``: ``steps`` equal steps from ``t[0]`` to ``t[-1]``
    with both ends exact (``step_size`` can add a tiny extra step, i.e. extra evaluations,
    when ``span / step_size`` rounds above an integer)."""

    steps: int

    def __call__(self, func: Callable, y0: Tensor, t: Tensor) -> Tensor:
        grid = torch.linspace(float(t[0]), float(t[-1]), self.steps + 1, dtype=t.dtype)
        grid = grid.to(t.device)
        grid[0], grid[-1] = t[0], t[-1]
        return grid


@dataclass(frozen=True)
class ODEOptions(FieldsSpec):
    """How to integrate: ``method`` (``dopri5`` default, or the fixed-step ``rk4``,
    ``heun3``, ``midpoint``, ``euler``), tolerances for adaptive methods, ``steps`` for
    fixed-step methods (equal steps over the span of each solve, whatever its length) and
    ``batch_size``, the number of samples integrated at once (bounds memory for large ``n``).
    ``max_steps`` bounds the steps of an adaptive solve: a field that diverges or is too stiff
    for the tolerances stops with :class:`~sitransport.errors.TransportError` instead of
    shrinking its steps forever (also under ``python -O``, where torchdiffeq's own checks are
    off). Every solve also stops with that error when the state or the velocity becomes
    non-finite, naming the time.

    A fixed-step solve costs exactly ``steps`` times the method's stages (1, 2, 3, 4)
    velocity evaluations: :attr:`nfe`. :meth:`budget` picks the scheme for a given cost.

    Args:
        method: ``"dopri5"`` (adaptive, the default), or the fixed-step ``"rk4"``,
            ``"heun3"``, ``"midpoint"`` or ``"euler"``.
        atol: absolute tolerance of an adaptive solve (default ``1e-5``).
        rtol: relative tolerance of an adaptive solve (default ``1e-5``).
        steps: equal steps of a fixed-step solve over its span (default 100).
        batch_size: samples integrated at once (default 10,000).
        max_steps: most steps an adaptive solve may take before it stops with
            :class:`~sitransport.errors.TransportError` (default 10,000).

    Example:
        >>> import torch
        >>> from sitransport.ode import ODEOptions, integrate
        >>> options = ODEOptions(method="rk4", steps=20)
        >>> result = integrate(lambda x, t: x, torch.ones(2, 1), torch.tensor([0.0, 1.0]), options)
        >>> round(float(result.states[-1, 0, 0]), 5), result.nfe  # e, 4 evaluations per step
        (2.71828, 80.0)
    """

    method: str = "dopri5"
    atol: float = 1e-5
    rtol: float = 1e-5
    steps: int = 100
    batch_size: int = 10_000
    max_steps: int = 10_000

    def __post_init__(self) -> None:
        check_choice(self.method, "ODE method", SOLVERS)
        check_positive(self.atol, "atol")
        check_positive(self.rtol, "rtol")
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_steps, "max_steps")

    @classmethod
    def budget(cls, nfe: int, *, batch_size: int = 10_000) -> ODEOptions:
        """The fixed-step scheme of highest order that costs at most ``nfe`` velocity
        evaluations per solve, for few-step transport along straight paths.

        Rule: ``nfe`` = 1, 2, 3 gives one step of ``euler``, ``midpoint`` (order 2) or
        ``heun3`` (order 3); ``nfe >= 4`` gives ``rk4`` (order 4) with ``nfe // 4`` steps.
        Multiples of 4 (and 1, 2, 3) use exactly ``nfe`` evaluations; otherwise the
        ``nfe % 4`` left over are not spent (:attr:`nfe` is the cost actually used).

        Args:
            nfe: the budget of velocity evaluations per solve, an integer ``>= 1``.
            batch_size: samples integrated at once, as in :class:`ODEOptions`. Default ``10000``.

        Returns:
            :class:`ODEOptions` with a fixed-step ``method`` and ``steps``.

        Raises:
            TypeError: ``nfe`` is not an integer.
            ValueError: ``nfe < 1``.

        Example:
            >>> for nfe in (1, 2, 3, 4, 8, 10):
            ...     options = ODEOptions.budget(nfe)
            ...     print(nfe, options.method, options.steps, options.nfe)
            1 euler 1 1
            2 midpoint 1 2
            3 heun3 1 3
            4 rk4 1 4
            8 rk4 2 8
            10 rk4 2 8
        """
        nfe = check_positive_int(nfe, "nfe")
        if nfe < 4:
            return cls(method=_ONE_STEP[nfe], steps=1, batch_size=batch_size)
        return cls(method="rk4", steps=nfe // 4, batch_size=batch_size)

    @property
    def nfe(self) -> int | None:
        """The velocity evaluations of one solve, ``steps`` times the stages of a fixed-step
        method (``None`` for the adaptive ``dopri5``, whose cost depends on the field).

        Example:
            >>> ODEOptions(method="midpoint", steps=3).nfe, ODEOptions().nfe
            (6, None)
        """
        if SOLVERS[self.method] == "adaptive":
            return None
        return STAGES[self.method] * self.steps

    def kwargs(self, times: Tensor) -> dict:
        """Keyword arguments of ``torchdiffeq.odeint`` for a solve through ``times``.

        Adaptive steps are made to land on the final time instead of stepping past it and
        interpolating back, and fixed steps are exactly ``steps`` equal steps between the
        first and last time (both ends exact), so the velocity is never evaluated outside
        ``[0, 1]`` and a fixed-step solve costs exactly :attr:`nfe` evaluations.

        Args:
            times: the times of the solve, a 1-D tensor (increasing or decreasing); its last entry
                is where adaptive steps must land.

        Example:
            >>> import torch
            >>> ODEOptions(method="rk4", steps=20).kwargs(torch.tensor([0.0, 1.0]))
            {'method': 'rk4', 'options': {'grid_constructor': _UniformGrid(steps=20)}}
            >>> sorted(ODEOptions().kwargs(torch.tensor([1.0, 0.0])))
            ['atol', 'method', 'options', 'rtol']
            >>> options = ODEOptions(max_steps=500).kwargs(torch.tensor([0.0, 1.0]))["options"]
            >>> options["max_num_steps"]  # adaptive steps per solve
            500
        """
        if SOLVERS[self.method] == "adaptive":
            return {
                "method": self.method,
                "atol": self.atol,
                "rtol": self.rtol,
                "options": {
                    "step_t": times[-1:].detach().clone(),
                    "max_num_steps": self.max_steps,
                },
            }
        return {"method": self.method, "options": {"grid_constructor": _UniformGrid(self.steps)}}


@dataclass(frozen=True)
class ODEResult:
    """States at the requested times, shape ``(len(times), n, ...)``, and the number of
    velocity evaluations (NFE) per batch, averaged over batches.

    Attributes:
        states: states at the requested times, shape ``(len(times), n, ...)``.
        nfe: velocity evaluations per batch, averaged over batches.

    Example:
        >>> import torch
        >>> from sitransport.ode import integrate
        >>> result = integrate(lambda x, t: -x, torch.ones(5, 2), torch.linspace(0, 1, 3))
        >>> result.states.shape  # (len(times), n, d)
        torch.Size([3, 5, 2])
        >>> round(float(result.states[-1, 0, 0]), 4)  # exp(-1)
        0.3679
    """

    states: Tensor
    nfe: float


@dataclass(frozen=True)
class LogDetResult:
    """End state ``x`` of shape ``(n, ...)``, the integral of the divergence along each path
    ``delta_logp`` of shape ``(n,)`` (``log rho_end(x) = log rho_start(x_start) - delta_logp``
    for a forward solve; see :func:`integrate_logdet`), its standard error (zeros when exact)
    and the NFE.

    Attributes:
        x: end states, shape ``(n, ...)``.
        delta_logp: integral of the divergence along each path, shape ``(n,)``.
        stderr: its standard error, shape ``(n,)`` (zeros for the exact divergence).
        nfe: evaluations of the augmented ODE per batch, averaged over batches.

    Example:
        >>> import torch
        >>> from sitransport.ode import integrate_logdet
        >>> result = integrate_logdet(lambda x, t: x, torch.ones(4, 2), 0.0, 1.0)
        >>> result.x.shape, result.delta_logp.shape, result.stderr.shape
        (torch.Size([4, 2]), torch.Size([4]), torch.Size([4]))
    """

    x: Tensor
    delta_logp: Tensor
    stderr: Tensor
    nfe: float


@dataclass(frozen=True)
class EnergyResult:
    """End state ``x`` of shape ``(n, ...)``, the path energy :math:`\\int |v|^2 dt` of each
    sample's trajectory, shape ``(n,)``, and the NFE.

    Attributes:
        x: end states, shape ``(n, ...)``.
        energy: path energy :math:`\\int |v|^2 dt` of each sample's trajectory, shape ``(n,)``.
        nfe: velocity evaluations per batch, averaged over batches.

    Example:
        >>> import torch
        >>> from sitransport.ode import integrate_energy
        >>> result = integrate_energy(lambda x, t: torch.ones_like(x), torch.zeros(3, 2), 0.0, 1.0)
        >>> result.x[0], result.energy  # moved by (1, 1) at speed sqrt(2)
        (tensor([1., 1.]), tensor([2., 2., 2.]))
    """

    x: Tensor
    energy: Tensor
    nfe: float


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
    """Raised inside a solve; :func:`_solve` turns it into a :class:`TransportError`."""

    def __init__(self, what: str, t: float | None) -> None:
        super().__init__(what)
        self.what, self.t = what, t


@overload
def _solve(
    rhs: Callable, y0: Tensor, times: Tensor, options: ODEOptions
) -> tuple[Tensor, float]: ...
@overload
def _solve(
    rhs: Callable, y0: tuple[Tensor, ...], times: Tensor, options: ODEOptions
) -> tuple[tuple[Tensor, ...], float]: ...
def _solve(
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
) -> ODEResult:
    """Solve ``dx/dt = velocity(x, t)`` from ``times[0]`` through ``times`` (either direction).

    Args:
        velocity: ``v(x, t)`` with ``x`` of shape ``(n, ...)`` and ``t`` a scalar tensor.
        x: initial states at ``times[0]``, shape ``(n, ...)``.
        times: 1-D increasing or decreasing tensor of at least 2 times.
        options: solver settings (:class:`ODEOptions`). Default ``None``.

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
    for chunk in torch.split(x, options.batch_size):
        states, nfe = _solve(lambda t, y: velocity(y, t), chunk, times, options)
        outs.append(states)
        nfes.append(nfe)
    return ODEResult(torch.cat(outs, dim=1), sum(nfes) / len(nfes))


def divergence_exact(velocity: Velocity, x: Tensor, t: Tensor) -> tuple[Tensor, Tensor]:
    """Return ``(v, div v)`` at ``(x, t)``; the trace of the Jacobian by ``d`` backward passes.

    Args:
        velocity: ``v(x, t)``.
        x: points, shape ``(n, ...)``.
        t: a scalar tensor.

    Returns:
        ``v`` of the shape of ``x`` (detached) and ``div v`` of shape ``(n,)``.

    Example:
        >>> import torch
        >>> A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
        >>> v, div = divergence_exact(lambda x, t: x @ A.T, torch.randn(3, 2), torch.tensor(0.0))
        >>> v.shape, div  # trace(A) = 5 everywhere
        (torch.Size([3, 2]), tensor([5., 5., 5.]))
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        v_flat = v.flatten(1)
        div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        if not v.requires_grad:  # v does not depend on x
            return v.detach(), div
        for i in range(v_flat.shape[1]):
            (g,) = torch.autograd.grad(v_flat[:, i].sum(), x, retain_graph=True, allow_unused=True)
            if g is not None:
                div = div + g.flatten(1)[:, i]
    return v.detach(), div


def divergence_hutchinson(
    velocity: Velocity, x: Tensor, t: Tensor, probes: Tensor
) -> tuple[Tensor, Tensor]:
    r"""Return ``(v, e^T (dv/dx) e)`` for each probe ``e``: shape ``(n, k)`` for ``k`` probes.

    Args:
        velocity: ``v(x, t)``.
        x: points, shape ``(n, ...)``.
        t: a scalar tensor.
        probes: tensor of shape ``(k, n, ...)`` of Rademacher (or Gaussian) probes.

    Returns:
        ``v`` of the shape of ``x`` (detached) and the estimates, shape ``(n, k)``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> probes = torch.randint(0, 2, (4, 3, 2), generator=g).double() * 2 - 1  # k=4, n=3
        >>> x = torch.zeros(3, 2, dtype=torch.float64)
        >>> v, est = divergence_hutchinson(lambda x, t: 2 * x, x, torch.tensor(0.0), probes)
        >>> est  # e^T (2 I) e = 2 d for Rademacher e: exact for a multiple of the identity
        tensor([[4., 4., 4., 4.],
                [4., 4., 4., 4.],
                [4., 4., 4., 4.]], dtype=torch.float64)
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        v = velocity(x, t)
        if not v.requires_grad:  # v does not depend on x
            return v.detach(), torch.zeros(x.shape[0], len(probes), dtype=x.dtype, device=x.device)
        ests = []
        for e in probes:
            (g,) = torch.autograd.grad((v * e).sum(), x, retain_graph=True, allow_unused=True)
            ests.append((g * e).flatten(1).sum(1) if g is not None else torch.zeros_like(x[:, 0]))
    return v.detach(), torch.stack(ests, dim=1)


def integrate_logdet(
    velocity: Velocity,
    x: Tensor,
    t0: float,
    t1: float,
    options: ODEOptions | None = None,
    *,
    divergence: str = "exact",
    probes: int = 1,
    generator: torch.Generator | None = None,
) -> LogDetResult:
    r"""Solve the ODE from ``t0`` to ``t1`` and integrate the divergence along the way.

    ``delta_logp`` is :math:`\delta = \int_{t_0}^{t_1} \nabla\cdot v\,dt` along each path.

    Then :math:`\log\rho_{t_1}(x_{t_1}) = \log\rho_{t_0}(x_{t_0}) - \delta`. For a backward solve
    ``1 -> 0`` from ``y``: ``log rho1(y) = log rho0(x0) + delta_logp``.

    Args:
        velocity: ``v(x, t)`` with ``t`` a scalar tensor.
        x: states at ``t0``, shape ``(n, ...)``.
        t0: start time.
        t1: end time (``t1 < t0`` solves backward).
        options: solver settings (:class:`ODEOptions`). Default ``None``.
        divergence: ``"exact"`` or ``"hutchinson"``.
        probes: number of Rademacher probes for Hutchinson; the reported standard error is
            the spread across probes, shrunk toward the spread pooled over the rows
            (:func:`probe_stderr`), divided by ``sqrt(probes)`` (``nan`` for one probe).
            Default ``1``.
        generator: random source of the probes. Default ``None``.

    Returns:
        :class:`LogDetResult`.

    Raises:
        TransportError: the state or velocity became non-finite, or an adaptive solve
            exceeded ``options.max_steps`` steps (or torchdiffeq's step size underflowed);
            the message names the span, the time of the failure and what to try. Errors
            raised by ``velocity`` itself propagate unchanged.

    Example:
        >>> import torch
        >>> x = torch.zeros(3, 2, dtype=torch.float64)
        >>> result = integrate_logdet(lambda x, t: -x, x, 1.0, 0.0)  # div v = -2, backward
        >>> result.delta_logp  # int_1^0 (-2) dt
        tensor([2., 2., 2.], dtype=torch.float64)
        >>> g = torch.Generator().manual_seed(0)
        >>> est = integrate_logdet(
        ...     lambda x, t: -x, x, 1.0, 0.0, divergence="hutchinson", probes=4, generator=g
        ... )
        >>> est.delta_logp, est.stderr  # exact for a multiple of the identity
        (tensor([2., 2., 2.], dtype=torch.float64), tensor([0., 0., 0.], dtype=torch.float64))
    """
    options = options or ODEOptions()
    check_choice(divergence, "divergence", ("exact", "hutchinson"))
    k = check_positive_int(probes, "probes") if divergence == "hutchinson" else 1
    times = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)
    xs, deltas, nfes = [], [], []
    for chunk in torch.split(x, options.batch_size):
        rhs: Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, Tensor]]
        if divergence == "exact":

            def exact(t, state, _v=velocity):
                v, div = divergence_exact(_v, state[0], t)
                return v, div[:, None]

            rhs = exact
        else:
            eps = torch.randint(0, 2, (k, *chunk.shape), generator=generator).to(chunk) * 2 - 1

            def probed(t, state, _v=velocity, _e=eps):
                return divergence_hutchinson(_v, state[0], t, _e)

            rhs = probed

        zero = torch.zeros(chunk.shape[0], k, dtype=x.dtype, device=x.device)
        (traj_x, traj_l), nfe = _solve(rhs, (chunk, zero), times, options)
        xs.append(traj_x[-1])
        deltas.append(traj_l[-1])
        nfes.append(nfe)
    delta = torch.cat(deltas)
    mean = delta.mean(1)
    stderr = torch.zeros_like(mean) if divergence == "exact" else probe_stderr(delta)
    return LogDetResult(torch.cat(xs), mean, stderr, sum(nfes) / len(nfes))


def probe_stderr(estimates: Tensor, prior_dof: float = _PRIOR_DOF) -> Tensor:
    r"""Standard errors of the per-row means of ``k`` probe estimates, shape ``(n, k)``.

    Each row's sample variance :math:`s_i^2` (``k - 1`` degrees of freedom) is shrunk toward
    the variance pooled over the rows, :math:`\bar s^2`, as if from ``prior_dof`` more:

    .. math::

        \hat\sigma_i^2 = \frac{(k - 1)\, s_i^2 + \nu_0\, \bar s^2}{k - 1 + \nu_0},
        \qquad \mathrm{se}_i = \hat\sigma_i / \sqrt{k}.

    With few probes a row's own spread is unreliable (with two Rademacher probes in
    ``d = 2`` it is zero for about half the rows, whatever their error); pooling keeps the
    error bar of every row honest, and many probes make it the row's own. It is zero only
    when every probe of every row agrees (e.g. a divergence exact for every probe). One
    probe has no spread to measure: ``nan``.

    Args:
        estimates: ``k`` probe estimates per row, shape ``(n, k)``.
        prior_dof: :math:`\nu_0`, the weight of the pooled variance in degrees of freedom.
            Default ``8.0``.

    Returns:
        The standard errors, shape ``(n,)``.

    Example:
        >>> import torch
        >>> est = torch.tensor([[1.0, 1.0], [0.0, 2.0]], dtype=torch.float64)
        >>> probe_stderr(est)  # the first row's probes agree by chance: not a zero error bar
        tensor([0.6667, 0.7454], dtype=torch.float64)
    """
    n, k = estimates.shape
    if k == 1:
        return torch.full((n,), float("nan"), dtype=estimates.dtype, device=estimates.device)
    row = estimates.var(1)
    var = ((k - 1) * row + prior_dof * row.mean()) / (k - 1 + prior_dof)
    return (var / k).sqrt()


def integrate_energy(
    velocity: Velocity, x: Tensor, t0: float, t1: float, options: ODEOptions | None = None
) -> EnergyResult:
    r"""Solve the ODE from ``t0`` to ``t1`` and accumulate :math:`\int |v_t(X_t)|^2 dt`.

    The mean over samples of ``rho0`` is the kinetic energy of the flow's path,
    :math:`\int_0^1 \mathbb{E}_{\rho_t}|v_t|^2 dt \geq W_2^2(\rho_0, \hat\rho_1)`.

    Args:
        velocity: ``v(x, t)`` with ``t`` a scalar tensor.
        x: states at ``t0``, shape ``(n, ...)``.
        t0: start time.
        t1: end time.
        options: solver settings (:class:`ODEOptions`). Default ``None``.

    Returns:
        :class:`EnergyResult`.

    Raises:
        TransportError: the state or velocity became non-finite, or an adaptive solve
            exceeded ``options.max_steps`` steps (or torchdiffeq's step size underflowed);
            the message names the span, the time of the failure and what to try. Errors
            raised by ``velocity`` itself propagate unchanged.

    Example:
        >>> import torch
        >>> x = torch.tensor([[1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
        >>> options = ODEOptions(method="rk4", steps=50)
        >>> result = integrate_energy(lambda x, t: x, x, 0.0, 1.0, options)  # x(t) = x e^t
        >>> [round(e, 4) for e in result.energy.tolist()]  # |x|^2 (e^2 - 1) / 2
        [3.1945, 12.7781]
    """
    options = options or ODEOptions()
    times = torch.tensor([t0, t1], dtype=x.dtype, device=x.device)

    def rhs(t: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        v = velocity(state[0], t)
        return v, v.flatten(1).pow(2).sum(1) * (1.0 if t1 >= t0 else -1.0)

    xs, energies, nfes = [], [], []
    for chunk in torch.split(x, options.batch_size):
        zero = torch.zeros(chunk.shape[0], dtype=x.dtype, device=x.device)
        (traj_x, traj_e), nfe = _solve(rhs, (chunk, zero), times, options)
        xs.append(traj_x[-1])
        energies.append(traj_e[-1])
        nfes.append(nfe)
    return EnergyResult(torch.cat(xs), torch.cat(energies), sum(nfes) / len(nfes))
