"""Input checks and array-type round trips: the one place user input is validated.

Every public entry point converts its array arguments with :func:`as_tensor`, which
validates them (type, dtype, rank, finiteness, sample count) and returns a function that
converts a result back to the caller's array type (numpy, torch or xarray). Nothing here
repairs bad input: it raises ``TypeError`` or ``ValueError`` naming the argument, what was
expected and what was received. Results get one check too, :func:`check_finite_output`: a
non-finite one raises :class:`~sitransport.errors.NonFiniteOutputError` naming the method.
"""

from __future__ import annotations

import inspect
import numbers
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import torch

from sitransport.errors import NonFiniteOutputError

__all__ = [
    "EIGEN_RTOL",
    "SYMMETRY_RTOL",
    "WEIGHT_TOL",
    "Seed",
    "as_tensor",
    "check_bool",
    "check_choice",
    "check_covariance",
    "check_device",
    "check_finite",
    "check_finite_output",
    "check_fraction",
    "check_guidance",
    "check_in_range",
    "check_keys",
    "check_mixture_weights",
    "check_pixels",
    "check_positive",
    "check_positive_int",
    "check_same_dim",
    "check_seed",
    "check_times",
    "numpy_generator",
    "resolve",
    "torch_generator",
]

_INT64_MAX = 2**63 - 1

#: A seed of a numpy random stream: an integer in ``[0, 2**63 - 1]``, a
#: :class:`numpy.random.Generator` (used as is, so it advances) or ``None`` (fresh entropy).
Seed = int | np.random.Generator | None


def _describe(x: Any) -> str:
    if isinstance(x, torch.Tensor):
        return f"torch.Tensor(shape={tuple(x.shape)}, dtype={x.dtype})"
    if isinstance(x, np.ndarray):
        return f"numpy.ndarray(shape={x.shape}, dtype={x.dtype})"
    return type(x).__name__


def _refuse_masked(x: Any, name: str) -> None:
    """Raise ``TypeError`` for a numpy masked array: its mask would be silently dropped."""
    if isinstance(x, np.ma.MaskedArray):
        raise TypeError(
            f"{name} is a numpy masked array, whose mask would be ignored; pass plain values "
            f"explicitly: {name}.filled(value), or the samples without masked entries, e.g. "
            f"{name}.data[~np.ma.getmaskarray({name}).any(axis=1)] for (n, d) samples"
        )


def _to_torch(x: Any, name: str) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """Convert numpy / torch / xarray input to a tensor and a function back to that type."""
    if isinstance(x, torch.Tensor):
        return x, lambda out: out
    _refuse_masked(x, name)
    try:  # xarray is a dependency, but keep the import local to this branch
        import xarray as xr
    except ImportError:  # pragma: no cover
        xr = None  # type: ignore[assignment]  # the optional-import idiom: None when absent
    if xr is not None and isinstance(x, xr.DataArray):
        dims, coords, attrs = x.dims, x.coords, dict(x.attrs)

        def back(out: torch.Tensor) -> Any:
            arr = out.detach().cpu().numpy()
            if arr.shape == x.shape:
                return xr.DataArray(arr, dims=dims, coords=coords, attrs=attrs)
            return xr.DataArray(arr, dims=dims[: arr.ndim] if arr.ndim <= len(dims) else None)

        return _numpy_to_tensor(x.values, name), back
    if isinstance(x, np.ndarray):
        return _numpy_to_tensor(x, name), lambda out: out.detach().cpu().numpy()
    hint = ""
    if type(x).__name__ == "AnnData":
        hint = (
            f" (for AnnData, pass its representation, e.g. {name}.obsm['X_pca'], or use "
            "sitransport.anndata, whose fit, push_forward, pull_back and log_prob take "
            "use_rep='X_pca')"
        )
    raise TypeError(
        f"{name} must be a numpy.ndarray, torch.Tensor or xarray.DataArray, got "
        f"{_describe(x)}{hint}"
    )


def _numpy_to_tensor(x: np.ndarray, name: str) -> torch.Tensor:
    if x.dtype.kind not in "f":
        raise TypeError(
            f"{name} must have a floating dtype (float32 or float64), got dtype {x.dtype}; "
            f"convert explicitly, e.g. {name}.astype(np.float64)"
        )
    if not x.dtype.isnative:  # e.g. big-endian '>f8': the same values, in this machine's order
        x = x.astype(x.dtype.newbyteorder("="))
    if x.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64, got dtype {x.dtype}")
    x = np.ascontiguousarray(x)
    # size-1 axes can keep negative strides; torch shares no read-only memory (it warns)
    if any(stride < 0 for stride in x.strides) or not x.flags.writeable:
        x = x.copy()
    return torch.from_numpy(x)


