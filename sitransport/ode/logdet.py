r"""Quantities integrated along the paths of a solve: the log-determinant of the map (the
integral of the divergence, exact or by Hutchinson probes) for the change of variables, and
the path energy :math:`\int |v|^2 dt` of each trajectory."""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
from torch import Tensor

from sitransport._validation import check_choice, check_positive_int
from sitransport.ode.divergence import divergence_exact, divergence_hutchinson, probe_stderr
from sitransport.ode.options import EnergyResult, LogDetResult, ODEOptions, Velocity, chunks
from sitransport.ode.solve import solve

__all__ = ["integrate_energy", "integrate_logdet"]


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
    condition: Tensor | None = None,
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
        condition: one row per state, passed along with it to ``velocity`` as ``v(x, t, c)``.
            Default ``None``.

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
    for chunk, v_chunk in chunks(velocity, x, condition, options.batch_size):
        rhs: Callable[[Tensor, tuple[Tensor, ...]], tuple[Tensor, Tensor]]
        if divergence == "exact":

            def exact(t, state, _v=v_chunk):
                v, div = divergence_exact(_v, state[0], t)
                return v, div[:, None]

            rhs = exact
        else:
            eps = torch.randint(0, 2, (k, *chunk.shape), generator=generator).to(chunk) * 2 - 1

            def probed(t, state, _v=v_chunk, _e=eps):
                return divergence_hutchinson(_v, state[0], t, _e)

            rhs = probed

        zero = torch.zeros(chunk.shape[0], k, dtype=x.dtype, device=x.device)
        (traj_x, traj_l), nfe = solve(rhs, (chunk, zero), times, options)
        xs.append(traj_x[-1])
        deltas.append(traj_l[-1])
        nfes.append(nfe)
    delta = torch.cat(deltas)
    mean = delta.mean(1)
    stderr = torch.zeros_like(mean) if divergence == "exact" else probe_stderr(delta)
    return LogDetResult(torch.cat(xs), mean, stderr, sum(nfes) / len(nfes))


def integrate_energy(
    velocity: Velocity,
    x: Tensor,
    t0: float,
    t1: float,
    options: ODEOptions | None = None,
    *,
    condition: Tensor | None = None,
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
        condition: one row per state, passed along with it to ``velocity`` as ``v(x, t, c)``.
            Default ``None``.

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

    sign = 1.0 if t1 >= t0 else -1.0

    def rhs(t: Tensor, state: tuple[Tensor, Tensor], _v: Velocity) -> tuple[Tensor, Tensor]:
        v = _v(state[0], t)
        return v, v.flatten(1).pow(2).sum(1) * sign

    xs, energies, nfes = [], [], []
    for chunk, v_chunk in chunks(velocity, x, condition, options.batch_size):
        zero = torch.zeros(chunk.shape[0], dtype=x.dtype, device=x.device)
        f = functools.partial(rhs, _v=v_chunk)
        (traj_x, traj_e), nfe = solve(f, (chunk, zero), times, options)
        xs.append(traj_x[-1])
        energies.append(traj_e[-1])
        nfes.append(nfe)
    return EnergyResult(torch.cat(xs), torch.cat(energies), sum(nfes) / len(nfes))
