"""U-Net velocity: shapes, time conditioning, presets' parameter counts, config round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.nn import UNET_PRESETS, UNetVelocity, build_network, unet_config

# parameter counts of the presets (a change of architecture must update them knowingly)
COUNTS = {
    ("tiny", 1, 8): 75_249,
    ("small", 3, 32): 6_472_451,
    ("cifar10", 3, 32): 142_665_731,
    ("imagenet32", 3, 32): 195_873_539,
    ("flowers128", 3, 128): 85_570_435,
}


def _randomised(net: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Zero-initialised layers make a fresh U-Net the constant 0: perturb every weight."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net


@pytest.mark.parametrize(("preset", "c", "size"), list(COUNTS))
def test_preset_parameter_counts(preset, c, size):
    with torch.device("meta"):  # no memory for the large presets
        net = UNetVelocity(**unet_config(preset, c, size))
    assert sum(p.numel() for p in net.parameters()) == COUNTS[(preset, c, size)]
    assert set(UNET_PRESETS) == {k[0] for k in COUNTS}
    if preset == "tiny":
        assert sum(p.numel() for p in net.parameters()) < 100_000
    if preset == "cifar10":
        assert net.config["base_channels"] == 256


@pytest.mark.parametrize(
    ("c", "size", "mult", "attn"),
    [(1, (8, 8), [1, 1], [4]), (3, (16, 8), [1, 2, 2], [8, 4]), (2, (4, 12), [1], [])],
)
def test_output_shape_and_dtype(c, size, mult, attn):
    net = UNetVelocity(
        **unet_config("tiny", c, size, channel_mult=mult, attention_resolutions=attn)
    )
    x = torch.randn(3, c, *size)
    assert net(x, torch.rand(3)).shape == x.shape
    assert net(x, torch.tensor(0.3)).shape == x.shape  # scalar time
    net64 = net.to(torch.float64)
    assert net64(x.double(), torch.rand(3, dtype=torch.float64)).dtype == torch.float64


def test_starts_at_zero_velocity():
    net = UNetVelocity(**unet_config("tiny", 1, 8))
    assert torch.equal(net(torch.randn(4, 1, 8, 8), torch.rand(4)), torch.zeros(4, 1, 8, 8))


def test_time_conditioning_changes_the_output():
    net = _randomised(UNetVelocity(**unet_config("tiny", 1, 8))).eval().requires_grad_(False)
    x = torch.randn(4, 1, 8, 8, generator=torch.Generator().manual_seed(1))
    v0, v1 = net(x, torch.zeros(4)), net(x, torch.ones(4))
    assert float((v0 - v1).abs().mean()) > 1e-3 * float(v0.abs().mean())
    # and the same time twice gives the same field (deterministic in eval mode)
    assert torch.equal(v0, net(x, torch.zeros(4)))


def test_gradients_reach_every_parameter():
    net = _randomised(UNetVelocity(**unet_config("tiny", 1, 8)))
    net(torch.randn(2, 1, 8, 8), torch.rand(2)).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_dropout_is_active_in_training_only():
    net = _randomised(UNetVelocity(**unet_config("tiny", 1, 8, dropout=0.5)))
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    net.train()
    assert not torch.equal(net(x, t), net(x, t))
    net.eval()
    assert torch.equal(net(x, t), net(x, t))


def test_config_round_trip_and_saved_flow(tmp_path):
    net = _randomised(UNetVelocity(**unet_config("tiny", 1, 8)))
    again = build_network(net.config)
    again.load_state_dict(net.state_dict())
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    assert torch.equal(net.eval()(x, t), again.eval()(x, t))
    flow = st.TransportFlow(net, "linear", base="gaussian")  # shape from the network
    assert flow.shape == (1, 8, 8)
    flow.save(tmp_path / "f.sit")
    loaded = st.load(tmp_path / "f.sit")
    y = np.random.default_rng(0).normal(size=(2, 1, 8, 8))
    ode = st.ODEOptions(method="rk4", steps=4)
    np.testing.assert_array_equal(loaded.push_forward(y, ode=ode), flow.push_forward(y, ode=ode))


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"image_size": 6, "channel_mult": [1, 2, 2]}, ValueError, "divisible by"),
        ({"norm_groups": 5}, ValueError, "norm_groups=5 must divide"),
        ({"dropout": 1.5}, ValueError, "dropout"),
        ({"channel_mult": []}, ValueError, "channel_mult"),
        ({"image_size": (8, 8, 8)}, ValueError, "image_size"),
        ({"heads": 3}, ValueError, "heads must divide"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    args = dict(unet_config("tiny", 1, 8), **kwargs)
    with pytest.raises(exc, match=match):
        UNetVelocity(**args)


def test_unknown_preset_and_override():
    with pytest.raises(ValueError, match="valid values are"):
        unet_config("huge", 3, 32)
    with pytest.raises(ValueError, match="unknown U-Net arguments"):
        unet_config("tiny", 3, 32, width=4)


def test_wrong_input_shape_names_expected():
    net = UNetVelocity(**unet_config("tiny", 1, 8))
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1, 8, 8\)"):
        net(torch.zeros(2, 3, 8, 8), torch.rand(2))