def check_finite(x: torch.Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite values, naming how many."""
    bad = ~torch.isfinite(x)
    if bool(bad.any()):
        n_nan = int(torch.isnan(x).sum())
        n_inf = int(bad.sum()) - n_nan
        raise ValueError(
            f"{name} must be finite, got {n_nan} NaN and {n_inf} infinite values out of {x.numel()}"
        )


#: What to try when a result is non-finite (every :class:`NonFiniteOutputError` says it).
_OUTPUT_ADVICE = (
    "What to try: check the flow's normalization (flow.normalization: a finite shift and a "
    "moderate scale) and its network's weights for nan, inf or extreme values (e.g. a file "
    "from an untrusted source, or training with too large an lr), and a learned path's "
    "coefficients (flow.interpolant); arguments far from the data the flow was fitted to "
    "can overflow: fit with dtype=torch.float64 for a wider range"
)

Result = TypeVar("Result", torch.Tensor, np.ndarray, float)


def check_finite_output(value: Result, method: str, what: str) -> Result:
    """Return ``value`` (a tensor, an array or a float), the result of ``method``, if it is
    finite; else raise :class:`~sitransport.errors.NonFiniteOutputError` naming ``method``,
    ``what`` the value is and what to try. One ``isfinite`` pass when it is finite.

    Example:
        >>> scores = torch.tensor([1.0, float("inf")])
        >>> check_finite_output(scores, "score", "the scores")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        sitransport.errors.NonFiniteOutputError: score produced non-finite values (0 NaN and 1 ...
    """
    x = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    if bool(torch.isfinite(x).all()):
        return value
    n_nan = int(torch.isnan(x).sum())
    n_inf = int((~torch.isfinite(x)).sum()) - n_nan
    raise NonFiniteOutputError(
        f"{method} produced non-finite values ({n_nan} NaN and {n_inf} infinite out of "
        f"{x.numel()}) in {what}, from finite arguments. {_OUTPUT_ADVICE}"
    )


def check_in_range(x: torch.Tensor, name: str, dtype: torch.dtype) -> None:
    """Raise ``ValueError`` if ``x`` holds values beyond what ``dtype`` can represent (e.g.
    1e39 for a float32 network), naming ``name`` and the fix.

    Example:
        >>> big = torch.tensor([1e39], dtype=torch.float64)
        >>> check_in_range(big, "x", torch.float32)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: x has values up to 1e+39, beyond the range of the flow's torch.float32 ...
    """
    if not dtype.is_floating_point or not x.dtype.is_floating_point:
        return
    peak = float(x.detach().abs().max()) if x.numel() else 0.0  # read, not differentiated
    if peak > torch.finfo(dtype).max:
        raise ValueError(
            f"{name} has values up to {peak:.3g}, beyond the range of the flow's {dtype} "
            f"network ({torch.finfo(dtype).max:.3g}); rescale the data, or fit with "
            "dtype=torch.float64"
        )


def check_pixels(x: Any, name: str, levels: int) -> None:
    """Raise unless ``x`` is an integer numpy array or tensor of images ``(n, ...)`` with
    values in ``{0, ..., levels - 1}`` (quantised pixels, before dequantisation)."""
    _refuse_masked(x, name)
    if isinstance(x, np.ndarray):
        kind_ok, lo, hi = x.dtype.kind in "ui", x.min(initial=0), x.max(initial=0)
    elif isinstance(x, torch.Tensor):
        kind_ok = not (torch.is_floating_point(x) or torch.is_complex(x) or x.dtype == torch.bool)
        lo = int(x.min()) if x.numel() else 0
        hi = int(x.max()) if x.numel() else 0
    else:
        raise TypeError(f"{name} must be an integer numpy array or tensor, got {_describe(x)}")
    if not kind_ok:
        raise TypeError(
            f"{name} must hold integer pixels (e.g. uint8), got {_describe(x)}; float images "
            "are already dequantised"
        )
    if x.ndim < 2:
        raise ValueError(f"{name} must have shape (n, ...) of images, got shape {tuple(x.shape)}")
    if int(lo) < 0 or int(hi) >= levels:
        raise ValueError(
            f"{name} must have values in {{0, ..., {levels - 1}}} (levels={levels}), got "
            f"min {int(lo)} and max {int(hi)}"
        )


def as_tensor(
    x: Any,
    name: str,
    *,
    ndim: int | tuple[int, ...] = 2,
    min_samples: int = 1,
    dim: int | tuple[int, ...] | None = None,
) -> tuple[torch.Tensor, Callable[[torch.Tensor], Any]]:
    """Validate an array of samples and convert it to a tensor.

    Args:
        x: numpy array, torch tensor or xarray DataArray of shape ``(n, d)`` (or the ranks in
            ``ndim``, e.g. ``(n, c, h, w)`` for images).
        name: the argument's name, used in error messages.
        ndim: allowed rank(s).
        min_samples: the least number of rows accepted.
        dim: if given, the required size of the trailing dimension(s) product (``d``).

    Returns:
        ``(tensor, back)``: the validated tensor (same dtype and device as the input) and a
        function mapping a result tensor back to the caller's array type.

    Raises:
        TypeError: not an array, a numpy masked array (its mask would be ignored), or a
            non-floating (integer, bool, complex) dtype. A non-native byte order (e.g.
            ``'>f8'``) is accepted: the values are read in this machine's order.
        ValueError: wrong rank, too few samples, wrong dimension, NaN or Inf.
    """
    t, back = _to_torch(x, name)
    if not torch.is_floating_point(t):
        raise TypeError(
            f"{name} must have a floating dtype (float32 or float64), got {t.dtype}; "
            "convert explicitly"
        )
    if t.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"{name} must be float32 or float64, got {t.dtype}")
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if t.ndim not in ranks:
        names = {1: "(n,)", 2: "(n, d)", 3: "(n, a, b)", 4: "(n, c, h, w)"}
        shape_hint = " or ".join(names.get(r, f"rank {r}") for r in ranks)
        raise ValueError(f"{name} must have shape {shape_hint}, got shape {tuple(t.shape)}")
    if t.shape[0] < min_samples:
        raise ValueError(
            f"{name} must have at least {min_samples} samples, got {t.shape[0]} "
            f"(shape {tuple(t.shape)})"
        )
    if dim is not None and tuple(t.shape[1:]) != _dims(dim):
        raise ValueError(
            f"{name} must have trailing shape {_dims(dim)}, got shape {tuple(t.shape)}"
        )
    check_finite(t, name)
    return t, back


def _dims(dim: int | tuple[int, ...]) -> tuple[int, ...]:
    return (dim,) if isinstance(dim, int) else tuple(dim)


def check_same_dim(
    a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, name_a: str, name_b: str
) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same per-sample shape."""
    if tuple(a.shape[1:]) != tuple(b.shape[1:]):
        raise ValueError(
            f"{name_a} and {name_b} must have the same dimension, got {name_a} of shape "
            f"{tuple(a.shape)} and {name_b} of shape {tuple(b.shape)}"
        )


def check_times(t: Any, name: str = "t", *, n: int | None = None) -> torch.Tensor:
    """Validate times: a float scalar or a 1-D array in ``[0, 1]`` (of length ``n`` if given)."""
    if isinstance(t, bool):
        raise TypeError(f"{name} must be a float or an array of floats, got bool")
    if isinstance(t, numbers.Real):
        tt = torch.tensor(float(t), dtype=torch.float64)
    elif isinstance(t, (list, tuple)):
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in t):
            raise TypeError(f"{name} must be a sequence of real numbers, got {t!r}")
        tt = torch.tensor([float(v) for v in t], dtype=torch.float64)
    elif isinstance(t, (np.ndarray, torch.Tensor)) or type(t).__name__ == "DataArray":
        tt, _ = _to_torch(t, name) if not isinstance(t, torch.Tensor) else (t, None)
        if not torch.is_floating_point(tt):
            raise TypeError(f"{name} must have a floating dtype, got {tt.dtype}")
    else:
        raise TypeError(f"{name} must be a float or a 1-D array of floats, got {_describe(t)}")
    if tt.ndim > 1:
        raise ValueError(f"{name} must be a scalar or of shape (n,), got shape {tuple(tt.shape)}")
    if n is not None and tt.ndim == 1 and tt.shape[0] != n:
        raise ValueError(
            f"{name} must have shape ({n},) to match the samples, got {tuple(tt.shape)}"
        )
    check_finite(tt, name)
    low, high = (float(v) for v in tt.detach().aminmax()) if tt.numel() else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise ValueError(
            f"expected {name} in [0, 1], got {name}.min()={low:.6g}, {name}.max()={high:.6g}"
        )
    return tt


def check_positive_int(
    value: Any, name: str, *, minimum: int = 1, maximum: int | None = None
) -> int:
    """Return ``value`` if it is an integer ``>= minimum`` (and ``<= maximum`` if given, and
    within int64, the range torch sizes take); otherwise raise.

    Example:
        >>> check_positive_int(10**8, "steps", maximum=10**7)
        Traceback (most recent call last):
        ...
        ValueError: steps must be an integer in [1, 10000000], got 100000000
    """
    valid = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer {valid}, got {value!r}")
    n = int(value)  # numbers.Integral has no ordering in its type; int has
    if n < minimum or (maximum is not None and n > maximum):
        raise ValueError(f"{name} must be an integer {valid}, got {value}")
    if n > _INT64_MAX:
        raise ValueError(f"{name} must be an integer <= 2**63 - 1 (int64), got {value}")
    return n


def check_bool(value: Any, name: str) -> bool:
    """Return ``value`` if it is a bool (numpy's included); otherwise raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__} {value!r}")
    return bool(value)


def check_positive(value: Any, name: str, *, allow_zero: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number ``> 0`` (or ``>= 0``)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    ok = (v >= 0.0 if allow_zero else v > 0.0) and np.isfinite(v)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be finite and {bound}, got {value}")
    return v


#: Largest classifier-free guidance strength: beyond it the guided field is dominated by the
#: difference of two learned velocities, amplified past any use.
MAX_GUIDANCE = 100.0


def check_guidance(value: Any, name: str = "guidance") -> float:
    """Return a guidance strength ``w`` as a float in ``[0, MAX_GUIDANCE]``.

    Example:
        >>> check_guidance(1)
        1.0
    """
    w = check_positive(value, name, allow_zero=True)
    if w > MAX_GUIDANCE:
        raise ValueError(f"{name} must be in [0, {MAX_GUIDANCE:g}], got {value}")
    return w


# Seeds are integers in ``[0, _SEED_MAX]``: the range of ``torch.Generator.manual_seed`` with
# room left for the small offsets that seed a run's separate streams (``seed + 1``, ...).
_SEED_MAX = 2**63 - 1


def check_seed(value: Any, name: str = "seed") -> int:
    """Return ``value`` as an ``int`` if it is an integer seed in ``[0, 2**63 - 1]``.

    Example:
        >>> check_seed(7)
        7
        >>> check_seed(2**70)
        Traceback (most recent call last):
        ...
        ValueError: seed must be an integer in [0, 2**63 - 1], got 1180591620717411303424
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer in [0, 2**63 - 1], got {value!r}")
    seed = int(value)  # numbers.Integral has no ordering in its type; int has
    if not 0 <= seed <= _SEED_MAX:
        raise ValueError(f"{name} must be an integer in [0, 2**63 - 1], got {value}")
    return seed


_SEED_RANGE = "an integer in [0, 2**63 - 1]"


def numpy_generator(seed: Seed, name: str = "seed") -> np.random.Generator:
    """The numpy random stream of ``seed``: a new ``numpy.random.default_rng(seed)`` for an
    integer (see :func:`check_seed`), fresh entropy for ``None``, and a
    :class:`numpy.random.Generator` itself (it advances). The global random state is never
    touched.

    Example:
        >>> numpy_generator(0).integers(10, size=3).tolist() == np.random.default_rng(0).integers(
        ...     10, size=3).tolist()
        True
        >>> numpy_generator(1.5)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        TypeError: seed must be None, a numpy.random.Generator or an integer ..., got float 1.5
    """
    if seed is None or isinstance(seed, np.random.Generator):
        return np.random.default_rng(seed)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be None, a numpy.random.Generator or {_SEED_RANGE}, got "
            f"{type(seed).__name__} {seed!r}"
        )
    return np.random.default_rng(check_seed(seed, name))


