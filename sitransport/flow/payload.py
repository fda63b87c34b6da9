"""A :class:`~sitransport.flow.TransportFlow` as tensors and plain data, and back: writing
the payload (refusing what could not be rebuilt exactly) and reading one, every stored part
checked against the others before anything is allocated from it."""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
import xarray as xr
from torch import Tensor, nn

from sitransport._io import MAX_SIZE, check_map_location, module_mismatch
from sitransport._tree import Budget, TreeError, bounded_copy, plain
from sitransport.config import FitConfig
from sitransport.ends.conditions import ConditionEncoder
from sitransport.ends.densities import Density, EmpiricalDensity, StandardNormal, as_density
from sitransport.ends.normalization import Normalization
from sitransport.errors import CorruptFileError
from sitransport.flow.external import ExternalVelocity
from sitransport.interpolants import (
    Interpolant,
    get_interpolant,
    interpolant_names,
    read_interpolant,
)
from sitransport.nn import build_network, read_network
from sitransport.ode import ODEOptions

if TYPE_CHECKING:
    from sitransport.flow.transport import TransportFlow

#: Nothing public: these are the bodies of TransportFlow's methods, documented there.
__all__: list[str] = []


def write_payload(flow: TransportFlow) -> dict[str, Any]:
    """The body of :meth:`TransportFlow.to_payload`."""
    net = flow._velocity
    if isinstance(net, ExternalVelocity):
        raise TypeError(
            "a flow made by TransportFlow.from_velocity cannot be saved: its velocity is the "
            f"caller's {type(net.fn).__name__}, which a file cannot hold as data; save the "
            "model with its own library (e.g. torch.save(model.state_dict(), path)) and "
            "rebuild the flow with from_velocity"
        )
    if not (isinstance(net, nn.Module) and isinstance(getattr(net, "config", None), dict)):
        raise TypeError(
            "only flows with a built-in sitransport network can be saved, got velocity "
            f"of type {type(net).__name__}; save its state_dict yourself"
        )
    _check_restorable(net, flow._interpolant)
    base, target = _density_spec(flow._base), _density_spec(flow._target)
    condition = {} if flow._condition is None else {"condition": flow._condition.spec()}
    return {
        "format": flow.FORMAT,
        "version": flow.VERSION,
        "shape": list(flow._shape),
        "network": dict(cast(Mapping[str, Any], net.config)),  # checked restorable above
        "state_dict": {k: _copy(v) for k, v in net.state_dict().items()},
        "interpolant": flow._interpolant.spec(),
        "base": base,
        "target": target,
        "normalization": {"shift": _copy(flow._norm.shift), "scale": flow._norm.scale},
        "ode": asdict(flow._ode),
        "config": flow._config.spec() if flow._config is not None else {},
        "history": _history_to_plain(flow._history),
        **condition,  # only conditional flows: unconditional files are as before
    }


def read_payload(
    cls: type[TransportFlow],
    payload: Any,
    base: Any,
    interpolant: str | Interpolant | None,
    map_location: str | torch.device,
    source: str | os.PathLike | None,
) -> TransportFlow:
    """The body of :meth:`TransportFlow.from_payload`."""
    device = check_map_location(map_location)
    given = get_interpolant(interpolant) if interpolant is not None else None
    where = "the payload" if source is None else repr(os.fspath(source))
    payload = _bounded(payload, where)
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


#: The most values a payload given as a dict may hold (a flow's: a few hundred).
MAX_PAYLOAD_NODES = 2**20


def _bounded(payload: Any, where: str) -> Any:
    """``payload`` as a tree that shares and repeats nothing
    (:func:`~sitransport._tree.bounded_copy`): a crafted dict cannot make the checks below
    take exponential time, nor a tensor view read beyond its storage."""
    try:
        return bounded_copy(payload, Budget(nodes=MAX_PAYLOAD_NODES, tensor_bytes=2**62))
    except TreeError as err:
        raise _damaged(where, err) from None


def _copy(tensor: Tensor) -> Tensor:
    """A detached copy on the CPU, sharing no memory with the flow."""
    return tensor.detach().to("cpu", copy=True)


def _density_spec(density: Density | None) -> dict[str, Any] | None:
    """Plain-data record of an end of the flow (samples included for empirical ends)."""
    if density is None:
        return None
    spec = density.spec()
    if isinstance(density, EmpiricalDensity):
        spec["samples"] = _copy(density.samples)
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
    if not bool(torch.isfinite(samples).all()):
        raise ValueError("stored samples hold NaN or infinite values")
    return EmpiricalDensity(samples)


def _check_restorable(net: nn.Module, path: Interpolant) -> None:
    """Refuse to save what :meth:`TransportFlow.from_payload` would rebuild as something
    else: a subclass or a modified copy of a built-in network or interpolant is saved under
    its parent's name."""
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


def _history_to_plain(history: xr.Dataset | None) -> dict[str, Any] | None:
    if history is None:
        return None
    try:
        attrs = plain(dict(history.attrs))
    except ValueError as err:
        raise ValueError(f"cannot save the flow's history.attrs: {err}") from None
    out: dict[str, Any] = {"coords": {}, "vars": {}, "attrs": attrs}
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
    coords = {k: _history_array(v, k) for k, v in plain["coords"].items()}
    data = {}
    for name, var in plain["vars"].items():
        dims = var["dims"]
        if not (isinstance(dims, list) and all(isinstance(d, str) for d in dims)):
            raise TypeError(f"history variable {name!r} must name its dims as strings")
        data[name] = (tuple(dims), _history_array(var["data"], name))
    attrs = plain.get("attrs", {})
    if not isinstance(attrs, dict):
        raise TypeError(f"history attrs must be a dict, got {type(attrs).__name__}")
    return xr.Dataset(data, coords=coords, attrs=attrs)


