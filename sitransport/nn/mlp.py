"""MLP velocity field with a sinusoidal time embedding, for data of shape ``(n, d)``."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Protocol, cast

import torch
from torch import Tensor, nn

from sitransport._validation import check_choice, check_positive_int
from sitransport.nn.condition import ConditionEmbedding, check_condition_config

__all__ = [
    "MLPVelocity",
    "SpaceEmbedding",
    "TimeEmbedding",
    "VelocityDenoiser",
    "build_trunk",
    "run_trunk",
]

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "relu": nn.ReLU,
    "selu": nn.SELU,
    "silu": nn.SiLU,
    "tanh": nn.Tanh,
}


class TimeEmbedding(nn.Module):
    r"""Sinusoidal features of time: :math:`[t, \sin(\pi k t), \cos(\pi k t)]_{k=1..K}`.

    Integer frequencies make every feature smooth on ``[0, 1]``; ``K`` sets the finest time
    scale the network can resolve.

    Args:
        frequencies: ``K``, the number of frequencies. Default ``8``.

    Example:
        >>> import torch
        >>> from sitransport.nn import TimeEmbedding
        >>> emb = TimeEmbedding(frequencies=2)
        >>> emb.dim
        5
        >>> emb(torch.tensor([0.0, 0.5])).round(decimals=4)  # t, sin(pi k t), cos(pi k t)
        tensor([[ 0.0000,  0.0000,  0.0000,  1.0000,  1.0000],
                [ 0.5000,  1.0000, -0.0000, -0.0000, -1.0000]])
    """

    k: Tensor  # buffer: the frequencies pi k

    def __init__(self, frequencies: int = 8) -> None:
        super().__init__()
        self.frequencies = check_positive_int(frequencies, "frequencies")
        self.register_buffer(
            "k", math.pi * torch.arange(1, frequencies + 1, dtype=torch.float32), persistent=False
        )

    @property
    def dim(self) -> int:
        return 2 * self.frequencies + 1

    def forward(self, t: Tensor) -> Tensor:
        """Map times of shape ``(n,)`` to features of shape ``(n, 2K + 1)``.

        Args:
            t: times, shape ``(n,)``, in ``[0, 1]``.

        Example:
            >>> import torch
            >>> TimeEmbedding(frequencies=8)(torch.linspace(0, 1, 4)).shape
            torch.Size([4, 17])
        """
        kt = t[:, None] * self.k.to(t.dtype)
        return torch.cat([t[:, None], torch.sin(kt), torch.cos(kt)], dim=1)


class SpaceEmbedding(nn.Module):
    r"""Positional features of space: :math:`[x, \sin(\pi 2^k x), \cos(\pi 2^k x)]_{k=0..K-1}`,
    coordinate-wise (NeRF's encoding), so the network can form sharp edges.

    An MLP of smooth activations on raw coordinates needs large weights to make a step of
    width :math:`w`; with these features the frequencies up to :math:`\pi 2^{K-1}` are given.
    Coordinates are the normalised ones ``fit`` trains on (unit spread); the finest feature
    has period :math:`2^{2-K}`, an eighth of that spread at ``K = 5``. ``K = 0`` is the
    identity.

    Args:
        frequencies: ``K``, the number of octaves (``>= 0``). Default ``0``.

    Example:
        >>> import torch
        >>> from sitransport.nn import SpaceEmbedding
        >>> emb = SpaceEmbedding(frequencies=2)
        >>> emb.out_dim(3)
        15
        >>> emb(torch.tensor([[1 / 6]])).round(decimals=4)  # x, sin(pi 2^k x), cos(pi 2^k x)
        tensor([[0.1667, 0.5000, 0.8660, 0.8660, 0.5000]])
    """

    k: Tensor  # buffer: the frequencies pi 2^k

    def __init__(self, frequencies: int = 0) -> None:
        super().__init__()
        self.frequencies = check_positive_int(frequencies, "space_frequencies", minimum=0)
        self.register_buffer(
            "k", math.pi * 2.0 ** torch.arange(frequencies, dtype=torch.float32), persistent=False
        )

    def out_dim(self, dim: int) -> int:
        """Number of features for ``dim`` coordinates: ``dim (2K + 1)``.

        Args:
            dim: number of coordinates ``d`` of a point.

        Example:
            >>> SpaceEmbedding(0).out_dim(2), SpaceEmbedding(5).out_dim(2)
            (2, 22)
        """
        return dim * (2 * self.frequencies + 1)

    def forward(self, x: Tensor) -> Tensor:
        """Map points of shape ``(n, d)`` to features of shape ``(n, d (2K + 1))``.

        Args:
            x: points, shape ``(n, d)``.

        Example:
            >>> import torch
            >>> x = torch.randn(4, 2)
            >>> SpaceEmbedding(3)(x).shape
            torch.Size([4, 14])
            >>> SpaceEmbedding(0)(x) is x  # K = 0: the coordinates themselves
            True
        """
        if self.frequencies == 0:
            return x
        kx = (x.unsqueeze(-1) * self.k.to(x.dtype)).flatten(1)  # (n, d K)
        return torch.cat([x, torch.sin(kx), torch.cos(kx)], dim=1)


class _Trunk(Protocol):
    """The attributes :func:`build_trunk` gives a module (``nn.Module`` types its dynamic
    attributes as tensors or modules only)."""

    dim: int
    config: dict[str, Any]
    time_embedding: TimeEmbedding
    space_embedding: SpaceEmbedding
    net: nn.Sequential
    condition_embedding: ConditionEmbedding | None
    film: nn.ModuleList | None


def build_trunk(
    module: nn.Module,
    kind: str,
    activations: dict[str, type[nn.Module]],
    settings: tuple[int, int, int, str, int, int],
    *,
    out: int,
    bias: bool,
    condition: dict[str, Any] | None = None,
) -> None:
    """Give ``module`` the layers of an MLP of ``(x, t)`` features: ``dim``, ``config``,
    ``time_embedding``, ``space_embedding`` and ``net`` (``depth`` hidden layers of ``width``,
    then a linear map to ``out``). ``settings`` is ``(dim, width, depth, activation,
    time_frequencies, space_frequencies)``; ``kind`` names the network in ``config``.
    A ``condition`` (see :mod:`sitransport.nn.condition`) adds ``condition_embedding`` and,
    for FiLM, ``film``; they are built after the trunk, so a conditional network's trunk
    starts from the weights of the unconditional one of the same seed.

    Args:
        module: the network under construction; the layers are set as its attributes.
        kind: the network's name recorded in ``config["kind"]`` (e.g. ``"mlp"``).
        activations: valid activation names to their ``nn.Module`` classes.
        settings: ``(dim, width, depth, activation, time_frequencies, space_frequencies)``.
        out: output features of the last linear layer (``dim`` for a velocity, 1 for a potential).
        bias: whether the last linear layer has a bias.
        condition: the condition input ``{"kind", "size", "fusion"}``, or ``None``.

    Example:
        >>> trunk = nn.Module()  # x (2), then t with sin, cos of 2 frequencies (5)
        >>> build_trunk(trunk, "mlp", {"silu": nn.SiLU}, (2, 8, 1, "silu", 2, 0), out=2, bias=True)
        >>> trunk.config["width"], trunk.net
        (8, Sequential(
          (0): Linear(in_features=7, out_features=8, bias=True)
          (1): SiLU()
          (2): Linear(in_features=8, out_features=2, bias=True)
        ))
    """
    dim, width, depth, activation, time_frequencies, space_frequencies = settings
    trunk = cast(_Trunk, module)  # type only: the attributes below are set on the module
    trunk.dim = check_positive_int(dim, "dim")
    check_positive_int(width, "width")
    check_positive_int(depth, "depth")
    act = activations[check_choice(activation, "activation", activations)]
    trunk.config = {
        "kind": kind,
        "dim": dim,
        "width": width,
        "depth": depth,
        "activation": activation,
        "time_frequencies": time_frequencies,
        "space_frequencies": space_frequencies,
    }
    trunk.time_embedding = TimeEmbedding(time_frequencies)
    trunk.space_embedding = SpaceEmbedding(space_frequencies)
    layers: list[nn.Module] = []
    cond = None if condition is None else check_condition_config(condition)
    concat = cond is not None and cond["fusion"] == "concat"
    n_in = trunk.space_embedding.out_dim(dim) + trunk.time_embedding.dim + (width if concat else 0)
    for _ in range(depth):
        layers += [nn.Linear(n_in, width), act()]
        n_in = width
    layers.append(nn.Linear(n_in, out, bias=bias))
    trunk.net = nn.Sequential(*layers)
    trunk.condition_embedding, trunk.film = None, None
    if cond is not None:
        trunk.config["condition"] = cond
        trunk.condition_embedding = ConditionEmbedding(cond["kind"], cond["size"], width)
        if cond["fusion"] == "film":
            trunk.film = nn.ModuleList(nn.Linear(width, 2 * width) for _ in range(depth))
            for layer in trunk.film:  # zero at initialisation: h (1 + 0) + 0
                linear = cast(nn.Linear, layer)
                nn.init.zeros_(linear.weight)
                nn.init.zeros_(linear.bias)


def run_trunk(module: nn.Module, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
    """The output of a trunk made by :func:`build_trunk` at ``x`` (``(n, d)``) and ``t``
    (scalar, shared by all samples, or ``(n,)``), and the condition codes ``c`` of a
    conditional trunk.

    Args:
        module: a module set up by :func:`build_trunk`.
        x: points, shape ``(n, d)``.
        t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
        c: condition codes (``(n,)`` labels or ``(n, k + 1)`` features) of a conditional
            trunk, ``None`` for an unconditional one.

    Raises:
        ValueError: a conditional trunk without ``c``, or an unconditional one with it.

    Example:
        >>> trunk = nn.Module()
        >>> build_trunk(trunk, "mlp", {"silu": nn.SiLU}, (2, 8, 1, "silu", 2, 0), out=1, bias=True)
        >>> run_trunk(trunk, torch.zeros(3, 2), torch.tensor(0.5)).shape
        torch.Size([3, 1])
    """
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    trunk = cast(_Trunk, module)  # type only: the attributes build_trunk set
    features = [trunk.space_embedding(x), trunk.time_embedding(t.to(x.dtype))]
    embedding = getattr(trunk, "condition_embedding", None)
    if (embedding is None) != (c is None):
        has = "is conditional: pass its condition" if c is None else "takes no condition"
        raise ValueError(f"condition: this network {has}")
    if embedding is None:
        return trunk.net(torch.cat(features, dim=1))
    e = embedding(c, x.dtype)
    if trunk.film is None:  # concatenation
        return trunk.net(torch.cat([*features, e], dim=1))
    h, layers = torch.cat(features, dim=1), list(trunk.net)
    for linear, act, film in zip(layers[0:-1:2], layers[1:-1:2], trunk.film, strict=True):
        scale, shift = film(e).chunk(2, dim=1)
        h = act(linear(h)) * (1 + scale) + shift
    return layers[-1](h)


class MLPVelocity(nn.Module):
    """Velocity field ``v(x, t)`` for ``x`` of shape ``(n, d)``: an MLP on ``[x, emb(t)]``.

    The default (4 hidden layers of 256, SiLU) fits 2-D to ~100-D data.

    Args:
        dim: data dimension ``d``.
        width: hidden width. Default ``256``.
        depth: number of hidden layers. Default ``4``.
        activation: one of ``elu, gelu, relu, selu, silu, tanh``. Default ``"silu"``.
        time_frequencies: number of sinusoidal time frequencies. Default ``8``.
        space_frequencies: octaves of positional features of ``x``
            (:class:`SpaceEmbedding`); 0 (default) feeds ``x`` as it is. For densities with
            jumps (edges, bounded supports), 4-6 sharpens the edges.
        condition: the condition input of a conditional network, ``{"kind", "size",
            "fusion"}`` (see :mod:`sitransport.nn.condition`); ``None`` (default): none.

    Example:
        >>> import torch
        >>> from sitransport.nn import MLPVelocity
        >>> net = MLPVelocity(2, width=32, depth=2)
        >>> net(torch.zeros(5, 2), torch.zeros(5)).shape
        torch.Size([5, 2])
    """

    def __init__(
        self,
        dim: int,
        width: int = 256,
        depth: int = 4,
        activation: str = "silu",
        time_frequencies: int = 8,
        space_frequencies: int = 0,
        condition: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        settings = (dim, width, depth, activation, time_frequencies, space_frequencies)
        build_trunk(self, "mlp", _ACTIVATIONS, settings, out=dim, bias=True, condition=condition)

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        """Return ``v(x, t)`` (``v(x, t, c)`` for a conditional network) of shape ``(n, d)``;
        ``t`` is a scalar or of shape ``(n,)``.

        Args:
            x: points, shape ``(n, d)``.
            t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
            c: condition codes of a conditional network (see :func:`run_trunk`);
                ``None`` (default) for an unconditional one.

        Example:
            >>> import torch
            >>> net = MLPVelocity(3, width=16, depth=1)
            >>> x = torch.zeros(4, 3)
            >>> net(x, torch.tensor(0.5)).shape  # a scalar time is shared by all samples
            torch.Size([4, 3])
            >>> torch.equal(net(x, torch.tensor(0.5)), net(x, torch.full((4,), 0.5)))
            True
        """
        return run_trunk(self, x, t, c)


class VelocityDenoiser(nn.Module):
    r"""A velocity ``b(x, t)`` and a noise denoiser :math:`\eta_z(x, t) = \mathbb{E}[z | x_t = x]`
    for stochastic interpolants, trained jointly; calling it evaluates the velocity.

    The denoiser gives the score :math:`\nabla\log\rho_t = -\eta_z / \gamma(t)` for any
    base, hence SDE sampling.

    Args:
        velocity: network for ``b``.
        denoiser: network for :math:`\eta_z` (same input and output shapes).

    Example:
        >>> import torch
        >>> from sitransport.nn import MLPVelocity, VelocityDenoiser
        >>> net = VelocityDenoiser(MLPVelocity(2, width=16, depth=1), MLPVelocity(2, width=16))
        >>> x, t = torch.zeros(5, 2), torch.full((5,), 0.5)
        >>> net(x, t).shape, net.denoiser(x, t).shape
        (torch.Size([5, 2]), torch.Size([5, 2]))
        >>> net.config["kind"], net.config["denoiser"]["width"]
        ('velocity_denoiser', 16)
    """

    def __init__(self, velocity: nn.Module, denoiser: nn.Module) -> None:
        super().__init__()
        self.velocity = velocity
        self.denoiser = denoiser
        self.dim = getattr(velocity, "dim", None)
        self.config: dict[str, Any] = {
            "kind": "velocity_denoiser",
            "velocity": dict(cast(Mapping[str, Any], velocity.config)),  # ours have a config
            "denoiser": dict(cast(Mapping[str, Any], denoiser.config)),
        }

    def forward(self, x: Tensor, t: Tensor, c: Tensor | None = None) -> Tensor:
        """The velocity ``b(x, t)`` (the denoiser is :attr:`denoiser`).

        Args:
            x: points, shape ``(n, d)``.
            t: times, a scalar (shared by all samples) or a tensor of shape ``(n,)``, in ``[0, 1]``.
            c: condition codes of a conditional pair (both networks take them);
                ``None`` (default) for an unconditional one.

        Example:
            >>> import torch
            >>> net = VelocityDenoiser(MLPVelocity(2, width=8, depth=1), MLPVelocity(2, width=8))
            >>> x, t = torch.zeros(3, 2), torch.zeros(3)
            >>> torch.equal(net(x, t), net.velocity(x, t))
            True
        """
        return self.velocity(x, t) if c is None else self.velocity(x, t, c)
