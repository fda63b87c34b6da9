"""``TransportFlow``: a learned velocity field in normalised coordinates and what one does
with it. Its methods check their arguments, document them and delegate the bulky work to the
sibling modules (ODE solves, score and sampling, likelihood, payload), passing the flow."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, ClassVar, Literal, overload

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from sitransport._io import check_save_path
from sitransport._safefile import write_tree
from sitransport._validation import (
    as_tensor,
    check_finite_output,
    check_guidance,
    check_in_range,
    check_times,
)
from sitransport.config import FitConfig
from sitransport.ends.conditions import ConditionEncoder
from sitransport.ends.densities import Density, as_density
from sitransport.ends.normalization import Normalization
from sitransport.flow import external, integration, likelihood, sampling
from sitransport.flow.payload import read_payload, write_payload
from sitransport.flow.results import LogProbEstimate, PathEnergy, TransportResult
from sitransport.interpolants import Interpolant, Normalized, get_interpolant
from sitransport.ode import ODEOptions

__all__ = ["TransportFlow"]


class TransportFlow:
    """A continuous-time transport map between ``rho0`` (``t = 0``) and ``rho1`` (``t = 1``).

    Usually made by :func:`sitransport.fit`; can be built directly from any velocity field,
    e.g. a closed-form one, to use the same machinery.

    Every method checks its samples first: a ``TypeError`` or ``ValueError`` naming the
    argument (``x``, ``y``, ``x0``, ``x1``) for a non-array, a non-float dtype, a wrong shape,
    NaN or infinite values, or values beyond the range of the network's dtype (e.g. ``1e39``
    for a float32 network). And every method checks its result: one that comes out nan or
    inf from finite arguments (a normalisation, weights or path coefficients that are
    non-finite or so extreme that the result overflows) raises
    :class:`~sitransport.errors.NonFiniteOutputError`, a ``FloatingPointError`` naming the
    method and what to try.

    Args:
        velocity: ``v(z, t)`` in normalised coordinates: an ``nn.Module`` (saved with the flow
            if it is a built-in network) or any callable.
        interpolant: the interpolant it was trained with (name or object); needed by the
            score and path diagnostics. Default ``"trig"``.
        base: ``rho0``: ``"gaussian"``, a torch Distribution, samples ``(n, d)`` or ``None``.
        target: ``rho1`` the flow was fitted to (same kinds), kept for transport
            diagnostics and reflow; optional. Default ``None``.
        shape: per-sample shape ``(d,)``; inferred from ``base`` or the network when possible.
            Default ``None``: inferred.
        normalization: the map to normalised coordinates (identity if ``None``).
        ode: default :class:`~sitransport.ode.ODEOptions` (dopri5, atol = rtol = 1e-5).
        config: how the flow was fitted, a :class:`~sitransport.config.FitConfig` (read-only
            :attr:`config`; ``None``: built by hand).
        history: the training record (:attr:`history`). Default ``None``.
        condition: the conditions of a conditional flow, a
            :class:`~sitransport.ends.conditions.ConditionEncoder`: ``velocity`` is then
            ``v(z, t, c)`` of the encoder's codes, and every method takes ``condition=``.
            Default ``None``: unconditional.

    Raises:
        TypeError: ``velocity`` is not callable, or ``ode`` is not an
            :class:`~sitransport.ode.ODEOptions`, or ``condition`` not a ``ConditionEncoder``.
        ValueError: ``shape`` cannot be inferred, or ``base`` has another sample shape.

    Example:
        >>> import torch
        >>> import numpy as np
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> flow.push_forward(np.zeros((3, 2))).round(6).tolist()
        [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """

    #: Format name of the payload (:meth:`to_payload`), the header of a saved flow's file.
    FORMAT: ClassVar[str] = "sitransport.TransportFlow"
    #: Version of the payload that :meth:`to_payload` writes.
    VERSION: ClassVar[int] = 2
    #: Versions :meth:`from_payload` reads. Version 1 flows were trained on the path in
    #: normalised coordinates, which in the caller's is shifted by ``(1 - alpha - beta) m``:
    #: they are read with that path kept (scores and SDE samplers follow it).
    READABLE_VERSIONS: ClassVar[tuple[int, ...]] = (1, 2)

    def __init__(
        self,
        velocity: nn.Module | Callable[..., Tensor],
        interpolant: str | Interpolant = "trig",
        *,
        base: Any = None,
        target: Any = None,
        shape: tuple[int, ...] | None = None,
        normalization: Normalization | None = None,
        ode: ODEOptions | None = None,
        config: FitConfig | None = None,
        history: xr.Dataset | None = None,
        condition: ConditionEncoder | None = None,
    ) -> None:
        if not callable(velocity):
            raise TypeError(f"velocity must be callable v(z, t), got {type(velocity).__name__}")
        if shape is None and isinstance(base, Density):
            shape = base.shape
        net_shape = getattr(velocity, "shape", None)
        net_config = getattr(velocity, "config", None) or {}
        if shape is None and net_shape:  # image networks (U-Net)
            shape = tuple(net_shape)
        if shape is None and "dim" in net_config:
            shape = (net_config["dim"],)
        if shape is None and base is not None and not isinstance(base, str):
            shape = as_density(base, "base").shape
        if shape is None:
            raise ValueError("shape could not be inferred: pass shape=(d,)")
        self._shape = tuple(int(s) for s in shape)
        self._velocity = velocity
        self._interpolant = get_interpolant(interpolant)
        if base is None or isinstance(base, Density):
            self._base = base
        else:
            self._base = as_density(base, "base", shape=self._shape)
        if self._base is not None and self._base.shape != self._shape:
            raise ValueError(f"base has sample shape {self._base.shape}, expected {self._shape}")
        if target is None or isinstance(target, Density):
            self._target = target
        else:
            self._target = as_density(target, "target", shape=self._shape)
        self._norm = normalization or Normalization.identity(self._shape)
        self._path: Interpolant = Normalized(self._interpolant, self._norm.shift, self._norm.scale)
        if ode is not None and not isinstance(ode, ODEOptions):
            raise TypeError(f"ode must be an ODEOptions or None, got {type(ode).__name__} {ode!r}")
        self._ode = ode or ODEOptions()
        if config is not None and not isinstance(config, FitConfig):
            raise TypeError(
                f"config must be a sitransport.config.FitConfig or None, got "
                f"{type(config).__name__} (convert an old dict with FitConfig.from_legacy)"
            )
        self._config = config
        self._history = history
        if condition is not None and not isinstance(condition, ConditionEncoder):
            raise TypeError(
                f"condition must be a ConditionEncoder or None, got {type(condition).__name__}"
            )
        self._condition = condition

    # ----------------------------------------------------------------- read-only attributes
    @property
    def config(self) -> FitConfig | None:
        """How the flow was fitted (a frozen :class:`~sitransport.config.FitConfig`), or
        ``None`` for a flow built by hand."""
        return self._config

    @property
    def history(self) -> xr.Dataset | None:
        """xarray.Dataset | None: the training record, ``None`` for a flow built by hand.

        Per recorded step (dimension ``step``): ``loss`` (the quadratic loss G), ``fm_loss``
        (the flow-matching loss), ``kinetic``, ``lr``, ``grad_norm`` and ``wall_time``
        (seconds); per evaluation (dimension ``eval_step``), ``val_loss`` and
        ``val_fm_loss`` when data was held out, and the path coefficients ``path_a`` and
        ``path_b`` of a max–min fit. ``attrs`` hold values of the whole run (``seed``,
        ``lr_schedule_steps``; ``best_val_loss`` with ``restore_best``; ``ot_plan_solve_s``
        with the ``"global_ot"`` coupling).
        """
        return self._history

    @property
    def condition(self) -> ConditionEncoder | None:
        """The conditions of a conditional flow (its label set or the standardisation of its
        features, a :class:`~sitransport.ends.conditions.ConditionEncoder`); ``None`` for an
        unconditional flow."""
        return self._condition

    @property
    def interpolant(self) -> Interpolant:
        r"""The path :math:`x_t = \alpha x_0 + \beta x_1` in the caller's coordinates."""
        return self._interpolant

    @property
    def network_path(self) -> Interpolant:
        """The same path in the network's normalised coordinates ``(x - m) / s``
        (:class:`~sitransport.interpolants.Normalized`): what the network was trained on."""
        return self._path

    @property
    def base(self) -> Density | None:
        """``rho0``, the source the flow starts from."""
        return self._base

    @property
    def target(self) -> Density | None:
        """``rho1``, the target the flow was fitted to (``None`` if unknown)."""
        return self._target

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape, ``(d,)`` for vectors."""
        return self._shape

    @property
    def network(self) -> nn.Module | Callable:
        """The velocity field in normalised coordinates."""
        return self._velocity

    @property
    def dtype(self) -> torch.dtype | None:
        """dtype of the network's parameters (``None`` for a parameter-free callable)."""
        p = self._param()
        return p.dtype if p is not None else None

    @property
    def normalization(self) -> Normalization:
        return self._norm

    @property
    def ode(self) -> ODEOptions:
        return self._ode

    # ----------------------------------------------------------------------- internals
    def _use_version1_path(self) -> None:
        """Files of version 1: the network learned ``alpha u0 + beta u1 (+ gamma z)`` in
        normalised coordinates ``u``, i.e. ``alpha x0 + beta x1 + (1 - alpha - beta) m``
        (plus ``s gamma z``) in the caller's; scores and SDEs keep that path."""
        self._path = self._interpolant

    def _version1_shift(self, like: Tensor) -> Tensor | None:
        """``m`` where the path is version 1's ``alpha x0 + beta x1 + (1 - alpha - beta) m``
        in the caller's coordinates; ``None`` for the named path itself."""
        return None if isinstance(self._path, Normalized) else self._norm.shift.to(like)

    def _param(self) -> Tensor | None:
        if isinstance(self._velocity, nn.Module):
            return next(self._velocity.parameters(), None)
        return None

    def _prepare(self, x: Any, name: str) -> tuple[Tensor, Callable, torch.dtype]:
        t, back = as_tensor(x, name, ndim=1 + len(self._shape), dim=self._shape)
        p = self._param()
        dtype = p.dtype if p is not None else t.dtype
        device = p.device if p is not None else t.device
        check_in_range(t, name, dtype)  # e.g. 1e39 for a float32 network
        return t.to(device=device, dtype=dtype), back, t.dtype

    def _v(self, z: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        return self._velocity(z, t) if c is None else self._velocity(z, t, c)

    def _codes(self, condition: Any, n: int, like: Tensor) -> Tensor | None:
        """The network's codes of ``condition`` for ``n`` samples (on ``like``'s device and
        dtype), or ``None`` for an unconditional flow.

        Raises:
            ValueError: a conditional flow without a condition, an unconditional one with
                one, or a condition this flow cannot read (see ``ConditionEncoder.encode``).
        """
        enc = self._condition
        if enc is None:
            if condition is not None:
                raise ValueError(
                    "condition: this flow is unconditional (fitted without condition=), got "
                    f"a condition of type {type(condition).__name__}; fit with condition= to "
                    "learn a family of densities"
                )
            return None
        if condition is None:
            raise ValueError(
                f"condition: this flow is conditional ({enc!r}); pass condition= (one value "
                "for all samples, or one row per sample)"
            )
        return enc.encode(condition, n, dtype=like.dtype).to(like.device)

    def _guided(self, guidance: Any) -> Callable[..., Tensor]:
        r"""The velocity ``v(z, t, c)`` with classifier-free guidance of strength ``w``,
        :math:`(1 + w) v(z, t, c) - w v(z, t, arnothing)`; ``w = 0`` is :meth:`_v` itself.

        Raises:
            ValueError: ``w != 0`` for an unconditional flow, or for one trained without
                ``condition_dropout`` (its null condition was never learned).
        """
        w = check_guidance(guidance)
        if w == 0.0:
            return self._v
        enc = self._condition
        if enc is None:
            raise ValueError("guidance: this flow is unconditional; guidance needs a condition")
        dropout = self._config.training.condition_dropout if self._config is not None else None
        if dropout == 0.0:
            raise ValueError(
                f"guidance={w:g} needs the unconditional velocity, which this flow never "
                "learned: fit with training=TrainSettings(condition_dropout=0.1)"
            )

        def guided(z: Tensor, t: Tensor, c: Tensor) -> Tensor:
            n = z.shape[0]
            null = enc.null(n, dtype=c.dtype if c.is_floating_point() else z.dtype).to(c)
            tt = torch.cat([t, t]) if t.ndim == 1 else t
            both = self._velocity(torch.cat([z, z]), tt, torch.cat([c, null]))
            return (1 + w) * both[:n] - w * both[n:]

        return guided

    def _options(self, ode: ODEOptions | None, nfe: int | None = None) -> ODEOptions:
        """The solver of a call: ``ode``, or the fixed-step scheme of budget ``nfe``, or the
        flow's default."""
        if ode is not None and not isinstance(ode, ODEOptions):
            raise TypeError(f"ode must be an ODEOptions, got {type(ode).__name__}")
        if nfe is None:
            return ode or self._ode
        if ode is not None:
            raise ValueError(
                f"pass ode= or nfe=, not both: got ode={ode!r} and nfe={nfe!r} (nfe=k means "
                "ode=ODEOptions.budget(k))"
            )
        return ODEOptions.budget(nfe, batch_size=self._ode.batch_size)

    def _eval_mode(self):
        if isinstance(self._velocity, nn.Module):
            self._velocity.eval()

    # ------------------------------------------------------------------- public methods
    def velocity(self, x: Any, t: Any, *, condition: Any = None) -> Any:
        """The velocity field in the caller's coordinates, ``s * v((x - m) / s, t)``.

        Args:
            x: points, shape ``(n, d)``.
            t: a time in ``[0, 1]`` or times of shape ``(n,)``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            Velocities of the shape and array type of ``x``.

        Raises:
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: -z, "linear", shape=(2,))
            >>> flow.velocity(np.array([[1.0, 2.0], [0.0, -1.0]]), 0.5)
            array([[-1., -2.],
                   [-0.,  1.]])
        """
        xt, back, in_dtype = self._prepare(x, "x")
        tt = check_times(t, "t", n=xt.shape[0]).to(xt)
        codes = self._codes(condition, xt.shape[0], xt)
        self._eval_mode()
        with torch.no_grad():
            v = self._v(self._norm.encode(xt), tt, codes) * self._norm.scale
        return back(check_finite_output(v.to(in_dtype), "velocity", "the velocities"))

    def transport(
        self,
        x: Any,
        *,
        start: float = 0.0,
        end: float = 1.0,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> TransportResult:
        """Solve the flow's ODE from time ``start`` to ``end`` (either direction).

        Args:
            x: states at ``start``, shape ``(n, d)``.
            start: start time in ``[0, 1]``. Default ``0.0``.
            end: end time in ``[0, 1]``. Default ``1.0``.
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations: fixed steps of
                :meth:`ODEOptions.budget(nfe) <sitransport.ode.ODEOptions.budget>`
                (``rk4`` with ``nfe // 4`` steps; one step of ``euler``, ``midpoint`` or
                ``heun3`` for 1, 2, 3). Few evaluations suffice for straight paths
                (``coupling="exact_ot"``, reflow). Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            :class:`TransportResult` with the end states and the NFE.

        Raises:
            TypeError: ``ode`` is not an :class:`ODEOptions` or ``nfe`` not an integer;
                ``start`` or ``end`` not a number.
            ValueError: both ``ode`` and ``nfe`` given, or ``nfe < 1``; ``start`` or ``end``
                outside ``[0, 1]``, or equal.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: z, "linear", shape=(1,))  # x(t) = x e^t
            >>> result = flow.transport(np.ones((1, 1)), start=0.0, end=0.5)
            >>> round(float(result.x[0, 0]), 4)  # e^0.5
            1.6487
            >>> result = flow.transport(np.ones((1, 1)), nfe=4)  # one rk4 step
            >>> round(float(result.x[0, 0]), 4), result.nfe  # 1 + 1 + 1/2 + 1/6 + 1/24
            (2.7083, 4.0)
        """
        return integration.solve(self, x, "x", start, end, ode, nfe, condition=condition)

    def path_energy(
        self, x: Any, *, ode: ODEOptions | None = None, condition: Any = None
    ) -> PathEnergy:
        r"""Push ``x`` forward and integrate :math:`\int_0^1 |v_t(X_t)|^2 dt` along each path.

        Args:
            x: samples of ``rho0``, shape ``(n, d)``.
            ode: ODE settings (default: the flow's :attr:`ode`).
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            A :class:`PathEnergy`: end points ``x``, per-sample path energies ``energy``
            (caller's coordinates, shape ``(n,)``) and ``nfe``. The mean energy over samples
            of ``rho0`` is the flow's kinetic energy.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
            >>> result = flow.path_energy(np.zeros((3, 2)))  # constant speed sqrt(2)
            >>> result.x[0], result.energy
            (array([1., 1.]), array([2., 2., 2.]))
        """
        return integration.path_energy(self, x, ode, condition)

    def push_forward(
        self,
        x: Any,
        *,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> Any:
        """Map samples of ``rho0`` to samples of ``rho1`` (solve ``t: 0 -> 1``).

        Args:
            x: samples of ``rho0``, shape ``(n, d)`` (numpy, torch or xarray).
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps, see
                :meth:`transport`). Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            Samples of ``rho1``, of the array type, dtype and device of ``x``.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> import torch
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> flow.push_forward(np.array([[1.0, -1.0]])).round(4)  # x e
            array([[ 2.7183, -2.7183]])
            >>> flow.push_forward(torch.zeros(3, 2, dtype=torch.float32)).dtype
            torch.float32
            >>> flow.push_forward(np.array([[1.0, -1.0]]), nfe=1)  # one Euler step: x (1 + 1)
            array([[ 2., -2.]])
        """
        return integration.solve(
            self, x, "x", 0.0, 1.0, ode, nfe, "push_forward", condition=condition
        ).x

    def pull_back(
        self,
        y: Any,
        *,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> Any:
        """Map samples of ``rho1`` to samples of ``rho0`` (solve ``t: 1 -> 0``).

        Args:
            y: samples of ``rho1``, shape ``(n, d)`` (numpy, torch or xarray).
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps, see
                :meth:`transport`). Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            Samples of ``rho0``, of the array type, dtype and device of ``y``.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> x = np.array([[1.0, -1.0], [0.5, 2.0]])
            >>> np.allclose(flow.pull_back(flow.push_forward(x)), x, atol=1e-4)
            True
            >>> shift = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
            >>> shift.pull_back(np.ones((1, 2)), nfe=1)  # a straight path: one step is exact
            array([[0., 0.]])
        """
        return integration.solve(
            self, y, "y", 1.0, 0.0, ode, nfe, "pull_back", condition=condition
        ).x

    def trajectory(
        self,
        x: Any,
        times: Any,
        *,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> xr.DataArray:
        """States along the flow from ``x`` at ``times[0]`` through each of ``times``.

        Args:
            x: states at ``times[0]``, shape ``(n, d)``.
            times: 1-D monotone times in ``[0, 1]``, at least two.
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations for the whole solve
                from ``times[0]`` to ``times[-1]`` (fixed steps, see :meth:`transport`);
                states at times between the steps are interpolated linearly. Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            ``xarray.DataArray`` with dims ``("time", "sample", "dim")`` and a ``time`` coordinate.

        Raises:
            ValueError: ``times`` not 1-D and strictly monotone; both ``ode`` and ``nfe``
                given, or ``nfe < 1``.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
            >>> traj = flow.trajectory(np.zeros((4, 2)), times=np.linspace(0, 1, 3))
            >>> traj.dims, traj.shape
            (('time', 'sample', 'dim'), (3, 4, 2))
            >>> traj.sel(time=0.5).values[0]  # halfway along the unit-speed path
            array([0.5, 0.5])
            >>> traj = flow.trajectory(np.zeros((4, 2)), times=np.linspace(0, 1, 3), nfe=2)
            >>> traj.attrs["method"], traj.attrs["nfe"]
            ('midpoint', 2.0)
        """
        return integration.trajectory(self, x, times, ode, nfe, condition)

    def score(self, x: Any, t: Any, *, alpha_min: float = 1e-3, condition: Any = None) -> Any:
        r"""Score :math:`\nabla\log\rho_t(x)` of the interpolant's marginal, from the velocity.

        Gaussian base only (``rho0 = "gaussian"``): :math:`\nabla\log\rho_t = -\eta_0/\alpha`
        with :math:`\eta_0 = (\beta v - \dot\beta x) / (\beta\dot\alpha - \dot\beta\alpha)`
        (see :mod:`sitransport.score`), in the caller's coordinates.

        :math:`\rho_t` is the law of :math:`x_t = \alpha x_0 + \beta x_1` in the caller's
        coordinates, whatever the normalisation the flow was trained in (the network learns
        that path in normalised coordinates: :attr:`network_path`).

        Args:
            x: points, shape ``(n, d)``.
            t: a time or times of shape ``(n,)`` with :math:`\alpha(t) \ge` ``alpha_min``.
            alpha_min: smallest :math:`\alpha(t)` (or :math:`\gamma(t)` with a denoiser) the score
                may divide by, a finite float ``> 0``; nearer ``t = 1`` is refused. Default
                ``1e-3``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            Scores of the shape and array type of ``x``.

        Raises:
            ValueError: no Gaussian base, or ``t`` too close to 1 (the estimate is singular
                there; the message names the time); ``alpha_min`` not finite and ``> 0``.
            ValueError: the interpolant's denominator :math:`\beta\dot\alpha - \dot\beta\alpha`
                vanishes at ``t`` with :math:`\beta \neq 0` (named with the time; at ``t = 0``
                its limit is used).
            TypeError: ``alpha_min`` not a real number.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            With ``rho1 = N(0, I)`` too, the velocity of ``trig`` is zero, every
            :math:`\rho_t` is ``N(0, I)`` and its score is :math:`-x`:

            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: 0 * z, "trig", base="gaussian", shape=(2,))
            >>> flow.score(np.array([[1.0, -2.0], [0.5, 1.5]]), 0.3).round(6)
            array([[-1. ,  2. ],
                   [-0.5, -1.5]])
        """
        return sampling.score(self, x, t, alpha_min, condition)

    @overload
    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        ode: ODEOptions | None = None,
        method: str | None = None,
        eps: float | Callable | None = None,
        steps: int = 200,
        scheme: str = "heun",
        nfe: int | None = None,
        condition: Any = None,
        guidance: float = 0.0,
        return_log_prob: Literal[False] = False,
        divergence: str = "auto",
        probes: int = 16,
    ) -> np.ndarray: ...

    @overload
    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        ode: ODEOptions | None = None,
        method: str | None = None,
        eps: float | Callable | None = None,
        steps: int = 200,
        scheme: str = "heun",
        nfe: int | None = None,
        condition: Any = None,
        guidance: float = 0.0,
        return_log_prob: Literal[True],
        divergence: str = "auto",
        probes: int = 16,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def sample(
        self,
        n: int,
        *,
        seed: int | None = None,
        ode: ODEOptions | None = None,
        method: str | None = None,
        eps: float | Callable | None = None,
        steps: int = 200,
        scheme: str = "heun",
        nfe: int | None = None,
        condition: Any = None,
        guidance: float = 0.0,
        return_log_prob: bool = False,
        divergence: str = "auto",
        probes: int = 16,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        r"""Draw ``n`` samples of the learned ``rho1``: base draws pushed forward.

        With an empirical base (``rho0`` given as samples) the base draws are a resample,
        with replacement, of the stored ``rho0`` samples.

        ``method="sde"`` (Gaussian base, or a stochastic interpolant with its denoiser for any
        base) integrates
        :math:`dX = [v + \epsilon \nabla\log\rho_t]\,dt + \sqrt{2\epsilon}\,dW`, which has
        the same marginals as the ODE, in ``steps`` uniform steps of ``scheme``.

        Noise level of the SDE for a stochastic interpolant, why :math:`\epsilon_0 = 4`: in a
        direction where ``rho0`` has no spread (a low-rank source) the velocity is singular
        at ``t = 0`` and the marginals of the flow are not pinned down by its start; the noise
        restores them only at the rate :math:`2\epsilon/C_t`,
        :math:`C_t = \beta^2\sigma_1^2 + \gamma^2` the variance of :math:`x_t` there. The
        sample's variance in that direction reaches
        :math:`\sigma_1^2\,(1 - e^{-2\epsilon_0 I})`, :math:`I = \int_0^1 \gamma^2 / C_t\,dt`
        (tested): for the ``linear`` base, ``sin2`` with ``a = 1`` and
        :math:`\sigma_1 = 1`, :math:`I \approx 0.5`, so
        :math:`\epsilon_0 = 1` leaves 37% of the variance missing and :math:`\epsilon_0 = 4`
        about 2%. Larger values need finer ``steps``.

        Args:
            n: number of samples, an integer ``>= 1``.
            seed: seed of the base draws and of the SDE's noise, an integer in
                ``[0, 2**63 - 1]``; ``None``: fresh entropy. Default ``None``.
            ode: ODE settings of ``method="ode"``; ``None``: the flow's :attr:`ode`. Default
                ``None``.
            method: ``"ode"`` or ``"sde"``; ``None``: the fit's ``config.sample_method``
                (``"sde"`` after ``remedy="auto"`` on a low-rank source), ``"ode"`` for a
                flow without a config. Default ``None``.
            eps: noise level of the SDE. With a Gaussian base, a float :math:`\epsilon_0` for
                the schedule :math:`\epsilon(t) = \epsilon_0\alpha(t)^2` (vanishing at
                ``t = 1`` where the score is singular) or a callable ``eps(t)``; for a
                stochastic interpolant, a float :math:`\epsilon_0` for
                :math:`\epsilon(t) = \epsilon_0\gamma(t)^2` (see above). Default ``None``:
                :math:`\epsilon_0 = 1` with a Gaussian base, 4 for a stochastic interpolant.
            steps: number of uniform SDE steps (``method="sde"`` only), an integer ``>= 1``.
                Default ``200``.
            scheme: SDE scheme, ``"heun"`` (stochastic Heun) or ``"euler"``
                (Euler-Maruyama). Default ``"heun"``.
            nfe: ``method="ode"`` only: instead of ``ode``, a budget of velocity evaluations,
                solved with the fixed steps of
                :meth:`ODEOptions.budget(nfe) <sitransport.ode.ODEOptions.budget>` (see
                :meth:`transport`); not ``steps``, which counts SDE steps. Default ``None``.
            condition: a conditional flow's condition: one value for all ``n`` samples, or
                ``n`` rows; ``None`` (default) for an unconditional flow.
            guidance: classifier-free guidance strength ``w >= 0`` of a conditional flow
                fitted with ``TrainSettings(condition_dropout > 0)``: samples follow
                :math:`(1 + w) v(x, t, c) - w v(x, t, \varnothing)`. ``0`` (default) is the
                conditional flow exactly; larger ``w`` trades diversity for typicality, and
                the samples no longer follow the learned :math:`\rho_1(x | c)` (nor its
                :meth:`log_prob`).
            return_log_prob: also return each sample's log-density under the learned
                ``rho1``, from the same solve: the ODE augmented with the divergence, as in
                :meth:`log_prob` but forward, :math:`\log\rho_1(x_1) = \log\rho_0(x_0) -
                \int_0^1 \nabla\cdot v_t\,dt`; it agrees with :meth:`log_prob` of the samples
                to the solver's tolerance, at the cost of one :meth:`log_prob` call. Needs a
                base density, ``method="ode"`` and ``guidance=0``. Default ``False``.
            divergence: with ``return_log_prob``: ``"exact"`` (autograd trace),
                ``"hutchinson"`` or ``"auto"`` (exact for ``d <= 16``), as ``method`` of
                :meth:`log_prob_estimate`. Hutchinson log-densities are unbiased estimates
                (``probes`` Rademacher probes, drawn after the base draws from ``seed``),
                not exact values; for their standard errors, call
                :meth:`log_prob_estimate` on the samples (a second solve). Default ``"auto"``.
            probes: Hutchinson probes with ``return_log_prob``, an integer ``>= 1``.
                Default ``16``.

        Returns:
            numpy array of shape ``(n, d)``, float64; with ``return_log_prob``, the tuple
            ``(samples, log_p)`` with ``log_p`` of shape ``(n,)``, float64, in nats.

        Raises:
            ValueError: no base; bad ``method``, ``steps``, ``scheme``, ``eps`` or ``seed``
                (outside the range of a torch seed); both ``ode`` and ``nfe`` given,
                ``nfe < 1``, or ``nfe`` with ``method="sde"``; ``return_log_prob`` with a
                base without density, ``method="sde"`` or ``guidance != 0``; bad
                ``divergence`` or ``probes``, or either without ``return_log_prob``.
            TypeError: ``return_log_prob`` is not a bool.
            TransportError: the ODE or SDE solve failed (a non-finite state or velocity, or
                the ODE's step limit); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            The exact velocity of ``linear`` from ``N(0, I)`` to ``N(0, 4 I)``, where
            :math:`x_t \sim N(0, c_t I)`, :math:`c_t = (1 - t)^2 + 4 t^2`, is
            :math:`\dot c_t x / (2 c_t)`; the ODE and the SDE sample the same law:

            >>> v = lambda z, t: (5 * t - 1) / ((1 - t) ** 2 + 4 * t**2) * z
            >>> flow = TransportFlow(v, "linear", base="gaussian", shape=(2,))
            >>> y = flow.sample(4000, seed=0)
            >>> y.shape, y.dtype, round(float(y.std()), 1)
            ((4000, 2), dtype('float64'), 2.0)
            >>> y_sde = flow.sample(4000, seed=0, method="sde", steps=50)
            >>> round(float(y_sde.std()), 1)
            2.0
            >>> flow.sample(3, seed=0, nfe=8).shape  # two fixed rk4 steps
            (3, 2)

            With their log-densities, those of ``N(0, 4 I)``:

            >>> y, log_p = flow.sample(3, seed=0, return_log_prob=True)
            >>> exact = -np.log(8 * np.pi) - (y**2).sum(1) / 8
            >>> log_p.shape, bool(np.abs(log_p - exact).max() < 1e-4)
            ((3,), True)
        """
        request = sampling.LogProbRequest(return_log_prob, divergence, probes)
        return sampling.sample(
            self, n, seed, ode, method, eps, steps, scheme, nfe, condition, guidance, request
        )

    def log_prob_estimate(
        self,
        y: Any,
        *,
        method: str = "auto",
        probes: int = 16,
        seed: int | None = None,
        ode: ODEOptions | None = None,
        batch_size: int | None = None,
        progress: bool = True,
        condition: Any = None,
    ) -> LogProbEstimate:
        r"""Log-density of the learned ``rho1`` with its standard error.

        .. math::

            \log\rho_1(y) = \log\rho_0(X_{1\to0}(y)) - \int_0^1 \nabla\cdot v_t(X_{1\to t}(y))\,dt.

        Large test sets are evaluated ``batch_size`` points at a time (bounded memory), with a
        tqdm progress bar over the batches when there is more than one.

        Args:
            y: points, shape ``(n, d)``.
            method: ``"exact"`` (autograd trace, ``d`` backward passes per step),
                ``"hutchinson"`` (``probes`` Rademacher probes held fixed along each path,
                unbiased) or ``"auto"`` (exact for ``d <= 16``).
            probes: Hutchinson probes; the standard error is their spread, shrunk toward the
                spread pooled over the points of a batch
                (:func:`~sitransport.ode.probe_stderr`), divided by ``sqrt(probes)``: at least
                2 (one probe measures no spread; :meth:`log_prob` takes one). Default ``16``.
            seed: seed of the probes (default 0: repeated calls agree).
            ode: ODE settings (default: the flow's :attr:`ode`).
            batch_size: points integrated at once (default: ``ode.batch_size``). With an
                adaptive solver the step sizes are chosen per batch, so values depend on it
                at the level of the solver tolerance.
            progress: show a progress bar when there is more than one batch. Default ``True``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one label or
                feature vector for all samples, or one row per sample; ``None`` (default)
                for an unconditional flow.

        Returns:
            :class:`LogProbEstimate`: per-point log-densities (nats) and standard errors, shape
            ``(n,)`` in the caller's array type, and the NFE per batch (mean over batches).

        Raises:
            ValueError: the flow has no base density (``rho0`` given as samples); bad
                ``method`` or ``batch_size``; ``probes < 2`` for ``"hutchinson"``.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> est = flow.log_prob_estimate(np.zeros((3, 2)), batch_size=2, progress=False)
            >>> print(np.round(est.log_prob, 4))  # rho1 = N(0, e^2 I): -log(2 pi) - 2
            [-3.8379 -3.8379 -3.8379]
        """
        return likelihood.log_prob_estimate(
            self,
            y,
            "log_prob_estimate",
            True,
            method=method,
            probes=probes,
            seed=seed,
            ode=ode,
            batch_size=batch_size,
            progress=progress,
            condition=condition,
        )

    def log_prob(self, y: Any, **kwargs: Any) -> Any:
        """Log-density of the learned ``rho1`` at ``y``, shape ``(n,)``, in nats.

        Keyword arguments as in :meth:`log_prob_estimate` (``method``, ``probes``, ``seed``,
        ``ode``, ``batch_size``, ``progress``, ``condition``); use that method for the
        standard errors.
        Without them, one Hutchinson probe is enough (``probes=1``).

        Args:
            y: points, shape ``(n, d)`` (numpy, torch or xarray).
            **kwargs: options of :meth:`log_prob_estimate`: ``method``, ``probes``, ``seed``,
                ``ode``, ``batch_size``, ``progress``, ``condition`` (of a conditional flow).

        Raises:
            TypeError, ValueError: as :meth:`log_prob_estimate` (``probes=1`` allowed), or an
                unknown keyword.
            TransportError: the ODE solve failed; the message names the time and what to try.
            NonFiniteOutputError: the result is nan or inf (see the class's note).

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> np.round(flow.log_prob(np.array([[0.0, 0.0], [np.e, 0.0]])), 4)  # N(0, e^2 I)
            array([-3.8379, -4.3379])
        """
        return self._log_prob(y, "log_prob", **kwargs).log_prob

    def _log_prob(self, y: Any, caller: str, **kwargs: Any) -> LogProbEstimate:
        """:meth:`log_prob_estimate` for a function ``caller`` (named in errors) that uses no
        per-point standard error, so that one probe is allowed: :meth:`log_prob` and
        :func:`sitransport.images.bpd` (whose error bar is the spread over images)."""
        return likelihood.log_prob_estimate(self, y, caller, False, **kwargs)

    # -------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the flow to ``path`` atomically (temporary file, flushed, then renamed).

        The file holds :meth:`to_payload` with no pickle in it: a safetensors file of the
        tensors, the rest as JSON in its header, and their SHA-256, checked by
        :func:`sitransport.load` (loading runs no code). Only
        what can be rebuilt exactly can be saved: a built-in network and a built-in
        interpolant of exactly their class (a subclass would load as its parent). A torch
        Distribution base is recorded by name only and must be passed again to
        :func:`sitransport.load`.

        Args:
            path: file to write (``str`` or path-like, not a folder); its folder must exist and an
                existing file is replaced.

        Raises:
            TypeError: the velocity is not a built-in sitransport network, or the interpolant
                is made of user callables; ``path`` is not a path.
            ValueError: the network or the interpolant is a subclass (or a modified copy) of
                a built-in class, which the file would restore as the built-in one; ``path``
                is empty or a folder.
            FileNotFoundError: the folder of ``path`` does not exist.

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> import numpy as np
            >>> import sitransport as st
            >>> from sitransport.nn import MLPVelocity
            >>> flow = TransportFlow(MLPVelocity(2, width=8, depth=1), "trig", base="gaussian")
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     flow.save(Path(tmp) / "flow.sit")
            ...     again = st.load(Path(tmp) / "flow.sit")
            >>> x = np.zeros((2, 2))
            >>> np.array_equal(again.push_forward(x), flow.push_forward(x))
            True
        """
        check_save_path(path)  # before any work: a bad path is named as such
        write_tree(self.to_payload(), path)

    def to_payload(self) -> dict[str, Any]:
        """The flow as tensors and plain data: what :meth:`save` writes and
        :meth:`from_payload` reads.

        A dict headed by ``"format"`` (:attr:`FORMAT`) and ``"version"`` (:attr:`VERSION`),
        then ``shape``, ``network`` (the network's description) and ``state_dict``,
        ``interpolant`` (its spec), ``base`` and ``target`` (specs, samples included for
        empirical ends), ``normalization``, ``ode``, ``config`` (the
        :meth:`~sitransport.config.FitConfig.spec`, ``{}`` for none) and ``history``. Tensors are
        detached copies on the CPU.

        Raises:
            TypeError, ValueError: as :meth:`save`, for a network or an interpolant that
                cannot be rebuilt exactly.

        Example:
            >>> from sitransport.nn import MLPVelocity
            >>> flow = TransportFlow(MLPVelocity(2, width=8, depth=1), "trig", base="gaussian")
            >>> payload = flow.to_payload()
            >>> payload["format"], payload["version"], payload["shape"], payload["base"]
            ('sitransport.TransportFlow', 2, [2], {'kind': 'gaussian', 'shape': [2]})
        """
        return write_payload(self)

    @classmethod
    def from_payload(
        cls,
        payload: Any,
        *,
        base: Any = None,
        interpolant: str | Interpolant | None = None,
        map_location: str | torch.device = "cpu",
        source: str | os.PathLike | None = None,
    ) -> TransportFlow:
        """Rebuild a flow from :meth:`to_payload` (read by :func:`sitransport.load`).

        Every part (shape, normalisation, network and interpolant descriptions) is checked
        against the others before anything is allocated from it, so a crafted payload cannot
        make it allocate more than the payload holds. No code is run.

        Args:
            payload: the dict written by :meth:`to_payload`, of a version in
                :attr:`READABLE_VERSIONS`.
            base: ``rho0`` for flows saved with a torch Distribution base (not storable as
                data); it replaces the stored base. Default ``None``.
            interpolant: for flows trained with a custom interpolant (not storable as data).
                Default ``None``.
            map_location: device for the network, e.g. ``"cpu"`` or ``"cuda:0"``.
            source: where the payload was read from, named in error messages (the file's
                path for :func:`sitransport.load`). Default ``None``.

        Returns:
            The :class:`TransportFlow`.

        Raises:
            TypeError: ``map_location``, ``base`` or ``interpolant`` of a wrong type.
            ValueError: ``map_location`` is not a device of this machine, or ``base`` or
                ``interpolant`` is invalid.
            CorruptFileError: (a :class:`ValueError`) the payload is not a flow's, of another
                version, or its parts do not fit together; the message names ``source``.

        Example:
            >>> import numpy as np
            >>> from sitransport.nn import MLPVelocity
            >>> flow = TransportFlow(MLPVelocity(2, width=8, depth=1), "trig", base="gaussian")
            >>> again = TransportFlow.from_payload(flow.to_payload())
            >>> x = np.zeros((2, 2))
            >>> again.shape, np.array_equal(again.push_forward(x), flow.push_forward(x))
            ((2,), True)
        """
        return read_payload(cls, payload, base, interpolant, map_location, source)

    @classmethod
    def from_velocity(
        cls,
        fn: Callable[..., Tensor],
        base: Any = "gaussian",
        *,
        dim: int | tuple[int, ...] | None = None,
        convention: str = "plain",
        interpolant: str | Interpolant = "linear",
        target: Any = None,
        ode: ODEOptions | None = None,
    ) -> TransportFlow:
        r"""A flow of any velocity field ``v(x, t)``, e.g. a model trained with another library.

        ``fn`` works in the caller's coordinates (no normalisation) and receives ``t`` as a
        tensor of shape ``(n,)``, one time per sample, in the dtype and on the device of ``x``
        (write ``t[:, None]`` to broadcast). Time runs from ``base`` at ``t = 0`` to the target
        at ``t = 1`` (torchcfm's and flow_matching's direction too). ``convention`` adapts the
        call to torchcfm and Meta flow_matching models (see
        :mod:`sitransport.flow.external`); the peers are never imported. An ``nn.Module``
        sets the dtype and device of the solves and is put in eval mode when used; a plain
        callable is solved in the dtype of the points given (float64 for numpy), so a
        ``lambda`` around a float32 model wants float32 tensors, or pass the model itself
        with its ``convention``.

        What works: :meth:`sample`, :meth:`transport`, :meth:`push_forward`,
        :meth:`pull_back`, :meth:`path_energy`, :meth:`trajectory`, :meth:`velocity`,
        :meth:`log_prob` and :meth:`log_prob_estimate` (with a base density),
        :func:`~sitransport.metrics.transport_report` (pass ``x1``, or ``target``); the
        score and SDE sampler with a Gaussian base, using ``interpolant``. Not
        :meth:`save`: a file cannot hold a callable.

        Args:
            fn: the velocity field, an ``nn.Module`` or any callable, in ``convention``.
            base: ``rho0``: ``"gaussian"`` (standard normal, needs ``dim``), a torch
                Distribution (its ``log_prob`` is the base density) or samples ``(n, d)``.
                With samples, :meth:`sample` draws from them but :meth:`log_prob` has no base
                density and raises ``ValueError``: give a Distribution for likelihoods.
                Default ``"gaussian"``.
            dim: the dimension ``d`` (or a per-sample shape such as ``(c, h, w)``); inferred
                from a Distribution or samples. Default ``None``.
            convention: how ``fn`` is called: ``"plain"`` ``fn(x, t)``, ``"torchcfm_mlp"``
                ``fn(torch.cat([x, t[:, None]], 1))``, ``"torchcfm_unet"`` ``fn(t, x)`` or
                ``"flow_matching"`` ``fn(x=x, t=t)``. Default ``"plain"``.
            interpolant: the path ``fn`` was trained on, used by :meth:`score`, the SDE
                sampler and the loss bound of ``transport_report``. Default ``"linear"``
                (torchcfm's flow matchers with ``sigma=0`` and flow_matching's ``CondOT``).
                The score (and so the SDE) holds for a field of this path under the
                *independent* coupling from ``N(0, I)`` (torchcfm's I-CFM, flow_matching);
                for a coupled field (OT-CFM, a reflow) it is not the score of the flow's
                marginals: sample those with the ODE.
            target: samples of ``rho1``, the default ``x1`` of ``transport_report``.
                Default ``None``.
            ode: default ODE settings (:class:`~sitransport.ode.ODEOptions`). Default
                ``None``: dopri5, atol = rtol = 1e-5.

        Returns:
            The :class:`TransportFlow` (no :attr:`config`, no :attr:`history`).

        Raises:
            TypeError: ``fn`` not callable, ``convention`` not a string, ``dim`` not an
                integer (or tuple of them), ``ode`` not an ``ODEOptions``.
            ValueError: unknown ``convention`` (the message lists them); ``dim`` missing with
                ``base="gaussian"``, below 1 or unlike the base's; bad ``base`` samples.
                Later, from any method: ``fn`` returned a tensor of another shape than ``x``.

        Example:
            The linear path from ``N(0, I)`` to ``N(0, 4 I)`` under their OT coupling has
            :math:`v(x, t) = x / (1 + t)`:

            >>> import numpy as np
            >>> flow = TransportFlow.from_velocity(lambda x, t: x / (1 + t[:, None]), dim=2)
            >>> flow.push_forward(np.ones((1, 2))).round(4).tolist()
            [[2.0, 2.0]]
            >>> np.round(flow.log_prob(np.zeros((1, 2))), 4)  # log N(0; 0, 4 I)
            array([-3.2242])
        """
        return external.from_velocity(cls, fn, base, dim, convention, interpolant, target, ode)

    def __repr__(self) -> str:
        base = "none" if self._base is None else self._base.kind
        return (
            f"TransportFlow(shape={self._shape}, interpolant={self._interpolant!r}, "
            f"base={base}, ode={self._ode.method})"
        )
