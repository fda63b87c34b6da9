"""Interfaces and named results: the Flow protocol, the abstract bases, PathEnergy,
TrainResult, and the bugs the static type check found."""

from __future__ import annotations

import dataclasses
import os
import typing
from pathlib import Path

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport.couplings import Coupling
from sitransport.ends.densities import Density
from sitransport.flow import PathEnergy
from sitransport.interpolants import Interpolant, Linear
from sitransport.latent import LatentFlow, PCAEncoder
from sitransport.losses import TimeSampler
from sitransport.nn import MLPVelocity
from sitransport.train import TrainResult, TrainSettings, train

ROOT = Path(__file__).resolve().parents[1]


def _flows() -> dict[str, typing.Any]:
    x = torch.tensor([[0.0, 0.0, 1.0], [2.0, 0.0, 1.0], [4.0, 0.0, 1.0]], dtype=torch.float64)
    inner = st.TransportFlow(lambda z, t: z, "linear", base="gaussian", shape=(1,))
    latent = LatentFlow(inner, PCAEncoder.fit(x), source_is_latent=True)
    return {"TransportFlow": inner, "LatentFlow": latent}


@pytest.mark.parametrize("kind", ["TransportFlow", "LatentFlow"])
def test_every_flow_kind_is_a_flow(kind):
    flow = _flows()[kind]
    assert isinstance(flow, st.Flow)
    assert flow.sample(3, seed=0).shape == (3, *flow.shape)


def test_an_object_without_the_members_is_not_a_flow():
    class AlmostAFlow:  # every member of Flow but save
        shape, config, history = (2,), {}, None

        def push_forward(self, x, **kwargs): ...
        def pull_back(self, y, **kwargs): ...
        def sample(self, n, **kwargs): ...
        def log_prob(self, y, **kwargs): ...
        def to_payload(self): ...

    assert not isinstance(AlmostAFlow(), st.Flow)
    AlmostAFlow.save = lambda self, path: None
    assert isinstance(AlmostAFlow(), st.Flow)
    assert not isinstance(PCAEncoder.fit(torch.eye(3, dtype=torch.float64)), st.Flow)


def test_fit_and_load_are_annotated_to_return_a_flow():
    for function in (st.fit, st.load):
        assert typing.get_type_hints(function)["return"] is st.Flow
    assert typing.get_type_hints(st.reflow)["return"] is st.TransportFlow  # always one


@pytest.mark.slow
def test_the_type_checker_accepts_both_flow_kinds_as_flows(tmp_path, monkeypatch):
    """mypy itself: both kinds pass where a Flow is expected, a class without ``save`` does
    not (about 40 s cold: torch's stubs are read)."""
    api = pytest.importorskip("mypy.api")
    snippet = tmp_path / "snippet.py"
    snippet.write_text(
        "from sitransport import Flow, TransportFlow\n"
        "from sitransport.latent import LatentFlow\n"
        "def use(flow: Flow) -> None: ...\n"
        "def check(a: TransportFlow, b: LatentFlow) -> None:\n"
        "    use(a)\n"
        "    use(b)\n"
        "class NotAFlow:\n"
        "    shape = (1,)\n"
        "def bad(c: NotAFlow) -> None:\n"
        "    use(c)\n"
    )
    monkeypatch.setenv("MYPYPATH", str(Path(st.__file__).resolve().parents[1]))
    out, err, status = api.run(
        [
            str(snippet),
            "--ignore-missing-imports",
            "--follow-imports=silent",
            f"--cache-dir={tmp_path / 'cache'}",
            "--no-error-summary",
        ]
    )
    errors = [line for line in out.splitlines() if ": error:" in line]
    assert status == 1 and len(errors) == 1, out + err
    assert (
        'snippet.py:10: error: Argument 1 to "use" has incompatible type "NotAFlow"' in (errors[0])
    )


@pytest.mark.parametrize(
    ("base", "member"),
    [(Interpolant, "alpha"), (Density, "sample"), (Coupling, "pair"), (TimeSampler, "icdf")],
)
def test_interfaces_are_abstract_and_name_what_is_missing(base, member):
    with pytest.raises(TypeError, match="abstract"):
        base()
    incomplete = type("Incomplete", (base,), {})
    with pytest.raises(TypeError, match=member):
        incomplete()


def test_a_subclass_that_implements_the_abstract_methods_works():
    class Quadratic(Interpolant):
        def alpha(self, t):
            return 1 - t**2

        def beta(self, t):
            return t**2

    path = Quadratic()
    assert isinstance(path, torch.nn.Module)
    assert float(path.dalpha(torch.tensor(0.5))) == pytest.approx(-1.0)  # by autodiff


def test_path_energy_is_a_frozen_named_result():
    flow = st.TransportFlow(lambda z, t: torch.ones_like(z), "linear", shape=(2,))
    result = flow.path_energy(np.zeros((3, 2)))
    assert isinstance(result, PathEnergy)
    np.testing.assert_allclose(result.x, np.ones((3, 2)))
    np.testing.assert_allclose(result.energy, [2.0, 2.0, 2.0])  # |v|^2 = 2 for one unit
    assert result.nfe > 0
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.nfe = 0


def test_train_returns_a_named_result():
    def draw(n, g):
        return torch.randn(n, 1, generator=g), torch.randn(n, 1, generator=g) + 2

    settings = TrainSettings(steps=3, batch_size=8, progress=False)
    result = train(MLPVelocity(1, width=8, depth=1), Linear(), draw, settings=settings)
    assert isinstance(result, TrainResult)
    assert not result.model.training and result.history.sizes["step"] == 3
    with pytest.raises(TypeError):  # no longer a tuple
        model, history = result


class _Vectors(torch.utils.data.Dataset):
    def __init__(self) -> None:
        self.x = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i):
        return self.x[i]


def test_fit_takes_a_dataset_of_vectors():
    """Found by the type check: the rank comparison read the shape of ``rho1`` that a
    dataset leaves unset (AttributeError: 'NoneType' object has no attribute 'shape')."""
    kw = dict(steps=3, network=st.MLPSpec(width=8, depth=1), batch_size=16, progress=False)
    flow = st.fit("gaussian", _Vectors(), **kw, validation=0.0)
    assert flow.sample(4, seed=0).shape == (4, 2)


def test_summary_figure_without_a_base_names_the_missing_source():
    """Found by the type check: with no base and no ``source`` it failed on ``None.sample``."""
    from sitransport.plot import summary_figure

    flow = st.TransportFlow(lambda z, t: z, "linear", shape=(2,))
    assert flow.base is None
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="source is required: the flow has no base"):
        summary_figure(flow, x, x)
    assert len(summary_figure(flow, x, x, source=x[:5], resolution=4).axes) == 3


def test_the_type_check_runs_in_ci():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "\nmypy sitransport\n" in ci
    assert os.path.isfile(ROOT / "sitransport" / "py.typed")