def torch_generator(seed: int | torch.Generator | None, name: str = "seed") -> torch.Generator:
    """The CPU ``torch.Generator`` of ``seed``: ``torch.Generator().manual_seed(seed)`` for an
    integer (see :func:`check_seed`), one seeded from fresh entropy for ``None``, and a
    ``torch.Generator`` itself (it advances). The global random state is never touched.

    Example:
        >>> a = torch.rand(2, generator=torch_generator(3))
        >>> bool((a == torch.rand(2, generator=torch.Generator().manual_seed(3))).all())
        True
    """
    if isinstance(seed, torch.Generator):
        return seed
    if seed is None:  # fresh entropy, within the range check_seed accepts
        seed = int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> 1)
    elif isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"{name} must be None, a torch.Generator or {_SEED_RANGE}, got "
            f"{type(seed).__name__} {seed!r}"
        )
    return torch.Generator().manual_seed(check_seed(seed, name))


# Tolerances of the Gaussian (mixture) parameter checks, the same everywhere (datasets,
# metrics, exact). A covariance ``C`` (float64) is accepted as symmetric when
# ``max|C - C.T| <= SYMMETRY_RTOL * max|C|`` (then symmetrised: float32 rounding passes);
# positive definite when its smallest eigenvalue is ``> EIGEN_RTOL * max|eigenvalue|``, and
# semi-definite when it is ``>= -EIGEN_RTOL * max|eigenvalue|`` (both well above the
# rounding of an eigensolver, ``d * 2.2e-16``). Mixture weights must sum to 1 within
# ``WEIGHT_TOL`` (float32 rounding passes).
SYMMETRY_RTOL = 1e-6
EIGEN_RTOL = 1e-12
WEIGHT_TOL = 1e-6


