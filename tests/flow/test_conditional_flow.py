"""Conditional flows against closed forms, with no training: ``rho0 = N(0, I)`` and
``rho1(x | c) = N(mu(c), sigma(c)^2 I)``, the exact velocity of the interpolant's marginal
written per row's condition, for labels (integers and strings) and features. Every method
(velocity, score, push_forward, pull_back, transport, trajectory, path_energy, sample,
log_prob, log_prob_estimate) matches its closed form per condition, with one value broadcast
to all samples and with one row per sample (solved in chunks). Also: the guided velocity,
save/load of conditional flows (conditions in the file, bit-exact; a file whose conditions do
not fit its network is refused), and every way of passing a wrong condition.

For ``x_t = alpha x0 + beta x1``: ``x_t | c ~ N(beta mu, C_t I)``,
``C_t = alpha^2 + beta^2 sigma^2``, and

    v(x, t | c) = beta' mu + (alpha alpha' + beta beta' sigma^2) / C_t (x - beta mu),
    score(x, t | c) = -(x - beta mu) / C_t.

All ``C_t`` are multiples of ``I``, so the flow map is ``x0 -> beta mu + sqrt(C_t) x0``:
``push_forward(x0) = mu + sigma x0`` exactly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport import TransportFlow
from sitransport._safefile import write_tree
from sitransport.config import MLPSpec
from sitransport.ends.conditions import ConditionEncoder
from sitransport.errors import CorruptFileError
from sitransport.ode import ODEOptions

D = 2
#: tight solves, so that flow maps are compared to closed forms to ~1e-6
TIGHT = ODEOptions(rtol=1e-7, atol=1e-7)
#: the same, integrating 7 samples at a time (per-row conditions cut with the states)
CHUNKED = ODEOptions(rtol=1e-7, atol=1e-7, batch_size=7)
#: maximum error of the maps solved with them (measured: < 2e-7)
ATOL = 1e-5


def _coefficients(path: str, t, xp):
    """alpha, beta and their derivatives (numpy or torch ``xp``)."""
    if path == "linear":
        one = xp.ones_like(t)
        return 1 - t, t, -one, one
    h = math.pi / 2
    return xp.cos(h * t), xp.sin(h * t), -h * xp.sin(h * t), h * xp.cos(h * t)


class LabelFamily:
    """``mu`` and ``sigma`` per label; the null code (index K) is ``N(0, I)``."""

    def __init__(self, labels):
        self.labels = tuple(sorted(labels))
        self.encoder = ConditionEncoder("labels", labels=self.labels)
        k = len(self.labels)
        angles = 2 * np.pi * np.arange(k) / k
        self.mu = np.concatenate([3 * np.stack([np.cos(angles), np.sin(angles)], 1), [[0, 0]]])
        self.sigma = np.concatenate([0.3 + 0.2 * np.arange(k), [1.0]])

    def draw(self, n, rng):
        return np.asarray(self.labels)[rng.integers(0, len(self.labels), n)]

    def params(self, c, n):
        """numpy ``mu (n, d)``, ``sigma (n,)`` of raw conditions (one value or ``n``)."""
        idx = np.searchsorted(np.asarray(self.labels), np.atleast_1d(np.asarray(c)))
        idx = np.broadcast_to(idx, (n,))
        return self.mu[idx], self.sigma[idx]

    def of_codes(self, codes):
        return torch.as_tensor(self.mu)[codes], torch.as_tensor(self.sigma)[codes]


class FeatureFamily:
    """``mu = A c + b``, ``sigma = exp(0.3 c_0)`` of features ``c (n, 2)``; the encoder
    standardises with a non-trivial mean and scale, which the velocity undoes; the null code
    (all zeros) is ``N(0, I)``."""

    A = np.array([[1.5, 0.5], [-0.5, 1.0]])
    b = np.array([0.5, -1.0])

    def __init__(self):
        self.encoder = ConditionEncoder("features", mean=(0.5, -1.0), scale=(2.0, 0.5))

    def draw(self, n, rng):
        return rng.uniform(-1, 1, (n, 2)) * self.encoder.scale + self.encoder.mean

    def params(self, c, n):
        c = np.broadcast_to(np.asarray(c, dtype=np.float64).reshape(-1, 2), (n, 2))
        return c @ self.A.T + self.b, np.exp(0.3 * c[:, 0])

    def of_codes(self, codes):
        enc = self.encoder
        c = codes[:, :2] * torch.tensor(enc.scale).to(codes) + torch.tensor(enc.mean).to(codes)
        present = codes[:, 2:]  # 1, or 0 for the null condition
        mu = present * (c @ torch.as_tensor(self.A.T).to(codes) + torch.as_tensor(self.b))
        sigma = torch.where(present[:, 0] > 0, torch.exp(0.3 * c[:, 0]), 1.0)
        return mu, sigma


def velocity_fn(family, path):
    """The exact conditional velocity ``v(z, t, codes)`` of ``path`` for ``family``."""

    def v(z, t, codes):
        assert codes.shape[0] == z.shape[0]  # one code per state, also in chunks
        mu, sigma = family.of_codes(codes)
        mu, s2 = mu.to(z), sigma.to(z)[:, None] ** 2
        t = t.to(z).reshape(-1, 1) if t.ndim else t.to(z)
        a, b, da, db = _coefficients(path, t, torch)
        return db * mu + (a * da + b * db * s2) / (a * a + b * b * s2) * (z - b * mu)

    return v


def exact_velocity(path, x, t, mu, sigma):
    a, b, da, db = _coefficients(path, np.float64(t), np)
    s2 = sigma[:, None] ** 2
    return db * mu + (a * da + b * db * s2) / (a * a + b * b * s2) * (x - b * mu)


def exact_score(path, x, t, mu, sigma):
    a, b, _, _ = _coefficients(path, np.float64(t), np)
    return -(x - b * mu) / (a * a + b * b * sigma[:, None] ** 2)


def exact_log_prob(y, mu, sigma):
    return -D / 2 * np.log(2 * np.pi * sigma**2) - ((y - mu) ** 2).sum(1) / (2 * sigma**2)


def exact_energy(path, x0, mu, sigma):
    """int_0^1 |v_t(X_t)|^2 dt along X_t = beta mu + sqrt(C_t) x0 (Simpson, 4001 nodes)."""
    t = np.linspace(0.0, 1.0, 4001)[:, None, None]
    a, b, da, db = _coefficients(path, t, np)
    s2 = sigma[None, :, None] ** 2
    speed = db * mu[None] + (a * da + b * db * s2) / np.sqrt(a * a + b * b * s2) * x0[None]
    f = (speed**2).sum(-1)
    h = 1.0 / 4000
    return h / 3 * (f[0] + f[-1] + 4 * f[1:-1:2].sum(0) + 2 * f[2:-1:2].sum(0))


FAMILIES = {
    "labels": lambda: LabelFamily([0, 3, 7]),
    "strings": lambda: LabelFamily(["cat", "dog", "emu"]),
    "features": FeatureFamily,
}


def _flow(kind, path):
    family = FAMILIES[kind]()
    flow = TransportFlow(
        velocity_fn(family, path), path, base="gaussian", shape=(D,), condition=family.encoder
    )
    return flow, family


def _one_value(kind, family):
    """One condition for all samples: a label, or one feature vector."""
    return family.labels[1] if kind != "features" else np.array([0.9, -0.7])


def _conditions(kind, family, how, n=20):
    """``(condition, mu, sigma)`` of ``n`` samples: one value for all, or one row each."""
    if how == "broadcast":
        c = _one_value(kind, family)
    else:
        c = family.draw(n, np.random.default_rng(5))
    mu, sigma = family.params(c, n)
    return c, mu, sigma


#: every kind of condition, both paths, both ways of giving the condition
ALL = [(k, p, h) for k in FAMILIES for p in ("linear", "trig") for h in ("broadcast", "per-row")]
#: for the ODE solves (each ~1 s): each kind, path and way of giving the condition once
SOME = [
    ("labels", "linear", "per-row"),
    ("strings", "trig", "broadcast"),
    ("features", "trig", "per-row"),
    ("features", "linear", "broadcast"),
]


def _case(kind, path, how):
    flow, family = _flow(kind, path)
    return (kind, path, flow, family), _conditions(kind, family, how)


@pytest.fixture(params=ALL, ids=str)
def every(request):
    return _case(*request.param)


@pytest.fixture(params=SOME, ids=str)
def some(request):
    return _case(*request.param)


def test_velocity_and_score_match_closed_form(every):
    (kind, path, flow, _), (c, mu, sigma) = every
    rng = np.random.default_rng(0)
    for t in (0.0, 0.3, 0.8):
        x = rng.standard_normal((20, D)) * 2
        v = flow.velocity(x, t, condition=c)
        np.testing.assert_allclose(v, exact_velocity(path, x, t, mu, sigma), rtol=1e-12, atol=1e-12)
        s = flow.score(x, t, condition=c)
        np.testing.assert_allclose(s, exact_score(path, x, t, mu, sigma), rtol=1e-9, atol=1e-9)
    # times per sample with conditions per sample
    t = rng.uniform(0, 0.9, 20)
    x = rng.standard_normal((20, D))
    v = flow.velocity(x, t, condition=c)
    want = np.stack(
        [
            exact_velocity(path, x[i : i + 1], t[i], mu[i : i + 1], sigma[i : i + 1])[0]
            for i in range(20)
        ]
    )
    np.testing.assert_allclose(v, want, rtol=1e-12, atol=1e-12)


def test_maps_match_closed_form(some):
    """push_forward is mu + sigma x0, pull_back its inverse, transport to t = 1/2 the
    marginal's map, trajectory beta mu + sqrt(C_t) x0 (per row, cut in chunks of 7)."""
    (_, path, flow, _), (c, mu, sigma) = some
    x0 = np.random.default_rng(1).standard_normal((20, D))
    y = mu + sigma[:, None] * x0
    np.testing.assert_allclose(flow.push_forward(x0, ode=CHUNKED, condition=c), y, atol=ATOL)
    np.testing.assert_allclose(flow.pull_back(y, ode=CHUNKED, condition=c), x0, atol=ATOL)
    times = np.array([0.0, 0.25, 0.5, 1.0])
    traj = flow.trajectory(x0, times, ode=CHUNKED, condition=c)
    a, b, _, _ = _coefficients(path, times[:, None, None], np)
    want = b * mu + np.sqrt(a * a + b * b * sigma[:, None] ** 2) * x0
    np.testing.assert_allclose(traj.values, want, atol=ATOL)
    half = flow.transport(x0, end=0.5, ode=CHUNKED, condition=c).x
    np.testing.assert_allclose(half, want[2], atol=ATOL)


