"""TransportFlow.from_velocity: a user's velocity field (and the calling conventions of
torchcfm and Meta flow_matching models) as a flow, checked against the closed form of the
linear optimal-transport path between two isotropic Gaussians."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.flow import TransportFlow

MU = torch.tensor([1.0, -0.5], dtype=torch.float64)
SIGMA = 2.0


def ot_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Velocity of ``x_t = (1 - t) x0 + t (mu + sigma x0)``, ``x0 ~ N(0, I)``: the linear
    interpolant between ``N(0, I)`` and ``N(mu, sigma^2 I)`` under their OT coupling."""
    t = t[:, None]
    mu = MU.to(x)
    return mu + (SIGMA - 1.0) * (x - t * mu) / (1.0 - t + t * SIGMA)


def target_log_prob(y: np.ndarray) -> np.ndarray:
    d = y.shape[1]
    r2 = np.sum((y - MU.numpy()) ** 2, axis=1)
    return -0.5 * r2 / SIGMA**2 - d * math.log(SIGMA) - 0.5 * d * math.log(2 * math.pi)


def test_sample_moments_match_the_closed_form_target():
    flow = TransportFlow.from_velocity(ot_velocity, dim=2)
    n = 4000
    y = flow.sample(n, seed=0)
    assert y.shape == (n, 2) and y.dtype == np.float64
    se = SIGMA / math.sqrt(n)
    np.testing.assert_allclose(y.mean(0), MU.numpy(), atol=4 * se)
    np.testing.assert_allclose(y.std(0), SIGMA, atol=4 * se)  # sd of a sd ~ sigma/sqrt(2n)


def test_the_field_sees_one_time_per_sample():
    shapes = []

    def v(x, t):
        shapes.append((tuple(x.shape), tuple(t.shape), t.dtype))
        return ot_velocity(x, t)

    flow = TransportFlow.from_velocity(v, dim=2)
    flow.push_forward(np.zeros((5, 2)))
    flow.velocity(np.zeros((3, 2)), np.array([0.1, 0.2, 0.3]))
    assert {s[:2] for s in shapes} <= {((5, 2), (5,)), ((3, 2), (3,))}
    assert all(s[2] == torch.float64 for s in shapes)


def test_push_forward_pull_back_and_log_prob_match_the_closed_form():
    flow = TransportFlow.from_velocity(ot_velocity, base="gaussian", dim=2)
    x = np.random.default_rng(1).standard_normal((50, 2))
    np.testing.assert_allclose(flow.push_forward(x), MU.numpy() + SIGMA * x, atol=1e-4)
    np.testing.assert_allclose(flow.pull_back(MU.numpy() + SIGMA * x), x, atol=1e-4)
    y = MU.numpy() + SIGMA * x
    np.testing.assert_allclose(flow.log_prob(y, method="exact"), target_log_prob(y), atol=1e-4)
    est = flow.log_prob_estimate(y, method="hutchinson", probes=8, seed=0, progress=False)
    assert est.stderr.shape == (50,) and np.all(est.stderr >= 0)
    # a Jacobian proportional to I: Rademacher probes measure its trace exactly (stderr 0)
    err = np.abs(est.log_prob - target_log_prob(y))
    assert np.all(err <= 4 * est.stderr + 1e-4)


def test_a_torch_distribution_base_gives_its_density():
    base = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    flow = TransportFlow.from_velocity(ot_velocity, base=base)
    assert flow.shape == (2,)
    y = np.random.default_rng(2).normal(size=(20, 2))
    np.testing.assert_allclose(flow.log_prob(y, method="exact"), target_log_prob(y), atol=1e-4)


def test_a_sample_base_samples_but_refuses_log_prob():
    x0 = np.random.default_rng(3).standard_normal((500, 2))
    flow = TransportFlow.from_velocity(ot_velocity, base=x0)
    assert flow.sample(10, seed=0).shape == (10, 2)
    with pytest.raises(ValueError, match="base"):
        flow.log_prob(np.zeros((2, 2)))


def test_transport_report_sees_a_straight_optimal_path():
    flow = TransportFlow.from_velocity(ot_velocity, dim=2)
    x0 = np.random.default_rng(4).standard_normal((400, 2))
    x1 = MU.numpy() + SIGMA * np.random.default_rng(5).standard_normal((400, 2))
    report = st.metrics.transport_report(flow, x0, x1)
    exact = float(MU @ MU) + 2 * (SIGMA - 1) ** 2  # W2^2 of the two laws
    assert report.kinetic_energy == pytest.approx(report.transport_cost, rel=1e-3)  # straight
    assert abs(report.kinetic_energy - exact) < 4 * report.kinetic_energy_stderr + 0.2
    assert math.isfinite(report.npe) and math.isfinite(report.w2_bound)


def test_save_is_refused_with_a_clear_error(tmp_path):
    flow = TransportFlow.from_velocity(ot_velocity, dim=2)
    with pytest.raises(TypeError, match="from_velocity"):
        flow.save(tmp_path / "flow.sit")
    assert not (tmp_path / "flow.sit").exists()