def check_covariance(c: np.ndarray, name: str, *, definite: bool = True) -> np.ndarray:
    """Check that the float64 ``(d, d)`` matrix ``c`` is symmetric positive definite (or
    semi-definite) within :data:`SYMMETRY_RTOL` and :data:`EIGEN_RTOL`; return it
    symmetrised, ``(c + c.T) / 2``.

    Raises:
        ValueError: an asymmetric matrix, or an eigenvalue below the bound; the message
            names ``name`` and gives the offending value.

    Example:
        >>> check_covariance(np.array([[2.0, 1.0], [1.0, 1.0]]), "cov").tolist()
        [[2.0, 1.0], [1.0, 1.0]]
        >>> check_covariance(np.diag([1.0, -0.5]), "cov")
        Traceback (most recent call last):
        ...
        ValueError: cov must be symmetric positive definite, got smallest eigenvalue -0.5 \
(largest |eigenvalue| 1)
    """
    what = "symmetric positive " + ("definite" if definite else "semi-definite")
    scale = float(np.abs(c).max()) if c.size else 0.0
    asym = float(np.abs(c - c.T).max()) if c.size else 0.0
    if asym > SYMMETRY_RTOL * max(scale, np.finfo(np.float64).tiny):
        raise ValueError(
            f"{name} must be {what}, got an asymmetric matrix: max|{name} - {name}.T|="
            f"{asym:.3g} (max|{name}|={scale:.3g})"
        )
    c = 0.5 * (c + c.T)  # removes rounding-level asymmetry only
    lam = np.linalg.eigvalsh(c)
    lam_min, lam_max = float(lam[0]), float(np.abs(lam).max())
    bound = EIGEN_RTOL * lam_max
    if (lam_min <= bound) if definite else (lam_min < -bound):
        raise ValueError(
            f"{name} must be {what}, got smallest eigenvalue {lam_min:.6g} "
            f"(largest |eigenvalue| {lam_max:.3g})"
        )
    return c


