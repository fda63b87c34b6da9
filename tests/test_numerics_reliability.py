"""Numerical failures end in clear errors (issue 14): ODE/SDE divergence, normalisations that
overflow or that the network's dtype cannot resolve, a vanishing score denominator, and
honest Hutchinson error bars with few probes."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.errors import TransportError
from sitransport.flow import Normalization, TransportFlow
from sitransport.interpolants import Custom
from sitransport.ode import ODEOptions, integrate
from sitransport.score import denoiser_from_velocity, sde_integrate

K = {"steps": 30, "progress": False}
MLP16 = st.MLPSpec(width=16, depth=1)
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def nan_flow() -> TransportFlow:
    """A tiny fitted flow whose network weights are all nan (e.g. a run that blew up)."""
    x1 = np.random.default_rng(0).standard_normal((100, 2))
    flow = st.fit("gaussian", x1, steps=5, network=st.MLPSpec(width=8, depth=1), progress=False)
    with torch.no_grad():
        for p in flow.network.parameters():
            p.fill_(float("nan"))
    return flow


# ------------------------------------------------------------ 1. ODE failures, no hang
_CASES = {
    "nan_weights": """
        x1 = np.random.default_rng(0).standard_normal((100, 2))
        flow = st.fit("gaussian", x1, steps=5, network=st.MLPSpec(width=8, depth=1), progress=False)
        with torch.no_grad():
            for p in flow.network.parameters():
                p.fill_(float("nan"))
        flow.sample(3)
    """,
    "blow_up": """
        flow = st.TransportFlow(lambda z, t: z**3, "linear", base="gaussian", shape=(2,))
        flow.push_forward(np.full((3, 2), 2.0))  # z' = z^3 from 2 blows up at t = 1/8
    """,
    "stiff": """
        flow = st.TransportFlow(lambda z, t: -1e8 * z, "linear", shape=(2,))
        flow.push_forward(np.ones((3, 2)), ode=st.ODEOptions(max_steps=50))
    """,
}


def test_ode_failures_under_python_O_are_transport_errors_not_hangs():
    """Under ``python -O`` torchdiffeq's asserts are gone: each case used to loop forever."""
    cases = "".join(
        f"try:\n{textwrap.indent(textwrap.dedent(code), '    ')}"
        f"except st.errors.TransportError as err:\n    print({name!r}, 'ok:', err)\n"
        for name, code in sorted(_CASES.items())
    )
    last = textwrap.dedent(_CASES["nan_weights"])  # and one left uncaught
    script = "import numpy as np, torch, sitransport as st\n" + cases + last
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-O", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert proc.returncode != 0
    assert proc.stdout.count(" ok: ") == len(_CASES), proc.stdout + proc.stderr[-2000:]
    assert "at t=" in proc.stdout and "Try:" in proc.stdout
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("sitransport.errors.TransportError"), proc.stderr[-2000:]


@pytest.mark.parametrize(
    "call",
    [
        lambda f, y: f.push_forward(y),
        lambda f, y: f.pull_back(y),
        lambda f, y: f.sample(4, seed=0),
        lambda f, y: f.log_prob(y),
        lambda f, y: f.log_prob(y, method="hutchinson", probes=2),
        lambda f, y: f.trajectory(y, np.linspace(0, 1, 3)),
        lambda f, y: f.path_energy(y),
        lambda f, y: f.push_forward(y, nfe=8),  # fixed steps
    ],
    ids=[
        "push_forward",
        "pull_back",
        "sample",
        "log_prob",
        "log_prob_hutchinson",
        "trajectory",
        "path_energy",
        "fixed_step",
    ],
)
def test_nan_weights_raise_transport_error_naming_the_time(nan_flow, call):
    with pytest.raises(TransportError, match=r"velocity became non-finite .*at t=[01]\b.*Try:"):
        call(nan_flow, np.zeros((4, 2)))


def test_nan_weights_in_sde_sampling_raise_transport_error(nan_flow):
    with pytest.raises(TransportError, match=r"SDE solve .*non-finite .*t=0\.05\b"):
        nan_flow.sample(4, seed=0, method="sde", steps=20)


