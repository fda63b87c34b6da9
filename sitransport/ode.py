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

import torch
from torch import Tensor
from torchdiffeq import odeint

from sitransport._validation import check_choice, check_positive, check_positive_int

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
class ODEOptions:
    """How to integrate: ``method`` (``dopri5`` default, or the fixed-step ``rk4``,
    ``heun3``, ``midpoint``, ``euler``), tolerances for adaptive methods, ``steps`` for
    fixed-step methods (equal steps over the span of each solve, whatever its length) and
    ``batch_size``, the number of samples integrated at once (bounds memory for large ``n``).

    A fixed-step solve costs exactly ``steps`` times the method's stages (1, 2, 3, 4)
    velocity evaluations: :attr:`nfe`. :meth:`budget` picks the scheme for a given cost.

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

    def __post_init__(self) -> None:
        check_choice(self.method, "ODE method", SOLVERS)
        check_positive(self.atol, "atol")
        check_positive(self.rtol, "rtol")
        check_positive_int(self.steps, "steps")
        check_positive_int(self.batch_size, "batch_size")

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
            batch_size: samples integrated at once, as in :class:`ODEOptions`.

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
        """Velocity evaluations per solve: ``steps`` times the stages of a fixed-step
        method; ``None`` for the adaptive ``dopri5`` (its cost depends on the field).

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

        Example:
            >>> import torch
            >>> ODEOptions(method="rk4", steps=20).kwargs(torch.tensor([0.0, 1.0]))
            {'method': 'rk4', 'options': {'grid_constructor': _UniformGrid(steps=20)}}
            >>> sorted(ODEOptions().kwargs(torch.tensor([1.0, 0.0])))
            ['atol', 'method', 'options', 'rtol']
        """
        if SOLVERS[self.method] == "adaptive":
            return {
                "method": self.method,
                "atol": self.atol,
                "rtol": self.rtol,
                "options": {"step_t": times[-1:].detach().clone()},
            }
        return {"method": self.method, "options": {"grid_constructor": _UniformGrid(self.steps)}}


@dataclass(frozen=True)
class ODEResult:
    """States at the requested times, shape ``(len(times), n, ...)``, and the number of
    velocity evaluations (NFE) per batch, averaged over batches.

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


class _Counted(torch.nn.Module):
    def __init__(self, f: Callable) -> None:
        super().__init__()
        self.f, self.nfe = f, 0

    def forward(self, t: Tensor, state):
        self.nfe += 1
        return self.f(t, state)


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
        options: solver settings (:class:`ODEOptions`).

    Returns:
        :class:`ODEResult` with states of shape ``(len(times), n, ...)``.

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
        f = _Counted(lambda t, y: velocity(y, t))
        with torch.no_grad():
            outs.append(odeint(f, chunk, times, **options.kwargs(times)))
        nfes.append(f.nfe)
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
        options: solver settings (:class:`ODEOptions`).
        divergence: ``"exact"`` or ``"hutchinson"``.
        probes: number of Rademacher probes for Hutchinson; the reported standard error is
            the spread across probes divided by ``sqrt(probes)`` (``nan`` for one probe).
        generator: random source of the probes.

    Returns:
        :class:`LogDetResult`.

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
        if divergence == "exact":

            def rhs(t, state, _v=velocity):
                v, div = divergence_exact(_v, state[0], t)
                return v, div[:, None]
        else:
            eps = torch.randint(0, 2, (k, *chunk.shape), generator=generator).to(chunk) * 2 - 1

            def rhs(t, state, _v=velocity, _e=eps):
                return divergence_hutchinson(_v, state[0], t, _e)

        f = _Counted(rhs)
        zero = torch.zeros(chunk.shape[0], k, dtype=x.dtype, device=x.device)
        with torch.no_grad():
            traj_x, traj_l = odeint(f, (chunk, zero), times, **options.kwargs(times))
        xs.append(traj_x[-1])
        deltas.append(traj_l[-1])
        nfes.append(f.nfe)
    delta = torch.cat(deltas)
    mean = delta.mean(1)
    if divergence == "exact":
        stderr = torch.zeros_like(mean)
    elif k == 1:
        stderr = torch.full_like(mean, float("nan"))
    else:
        stderr = delta.std(1) / k**0.5
    return LogDetResult(torch.cat(xs), mean, stderr, sum(nfes) / len(nfes))


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
        options: solver settings (:class:`ODEOptions`).

    Returns:
        :class:`EnergyResult`.

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
        f = _Counted(rhs)
        zero = torch.zeros(chunk.shape[0], dtype=x.dtype, device=x.device)
        with torch.no_grad():
            traj_x, traj_e = odeint(f, (chunk, zero), times, **options.kwargs(times))
        xs.append(traj_x[-1])
        energies.append(traj_e[-1])
        nfes.append(f.nfe)
    return EnergyResult(torch.cat(xs), torch.cat(energies), sum(nfes) / len(nfes))
