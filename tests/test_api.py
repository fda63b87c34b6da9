"""Every public name resolves and is documented; module __all__ lists are sorted."""

from __future__ import annotations

import importlib
import inspect

import pytest

import sitransport as st

MODULES = [
    "sitransport",
    "sitransport.cli",
    "sitransport.couplings",
    "sitransport.datasets",
    "sitransport.distributed",
    "sitransport.exact",
    "sitransport.flow",
    "sitransport.images",
    "sitransport.interpolants",
    "sitransport.latent",
    "sitransport.losses",
    "sitransport.metrics",
    "sitransport.nn",
    "sitransport.ode",
    "sitransport.paths",
    "sitransport.plot",
    "sitransport.score",
    "sitransport.train",
]


@pytest.mark.parametrize("module", MODULES)
def test_public_names_documented(module):
    mod = importlib.import_module(module)
    assert mod.__doc__, f"{module} has no docstring"
    assert list(mod.__all__) == sorted(mod.__all__), f"{module}.__all__ is not sorted"
    for name in mod.__all__:
        obj = getattr(mod, name)
        assert inspect.getdoc(obj), f"{module}.{name} has no docstring"


def test_contract_names():
    for name in ("fit", "load", "TransportFlow", "interpolants", "metrics", "datasets"):
        assert name in st.__all__
    for method in ("push_forward", "pull_back", "sample", "log_prob", "trajectory", "save"):
        assert callable(getattr(st.TransportFlow, method))
    assert callable(st.metrics.w2)
