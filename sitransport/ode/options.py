"""The settings of an ODE solve and what it returns: :class:`ODEOptions` (the solvers, their
stages and orders, fixed-step grids and evaluation budgets), the velocity type a solve
integrates, and the result records :class:`ODEResult`, :class:`LogDetResult` and
:class:`EnergyResult`."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from sitransport._spec import FieldsSpec
from sitransport._validation import check_choice, check_positive, check_positive_int

__all__ = ["EnergyResult", "LogDetResult", "ODEOptions", "ODEResult"]

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

#: Smallest ``rtol``: 100 float64 epsilons (2.2e-14), below which a relative error is lost in
#: the rounding of the state itself and the step size shrinks until it underflows (scipy's
#: ``solve_ivp`` raises smaller values to the same floor).
MIN_RTOL = 100 * float(torch.finfo(torch.float64).eps)

#: Most ``steps`` and ``max_steps``: 10**7 steps are at least 10**7 velocity evaluations per
#: solve (hours even for a small network); torchdiffeq counts steps in int32 and a fixed-step
#: grid holds ``steps + 1`` times.
MAX_STEPS = 10**7

#: The fixed-step scheme of :meth:`ODEOptions.budget` below four evaluations, by budget.
_ONE_STEP = {1: "euler", 2: "midpoint", 3: "heun3"}


def chunks(
    velocity: Callable[..., Tensor], x: Tensor, condition: Tensor | None, batch_size: int
) -> Iterator[tuple[Tensor, Velocity]]:
    """``x`` in chunks of ``batch_size`` rows, each with the velocity ``v(y, t)`` of its rows:
    ``velocity`` itself, or bound to the chunk's rows of ``condition`` (``velocity(y, t, c)``).

    Example:
        >>> import torch
        >>> v = lambda y, t, c: y * c[:, None]
        >>> [f(y, 0.0).tolist() for y, f in chunks(v, torch.ones(3, 1), torch.arange(3.0), 2)]
        [[[0.0], [1.0]], [[2.0]]]
    """
    if condition is None:
        for chunk in torch.split(x, batch_size):
            yield chunk, velocity
        return
    if condition.shape[0] != x.shape[0]:
        raise ValueError(
            f"condition must have one row per state ({x.shape[0]}), got {condition.shape[0]}"
        )
    for chunk, codes in zip(
        torch.split(x, batch_size), torch.split(condition, batch_size), strict=True
    ):
        yield chunk, functools.partial(_bound, velocity, codes)


def _bound(velocity: Callable[..., Tensor], codes: Tensor, y: Tensor, t: Tensor) -> Tensor:
    return velocity(y, t, codes)


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
        atol: absolute tolerance of an adaptive solve, ``> 0`` (default ``1e-5``).
        rtol: relative tolerance of an adaptive solve, at least ``MIN_RTOL`` (100 float64
            epsilons, 2.2e-14; default ``1e-5``).
        steps: equal steps of a fixed-step solve over its span, in ``[1, MAX_STEPS]``
            (10**7; default 100).
        batch_size: samples integrated at once (default 10,000).
        max_steps: most steps an adaptive solve may take before it stops with
            :class:`~sitransport.errors.TransportError`, in ``[1, MAX_STEPS]`` (default 10,000).

    Raises:
        TypeError: a field of the wrong type.
        ValueError: an unknown ``method``, or a field out of its range (named, with the range).

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
        if check_positive(self.rtol, "rtol") < MIN_RTOL:
            raise ValueError(
                f"rtol must be a number >= {MIN_RTOL:.3g}, got {self.rtol} (a smaller relative "
                "error is lost in the float64 rounding of the state: the step size would shrink "
                "until it underflows)"
            )
        check_positive_int(self.steps, "steps", maximum=MAX_STEPS)
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.max_steps, "max_steps", maximum=MAX_STEPS)

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
            ValueError: ``nfe`` is not in ``[1, 4 * MAX_STEPS]`` (4 * 10**7).

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
        nfe = check_positive_int(nfe, "nfe", maximum=4 * MAX_STEPS)
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
