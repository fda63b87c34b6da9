r"""``TransportFlow``: a learned velocity field and everything one does with it.

A flow holds a velocity network :math:`v_t` in *normalised coordinates*
:math:`z = (x - m) / s` (one shift ``m`` and one scalar scale ``s`` shared by both ends, so
squared-Euclidean optimal transport and path energies map exactly: distances scale by ``s``).
The ODE :math:`\dot z = v_t(z)` transports ``rho0`` at ``t = 0`` to ``rho1`` at ``t = 1``.
Public methods take and return samples in the caller's coordinates and array type
(numpy -> numpy, torch -> torch on the same device and dtype, xarray -> xarray).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any, ClassVar, cast

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from sitransport._bases import Density, EmpiricalDensity, StandardNormal, as_density
from sitransport._io import (
    atomic_save,
    check_map_location,
    check_save_path,
    module_mismatch,
    plain,
    state_mismatch,
)
from sitransport._validation import (
    as_tensor,
    check_choice,
    check_in_range,
    check_positive,
    check_positive_int,
    check_times,
    torch_generator,
)
from sitransport.config import FitConfig
from sitransport.errors import CorruptFileError
from sitransport.interpolants import Interpolant, Normalized, get_interpolant, interpolant_names
from sitransport.ode import ODEOptions, integrate, integrate_energy, integrate_logdet

__all__ = ["LogProbEstimate", "Normalization", "PathEnergy", "TransportFlow", "TransportResult"]


#: The fewest distinct values per standard deviation of each end that the network's dtype
#: must resolve, in the caller's and the normalised coordinates (``fit`` refuses fewer).
_MIN_LEVELS = 100


@dataclass(frozen=True)
class Normalization:
    """Affine map ``z = (x - shift) / scale`` with a scalar ``scale`` (a similarity).

    Args:
        shift: the pooled mean, a finite float64 tensor of the sample shape (e.g. ``(d,)``).
        scale: the root-mean per-coordinate standard deviation, a finite float ``> 0``.

    Raises:
        ValueError: ``scale`` is not finite and positive, or ``shift`` is not finite.

    Example:
        >>> import torch
        >>> from sitransport.flow import Normalization
        >>> norm = Normalization(torch.tensor([1.0, 2.0], dtype=torch.float64), 2.0)
        >>> x = torch.tensor([[3.0, 2.0]], dtype=torch.float64)
        >>> norm.encode(x), norm.decode(norm.encode(x))
        (tensor([[1., 0.]], dtype=torch.float64), tensor([[3., 2.]], dtype=torch.float64))
    """

    shift: Tensor
    scale: float

    def __post_init__(self) -> None:
        if isinstance(self.scale, bool) or not isinstance(self.scale, (int, float)):
            raise TypeError(f"normalization scale must be a float, got {type(self.scale).__name__}")
        if not (math.isfinite(self.scale) and self.scale > 0):
            raise ValueError(f"normalization scale must be finite and > 0, got {self.scale!r}")
        if not isinstance(self.shift, Tensor) or not bool(torch.isfinite(self.shift).all()):
            raise ValueError(f"normalization shift must be a finite tensor, got {self.shift!r}")

    @classmethod
    def identity(cls, shape: tuple[int, ...]) -> Normalization:
        """The identity map (zero shift, unit scale) for samples of shape ``shape``.

        Args:
            shape: the sample shape, e.g. ``(d,)`` or ``(c, h, w)``.

        Example:
            >>> Normalization.identity((2,))
            Normalization(shift=tensor([0., 0.], dtype=torch.float64), scale=1.0)
        """
        return cls(torch.zeros(shape, dtype=torch.float64), 1.0)

    @classmethod
    def from_samples(
        cls,
        *samples: Tensor,
        names: tuple[str, ...] | None = None,
        dtype: torch.dtype | None = None,
    ) -> Normalization:
        """Pooled mean and root-mean per-coordinate variance of all ``samples``.

        With ``dtype`` (the network's), each sample set must also be resolvable in it: its
        values' squares must not overflow, and it must keep at least 100 distinct values per
        standard deviation both as given and in normalised coordinates (two ends far apart
        relative to their spreads, or of very different spreads, collapse to a few points).

        Args:
            *samples: sample sets, shape ``(n_i, ...)``, one per end.
            names: their names in error messages (default ``samples[i]``).
            dtype: the dtype the samples will be transported in (``None``: not checked).

        Raises:
            ValueError: all samples are identical (zero variance); the pooled mean or
                variance is not finite (it overflows float64); or ``dtype`` cannot resolve
                a sample set (the message names it, and ``dtype=torch.float64`` when that
                resolves it).

        Example:
            >>> import torch
            >>> x0 = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
            >>> x1 = torch.tensor([[0.0, 2.0], [2.0, 2.0]])
            >>> norm = Normalization.from_samples(x0, x1)  # both ends share one map
            >>> norm.shift.tolist(), round(norm.scale, 4)  # variance 4/3 in each coordinate
            ([1.0, 1.0], 1.1547)
        """
        names = names or tuple(f"samples[{i}]" for i in range(len(samples)))
        pooled = torch.cat([s.to(torch.float64) for s in samples])
        shift = pooled.mean(0)
        scale = float(pooled.var(0).mean().sqrt())
        what = f"the samples of {' and '.join(names)}"
        if not (math.isfinite(scale) and bool(torch.isfinite(shift).all())):
            top = float(pooled.abs().max())
            raise ValueError(
                f"cannot normalise {what}: their pooled mean or variance overflows float64 "
                f"(scale={scale!r}, largest magnitude {top:.3g}); rescale the data"
            )
        if not scale > 0:
            raise ValueError(
                f"cannot normalise {what}: all samples are identical (zero variance); pass "
                "normalize=False"
            )
        norm = cls(shift, scale)
        if dtype is not None:
            for s, name in zip(samples, names, strict=True):
                norm._check_resolution(s.to(torch.float64), name, dtype)
        return norm

    def _levels(self, x: Tensor, dtype: torch.dtype) -> float:
        """Distinct values of ``dtype`` per standard deviation of ``x``, the fewer of those
        in the caller's and the normalised coordinates."""
        spread = float(x.var(0).mean().sqrt()) if x.shape[0] > 1 else 0.0
        if spread == 0:
            return math.inf  # a point mass: nothing to resolve
        top = max(float(x.abs().max()), float((x - self.shift).abs().max()))
        return spread / (torch.finfo(dtype).eps * top)

    def _check_resolution(self, x: Tensor, name: str, dtype: torch.dtype) -> None:
        """Refuse sample sets ``dtype`` cannot hold: squares overflow, or fewer than
        ``_MIN_LEVELS`` values per standard deviation."""
        top = float(x.abs().max())
        fix = (
            "fit with dtype=torch.float64"
            if dtype != torch.float64 and self._fits(x, torch.float64)
            else "no floating dtype resolves it: rescale the data so that both ends have "
            "comparable spreads and offsets (e.g. standardise each end yourself)"
        )
        if top > math.sqrt(torch.finfo(dtype).max):
            raise ValueError(
                f"{name} has values up to {top:.3g}, whose squares overflow {dtype} (largest "
                f"{torch.finfo(dtype).max:.3g}): {fix}"
            )
        levels = self._levels(x, dtype)
        if levels < _MIN_LEVELS:
            raise ValueError(
                f"{name} cannot be resolved in {dtype} in the normalisation shared by both "
                f"ends (shift up to {float(self.shift.abs().max()):.3g}, scale "
                f"{self.scale:.3g}): {dtype} keeps only {levels:.3g} distinct values per "
                f"standard deviation of {name} (needs >= {_MIN_LEVELS}), so its samples "
                f"would collapse to a few points; {fix}"
            )

    def _fits(self, x: Tensor, dtype: torch.dtype) -> bool:
        top = float(x.abs().max())
        return top <= math.sqrt(torch.finfo(dtype).max) and self._levels(x, dtype) >= _MIN_LEVELS

    def encode(self, x: Tensor) -> Tensor:
        """Caller's coordinates to normalised ones, ``(x - shift) / scale``.

        Args:
            x: points in the caller's coordinates, shape ``(n, *shape)``; the result keeps their
                dtype.

        Example:
            >>> import torch
            >>> norm = Normalization(torch.tensor([1.0, -1.0]), 0.5)
            >>> norm.encode(torch.tensor([[1.0, 0.0]]))
            tensor([[0., 2.]])
        """
        return (x - self.shift.to(x)) / self.scale

    def decode(self, z: Tensor) -> Tensor:
        """Normalised coordinates back to the caller's, ``z * scale + shift``.

        Args:
            z: points in normalised coordinates, shape ``(n, *shape)``; the result keeps their
                dtype.

        Example:
            >>> import torch
            >>> norm = Normalization(torch.tensor([1.0, -1.0]), 0.5)
            >>> norm.decode(torch.tensor([[0.0, 2.0]]))
            tensor([[1., 0.]])
        """
        return z * self.scale + self.shift.to(z)


@dataclass(frozen=True)
class TransportResult:
    """Transported samples (caller's array type) and the ODE's function evaluations.

    Attributes:
        x: transported samples, shape ``(n, d)``, the caller's array type.
        nfe: velocity evaluations of the ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> result = flow.transport(np.ones((3, 2)))
        >>> type(result.x).__name__, result.x.shape, result.nfe > 0
        ('ndarray', (3, 2), True)
    """

    x: Any
    nfe: float


@dataclass(frozen=True)
class PathEnergy:
    r"""What :meth:`TransportFlow.path_energy` returns: end points ``x`` (caller's array type),
    per-sample path energies :math:`\int_0^1 |v_t(X_t)|^2 dt` (caller's coordinates, shape
    ``(n,)``) and the ODE's function evaluations.

    Attributes:
        x: end points of the paths, shape ``(n, d)``, the caller's array type.
        energy: per-sample path energies :math:`\int_0^1 |v_t(X_t)|^2 dt` in the caller's
            coordinates, shape ``(n,)``, same type.
        nfe: velocity evaluations of the ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> result = flow.path_energy(np.zeros((3, 2)))  # constant speed sqrt(2)
        >>> result.x[0], result.energy, result.nfe > 0
        (array([1., 1.]), array([2., 2., 2.]), True)
    """

    x: Any
    energy: Any
    nfe: float


@dataclass(frozen=True)
class LogProbEstimate:
    """Log-density estimates (nats), their standard errors (zero for the exact divergence,
    from the across-probe spread for Hutchinson, see :func:`~sitransport.ode.probe_stderr`)
    and the NFE of the augmented ODE.

    Attributes:
        log_prob: log-densities in nats, shape ``(n,)``, the caller's array type.
        stderr: their standard errors, shape ``(n,)``, same type (zeros for the exact divergence).
        nfe: velocity evaluations of the augmented ODE per batch, averaged over batches.

    Example:
        >>> import numpy as np
        >>> from sitransport.flow import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> est = flow.log_prob_estimate(np.zeros((2, 2)), method="exact")
        >>> np.round(est.log_prob, 4), est.stderr  # exact divergence: zero standard error
        (array([-3.8379, -3.8379]), array([0., 0.]))
    """

    log_prob: Any
    stderr: Any
    nfe: float


def _scalar_time(value: Any, name: str) -> float:
    """A single time in ``[0, 1]`` (``start``/``end`` of a solve), checked by ``check_times``."""
    t = check_times(value, name)
    if t.ndim != 0:
        raise ValueError(f"{name} must be a single time in [0, 1], got shape {tuple(t.shape)}")
    return float(t)


class TransportFlow:
    """A continuous-time transport map between ``rho0`` (``t = 0``) and ``rho1`` (``t = 1``).

    Usually made by :func:`sitransport.fit`; can be built directly from any velocity field,
    e.g. a closed-form one, to use the same machinery.

    Every method checks its samples first: a ``TypeError`` or ``ValueError`` naming the
    argument (``x``, ``y``, ``x0``, ``x1``) for a non-array, a non-float dtype, a wrong shape,
    NaN or infinite values, or values beyond the range of the network's dtype (e.g. ``1e39``
    for a float32 network).

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

    Raises:
        TypeError: ``velocity`` is not callable, or ``ode`` is not an
            :class:`~sitransport.ode.ODEOptions`.
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
        velocity: nn.Module | Callable[[Tensor, Tensor], Tensor],
        interpolant: str | Interpolant = "trig",
        *,
        base: Any = None,
        target: Any = None,
        shape: tuple[int, ...] | None = None,
        normalization: Normalization | None = None,
        ode: ODEOptions | None = None,
        config: FitConfig | None = None,
        history: xr.Dataset | None = None,
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

    def _v(self, z: Tensor, t: Tensor) -> Tensor:
        return self._velocity(z, t)

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
    def velocity(self, x: Any, t: Any) -> Any:
        """The velocity field in the caller's coordinates, ``s * v((x - m) / s, t)``.

        Args:
            x: points, shape ``(n, d)``.
            t: a time in ``[0, 1]`` or times of shape ``(n,)``.

        Returns:
            Velocities of the shape and array type of ``x``.

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: -z, "linear", shape=(2,))
            >>> flow.velocity(np.array([[1.0, 2.0], [0.0, -1.0]]), 0.5)
            array([[-1., -2.],
                   [-0.,  1.]])
        """
        xt, back, in_dtype = self._prepare(x, "x")
        tt = check_times(t, "t", n=xt.shape[0]).to(xt)
        self._eval_mode()
        with torch.no_grad():
            v = self._v(self._norm.encode(xt), tt) * self._norm.scale
        return back(v.to(in_dtype))

    def transport(
        self,
        x: Any,
        *,
        start: float = 0.0,
        end: float = 1.0,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
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

        Returns:
            :class:`TransportResult` with the end states and the NFE.

        Raises:
            TypeError: ``ode`` is not an :class:`ODEOptions` or ``nfe`` not an integer;
                ``start`` or ``end`` not a number.
            ValueError: both ``ode`` and ``nfe`` given, or ``nfe < 1``; ``start`` or ``end``
                outside ``[0, 1]``, or equal.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

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
        return self._solve(x, "x", start, end, ode, nfe)

    def _solve(
        self, x: Any, name: str, start: Any, end: Any, ode: ODEOptions | None, nfe: int | None
    ) -> TransportResult:
        """:meth:`transport` of the argument called ``name`` (``y`` for :meth:`pull_back`)."""
        start, end = _scalar_time(start, "start"), _scalar_time(end, "end")
        ts = torch.tensor([start, end])  # float32: also what float32 flows solve with
        if ts[0] == ts[1]:
            raise ValueError(
                f"start and end must differ (beyond float32 rounding), got start={start:g} "
                f"and end={end:g}"
            )
        options = self._options(ode, nfe)
        xt, back, in_dtype = self._prepare(x, name)
        self._eval_mode()
        res = integrate(self._v, self._norm.encode(xt), ts.to(xt), options)
        return TransportResult(back(self._norm.decode(res.states[-1]).to(in_dtype)), res.nfe)

    def path_energy(self, x: Any, *, ode: ODEOptions | None = None) -> PathEnergy:
        r"""Push ``x`` forward and integrate :math:`\int_0^1 |v_t(X_t)|^2 dt` along each path.

        Args:
            x: samples of ``rho0``, shape ``(n, d)``.
            ode: ODE settings (default: the flow's :attr:`ode`).

        Returns:
            A :class:`PathEnergy`: end points ``x``, per-sample path energies ``energy``
            (caller's coordinates, shape ``(n,)``) and ``nfe``. The mean energy over samples
            of ``rho0`` is the flow's kinetic energy.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
            >>> result = flow.path_energy(np.zeros((3, 2)))  # constant speed sqrt(2)
            >>> result.x[0], result.energy
            (array([1., 1.]), array([2., 2., 2.]))
        """
        xt, back, in_dtype = self._prepare(x, "x")
        self._eval_mode()
        res = integrate_energy(self._v, self._norm.encode(xt), 0.0, 1.0, self._options(ode))
        energy = res.energy * self._norm.scale**2
        x1 = back(self._norm.decode(res.x).to(in_dtype))
        return PathEnergy(x1, _back_1d(back, energy.to(in_dtype)), res.nfe)

    def push_forward(self, x: Any, *, ode: ODEOptions | None = None, nfe: int | None = None) -> Any:
        """Map samples of ``rho0`` to samples of ``rho1`` (solve ``t: 0 -> 1``).

        Args:
            x: samples of ``rho0``, shape ``(n, d)`` (numpy, torch or xarray).
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps, see
                :meth:`transport`). Default ``None``.

        Returns:
            Samples of ``rho1``, of the array type, dtype and device of ``x``.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

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
        return self.transport(x, start=0.0, end=1.0, ode=ode, nfe=nfe).x

    def pull_back(self, y: Any, *, ode: ODEOptions | None = None, nfe: int | None = None) -> Any:
        """Map samples of ``rho1`` to samples of ``rho0`` (solve ``t: 1 -> 0``).

        Args:
            y: samples of ``rho1``, shape ``(n, d)`` (numpy, torch or xarray).
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps, see
                :meth:`transport`). Default ``None``.

        Returns:
            Samples of ``rho0``, of the array type, dtype and device of ``y``.

        Raises:
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

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
        return self._solve(y, "y", 1.0, 0.0, ode, nfe).x

    def trajectory(
        self, x: Any, times: Any, *, ode: ODEOptions | None = None, nfe: int | None = None
    ) -> xr.DataArray:
        """States along the flow from ``x`` at ``times[0]`` through each of ``times``.

        Args:
            x: states at ``times[0]``, shape ``(n, d)``.
            times: 1-D monotone times in ``[0, 1]``, at least two.
            ode: ODE settings (default: the flow's :attr:`ode`).
            nfe: instead of ``ode``, a budget of velocity evaluations for the whole solve
                from ``times[0]`` to ``times[-1]`` (fixed steps, see :meth:`transport`);
                states at times between the steps are interpolated linearly. Default ``None``.

        Returns:
            ``xarray.DataArray`` with dims ``("time", "sample", "dim")`` and a ``time`` coordinate.

        Raises:
            ValueError: ``times`` not 1-D and strictly monotone; both ``ode`` and ``nfe``
                given, or ``nfe < 1``.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

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
        ts = check_times(times, "times")
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"times must be 1-D with at least 2 entries, got {tuple(ts.shape)}")
        options = self._options(ode, nfe)
        xt, _, _ = self._prepare(x, "x")
        diffs = torch.diff(ts.to(xt))  # in the dtype of the solve
        if not (bool((diffs > 0).all()) or bool((diffs < 0).all())):
            raise ValueError(
                f"times must be strictly increasing or strictly decreasing in {xt.dtype}, got "
                f"{ts.tolist()}"
            )
        self._eval_mode()
        res = integrate(self._v, self._norm.encode(xt), ts.to(xt), options)
        states = self._norm.decode(res.states).detach().cpu().numpy().astype(np.float64)
        dims = ("time", "sample", "dim") if len(self._shape) == 1 else None
        return xr.DataArray(
            states,
            dims=dims or ("time", "sample", *[f"axis{i}" for i in range(len(self._shape))]),
            coords={"time": ts.numpy().astype(np.float64)},
            attrs={"nfe": res.nfe, "method": options.method},
            name="trajectory",
        )

    def _denoiser(self) -> Callable | None:
        """The noise denoiser of a stochastic-interpolant flow, if it has one."""
        if self._interpolant.stochastic:
            return getattr(self._velocity, "denoiser", None)
        return None

    def _require_gaussian_base(self, what: str) -> None:
        if not self._interpolant.spatially_linear:
            raise ValueError(
                f"{what} needs a spatially linear interpolant (alpha x0 + beta x1); this flow's "
                f"path {self._interpolant!r} is not"
            )
        if self._denoiser() is not None:
            return  # stochastic interpolant: the score comes from the denoiser, any base
        if not isinstance(self._base, StandardNormal) or self._interpolant.stochastic:
            kind = "none" if self._base is None else self._base.kind
            raise ValueError(
                f"{what} needs a standard Gaussian base (fit with rho0='gaussian') and a "
                f"deterministic interpolant; this flow's base is {kind} with "
                f"{self._interpolant!r}"
            )

    def score(self, x: Any, t: Any, *, alpha_min: float = 1e-3) -> Any:
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

        Returns:
            Scores of the shape and array type of ``x``.

        Raises:
            ValueError: no Gaussian base, or ``t`` too close to 1 (the estimate is singular
                there; the message names the time); ``alpha_min`` not finite and ``> 0``.
            ValueError: the interpolant's denominator :math:`\beta\dot\alpha - \dot\beta\alpha`
                vanishes at ``t`` with :math:`\beta \neq 0` (named with the time; at ``t = 0``
                its limit is used).
            TypeError: ``alpha_min`` not a real number.

        Example:
            With ``rho1 = N(0, I)`` too, the velocity of ``trig`` is zero, every
            :math:`\rho_t` is ``N(0, I)`` and its score is :math:`-x`:

            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: 0 * z, "trig", base="gaussian", shape=(2,))
            >>> flow.score(np.array([[1.0, -2.0], [0.5, 1.5]]), 0.3).round(6)
            array([[-1. ,  2. ],
                   [-0.5, -1.5]])
        """
        from sitransport.score import score_from_velocity

        self._require_gaussian_base("score")
        alpha_min = check_positive(alpha_min, "alpha_min")
        xt, back, in_dtype = self._prepare(x, "x")
        tt = check_times(t, "t", n=xt.shape[0]).to(xt)
        self._eval_mode()
        denoiser = self._denoiser()
        if denoiser is not None:  # score = -eta_z / gamma_u in normalised coordinates u
            g = self._interpolant.gamma(tt)
            if bool((g < alpha_min).any()):
                raise ValueError(
                    f"the score from the denoiser divides by gamma(t), which is "
                    f"{float(g.min()):.3g} < {alpha_min:g}: it is singular at t = 0 and t = 1"
                )
            with torch.no_grad():
                eta = denoiser(self._norm.encode(xt), tt)
            g_x = self._path.gamma(tt) * self._norm.scale  # gamma(t) for files of version 2
            g_x = g_x.reshape(-1, *[1] * (xt.ndim - 1)) if g_x.ndim else g_x
            return back((-eta / g_x).to(in_dtype))
        with torch.no_grad():
            v = self._v(self._norm.encode(xt), tt) * self._norm.scale
        shift = self._version1_shift(xt)
        out = score_from_velocity(v, xt, tt, self._interpolant, shift, alpha_min=alpha_min)
        return back(out.to(in_dtype))

    def _sample_sde(
        self, x0: Tensor, eps: float | Callable, steps: int, scheme: str, gen: torch.Generator
    ) -> Tensor:
        from sitransport.score import denoiser_from_velocity, sde_integrate

        interp, norm = self._interpolant, self._norm
        p = self._param()
        x = x0.to(dtype=p.dtype if p is not None else torch.float64)
        shift = self._version1_shift(x)
        denoiser = self._denoiser()
        if denoiser is not None:
            # stochastic interpolant, in normalised coordinates u: eps_u(t) = eps0 gamma_u^2
            # (eps0 gamma^2 in the caller's), eps * score = -eps0 gamma_u eta_z stays bounded
            if callable(eps):
                raise TypeError("eps must be a float for stochastic-interpolant flows")
            eps0, path = float(eps), self._path

            def drift_z(z: Tensor, t: Tensor) -> Tensor:
                with torch.no_grad():
                    return self._v(z, t) - eps0 * path.gamma(t) * denoiser(z, t)

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
                v = self._v(norm.encode(y), t) * norm.scale
            ea = eps_over_alpha(t)
            if float(ea) == 0.0:
                return v
            return v - ea * denoiser_from_velocity(v, y, t, interp, shift)  # v + eps * score

        return sde_integrate(drift, eps_fn, x, 0.0, 1.0, steps, gen, scheme=scheme)

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
    ) -> np.ndarray:
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

        Returns:
            numpy array of shape ``(n, d)``, float64.

        Raises:
            ValueError: no base; bad ``method``, ``steps``, ``scheme``, ``eps`` or ``seed``
                (outside the range of a torch seed); both ``ode`` and ``nfe`` given,
                ``nfe < 1``, or ``nfe`` with ``method="sde"``.
            TransportError: the ODE or SDE solve failed (a non-finite state or velocity, or
                the ODE's step limit); the message names the time and what to try.

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
        """
        n = check_positive_int(n, "n")
        if method is None:
            method = self._config.sample_method if self._config is not None else "ode"
        check_choice(method, "method", ("ode", "sde"))
        if method == "sde" and nfe is not None:
            raise ValueError(
                f"nfe={nfe!r} sets the ODE solver's budget, but method='sde': pass steps= for "
                "the SDE's steps, or method='ode'"
            )
        options = self._options(ode, nfe) if method == "ode" else None
        if self._base is None:
            raise ValueError(
                "sample needs rho0, but this flow has no base: pass base= to TransportFlow, or "
                "to sitransport.load for flows saved with a torch Distribution base"
            )
        gen = torch_generator(seed)
        x0 = self._base.sample(n, gen)
        if method == "ode":
            return self.push_forward(x0.numpy(), ode=options)
        self._require_gaussian_base("sample(method='sde')")
        steps = check_positive_int(steps, "steps")
        check_choice(scheme, "scheme", ("euler", "heun"))
        if eps is None:
            eps = 4.0 if self._denoiser() is not None else 1.0
        if not callable(eps):
            check_positive(eps, "eps", allow_zero=True)
        self._eval_mode()
        out = self._sample_sde(x0, eps, steps, scheme, gen)
        return out.detach().cpu().to(torch.float64).numpy()

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
                (:func:`~sitransport.ode.probe_stderr`), divided by ``sqrt(probes)``. One
                probe measures no spread: its standard error is ``nan``, never zero. Default ``16``.
            seed: seed of the probes (default 0: repeated calls agree).
            ode: ODE settings (default: the flow's :attr:`ode`).
            batch_size: points integrated at once (default: ``ode.batch_size``). With an
                adaptive solver the step sizes are chosen per batch, so values depend on it
                at the level of the solver tolerance.
            progress: show a progress bar when there is more than one batch. Default ``True``.

        Returns:
            :class:`LogProbEstimate`: per-point log-densities (nats) and standard errors, shape
            ``(n,)`` in the caller's array type, and the NFE per batch (mean over batches).

        Raises:
            ValueError: the flow has no base density (``rho0`` given as samples); bad
                ``method``, ``probes`` or ``batch_size``.
            TransportError: the ODE solve failed (non-finite state or velocity, or the step limit
                ``ode.max_steps``); the message names the time and what to try.

        Example:
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> est = flow.log_prob_estimate(np.zeros((3, 2)), batch_size=2, progress=False)
            >>> print(np.round(est.log_prob, 4))  # rho1 = N(0, e^2 I): -log(2 pi) - 2
            [-3.8379 -3.8379 -3.8379]
        """
        check_choice(method, "method", ("auto", "exact", "hutchinson"))
        if self._base is None or not self._base.has_density:
            kind = "no base" if self._base is None else f"a {self._base.kind} base"
            raise ValueError(
                f"log_prob needs a density for rho0, but this flow has {kind}: the density of "
                "samples is unknown. Fit with rho0='gaussian' or a torch Distribution"
            )
        d = math.prod(self._shape)
        if method == "auto":
            method = "exact" if d <= 16 else "hutchinson"
        if method == "hutchinson":
            check_positive_int(probes, "probes")
        options = self._options(ode)
        if batch_size is not None:
            options = replace(options, batch_size=check_positive_int(batch_size, "batch_size"))
        if not isinstance(progress, bool):
            raise TypeError(f"progress must be a bool, got {type(progress).__name__} {progress!r}")
        yt, back, in_dtype = self._prepare(y, "y")
        self._eval_mode()
        generator = torch_generator(0 if seed is None else seed)
        lps, errs, nfes = [], [], []
        chunks = torch.split(yt, options.batch_size)
        for chunk in _progress(chunks, progress and len(chunks) > 1, "log_prob"):
            res = integrate_logdet(
                self._v,
                self._norm.encode(chunk),
                1.0,
                0.0,
                options,
                divergence=method,
                probes=probes,
                generator=generator,
            )
            x0 = self._norm.decode(res.x)
            lps.append(self._base.log_prob(x0.to(torch.float64)) + res.delta_logp.to(torch.float64))
            errs.append(res.stderr)
            nfes.append(res.nfe)
        lp, err = torch.cat(lps), torch.cat(errs)
        return LogProbEstimate(
            _back_1d(back, lp.to(in_dtype)),
            _back_1d(back, err.to(in_dtype)),
            float(np.mean(nfes)),
        )

    def log_prob(self, y: Any, **kwargs: Any) -> Any:
        """Log-density of the learned ``rho1`` at ``y``, shape ``(n,)``, in nats.

        Keyword arguments as in :meth:`log_prob_estimate` (``method``, ``probes``, ``seed``,
        ``ode``, ``batch_size``, ``progress``); use that method for the standard errors.

        Args:
            y: points, shape ``(n, d)`` (numpy, torch or xarray).
            **kwargs: options of :meth:`log_prob_estimate`: ``method``, ``probes``, ``seed``,
                ``ode``, ``batch_size``, ``progress``.

        Example:
            >>> import numpy as np
            >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> np.round(flow.log_prob(np.array([[0.0, 0.0], [np.e, 0.0]])), 4)  # N(0, e^2 I)
            array([-3.8379, -4.3379])
        """
        return self.log_prob_estimate(y, **kwargs).log_prob

    # -------------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> None:
        """Write the flow to ``path`` atomically (temporary file, flushed, then renamed).

        The file holds only :meth:`to_payload` (tensors and plain data, loaded with
        ``weights_only=True``) and its SHA-256, checked by :func:`sitransport.load`. Only
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
        atomic_save(self.to_payload(), path)

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
        net = self._velocity
        if not (isinstance(net, nn.Module) and isinstance(getattr(net, "config", None), dict)):
            raise TypeError(
                "only flows with a built-in sitransport network can be saved, got velocity "
                f"of type {type(net).__name__}; save its state_dict yourself"
            )
        _check_restorable(net, self._interpolant)
        base, target = _density_spec(self._base), _density_spec(self._target)
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "shape": list(self._shape),
            "network": dict(cast(Mapping[str, Any], net.config)),  # checked restorable above
            "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
            "interpolant": self._interpolant.spec(),
            "base": base,
            "target": target,
            "normalization": {"shift": self._norm.shift.cpu(), "scale": self._norm.scale},
            "ode": asdict(self._ode),
            "config": self._config.spec() if self._config is not None else {},
            "history": _history_to_plain(self._history),
        }

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
        device = check_map_location(map_location)
        given = get_interpolant(interpolant) if interpolant is not None else None
        where = "the payload" if source is None else repr(os.fspath(source))
        _check_header(payload, cls.FORMAT, cls.READABLE_VERSIONS, where)
        try:
            parts = _stored_parts(payload, given, stored_base=base is None)
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
            raise _damaged(where, err) from None
        net, shape = parts.pop("network"), parts["shape"]
        if base is not None:
            parts["base"] = as_density(base, "base", shape=shape)
        flow = cls(net.to(device), **parts)  # outside the try: out of memory is no damage
        if payload["version"] == 1:
            flow._use_version1_path()
        return flow

    def __repr__(self) -> str:
        base = "none" if self._base is None else self._base.kind
        return (
            f"TransportFlow(shape={self._shape}, interpolant={self._interpolant!r}, "
            f"base={base}, ode={self._ode.method})"
        )


