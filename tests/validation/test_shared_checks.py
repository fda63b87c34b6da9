"""The shared checks: one seed rule, one Gaussian-parameter rule, one restricted unpickler,
one draw of the named ends; every module that takes them gives the same verdict."""

from __future__ import annotations

import io
import pickle
import re
from collections import OrderedDict

import numpy as np
import pytest
import torch

import sitransport as st
from sitransport import datasets, images, metrics
from sitransport._unpickle import restricted_load
from sitransport._validation import check_finite_output, numpy_generator, torch_generator
from sitransport.config import CouplingSpec, UNetSpec, network_from_spec
from sitransport.distributed import ShardedDataset
from sitransport.errors import NonFiniteOutputError
from sitransport.exact import GaussianMixtureInterpolation
from sitransport.interpolants import get_interpolant, read_interpolant
from sitransport.nn import build_network

EYE = np.eye(2)
ZERO = np.zeros(2)


def _verdicts(cov: np.ndarray) -> list[bool]:
    """Whether each module accepts ``cov`` as the covariance of a Gaussian with a density."""
    checks = [
        lambda: datasets.Gaussian(ZERO, cov),
        lambda: metrics.gaussian_ot_map(ZERO, cov, ZERO, EYE),  # the source must be definite
        lambda: GaussianMixtureInterpolation.from_gaussians(ZERO, cov, ZERO, EYE),
    ]
    out = []
    for check in checks:
        try:
            check()
        except ValueError as err:
            assert "cov" in str(err) and "symmetric positive definite" in str(err), err
            out.append(False)
        else:
            out.append(True)
    return out


@pytest.mark.parametrize(
    ("cov", "accepted"),
    [
        (EYE, True),
        (np.array([[1.0, 0.3 + 1e-7], [0.3, 1.0]]), True),  # float32 rounding: symmetrised
        (np.array([[1.0, 0.3 + 1e-4], [0.3, 1.0]]), False),
        (np.diag([1.0, 1e-11]), True),  # condition number 1e11
        (np.diag([1.0, 1e-13]), False),  # numerically singular
        (np.diag([1.0, -0.1]), False),
    ],
)
def test_every_module_gives_one_verdict_on_a_covariance(cov, accepted):
    assert _verdicts(cov) == [accepted] * 3


def test_semi_definite_uses_the_same_bound():
    metrics.gaussian_w2(ZERO, EYE, ZERO, np.diag([1.0, -1e-13]))  # rounding below zero
    with pytest.raises(ValueError, match=r"cov2 must be symmetric positive semi-definite, got"):
        metrics.gaussian_w2(ZERO, EYE, ZERO, np.diag([1.0, -1e-11]))


def test_float32_weights_pass_every_mixture_check():
    w = np.full(4, 0.25, np.float32) * np.float32(1 + 3e-7)  # sum 1 + 3e-7
    means, covs = np.zeros((4, 2)), np.stack([EYE] * 4)
    datasets.GaussianMixture(w, means, covs)
    GaussianMixtureInterpolation(w, means, covs, [1.0], [[0.0, 0.0]], [EYE])


def test_draw_is_sample_or_a_standard_normal():
    np.testing.assert_array_equal(
        datasets.draw("gaussian", 7, 3, dim=4), np.random.default_rng(3).standard_normal((7, 4))
    )
    np.testing.assert_array_equal(datasets.draw("moons", 7, 3), datasets.sample("moons", 7, seed=3))
    with pytest.raises(ValueError, match="unknown dataset name 'banana'.*gaussian"):
        datasets.draw("banana", 3, 0)
    with pytest.raises(ValueError, match="dataset 'moons' is 2D, got dim=3"):
        datasets.draw("moons", 3, 0, dim=3)


def test_one_seed_rule_for_numpy_and_torch_streams():
    gen = np.random.default_rng(0)
    assert numpy_generator(gen) is gen
    tgen = torch.Generator()
    assert torch_generator(tgen) is tgen
    assert isinstance(torch_generator(None), torch.Generator)
    for draw in (
        lambda s: datasets.sample("moons", 3, seed=s),
        lambda s: metrics.w2(np.zeros((3, 2)), np.ones((3, 2)), seed=s),
        lambda s: images.dequantize(np.zeros((1, 2), np.uint8), seed=s),
        lambda s: ShardedDataset(torch.utils.data.TensorDataset(torch.zeros(4, 1)), seed=s),
    ):
        with pytest.raises(ValueError, match=r"seed must be an integer in \[0, 2\*\*63 - 1\]"):
            draw(2**63)
        with pytest.raises(TypeError, match="seed must be"):
            draw(1.5)  # once truncated to 1 by dequantize and ShardedDataset


