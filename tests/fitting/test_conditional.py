"""Conditional fits: trained known answers (a linear-Gaussian family in continuous features;
a Gaussian mixture with the component as label), classifier-free guidance, the pairs drawn
within conditions for ``condition=(c0, c1)``, every refused ``condition=``, and unconditional
fits unchanged by the conditional machinery (reference numbers of the commit before it).

Linear-Gaussian family: ``x1 | c ~ N(A c + b, S)``, ``c ~ U[-1, 1]^2``, ``d = 2``, from
``rho0 = N(0, I)`` with ``trig``. Then ``x_t | c ~ N(beta mu, C_t)``,
``C_t = alpha^2 I + beta^2 S``, ``mu = A c + b``, and the exact velocity and score are linear
in ``x``:

    v(x, t | c) = beta' mu + (alpha alpha' I + beta beta' S) C_t^{-1} (x - beta mu),
    score(x, t | c) = -C_t^{-1} (x - beta mu).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.config import MLPSpec
from sitransport.ends.conditions import ConditionEncoder
from sitransport.ends.densities import EmpiricalDensity
from sitransport.ends.normalization import Normalization
from sitransport.fitting.conditions import ConditionalDraw, resolve_conditions

A = np.array([[1.0, 0.5], [-0.5, 1.0]])
B = np.array([0.5, -0.5])
S = np.array([[0.09, 0.03], [0.03, 0.06]])
#: conditions never seen in training (continuous features: no training row equals them)
HELD_OUT = np.array([[-0.6, 0.4], [0.7, 0.7], [0.2, -0.8]])
SMALL = MLPSpec(width=64, depth=2)


def _trig(t):
    h = math.pi / 2
    return math.cos(h * t), math.sin(h * t), -h * math.sin(h * t), h * math.cos(h * t)


def exact_velocity_score(x, t, mu):
    a, b, da, db = _trig(t)
    ci = np.linalg.inv(a * a * np.eye(2) + b * b * S)
    r = x - b * mu
    return db * mu + r @ (ci @ (a * da * np.eye(2) + b * db * S)).T, -r @ ci.T


def _marginal(t, mu, n, rng):
    """``n`` draws of ``x_t | c``."""
    a, b, _, _ = _trig(t)
    return (
        b * mu + rng.standard_normal((n, 2)) @ np.linalg.cholesky(a * a * np.eye(2) + b * b * S).T
    )


def _relative(got, want):
    return float(np.sqrt(((got - want) ** 2).sum(1).mean() / (want**2).sum(1).mean()))


@pytest.fixture(scope="module")
def linear_gaussian():
    """1200 steps of a 64x2 MLP on 4000 samples (~6 s on one core); no condition dropout."""
    rng = np.random.default_rng(0)
    c = rng.uniform(-1, 1, (4000, 2))
    x1 = c @ A.T + B + rng.standard_normal((4000, 2)) @ np.linalg.cholesky(S).T
    flow = st.fit(
        "gaussian",
        x1,
        condition=c,
        steps=1200,
        batch_size=256,
        seed=0,
        network=SMALL,
        progress=False,
    )
    return flow


def test_linear_gaussian_samples_match_closed_form(linear_gaussian):
    """Means and covariances of 4000 samples per held-out condition.

    Tolerance = 5 standard errors of the estimate (``sqrt(S_ii / n)`` for a mean,
    ``sqrt((S_ii S_jj + S_ij^2) / n)`` for a covariance) + the fit's own error, which is not
    statistical: measured at 1000-1500 steps over seeds 0-3, at most 0.029 on a mean and
    0.0062 on a covariance; allowed 0.06 and 0.015. A flow that ignored its condition would
    be off by |A (c - c')| ~ 0.5-1.5 on the mean.
    """
    n = 4000
    for c in HELD_OUT:
        mu = A @ c + B
        y = linear_gaussian.sample(n, seed=1, condition=c, nfe=40)
        se_mean = np.sqrt(np.diag(S) / n)
        se_cov = np.sqrt((np.outer(np.diag(S), np.diag(S)) + S**2) / n)
        assert np.all(np.abs(y.mean(0) - mu) < 5 * se_mean + 0.06), (c, y.mean(0), mu)
        assert np.all(np.abs(np.cov(y.T) - S) < 5 * se_cov + 0.015), (c, np.cov(y.T))
    # one row per sample: each standardised by its own condition's law is N(0, I)
    rows = np.random.default_rng(2).uniform(-1, 1, (n, 2))
    y = linear_gaussian.sample(n, seed=2, condition=rows, nfe=40)
    z = (y - rows @ A.T - B) @ np.linalg.inv(np.linalg.cholesky(S)).T
    assert np.all(np.abs(z.mean(0)) < 5 / math.sqrt(n) + 0.06 / math.sqrt(S.diagonal().min()))
    assert np.all(np.abs(np.cov(z.T) - np.eye(2)) < 0.2)


def test_linear_gaussian_velocity_and_score_match_closed_form(linear_gaussian):
    """Relative L2 error over ``x_t | c`` at t = 0.25, 0.5, 0.75 per held-out condition.

    Not statistical (the evaluation points only weight the error): the network's
    approximation error, measured at 1000-1500 steps over seeds 0-3, at most 0.12 for the
    velocity and 0.057 for the score (largest at t = 0.25, where the velocity is largest
    relative to its mean part). Allowed 0.2 and 0.12. The closed form of another held-out
    condition is further than that (checked), so the test sees the condition.
    """
    rng = np.random.default_rng(3)
    for i, c in enumerate(HELD_OUT):
        mu, other = A @ c + B, A @ HELD_OUT[i - 1] + B
        for t in (0.25, 0.5, 0.75):
            x = _marginal(t, mu, 2000, rng)
            v_exact, s_exact = exact_velocity_score(x, t, mu)
            v = linear_gaussian.velocity(x, t, condition=c)
            s = linear_gaussian.score(x, t, condition=c)
            assert _relative(v, v_exact) < 0.2, (c, t)
            assert _relative(s, s_exact) < 0.12, (c, t)
            v_other, s_other = exact_velocity_score(x, t, other)
            assert _relative(v_other, v_exact) > 0.2 and _relative(s_other, s_exact) > 0.12


def test_guidance_needs_condition_dropout(linear_gaussian):
    assert linear_gaussian.config.training.condition_dropout == 0.0
    with pytest.raises(ValueError, match=r"guidance=2.*condition_dropout"):
        linear_gaussian.sample(10, condition=HELD_OUT[0], guidance=2.0)
    # guidance=0 is the conditional flow itself, whatever the training
    a = linear_gaussian.sample(10, seed=0, condition=HELD_OUT[0], guidance=0.0)
    assert np.array_equal(a, linear_gaussian.sample(10, seed=0, condition=HELD_OUT[0]))


MEANS = 3 * np.array([[1.0, 0.0], [-0.5, math.sqrt(3) / 2], [-0.5, -math.sqrt(3) / 2]])


@pytest.fixture(scope="module")
def mixture():
    """Three Gaussian components (std 0.3, 3 apart) labelled by component; 600 steps with
    ``condition_dropout=0.1`` (~3 s on one core)."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 3000)
    x1 = MEANS[labels] + 0.3 * rng.standard_normal((3000, 2))
    return st.fit(
        "gaussian",
        x1,
        condition=np.array(["red", "green", "blue"])[labels],
        steps=600,
        batch_size=256,
        seed=0,
        network=SMALL,
        training=st.TrainSettings(condition_dropout=0.1),
        progress=False,
    )


def _component(y):
    return np.argmin(((y[:, None] - MEANS[None]) ** 2).sum(-1), 1)


def test_mixture_samples_stay_in_their_component(mixture):
    """> 99% of 300 samples per label are nearest their component's mean (measured 100%
    over seeds 0-2, with and without guidance)."""
    names = np.array(["red", "green", "blue"])
    assert mixture.condition.labels == ("blue", "green", "red")
    for k, name in enumerate(names):
        for w in (0.0, 1.0):
            y = mixture.sample(300, seed=k, condition=name, guidance=w, nfe=40)
            assert (_component(y) == k).mean() > 0.99, (name, w)
    rows = names[np.arange(300) % 3]
    y = mixture.sample(300, seed=5, condition=rows, nfe=40)
    assert (_component(y) == np.arange(300) % 3).mean() > 0.99


def test_guidance_zero_is_the_conditional_flow_exactly(mixture):
    for kw in ({"nfe": 20}, {}, {"method": "sde", "steps": 20}):
        a = mixture.sample(50, seed=4, condition="red", **kw)
        assert np.array_equal(a, mixture.sample(50, seed=4, condition="red", guidance=0, **kw))
        guided = mixture.sample(50, seed=4, condition="red", guidance=2.0, **kw)
        assert np.isfinite(guided).all() and not np.array_equal(a, guided)


# -------------------------------------------------------------------- (c0, c1) pairs
def _ends(c0, c1):
    """Source rows ``[i, 0]`` (row i is found back from its value), targets ``[j, 1]``."""
    x0 = np.stack([np.arange(len(c0)), np.zeros(len(c0))], 1)
    x1 = np.stack([np.arange(len(c1)), np.ones(len(c1))], 1)
    return x0, x1


@pytest.mark.parametrize("kind", ["labels", "strings", "features"])
def test_paired_draw_stays_within_conditions(kind):
    """ConditionalDraw of condition=(c0, c1): every x0 drawn has the condition of its x1 and
    the codes are x1's; within a condition, source rows are drawn uniformly (each of the
    group's rows within 6 standard errors of its expected count)."""
    rng = np.random.default_rng(0)
    values = {
        "labels": np.array([2, 5, 9]),
        "strings": np.array(["x", "y", "z"]),
        "features": np.array([[0.0, 1.0], [0.5, -1.0], [2.0, 2.0]]),
    }[kind]
    g0, g1 = rng.integers(0, 3, 90), rng.integers(0, 3, 70)
    g0[:3] = [0, 1, 2]  # every condition of rho1 has rho0 rows
    c0, c1 = values[g0], values[g1]
    x0, x1 = _ends(c0, c1)
    conds = resolve_conditions(
        (c0, c1), EmpiricalDensity(torch.tensor(x0)), EmpiricalDensity(torch.tensor(x1))
    )
    assert conds.paired and conds.kind == f"paired {'features' if kind == 'features' else 'labels'}"
    draw = ConditionalDraw(
        EmpiricalDensity(torch.tensor(x0)),
        EmpiricalDensity(torch.tensor(x1)),
        c1,
        conds.encoder,
        Normalization.identity((2,)),
        torch.float64,
        c0,
    )
    n = 30_000
    a, b, codes = draw(n, torch.Generator().manual_seed(1))
    i0, i1 = a[:, 0].long().numpy(), b[:, 0].long().numpy()
    assert np.array_equal(a[:, 1].numpy(), np.zeros(n)) and np.array_equal(b[:, 1], np.ones(n))
    np.testing.assert_array_equal(g0[i0], g1[i1])  # x0's condition is x1's
    assert torch.equal(codes, conds.encoder.encode(c1[i1], n, dtype=torch.float64))
    for g in range(3):
        picks = np.bincount(i0[g1[i1] == g], minlength=len(c0))
        rows = g0 == g
        assert picks[~rows].sum() == 0
        expected = picks.sum() / rows.sum()
        assert np.all(np.abs(picks[rows] - expected) < 6 * math.sqrt(expected))


def test_paired_fit_runs_and_records_its_conditions():
    rng = np.random.default_rng(0)
    c0, c1 = rng.integers(0, 2, 80), rng.integers(0, 2, 60)
    x0 = rng.standard_normal((80, 2))
    x1 = rng.standard_normal((60, 2)) + 3 * c1[:, None]
    flow = st.fit(x0, x1, condition=(c0, c1), steps=3, batch_size=16, network=SMALL, progress=False)
    assert flow.config.condition == "paired labels" and flow.condition.labels == (0, 1)
    assert flow.push_forward(x0[:4], condition=c0[:4], nfe=4).shape == (4, 2)


def test_latent_fit_keeps_its_conditions(tmp_path):
    """fit(latent=k, condition=c): the latent flow is conditional and its methods take
    condition= (the flow it wrapped had lost its conditions: every method then failed)."""
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2, 200)
    x1 = rng.standard_normal((200, 4)) * [2.0, 1.0, 0.01, 0.01] + 3 * c[:, None]
    flow = st.fit("gaussian", x1, latent=2, condition=c, steps=3, network=SMALL, progress=False)
    assert flow.flow.condition == ConditionEncoder.fit(c)
    assert flow.sample(3, seed=0, condition=1, nfe=4).shape == (3, 4)
    assert flow.pull_back(x1[:3], condition=c[:3], nfe=4).shape == (3, 2)
    with pytest.raises(ValueError, match="condition: this flow is conditional"):
        flow.sample(3, seed=0)
    flow.save(tmp_path / "latent.sit")
    again = st.load(tmp_path / "latent.sit")
    assert again.flow.condition == flow.flow.condition
    a = flow.sample(3, seed=0, condition=[0, 1, 1], nfe=4)
    assert np.array_equal(a, again.sample(3, seed=0, condition=[0, 1, 1], nfe=4))