def check_mixture_weights(w: np.ndarray, name: str) -> float:
    """Check that mixture weights (a float64 vector) are all ``> 0`` and sum to 1 within
    :data:`WEIGHT_TOL`; return their sum.

    Example:
        >>> check_mixture_weights(np.array([0.25, 0.75]), "weights")
        1.0
        >>> check_mixture_weights(np.array([0.5, 0.6]), "weights")
        Traceback (most recent call last):
        ...
        ValueError: weights must sum to 1 within 1e-06, got sum(weights)=1.1; normalise them \
explicitly (weights / weights.sum())
    """
    if np.any(w <= 0.0):
        bad = int(np.argmin(w))
        raise ValueError(
            f"{name} must all be > 0 (drop zero-weight components), got {name}[{bad}] = "
            f"{w[bad]:.6g}"
        )
    total = float(np.sum(w))
    if abs(total - 1.0) > WEIGHT_TOL:
        raise ValueError(
            f"{name} must sum to 1 within {WEIGHT_TOL:g}, got sum({name})={total!r}; "
            f"normalise them explicitly ({name} / {name}.sum())"
        )
    return total


def check_device(value: Any, name: str = "device") -> torch.device:
    """Return ``value`` as a ``torch.device`` if it names a device the library runs on: the
    CPU, an available CUDA device (``"cuda"``, ``"cuda:1"``) or an available Apple ``"mps"``.

    Example:
        >>> check_device("cpu")
        device(type='cpu')
        >>> check_device("meta")
        Traceback (most recent call last):
        ...
        ValueError: device must be 'cpu', 'cuda[:index]' or 'mps' (where available), got 'meta'
    """
    expected = "'cpu', 'cuda[:index]' or 'mps' (where available)"
    if not isinstance(value, (str, torch.device)):
        raise TypeError(f"{name} must be a str or torch.device ({expected}), got {value!r}")
    try:
        device = torch.device(value)
    except RuntimeError:
        raise ValueError(f"{name} must be {expected}, got {value!r}") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise ValueError(f"{name} must be {expected}, got {value!r}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{name}={value!r} asks for CUDA, which is not available here; use 'cpu'")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"{name}={value!r} asks for CUDA device {device.index}, but only "
            f"{torch.cuda.device_count()} are available"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"{name}={value!r} asks for MPS, which is not available here; use 'cpu'")
    return device