def test_path_energy_matches_closed_form(some):
    (_, path, flow, _), (c, mu, sigma) = some
    x0 = np.random.default_rng(2).standard_normal((20, D))
    res = flow.path_energy(x0, ode=CHUNKED, condition=c)
    np.testing.assert_allclose(res.x, mu + sigma[:, None] * x0, atol=ATOL)
    np.testing.assert_allclose(res.energy, exact_energy(path, x0, mu, sigma), rtol=ATOL)


def test_log_prob_matches_closed_form(some):
    (kind, path, flow, _), (c, mu, sigma) = some
    y = mu + sigma[:, None] * np.random.default_rng(3).standard_normal((20, D)) * 1.5
    want = exact_log_prob(y, mu, sigma)
    lp = flow.log_prob(y, condition=c, ode=CHUNKED, progress=False)
    np.testing.assert_allclose(lp, want, atol=ATOL)
    if (kind, path) == ("features", "trig"):
        # Hutchinson, with its error bars, in chunks: within 6 standard errors (+ solver's)
        hutch = flow.log_prob_estimate(
            y, condition=c, method="hutchinson", probes=8, ode=CHUNKED, progress=False
        )
        assert np.all(np.abs(hutch.log_prob - want) <= 6 * hutch.stderr + ATOL)


