"""TransportFlow: array types kept, transport round trips, trajectories, errors, save/load."""

from __future__ import annotations

import io
import os
import pickle

import numpy as np
import pytest
import torch
import xarray as xr

import sitransport as st
from sitransport.flow import Normalization, TransportFlow
from sitransport.nn import MLPVelocity
from sitransport.ode import STAGES, integrate
from tests.helpers import rotate, rotation_flow


@pytest.fixture(scope="module")
def small_flow() -> TransportFlow:
    x1 = st.datasets.sample("8gaussians", 2000, seed=0)
    return st.fit(
        "gaussian", x1, steps=60, network=st.MLPSpec(width=32, depth=2), progress=False, seed=0
    )


def test_push_forward_is_exact_rotation():
    x = np.random.default_rng(0).standard_normal((50, 2))
    flow = rotation_flow()
    np.testing.assert_allclose(flow.push_forward(x), rotate(x, 1.0), atol=1e-4)
    np.testing.assert_allclose(flow.pull_back(rotate(x, 1.0)), x, atol=1e-4)
    res = flow.transport(x, start=0.0, end=0.5)
    np.testing.assert_allclose(res.x, rotate(x, 0.5), atol=1e-4)
    assert res.nfe > 0


@pytest.mark.parametrize("method", ["dopri5", "rk4", "heun3", "midpoint", "euler"])
def test_velocity_never_evaluated_outside_unit_interval(method):
    seen = []

    def v(x, t):
        seen.append(float(t))
        return torch.sin(3 * x) + t

    flow = TransportFlow(v, "linear", base="gaussian", shape=(2,), ode=st.ODEOptions(method=method))
    x = np.random.default_rng(0).standard_normal((30, 2))
    flow.pull_back(flow.push_forward(x))
    flow.log_prob(x)
    assert min(seen) >= 0.0 and max(seen) <= 1.0 and len(seen) > 10


# solver convergence (the order of each fixed-step solver, the error of each adaptive one
# against its tolerance): tests/ode/test_integrator_order.py


@pytest.mark.parametrize(
    ("nfe", "method", "steps", "used"),
    [
        (1, "euler", 1, 1),
        (2, "midpoint", 1, 2),
        (3, "heun3", 1, 3),
        (4, "rk4", 1, 4),
        (5, "rk4", 1, 4),
        (8, "rk4", 2, 8),
        (11, "rk4", 2, 8),
        (16, "rk4", 4, 16),
    ],
)
def test_budget_picks_the_scheme_and_costs_what_it_says(nfe, method, steps, used):
    options = st.ODEOptions.budget(nfe)
    assert (options.method, options.steps, options.nfe) == (method, steps, used)
    assert used <= nfe
    flow = rotation_flow()
    x = np.random.default_rng(0).standard_normal((7, 2))
    for start, end in ((0.0, 1.0), (1.0, 0.0), (0.1, 0.7)):
        assert flow.transport(x, start=start, end=end, nfe=nfe).nfe == used
        assert flow.transport(x, start=start, end=end, ode=options).nfe == used
    np.testing.assert_array_equal(flow.push_forward(x, nfe=nfe), flow.push_forward(x, ode=options))
    assert flow.trajectory(x, np.linspace(0, 1, 5), nfe=nfe).attrs["nfe"] == used


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("span", [(0.0, 1.0), (1.0, 0.0), (0.0, 0.3), (0.7, 0.1)])
def test_fixed_steps_cost_exactly_steps_times_stages(dtype, span):
    """k steps of size span / k: no extra tiny step when span / step rounds above k (with
    torchdiffeq's step_size, e.g. 49 Euler steps over [0, 1] in float64 cost 50)."""
    seen = []

    def v(x, t):
        seen.append(float(t))
        return torch.ones_like(x)

    x = torch.zeros(1, 2, dtype=dtype)
    times = torch.tensor(span).to(dtype)
    for k in range(1, 120):
        res = integrate(v, x, torch.tensor(span), st.ODEOptions(method="euler", steps=k))
        assert res.nfe == k
    for method in ("midpoint", "heun3", "rk4"):
        res = integrate(v, x, torch.tensor(span), st.ODEOptions(method=method, steps=61))
        assert res.nfe == 61 * STAGES[method]
    assert float(times.min()) <= min(seen) and max(seen) <= float(times.max())


def test_normalization_is_applied_consistently():
    """A similarity normalisation does not change the map of a rotation about the shift."""
    shift = torch.tensor([3.0, -1.0], dtype=torch.float64)
    flow = rotation_flow(normalization=Normalization(shift, 2.5))
    x = np.random.default_rng(1).standard_normal((10, 2)) + shift.numpy()
    expected = rotate(x - shift.numpy(), 1.0) + shift.numpy()
    np.testing.assert_allclose(flow.push_forward(x), expected, atol=1e-4)
    v = flow.velocity(x, 0.2)
    np.testing.assert_allclose(v, (x - shift.numpy()) @ np.array([[0.0, -1.0], [1.0, 0.0]]).T)


