"""PotentialVelocity: a velocity that is the gradient of a scalar potential (curl-free)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.nn import MLPVelocity, PotentialVelocity, build_network
from sitransport.ode import divergence_exact


@pytest.fixture
def net() -> PotentialVelocity:
    torch.manual_seed(0)
    return PotentialVelocity(3, width=16, depth=2, time_frequencies=2).double()


def test_velocity_is_the_gradient_of_the_potential(net):
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    t = torch.rand(6, dtype=torch.float64)
    grad = torch.autograd.grad(net.potential(x, t).sum(), x)[0]
    v = net(x, t)
    assert v.shape == (6, 3) and net.potential(x, t).shape == (6,)
    torch.testing.assert_close(v, grad, rtol=1e-12, atol=1e-12)
    with torch.no_grad():  # sampling runs under no_grad: the gradient is still taken
        torch.testing.assert_close(net(x, t), grad, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(net(x, torch.tensor(0.3)), net(x, torch.full((6,), 0.3)))


def test_jacobian_is_symmetric_curl_free_and_its_trace_the_divergence(net):
    x = torch.randn(5, 3, dtype=torch.float64)
    t = torch.tensor(0.7, dtype=torch.float64)
    jac = torch.func.vmap(torch.func.jacrev(lambda z: net(z[None], t)[0]))(x).detach()
    assert float(jac.abs().max()) > 1e-3  # not trivially zero
    torch.testing.assert_close(jac, jac.transpose(1, 2), rtol=0, atol=1e-12)
    _, div = divergence_exact(net, x, t)
    torch.testing.assert_close(div, jac.diagonal(dim1=1, dim2=2).sum(1))
    # an unconstrained MLP's Jacobian is not symmetric: the check can fail
    torch.manual_seed(0)
    mlp = MLPVelocity(3, width=16, depth=2).double()
    jm = torch.func.vmap(torch.func.jacrev(lambda z: mlp(z[None], t)[0]))(x).detach()
    assert float((jm - jm.transpose(1, 2)).abs().max()) > 1e-3


def test_training_gradients_reach_every_weight(net):
    x, t = torch.randn(8, 3, dtype=torch.float64), torch.rand(8, dtype=torch.float64)
    net(x, t).pow(2).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and float(p.grad.abs().sum()) > 0, name


def test_config_rebuilds_and_bad_settings_raise(net):
    again = build_network(net.config)
    assert type(again) is PotentialVelocity and again.config == net.config
    keys = again.load_state_dict(net.float().state_dict())
    assert not keys.missing_keys and not keys.unexpected_keys
    with pytest.raises(ValueError, match="activation"):
        PotentialVelocity(2, activation="relu")  # piecewise-constant velocity: refused


def test_fit_with_a_potential_network_saves_loads_and_reflows(tmp_path):
    pair = st.datasets.known_ot_pair("mixture", 2, seed=0)
    x0, x1 = pair.sample(600, seed=1)
    net = st.MLPSpec("potential", width=16, depth=2)
    flow = st.fit(x0, x1, network=net, steps=10, progress=False)
    assert type(flow.network) is PotentialVelocity and flow.config.network.kind == "potential"
    flow.save(tmp_path / "f.sit")
    again = st.load(tmp_path / "f.sit")
    assert type(again.network) is PotentialVelocity
    x = pair.source.sample(20, seed=2)
    np.testing.assert_array_equal(again.push_forward(x), flow.push_forward(x))
    straight = st.reflow(flow, 200, steps=3, progress=False)
    assert straight.network.config == flow.network.config


def test_fit_refuses_a_potential_network_for_images():
    images = np.random.default_rng(0).random((10, 1, 4, 4))
    with pytest.raises(ValueError, match="network='potential' is an MLP, which needs vectors"):
        st.fit("gaussian", images, network="potential", steps=1, progress=False)