def _density_spec(density: Density | None) -> dict[str, Any] | None:
    """Plain-data record of an end of the flow (samples included for empirical ends)."""
    if density is None:
        return None
    spec = density.spec()
    if isinstance(density, EmpiricalDensity):
        spec["samples"] = density.samples.detach().cpu()
    return spec


def _density_from_spec(spec: dict[str, Any] | None, shape: tuple[int, ...]) -> Density | None:
    if spec is None or spec["kind"] not in ("gaussian", "samples"):
        return None  # distributions, dequantised image sets: not stored with the flow
    if spec["kind"] == "gaussian":
        return StandardNormal(shape)
    samples = spec["samples"]
    if not (isinstance(samples, Tensor) and samples.is_floating_point()):
        raise TypeError(f"stored samples must be a float tensor, got {type(samples).__name__}")
    if tuple(samples.shape[1:]) != shape or samples.shape[0] < 1:
        raise ValueError(
            f"stored samples have shape {tuple(samples.shape)}, expected (n, *{shape})"
        )
    return EmpiricalDensity(samples)


def _check_restorable(net: nn.Module, path: Interpolant) -> None:
    """Refuse to save what :meth:`TransportFlow.from_payload` would rebuild as something
    else: a subclass or a modified copy of a built-in network or interpolant is saved under
    its parent's name."""
    from sitransport.nn import build_network

    try:
        with torch.device("meta"):  # no memory: the architecture only
            rebuilt_net = build_network(dict(cast(Mapping[str, Any], net.config)))
    except (TypeError, ValueError) as err:
        raise TypeError(
            f"only flows with a built-in sitransport network can be saved; the velocity "
            f"{type(net).__qualname__} has a config that sitransport.nn cannot rebuild: {err}"
        ) from None
    problem = module_mismatch(net, rebuilt_net)
    if problem is not None:
        raise ValueError(
            f"cannot save a flow whose network is {type(net).__qualname__}: {problem}, so the "
            f"file would load it as a plain {type(rebuilt_net).__name__}. Only the built-in "
            "networks of sitransport.nn, unmodified, can be saved; save the state_dict yourself"
        )
    rebuilt_path = get_interpolant(path.spec())  # TypeError for user callables
    problem = module_mismatch(path, rebuilt_path)
    if problem is not None:
        raise ValueError(
            f"cannot save a flow whose interpolant is {type(path).__qualname__}: {problem}, so "
            f"the file would load it as {type(rebuilt_path).__name__} with its alpha and beta. "
            f"Only the built-in interpolants ({', '.join(interpolant_names())}) can be saved "
            "as they are; save the network's state_dict and rebuild the flow yourself"
        )