def test_types_round_trip(small_flow):
    x = np.random.default_rng(0).standard_normal((7, 2))
    out = small_flow.push_forward(x)
    assert isinstance(out, np.ndarray) and out.dtype == np.float64 and out.shape == (7, 2)
    out32 = small_flow.push_forward(x.astype(np.float32))
    assert out32.dtype == np.float32
    t = torch.from_numpy(x)
    out_t = small_flow.push_forward(t)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.numpy(), out, rtol=1e-6)
    da = xr.DataArray(x, dims=("sample", "dim"), coords={"sample": np.arange(7) + 10})
    out_x = small_flow.push_forward(da)
    assert isinstance(out_x, xr.DataArray) and out_x.dims == ("sample", "dim")
    np.testing.assert_array_equal(out_x["sample"].values, np.arange(7) + 10)
    lp = small_flow.log_prob(da)
    assert isinstance(lp, xr.DataArray) and lp.dims == ("sample",)


def test_round_trip_identity(small_flow):
    y = st.datasets.sample("8gaussians", 200, seed=5)
    x = small_flow.pull_back(y)
    np.testing.assert_allclose(small_flow.push_forward(x), y, atol=5e-3)


def test_sample_and_trajectory(small_flow):
    y = small_flow.sample(100, seed=3)
    assert y.shape == (100, 2)
    np.testing.assert_array_equal(y, small_flow.sample(100, seed=3))
    assert not np.array_equal(y, small_flow.sample(100, seed=4))
    x = np.random.default_rng(0).standard_normal((5, 2))
    traj = small_flow.trajectory(x, times=np.linspace(0, 1, 11))
    assert traj.dims == ("time", "sample", "dim") and traj.shape == (11, 5, 2)
    np.testing.assert_allclose(traj.sel(time=0.0).values, x)
    np.testing.assert_allclose(traj.isel(time=-1).values, small_flow.push_forward(x), atol=1e-4)
    back = small_flow.trajectory(traj.isel(time=-1).values, times=[1.0, 0.5, 0.0])
    np.testing.assert_allclose(back.isel(time=-1).values, x, atol=1e-3)


def test_log_prob_needs_base_density():
    x0 = st.datasets.sample("moons", 500, seed=0)
    x1 = st.datasets.sample("8gaussians", 500, seed=0)
    flow = st.fit(x0, x1, steps=5, network=st.MLPSpec(width=8, depth=1), progress=False)
    assert flow.sample(3, seed=0).shape == (3, 2)
    with pytest.raises(ValueError, match="log_prob needs a density for rho0.*samples"):
        flow.log_prob(x1[:4])


def test_log_prob_methods(small_flow):
    y = st.datasets.sample("8gaussians", 20, seed=1)
    exact = small_flow.log_prob_estimate(y, method="exact")
    np.testing.assert_array_equal(exact.stderr, 0.0)
    hutch = small_flow.log_prob_estimate(y, method="hutchinson", probes=32, seed=0)
    assert np.all(np.abs(hutch.log_prob - exact.log_prob) <= 5 * hutch.stderr + 1e-4)
    with pytest.raises(ValueError, match="unknown method 'trace'"):
        small_flow.log_prob(y, method="trace")


@pytest.mark.parametrize(
    ("call", "exc", "match"),
    [
        (lambda f: f.push_forward(np.zeros((3, 3))), ValueError, r"trailing shape \(2,\)"),
        (lambda f: f.push_forward(np.zeros(3)), ValueError, r"shape \(n, d\)"),
        (lambda f: f.push_forward(np.zeros((3, 2), dtype=int)), TypeError, "floating dtype"),
        (lambda f: f.push_forward(np.full((3, 2), np.nan)), ValueError, "must be finite"),
        (lambda f: f.push_forward([[0.0, 1.0]]), TypeError, "numpy.ndarray, torch.Tensor"),
        (lambda f: f.velocity(np.zeros((3, 2)), 1.5), ValueError, r"expected t in \[0, 1\]"),
        (lambda f: f.velocity(np.zeros((3, 2)), np.zeros(4)), ValueError, r"shape \(3,\)"),
        (
            lambda f: f.trajectory(np.zeros((3, 2)), [0.0, 0.5, 0.2]),
            ValueError,
            "monotone|strictly",
        ),
        (lambda f: f.sample(0), ValueError, "n must be an integer >= 1"),
        (lambda f: f.push_forward(np.zeros((3, 2)), ode="rk4"), TypeError, "ODEOptions"),
        (lambda f: f.push_forward(np.zeros((3, 2)), nfe=0), ValueError, "nfe must be an .*got 0"),
        (lambda f: f.pull_back(np.zeros((3, 2)), nfe=2.0), TypeError, "nfe must be an integer"),
        (
            lambda f: f.transport(np.zeros((3, 2)), nfe=4, ode=st.ODEOptions()),
            ValueError,
            "pass ode= or nfe=, not both",
        ),
        (
            lambda f: f.trajectory(np.zeros((3, 2)), [0.0, 1.0], nfe=True),
            TypeError,
            r"nfe must be an integer in \[1, 40000000\], got True",
        ),
        (
            lambda f: f.sample(3, nfe=-1),
            ValueError,
            r"nfe must be an integer in \[1, 40000000\], got -1",
        ),
        (lambda f: f.sample(3, method="sde", nfe=4), ValueError, "nfe=4 .* method='sde'"),
    ],
)
def test_errors(small_flow, call, exc, match):
    with pytest.raises(exc, match=match):
        call(small_flow)