def test_sample_with_log_prob_matches_closed_form(some):
    """Samples under per-row conditions (cut in chunks of 7) carry the exact conditional
    density, and log_prob of the same samples agrees."""
    (_, _, flow, _), (c, mu, sigma) = some
    y, lp = flow.sample(20, seed=5, condition=c, ode=CHUNKED, return_log_prob=True)
    np.testing.assert_allclose(lp, exact_log_prob(y, mu, sigma), atol=ATOL)
    np.testing.assert_allclose(
        lp, flow.log_prob(y, condition=c, ode=CHUNKED, progress=False), atol=ATOL
    )
    assert np.all(np.abs((y - mu) / sigma[:, None]) < 6)  # each row from its own condition


def test_sample_with_log_prob_refuses_guidance():
    flow, family = _flow("labels", "trig")
    with pytest.raises(ValueError, match="return_log_prob=True needs guidance=0"):
        flow.sample(5, seed=0, condition=family.labels[0], guidance=1.0, return_log_prob=True)


@pytest.mark.parametrize(("kind", "path"), [("labels", "linear"), ("features", "trig")])
def test_sample_ode_matches_conditional_law(kind, path):
    """One condition for all: mean mu and variance sigma^2 within 5 standard errors."""
    flow, family = _flow(kind, path)
    n = 4000
    c = _one_value(kind, family)
    mu, sigma = family.params(c, 1)
    y = flow.sample(n, seed=0, condition=c, nfe=40)
    assert np.all(np.abs(y.mean(0) - mu[0]) < 5 * sigma[0] / math.sqrt(n))
    assert np.all(np.abs(y.var(0) / sigma[0] ** 2 - 1) < 5 * math.sqrt(2 / n))