def test_bad_arguments_are_named():
    with pytest.raises(TypeError, match="fn"):
        TransportFlow.from_velocity("not callable", dim=2)
    with pytest.raises(ValueError, match="dim"):
        TransportFlow.from_velocity(ot_velocity)
    with pytest.raises(ValueError, match="dim"):
        TransportFlow.from_velocity(ot_velocity, dim=0)
    with pytest.raises(ValueError, match="convention"):
        TransportFlow.from_velocity(ot_velocity, dim=2, convention="nope")
    with pytest.raises(ValueError, match="dim"):
        TransportFlow.from_velocity(ot_velocity, base=np.zeros((10, 3)), dim=2)
    with pytest.raises(ValueError, match="shape"):
        TransportFlow.from_velocity(lambda x, t: x[:, :1], dim=2).push_forward(np.zeros((2, 2)))


class TxModel(torch.nn.Module):
    """``model(t, x)``, the convention of torchcfm's UNet wrapper."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(3, 2)

    def forward(self, t, x):
        return self.lin(torch.cat([x, t.reshape(-1, 1).expand(x.shape[0], 1)], 1))


def test_tx_convention_calls_model_t_x():
    torch.manual_seed(0)
    model = TxModel()
    flow = TransportFlow.from_velocity(model, dim=2, convention="torchcfm_unet")
    x = torch.randn(4, 2)
    t = torch.full((4,), 0.3)
    with torch.no_grad():
        expected = model(t, x)
    torch.testing.assert_close(flow.velocity(x, 0.3), expected)
    assert flow.dtype == torch.float32  # the model's parameters set the solve's dtype


def test_torchcfm_mlp_convention():
    models = pytest.importorskip("torchcfm.models", reason="torchcfm (bench extra) not installed")
    torch.manual_seed(0)
    model = models.MLP(dim=2, w=16, time_varying=True)
    flow = TransportFlow.from_velocity(model, dim=2, convention="torchcfm_mlp")
    x = torch.randn(6, 2)
    with torch.no_grad():
        expected = model(torch.cat([x, torch.full((6, 1), 0.25)], 1))
    torch.testing.assert_close(flow.velocity(x, 0.25), expected)
    y = flow.sample(200, seed=0)
    lp = flow.log_prob(y, method="exact", progress=False)
    plain = TransportFlow.from_velocity(lambda x, t: model(torch.cat([x, t[:, None]], 1)), dim=2)
    y32 = torch.from_numpy(y).float()  # a parameter-free callable solves in y's dtype
    lp_plain = plain.log_prob(y32, method="exact", progress=False).numpy()
    np.testing.assert_allclose(lp, lp_plain, atol=1e-4)
    assert np.all(np.isfinite(lp))


def test_flow_matching_convention():
    wrapper = pytest.importorskip(
        "flow_matching.utils", reason="flow_matching (bench extra) not installed"
    )

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = torch.nn.Linear(3, 2)

        def forward(self, x, t):
            return torch.tanh(self.lin(torch.cat([x, t.reshape(-1, 1).expand(len(x), 1)], 1)))

    torch.manual_seed(0)
    model = wrapper.ModelWrapper(Net())
    flow = TransportFlow.from_velocity(model, dim=2, convention="flow_matching")
    x = torch.randn(5, 2)
    with torch.no_grad():
        expected = model(x=x, t=torch.full((5,), 0.7))
    torch.testing.assert_close(flow.velocity(x, 0.7), expected)
    y = flow.sample(100, seed=0)
    assert np.all(np.isfinite(flow.log_prob(y, progress=False)))


def test_torchcfm_unet_convention_on_images():
    unet = pytest.importorskip(
        "torchcfm.models.unet", reason="torchcfm (bench extra) not installed"
    )
    torch.manual_seed(0)
    model = unet.UNetModel(  # torchcfm's UNetModelWrapper, forward(t, x)
        dim=(1, 8, 8),
        num_channels=32,
        num_res_blocks=1,
        channel_mult=(1, 2),
        attention_resolutions="4",
    )
    flow = TransportFlow.from_velocity(model, dim=(1, 8, 8), convention="torchcfm_unet")
    assert flow.shape == (1, 8, 8)
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        expected = model(torch.full((3,), 0.3), x)
    torch.testing.assert_close(flow.velocity(x, 0.3), expected)
    y = flow.sample(3, seed=0, nfe=8)
    assert y.shape == (3, 1, 8, 8)
    lp = flow.log_prob(y, method="hutchinson", ode=st.ODEOptions.budget(8), progress=False)
    assert lp.shape == (3,) and np.all(np.isfinite(lp))


def independent_velocity(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The marginal velocity of the same linear path under the independent coupling:
    ``x_t ~ N(mu t, c_t^2 I)``, ``c_t^2 = (1 - t)^2 + t^2 sigma^2``."""
    t = t[:, None]
    mu = MU.to(x)
    c2 = (1 - t) ** 2 + t**2 * SIGMA**2
    return mu + (t * SIGMA**2 - (1 - t)) / c2 * (x - t * mu)


def test_score_and_sde_sampler_use_the_named_interpolant():
    flow = TransportFlow.from_velocity(independent_velocity, dim=2)  # linear, independent
    n = 4000
    y = flow.sample(n, seed=0, method="sde", steps=100)
    se = SIGMA / math.sqrt(n)
    np.testing.assert_allclose(y.mean(0), MU.numpy(), atol=5 * se)
    np.testing.assert_allclose(y.std(0), SIGMA, atol=5 * se)
    x = np.random.default_rng(6).normal(size=(5, 2))
    c2 = 0.5**2 + 0.5**2 * SIGMA**2
    np.testing.assert_allclose(flow.score(x, 0.5), -(x - 0.5 * MU.numpy()) / c2, atol=1e-6)