def test_restricted_load_admits_only_its_allow_list():
    data = pickle.dumps(OrderedDict(a=1))
    allowed = {("collections", "OrderedDict")}
    assert restricted_load(io.BytesIO(data), allowed, what="dicts") == {"a": 1}
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle collections.*hold"):
        restricted_load(io.BytesIO(data), set(), what="plain data")
    renamed = {("collections", "OrderedDict"): ("old", "OrderedDict")}  # checked after renames
    with pytest.raises(pickle.UnpicklingError, match="refusing to unpickle old.OrderedDict"):
        restricted_load(io.BytesIO(data), allowed, what="dicts", renames=renamed)


X = np.random.default_rng(0).normal(size=(32, 2))
IMAGES = np.random.default_rng(0).random((8, 1, 4, 4))


def _fit(x, **kwargs):
    return lambda: st.fit(x, x + 1, steps=1, progress=False, **kwargs)


@pytest.mark.parametrize(
    ("call", "what", "unknown", "keys"),
    [
        (
            _fit(X, coupling={"name": "sinkhorn", "regg": 0.1}),
            "coupling 'sinkhorn'",
            "['regg']",
            "name, reg, replace",
        ),
        (_fit(X, interpolant={"name": "trig", "K": 3}), "interpolant 'trig'", "['K']", "name"),
        (
            _fit(X, interpolant={"name": "fourier", "k": 3, "bb": 1}),
            "interpolant 'fourier'",
            "['bb', 'k']",
            "K, a, b, base, dim, name",
        ),
        (
            _fit(X, time_sampler={"name": "uniform", "a": 1}),
            "time_sampler 'uniform'",
            "['a']",
            "name",
        ),
        (
            _fit(IMAGES, network=UNetSpec(None, {"base_chanels": 8})),
            "network 'unet'",
            "['base_chanels']",
            "attention_resolutions, base_channels, channel_mult, channels, condition, dropout, "
            "heads, image_size, kind, norm_groups, num_res_blocks, time_frequencies",
        ),
        (
            lambda: build_network({"kind": "mlp", "dim": 2, "widht": 8}),
            "network 'mlp'",
            "['widht']",
            "activation, condition, depth, dim, kind, space_frequencies, time_frequencies, width",
        ),
        (
            lambda: network_from_spec({"kind": "unet", "presett": "tiny"}),
            "network 'unet'",
            "['presett']",
            "kind, options, preset",
        ),
        (
            lambda: read_interpolant({"name": "neural", "dim": 2, "widht": 3}, (2,)),
            "interpolant 'neural'",
            "['widht']",
            "K, base, dim, name, state, width",
        ),
        (
            lambda: CouplingSpec("global_ot", {"N": 64}),
            "coupling 'global_ot'",
            "['N']",
            "n, name, processes, reuse",
        ),
    ],
)
def test_a_spec_dict_with_a_wrong_key_names_the_argument_and_the_valid_keys(
    call, what, unknown, keys
):
    """Every dict spec (a built-in's name and its settings) gets the same verdict on a key its
    built-in does not take: the argument, the unknown keys and the valid ones, instead of a
    constructor's ``__init__() got an unexpected keyword argument``."""
    expected = f"{what} has no setting(s) {unknown}; its keys are: {keys}"
    with pytest.raises(ValueError, match=re.escape(expected)):
        call()


def test_a_spec_dict_missing_a_required_key_names_it():
    expected = "interpolant 'neural' needs the key(s) ['dim']; its keys are: K, base, dim,"
    with pytest.raises(ValueError, match=re.escape(expected)):
        get_interpolant({"name": "neural", "K": 1})


@pytest.mark.parametrize(
    ("bad", "good"),
    [
        (torch.tensor([1.0, float("nan")]), torch.tensor([1.0, 2.0])),
        (np.array([np.inf, 0.0]), np.array([1e308, 0.0])),
        (float("-inf"), -1e308),
    ],
    ids=["tensor", "array", "float"],
)
def test_one_check_of_results_for_tensors_arrays_and_floats(bad, good):
    with pytest.raises(NonFiniteOutputError, match=r"^sample produced non-finite values \(\d"):
        check_finite_output(bad, "sample", "the samples")
    assert check_finite_output(good, "sample", "the samples") is good
