"""The contract every velocity network kind keeps: the output has the input's shape and
dtype, gradients reach every parameter, and the network is rebuilt from its ``config``
(:func:`~sitransport.nn.build_network`, :func:`~sitransport.nn.read_network`) with the same
outputs and from its spec (``network_spec_of`` -> ``build_from_spec``) with the same
architecture.

Parametrised over the builder's own table of kinds: a kind added to
:func:`~sitransport.nn.build_network` without an entry in :data:`NETWORKS` fails every test
of the suite.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

from sitransport.nn import (
    MLPVelocity,
    PotentialVelocity,
    UNetVelocity,
    VelocityDenoiser,
    build_network,
    read_network,
    unet_config,
)
from sitransport.nn.builder import (
    _NETWORKS,
    build_from_spec,
    network_spec,
    network_spec_of,
    seeded_network,
)
from tests.conftest import TOLERANCES

VECTORS = (3,)
IMAGES = (1, 8, 8)


def _mlp() -> nn.Module:
    return MLPVelocity(VECTORS[0], width=8, depth=2)


def _potential() -> nn.Module:
    return PotentialVelocity(VECTORS[0], width=8, depth=2)


def _unet() -> nn.Module:  # the tiny preset (two levels, attention at 4x4), 8 base channels
    return UNetVelocity(
        **unet_config("tiny", IMAGES[0], IMAGES[1:], base_channels=8, norm_groups=4)
    )


#: Tiny networks of each kind of the builder, with the sample shape they take.
NETWORKS: dict[str, list[tuple[Callable[[], nn.Module], tuple[int, ...]]]] = {
    "mlp": [(_mlp, VECTORS)],
    "potential": [(_potential, VECTORS)],
    "unet": [(_unet, IMAGES)],
    "velocity_denoiser": [
        (lambda: VelocityDenoiser(_mlp(), _mlp()), VECTORS),
        (lambda: VelocityDenoiser(_unet(), _unet()), IMAGES),
    ],
}

CASES = [
    pytest.param(kind, *entry, id=f"{kind}-{i}")
    for kind in sorted(_NETWORKS)
    for i, entry in enumerate(NETWORKS.get(kind, [(None, None)]))
]


def build(kind: str, make: Callable[[], nn.Module] | None, dtype=torch.float32) -> nn.Module:
    """The network, seeded, its weights moved off their initialisation (zero-initialised
    output layers would hide the other parameters' gradients), in eval mode."""
    if make is None:
        pytest.fail(f"network kind {kind!r} of build_network has no entry in NETWORKS")
    torch.manual_seed(0)
    net = make().to(dtype)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net.eval()


def outputs(net: nn.Module, x: torch.Tensor, t: torch.Tensor) -> list[torch.Tensor]:
    """What training evaluates: the velocity, and the denoiser of a velocity-denoiser pair."""
    out = [net(x, t)]
    if isinstance(net, VelocityDenoiser):
        out.append(net.denoiser(x, t))
    return out


def inputs(shape: tuple[int, ...], dtype: torch.dtype, n: int = 3) -> tuple:
    g = torch.Generator().manual_seed(2)
    x = torch.randn(n, *shape, generator=g, dtype=dtype)
    return x, torch.rand(n, generator=g, dtype=dtype)


def assert_same_outputs(net: nn.Module, again: nn.Module, shape: tuple[int, ...]) -> None:
    x, t = inputs(shape, torch.float64)
    for a, b in zip(outputs(again.eval(), x, t), outputs(net, x, t), strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), **TOLERANCES[torch.float64])


def test_every_kind_of_the_builder_has_networks():
    assert sorted(NETWORKS) == sorted(_NETWORKS)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_output_has_the_input_shape_and_dtype(kind, make, shape, dtype):
    net = build(kind, make, dtype)
    x, t = inputs(shape, dtype)
    for time in (t, t[0]):  # per-sample times, and one time shared by all samples
        for out in outputs(net, x, time):
            assert out.shape == x.shape and out.dtype == dtype


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_gradients_reach_every_parameter(kind, make, shape):
    net = build(kind, make, torch.float64)
    x, t = inputs(shape, torch.float64)
    w = torch.randn(x.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    sum((out * w).sum() for out in outputs(net, x, t)).backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not bool(p.grad.any())]
    assert not missing, f"no gradient reaches {missing}"


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_build_network_from_config_gives_the_same_outputs(kind, make, shape):
    net = build(kind, make, torch.float64)
    again = build_network(net.config).to(torch.float64)
    assert type(again) is type(net) and again.config == net.config
    again.load_state_dict(net.state_dict())
    assert_same_outputs(net, again, shape)


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_read_network_gives_the_same_outputs(kind, make, shape):
    net = build(kind, make, torch.float64)
    again = read_network(net.config, net.state_dict(), shape)
    assert type(again) is type(net) and again.config == net.config
    assert_same_outputs(net, again, shape)


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_read_network_refuses_another_sample_shape(kind, make, shape):
    net = build(kind, make, torch.float64)
    other = (shape[0] + 1, *shape[1:])
    with pytest.raises(ValueError, match="shape"):
        read_network(net.config, net.state_dict(), other)


@pytest.mark.parametrize(("kind", "make", "shape"), CASES)
def test_spec_rebuilds_the_same_architecture(kind, make, shape):
    """The spec of a network (what a fit records) builds the same layers: the velocity by
    ``build_from_spec``, a velocity-denoiser pair as fit builds it (``seeded_network``)."""
    net = build(kind, make)
    spec = network_spec_of(net, shape)
    assert network_spec(spec, shape) == spec  # fit(network=spec) accepts it as it is
    pair = isinstance(net, VelocityDenoiser)
    again = seeded_network(spec, shape, pair, seed=0) if pair else build_from_spec(spec, shape)
    assert type(again) is type(net) and again.config == net.config
    want = {k: v.shape for k, v in net.state_dict().items()}
    assert {k: v.shape for k, v in again.state_dict().items()} == want
    if not pair:  # and fit(network=kind) chooses this kind
        assert build_from_spec(network_spec(kind, shape), shape).config["kind"] == kind


def test_every_spec_kind_builds_and_fit_accepts_it():
    """The kinds an MLPSpec may name (``MLP_KINDS``, the one list) are network kinds of the
    builder, and ``fit(network=...)``'s choices are read from it: a kind added to one place
    and not the other fails here."""
    from sitransport.config import MLP_KINDS
    from sitransport.nn.builder import _NETWORKS, network_spec

    assert set(MLP_KINDS) <= set(_NETWORKS)
    for kind in MLP_KINDS:
        assert network_spec(kind, (3,)).kind == kind
