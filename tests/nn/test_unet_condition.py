"""Conditional U-Net: the condition embedding added to the time embedding (labels, features),
the null code, rebuilding from the description, and unconditional networks left as they were."""

from __future__ import annotations

import pytest
import torch

from sitransport.config import MLPSpec, UNetSpec
from sitransport.nn import MLPVelocity, UNetVelocity, build_network, unet_config
from sitransport.nn.builder import fresh_network, network_spec_of, read_network

LABELS = {"kind": "labels", "size": 4}  # three labels and the null one
FEATURES = {"kind": "features", "size": 3}  # two features and the presence column


def _net(condition=None, seed=0):
    torch.manual_seed(seed)
    return UNetVelocity(**unet_config("tiny", 1, 8), condition=condition)


def _codes(condition, n=3):
    if condition["kind"] == "labels":
        return torch.arange(n) % condition["size"]
    gen = torch.Generator().manual_seed(3)
    return torch.cat([torch.randn(n, condition["size"] - 1, generator=gen), torch.ones(n, 1)], 1)


def _randomised(net, seed=0):
    """Zero-initialised layers make a fresh U-Net constant: perturb every weight."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
    return net.eval().requires_grad_(False)


@pytest.mark.parametrize("condition", [LABELS, FEATURES])
def test_output_shape_and_config(condition):
    net = _net(condition)
    x = torch.randn(3, 1, 8, 8)
    assert net(x, torch.rand(3), _codes(condition)).shape == x.shape
    assert net(x, torch.tensor(0.5), _codes(condition)).shape == x.shape
    assert net.config["condition"] == condition
    assert "condition" not in _net().config


@pytest.mark.parametrize("condition", [LABELS, FEATURES])
def test_starts_as_the_unconditional_network_of_the_same_seed(condition):
    plain, cond = _net(), _net(condition)
    shared = cond.state_dict()
    assert set(shared) - set(plain.state_dict()) == {
        k for k in shared if k.startswith("condition_embedding.")
    }
    for name, value in plain.state_dict().items():  # existing modules drew the same numbers
        assert torch.equal(value, shared[name]), name
    _randomised(plain)  # trained weights; the condition's fresh embedding adds zero
    cond.load_state_dict({**shared, **plain.state_dict()})
    x, t = torch.randn(3, 1, 8, 8), torch.rand(3)
    assert torch.equal(plain(x, t), cond.eval()(x, t, _codes(condition)))


@pytest.mark.parametrize("condition", [LABELS, FEATURES])
def test_fresh_embedding_outputs_zero(condition):
    emb = _net(condition).condition_embedding
    assert torch.equal(emb(_codes(condition)), torch.zeros(3, 64))


@pytest.mark.parametrize("condition", [LABELS, FEATURES])
def test_different_conditions_give_different_fields(condition):
    net = _randomised(_net(condition))
    x = torch.randn(1, 1, 8, 8).expand(3, 1, 8, 8)
    v = net(x, torch.full((3,), 0.4), _codes(condition))
    for i in (1, 2):
        assert float((v[0] - v[i]).abs().mean()) > 1e-3 * float(v[0].abs().mean())


def test_null_codes_work():
    for condition, null in [
        (LABELS, torch.full((2,), LABELS["size"] - 1)),
        (FEATURES, torch.zeros(2, FEATURES["size"])),
    ]:
        net = _randomised(_net(condition))
        v = net(torch.randn(2, 1, 8, 8), torch.rand(2), null)
        assert v.shape == (2, 1, 8, 8) and bool(v.isfinite().all())


def test_gradients_reach_the_embedding():
    net = _randomised(_net(FEATURES)).requires_grad_(True).train()
    net(torch.randn(2, 1, 8, 8), torch.rand(2), _codes(FEATURES, 2)).pow(2).sum().backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


@pytest.mark.parametrize("condition", [LABELS, FEATURES])
def test_build_and_read_network_round_trip(condition):
    net = _randomised(_net(condition))
    again = build_network(net.config)
    assert again.config == net.config
    again.load_state_dict(net.state_dict())
    x, t, c = torch.randn(3, 1, 8, 8), torch.rand(3), _codes(condition)
    assert torch.equal(net(x, t, c), again.eval()(x, t, c))
    read = read_network(net.config, net.state_dict(), (1, 8, 8))
    assert read.config == net.config
    assert torch.equal(net(x, t, c), read.eval()(x, t, c))


def test_read_network_refuses_weights_of_another_condition():
    net = _net(LABELS)
    config = dict(net.config, condition={"kind": "labels", "size": 7})
    with pytest.raises(ValueError, match="do not match its description"):
        read_network(config, net.state_dict(), (1, 8, 8))
    with pytest.raises(ValueError, match="do not match its description"):
        read_network(_net().config, net.state_dict(), (1, 8, 8))


@pytest.mark.parametrize(
    "make",
    [
        lambda: _net(LABELS),
        lambda: MLPVelocity(2, width=8, depth=1, condition=dict(LABELS, fusion="film")),
    ],
)
def test_fresh_network_keeps_the_condition(make):
    net = make()
    shape = (1, 8, 8) if isinstance(net, UNetVelocity) else (2,)
    fresh = fresh_network(net, shape, MLPSpec())
    assert type(fresh) is type(net) and fresh.config == net.config
    assert "condition" in fresh.config


def test_spec_of_a_conditional_unet_leaves_the_condition_out():
    spec = network_spec_of(_net(LABELS), (1, 8, 8))
    assert isinstance(spec, UNetSpec) and "condition" not in spec.options
    assert spec == network_spec_of(_net(), (1, 8, 8))


@pytest.mark.parametrize(
    ("condition", "exc", "match"),
    [
        ({"kind": "labels", "size": 4, "fusion": "film"}, ValueError, "condition has keys"),
        ({"kind": "pixels", "size": 4}, ValueError, "condition kind"),
        ({"kind": "labels", "size": 1}, ValueError, "condition size"),
        (["labels", 4], TypeError, "condition must be a dict"),
    ],
)
def test_bad_condition(condition, exc, match):
    with pytest.raises(exc, match=match):
        _net(condition)


def test_condition_mismatch_errors():
    x, t = torch.zeros(2, 1, 8, 8), torch.rand(2)
    with pytest.raises(ValueError, match="^condition: this network is conditional"):
        _net(LABELS)(x, t)
    with pytest.raises(ValueError, match="^condition: this network takes no condition"):
        _net()(x, t, torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="condition codes of labels are int64"):
        _net(LABELS)(x, t, torch.zeros(2, 3))
    with pytest.raises(ValueError, match=r"condition codes of features are float \(n, 3\)"):
        _net(FEATURES)(x, t, torch.zeros(2, 5))