@pytest.mark.parametrize("method", ["ode", "sde"])
def test_sample_per_row_standardises_to_base(method):
    """One condition per sample: (y - mu_i) / sigma_i is N(0, I) (mean within 5 standard
    errors, variance within 5 standard errors plus the SDE's discretisation error, 0.02 at
    200 Heun steps)."""
    flow, family = _flow("features", "trig")
    n = 4000
    c = family.draw(n, np.random.default_rng(4))
    mu, sigma = family.params(c, n)
    if method == "ode":
        y = flow.sample(n, seed=1, condition=c, nfe=40)
    else:
        y = flow.sample(n, seed=1, condition=c, method="sde", steps=200)
    z = (y - mu) / sigma[:, None]
    slack = 0.0 if method == "ode" else 0.02
    assert np.all(np.abs(z.mean(0)) < 5 / math.sqrt(n) + slack)
    assert np.all(np.abs(z.var(0) - 1) < 5 * math.sqrt(2 / n) + slack)
    # a test that could fail: the samples are not those of another row's condition
    assert np.abs((y - mu[::-1]) / sigma[::-1, None]).var() > 2


def test_sample_labels_each_in_its_component():
    flow, family = _flow("strings", "linear")
    c = np.array(["emu", "cat", "dog", "cat"] * 50)
    y = flow.sample(200, seed=2, condition=c, nfe=40)
    mu, sigma = family.params(c, 200)
    nearest = np.argmin(((y[:, None] - family.mu[None, :3]) ** 2).sum(-1), 1)
    np.testing.assert_array_equal(nearest, np.searchsorted(family.labels, c))
    assert np.all(np.abs(y - mu) < 5 * sigma[:, None])


@pytest.mark.parametrize("kind", list(FAMILIES))
def test_guidance_is_the_guided_velocity(kind):
    """sample(guidance=w) pushes the same base draws by (1 + w) v(c) - w v(null): the null
    codes reach the network, for labels (index K) and features (zeros)."""
    flow, family = _flow(kind, "trig")
    v = velocity_fn(family, "trig")
    w = 1.5

    def guided(z, t, codes):
        null = family.encoder.null(z.shape[0], dtype=z.dtype)
        return (1 + w) * v(z, t, codes) - w * v(z, t, null)

    by_hand = TransportFlow(guided, "trig", base="gaussian", shape=(D,), condition=family.encoder)
    c = _one_value(kind, family)
    got = flow.sample(50, seed=3, condition=c, guidance=w, ode=TIGHT)
    want = by_hand.sample(50, seed=3, condition=c, ode=TIGHT)
    np.testing.assert_allclose(got, want, atol=ATOL)
    plain = flow.sample(50, seed=3, condition=c, ode=TIGHT)
    assert np.array_equal(plain, flow.sample(50, seed=3, condition=c, guidance=0.0, ode=TIGHT))
    assert np.abs(got - plain).max() > 0.1


# ------------------------------------------------------------------------------ errors
METHODS = {
    "velocity": lambda f, x, c: f.velocity(x, 0.5, condition=c),
    "score": lambda f, x, c: f.score(x, 0.5, condition=c),
    "transport": lambda f, x, c: f.transport(x, nfe=4, condition=c),
    "path_energy": lambda f, x, c: f.path_energy(x, condition=c),
    "push_forward": lambda f, x, c: f.push_forward(x, nfe=4, condition=c),
    "pull_back": lambda f, x, c: f.pull_back(x, nfe=4, condition=c),
    "trajectory": lambda f, x, c: f.trajectory(x, [0.0, 1.0], nfe=4, condition=c),
    "sample": lambda f, x, c: f.sample(len(x), seed=0, nfe=4, condition=c),
    "sample_sde": lambda f, x, c: f.sample(len(x), seed=0, method="sde", steps=4, condition=c),
    "sample_log_prob": lambda f, x, c: f.sample(
        len(x), seed=0, nfe=4, condition=c, return_log_prob=True
    )[1],
    "log_prob": lambda f, x, c: f.log_prob(x, condition=c, progress=False),
    "log_prob_estimate": lambda f, x, c: f.log_prob_estimate(x, condition=c, progress=False),
}


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_takes_condition(method):
    """Each method works with a condition, and gives another answer for another one."""
    flow, family = _flow("labels", "trig")
    x = np.random.default_rng(0).standard_normal((3, D))
    a = METHODS[method](flow, x, 0)
    b = METHODS[method](flow, x, [7, 0, 3])
    if method == "trajectory":
        a, b = a.values[-1], b.values[-1]
    a, b = (np.asarray(getattr(r, "log_prob", getattr(r, "x", r))) for r in (a, b))
    assert np.isfinite(a).all() and a.shape == b.shape
    # row 1 has label 0 in both (equal up to the adaptive solver's step choice)
    np.testing.assert_allclose(a[1], b[1], rtol=1e-4, atol=1e-4)
    assert not np.allclose(a[0], b[0], rtol=1e-2)