# --------------------------------------------------------------------------- errors
X1 = np.random.default_rng(0).standard_normal((40, 2))
LABELS = np.arange(40) % 4


def _fit(rho0="gaussian", rho1=X1, **kw):
    return st.fit(rho0, rho1, steps=2, batch_size=8, network=SMALL, progress=False, **kw)


FIT_ERRORS = {
    # name: (fit keywords, error, message)
    "rho1 a distribution": (
        {"rho0": X1, "rho1": "gaussian", "condition": LABELS},
        ValueError,
        r"condition= gives one row per sample of rho1.*got a gaussian",
    ),
    "rho1 a torch distribution": (
        {
            "rho1": torch.distributions.MultivariateNormal(torch.zeros(2), torch.eye(2)),
            "condition": LABELS,
        },
        ValueError,
        "rho1 must be samples",
    ),
    "row count": ({"condition": LABELS[:30]}, ValueError, r"condition must have one row.*\(40\)"),
    "nan features": (
        {"condition": np.where(LABELS == 2, np.nan, 1.0)},
        ValueError,
        "condition holds nan",
    ),
    "3-D": ({"condition": np.zeros((40, 2, 1))}, ValueError, "condition must hold one row"),
    "masked": ({"condition": np.ma.masked_array(LABELS)}, TypeError, "condition is a numpy masked"),
    "complex": ({"condition": np.zeros(40, complex)}, TypeError, "condition must be integer"),
    "2-D labels": ({"condition": np.zeros((40, 2), int)}, ValueError, "condition: labels must"),
    "None in c1": ({"condition": [None] * 40}, TypeError, "condition must be integer"),
    "tuple of 3": ({"condition": (LABELS, LABELS, LABELS)}, ValueError, "a tuple of 3"),
    "paired with a gaussian rho0": (
        {"condition": (LABELS, LABELS)},
        ValueError,
        r"condition=\(c0, c1\).*rho0 must be samples",
    ),
    "paired: c1 value missing in c0": (
        {"rho0": X1[:20], "condition": (LABELS[:20] % 2, LABELS)},
        ValueError,
        r"rho1 has samples of condition\(s\) \[\(2,\), \(3,\)\] that no rho0 sample has",
    ),
    "paired: rows of c0": (
        {"rho0": X1[:20], "condition": (LABELS, LABELS)},
        ValueError,
        r"condition\[0\] must have one row per sample of rho0 \(20\)",
    ),
    "paired: kinds": (
        {"rho0": X1, "condition": (LABELS, LABELS.astype(float))},
        ValueError,
        "must be of one kind",
    ),
    "dropout without condition": (
        {"training": st.TrainSettings(condition_dropout=0.1)},
        ValueError,
        r"condition_dropout=0.1.*pass condition=",
    ),
    "weight without condition": ({"condition_weight": 1.0}, ValueError, "condition_weight=1.0"),
    "weight for labels": (
        {"condition": LABELS, "condition_weight": 1.0},
        ValueError,
        r"condition_weight=1.0.*labels",
    ),
    "weight for paired features": (
        {"rho0": X1, "condition": (LABELS * 1.0, LABELS * 1.0), "condition_weight": 1.0},
        ValueError,
        r"condition_weight=1.0.*paired features",
    ),
    "negative weight": (
        {"condition": LABELS * 1.0, "condition_weight": -1.0},
        ValueError,
        "condition_weight",
    ),
}


