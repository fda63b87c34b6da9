"""The Sinkhorn diagnostic of training (history["sinkhorn"]): the logged value is geomloss's
debiased divergence of the returned model's samples (recomputed here), it falls as a fit
learns, it is absent when off or skipped, it never changes the run's numbers, it keeps its
cost books, and bad settings name the field."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from geomloss import SamplesLoss

import sitransport as st
from sitransport.interpolants import Linear, Normalized
from sitransport.nn import MLPVelocity
from sitransport.ode import ODEOptions, integrate
from sitransport.train import TrainSettings, train
from sitransport.train.diagnostics import SCALING, SinkhornMonitor
from tests.helpers import TINY, tiny_training

N_HELD = 200


def _draw(n, gen):
    return torch.randn(n, 2, generator=gen), 0.5 * torch.randn(n, 2, generator=gen) + 2.0


def _held():
    return _draw(N_HELD, torch.Generator().manual_seed(11))


def _direct(model, x0, target, blur, nfe=32):
    """geomloss's S_eps of model's rk4 samples of x0 vs target, outside the trainer."""
    end = integrate(model, x0, torch.tensor([0.0, 1.0]), ODEOptions.budget(nfe)).states[-1]
    loss = SamplesLoss("sinkhorn", p=2, blur=blur, scaling=SCALING, debias=True,
                       backend="tensorized")  # fmt: skip
    with torch.no_grad():
        return float(loss(end.double(), target.double()))


def _run(interpolant, **changes):
    torch.manual_seed(0)
    settings = TrainSettings(
        steps=40, batch_size=64, progress=False, sinkhorn_n=64, sinkhorn_every=20, **changes
    )
    net = MLPVelocity(2, width=16, depth=1)
    return train(net, interpolant, _draw, settings=settings, validation=_held(), seed=1)


def test_logged_value_is_geomloss_on_the_returned_models_samples():
    """At the last step the diagnostic measures the returned (EMA) model: its samples of
    the held-out sources v0[n:2n] against the targets v1[:n], and the floor, the mean of
    v1[n:2n] and v1[2n:3n] against v1[:n], each equal to direct geomloss calls."""
    result = _run(Linear())
    h, n = result.history, 64
    v0, v1 = _held()
    assert h["sinkhorn_step"].values.tolist() == [20, 40]
    assert h.attrs["sinkhorn_n"] == n and h.attrs["sinkhorn_blur"] == 0.05
    want = _direct(result.model, v0[n : 2 * n], v1[:n], 0.05)
    assert float(h["sinkhorn"][-1]) == pytest.approx(want, rel=1e-10)
    loss = SamplesLoss("sinkhorn", p=2, blur=0.05, scaling=SCALING, debias=True)
    floors = [float(loss(v1[k * n : (k + 1) * n].double(), v1[:n].double())) for k in (1, 2)]
    assert h.attrs["sinkhorn_floor_draws"] == 2  # 200 held out: A and two more sets of 64
    assert h.attrs["sinkhorn_floor"] == pytest.approx(np.mean(floors), rel=1e-10)
    assert h.attrs["sinkhorn_floor_sd"] == pytest.approx(np.std(floors, ddof=1), rel=1e-8)


def test_logged_value_is_in_the_callers_units():
    """A Normalized path with scale s: the network's coordinates are u = (x - m) / s; the
    value is s**2 times S_eps in u, i.e. S_eps in data units with blur s * sinkhorn_blur."""
    s, shift = 2.0, torch.tensor([1.0, -1.0], dtype=torch.float64)
    result = _run(Normalized(Linear(), shift, s))
    h, n = result.history, 64
    v0, v1 = _held()
    in_u = _direct(result.model, v0[n : 2 * n], v1[:n], 0.05)
    assert float(h["sinkhorn"][-1]) == pytest.approx(s**2 * in_u, rel=1e-10)
    end = integrate(result.model, v0[n : 2 * n], torch.tensor([0.0, 1.0]), ODEOptions.budget(32))
    x_gen, x_target = end.states[-1].double() * s + shift, v1[:n].double() * s + shift
    in_data = st.metrics.sinkhorn_divergence(x_gen, x_target, blur=s * 0.05, scaling=SCALING)
    assert float(h["sinkhorn"][-1]) == pytest.approx(in_data, rel=1e-6)
    assert h.attrs["sinkhorn_blur"] == pytest.approx(0.1)


def test_the_divergence_falls_as_a_fit_learns():
    """N(0, I) -> moons: from the untrained flow (about the identity) down towards the
    floor; the last value is within a few floors, the first many floors above it."""
    x1 = st.datasets.sample("moons", 3000, seed=0)
    training = TrainSettings(sinkhorn_every=25, eval_every=100)
    flow = st.fit("gaussian", x1, steps=400, progress=False, seed=0, training=training)
    values, floor = flow.history["sinkhorn"].values, flow.history.attrs["sinkhorn_floor"]
    assert values[0] > 2.5 * values[-1]
    assert values[-1] < 3 * floor < values[0]


def test_off_and_skipped_runs_log_nothing_and_say_why():
    off = st.fit("gaussian", _held()[1].numpy(), **dict(TINY, training=tiny_training(sinkhorn_n=0)))
    assert "sinkhorn" not in off.history and "sinkhorn_step" not in off.history.coords
    assert off.history.attrs["sinkhorn_skipped"] == "sinkhorn_n=0 (off)"
    unheld = st.fit("gaussian", _held()[1].numpy(), validation=0, **TINY)
    assert "sinkhorn" not in unheld.history
    assert "no validation data" in unheld.history.attrs["sinkhorn_skipped"]
    settings = TrainSettings()
    images = (torch.zeros(64, 1, 4, 4), torch.zeros(64, 1, 4, 4))
    assert "images" in SinkhornMonitor(settings, images, None, Linear()).skipped
    few = (torch.zeros(15, 2), torch.zeros(15, 2))
    monitor = SinkhornMonitor(settings, few, None, Linear())
    assert "fewer than 2 x 8" in monitor.skipped and not monitor.due(500, 1000)


def test_the_diagnostic_never_changes_the_run():
    """A diagnostic at every step (and one every 7 steps) leaves the losses, validation
    losses and weights bit for bit those of the run without it."""
    x1 = st.datasets.sample("moons", 400, seed=0)

    def fit(**changes):
        training = tiny_training(**changes)
        return st.fit("gaussian", x1, **dict(TINY, steps=30, seed=4, training=training))

    off, every, some = fit(sinkhorn_n=0), fit(sinkhorn_every=1), fit(sinkhorn_every=7)
    assert every.history.sizes["sinkhorn_step"] == 30
    for other in (every, some):
        for name in ("loss", "fm_loss", "grad_norm", "val_loss"):
            np.testing.assert_array_equal(other.history[name].values, off.history[name].values)
        for a, b in zip(
            off.network.state_dict().values(), other.network.state_dict().values(), strict=True
        ):
            assert torch.equal(a, b)


def test_cost_books():
    h = _run(Linear()).history
    seconds = h["sinkhorn_seconds"].values
    assert (seconds > 0).all()
    assert h.attrs["sinkhorn_seconds"] == pytest.approx(seconds.sum())
    training = h["wall_time"].values[-1] - seconds[:-1].sum()  # the last one follows it
    assert 0 < h.attrs["sinkhorn_cost"] <= 1.5 * seconds.sum() / training
    assert "rk4, 8 fixed step(s), 32 velocity evaluations" == h.attrs["sinkhorn_solver"]


def test_conditional_fit_measures_the_marginal_and_latent_fits_run():
    rng = np.random.default_rng(0)
    c = rng.integers(0, 2, 600)
    x1 = rng.standard_normal((600, 2)) * 0.3 + np.stack([c * 3.0, -c * 1.0], 1)
    flow = st.fit("gaussian", x1, condition=c, **dict(TINY, steps=30))
    assert flow.history["sinkhorn"].sizes["sinkhorn_step"] == 1
    assert math.isfinite(float(flow.history["sinkhorn"][-1]))
    latent = st.fit("gaussian", x1, latent=1, **dict(TINY, steps=30))
    assert math.isfinite(float(latent.history["sinkhorn"][-1]))


def test_a_failing_solve_logs_nan():
    monitor = SinkhornMonitor(TrainSettings(sinkhorn_n=16), _held(), None, Linear())
    assert math.isnan(monitor.measure(lambda x, t: torch.full_like(x, math.inf)))


def test_resuming_with_other_diagnostic_settings_is_allowed(tmp_path):
    """The diagnostic does not change the model: its settings may differ on resume (and
    checkpoints written before it existed do not name them)."""
    x1 = st.datasets.sample("moons", 400, seed=0)
    ckpt = st.Checkpointing(tmp_path, every=10)
    kw = dict(TINY, steps=10, checkpoint=ckpt)
    st.fit("gaussian", x1, **kw)
    again = dict(kw, steps=20, checkpoint=dataclasses.replace(ckpt, resume=True))
    flow = st.fit("gaussian", x1, **dict(again, training=tiny_training(sinkhorn_every=5)))
    assert flow.history["sinkhorn_step"].values.tolist() == [10, 15, 20]


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("sinkhorn_n", 3, ValueError),
        ("sinkhorn_n", -1, ValueError),
        ("sinkhorn_n", 2.5, TypeError),
        ("sinkhorn_every", 0, ValueError),
        ("sinkhorn_blur", 0.0, ValueError),
        ("sinkhorn_blur", math.inf, ValueError),
        ("sinkhorn_nfe", 0, ValueError),
        ("sinkhorn_nfe", 10**6, ValueError),
    ],
)
def test_bad_settings_name_the_field(field, value, error):
    with pytest.raises(error, match=field):
        TrainSettings(**{field: value})
