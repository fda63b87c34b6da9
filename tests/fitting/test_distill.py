"""distill: a one-step model of a flow's map. A known linear map learned in one Euler step,
the record it leaves in ``flow.config`` through save and load, and its refusals."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg
import torch

import sitransport as st
from tests.helpers import TINY, tiny_training

#: A flow whose velocity ``v(x) = A x`` does not depend on time: its map is ``expm(A)``,
#: while its own one Euler step is ``I + A``, off by 4% of the target's variance.
A = np.array([[0.6, 0.8], [-0.8, -0.2]])
MAP = scipy.linalg.expm(A)


def linear_flow() -> st.TransportFlow:
    a = torch.from_numpy(A)
    return st.TransportFlow(lambda z, t: z @ a.T.to(z), "linear", base="gaussian", shape=(2,))


@pytest.fixture(scope="module")
def student() -> st.TransportFlow:
    training = st.TrainSettings(steps=400, eval_every=100, progress=False)
    return st.distill(linear_flow(), 2000, training=training, seed=0)


def uvp(y: np.ndarray, x: np.ndarray) -> float:
    """Mean squared error against the exact map, over the target's total variance."""
    return float(((y - x @ MAP.T) ** 2).sum(1).mean() / np.trace(MAP @ MAP.T))


def test_one_step_of_a_distilled_flow_is_the_teachers_map(student):
    """The teacher's own single Euler step misses expm(A); the student's is the map."""
    x = np.random.default_rng(1).standard_normal((2000, 2))
    assert uvp(linear_flow().push_forward(x, nfe=1), x) > 0.01
    assert uvp(student.push_forward(x, nfe=1), x) < 1e-3


def test_one_step_samples_have_the_maps_gaussian_moments(student):
    """``sample(n, nfe=1)`` draws N(0, M M^T): mean and covariance within 4 standard errors
    of a sample of n (the covariance's entries: sqrt((S_ii S_jj + S_ij^2) / n))."""
    n = 4000
    y = student.sample(n, seed=3, nfe=1)
    cov = MAP @ MAP.T
    se_mean = np.sqrt(np.diag(cov) / n)
    np.testing.assert_array_less(np.abs(y.mean(0)), 4 * se_mean)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    np.testing.assert_array_less(np.abs(np.cov(y.T) - cov), 4 * se_cov)


def test_the_distilled_flow_is_still_a_flow(student):
    """Its ODE (dopri5) integrates the rectified velocity of the same pairs: close to the map,
    and pull_back inverts it."""
    x = np.random.default_rng(2).standard_normal((500, 2))
    y = student.push_forward(x)
    assert uvp(y, x) < 0.01
    np.testing.assert_allclose(student.pull_back(y), x, atol=1e-2)
    assert np.isfinite(student.log_prob(y[:20])).all()


def test_the_record_survives_save_and_load(student, tmp_path):
    config = student.config
    assert config.time_sampler == {"name": "at_zero", "weight": 0.8}
    assert config.interpolant == {"name": "linear"}
    assert config.coupling.name == "paired" and config.reflow_pairs == 2000
    assert config.reflow_generation == 1 and config.training.steps == 400
    student.save(tmp_path / "student.safetensors")
    again = st.load(tmp_path / "student.safetensors")
    assert again.config == config
    np.testing.assert_array_equal(again.sample(5, seed=0, nfe=1), student.sample(5, seed=0, nfe=1))


def test_steps_default_to_a_quarter_of_the_flows_and_weight_is_recorded():
    x1 = np.random.default_rng(0).standard_normal((200, 2))
    flow = st.fit("gaussian", x1, **dict(TINY, steps=40))
    student = st.distill(flow, 100, weight=0.6, progress=False)
    assert student.config.training.steps == 10
    assert student.config.time_sampler == {"name": "at_zero", "weight": 0.6}
    assert st.distill(flow, 100, steps=3, progress=False).config.training.steps == 3
    again = st.distill(flow, 100, progress=False, training=tiny_training(steps=8))
    assert again.config.training.steps == 8  # given whole: as it is


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"weight": 0.0}, ValueError, r"weight must be in \(0, 1\), got 0.0"),
        ({"weight": 1.0}, ValueError, r"weight must be in \[0.0, 1.0\), got 1.0"),
        ({"weight": "half"}, TypeError, "weight must be a number"),
        ({"n": 1}, ValueError, "n must be"),
        ({"steps": 0}, ValueError, "steps must be"),
        ({"training": {"steps": 3}}, TypeError, "training"),
    ],
)
def test_bad_input_is_refused_naming_the_argument(kwargs, error, match):
    with pytest.raises(error, match=match):
        st.distill(linear_flow(), **{"n": 100, "progress": False, **kwargs})


def test_a_flow_without_a_base_is_refused():
    flow = st.TransportFlow(lambda z, t: z, "linear", shape=(2,))
    with pytest.raises(ValueError, match="no base to draw from"):
        st.distill(flow, 100, progress=False)
