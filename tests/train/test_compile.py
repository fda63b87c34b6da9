"""``TrainSettings(compile=True)``: the compiled loss trains to the eager run's losses (slow:
compiling takes a while), and runs that cannot be compiled train eagerly with one warning
naming why, to the eager run's numbers exactly."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import sitransport as st
import sitransport.train.compiled as compiled
from sitransport.interpolants import Linear
from sitransport.nn import MLPVelocity, PotentialVelocity
from sitransport.train import TrainSettings, train


def _draw(n, gen):
    return torch.randn(n, 2, generator=gen), torch.randn(n, 2, generator=gen) + 1.0


def _losses(net_factory, compile: bool) -> np.ndarray:
    torch.manual_seed(0)
    settings = TrainSettings(steps=4, batch_size=16, progress=False, compile=compile)
    result = train(net_factory(), Linear(), _draw, settings=settings, seed=0)
    return result.history["loss"].values


def _mlp():
    torch.manual_seed(0)
    return MLPVelocity(2, width=8, depth=1)


def test_compile_must_be_a_bool():
    with pytest.raises((TypeError, ValueError), match="compile"):
        TrainSettings(compile="yes")


def test_compile_is_off_by_default_and_resumable():
    from sitransport.train.resume import RESUMABLE

    assert TrainSettings().compile is False
    assert "compile" in RESUMABLE  # checkpoints of eager runs resume compiled, and back


def test_potential_network_trains_eagerly_with_one_warning():
    def potential():
        torch.manual_seed(0)
        return PotentialVelocity(2, width=8, depth=1)

    eager = _losses(potential, False)
    with pytest.warns(RuntimeWarning, match="potential network") as caught:
        out = _losses(potential, True)
    assert len([w for w in caught if "compile=True" in str(w.message)]) == 1
    np.testing.assert_array_equal(out, eager)


def test_missing_compiler_trains_eagerly_with_one_warning(monkeypatch):
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    monkeypatch.delenv("CXX", raising=False)
    eager = _losses(_mlp, False)
    with pytest.warns(RuntimeWarning, match="no C..? compiler|C\\+\\+ compiler") as caught:
        out = _losses(_mlp, True)
    assert len(caught) == 1
    np.testing.assert_array_equal(out, eager)


def test_a_failing_compilation_falls_back_once_to_the_eager_loss(monkeypatch):
    def broken(module):
        def call(*batch):
            raise RuntimeError("no backend here\nsecond line")

        return call

    monkeypatch.setattr(compiled, "_has_backend", lambda device: None)
    monkeypatch.setattr(compiled.torch, "compile", broken)
    eager = _losses(_mlp, False)
    with pytest.warns(RuntimeWarning, match=r"compiling the loss failed \(RuntimeError: no b") as c:
        out = _losses(_mlp, True)
    assert len(c) == 1
    np.testing.assert_array_equal(out, eager)


def test_unsupported_names_each_reason():
    cpu, net = torch.device("cpu"), MLPVelocity(2, width=8, depth=1)
    assert "several processes" in compiled.unsupported(net, cpu, 2, False)
    assert "optimize_path" in compiled.unsupported(net, cpu, 1, True)
    assert "not supported" in compiled.unsupported(net, torch.device("meta"), 1, False)


@pytest.mark.slow
def test_compiled_training_matches_eager_losses():
    if compiled.unsupported(_mlp(), torch.device("cpu"), 1, False) is not None:
        pytest.skip("no compiler backend here")
    eager = _losses(_mlp, False)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no fallback
        out = _losses(_mlp, True)
    np.testing.assert_allclose(out, eager, rtol=1e-4, atol=1e-6)


@pytest.mark.slow
def test_fit_with_compiled_training_samples():
    if compiled.unsupported(_mlp(), torch.device("cpu"), 1, False) is not None:
        pytest.skip("no compiler backend here")
    x1 = st.datasets.sample("moons", 200, seed=0)
    kw = {"steps": 5, "network": st.MLPSpec(width=8, depth=1), "progress": False, "seed": 0}
    eager = st.fit("gaussian", x1, **kw)
    fast = st.fit("gaussian", x1, training=TrainSettings(compile=True), **kw)
    np.testing.assert_allclose(
        fast.history["loss"].values, eager.history["loss"].values, rtol=1e-4, atol=1e-6
    )
    np.testing.assert_allclose(fast.sample(50, seed=1), eager.sample(50, seed=1), atol=1e-4)