@pytest.mark.parametrize("method", list(METHODS))
def test_every_method_needs_its_condition(method):
    flow, _ = _flow("labels", "trig")
    x = np.zeros((3, D))
    with pytest.raises(ValueError, match=r"^condition: this flow is conditional"):
        METHODS[method](flow, x, None)
    plain = TransportFlow(lambda z, t: -z, "trig", base="gaussian", shape=(D,))
    with pytest.raises(ValueError, match=r"^condition: this flow is unconditional"):
        METHODS[method](plain, x, 0)


def test_guidance_on_an_unconditional_flow_is_refused():
    plain = TransportFlow(lambda z, t: -z, "trig", base="gaussian", shape=(D,))
    with pytest.raises(ValueError, match="guidance"):
        plain.sample(3, guidance=1.0)
    assert plain.sample(3, seed=0, guidance=0.0).shape == (3, D)


@pytest.mark.parametrize("guidance", [-1.0, float("nan"), float("inf")])
def test_bad_guidance_is_refused(guidance):
    flow, _ = _flow("labels", "trig")
    with pytest.raises(ValueError, match="guidance"):
        flow.sample(3, condition=0, guidance=guidance)


BAD = {
    # name: (kind of flow, condition, error, message)
    "unseen label": ("labels", [0, 5, 7], ValueError, r"never seen.*\[5\]"),
    "unseen string": ("strings", "owl", ValueError, r"never seen.*owl"),
    "strings for int labels": ("labels", ["0", "3", "7"], ValueError, "labels are"),
    "ints for string labels": ("strings", [0, 1, 2], ValueError, "labels are"),
    "features for labels": ("labels", np.zeros((3, 2)), ValueError, "float features"),
    "labels for features": ("features", np.array(["a", "b", "c"]), ValueError, "got labels"),
    "feature width": ("features", np.zeros((3, 3)), ValueError, "2 feature column"),
    "one feature for two": ("features", 0.5, ValueError, "2 feature column"),
    "row count": ("labels", [0, 3], ValueError, r"one row per sample \(3\), got 2"),
    "row count features": ("features", np.zeros((4, 2)), ValueError, "got 4 rows"),
    "nan features": ("features", [[0.0, 1.0], [np.nan, 0.0], [0, 0]], ValueError, "nan or inf"),
    "inf features": ("features", [np.inf, 0.0], ValueError, "nan or inf"),
    "3-D": ("labels", np.zeros((3, 1, 1), dtype=int), ValueError, "one row per sample"),
    "3-D features": ("features", np.zeros((3, 2, 1)), ValueError, "one row per sample"),
    "2-D labels": ("labels", np.zeros((3, 2), dtype=int), ValueError, "labels must be 1-D"),
    "empty": ("labels", np.array([], dtype=int), ValueError, "one row per sample"),
    "masked": ("labels", np.ma.masked_array([0, 3, 7], [0, 1, 0]), TypeError, "masked"),
    "complex": ("features", np.zeros(3, complex), TypeError, "dtype complex"),
    "object": ("labels", np.array([0, "a", 1.5], dtype=object), TypeError, "dtype object"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_bad_conditions_are_named(name):
    kind, c, error, message = BAD[name]
    flow, _ = _flow(kind, "trig")
    x = np.zeros((3, D))
    for method in ("velocity", "push_forward", "sample", "log_prob"):
        with pytest.raises(error, match=message) as info:
            METHODS[method](flow, x, c)
        assert str(info.value).startswith("condition")


def test_condition_accepts_array_types():
    """torch, xarray, pandas and lists give the same answers as numpy."""
    import pandas as pd
    import xarray as xr

    flow, family = _flow("features", "linear")
    x = np.random.default_rng(0).standard_normal((4, D))
    c = family.draw(4, np.random.default_rng(1))
    want = flow.velocity(x, 0.4, condition=c)
    for other in (torch.tensor(c), xr.DataArray(c), pd.DataFrame(c), c.tolist()):
        assert np.array_equal(flow.velocity(x, 0.4, condition=other), want)
    labels, _ = _flow("labels", "linear")
    want = labels.velocity(x, 0.4, condition=[0, 3, 3, 7])
    for other in (torch.tensor([0, 3, 3, 7]), pd.Series([0, 3, 3, 7]), np.uint8([0, 3, 3, 7])):
        assert np.array_equal(labels.velocity(x, 0.4, condition=other), want)


def test_condition_must_be_an_encoder():
    with pytest.raises(TypeError, match="condition must be a ConditionEncoder"):
        TransportFlow(lambda z, t, c: z, "trig", shape=(D,), condition=[0, 1])


# ---------------------------------------------------------------------------- save/load
def _fitted(condition, **kw):
    """A flow fitted for a few steps (only its files are looked at)."""
    x1 = np.random.default_rng(0).standard_normal((60, D))
    net = MLPSpec(width=16, depth=1)
    return st.fit(
        "gaussian",
        x1,
        condition=condition,
        steps=3,
        batch_size=16,
        network=net,
        progress=False,
        **kw,
    )


SAVED = {
    "labels": (lambda rng: rng.integers(0, 3, 60), [2, 0, 1, 1]),
    "strings": (
        lambda rng: np.array(["b", "a", "c"])[rng.integers(0, 3, 60)],
        ["c", "a", "a", "b"],
    ),
    "features": (lambda rng: rng.standard_normal((60, 2)), np.ones((4, 2)) * [0.5, -0.3]),
    "one feature": (lambda rng: rng.uniform(0, 5, 60), [0.5, 1.5, 4.0, 2.0]),
}


@pytest.mark.parametrize("kind", list(SAVED))
def test_save_load_is_bit_exact(kind, tmp_path):
    make, c = SAVED[kind]
    flow = _fitted(make(np.random.default_rng(1)), training=st.TrainSettings(condition_dropout=0.2))
    flow.save(tmp_path / "flow.sit")
    again = st.load(tmp_path / "flow.sit")
    assert again.condition == flow.condition and again.condition is not None
    assert again.config == flow.config
    x = np.random.default_rng(2).standard_normal((4, D))
    for method in ("velocity", "push_forward", "pull_back", "score", "log_prob"):
        a, b = METHODS[method](flow, x, c), METHODS[method](again, x, c)
        assert np.array_equal(a, b), method
    for kw in ({}, {"guidance": 2.0}, {"method": "sde", "steps": 5}):
        a = flow.sample(4, seed=3, condition=c[0], **kw)
        assert np.array_equal(a, again.sample(4, seed=3, condition=c[0], **kw)), kw


def test_file_conditions_must_fit_the_network(tmp_path):
    flow = _fitted(np.arange(60) % 3)
    payload = flow.to_payload()
    assert payload["condition"] == {"kind": "labels", "labels": [0, 1, 2]}
    bad = {
        "another label count": {"kind": "labels", "labels": [0, 1, 2, 3]},
        "features": {"kind": "features", "mean": [0.0, 0.0], "scale": [1.0, 1.0]},
        "not a spec": {"kind": "labels", "labels": [2, 1, 0]},
    }
    for name, spec in bad.items():
        write_tree({**payload, "condition": spec}, tmp_path / "bad.sit")
        with pytest.raises(CorruptFileError, match="bad.sit"):
            st.load(tmp_path / "bad.sit")
        with pytest.raises(CorruptFileError):
            TransportFlow.from_payload({**payload, "condition": spec})
        assert name
    missing = {k: v for k, v in payload.items() if k != "condition"}
    write_tree(missing, tmp_path / "missing.sit")
    with pytest.raises(CorruptFileError, match="no conditions"):
        st.load(tmp_path / "missing.sit")
    plain = _fitted(None).to_payload()
    assert "condition" not in plain  # unconditional files are as before
    write_tree({**plain, "condition": payload["condition"]}, tmp_path / "extra.sit")
    with pytest.raises(CorruptFileError, match="unconditional"):
        st.load(tmp_path / "extra.sit")
