"""Interfaces that several modules share, typed without importing the classes behind them.

:class:`Flow` is what every fitted flow offers: :class:`~sitransport.TransportFlow` and
:class:`~sitransport.latent.LatentFlow` both satisfy it, :func:`sitransport.fit` and
:func:`sitransport.load` return it, and the metrics and plots that need no more than it take
it. It is a :class:`typing.Protocol`: a class satisfies it by having the members (no
inheritance), checked statically by a type checker and at run time by ``isinstance`` (which
looks at the names only, not the signatures).

This module imports nothing from the package at run time, so any module can import it.

Example:
    >>> from sitransport import Flow, TransportFlow
    >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
    >>> isinstance(flow, Flow), isinstance("not a flow", Flow)
    (True, False)
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import numpy as np
    import xarray as xr

    from sitransport.config import FitConfig
    from sitransport.ode import ODEOptions

__all__ = ["Flow"]


@runtime_checkable
class Flow(Protocol):
    """A fitted transport map from ``rho0`` to ``rho1``: what every flow kind offers.

    Arrays go in as numpy, torch or xarray and come back as the caller's type. Kinds add
    their own members (:class:`~sitransport.TransportFlow`: ``score``, ``trajectory``,
    ``log_prob_estimate``, ``path_energy``, ...); code that needs those takes that
    class, code that needs only these takes a ``Flow``.

    Example:
        >>> import numpy as np
        >>> from sitransport import TransportFlow
        >>> from sitransport import Flow
        >>> def describe(flow: Flow) -> str:
        ...     return f"{type(flow).__name__} on {flow.shape}"
        >>> describe(TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,)))
        'TransportFlow on (2,)'
    """

    @property
    def shape(self) -> tuple[int, ...]:
        """Per-sample shape of ``rho1``'s samples, ``(d,)`` or ``(c, h, w)``."""
        ...

    @property
    def config(self) -> FitConfig | None:
        """The settings the flow was fitted with (recorded in saved files); ``None`` for a
        flow built by hand."""
        ...

    @property
    def history(self) -> xr.Dataset | None:
        """The training record (``None`` for a flow that was not trained here)."""
        ...

    def push_forward(
        self,
        x: Any,
        *,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> Any:
        """Map samples of ``rho0`` to samples of ``rho1`` (``t: 0 -> 1``).

        Args:
            x: samples of ``rho0``, shape ``(n, *shape)`` (numpy, torch or xarray).
            ode: ODE settings; ``None``: the flow's :attr:`ode`. Default ``None``.
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps); ``None``: use
                ``ode``. Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one value for
                all samples or one row per sample; ``None`` (default) for an unconditional flow.

        Example:
            >>> import numpy as np
            >>> from sitransport import TransportFlow
            >>> flow: Flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> np.round(flow.push_forward(np.array([[1.0, 0.0]])), 4)  # x -> e x
            array([[2.7183, 0.    ]])
        """
        ...

    def pull_back(
        self,
        y: Any,
        *,
        ode: ODEOptions | None = None,
        nfe: int | None = None,
        condition: Any = None,
    ) -> Any:
        """Map samples of ``rho1`` back to ``rho0`` (``t: 1 -> 0``).

        Args:
            y: samples of ``rho1``, shape ``(n, *shape)`` (numpy, torch or xarray).
            ode: ODE settings; ``None``: the flow's :attr:`ode`. Default ``None``.
            nfe: instead of ``ode``, a budget of velocity evaluations (fixed steps); ``None``: use
                ``ode``. Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one value for
                all samples or one row per sample; ``None`` (default) for an unconditional flow.

        Example:
            >>> import numpy as np
            >>> from sitransport import TransportFlow
            >>> flow: Flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> np.round(flow.pull_back(np.array([[np.e, 0.0]])), 4)  # y -> y / e
            array([[1., 0.]])
        """
        ...

    def sample(self, n: int, *, seed: int | None = None, condition: Any = None) -> np.ndarray:
        """``n`` samples of the learned ``rho1``, a numpy array of shape ``(n, *shape)``.

        Args:
            n: number of samples, an integer ``>= 1``.
            seed: seed of the base draws; ``None``: fresh randomness. Default ``None``.
            condition: a conditional flow's condition (``fit(..., condition=)``): one value for
                all samples or one row per sample; ``None`` (default) for an unconditional flow.

        Example:
            >>> import numpy as np
            >>> from sitransport import TransportFlow
            >>> flow: Flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> flow.sample(3, seed=0).shape
            (3, 2)
        """
        ...

    def log_prob(self, y: Any, **kwargs: Any) -> Any:
        """Log-density of the learned ``rho1`` at ``y``, shape ``(n,)``, in nats.

        Args:
            y: points of ``rho1``'s space, shape ``(n, *shape)`` (numpy, torch or xarray).
            **kwargs: the flow kind's own options (e.g. ``method``, ``probes``, ``seed`` of
                :meth:`TransportFlow.log_prob_estimate`).

        Example:
            >>> import numpy as np
            >>> from sitransport import TransportFlow
            >>> flow: Flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
            >>> np.round(flow.log_prob(np.zeros((1, 2))), 4)  # N(0, e^2 I) at 0
            array([-3.8379])
        """
        ...

    def save(self, path: str | os.PathLike) -> None:
        """Write the flow to ``path``; :func:`sitransport.load` reads it back.

        Args:
            path: file to write (``str`` or path-like); its folder must exist.

        Example:
            >>> import tempfile
            >>> from pathlib import Path
            >>> import sitransport as st
            >>> x1 = st.datasets.sample("moons", 200, seed=0)
            >>> flow: Flow = st.fit("gaussian", x1, steps=5, progress=False)
            >>> with tempfile.TemporaryDirectory() as tmp:
            ...     flow.save(Path(tmp) / "moons.sit")
            ...     isinstance(st.load(Path(tmp) / "moons.sit"), Flow)
            True
        """
        ...

    def to_payload(self) -> dict[str, Any]:
        """The flow as tensors and plain data (what :meth:`save` writes).

        Example:
            >>> import numpy as np
            >>> from sitransport import TransportFlow
            >>> from sitransport.nn import MLPVelocity
            >>> flow: Flow = TransportFlow(MLPVelocity(2, 8, 1), "linear", shape=(2,))
            >>> flow.to_payload()["format"]
            'sitransport.TransportFlow'
        """
        ...