def test_ode_options_validate():
    with pytest.raises(ValueError, match="unknown ODE method 'rk45'; valid values are: dopri5"):
        st.ODEOptions(method="rk45")
    with pytest.raises(ValueError, match=r"steps must be an integer in \[1, 10000000\], got 0"):
        st.ODEOptions(steps=0)
    with pytest.raises(ValueError, match=r"nfe must be an integer in \[1, 40000000\], got 0"):
        st.ODEOptions.budget(0)
    with pytest.raises(TypeError, match=r"nfe must be an integer in \[1, 40000000\], got 4.0"):
        st.ODEOptions.budget(4.0)


def test_save_load_identical(small_flow, tmp_path):
    path = tmp_path / "flow.sit"
    small_flow.save(path)
    assert [p.name for p in tmp_path.iterdir()] == ["flow.sit"]  # no temporary left
    loaded = st.load(path)
    x = np.random.default_rng(0).standard_normal((9, 2))
    np.testing.assert_array_equal(loaded.push_forward(x), small_flow.push_forward(x))
    np.testing.assert_array_equal(loaded.log_prob(x), small_flow.log_prob(x))
    np.testing.assert_array_equal(loaded.sample(5, seed=1), small_flow.sample(5, seed=1))
    assert loaded.config == small_flow.config
    assert loaded.config.dtype == torch.float32
    xr.testing.assert_equal(loaded.history, small_flow.history)


def test_save_load_empirical_base(tmp_path):
    x0 = st.datasets.sample("moons", 300, seed=0)
    flow = st.fit(
        x0,
        st.datasets.sample("circles", 300, seed=0),
        steps=3,
        network=st.MLPSpec(width=8, depth=1),
        progress=False,
    )
    flow.save(tmp_path / "f.sit")
    loaded = st.load(tmp_path / "f.sit")
    np.testing.assert_array_equal(loaded.sample(4, seed=0), flow.sample(4, seed=0))


def test_load_rejects_bad_files(small_flow, tmp_path):
    path = tmp_path / "flow.sit"
    small_flow.save(path)
    data = path.read_bytes()
    (tmp_path / "trunc.sit").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable sitransport file"):
        st.load(tmp_path / "trunc.sit")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a sitransport flow file"):
        st.load(tmp_path / "other.pt")
    with pytest.raises(FileNotFoundError, match="no sitransport file"):
        st.load(tmp_path / "missing.sit")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch pwned_by_sitransport_test",))


def test_load_never_executes_code(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    buf = io.BytesIO()
    torch.save(
        {"format": "sitransport.TransportFlow", "payload": _Exploit()}, buf, pickle_module=pickle
    )
    (tmp_path / "evil.sit").write_bytes(buf.getvalue())
    with pytest.raises(ValueError, match="not a readable sitransport file"):
        st.load(tmp_path / "evil.sit")
    assert not (tmp_path / "pwned_by_sitransport_test").exists()


def test_save_refuses_custom_velocity(tmp_path):
    with pytest.raises(TypeError, match="only flows with a built-in sitransport network"):
        rotation_flow().save(tmp_path / "x.sit")


def test_network_shapes():
    net = MLPVelocity(3, width=16, depth=2)
    assert net(torch.zeros(4, 3), torch.rand(4)).shape == (4, 3)
    assert net(torch.zeros(4, 3), torch.tensor(0.5)).shape == (4, 3)
    out0 = net(torch.ones(1, 3), torch.zeros(1))
    out1 = net(torch.ones(1, 3), torch.ones(1))
    assert not torch.allclose(out0, out1)  # time conditioning reaches the output


def test_distribution_base_must_be_given_again_on_load(tmp_path):
    base = torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2))
    flow = st.fit(
        base,
        st.datasets.sample("moons", 300, seed=0),
        steps=3,
        network=st.MLPSpec(width=8, depth=1),
        progress=False,
    )
    flow.save(tmp_path / "d.sit")
    loaded = st.load(tmp_path / "d.sit")
    with pytest.raises(ValueError, match="pass base= to TransportFlow, or to sitransport.load"):
        loaded.sample(2)
    again = st.load(tmp_path / "d.sit", base=base)
    np.testing.assert_array_equal(again.sample(3, seed=0), flow.sample(3, seed=0))