def _history_array(value: Any, name: str) -> np.ndarray:
    """A stored history array: a real floating tensor (values may be NaN: a record)."""
    if not (isinstance(value, Tensor) and value.is_floating_point()):
        raise TypeError(f"history {name!r} must be a float tensor, got {value!r:.60}")
    return value.numpy()


def _damaged(where: str, err: BaseException) -> CorruptFileError:
    return CorruptFileError(f"{where} is a damaged sitransport file: {type(err).__name__}: {err}")


def _check_header(payload: Any, name: str, versions: tuple[int, ...], where: str) -> None:
    """A payload headed by the format ``name`` in one of the ``versions``."""
    if not isinstance(payload, dict) or payload.get("format") != name:
        raise CorruptFileError(f"{where} is not a sitransport flow file (no {name!r} header)")
    check_version(payload.get("version"), versions, where, "format")


def check_version(version: Any, versions: tuple[int, ...], where: str, what: str) -> None:
    """A payload's ``version`` is an integer (a bool is not: ``True == 1``) among ``versions``;
    otherwise a :class:`CorruptFileError` naming ``where``, the ``what`` version and its type."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise CorruptFileError(
            f"{where} has {what} version {version!r} (a {type(version).__name__}, expected an "
            "integer)"
        )
    if version not in versions:
        raise CorruptFileError(
            f"{where} has {what} version {version}; this sitransport reads "
            f"version{'s' if len(versions) > 1 else ''} {', '.join(map(str, versions))}"
        )


def _stored_parts(
    payload: dict[str, Any], interpolant: Interpolant | None, stored_base: bool
) -> dict[str, Any]:
    """The checked parts of a payload, as arguments of :class:`TransportFlow` (the network
    on the CPU; the stored base only if ``stored_base``)."""
    shape = _stored_shape(payload["shape"])
    net = read_network(payload["network"], payload["state_dict"], shape)
    path = interpolant
    if path is None:
        path = read_interpolant(payload["interpolant"], shape)
    return {
        "network": net,
        "interpolant": path,
        "shape": shape,
        "normalization": _stored_normalization(payload["normalization"], shape, _dtype(net)),
        "base": _density_from_spec(payload["base"], shape) if stored_base else None,
        "target": _density_from_spec(payload.get("target"), shape),
        "ode": ODEOptions(**payload["ode"]),
        "config": _stored_config(payload["config"], shape),
        "history": _history_fromplain(payload["history"]),
        "condition": _stored_condition(payload.get("condition"), net),
    }


def _stored_condition(spec: Any, net: nn.Module) -> ConditionEncoder | None:
    """The file's conditions, checked against the network's condition input (a conditional
    network needs the label set or the standardisation its codes are made with)."""
    inner = getattr(net, "velocity", net)  # a velocity-denoiser pair: its velocity
    wants = cast(dict, getattr(inner, "config", {})).get("condition")
    if spec is None:
        if wants is not None:
            raise ValueError("the network is conditional but the file stores no conditions")
        return None
    encoder = ConditionEncoder.from_spec(spec)
    if wants is None:
        raise ValueError("the file stores conditions but the network is unconditional")
    if (wants["kind"], wants["size"]) != (encoder.kind, encoder.size):
        raise ValueError(
            f"the stored conditions ({encoder.kind}, {encoder.size} codes) do not match the "
            f"network's condition input ({wants['kind']}, {wants['size']} codes)"
        )
    return encoder


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


def _stored_shape(shape: Any) -> tuple[int, ...]:
    """The per-sample shape of a file: 1 (vectors) or 3 (images) positive integers."""
    if not isinstance(shape, (list, tuple)) or len(shape) not in (1, 3):
        raise ValueError(f"stored shape must be [d] or [c, h, w], got {shape!r}")
    for s in shape:
        if isinstance(s, bool) or not isinstance(s, int) or not 1 <= s <= MAX_SIZE:
            raise ValueError(f"stored shape must hold integers in [1, {MAX_SIZE}], got {shape!r}")
    return tuple(shape)


def _dtype(net: nn.Module) -> torch.dtype:
    return next((p.dtype for p in net.parameters()), torch.float32)


def _stored_normalization(norm: Any, shape: tuple[int, ...], dtype: torch.dtype) -> Normalization:
    """The file's normalisation: a finite float shift of the sample shape and a scale > 0,
    both within what the network's ``dtype`` represents with room for squares
    (``sqrt(finfo.max)``; a scale at least its inverse)."""
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
    limit = math.sqrt(torch.finfo(dtype).max)
    largest = float(shift.abs().max()) if shift.numel() else 0.0
    if not (1 / limit <= scale <= limit and largest <= limit):
        raise ValueError(
            f"normalisation scale {scale:g} and shift up to {largest:g} must lie within "
            f"[{1 / limit:.3g}, {limit:.3g}] for a {str(dtype).removeprefix('torch.')} network"
        )
    return Normalization(shift, float(scale))
