"""AnnData in and out: fit a flow between cell populations and write its results back.

Single-cell data live in :class:`anndata.AnnData` objects. This module reads the samples a
flow works on from them, with the representation named as scanpy names it, and writes the
flow's outputs back:

- ``use_rep="X_pca"`` reads ``adata.obsm["X_pca"]`` (any ``.obsm`` key; ``"X"`` is ``.X``);
  ``layer="counts"`` reads ``adata.layers["counts"]``; neither reads ``.X``. A scipy sparse
  matrix is densified explicitly (``.toarray()``: ``n_obs x n_vars`` values in memory, so a
  reduced representation such as ``X_pca`` is the usual choice).
- ``condition_key="cell_type"`` reads a column of ``.obs`` as the condition of a conditional
  fit (:func:`sitransport.fit`'s ``condition=``): a categorical or string column gives labels
  (one learned embedding per category), a float column features.
- :func:`push_forward` and :func:`pull_back` write ``.obsm[key_added]``, :func:`log_prob`
  writes ``.obs[key_added]`` and its standard error ``.obs[key_added + "_stderr"]``.
  As in scanpy, ``copy=True`` (the default here) returns a new object and leaves the
  caller's alone; ``copy=False`` writes into ``adata`` and returns ``None``.

``anndata`` is an optional dependency (``pip install 'sitransport[anndata]'``), imported on
the first call, never by ``import sitransport``.

Example:
    >>> import anndata as ad
    >>> import numpy as np
    >>> import sitransport as st
    >>> rng = np.random.default_rng(0)
    >>> a0 = ad.AnnData(rng.normal(size=(200, 4)).astype(np.float32))
    >>> a1 = ad.AnnData(rng.normal(3.0, 1.0, size=(200, 4)).astype(np.float32))
    >>> flow = st.anndata.fit(a0, a1, steps=100, progress=False)
    >>> out = st.anndata.push_forward(flow, a0, key_added="X_moved")
    >>> out.obsm["X_moved"].shape, "X_moved" in a0.obsm  # the caller's object is untouched
    ((200, 4), False)
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from sitransport import fitting

if TYPE_CHECKING:
    from anndata import AnnData

    from sitransport.protocols import Flow

__all__ = ["fit", "log_prob", "pull_back", "push_forward", "representation"]

_EXTRA = "pip install 'sitransport[anndata]'"


def _anndata() -> Any:
    """The ``anndata`` module, or an ``ImportError`` naming the extra."""
    try:
        return importlib.import_module("anndata")
    except ImportError as err:
        raise ImportError(
            f"sitransport.anndata needs the optional dependency anndata: {_EXTRA}"
        ) from err


def _check_adata(adata: Any, name: str) -> Any:
    module = _anndata()
    if not isinstance(adata, module.AnnData):
        raise TypeError(f"{name} must be an anndata.AnnData, got {type(adata).__name__}")
    return adata


def _check_key(key: Any, name: str) -> str | None:
    if key is not None and not isinstance(key, str):
        raise TypeError(f"{name} must be a string or None, got {type(key).__name__}")
    return key


def _dense(x: Any) -> np.ndarray:
    """A numpy array of ``x``: scipy sparse matrices densified, data frames read."""
    if hasattr(x, "toarray"):  # scipy sparse matrix or array: densified explicitly
        return np.asarray(x.toarray())
    if hasattr(x, "to_numpy"):  # .obsm may hold pandas data frames
        return np.asarray(x.to_numpy())
    return np.asarray(x)


def _missing(kind: str, key: str, keys: Any) -> KeyError:
    return KeyError(f"{kind}={key!r} is not in the object; it has {sorted(keys)}")


def representation(adata: AnnData, *, use_rep: str | None = None, layer: str | None = None) -> Any:
    """The samples of ``adata`` as a dense ``(n_obs, d)`` numpy array, named as scanpy names them.

    Args:
        adata: an :class:`anndata.AnnData`.
        use_rep: a key of ``adata.obsm`` (``"X_pca"``, ``"X_scVI"``, ...) or ``"X"`` for
            ``adata.X``. Default ``None``: ``adata.X``, or ``layer``.
        layer: a key of ``adata.layers``, instead of ``adata.X``. Default ``None``.

    Returns:
        The array (its dtype kept; a scipy sparse matrix is densified with ``.toarray()``).

    Raises:
        ImportError: anndata is not installed (the message names the extra).
        TypeError: ``adata`` is not an AnnData; ``use_rep`` or ``layer`` not a string.
        ValueError: both ``use_rep`` and ``layer`` given.
        KeyError: ``use_rep`` or ``layer`` not in the object (the message lists its keys).

    Example:
        >>> import anndata as ad
        >>> import numpy as np
        >>> adata = ad.AnnData(np.zeros((3, 5), dtype=np.float32))
        >>> adata.obsm["X_pca"] = np.ones((3, 2))
        >>> representation(adata, use_rep="X_pca").shape, representation(adata).shape
        ((3, 2), (3, 5))
    """
    adata = _check_adata(adata, "adata")
    use_rep, layer = _check_key(use_rep, "use_rep"), _check_key(layer, "layer")
    if use_rep is not None and layer is not None:
        raise ValueError(
            f"give use_rep (an .obsm key) or layer (a .layers key), not both: got "
            f"use_rep={use_rep!r}, layer={layer!r}"
        )
    if layer is not None:
        if layer not in adata.layers:
            raise _missing("layer", layer, adata.layers.keys())
        return _dense(adata.layers[layer])
    if use_rep is None or use_rep == "X":
        return _dense(adata.X)
    if use_rep not in adata.obsm:
        raise _missing("use_rep", use_rep, adata.obsm.keys())
    return _dense(adata.obsm[use_rep])


def _obs_condition(adata: Any, key: str) -> np.ndarray:
    """The ``.obs`` column ``key`` as condition values: categories as their labels."""
    if key not in adata.obs.columns:
        raise _missing("condition_key", key, adata.obs.columns)
    column = adata.obs[key]
    if hasattr(column, "cat"):  # categorical: the category of each row
        codes = column.cat.codes.to_numpy()
        if (codes < 0).any():
            raise ValueError(
                f"condition_key={key!r}: {int((codes < 0).sum())} rows have a missing "
                "category; drop them or give them a category"
            )
        return np.asarray(column.cat.categories.to_numpy())[codes]
    values = column.to_numpy()
    if values.dtype == object:  # strings stored as objects
        values = values.astype(str)
    return values


def _is_anndata(x: Any) -> bool:
    return isinstance(x, _anndata().AnnData)


def _end(rho: Any, use_rep: str | None, layer: str | None) -> Any:
    return representation(rho, use_rep=use_rep, layer=layer) if _is_anndata(rho) else rho


def _conditions(rho0: Any, rho1: Any, key: str | None, kwargs: dict[str, Any]) -> Any:
    """``condition=`` for :func:`sitransport.fit` from ``condition_key`` (or the caller's)."""
    if key is None:
        return kwargs.pop("condition", None)
    if "condition" in kwargs:
        raise ValueError("give condition_key (an .obs column) or condition, not both")
    if not _is_anndata(rho1):
        raise ValueError(
            f"condition_key={key!r} reads a column of rho1's .obs: rho1 must be an AnnData, "
            f"got {type(rho1).__name__}"
        )
    c1 = _obs_condition(rho1, key)
    if _is_anndata(rho0):
        return (_obs_condition(rho0, key), c1)
    return c1


def fit(
    rho0: Any,
    rho1: Any,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    condition_key: str | None = None,
    **kwargs: Any,
) -> Flow:
    """:func:`sitransport.fit` between AnnData ends (either end may also be anything ``fit`` takes).

    Each AnnData end is read with :func:`representation` (``use_rep`` or ``layer``); the
    other arguments go to :func:`sitransport.fit` unchanged, so the flow is the one ``fit``
    returns on the arrays themselves (same seed, same numbers).

    Args:
        rho0: source cells (an AnnData), or ``"gaussian"``, samples, a distribution.
        rho1: target cells (an AnnData), or any end :func:`sitransport.fit` takes.
        use_rep: the ``.obsm`` key of both AnnData ends, e.g. ``"X_pca"`` (``"X"``:
            ``.X``). Default ``None``: ``.X`` (or ``layer``), densified if sparse.
        layer: a ``.layers`` key instead of ``.X``. Default ``None``.
        condition_key: an ``.obs`` column as the condition of a conditional fit: of
            ``rho1`` (``condition=c1``), or of both ends when both are AnnData
            (``condition=(c0, c1)``: pairs drawn within equal values). Categorical and string
            columns are labels, float columns features. Default ``None``: one map.
        **kwargs: :func:`sitransport.fit`'s keywords (``steps``, ``coupling``, ``seed``, ...).

    Returns:
        The fitted flow (as :func:`sitransport.fit`).

    Raises:
        ImportError: anndata is not installed (the message names the extra).
        KeyError: ``use_rep``, ``layer`` or ``condition_key`` not in an AnnData end.
        ValueError: ``condition_key`` with ``condition``, or without an AnnData ``rho1``; a
            categorical condition column with missing values; as :func:`sitransport.fit`.
        TypeError: as :func:`representation` and :func:`sitransport.fit`.

    Example:
        >>> import anndata as ad
        >>> import numpy as np
        >>> import pandas as pd
        >>> rng = np.random.default_rng(0)
        >>> cells = ad.AnnData(rng.normal(size=(300, 2)).astype(np.float32))
        >>> cells.obs["kind"] = pd.Categorical(rng.choice(["T", "B"], 300))
        >>> flow = fit("gaussian", cells, condition_key="kind", steps=50, progress=False)
        >>> flow.push_forward(np.zeros((1, 2)), condition="T").shape
        (1, 2)
    """
    _anndata()
    condition = _conditions(rho0, rho1, _check_key(condition_key, "condition_key"), kwargs)
    x0, x1 = _end(rho0, use_rep, layer), _end(rho1, use_rep, layer)
    if condition is not None:
        kwargs["condition"] = condition
    return fitting.fit(x0, x1, **kwargs)


def _rows_condition(adata: Any, condition_key: str | None, kwargs: dict[str, Any]) -> None:
    key = _check_key(condition_key, "condition_key")
    if key is None:
        return
    if "condition" in kwargs:
        raise ValueError("give condition_key (an .obs column) or condition, not both")
    kwargs["condition"] = _obs_condition(adata, key)


def _check_outputs(key_added: Any, copy: Any) -> None:
    """Refuse a bad ``key_added`` or ``copy`` before any solve."""
    if not isinstance(key_added, str):
        raise TypeError(f"key_added must be a string, got {type(key_added).__name__}")
    if not isinstance(copy, bool):
        raise TypeError(f"copy must be a bool, got {type(copy).__name__}")


def _transport(
    direction: str,
    flow: Flow,
    adata: AnnData,
    use_rep: str | None,
    layer: str | None,
    condition_key: str | None,
    key_added: str,
    copy: bool,
    kwargs: dict[str, Any],
) -> AnnData | None:
    _check_outputs(key_added, copy)
    x = representation(adata, use_rep=use_rep, layer=layer)
    _rows_condition(adata, condition_key, kwargs)
    out = getattr(flow, direction)(x, **kwargs)
    target = adata.copy() if copy else adata
    target.obsm[key_added] = np.asarray(out)
    return target if copy else None


def push_forward(
    flow: Flow,
    adata: AnnData,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    condition_key: str | None = None,
    key_added: str = "X_transported",
    copy: bool = True,
    **kwargs: Any,
) -> AnnData | None:
    """Push the cells of ``adata`` through ``flow`` (``rho0 -> rho1``) into ``.obsm[key_added]``.

    Args:
        flow: a fitted flow (its ``d`` the width of the representation).
        adata: the cells (source population), an :class:`anndata.AnnData`.
        use_rep: ``.obsm`` key of the representation (``"X"``: ``.X``). Default ``None``:
            ``.X`` (or ``layer``).
        layer: a ``.layers`` key instead of ``.X``. Default ``None``.
        condition_key: ``.obs`` column of each cell's condition (conditional flows).
            Default ``None``: no condition.
        key_added: the ``.obsm`` key written. Default ``"X_transported"``.
        copy: ``True`` (default): return a copy of ``adata`` with the result, the caller's
            object untouched; ``False``: write into ``adata`` and return ``None``.
        **kwargs: options of :meth:`~sitransport.TransportFlow.push_forward` (``ode``,
            ``nfe``).

    Returns:
        The new AnnData (``copy=True``) or ``None``.

    Raises:
        ImportError, TypeError, KeyError, ValueError: as :func:`representation`;
            ``key_added`` not a string or ``copy`` not a bool; as the flow's
            ``push_forward``.

    Example:
        >>> import anndata as ad
        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> adata = ad.AnnData(np.zeros((3, 4), dtype=np.float32))
        >>> adata.obsm["X_pca"] = np.zeros((3, 2))
        >>> out = push_forward(flow, adata, use_rep="X_pca")
        >>> out.obsm["X_transported"].round(4)[0], list(adata.obsm)
        (array([1., 1.]), ['X_pca'])
    """
    return _transport(
        "push_forward", flow, adata, use_rep, layer, condition_key, key_added, copy, kwargs
    )


def pull_back(
    flow: Flow,
    adata: AnnData,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    condition_key: str | None = None,
    key_added: str = "X_pulled_back",
    copy: bool = True,
    **kwargs: Any,
) -> AnnData | None:
    """Pull the cells of ``adata`` back through ``flow`` (``rho1 -> rho0``) into ``.obsm``.

    Args and Returns as :func:`push_forward` (``key_added`` default ``"X_pulled_back"``).

    Args:
        flow: a fitted flow.
        adata: the cells (target population), an :class:`anndata.AnnData`.
        use_rep: ``.obsm`` key of the representation. Default ``None``: ``.X`` (or ``layer``).
        layer: a ``.layers`` key instead of ``.X``. Default ``None``.
        condition_key: ``.obs`` column of each cell's condition (conditional flows).
            Default ``None``: no condition.
        key_added: the ``.obsm`` key written. Default ``"X_pulled_back"``.
        copy: ``True`` (default): return a copy; ``False``: write into ``adata``.
        **kwargs: options of :meth:`~sitransport.TransportFlow.pull_back`.

    Returns:
        The new AnnData (``copy=True``) or ``None``.

    Raises:
        ImportError, TypeError, KeyError, ValueError: as :func:`push_forward`.

    Example:
        >>> import anndata as ad
        >>> import numpy as np
        >>> import torch
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
        >>> adata = ad.AnnData(np.zeros((3, 2), dtype=np.float32))
        >>> pull_back(flow, adata).obsm["X_pulled_back"].round(4)[0]
        array([-1., -1.], dtype=float32)
    """
    return _transport(
        "pull_back", flow, adata, use_rep, layer, condition_key, key_added, copy, kwargs
    )


def log_prob(
    flow: Flow,
    adata: AnnData,
    *,
    use_rep: str | None = None,
    layer: str | None = None,
    condition_key: str | None = None,
    key_added: str = "log_prob",
    copy: bool = True,
    **kwargs: Any,
) -> AnnData | None:
    """Log-density of the learned ``rho1`` at each cell into ``.obs[key_added]`` (nats).

    The standard error of each value goes to ``.obs[key_added + "_stderr"]`` (zero for the
    exact divergence; see :meth:`~sitransport.TransportFlow.log_prob_estimate`).

    Args:
        flow: a fitted flow with a base density (``rho0`` ``"gaussian"`` or a distribution).
        adata: the cells, an :class:`anndata.AnnData`.
        use_rep: ``.obsm`` key of the representation. Default ``None``: ``.X`` (or ``layer``).
        layer: a ``.layers`` key instead of ``.X``. Default ``None``.
        condition_key: ``.obs`` column of each cell's condition (conditional flows).
            Default ``None``: no condition.
        key_added: the ``.obs`` column written. Default ``"log_prob"``.
        copy: ``True`` (default): return a copy; ``False``: write into ``adata``.
        **kwargs: options of :meth:`~sitransport.TransportFlow.log_prob_estimate`
            (``method``, ``probes``, ``seed``, ``ode``, ``batch_size``, ``progress``).

    Returns:
        The new AnnData (``copy=True``) or ``None``.

    Raises:
        ImportError, TypeError, KeyError, ValueError: as :func:`push_forward`; as the flow's
            ``log_prob_estimate`` (e.g. a flow without a base density).

    Example:
        >>> import anndata as ad
        >>> import numpy as np
        >>> from sitransport import TransportFlow
        >>> flow = TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(2,))
        >>> adata = ad.AnnData(np.zeros((2, 2), dtype=np.float32))
        >>> out = log_prob(flow, adata, method="exact", progress=False)
        >>> print(out.obs["log_prob"].to_numpy().round(4))  # rho1 = N(0, e^2 I): -log(2 pi) - 2
        [-3.8379 -3.8379]
    """
    _check_outputs(key_added, copy)
    x = representation(adata, use_rep=use_rep, layer=layer)
    _rows_condition(adata, condition_key, kwargs)
    estimate = getattr(flow, "log_prob_estimate", None)
    if estimate is None:
        raise TypeError(f"flow must have log_prob_estimate, got {type(flow).__name__}")
    est = estimate(x, **kwargs)
    target = adata.copy() if copy else adata
    target.obs[key_added] = np.asarray(est.log_prob)
    target.obs[f"{key_added}_stderr"] = np.asarray(est.stderr)
    return target if copy else None