def _progress(chunks: tuple[Tensor, ...], show: bool, desc: str) -> Any:
    """Iterate over batches, with a tqdm bar counting them when ``show``."""
    from tqdm.auto import tqdm

    return tqdm(chunks, desc=desc, unit="batch", disable=not show, leave=False)


def _back_1d(back: Callable, values: Tensor) -> Any:
    """Per-sample values in the caller's array type (xarray loses the ``dim`` axis)."""
    out = back(values)
    if isinstance(out, xr.DataArray):
        return xr.DataArray(out.values, dims=(out.dims[0],) if out.dims else ("sample",))
    return out


def _history_to_plain(history: xr.Dataset | None) -> dict[str, Any] | None:
    if history is None:
        return None
    out: dict[str, Any] = {"coords": {}, "vars": {}, "attrs": plain(dict(history.attrs))}
    for name, c in history.coords.items():
        out["coords"][str(name)] = _float64_copy(c.values)
    for name, v in history.data_vars.items():
        out["vars"][str(name)] = {"dims": list(v.dims), "data": _float64_copy(v.values)}
    return out


def _float64_copy(values: Any) -> Tensor:
    """A tensor owning a copy of ``values``: arrays of a loaded flow are read-only, and
    ``torch.from_numpy`` warns on those."""
    return torch.from_numpy(np.array(values, dtype=np.float64, copy=True))