def test_step_limit_stops_a_stiff_solve_with_the_time_reached():
    flow = TransportFlow(lambda z, t: -1e8 * z, "linear", shape=(2,))
    with pytest.raises(TransportError, match=r"max_steps=50.*step limit at t=\d"):
        flow.push_forward(np.ones((3, 2)), ode=ODEOptions(max_steps=50))


def test_a_state_that_overflows_in_the_last_step_is_a_transport_error():
    # one Euler step of 1e38 from 3e38 overflows float32 without another field evaluation
    x = torch.full((2, 2), 3e38)
    velocity = lambda z, t: torch.full_like(z, 1e38)  # noqa: E731
    with pytest.raises(TransportError, match=r"non-finite \(nan or inf\) in the last step at t=1"):
        st.ode.integrate(velocity, x, torch.tensor([0.0, 1.0]), ODEOptions("euler", steps=1))


def test_step_size_underflow_is_a_transport_error():
    flow = TransportFlow(lambda z, t: z**3, "linear", shape=(2,))
    with pytest.raises(TransportError, match=r"from t=0 to t=1 .*at t=0\.125"):
        flow.push_forward(np.full((3, 2), 2.0))


def test_errors_of_the_velocity_itself_are_not_translated():
    def velocity(z, t):
        raise RuntimeError("the user's own failure")

    with pytest.raises(RuntimeError, match="the user's own failure") as info:
        integrate(velocity, torch.ones(2, 2), torch.tensor([0.0, 1.0]))
    assert not isinstance(info.value, TransportError)


def test_max_steps_is_validated():
    with pytest.raises(ValueError, match="max_steps"):
        ODEOptions(max_steps=0)


# ---------------------------------------------------- 3. infinite normalisation scale
def test_infinite_scale_is_refused_naming_the_data():
    x1 = np.random.default_rng(0).standard_normal((300, 2)) * 1e300
    with pytest.raises(ValueError, match=r"rho0 and rho1.*overflows float64.*scale=inf"):
        st.fit("gaussian", x1, **K)


@pytest.mark.parametrize(
    ("shift", "scale", "match"),
    [
        (torch.zeros(2), math.inf, "normalization scale must be finite and > 0, got inf"),
        (torch.zeros(2), 0.0, "normalization scale must be finite and > 0, got 0.0"),
        (torch.tensor([math.nan, 0.0]), 1.0, "normalization shift must be a finite tensor"),
        (torch.tensor([math.inf, 0.0]), 1.0, "normalization shift must be a finite tensor"),
    ],
)
def test_normalization_must_be_finite(shift, scale, match):
    with pytest.raises(ValueError, match=match):
        Normalization(shift, scale)


# ------------------------------------------- 4. data the network's dtype cannot resolve
def test_far_apart_ends_need_float64():
    x0 = np.random.default_rng(0).standard_normal((300, 2))
    with pytest.raises(ValueError, match=r"rho0 cannot be resolved in torch\.float32.*"):
        st.fit(x0, x0 + 1e8, **K)
    with pytest.raises(ValueError, match=r"dtype=torch\.float64"):
        st.fit(x0, x0 + 1e8, **K)
    flow = st.fit(x0, x0 + 1e8, dtype=torch.float64, steps=10, network=MLP16, progress=False)
    y = flow.push_forward(x0, nfe=4)
    assert len(np.unique(y, axis=0)) == len(x0)  # no collapse (float32 kept about 2 points)
    assert np.all(y.std(0) > 0.1)


def test_values_whose_squares_overflow_float32_need_float64():
    r = np.random.default_rng(0)
    x0, x1 = r.standard_normal((300, 2)) * 1e25, r.standard_normal((300, 2)) * 1e25
    with pytest.raises(ValueError, match=r"rho0 has values up to .*squares overflow.*float64"):
        st.fit(x0, x1, **K)
    flow = st.fit(x0, x1, dtype=torch.float64, steps=10, network=MLP16, progress=False)
    energy = flow.path_energy(x0[:20], ode=ODEOptions(method="rk4", steps=2)).energy
    assert np.all(np.isfinite(energy))
    assert len(np.unique(flow.push_forward(x0[:50], nfe=4), axis=0)) == 50


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_a_gaussian_base_against_data_at_1e30_collapses_in_any_dtype(dtype):
    """The shared normalisation maps N(0, I) to one point when rho1's spread is 1e30: no
    dtype resolves it (float64 gave one distinct sample too), so the error asks to rescale."""
    x1 = np.random.default_rng(0).standard_normal((300, 2)) * 1e30
    with pytest.raises(ValueError, match=r"rho0 cannot be resolved .*rescale the data"):
        st.fit("gaussian", x1, dtype=dtype, **K)


