"""GlobalEntropicOT: pairs from one entropic plan between large subsamples (geomloss), the
background refresh, exact resume, fit end to end, the unbalanced plan, bad settings."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.couplings import EntropicPlanSampler, GlobalEntropicOT, get_coupling
from tests.helpers import TINY

TINY = dict(TINY, steps=30)
# a plan of 64 points re-solved every 2 x 64 pairs: every other step at batch 64
REFRESHING = {"name": "global_entropic", "n": 64, "reuse": 2, "blur": 0.3}


@pytest.fixture(scope="module")
def data():
    return st.datasets.sample("moons", 400, seed=0), st.datasets.sample("8gaussians", 400, seed=0)


def test_pairs_are_the_shift_map_up_to_the_blur():
    """x1 ~ x0 + 3 (a translation, the exact OT map): the pairs' displacement is 3 with a
    spread of about blur per coordinate (the entropic plan's conditional law)."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(1000, 2, generator=g, dtype=torch.float64)
    x1 = torch.randn(1000, 2, generator=g, dtype=torch.float64) + 3.0
    blur = 0.2
    draw = GlobalEntropicOT(n=1000, blur=blur).sampler(x0, x1)
    a, b = draw(4000, g)
    step = b - a - 3.0
    assert float(step.mean(0).abs().max()) < 0.05
    spread = float(step.pow(2).mean())
    # blur^2 from the plan, plus the finite-sample transport noise of two 1,000-point
    # samples (their empirical W2^2 per coordinate, about 0.01 in 2-D), which only adds
    assert 0.8 * blur**2 < spread < blur**2 + 0.02


def test_unbalanced_global_plan_drops_a_far_cluster():
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(400, 2, generator=g, dtype=torch.float64)
    x1 = torch.cat(
        [torch.randn(400, 2, generator=g, dtype=torch.float64), torch.full((40, 2), 8.0)]
    )
    for reach, low, high in ((None, 0.07, 1.0), (1.0, 0.0, 0.005)):
        draw = GlobalEntropicOT(n=1000, blur=0.2, reach=reach).sampler(x0, x1)
        far = float((draw(5000, g)[1][:, 0] > 4.0).double().mean())
        assert low <= far < high, (reach, far)


def test_background_refresh_draws_the_same_pairs_as_in_place():
    stream = lambda m, g: torch.randn(m, 2, generator=g, dtype=torch.float64)  # noqa: E731
    pairs = []
    for background in (True, False):
        draw = GlobalEntropicOT(n=64, reuse=1, blur=0.3, background=background).sampler(
            stream, stream, seed=3
        )
        g = torch.Generator().manual_seed(0)
        pairs.append(torch.cat([torch.cat(draw(32, g), 1) for _ in range(9)]))
        assert len(draw.solve_seconds) == 5
    assert torch.equal(*pairs)


def test_fit_global_entropic_runs_records_and_is_reproducible(data):
    x0, x1 = data
    flow = st.fit(x0, x1, **TINY, coupling={"name": "global_entropic", "blur": 0.2})
    h = flow.history
    assert h.attrs["ot_plan_n"] == 65536 and len(h.attrs["ot_plan_solve_s"]) == 1
    assert flow.config.coupling.name == "global_entropic"
    kw = dict(TINY, batch_size=64, coupling=REFRESHING)
    a = st.fit("gaussian", x1, **kw, seed=1)
    assert len(a.history.attrs["ot_plan_solve_s"]) == 15  # 30 steps, a plan per 2
    b = st.fit("gaussian", x1, **kw, seed=1)
    np.testing.assert_array_equal(a.push_forward(x0[:5]), b.push_forward(x0[:5]))


def test_fit_global_entropic_resumes_exactly(data, tmp_path, killed_after_checkpoint):
    _, x1 = data
    kw = dict(TINY, batch_size=64, coupling=REFRESHING, seed=0)
    full = st.fit("gaussian", x1, **kw)
    with killed_after_checkpoint():
        st.fit("gaussian", x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=15))
    resumed = st.fit(
        "gaussian", x1, **kw, checkpoint=st.Checkpointing(tmp_path, every=15, resume=True)
    )
    x = x1[:10]
    np.testing.assert_array_equal(resumed.push_forward(x), full.push_forward(x))
    np.testing.assert_array_equal(resumed.history["loss"].values, full.history["loss"].values)
    assert len(resumed.history.attrs["ot_plan_solve_s"]) == 15


def test_spec_round_trips_and_bad_settings_are_refused():
    coupling = GlobalEntropicOT(n=128, blur=0.2, reach=1.5, reuse=None, background=False)
    assert get_coupling(coupling.spec()) == coupling
    for kwargs, error, match in (
        ({"n": 1}, ValueError, "n must"),
        ({"reuse": 0}, ValueError, "reuse"),
        ({"background": 1}, TypeError, "background"),
        ({"device": "meta"}, ValueError, "device"),
        ({"blur": -0.1}, ValueError, "blur"),
    ):
        with pytest.raises(error, match=match):
            GlobalEntropicOT(**kwargs)
    with pytest.raises(TypeError, match="GlobalEntropicOT"):
        EntropicPlanSampler(st.couplings.GlobalOT(), torch.zeros(2, 1), torch.zeros(2, 1))
    with pytest.raises(ValueError, match="same sample shape"):
        GlobalEntropicOT().sampler(torch.zeros(2, 1), torch.zeros(2, 2))


def test_conditional_fit_refuses_a_plan_between_whole_ends(data):
    x0, x1 = data
    labels = np.arange(400) % 2
    with pytest.raises(ValueError, match="GlobalEntropicOT with conditions"):
        st.fit(x0, x1, condition=labels, **dict(TINY, steps=2), coupling="global_entropic")