@pytest.mark.parametrize("name", list(FIT_ERRORS))
def test_bad_conditions_are_refused_by_fit(name):
    kw, error, message = FIT_ERRORS[name]
    with pytest.raises(error, match=message):
        _fit(**kw)


def test_unseen_and_missing_conditions_after_a_fit():
    flow = _fit(condition=LABELS * 10, training=st.TrainSettings(condition_dropout=0.5))
    x = np.zeros((3, 2))
    with pytest.raises(ValueError, match=r"condition holds label\(s\) never seen.*\[5\]"):
        flow.push_forward(x, condition=[0, 5, 10], nfe=2)
    with pytest.raises(ValueError, match="condition: this flow is conditional"):
        flow.push_forward(x, nfe=2)
    with pytest.raises(ValueError, match="condition must hold one value"):
        flow.sample(3, condition=[0, 10], nfe=2)
    feats = _fit(condition=np.stack([LABELS, -LABELS], 1) * 1.0)
    with pytest.raises(ValueError, match=r"condition must have 2 feature column\(s\)"):
        feats.velocity(x, 0.5, condition=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="condition: this flow is unconditional"):
        _fit().velocity(x, 0.5, condition=0)
    with pytest.raises(ValueError, match="guidance: this flow is unconditional"):
        _fit().sample(3, guidance=1.0)


