"""Reading the flat config dicts of files saved before :class:`~sitransport.config.FitConfig`
(``fit``'s arguments as plain data, objects as their ``repr``, parsed as literals and never
evaluated): :class:`Legacy` turns one into the keyword arguments of a ``FitConfig``, for
:meth:`FitConfig.from_legacy <sitransport.config.FitConfig.from_legacy>`."""

from __future__ import annotations

import ast
import dataclasses
from typing import Any

import torch

from sitransport.config.coupling import CouplingSpec
from sitransport.config.network import MLPSpec, NetworkSpec, UNetSpec
from sitransport.config.training import (
    DTYPES,
    Checkpointing,
    LatentSpec,
    TrainSettings,
    freeze_step,
)
from sitransport.couplings import Coupling, ExactOT, GlobalOT, Independent, Sinkhorn
from sitransport.interpolants import get_interpolant
from sitransport.losses import get_time_sampler
from sitransport.ode import ODEOptions
from sitransport.paths import PathSettings

__all__: list[str] = []

#: The built-in couplings by class name: the classes whose ``repr`` the releases that wrote
#: flat configs recorded (history: a coupling added later never appears in such a file).
_COUPLING_CLASSES: dict[str, type[Coupling]] = {
    cls.__name__: cls for cls in (ExactOT, GlobalOT, Independent, Sinkhorn)
}
#: The built-in time samplers by class name (legacy configs recorded their ``repr``).
_SAMPLER_NAMES = {"UniformTime": "uniform", "BetaTime": "beta"}


def _parse_call(text: str) -> tuple[str, list[Any], dict[str, Any]] | None:
    """``("Name", args, kwargs)`` of a ``repr`` like ``Name(1, a='x')`` with literal
    arguments (parsed, never evaluated); ``None`` if it is not one."""
    try:
        node = ast.parse(text.strip(), mode="eval").body
        if not (isinstance(node, ast.Call) and isinstance(node.func, (ast.Name, ast.Attribute))):
            return None
        name = node.func.id if isinstance(node.func, ast.Name) else node.func.attr
        args = [ast.literal_eval(a) for a in node.args]
        kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return None
    return name, args, kwargs