# --------------------------------------------- 6. vanishing denominator of the score
QUADRATIC = Custom(lambda t: 1 - t**2, lambda t: t**2)  # beta alpha' - beta' alpha = -2 t


def test_score_at_the_vanishing_denominator_is_its_limit():
    flow = TransportFlow(lambda z, t: torch.sin(z), QUADRATIC, base="gaussian", shape=(2,))
    x = np.array([[1.0, -2.0], [0.5, 0.0]])
    np.testing.assert_allclose(flow.score(x, 0.0), -x)  # rho_0 = N(0, I)
    near = flow.score(x, 1e-4)
    np.testing.assert_allclose(near, -x, atol=1e-3)  # continuous at t = 0
    t = torch.tensor([0.0, 0.3], dtype=torch.float64)
    eta = denoiser_from_velocity(
        torch.ones(2, 2, dtype=torch.float64), torch.tensor(x), t, QUADRATIC
    )
    assert bool(torch.isfinite(eta).all())


def test_sde_sampling_with_a_vanishing_denominator_is_finite():
    flow = TransportFlow(lambda z, t: 0.5 * z, QUADRATIC, base="gaussian", shape=(2,))
    y = flow.sample(200, seed=0, method="sde", steps=20)
    assert np.all(np.isfinite(y))


def test_denominator_vanishing_inside_the_interval_is_refused():
    wavy = Custom(lambda t: 1 - t, lambda t: t + torch.sin(2 * math.pi * t) / math.pi)
    flow = TransportFlow(lambda z, t: 0 * z, wavy, base="gaussian", shape=(2,))
    with pytest.raises(ValueError, match=r"interpolant Custom.*vanishes at t=0\.5\b"):
        flow.score(np.ones((3, 2)), 0.5)
    with pytest.raises(ValueError, match=r"vanishes at t=0\.5\b"):
        flow.score(np.ones((3, 2)), np.array([0.2, 0.5, 0.7]))
    assert np.all(np.isfinite(flow.score(np.ones((2, 2)), 0.3)))


def test_sde_non_finite_state_names_the_time():
    g = torch.Generator().manual_seed(0)
    with pytest.raises(TransportError, match=r"non-finite .*in the step to t=0\.75\b"):
        sde_integrate(
            lambda x, t: x * (math.inf if float(t) >= 0.5 else 1.0),
            lambda t: torch.zeros_like(t),
            torch.ones(3, 2),
            0.0,
            1.0,
            4,
            g,
            scheme="euler",
        )


# ------------------------------------------------------- should-fix: Hutchinson errors
def test_probe_stderr_is_never_zero_by_chance():
    from sitransport.ode import probe_stderr

    est = torch.tensor([[1.0, 1.0], [0.0, 2.0], [3.0, 3.0]], dtype=torch.float64)
    assert bool((probe_stderr(est) > 0).all())
    same = torch.tensor([[1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    assert bool((probe_stderr(same) == 0).all())  # every probe exact: no error
    assert bool(probe_stderr(est[:, :1]).isnan().all())  # one probe: no spread to measure


def test_two_probe_hutchinson_error_bars_are_honest():
    g = torch.Generator().manual_seed(3)
    a = torch.randn(2, 2, generator=g, dtype=torch.float64)
    flow = TransportFlow(
        lambda z, t: torch.tanh(z @ a.T.to(z)) + 0.3 * z, "linear", base="gaussian", shape=(2,)
    )
    y = np.random.default_rng(2).standard_normal((200, 2))
    exact = flow.log_prob_estimate(y, method="exact", progress=False).log_prob
    est = flow.log_prob_estimate(y, method="hutchinson", probes=2, seed=0, progress=False)
    diff = est.log_prob - exact
    assert np.all(est.stderr > 0)
    assert np.max(np.abs(diff)) > 0.1  # a real sampling error to cover
    assert np.mean(np.abs(diff) <= 4 * est.stderr) >= 0.95
    assert 0.7 <= np.std(diff / est.stderr) <= 1.4  # error bars of the right scale
