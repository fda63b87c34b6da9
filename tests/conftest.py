"""Shared test configuration: --device/--dtype options, tolerances, seeds, hypothesis profiles."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings

torch.set_num_threads(1)

settings.register_profile(
    "ci",
    derandomize=True,
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# One tolerance table per dtype: (rtol, atol) for computations that should agree to rounding.
TOLERANCES = {
    torch.float64: {"rtol": 1e-9, "atol": 1e-10},
    torch.float32: {"rtol": 1e-4, "atol": 1e-5},
}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--device", default="cpu", help="torch device to run the suite on")
    parser.addoption("--dtype", default="float64", choices=("float32", "float64"))


@pytest.fixture(scope="session")
def device(request: pytest.FixtureRequest) -> torch.device:
    return torch.device(request.config.getoption("--device"))


@pytest.fixture(scope="session")
def dtype(request: pytest.FixtureRequest) -> torch.dtype:
    return getattr(torch, request.config.getoption("--dtype"))


@pytest.fixture(scope="session")
def tol(dtype: torch.dtype) -> dict[str, float]:
    return TOLERANCES[dtype]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def generator() -> torch.Generator:
    return torch.Generator().manual_seed(1234)


@pytest.fixture
def killed_after_checkpoint(monkeypatch: pytest.MonkeyPatch):
    """A context manager: inside it, training is killed (``KeyboardInterrupt``) right after
    its first checkpoint is written, as a crash would leave it, through the documented hook
    :meth:`sitransport.train.Trainer.on_checkpoint`.

    Usage: ``with killed_after_checkpoint(): fit(..., checkpoint=d)``.
    """
    import contextlib

    from sitransport.train import Trainer

    def die(trainer, step, path):
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def killed():
        with monkeypatch.context() as patch:
            patch.setattr(Trainer, "on_checkpoint", die)
            with pytest.raises(KeyboardInterrupt):
                yield

    return killed