def _history_fromplain(plain: dict[str, Any] | None) -> xr.Dataset | None:
    if plain is None:
        return None
    coords = {k: v.numpy() for k, v in plain["coords"].items()}
    data = {k: (tuple(v["dims"]), v["data"].numpy()) for k, v in plain["vars"].items()}
    return xr.Dataset(data, coords=coords, attrs=plain.get("attrs", {}))


def _damaged(where: str, err: BaseException) -> CorruptFileError:
    return CorruptFileError(f"{where} is a damaged sitransport file: {type(err).__name__}: {err}")


def _check_header(payload: Any, name: str, versions: tuple[int, ...], where: str) -> None:
    """A payload headed by the format ``name`` in one of the ``versions``."""
    if not isinstance(payload, dict) or payload.get("format") != name:
        raise CorruptFileError(f"{where} is not a sitransport flow file (no {name!r} header)")
    if payload.get("version") not in versions:
        raise CorruptFileError(
            f"{where} has format version {payload.get('version')}; this sitransport reads "
            f"versions {', '.join(map(str, versions))}"
        )


def _stored_parts(
    payload: dict[str, Any], interpolant: Interpolant | None, stored_base: bool
) -> dict[str, Any]:
    """The checked parts of a payload, as arguments of :class:`TransportFlow` (the network
    on the CPU; the stored base only if ``stored_base``)."""
    shape = _stored_shape(payload["shape"])
    net = _stored_network(payload["network"], payload["state_dict"], shape)
    path = interpolant
    if path is None:
        path = _stored_interpolant(payload["interpolant"], shape)
    return {
        "network": net,
        "interpolant": path,
        "shape": shape,
        "normalization": _stored_normalization(payload["normalization"], shape),
        "base": _density_from_spec(payload["base"], shape) if stored_base else None,
        "target": _density_from_spec(payload.get("target"), shape),
        "ode": ODEOptions(**payload["ode"]),
        "config": _stored_config(payload["config"], shape),
        "history": _history_fromplain(payload["history"]),
    }


