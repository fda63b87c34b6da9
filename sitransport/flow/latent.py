"""The latent flow: :class:`LatentFlow` (a :class:`~sitransport.TransportFlow` in the
principal coordinates of low-rank data) and its :class:`PCAEncoder`. The math, the
coordinates and what ``log_prob`` means for ``k < d`` are on the public module's page,
:mod:`sitransport.latent`, which re-exports both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, overload

import numpy as np
import torch
import xarray as xr
from torch import Tensor

from sitransport._io import check_save_path
from sitransport._safefile import write_tree
from sitransport._validation import (
    as_tensor,
    check_bool,
    check_finite_output,
    check_fraction,
    check_positive_int,
)
from sitransport.config import FitConfig
from sitransport.ends.conditions import ConditionEncoder
from sitransport.errors import CorruptFileError
from sitransport.flow import TransportFlow
from sitransport.flow.payload import check_version
from sitransport.flow.results import LogProbEstimate
from sitransport.interpolants import Interpolant

__all__ = ["LatentFlow", "PCAEncoder"]


@dataclass(frozen=True)
class PCAEncoder:
    """Affine isometry to principal coordinates: ``encode(x) = (x - mean) @ components``.

    Attributes:
        mean: shape ``(d,)``.
        components: orthonormal columns, shape ``(d, k)``, by decreasing variance.
        explained: fraction of the total variance along each component, shape ``(k,)``.

    Example:
        >>> import torch
        >>> from sitransport.latent import PCAEncoder
        >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]])
        >>> enc = PCAEncoder.fit(x.double())  # the points lie on a line
        >>> enc.latent_dim, enc.mean.tolist(), enc.explained.tolist()
        (1, [2.0, 0.0, 1.0], [1.0])
    """

    mean: Tensor
    components: Tensor
    explained: Tensor

    @classmethod
    def fit(cls, x: Tensor, k: int | None = None, variance: float = 0.999) -> PCAEncoder:
        """Principal components of ``x``; ``k`` given, or the fewest that explain ``variance``.

        Args:
            x: samples, shape ``(n, d)`` (computed in float64).
            k: number of components, ``1 <= k <= d``; ``None``: chosen by ``variance``. Default
                ``None``.
            variance: fraction of the total variance the components must explain, in ``[0, 1]``;
                used only when ``k`` is ``None``. Default ``0.999``.

        Example:
            >>> x = torch.cat([torch.randn(500, 2), torch.zeros(500, 3)], 1).double()
            >>> PCAEncoder.fit(x).components.shape
            torch.Size([5, 2])
        """
        x = x.to(torch.float64)
        mean = x.mean(0)
        _, s, vt = torch.linalg.svd(x - mean, full_matrices=False)
        var = s**2 / max(x.shape[0] - 1, 1)
        frac = var / var.sum()
        if k is None:
            variance = check_fraction(variance, "variance", low=0.0, high=1.0 + 1e-12)
            k = int(torch.searchsorted(frac.cumsum(0), torch.tensor(variance - 1e-12)).item()) + 1
            k = min(k, x.shape[1])
        k = check_positive_int(k, "latent")
        if k > x.shape[1]:
            raise ValueError(f"latent must be at most the dimension {x.shape[1]}, got {k}")
        return cls(mean, vt[:k].T.contiguous(), frac[:k])

    @property
    def dim(self) -> int:
        return int(self.components.shape[0])

    @property
    def latent_dim(self) -> int:
        return int(self.components.shape[1])

    def encode(self, x: Tensor) -> Tensor:
        """Principal coordinates ``(x - mean) @ components``: ``(n, d)`` to ``(n, k)``.

        Args:
            x: ambient points, shape ``(n, d)``; the result keeps their dtype and device.

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> y = PCAEncoder.fit(x).encode(x)
            >>> y.shape, y.abs().flatten().tolist()  # the sign of a component is arbitrary
            (torch.Size([3, 1]), [2.0, 0.0, 2.0])
        """
        return (x - self.mean.to(x)) @ self.components.to(x)

    def decode(self, y: Tensor) -> Tensor:
        """Ambient points ``mean + y @ components.T``: ``(n, k)`` to ``(n, d)``.

        Args:
            y: principal coordinates, shape ``(n, k)``; the result keeps their dtype and device.

        Example:
            >>> import torch
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> enc = PCAEncoder.fit(x)
            >>> torch.allclose(enc.decode(enc.encode(x)), x)  # exact on the data's subspace
            True
        """
        return y @ self.components.to(y).T + self.mean.to(y)


class LatentFlow:
    """A :class:`~sitransport.TransportFlow` in PCA coordinates, used in ambient coordinates.

    Made by ``sitransport.fit(..., latent=k)`` or ``latent="pca"``.

    Args:
        flow: the flow in latent coordinates.
        encoder: the :class:`PCAEncoder`.
        source_is_latent: ``rho0`` lives in latent coordinates (a Gaussian base) rather
            than being ambient samples.

    Example:
        >>> import numpy as np
        >>> import sitransport as st
        >>> rng = np.random.default_rng(0)
        >>> x1 = rng.normal(size=(500, 2)) @ np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
        >>> flow = st.fit("gaussian", x1, latent="pca", steps=50, progress=False, seed=0)
        >>> flow.encoder.latent_dim, flow.sample(4, seed=0).shape  # rank 2 in R^3
        (2, (4, 3))
    """

    #: Format name of the payload (:meth:`to_payload`), the header of a saved latent flow.
    FORMAT: ClassVar[str] = "sitransport.LatentFlow"
    #: Version of the payload that :meth:`to_payload` writes.
    VERSION: ClassVar[int] = 1
    #: Versions :meth:`from_payload` reads.
    READABLE_VERSIONS: ClassVar[tuple[int, ...]] = (1,)

    def __init__(self, flow: TransportFlow, encoder: PCAEncoder, source_is_latent: bool) -> None:
        self._flow, self._enc, self._source_latent = flow, encoder, bool(source_is_latent)

    @property
    def flow(self) -> TransportFlow:
        """The flow in latent coordinates."""
        return self._flow

    @property
    def encoder(self) -> PCAEncoder:
        return self._enc

    @property
    def config(self) -> FitConfig | None:
        """How the flow was fitted (the latent flow's, with ``config.latent`` set)."""
        return self._flow.config

    @property
    def history(self) -> xr.Dataset | None:
        return self._flow.history

    @property
    def condition(self) -> ConditionEncoder | None:
        """The conditions of a conditional latent flow (``fit(..., condition=c, latent=k)``),
        the latent flow's :attr:`~sitransport.TransportFlow.condition`; ``None`` for an
        unconditional one. Every method then takes ``condition=``: one value for all samples
        or one row per sample."""
        return self._flow.condition

    @property
    def shape(self) -> tuple[int, ...]:
        """Ambient per-sample shape ``(d,)``."""
        return (self._enc.dim,)

    def _ambient_in(self, x: Any, name: str) -> tuple[Tensor, Any]:
        t, back = as_tensor(x, name, dim=self._enc.dim)
        return self._enc.encode(t.to(torch.float64)).to(t.dtype), back

    def _source_in(self, x: Any) -> Any:
        """Source samples in latent coordinates (encoded if ``rho0`` is ambient)."""
        return x if self._source_latent else self._ambient_in(x, "x")[0]

    def push_forward(self, x: Any, *, condition: Any = None, **kwargs: Any) -> Any:
        """``rho0`` samples (latent ``(n, k)`` for a Gaussian base, else ambient) to ambient
        samples of ``rho1``.

        Keyword arguments as in :meth:`TransportFlow.push_forward`.

        Args:
            x: samples of ``rho0``: latent ``(n, k)`` for a Gaussian base, else ambient ``(n, d)``.
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.push_forward` (``ode``, ``nfe``).

        Raises:
            NonFiniteOutputError: the result (the latent flow's, or its decoding) is nan or
                inf; the message names the method and what to try.

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> y = flow.push_forward(np.array([[0.0], [1.0]]))  # latent (n, 1) -> ambient
            >>> y.shape, np.round(y[:, 1:], 6).tolist()  # on the data's line
            ((2, 3), [[0.0, 1.0], [0.0, 1.0]])
        """
        z = self._source_in(x)
        out = self._flow.push_forward(z, condition=condition, **kwargs)
        y = self._enc.decode(torch.as_tensor(out).to(torch.float64))
        return check_finite_output(_like(x, y), "push_forward", "the decoded samples")

    def pull_back(self, y: Any, *, condition: Any = None, **kwargs: Any) -> Any:
        """Ambient samples of ``rho1`` to ``rho0`` (latent base coordinates for a Gaussian
        base, else ambient).

        Keyword arguments as in :meth:`TransportFlow.pull_back`.

        Args:
            y: ambient samples of ``rho1``, shape ``(n, d)`` (numpy, torch or xarray).
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.pull_back` (``ode``, ``nfe``).

        Raises:
            NonFiniteOutputError: the result (the latent flow's, or its decoding) is nan or
                inf; the message names the method and what to try.

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> z = flow.pull_back(x.numpy())  # ambient -> latent base coordinates
            >>> z.shape, np.abs(np.round(z[:, 0] * np.e, 4)).tolist()  # |y| e^-1 e
            ((3, 1), [2.0, 0.0, 2.0])
        """
        z, back = self._ambient_in(y, "y")
        out = self._flow.pull_back(z, condition=condition, **kwargs)
        if self._source_latent:
            return _like(y, torch.as_tensor(out))
        x = self._enc.decode(torch.as_tensor(out).to(torch.float64)).to(z.dtype)
        return back(check_finite_output(x, "pull_back", "the decoded samples"))

    @overload
    def sample(
        self,
        n: int,
        *,
        condition: Any = None,
        return_log_prob: Literal[False] = False,
        **kwargs: Any,
    ) -> np.ndarray: ...

    @overload
    def sample(
        self, n: int, *, condition: Any = None, return_log_prob: Literal[True], **kwargs: Any
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def sample(
        self, n: int, *, condition: Any = None, return_log_prob: bool = False, **kwargs: Any
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """``n`` ambient samples of the learned ``rho1``, shape ``(n, d)``.

        Keyword arguments as in :meth:`TransportFlow.sample`.

        Args:
            n: number of samples, an integer ``>= 1``.
            condition: a conditional flow's condition (see :attr:`condition`): one value for
                all ``n`` samples or ``n`` rows; ``None`` (default) for an unconditional flow.
            return_log_prob: also return the ambient log-densities of the samples, shape
                ``(n,)``, from the latent flow's solve (as :meth:`log_prob`, only when
                ``k = d``: the rotation has unit Jacobian). Default ``False``.
            **kwargs: options of :meth:`TransportFlow.sample` (``seed``, ``ode``, ``method``,
                ``guidance``, ``divergence``, ``probes``, ...).

        Returns:
            numpy array of shape ``(n, d)``; with ``return_log_prob``, the tuple
            ``(samples, log_p)``.

        Raises:
            ValueError: ``return_log_prob`` with ``k < d`` (the samples lie on a
                ``k``-dimensional subspace, where ``R^d`` has no density), or as
                :meth:`TransportFlow.sample`.
            TypeError: ``return_log_prob`` is not a bool.
            NonFiniteOutputError: the result (the latent flow's, or its decoding) is nan or
                inf; the message names the method and what to try.

        Example:
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> y = flow.sample(5, seed=0)
            >>> y.shape, y[:, 1:].round(6).tolist() == [[0.0, 1.0]] * 5
            ((5, 3), True)
        """
        if not check_bool(return_log_prob, "return_log_prob"):
            return self._decoded(self._flow.sample(n, condition=condition, **kwargs))
        self._check_full_rank("return_log_prob=True: ")
        z, log_p = self._flow.sample(n, condition=condition, return_log_prob=True, **kwargs)
        return self._decoded(z), log_p  # unit Jacobian: the latent density is the ambient one

    def _decoded(self, z: np.ndarray) -> np.ndarray:
        y = self._enc.decode(torch.from_numpy(z))
        return check_finite_output(y, "sample", "the decoded samples").numpy()

    def latent_log_prob(self, y: Any, *, condition: Any = None, **kwargs: Any) -> Any:
        """Log-density of the projected data ``W^T (y - mean)`` under the latent flow.

        Keyword arguments as in :meth:`TransportFlow.log_prob`.

        Args:
            y: ambient points, shape ``(n, d)`` (numpy, torch or xarray); projected onto the latent
                subspace.
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.log_prob` (``method``, ``probes``, ``seed``,
                ...).

        Raises:
            NonFiniteOutputError: the log-densities are nan or inf; the message names the
                method and what to try.

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> lp = flow.latent_log_prob(np.array([[2.0, 0.0, 1.0]]))  # the mean: y = 0
            >>> np.round(lp, 4)  # N(0, e^2) in 1-D: -log(2 pi) / 2 - 1
            array([-1.9189])
        """
        z, _ = self._ambient_in(y, "y")
        out = self._flow.log_prob(z, condition=condition, **kwargs)
        return out.numpy() if isinstance(y, np.ndarray) and isinstance(out, Tensor) else out

    def log_prob(self, y: Any, *, condition: Any = None, **kwargs: Any) -> Any:
        """Log-density on the ambient space; exists only when ``k = d`` (unit Jacobian).

        Keyword arguments as in :meth:`TransportFlow.log_prob`.

        Args:
            y: ambient points, shape ``(n, d)`` (numpy, torch or xarray).
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.log_prob` (``method``, ``probes``, ``seed``,
                ...).

        Raises:
            ValueError: ``k < d``: the learned law lives on a ``k``-dimensional subspace.
            NonFiniteOutputError: the log-densities are nan or inf; the message names the
                method and what to try.

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 3.0]]).double()  # full rank
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x, k=2), source_is_latent=True)
            >>> mean = x.mean(0, keepdim=True).numpy()
            >>> np.round(flow.log_prob(mean), 4)  # N(0, e^2 I) at 0: -log(2 pi) - 2
            array([-3.8379])
        """
        self._check_full_rank()
        return self.latent_log_prob(y, condition=condition, **kwargs)

    def _check_full_rank(self, prefix: str = "") -> None:
        """Raise the ``ValueError`` of :meth:`log_prob` (its message after ``prefix``) unless
        ``k = d``."""
        if self._enc.latent_dim < self._enc.dim:
            raise ValueError(
                f"{prefix}this latent flow has no density on R^{self._enc.dim}: its samples lie "
                "on a "
                f"{self._enc.latent_dim}-dimensional affine subspace (latent={self._enc.latent_dim}"
                "). Use latent_log_prob for the density of the projected data"
            )

    def log_prob_estimate(self, y: Any, *, condition: Any = None, **kwargs: Any) -> LogProbEstimate:
        """:meth:`log_prob` with standard errors; exists only when ``k = d``.

        Args:
            y: ambient points, shape ``(n, d)`` (numpy, torch or xarray).
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.log_prob_estimate` (``method``,
                ``probes``, ``seed``, ...).

        Returns:
            The latent flow's :class:`~sitransport.flow.LogProbEstimate` at the encoded points
            (the encoder has unit Jacobian for ``k = d``).

        Raises:
            ValueError: ``k < d`` (as :meth:`log_prob`).

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 1.0], [2.0, 1.0], [1.0, 3.0]]).double()  # full rank
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x, k=2), source_is_latent=True)
            >>> est = flow.log_prob_estimate(x.mean(0, keepdim=True).numpy(), method="exact")
            >>> np.round(est.log_prob, 4), est.stderr
            (array([-3.8379]), array([0.]))
        """
        self._check_full_rank()
        z, _ = self._ambient_in(y, "y")
        est = self._flow.log_prob_estimate(z, condition=condition, **kwargs)
        if not isinstance(y, np.ndarray):
            return est
        return LogProbEstimate(_numpy(est.log_prob), _numpy(est.stderr), est.nfe)

    def trajectory(self, x: Any, times: Any, *, condition: Any = None, **kwargs: Any) -> Any:
        """States along the flow from ``x`` at ``times[0]``, decoded to ambient coordinates.

        Args:
            x: states at ``times[0]``: for ``times[0] = 0`` samples of ``rho0`` as in
                :meth:`push_forward` (latent ``(n, k)`` for a Gaussian base), else ambient
                points ``(n, d)`` (encoded).
            times: 1-D monotone times in ``[0, 1]``, at least two.
            condition: a conditional flow's condition (see :attr:`condition`); ``None``
                (default) for an unconditional flow.
            **kwargs: options of :meth:`TransportFlow.trajectory` (``ode``, ``nfe``).

        Returns:
            ``xarray.DataArray`` with dims ``("time", "sample", "dim")``, ``dim`` of size
            ``d``: the latent states decoded (a Gaussian base's states at ``t = 0`` too).

        Example:
            >>> import numpy as np
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> flow.trajectory(np.zeros((2, 1)), np.linspace(0, 1, 3)).shape
            (3, 2, 3)
        """
        start = float(np.asarray(times, dtype=np.float64).reshape(-1)[0])
        z = self._source_in(x) if start == 0.0 else self._ambient_in(x, "x")[0]
        inner = self._flow.trajectory(z, times, condition=condition, **kwargs)
        states = torch.as_tensor(np.asarray(inner.values), dtype=torch.float64)
        y = self._enc.decode(states).numpy()
        check_finite_output(y, "trajectory", "the decoded states")
        coords = {"time": inner.coords["time"].values}
        return xr.DataArray(y, dims=inner.dims, coords=coords, attrs=dict(inner.attrs))

    def save(self, path: str | os.PathLike) -> None:
        """Write atomically with a checksum; :func:`sitransport.load` reads it back (no code
        executed) and verifies it.

        Args:
            path: file to write (``str`` or path-like, not a folder); its folder must exist.

        Raises:
            TypeError, ValueError: as :meth:`TransportFlow.save` (a network or interpolant
                that cannot be restored exactly; a bad ``path``).
            FileNotFoundError: the folder of ``path`` does not exist.

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> import numpy as np
            >>> import sitransport as st
            >>> x1 = np.random.default_rng(0).normal(size=(300, 2)) @ np.ones((2, 3))
            >>> flow = st.fit("gaussian", x1, latent=1, steps=10, progress=False)
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     flow.save(Path(tmp) / "latent.sit")
            ...     again = st.load(Path(tmp) / "latent.sit")
            >>> type(again).__name__, again.encoder.latent_dim, again.shape
            ('LatentFlow', 1, (3,))
        """
        check_save_path(path)
        write_tree(self.to_payload(), path)

    def to_payload(self) -> dict[str, Any]:
        """The latent flow as tensors and plain data: what :meth:`save` writes and
        :meth:`from_payload` reads.

        A dict headed by ``"format"`` (:attr:`FORMAT`) and ``"version"`` (:attr:`VERSION`),
        with the flow in latent coordinates (``"inner"``, its
        :meth:`~sitransport.TransportFlow.to_payload`) and the encoder (``"encoder"``, the
        record :meth:`from_plain` reads).

        Raises:
            TypeError, ValueError: as :meth:`~sitransport.TransportFlow.to_payload`.

        Example:
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> from sitransport.nn import MLPVelocity
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(MLPVelocity(1, width=8, depth=1), "trig", base="gaussian")
            >>> payload = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True).to_payload()
            >>> payload["format"], payload["inner"]["format"], payload["encoder"]["mean"].shape
            ('sitransport.LatentFlow', 'sitransport.TransportFlow', torch.Size([3]))
        """
        return {
            "format": self.FORMAT,
            "version": self.VERSION,
            "inner": self._flow.to_payload(),
            "encoder": {
                "mean": self._enc.mean.cpu(),
                "components": self._enc.components.cpu(),
                "explained": self._enc.explained.cpu(),
                "source_is_latent": self._source_latent,
            },
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
    ) -> LatentFlow:
        """Rebuild a latent flow from :meth:`to_payload` (read by :func:`sitransport.load`).

        Args:
            payload: the dict written by :meth:`to_payload`, of a version in
                :attr:`READABLE_VERSIONS`.
            base: ``rho0`` in latent coordinates, for flows saved with a torch Distribution
                base (not storable as data); it replaces the stored base. Default ``None``.
            interpolant: for flows trained with a custom interpolant (not storable as data).
                Default ``None``.
            map_location: device for the network, e.g. ``"cpu"`` or ``"cuda:0"``.
            source: where the payload was read from, named in error messages (the file's
                path for :func:`sitransport.load`). Default ``None``.

        Returns:
            The :class:`LatentFlow`.

        Raises:
            TypeError, ValueError: a bad ``base``, ``interpolant`` or ``map_location``.
            CorruptFileError: (a :class:`ValueError`) the payload is not a latent flow's, of
                another version, or its parts (the inner flow, the encoder) are damaged or do
                not fit together; the message names ``source``.

        Example:
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> from sitransport.nn import MLPVelocity
            >>> x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]]).double()
            >>> inner = TransportFlow(MLPVelocity(1, width=8, depth=1), "trig", base="gaussian")
            >>> flow = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
            >>> again = LatentFlow.from_payload(flow.to_payload())
            >>> again.shape, again.encoder.latent_dim
            ((3,), 1)
        """
        where = "the payload" if source is None else repr(os.fspath(source))
        if not isinstance(payload, dict) or payload.get("format") != cls.FORMAT:
            raise CorruptFileError(f"{where} is not a latent flow file (no {cls.FORMAT!r} header)")
        check_version(payload.get("version"), cls.READABLE_VERSIONS, where, "latent format")
        inner = TransportFlow.from_payload(
            payload.get("inner"),
            base=base,
            interpolant=interpolant,
            map_location=map_location,
            source=source,
        )
        try:
            return cls.from_plain(inner, payload["encoder"])
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptFileError(
                f"{where} is a damaged sitransport file: {type(err).__name__}: {err}"
            ) from None

    @classmethod
    def from_plain(cls, flow: TransportFlow, plain: dict[str, Any]) -> LatentFlow:
        """Rebuild from the latent flow and the encoder record of :meth:`to_payload`.

        Args:
            flow: the flow in latent coordinates.
            plain: a dict with tensors ``mean``, ``components``, ``explained`` and the bool
                ``source_is_latent``.

        Raises:
            KeyError: a part of the record is missing.
            TypeError: a part is not a float tensor (or ``source_is_latent`` not a bool).
            ValueError: the shapes do not fit together (``mean`` ``(d,)``, ``components``
                ``(d, k)``, ``explained`` ``(k,)`` with ``(k,)`` the flow's shape) or a value
                is not finite.

        Example:
            >>> import torch
            >>> from sitransport import TransportFlow
            >>> inner = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
            >>> plain = {
            ...     "mean": torch.zeros(2, dtype=torch.float64),
            ...     "components": torch.tensor([[1.0], [0.0]], dtype=torch.float64),
            ...     "explained": torch.ones(1, dtype=torch.float64),
            ...     "source_is_latent": True,
            ... }
            >>> LatentFlow.from_plain(inner, plain).shape
            (2,)
        """
        enc = PCAEncoder(plain["mean"], plain["components"], plain["explained"])
        _check_encoder(enc, flow.shape)
        if not isinstance(plain["source_is_latent"], bool):
            raise TypeError(f"source_is_latent must be a bool, got {plain['source_is_latent']!r}")
        return cls(flow, enc, plain["source_is_latent"])

    def __repr__(self) -> str:
        return f"LatentFlow(d={self._enc.dim}, latent={self._enc.latent_dim}, flow={self._flow!r})"


def _check_encoder(enc: PCAEncoder, latent_shape: tuple[int, ...]) -> None:
    """A stored encoder: finite float tensors whose shapes fit the latent flow's ``(k,)``."""
    for name in ("mean", "components", "explained"):
        value = getattr(enc, name)
        if not (isinstance(value, Tensor) and value.is_floating_point()):
            raise TypeError(f"encoder {name} must be a float tensor, got {type(value).__name__}")
        if not torch.isfinite(value).all():
            raise ValueError(f"encoder {name} holds non-finite values")
    k = latent_shape[0] if len(latent_shape) == 1 else -1
    d = enc.mean.shape[0] if enc.mean.ndim == 1 else -1
    shapes = (tuple(enc.mean.shape), tuple(enc.components.shape), tuple(enc.explained.shape))
    if k < 1 or d < k or shapes != ((d,), (d, k), (k,)):
        raise ValueError(
            f"encoder shapes mean {shapes[0]}, components {shapes[1]}, explained {shapes[2]} "
            f"do not fit a latent flow of shape {latent_shape}"
        )


def _numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, Tensor) else np.asarray(x)


def _like(ref: Any, out: Tensor) -> Any:
    """Return ``out`` as the array type of ``ref`` (numpy by default)."""
    if isinstance(ref, Tensor):
        return out.to(device=ref.device, dtype=ref.dtype)
    dtype = ref.dtype if isinstance(ref, np.ndarray) else np.float64
    return out.detach().cpu().numpy().astype(dtype, copy=False)
