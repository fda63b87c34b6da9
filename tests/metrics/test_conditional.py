"""The report of a conditional flow per condition, against known answers: a flow whose
velocity under each label is the exact OT velocity N(0, I) -> N(mu_c, s_c^2 I) (straight
lines, linear interpolant) has NPE ~ 0 (to the ODE's accuracy on the exact map's samples,
within c/sqrt(n) on independent ones) and path energy |mu_c|^2 + d (s_c - 1)^2;
transport_report(condition=) agrees with it; unconditional flows are refused by name."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sitransport import TransportFlow
from sitransport.ends.conditions import ConditionEncoder
from sitransport.metrics import ConditionalNPE, conditional_npe, transport_report
from tests.helpers import TIGHT

MU = torch.tensor([[0.0, 0.0], [3.0, 0.0], [-1.0, 2.0]], dtype=torch.float64)
S = torch.tensor([2.0, 1.0, 0.5], dtype=torch.float64)
LABELS = ["a", "b", "c"]
EXACT_KE = [float(MU[k].pow(2).sum() + 2 * (S[k] - 1) ** 2) for k in range(3)]


def _ot_velocity(y, t, c):
    """d/dt of X_t = (1 - t) x + t (mu_c + s_c x), written at y = X_t."""
    mu, s = MU[c], S[c][:, None]
    t = t.to(y).expand(y.shape[0])[:, None]
    return (s - 1) * (y - t * mu) / (1 - t + t * s) + mu


@pytest.fixture(scope="module")
def flow():
    enc = ConditionEncoder.fit(LABELS)
    return TransportFlow(
        _ot_velocity, "linear", base="gaussian", shape=(2,), condition=enc, ode=TIGHT
    )


def _targets(x0, rng=None):
    """Per label, the OT map of x0 (rng None) or independent draws of N(mu_c, s_c^2 I)."""
    n = len(x0)
    noise = [x0 if rng is None else rng.normal(size=(n, 2)) for _ in LABELS]
    x1 = np.concatenate([MU[k].numpy() + S[k].item() * noise[k] for k in range(3)])
    return x1, np.repeat(LABELS, n)


def test_exact_maps_have_npe_zero_per_label(flow):
    x0 = np.random.default_rng(0).normal(size=(300, 2))
    x1, c1 = _targets(x0)
    r = conditional_npe(flow, x0, x1, c1)
    assert isinstance(r, ConditionalNPE)
    assert r.conditions.tolist() == LABELS and r.n1.tolist() == [300] * 3
    assert r.n0.tolist() == [300] * 3
    # the samples' exact W2^2 is the map's cost: only the ODE's error is left
    assert r.npe.max() < 1e-6 and r.mean_npe < 1e-6 and r.pooled_npe < 1e-6
    # under a wrong condition (label "b"'s map for every label) the NPE is far from 0
    wrong = conditional_npe(flow, x0, x1, np.repeat(["b", "c", "a"], 300))
    assert wrong.npe.min() > 0.3


@pytest.mark.parametrize("n", [200, 800])
def test_independent_samples_npe_within_c_over_sqrt_n(flow, n):
    rng = np.random.default_rng(n)
    x0 = rng.normal(size=(n, 2))
    x1, c1 = _targets(x0, rng)
    r = conditional_npe(flow, x0, x1, c1)
    # sampling error of KE and of the empirical W2^2: relative O(1/sqrt(n))
    assert r.npe.max() < 8 / np.sqrt(n)
    assert np.all(np.abs(r.kinetic_energy - EXACT_KE) < 4 * r.kinetic_energy_stderr + 1e-9)
    assert r.pooled_npe <= r.npe.max() and r.mean_npe == pytest.approx(r.npe.mean())
    assert "mean NPE" in str(r) and str(r).count("\n") == 4


def test_transport_report_of_one_condition_agrees(flow):
    rng = np.random.default_rng(1)
    x0 = rng.normal(size=(400, 2))
    x1, c1 = _targets(x0, rng)
    per = conditional_npe(flow, x0, x1, c1)
    for k, label in enumerate(LABELS):
        report = transport_report(flow, x0, x1[c1 == label], condition=label)
        assert report.kinetic_energy == per.kinetic_energy[k]
        assert report.w2_squared == per.w2_squared[k] and report.npe == per.npe[k]
        # straight paths at constant speed: KE is the map's cost
        assert report.straightness == pytest.approx(0.0, abs=1e-6)
        # the Jacobian of v under label k is (s - 1) / (1 - t + t s) I: norm at most 1, 0
        # for label "b" (a translation)
        assert report.lipschitz <= 1.0 + 1e-9 and (report.lipschitz > 0.3) == (label != "b")
        assert np.isfinite(report.h_upper)
    assert transport_report(flow, None, x1[:400], condition="a").n == 2000  # x0 from the base


def test_features_and_paired_sources():
    enc = ConditionEncoder.fit(np.array([[-1.0], [0.0], [1.0]]))

    def shift(y, t, c):  # the translation by (2 z + 1, 0), z the standardised feature
        return torch.stack([2 * c[:, 0] + 1, torch.zeros_like(c[:, 0])], 1).to(y)

    flow = TransportFlow(shift, "linear", shape=(2,), condition=enc, ode=TIGHT)
    rng = np.random.default_rng(0)
    feats = np.repeat([-1.0, 0.0, 1.0], 100)[:, None]
    x0 = rng.normal(size=(300, 2))
    mu = 2 * enc.encode(feats, 300, dtype=torch.float64)[:, 0].numpy() + 1
    x1 = x0 + np.stack([mu, np.zeros(300)], 1)  # each x0 row moved under its own feature
    r = conditional_npe(flow, x0, x1, feats, c0=feats)
    assert r.conditions.shape == (3, 1) and r.n0.tolist() == [100] * 3
    assert r.npe.max() < 1e-6
    shared = conditional_npe(flow, x0, x1, feats)  # all of x0 against each third of x1
    assert shared.n0.tolist() == [300] * 3 and shared.npe.max() > 1e-3


def test_unconditional_flows_and_missing_conditions_are_refused(flow):
    x0 = np.random.default_rng(0).normal(size=(50, 2))
    plain = TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
    with pytest.raises(ValueError, match="^condition: .*unconditional"):
        transport_report(plain, x0, x0 + 1, condition=0)
    with pytest.raises(ValueError, match="^condition: .*unconditional"):
        conditional_npe(plain, x0, x0 + 1, np.zeros(50, dtype=int))
    with pytest.raises(ValueError, match="^condition: .*conditional"):
        transport_report(flow, x0, x0 + 1)
    with pytest.raises(ValueError, match="x1 is required with condition="):
        transport_report(flow, x0, condition="a")
    with pytest.raises(ValueError, match="condition must hold one value"):
        transport_report(flow, x0, x0 + 1, condition=["a", "b"])
    with pytest.raises(ValueError, match="never seen"):
        transport_report(flow, x0, x0 + 1, condition="z")


def test_bad_conditions_are_named(flow):
    x0 = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="c1 must have one row per sample of x1 \\(50\\)"):
        conditional_npe(flow, x0, x0, ["a"] * 49)
    with pytest.raises(ValueError, match="condition 'b' has 1 x1 sample"):
        conditional_npe(flow, x0, x0, ["a"] * 49 + ["b"])
    with pytest.raises(ValueError, match="c0 must have one row per sample of x0"):
        conditional_npe(flow, x0, x0 + 1, ["a"] * 50, c0=["a"])
    with pytest.raises(ValueError, match="c0 and c1 must be of one kind"):
        conditional_npe(flow, x0, x0 + 1, ["a"] * 50, c0=np.zeros((50, 1)))
    with pytest.raises(ValueError, match="never seen"):
        conditional_npe(flow, x0, x0 + 1, ["z"] * 50)