def _stored_config(stored: Any, shape: tuple[int, ...]) -> FitConfig | None:
    """The file's :class:`FitConfig`: from its spec, or converted from the flat dict of
    files written before it (:meth:`FitConfig.from_legacy`; one that names no built-in
    object warns and gives ``None``); ``None`` for a flow built by hand (``{}``)."""
    if not isinstance(stored, dict):
        raise TypeError(f"the config record must be a dict, got {type(stored).__name__}")
    if not stored:
        return None
    if FitConfig.is_spec(stored):
        return FitConfig.from_spec(stored)
    try:
        return FitConfig.from_legacy(stored, shape=shape)
    except (TypeError, ValueError) as err:
        warnings.warn(
            f"the flow's config, written by an older sitransport, could not be converted "
            f"({err}); flow.config is None",
            stacklevel=2,
        )
        return None


#: No stored size (a width, a dimension, a number of terms) is larger than this.
_MAX_SIZE = 2**24
#: Keys of network descriptions that count layers.
_LAYER_COUNTS = ("depth", "num_res_blocks")


def _stored_shape(shape: Any) -> tuple[int, ...]:
    """The per-sample shape of a file: 1 (vectors) or 3 (images) positive integers."""
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3):
        raise ValueError(f"stored shape must be [d] or [c, h, w], got {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= _MAX_SIZE:
            raise ValueError(f"stored shape must hold integers in [1, {_MAX_SIZE}], got {shape!r}")
    return tuple(shape)


def _check_sizes(spec: Any, what: str) -> int:
    """Every integer of a stored description is at most :data:`_MAX_SIZE`; returns the
    number of layers the description asks for (layer counts times list lengths, summed over
    nested descriptions), which the caller compares with the tensors stored."""
    if isinstance(spec, (list, tuple)):
        return sum(_check_sizes(v, what) for v in spec)
    if isinstance(spec, int) and not isinstance(spec, bool) and abs(spec) > _MAX_SIZE:
        raise ValueError(f"stored {what} holds the size {spec}, above {_MAX_SIZE}")
    if not isinstance(spec, dict):
        return 0
    layers, nested = 1, 0
    for key, value in spec.items():
        nested += _check_sizes(value, what)
        if key in _LAYER_COUNTS and isinstance(value, int):
            layers *= max(value, 1)
        elif isinstance(value, (list, tuple)):
            layers *= max(len(value), 1)
    return layers + nested


def _stored_network(config: Any, state: Any, shape: tuple[int, ...]) -> nn.Module:
    """The network of a file, built only once its description is known to match the stored
    weights (so a crafted width cannot make it allocate more than the file holds)."""
    from sitransport.nn import build_network

    if not isinstance(config, dict) or not isinstance(state, dict):
        raise TypeError("the network record must be a description dict and a state dict")
    layers = _check_sizes(config, "network description")
    if layers > 4 * len(state) + 16:
        raise ValueError(
            f"the network description asks for ~{layers} layers but the file stores "
            f"{len(state)} tensors"
        )
    with torch.device("meta"):
        meta = build_network(config)
    problem = state_mismatch(state, meta)
    if problem is not None:
        raise ValueError(f"the network's weights do not match its description: {problem}")
    net_shape = getattr(meta, "shape", None) or ((config["dim"],) if "dim" in config else None)
    if net_shape is not None and tuple(net_shape) != shape:
        raise ValueError(f"the network takes samples of shape {tuple(net_shape)}, not {shape}")
    net = build_network(config)
    first = next(iter(state.values()), None)
    if first is not None:
        net = net.to(dtype=first.dtype)
    net.load_state_dict(state)
    return net


def _stored_normalization(norm: Any, shape: tuple[int, ...]) -> Normalization:
    """The file's normalisation: a finite float shift of the sample shape, a finite scale > 0."""
    shift, scale = norm["shift"], norm["scale"]
    if not (isinstance(shift, Tensor) and shift.is_floating_point()):
        raise TypeError(f"normalisation shift must be a float tensor, got {shift!r:.80}")
    if tuple(shift.shape) != shape or not torch.isfinite(shift).all():
        raise ValueError(
            f"normalisation shift must be finite, of shape {shape}; got shape {tuple(shift.shape)}"
        )
    if isinstance(scale, bool) or not isinstance(scale, (int, float)):
        raise TypeError(f"normalisation scale must be a number, got {scale!r:.80}")
    if not (math.isfinite(scale) and scale > 0):
        raise ValueError(f"normalisation scale must be finite and > 0, got {scale!r}")
    return Normalization(shift, float(scale))


def _stored_interpolant(spec: Any, shape: tuple[int, ...]) -> Interpolant:
    """The file's interpolant; learnable ones only once their stored coefficients or weights
    match the sizes they claim."""
    from sitransport.interpolants import NeuralPath

    if not isinstance(spec, dict):
        raise TypeError(f"interpolant record must be a dict, got {type(spec).__name__}")
    _check_sizes({k: v for k, v in spec.items() if k != "state"}, "interpolant")
    if spec.get("name") == "fourier":
        K, dim = spec.get("K"), spec.get("dim")
        for key in ("a", "b"):
            got = tuple(torch.as_tensor(spec.get(key), dtype=torch.float64).shape)
            if got != ((K,) if dim is None else (K, dim)):
                raise ValueError(f"fourier coefficients {key} have shape {got}, K={K}, dim={dim}")
    if spec.get("name") == "neural":
        kwargs = {k: v for k, v in spec.items() if k not in ("name", "state")}
        with torch.device("meta"):
            meta = NeuralPath(**kwargs)
        problem = state_mismatch(spec.get("state") or {}, meta.h)
        if problem is not None or (meta.dim,) != shape:
            raise ValueError(f"the neural path's weights do not match (dim {meta.dim}): {problem}")
    return get_interpolant(spec)