def check_fraction(value: Any, name: str, *, low: float = 0.0, high: float = 1.0) -> float:
    """Return ``value`` if it lies in ``[low, high)``; otherwise raise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in [{low}, {high}), got {value!r}")
    v = float(value)
    if not (low <= v < high):
        raise ValueError(f"{name} must be in [{low}, {high}), got {value}")
    return v


def check_choice(value: Any, name: str, choices: dict[str, Any] | tuple[str, ...]) -> str:
    """Return ``value`` if it is one of ``choices``; the error lists the valid keys."""
    keys = tuple(choices)
    if not isinstance(value, str) or value not in keys:
        raise ValueError(f"unknown {name} {value!r}; valid values are: {', '.join(sorted(keys))}")
    return value


def check_keys(build: Callable[..., Any], keys: Any, what: str, header: str = "name") -> None:
    """Raise ``ValueError`` unless the keys of a spec dict (besides its ``header``, the
    built-in's name) are keyword arguments of ``build`` and include every one it requires;
    the message names ``what`` (e.g. ``"coupling 'sinkhorn'"``), the wrong or missing keys and
    the valid ones. A ``build`` that takes ``**kwargs`` is not checked.

    Example:
        >>> check_keys(lambda reg=0.05: None, {"name", "regg"}, "coupling 'sinkhorn'")
        Traceback (most recent call last):
        ...
        ValueError: coupling 'sinkhorn' has no setting(s) ['regg']; its keys are: name, reg
    """
    params = inspect.signature(build).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return
    named = [p for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    valid = sorted({header, *(p.name for p in named)})
    given = set(keys) - {header}
    unknown = sorted(given - set(valid))
    missing = [p.name for p in named if p.default is p.empty and p.name not in given]
    if unknown or missing:
        problem = f"has no setting(s) {unknown}" if unknown else f"needs the key(s) {missing}"
        raise ValueError(f"{what} {problem}; its keys are: {', '.join(valid)}")


def resolve(spec: Any, registry: dict[str, Callable[..., Any]], name: str, cls: type) -> Any:
    """Resolve a registry alias: an instance of ``cls`` (returned as is), a name, or a spec
    dict ``{"name": ..., **kwargs}``; errors list the valid names, or the valid keys of the
    name (:func:`check_keys`)."""
    if isinstance(spec, cls):
        return spec
    if isinstance(spec, str):
        return registry[check_choice(spec, name, registry)]()
    if isinstance(spec, dict) and "name" in spec:
        build = registry[check_choice(spec["name"], name, registry)]
        check_keys(build, spec, f"{name} {spec['name']!r}")
        return build(**{k: v for k, v in spec.items() if k != "name"})
    raise TypeError(
        f"{name} must be a name ({', '.join(sorted(registry))}), a spec dict or a "
        f"{cls.__name__}, got {type(spec).__name__}"
    )