class Legacy:
    """The conversion of one legacy config dict (see :meth:`FitConfig.from_legacy`)."""

    def __init__(self, old: dict[str, Any], shape: tuple[int, ...] | None) -> None:
        self.old, self.shape = old, shape

    def get(self, key: str, default: Any = None) -> Any:
        value = self.old.get(key, default)
        return default if value is None and default is not None else value

    def fail(self, key: str) -> ValueError:
        return ValueError(f"legacy config: cannot convert {key}={self.old.get(key)!r}")

    def convert(self) -> dict[str, Any]:
        training = TrainSettings(
            **{f.name: self.old[f.name] for f in dataclasses.fields(TrainSettings)
               if f.name in self.old}
        )  # fmt: skip
        latent = self.get("latent")
        return dict(
            training=training,
            network=self.network(),
            coupling=self.coupling(),
            interpolant=self.interpolant(),
            time_sampler=self.time_sampler(),
            path=self.path(training.steps),
            ode=self.ode(),
            checkpoint=self.checkpoint(training.checkpoint_every),
            seed=self.get("seed", 0),
            device=self.device(),
            dtype=self.dtype(),
            validation=self.get("validation", 0.1),
            normalize=self.get("normalize", True),
            remedy=self.get("remedy"),
            num_workers=self.get("num_workers", 0),
            latent=None if latent is None else self.latent(latent),
            rank0=self.get("rank0"),
            rank1=self.get("rank1"),
            sample_method=self.get("sample_method", "ode"),
            reflow_generation=self.get("reflow_generation", 0),
            reflow_pairs=self.get("reflow_pairs"),
        )

    def network(self) -> NetworkSpec:
        # The defaults of the releases that wrote flat configs (preset by image size, width by
        # dimension), kept as they were then: not nn.builder's, which may change.
        network = self.get("network", "auto")
        images = self.shape is not None and len(self.shape) == 3
        if isinstance(network, dict) or network not in ("auto", "mlp", "potential") or images:
            if isinstance(network, dict):
                options = {k: v for k, v in network.items() if k not in ("preset", "kind")}
                return UNetSpec(network.get("preset"), options)
            preset = network if network not in ("auto", "unet") else None
            if preset is None and self.shape is not None:
                preset = "tiny" if max(self.shape[1:]) <= 16 else "small"
            return UNetSpec(preset, {})
        width = self.get("width")
        if width is None and self.shape is not None:
            width = 128 if self.shape[0] <= 16 else 256
        return MLPSpec(
            kind="potential" if network == "potential" else "mlp",
            width=width,
            depth=self.get("depth", 4),
            activation=self.get("activation", "silu"),
            time_frequencies=self.get("time_frequencies", 8),
            space_frequencies=self.get("space_frequencies", 0),
        )

    def coupling(self) -> CouplingSpec:
        value = self.get("coupling", "independent")
        if isinstance(value, (dict, str)) and (not isinstance(value, str) or "(" not in value):
            return CouplingSpec.from_spec(value)
        call = _parse_call(value) if isinstance(value, str) else None
        if call is None or call[0] not in _COUPLING_CLASSES or call[1]:
            raise self.fail("coupling")
        return CouplingSpec.of(_COUPLING_CLASSES[call[0]](**call[2]))

    def interpolant(self) -> dict[str, Any] | None:
        value = self.get("interpolant", "trig")
        if isinstance(value, str) and "(" in value:
            call = _parse_call(value)
            if call is None or call[1]:
                return None  # a user interpolant: the flow holds it
            value = {"name": call[0].lower(), **call[2]}
        try:
            return get_interpolant(value).spec()
        except (TypeError, ValueError, KeyError):
            return None

    def time_sampler(self) -> dict[str, Any]:
        value = self.get("time_sampler", "uniform")
        if isinstance(value, str) and "(" in value:
            call = _parse_call(value)
            if call is None or call[0] not in _SAMPLER_NAMES or call[1]:
                raise self.fail("time_sampler")
            value = {"name": _SAMPLER_NAMES[call[0]], **call[2]}
        return get_time_sampler(value).spec()

    def path(self, steps: int) -> PathSettings | None:
        if not self.get("optimize_path", False):
            return None
        return PathSettings(
            lr=self.get("path_lr", 5e-3),
            every=self.get("path_every", 1),
            start=self.get("path_start", 1000),
            mode=self.get("path_mode", "alternating"),
            stop=freeze_step(self.get("path_freeze", 0.5), steps),
        )

    def ode(self) -> ODEOptions:
        value = self.get("ode")
        if value is None:
            return ODEOptions()
        call = _parse_call(value) if isinstance(value, str) else None
        if call is None or call[0] != "ODEOptions" or call[1]:
            raise self.fail("ode")
        return ODEOptions(**call[2])

    def checkpoint(self, every: int) -> Checkpointing | None:
        value = self.get("checkpoint_dir")
        if value is None:
            return None
        if isinstance(value, str) and value.endswith(")"):
            call = _parse_call(value)  # PosixPath('runs/a')
            if call is None or len(call[1]) != 1 or not isinstance(call[1][0], str):
                raise self.fail("checkpoint_dir")
            value = call[1][0]
        return Checkpointing(value, every, bool(self.get("resume", False)))

    def device(self) -> str:
        value = self.get("device", "cpu")
        if isinstance(value, str) and value.startswith("device("):
            call = _parse_call(value)  # device(type='cuda', index=0)
            if call is None:
                raise self.fail("device")
            value = str(torch.device(*call[1], **call[2]))
        return str(value)

    def dtype(self) -> torch.dtype:
        value = str(self.get("dtype", "torch.float32"))
        name = value.removeprefix("torch.")
        if name not in DTYPES:
            raise self.fail("dtype")
        return DTYPES[name]

    def latent(self, value: Any) -> LatentSpec:
        components = None if value == "pca" else value
        return LatentSpec(components, self.get("latent_variance", 0.999))