# ---------------------------------------------------------------- unconditional unchanged
#: Recorded at commit 12cce48 (the parent of the conditional work) with the same script as
#: below (float32, CPU, torch.set_num_threads(1), a throwaway `git worktree add --detach`).
#: They matched to the last bit at 119a5d8 on the machine that recorded them; compared with
#: rtol 1e-6 since float32 CPU kernels may round differently on other machines (any change
#: of the random draws or the pairing moves them by 1e-2 or more).
REFERENCE = {
    "gaussian_independent": {
        "loss": [-0.5170804262161255, -0.5463807582855225, -0.4030243158340454],
        "val": [-0.5113246440887451],
        "vel": [0.150619238615036, 0.006542412098497152, 0.1212996318936348, 0.024096723645925522],
        "push": [0.2391672134399414, -0.21420635282993317, 1.619121789932251, 0.2877885699272156],
        "sample": [
            -0.3372330963611603,
            -0.6258066892623901,
            -0.4191371500492096,
            0.6740309000015259,
        ],
    },
    "samples_exact_ot": {
        "loss": [-0.30482858419418335, -0.22668364644050598, -0.3422352969646454],
        "val": [-0.41839495301246643],
        "vel": [
            0.20382829010486603,
            0.022139759734272957,
            0.17192061245441437,
            0.04684162139892578,
        ],
        "push": [0.2858867645263672, -0.20082172751426697, 1.662564754486084, 0.30855637788772583],
        "sample": [
            -1.0650064945220947,
            0.27393627166748047,
            -0.7923437356948853,
            -0.9055113196372986,
        ],
    },
}


@pytest.mark.parametrize("name", list(REFERENCE))
def test_unconditional_fits_unchanged(name):
    rng = np.random.default_rng(7)
    x0 = rng.standard_normal((300, 2))
    x1 = rng.standard_normal((300, 2)) * [0.5, 2.0] + [1.0, -1.0]
    probe = np.array([[0.1, -0.2], [1.5, 0.3]])
    rho0, coupling = {
        "gaussian_independent": ("gaussian", "independent"),
        "samples_exact_ot": (x0, "exact_ot"),
    }[name]
    flow = st.fit(
        rho0,
        x1,
        coupling=coupling,
        steps=40,
        batch_size=64,
        seed=3,
        network=MLPSpec(width=16, depth=2),
        progress=False,
    )
    assert flow.condition is None and flow.config.condition is None
    got = {
        "loss": flow.history["loss"].values[-3:],
        "val": flow.history["val_loss"].values,
        "vel": flow.velocity(probe, 0.5).ravel(),
        "push": flow.push_forward(probe, nfe=8).ravel(),
        "sample": flow.sample(2, seed=5, nfe=8).ravel(),
    }
    for key, want in REFERENCE[name].items():
        np.testing.assert_allclose(got[key], want, rtol=1e-6, err_msg=key)
