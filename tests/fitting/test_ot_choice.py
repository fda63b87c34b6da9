"""``coupling="ot"``: the selection rule per (shape, n, device), what fit records, the save /
load round trip, and the caller's settings winning over the pick."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.config import FitConfig, MLPSpec, OTChoice
from sitransport.couplings import coupling_names, get_coupling
from sitransport.fitting.ot_choice import OT_STEPS, PLAN_POINTS, choose_ot, is_ot


def ends(n: int = 200, d: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x0 = np.random.default_rng(0).normal(size=(n, d))
    return x0, 2.0 * x0 + 1.0


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    ("n", "points"),
    [(500, 500), (PLAN_POINTS, PLAN_POINTS), (PLAN_POINTS + 1, PLAN_POINTS), (10**6, PLAN_POINTS)],
)
@pytest.mark.parametrize("d", [2, 8, 16, 17, 64])
def test_vectors_get_a_global_exact_plan_a_potential_and_straight_paths(n, points, d):
    choice = choose_ot((d,), n)
    assert choice.coupling == {"name": "global_ot", "n": points}
    assert (choice.network, choice.interpolant) == ("potential", "linear")
    assert choice.steps == (OT_STEPS if d <= 16 else 2 * OT_STEPS)
    assert f"d = {d}" in choice.reason and f"n = {n}" in choice.reason
    whole = "whole training sets" in choice.reason
    assert whole == (n <= PLAN_POINTS)


def test_streams_get_plans_of_plan_points():
    choice = choose_ot((4,), None)
    assert choice.coupling == {"name": "global_ot", "n": PLAN_POINTS}
    assert "refreshed" in choice.reason


def test_device_enters_the_reason_and_cuda_keeps_the_exact_plan_for_now():
    # the hook for the entropic global plan: until it is a coupling, CUDA gets the exact plan
    cpu, cuda = choose_ot((16,), 20000, "cpu"), choose_ot((16,), 20000, "cuda")
    assert cpu.coupling == cuda.coupling
    assert "cpu" in cpu.reason and "cuda" in cuda.reason


def test_images_get_exact_blocks_and_the_default_network():
    choice = choose_ot((3, 8, 8), 1000)
    assert choice.coupling == {"name": "exact_ot"} and choice.steps is None
    assert (choice.network, choice.interpolant) == ("auto", "linear")


@pytest.mark.parametrize(
    ("shape", "n", "error", "match"),
    [
        ([3], 10, TypeError, "shape"),
        ((), 10, TypeError, "shape"),
        ((0,), 10, ValueError, "shape"),
        ((3,), 0, ValueError, "n"),
        ((3,), 2.5, TypeError, "n"),
    ],
)
def test_choose_ot_refuses_bad_input(shape, n, error, match):
    with pytest.raises(error, match=match):
        choose_ot(shape, n)


def test_is_ot_takes_the_name_alone():
    assert is_ot("ot") and is_ot({"name": "ot"})
    assert not is_ot("global_ot") and not is_ot({"name": "exact_ot"})
    with pytest.raises(ValueError, match=r"no settings.*\['n'\]"):
        is_ot({"name": "ot", "n": 4})


# ---------------------------------------------------------------- the registry


def test_ot_is_listed_and_only_fit_resolves_it():
    assert "ot" in coupling_names()
    with pytest.raises(ValueError, match=r"chosen by fit.*global_ot"):
        get_coupling("ot")
    with pytest.raises(ValueError, match=r"valid values are: .*\bot\b"):
        get_coupling("o_t")
    with pytest.raises(ValueError, match=r"valid values are: .*\bot\b"):
        st.fit(*ends(), coupling="o_t", steps=2, progress=False)


# ---------------------------------------------------------------- fit


@pytest.fixture(scope="module")
def ot_flow():
    return st.fit(*ends(), coupling="ot", steps=10, progress=False)


def test_fit_records_the_concrete_choice_and_why(ot_flow):
    config = ot_flow.config
    assert config.coupling.spec() == {"name": "global_ot", "n": 200, "reuse": 250, "processes": 1}
    assert config.network.kind == "potential"
    assert config.interpolant == {"name": "linear"}
    choice = config.ot_choice
    pick = OTChoice({"name": "global_ot", "n": 200}, "potential", "linear", choice.reason)
    assert choice == dataclasses.replace(pick, overridden=("steps",), steps=OT_STEPS)
    assert "d = 3, n = 200, cpu" in choice.reason
    assert isinstance(ot_flow.network, st.nn.PotentialVelocity)


def test_fit_with_ot_trains_what_naming_the_choice_trains(ot_flow):
    named = st.fit(
        *ends(),
        coupling={"name": "global_ot", "n": 200},
        network="potential",
        interpolant="linear",
        steps=10,
        progress=False,
    )
    x = torch.zeros(4, 3, dtype=torch.float64)
    assert torch.equal(ot_flow.push_forward(x), named.push_forward(x))
    assert named.config.ot_choice is None
    assert named.config == dataclasses.replace(ot_flow.config, ot_choice=None)


def test_save_and_load_keep_the_choice(ot_flow, tmp_path):
    ot_flow.save(tmp_path / "flow.safetensors")
    again = st.load(tmp_path / "flow.safetensors")
    assert again.config == ot_flow.config
    assert again.config.ot_choice == ot_flow.config.ot_choice


def test_the_callers_settings_win():
    flow = st.fit(
        *ends(),
        coupling="ot",
        network=MLPSpec(width=16, depth=1),
        interpolant="trig",
        steps=7,
        progress=False,
    )
    config = flow.config
    assert (config.network.kind, config.network.width) == ("mlp", 16)
    assert config.interpolant == {"name": "trig"}
    assert config.training.steps == 7
    assert config.coupling.name == "global_ot"
    assert config.ot_choice.overridden == ("interpolant", "network", "steps")


@pytest.mark.parametrize(
    ("keywords", "steps", "overridden"),
    [
        ({}, OT_STEPS, ()),
        ({"steps": 9}, 9, ("steps",)),
        ({"training": st.TrainSettings(steps=11)}, 11, ("steps",)),
        # a TrainSettings at the default length leaves the length to the pick
        ({"training": st.TrainSettings(ema=None)}, OT_STEPS, ()),
    ],
)
def test_ot_picks_the_steps_unless_the_caller_names_them(monkeypatch, keywords, steps, overridden):
    import sitransport.fitting.ot_choice as rule

    monkeypatch.setattr(rule, "OT_STEPS", 5)  # the pick, kept short for the test
    want = 5 if steps == OT_STEPS else steps
    flow = st.fit(*ends(), coupling="ot", progress=False, **keywords)
    assert flow.config.training.steps == want
    assert flow.config.ot_choice.steps == 5
    assert flow.config.ot_choice.overridden == overridden


def test_without_ot_nothing_changes():
    flow = st.fit(*ends(), steps=3, progress=False)
    assert flow.config.ot_choice is None
    assert flow.config.interpolant == {"name": "trig"}
    assert flow.config.coupling.name == "independent"


def test_an_ot_choice_written_before_its_steps_loads():
    spec = OTChoice({"name": "exact_ot"}, "auto", "linear", "images").spec()
    del spec["steps"]
    assert OTChoice.from_spec(spec).steps is None


def test_a_config_written_before_ot_choice_loads():
    spec = FitConfig().spec()
    del spec["ot_choice"]
    assert FitConfig.from_spec(spec) == FitConfig()


def test_ot_choice_spec_round_trip_and_errors():
    choice = OTChoice({"name": "exact_ot"}, "auto", "linear", "images", ("network",))
    assert OTChoice.from_spec(choice.spec()) == choice
    config = FitConfig(ot_choice=choice)
    assert FitConfig.from_spec(config.spec()) == config
    with pytest.raises(TypeError, match="keys"):
        OTChoice.from_spec({"coupling": {"name": "exact_ot"}})
    with pytest.raises(TypeError, match="OTChoice.coupling"):
        OTChoice("exact_ot", "auto", "linear", "images")
    with pytest.raises(TypeError, match="OTChoice.overridden"):
        OTChoice({"name": "exact_ot"}, "auto", "linear", "images", "network")
    with pytest.raises(ValueError, match="OTChoice.steps"):
        OTChoice({"name": "exact_ot"}, "auto", "linear", "images", steps=0)
    with pytest.raises(TypeError, match="ot_choice"):
        FitConfig(ot_choice={"name": "exact_ot"})


def test_reflow_drops_the_choice_its_pairs_replace(ot_flow):
    straight = st.reflow(ot_flow, 100, steps=3, progress=False)
    assert straight.config.coupling.name == "paired"
    assert straight.config.ot_choice is None
    assert straight.config.network.kind == "potential"  # the flow's network, as reflow keeps
