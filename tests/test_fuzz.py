"""Fuzzing of every public entry point: a correct result or a documented error, nothing else.

Each entry point (``fit``, the methods of one tiny fitted :class:`~sitransport.TransportFlow`,
``save``/``load`` and the command line) gets hypothesis-drawn bad input: NaN/inf, wrong shapes,
wrong dtypes (integers, complex, objects, strings, lists), empty arrays, sizes 0 and 1, huge and
tiny magnitudes, wrong types for keyword arguments; ``fit`` also gets any value in each field
of its settings objects (``training=``, ``network=``, ``optimize_path=``, ``checkpoint=``,
``latent=``) and each settings object in the others' place. The outcome must be either

- a correct result: the input was valid, and the output has the right shape and is finite; or
- a documented error: ``ValueError`` or ``TypeError`` whose message names the argument, or one
  of the library's own errors (:mod:`sitransport.errors`, e.g. ``TransportError`` when a solve
  fails for a reason no argument check can see).

Anything else (``AssertionError`` from torchdiffeq, ``RuntimeError`` from torch, ``IndexError``,
``KeyError``, ``OverflowError`` ...) fails the test. Sizes are tiny so that nothing can hang: one
flow fitted with 5 steps per module, fits of at most 5 steps on at most 64 samples.

Magnitudes are bounded in the hypothesis strategies (``|x| <= 1e4``); huge and tiny values
get their own table of explicit cases.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as hs
from hypothesis.extra import numpy as hnp

import sitransport as st
import sitransport.cli as cli
from sitransport._cli_files import read_csv
from sitransport.errors import SitransportError
from sitransport.ode import ODEOptions

D = 2  # dimension of the module's flow
FEW = settings(max_examples=8)  # for cases that fit a flow each time


# ----------------------------------------------------------------------------- the oracle
def outcome(call: Callable[[], Any], *names: str, forbid: tuple[str, ...] = ()) -> Any:
    """Run ``call``; return its result, or ``None`` after a documented error.

    A ``ValueError``/``TypeError`` must name one of ``names`` (as a word), and say none of
    ``forbid``; the library's own runtime errors (:class:`SitransportError` that are not
    bad-argument errors) are accepted as they are. Any other exception propagates and fails
    the test.
    """
    try:
        result = call()
    except (ValueError, TypeError) as err:
        _event(f"outcome: {type(err).__name__}")
        message = str(err)
        assert not any(word in message for word in forbid), message
        named = any(re.search(rf"(?<![\w.]){re.escape(n)}(?!\w)", message) for n in names)
        assert named, f"{type(err).__name__} does not name any of {names}: {message}"
        return None
    except SitransportError as err:
        _event(f"outcome: {type(err).__name__}")
        assert str(err), f"{type(err).__name__} without a message"
        return None
    _event("outcome: result")
    return result


def _event(text: str) -> None:
    """Label the example for ``--hypothesis-show-statistics`` (outside hypothesis: nothing)."""
    with contextlib.suppress(Exception):
        event(text)


def valid_samples(x: Any, *, d: int = D, min_n: int = 1) -> bool:
    """Would a flow method accept ``x`` as samples of shape ``(n, d)``?"""
    if isinstance(x, torch.Tensor):
        x = x.detach().numpy() if x.dtype in (torch.float32, torch.float64) else None
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        return False
    return x.ndim == 2 and x.shape[0] >= min_n and x.shape[1] == d and bool(np.isfinite(x).all())


def finite_of_shape(out: Any, shape: tuple[int, ...]) -> None:
    """A result: of ``shape`` and finite."""
    arr = out.detach().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    assert arr.shape == shape, (arr.shape, shape)
    assert np.isfinite(arr).all(), arr


@contextlib.contextmanager
def _chdir(path: str):
    """``contextlib.chdir`` of Python >= 3.11."""
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


# ----------------------------------------------------------------------------- strategies
SPECIALS = [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, 1e4, -1e4]
#: elements of magnitude <= 1e4 (subnormals included), and the special values
ELEMENTS = {
    np.float64: hs.floats(-1e4, 1e4) | hs.sampled_from([*SPECIALS, 5e-324, 1e-300]),
    np.float32: hs.floats(-1e4, 1e4, width=32) | hs.sampled_from(SPECIALS),
}


def float_arrays(shape=None) -> hs.SearchStrategy[np.ndarray]:
    """float32 / float64 arrays of any shape of rank <= 3 (or ``shape``), any values."""
    shapes = (
        shape
        if shape is not None
        else hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
    )
    return hs.sampled_from([np.float64, np.float32]).flatmap(
        lambda dtype: hnp.arrays(dtype, shapes, elements=ELEMENTS[dtype])
    )


#: samples of the right rank and width (n = 0 .. 5), with special values: deep code paths
sample_arrays = float_arrays(hs.tuples(hs.integers(0, 5), hs.just(D)))
odd_arrays = hs.sampled_from(
    [
        np.ones((3, D), dtype=np.int64),
        np.ones((3, D), dtype=np.int8),
        np.ones((3, D), dtype=bool),
        np.ones((3, D), dtype=np.complex128),
        np.ones((3, D), dtype=np.float16),
        np.ones((3, D), dtype=object),
        np.full((3, D), "a"),
        np.ones((3, D + 1)),
        np.ones((3, 0)),
        np.ones((D,)),
        np.float64(1.0),
    ]
)
tensors = (sample_arrays | float_arrays()).map(torch.from_numpy) | hs.sampled_from(
    [
        torch.ones(3, D, dtype=torch.int64),
        torch.ones(3, D, dtype=torch.complex64),
        torch.ones(3, D, dtype=torch.bfloat16),
        torch.ones(3, D, requires_grad=True),
    ]
)
non_arrays = hs.sampled_from([None, "abc", "", 1.0, 3, True, [[1.0, 2.0]], [], {}, (1.0, 2.0)])
any_samples = sample_arrays | float_arrays() | odd_arrays | tensors | non_arrays

huge_ints = hs.sampled_from([2**63, 2**70, -(2**70)])
anything = hs.one_of(
    hs.none(),
    hs.booleans(),
    hs.integers(-3, 12),
    huge_ints,
    hs.floats(allow_nan=True, allow_infinity=True),
    hs.complex_numbers(max_magnitude=2),
    hs.text(max_size=4),
    hs.sampled_from(["euler", "heun", "ode", "sde", "exact", "hutchinson", "auto", "rk4"]),
    hs.lists(hs.floats(-2, 2), max_size=3),
    float_arrays(),
    hs.dictionaries(hs.text(max_size=2), hs.integers(), max_size=1),
)
#: ``anything`` with numbers bounded by 100 (a huge ``eps`` is a valid but ill-posed SDE)
anything_bounded = anything.filter(
    lambda v: isinstance(v, bool) or not isinstance(v, (int, float)) or not abs(v) > 100
)


# ----------------------------------------------------------------------------- the flow
@pytest.fixture(scope="module")
def flow() -> st.TransportFlow:
    x1 = st.datasets.sample("moons", 64, seed=0)
    net = st.MLPSpec(width=16, depth=2)
    kw = dict(steps=5, network=net, batch_size=32, progress=False, seed=0)
    return st.fit("gaussian", x1, **kw)


X = np.random.default_rng(1).standard_normal((4, D))


def _shape_of(x: Any) -> tuple[int, ...]:
    return tuple(x.shape)


#: method name -> (call on samples, the argument's name, the result's shape from the input's)
SAMPLE_METHODS: dict[str, tuple[Callable, str, Callable]] = {
    "push_forward": (lambda f, x: f.push_forward(x), "x", _shape_of),
    "pull_back": (lambda f, y: f.pull_back(y), "y", _shape_of),
    "velocity": (lambda f, x: f.velocity(x, 0.5), "x", _shape_of),
    "score": (lambda f, x: f.score(x, 0.5), "x", _shape_of),
    "log_prob": (lambda f, y: f.log_prob(y, progress=False), "y", lambda x: x.shape[:1]),
    "log_prob_estimate": (
        lambda f, y: f.log_prob_estimate(y, method="hutchinson", probes=4, progress=False).stderr,
        "y",
        lambda x: x.shape[:1],
    ),
    "trajectory": (
        lambda f, x: f.trajectory(x, [0.0, 0.5, 1.0]).values,
        "x",
        lambda x: (3, *x.shape),
    ),
}


@pytest.mark.parametrize("method", sorted(SAMPLE_METHODS))
@given(x=any_samples)
def test_methods_on_any_samples(flow, method, x):
    call, name, shape = SAMPLE_METHODS[method]
    out = outcome(lambda: call(flow, x), name)
    if out is not None:
        assert valid_samples(x), f"{method} accepted invalid input {x!r}"
        finite_of_shape(out, shape(x))


@pytest.mark.parametrize("which", ["x0", "x1"])
@given(x=any_samples)
def test_transport_report_on_any_samples(flow, which, x):
    other = np.random.default_rng(2).standard_normal((5, D))
    args = (x, other) if which == "x0" else (other, x)
    report = outcome(lambda: st.metrics.transport_report(flow, *args), which, "x0", "x1")
    if report is not None:  # None: drawn from the flow's base / target
        assert x is None or valid_samples(x, min_n=2)
        for value in (report.kinetic_energy, report.transport_cost, report.w2_squared):
            assert math.isfinite(value)


#: method name -> keyword -> (call with the value, result shape or None for "not an array")
KEYWORD_CALLS: dict[str, Callable[[Any, Any], Any]] = {
    "push_forward.nfe": lambda f, v: f.push_forward(X, nfe=v),
    "push_forward.ode": lambda f, v: f.push_forward(X, ode=v),
    "pull_back.nfe": lambda f, v: f.pull_back(X, nfe=v),
    "transport.start": lambda f, v: f.transport(X, start=v).x,
    "transport.end": lambda f, v: f.transport(X, end=v).x,
    "velocity.t": lambda f, v: f.velocity(X, v),
    "score.t": lambda f, v: f.score(X, v),
    "score.alpha_min": lambda f, v: f.score(X, 0.5, alpha_min=v),
    "trajectory.times": lambda f, v: f.trajectory(X, v).values[-1],
    "trajectory.nfe": lambda f, v: f.trajectory(X, [0.0, 1.0], nfe=v).values[-1],
    "sample.seed": lambda f, v: f.sample(4, seed=v),
    "sample.method": lambda f, v: f.sample(4, method=v, steps=8),
    "sample.eps": lambda f, v: f.sample(4, method="sde", eps=v, steps=8),
    "sample.steps": lambda f, v: f.sample(4, method="sde", steps=v),
    "sample.scheme": lambda f, v: f.sample(4, method="sde", steps=8, scheme=v),
    "sample.nfe": lambda f, v: f.sample(4, nfe=v),
    "sample.ode": lambda f, v: f.sample(4, ode=v),
    "log_prob.method": lambda f, v: f.log_prob(X, method=v, progress=False),
    "log_prob.probes": lambda f, v: f.log_prob(X, method="hutchinson", probes=v, progress=False),
    "log_prob.seed": lambda f, v: f.log_prob(X, seed=v, progress=False),
    "log_prob.batch_size": lambda f, v: f.log_prob(X, batch_size=v, progress=False),
    "log_prob.progress": lambda f, v: f.log_prob(X, progress=v),
    "log_prob.ode": lambda f, v: f.log_prob(X, ode=v, progress=False),
    "log_prob_estimate.probes": lambda f, v: (
        f.log_prob_estimate(X, method="hutchinson", probes=v, progress=False).stderr
    ),
    "transport_report.seed": lambda f, v: (
        st.metrics.transport_report(f, X, X[::-1] + 1, seed=v).w2_squared
    ),
    "transport_report.n": lambda f, v: st.metrics.transport_report(f, X, X + 1, n=v).w2_squared,
    "transport_report.held_out": lambda f, v: (
        st.metrics.transport_report(f, X, X + 1, held_out=v).kinetic_energy
    ),
}


unit = hs.floats(0.0, 1.0)
#: valid values of some keywords, drawn next to ``anything`` so that results are checked too
VALID_KEYWORDS: dict[str, hs.SearchStrategy] = {
    "trajectory.times": hs.lists(unit, min_size=2, max_size=4, unique=True).map(sorted),
    "transport.start": unit,
    "transport.end": unit,
    "velocity.t": unit | hnp.arrays(np.float64, len(X), elements=unit),
    "score.t": hs.floats(0.0, 0.99),
    "sample.scheme": hs.sampled_from(["euler", "heun"]),
    "sample.method": hs.sampled_from(["ode", "sde"]),
    "log_prob.method": hs.sampled_from(["exact", "hutchinson", "auto"]),
}


@pytest.mark.parametrize("key", sorted(KEYWORD_CALLS))
@given(data=hs.data())
def test_keywords_of_any_type(flow, key, data):
    value = data.draw(VALID_KEYWORDS.get(key, hs.nothing()) | anything_bounded, label="value")
    name = key.split(".")[1]
    out = outcome(lambda: KEYWORD_CALLS[key](flow, value), name)
    if out is not None:
        assert np.isfinite(np.asarray(out, dtype=np.float64)).all(), (key, value, out)


def test_unknown_keyword_is_named(flow):
    with pytest.raises(TypeError, match="probez"):
        flow.log_prob(X, probez=3)


@given(n=hs.integers(-3, 6) | huge_ints | hs.floats() | hs.text(max_size=2) | hs.none())
def test_sample_any_n(flow, n):
    out = outcome(lambda: flow.sample(n, seed=0), "n")
    if out is not None:
        finite_of_shape(out, (n, D))


# ----------------------------------------------------------------- magnitudes, explicitly
# 1e38 and 3e38 are finite in float32 but overflow the ODE state (TransportError); 1e39 and
# 1e300 are beyond float32 and rejected on the way in, naming the argument
MAGNITUDES = (1e-300, 1e-30, 1e10, 1e30, 1e38, 3e38, 1e39, 1e300)


@pytest.mark.parametrize("magnitude", MAGNITUDES, ids=lambda m: f"{m:g}")
@pytest.mark.parametrize("method", sorted(SAMPLE_METHODS))
def test_methods_at_any_magnitude(flow, method, magnitude):
    call, name, shape = SAMPLE_METHODS[method]
    x = np.full((3, D), magnitude) * np.array([1.0, -1.0])
    out = outcome(lambda: call(flow, x), name)
    if out is not None:
        finite_of_shape(out, shape(x))


@pytest.mark.parametrize("magnitude", [1e38, 1e300])
def test_transport_report_at_huge_magnitude(flow, magnitude):
    report = outcome(lambda: st.metrics.transport_report(flow, np.full((3, D), magnitude), X), "x0")
    if report is not None:
        assert math.isfinite(report.kinetic_energy)


def test_sample_sde_with_huge_eps(flow):
    out = outcome(lambda: flow.sample(4, method="sde", eps=1e300, steps=8), "eps")
    if out is not None:
        finite_of_shape(out, (4, D))


# ----------------------------------------------------------------------------------- fit
FIT = dict(steps=3, network=st.MLPSpec(width=8, depth=1), batch_size=16, progress=False)
MOONS = st.datasets.sample("moons", 64, seed=0)


def _fit_outcome(rho0: Any, rho1: Any, names: tuple[str, ...], **kwargs: Any) -> None:
    """``fit`` with :data:`FIT` and ``kwargs`` (a ``functools.partial`` value is called
    inside, so that building a settings object is part of the call), in a fresh working
    directory (a ``checkpoint=`` folder is created there)."""
    with tempfile.TemporaryDirectory() as tmp, _chdir(tmp):
        fitted = outcome(lambda: st.fit(rho0, rho1, **_resolved({**FIT, **kwargs})), *names)
        if fitted is not None:
            finite_of_shape(fitted.sample(3, seed=0), (3, fitted.shape[0]))


def _resolved(kwargs: dict[str, Any]) -> dict[str, Any]:
    """``kwargs`` with the values that build a settings object (``functools.partial``) built."""
    return {k: v() if isinstance(v, functools.partial) else v for k, v in kwargs.items()}


@hs.composite
def perturbed_moons(draw) -> np.ndarray:
    """The first ``n`` moons samples, maybe float32, maybe with a special value planted."""
    x = MOONS[: draw(hs.integers(0, 64))].copy()
    if x.size and draw(hs.booleans()):
        x.flat[draw(hs.integers(0, x.size - 1))] = draw(hs.sampled_from(SPECIALS))
    return x.astype(draw(hs.sampled_from([np.float64, np.float32])))


fit_data = hs.one_of(
    perturbed_moons(),
    float_arrays(hs.tuples(hs.integers(0, 64), hs.integers(1, 3))),
    float_arrays(),
    odd_arrays,
    non_arrays,
)


@FEW
@given(rho1=fit_data)
def test_fit_any_target(rho1):
    _fit_outcome("gaussian", rho1, ("rho1", "rho0", "validation"))


@FEW
@given(rho0=fit_data)
def test_fit_any_source(rho0):
    _fit_outcome(rho0, MOONS, ("rho0", "rho1", "validation"))


small_int = hs.integers(-2, 5) | huge_ints
#: a settings object of every typed group (cheap, valid where it belongs): each keyword of a
#: group is also given the others, which it must refuse naming itself
SETTINGS_OBJECTS = hs.sampled_from(
    [
        st.TrainSettings(eval_every=2),
        st.MLPSpec(width=8, depth=1),
        st.UNetSpec("tiny"),
        st.PathSettings(start=0),
        st.Checkpointing("ckpt"),
        st.LatentSpec(1),
        ODEOptions(),
    ]
)


def _no_escape(value: Any) -> bool:
    """A ``checkpoint=`` folder stays inside the test's working directory."""
    return not (isinstance(value, str) and ("/" in value or value in (".", "..")))


#: fit's keywords: each gets any value and must be used or refused, naming itself
FIT_KEYWORDS: dict[str, hs.SearchStrategy] = {
    "steps": small_int,
    "batch_size": small_int,
    "lr": hs.floats(max_value=1.0) | anything,
    "seed": small_int | anything,
    "device": hs.sampled_from(["cpu", "cuda", "meta", "gpu"]) | anything,
    "dtype": hs.sampled_from([torch.float64, torch.float16, torch.int32, np.float64]) | anything,
    "validation": hs.floats() | anything,
    "progress": anything,
    "interpolant": hs.sampled_from(["trig", "linear", "nope"]) | anything | SETTINGS_OBJECTS,
    "coupling": hs.sampled_from(["independent", "exact_ot", "nope"]) | anything,
    "time_sampler": hs.sampled_from(["uniform", "beta", "nope"]) | anything,
    "network": hs.sampled_from(["mlp", "potential", "unet", "nope", {}])
    | anything
    | SETTINGS_OBJECTS,
    "training": anything | SETTINGS_OBJECTS,
    "optimize_path": anything | SETTINGS_OBJECTS,
    "checkpoint": (anything | SETTINGS_OBJECTS).filter(_no_escape),
    "normalize": anything,
    "remedy": anything,
    "latent": hs.integers(-1, 3) | anything | SETTINGS_OBJECTS,
    "ode": hs.sampled_from([ODEOptions(), 0, {}, "rk4"]) | anything | SETTINGS_OBJECTS,
    "num_workers": small_int | anything,
}
fit_keyword = hs.sampled_from(sorted(FIT_KEYWORDS)).flatmap(
    lambda k: hs.tuples(hs.just(k), FIT_KEYWORDS[k].filter(lambda v: not _big_size(k, v)))
)


def _big_size(key: str, value: Any) -> bool:
    """Valid but expensive values a fit of a few steps must not try (e.g. 2**62 layers)."""
    return isinstance(value, int) and not isinstance(value, bool) and 12 < value < 2**63


@settings(max_examples=25, suppress_health_check=[HealthCheck.filter_too_much])
@given(item=fit_keyword)
def test_fit_keywords_of_any_type(item):
    key, value = item
    _fit_outcome("gaussian", MOONS, (key,), **{key: value})


#: the typed groups: fit's keyword -> (the settings class, the fields it is built from
#: besides the fuzzed one, keywords of fit that make the group apply)
GROUPS: dict[str, tuple[type, dict[str, Any], dict[str, Any]]] = {
    "training": (st.TrainSettings, {"eval_every": 2}, {}),
    "network": (st.MLPSpec, {"width": 8, "depth": 1}, {}),
    "optimize_path": (st.PathSettings, {"start": 0}, {"interpolant": "fourier"}),
    "checkpoint": (st.Checkpointing, {"dir": "ckpt", "every": 2}, {}),
    "latent": (st.LatentSpec, {}, {}),  # components=None: as many as keep the variance
}
#: fields of the typed groups, any value: the object refuses it, or fit does, naming the field
GROUP_FIELDS: dict[str, hs.SearchStrategy] = {
    "training.steps": small_int,
    "training.lr": hs.floats() | anything,
    "training.weight_decay": hs.floats(max_value=10.0) | anything,
    "training.warmup": small_int,
    "training.min_lr_ratio": hs.floats() | anything,
    "training.ema": hs.floats() | hs.none() | anything,
    "training.clip_grad": hs.floats() | hs.none() | anything,
    "training.antithetic": anything,
    "training.eval_every": small_int,
    "training.checkpoint_every": small_int,
    "training.restore_best": anything,
    "training.accumulate": small_int,
    "training.mixed_precision": hs.sampled_from([None, "bf16", "fp16"]) | anything,
    "network.kind": hs.sampled_from(["mlp", "potential", "unet", "nope"]) | anything,
    "network.width": small_int | hs.none(),
    "network.depth": small_int,
    "network.activation": hs.sampled_from(["silu", "tanh", "nope"]) | anything,
    "network.time_frequencies": small_int,
    "network.space_frequencies": small_int,
    "optimize_path.lr": hs.floats(max_value=1.0) | anything,
    "optimize_path.every": small_int,
    "optimize_path.start": small_int,
    "optimize_path.mode": hs.sampled_from(["alternating", "simultaneous", "nope"]) | anything,
    "optimize_path.stop": small_int | hs.none(),
    "checkpoint.dir": anything.filter(_no_escape),
    "checkpoint.every": small_int,
    "checkpoint.resume": anything,
    "latent.components": small_int | hs.none(),
    "latent.variance": hs.floats() | anything,
}
#: names a field's error may use besides the field, "<keyword>.<field>" and the keyword
KNOWN_NAMES: dict[str, tuple[str, ...]] = {}
group_field = hs.sampled_from(sorted(GROUP_FIELDS)).flatmap(
    lambda k: hs.tuples(hs.just(k), GROUP_FIELDS[k].filter(lambda v: not _big_size(k, v)))
)


@settings(max_examples=25, suppress_health_check=[HealthCheck.filter_too_much])
@given(item=group_field)
def test_fit_settings_fields_of_any_value(item):
    """A field of training=, network=, optimize_path=, checkpoint= or latent= with any value:
    its object or fit refuses it with an error naming the field (or the keyword), or the
    fit runs."""
    key, value = item
    group, field = key.split(".")
    cls, fields, applies = GROUPS[group]
    build = functools.partial(cls, **{**fields, field: value})
    names = (field, key, group, *KNOWN_NAMES.get(key, ()))
    _fit_outcome("gaussian", MOONS, names, **{group: build}, **applies)


def _case(rho0: Any, rho1: Any, kwargs: dict, name: str) -> Any:
    return pytest.param(rho0, rho1, kwargs, id=name)


@pytest.mark.parametrize(
    ("rho0", "rho1", "kwargs"),
    [
        _case("gaussian", MOONS * 1e30, {}, "1e30"),
        _case("gaussian", MOONS * 1e100, {}, "1e100"),
        _case("gaussian", MOONS * 1e300, {}, "1e300"),
        _case(MOONS, MOONS + 1e8, {}, "offset-1e8"),
        _case("gaussian", torch.tensor(MOONS, requires_grad=True), {}, "grad"),
        _case("gaussian", MOONS, {"lr": 1e6}, "lr-1e6"),
        _case("gaussian", MOONS, {"training": st.TrainSettings(weight_decay=1e30)}, "decay"),
        _case("gaussian", MOONS, {"seed": 2**70}, "seed-2**70"),
        _case("gaussian", MOONS, {"device": "meta"}, "device-meta"),
        _case("gaussian", MOONS, {"device": "gpu"}, "device-gpu"),
        _case("gaussian", MOONS, {"device": -1}, "device--1"),
    ],
)
def test_fit_edges(rho0, rho1, kwargs):
    """Edges of fit: huge magnitudes and offsets, data that requires grad, divergent
    settings, bad seeds and devices. A fitted flow must also not have collapsed: its samples
    are distinct."""
    names = ("rho0", "rho1", "dtype", *kwargs)
    fitted = outcome(lambda: st.fit(rho0, rho1, **{**FIT, **kwargs}), *names)
    if fitted is not None:
        y = fitted.sample(16, seed=0)
        finite_of_shape(y, (16, D))
        assert len(np.unique(y, axis=0)) > 8, "samples collapsed to a few points"


# ---------------------------------------------------------------------------- save / load
@pytest.fixture(scope="module")
def saved(flow, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / "flow.sit"
    flow.save(path)
    return path


@given(data=hs.binary(max_size=300))
def test_load_any_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bad.sit"
        path.write_bytes(data)
        assert outcome(lambda: st.load(path), str(path)) is None


@given(cut=hs.floats(0.0, 0.999))
def test_load_truncated(saved, cut):
    data = saved.read_bytes()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cut.sit"
        path.write_bytes(data[: int(cut * len(data))])
        assert outcome(lambda: st.load(path), str(path)) is None


@settings(max_examples=10)
@given(where=hs.floats(0.05, 0.95))
def test_load_flipped_byte_is_detected(saved, where):
    """A flipped byte anywhere either fails to load, naming the file, or changes nothing."""
    data = bytearray(saved.read_bytes())
    data[int(where * len(data))] ^= 0x10
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "flipped.sit"
        path.write_bytes(bytes(data))
        again = outcome(lambda: st.load(path), str(path))
        if again is not None:
            original = st.load(saved)
            np.testing.assert_array_equal(again.push_forward(X), original.push_forward(X))


@given(path=anything.filter(lambda v: not isinstance(v, str)))
def test_save_any_path(flow, path):
    with tempfile.TemporaryDirectory() as tmp, _chdir(tmp):
        outcome(lambda: flow.save(path), "path")


@pytest.mark.parametrize("keyword", ["path", "map_location", "base", "interpolant"])
@given(value=anything)
def test_load_keywords_of_any_type(saved, keyword, value):
    """Bad arguments for a good file: an error naming the argument, never "corrupted"."""
    kwargs = {"path": saved, keyword: value}
    try:
        loaded = outcome(lambda: st.load(**kwargs), keyword, forbid=("damaged", "corrupt"))
    except FileNotFoundError as err:  # a string that names no file: the standard error
        assert keyword == "path" and "path" in str(err), err
        return
    if loaded is not None:
        finite_of_shape(loaded.push_forward(X), X.shape)


# ---------------------------------------------------------------------------- command line
class _Reached(Exception):
    """Raised by the stub of ``fit``: the command line accepted its inputs."""


def _run_cli(argv: list[str]) -> tuple[int, str]:
    """``main(argv)`` with ``fit`` stubbed out: (status, stderr); 99 if inputs were accepted."""
    err = io.StringIO()
    real_fit = cli.fit

    def stub(rho0, rho1, **kwargs):
        assert isinstance(rho1, np.ndarray) and rho1.ndim == 2 and np.isfinite(rho1).all()
        raise _Reached

    cli.fit = stub
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            status = cli.main(argv)
    except SystemExit as exc:
        status = exc.code
    except _Reached:
        status = 99
    finally:
        cli.fit = real_fit
    return status, err.getvalue()


def _one_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if "error:" in line]
    assert len(lines) == 1, stderr
    assert any(n in lines[0] for n in needles), (needles, stderr)


CLI_FLAGS = ["--steps", "--seed", "--n", "--n-eval", "--batch-size", "--lr"]
flag_values = (
    hs.text(max_size=6)
    | hs.integers(-3, 3).map(str)
    | hs.sampled_from(["nan", "inf", "-inf", "1e400", "2e-3", "0x10", "1_000", str(2**70)])
)


@given(flag=hs.sampled_from(CLI_FLAGS), value=flag_values)
def test_cli_flags_of_any_value(flag, value):
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        argv = ["fit", "gaussian", "moons", "-o", str(out), "--n", "100", f"{flag}={value}"]
        status, stderr = _run_cli(argv)
        assert status in (2, 99), (status, stderr)
        if status == 2:
            _one_line(stderr, f"argument {flag}", "TARGET")
        assert not out.exists()


csv_text = hs.lists(
    hs.lists(
        hs.floats(allow_nan=True, allow_infinity=True).map(repr) | hs.text("ab,;1.e- ", max_size=4),
        min_size=1,
        max_size=3,
    ).map(",".join),
    max_size=40,
).map("\n".join)


@given(text=csv_text)
def test_cli_any_csv(text):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "data.csv", Path(tmp) / "out"
        path.write_text(text)
        status, stderr = _run_cli(["fit", "gaussian", str(path), "-o", str(out)])
        assert status in (2, 99), (status, stderr)
        if status == 2:
            _one_line(stderr, str(path), "TARGET")
        assert not out.exists()


@given(
    x=hnp.arrays(
        np.float64,
        hnp.array_shapes(min_dims=2, max_dims=2, max_side=5),
        elements=hs.floats(allow_nan=False),
    ),
    sep=hs.sampled_from([",", ";", " ", "\t", ", ", " ; "]),
    quote=hs.booleans(),
    header=hs.booleans(),
    bom=hs.booleans(),
    end=hs.sampled_from(["\n", "\r\n"]),
)
def test_cli_csv_forms_round_trip(x, sep, quote, header, bom, end):
    q = '"' * quote
    lines = [sep.join(f"{q}{float(v)!r}{q}" for v in row) for row in x]
    if header:
        lines.insert(0, sep.join(f"{q}c{j}{q}" for j in range(x.shape[1])))
    text = "\ufeff" * bom + end.join(lines) + end
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.csv"
        path.write_bytes(text.encode())
        with contextlib.redirect_stderr(io.StringIO()) as err:
            read = read_csv(path, "TARGET")
    np.testing.assert_array_equal(read, x)
    assert ("skipped the header row" in err.getvalue()) == header


@given(data=hs.binary(max_size=200) | hs.sampled_from([b"\x93NUMPY"]))
def test_cli_any_npy_bytes(data):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "data.npy", Path(tmp) / "out"
        path.write_bytes(data)
        status, stderr = _run_cli(["fit", str(path), "moons", "-o", str(out)])
        assert status == 2, stderr
        _one_line(stderr, str(path))
        assert not out.exists()


@pytest.mark.parametrize(
    "array",
    [
        np.ones((30, 2), dtype=np.int64),
        np.ones((30, 2), dtype=np.complex128),
        np.full((30, 2), np.nan),
        np.ones(30),
        np.ones((1, 2)),
        np.array([["a", "b"]] * 30),
    ],
    ids=["int", "complex", "nan", "1-d", "one-row", "strings"],
)
def test_cli_bad_npy_arrays(array):
    with tempfile.TemporaryDirectory() as tmp:
        path, out = Path(tmp) / "data.npy", Path(tmp) / "out"
        np.save(path, array)
        status, stderr = _run_cli(["fit", "gaussian", str(path), "-o", str(out)])
        assert status == 2, stderr
        _one_line(stderr, str(path), "TARGET")
        assert not out.exists()


@given(where=hs.sampled_from(["file", "under-file", "proc", "dev-null", "empty"]))
def test_cli_any_out(where):
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "f").write_text("")
        out = {
            "file": f"{tmp}/f",
            "under-file": f"{tmp}/f/x",
            "proc": "/proc/sitransport-fuzz",
            "dev-null": "/dev/null",
            "empty": "",
        }[where]
        with _chdir(tmp):
            status, stderr = _run_cli(["fit", "gaussian", "moons", "-o", out, "--n", "100"])
        assert status == 2, stderr  # "" too: not silently the current directory
        _one_line(stderr, "argument -o/--out")


# ------------------------------------------------------- fixes found by this suite, pinned
@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda f: f.pull_back(np.ones((3, 3))), ValueError, r"^y must"),
        (lambda f: f.transport(X, start=True), TypeError, "start must"),
        (lambda f: f.transport(X, start=0.5, end=0.5), ValueError, "start and end must differ"),
        (lambda f: f.transport(X, start="a"), TypeError, "start must"),
        (lambda f: f.transport(X, end=1e-169), ValueError, "start and end must differ"),
        (lambda f: f.trajectory(X, [0.0, 1e-169]), ValueError, "times must be strictly"),
        (lambda f: f.transport(X, end=[0.0, 1.0]), ValueError, "end must be a single time"),
        (lambda f: f.score(X, 0.5, alpha_min=float("inf")), ValueError, "alpha_min must"),
        (lambda f: f.score(X, 0.5, alpha_min=1j), TypeError, "alpha_min must"),
        (lambda f: f.score(X, 0.5, alpha_min=None), TypeError, "alpha_min must"),
        (lambda f: f.score(X, 0.5, alpha_min=float("nan")), ValueError, "alpha_min must"),
        (lambda f: f.sample(3, method="sde", scheme=np.ones(2)), ValueError, "unknown scheme"),
        (
            lambda f: f.sample(3, seed=2**70),
            ValueError,
            r"seed must be an integer in \[0, 2\*\*63 - 1\]",
        ),
        (lambda f: f.log_prob(X, seed=2**70, progress=False), ValueError, "seed must"),
        (lambda f: f.sample(2**70), ValueError, r"n must be an integer <= 2\*\*63 - 1"),
        (lambda f: f.push_forward(X, nfe=2**70), ValueError, r"nfe must be an integer in \["),
        (lambda f: f.sample(3, method="sde", steps=2**70), ValueError, "steps must be"),
        (lambda f: f.log_prob(X, method="hutchinson", probes=2**70), ValueError, "probes must"),
        (lambda f: f.log_prob(X, batch_size=2**70), ValueError, "batch_size must"),
        (lambda f: f.velocity(np.full((2, D), 1e39), 0.5), ValueError, r"^x has values up to"),
        (lambda f: f.score(np.full((2, D), 1e300), 0.5), ValueError, r"^x has values up to"),
        (lambda f: st.metrics.transport_report(f, X, X, seed=None), TypeError, "seed must"),
        (lambda f: st.metrics.transport_report(f, X, X, seed=1.5), TypeError, "seed must"),
        (lambda f: st.metrics.transport_report(f, X, X, seed=2**70), ValueError, "seed must"),
        (lambda f: st.TransportFlow(f.network, ode=0, shape=(D,)), TypeError, "ode must be"),
        (lambda f: st.TransportFlow(f.network, ode={}, shape=(D,)), TypeError, "ode must be"),
    ],
    ids=[
        "pull_back-names-y",
        "start-bool",
        "start-equals-end",
        "start-str",
        "end-below-float32",
        "times-below-float32",
        "end-array",
        "alpha_min-inf",
        "alpha_min-complex",
        "alpha_min-None",
        "alpha_min-nan",
        "scheme-array",
        "sample-seed-2**70",
        "log_prob-seed-2**70",
        "sample-n-2**70",
        "nfe-2**70",
        "sde-steps-2**70",
        "probes-2**70",
        "batch_size-2**70",
        "velocity-x-1e39",
        "score-x-1e300",
        "report-seed-None",
        "report-seed-float",
        "report-seed-2**70",
        "flow-ode-0",
        "flow-ode-dict",
    ],
)
def test_fixed_argument_errors(flow, call, error, match):
    with pytest.raises(error, match=match):
        call(flow)


def TRAINING(**fields: Any) -> functools.partial:  # noqa: N802 (a class, to be built)
    """``st.TrainSettings(**fields)``, built by :func:`_resolved` inside the test."""
    return functools.partial(st.TrainSettings, **fields)


def MLP(**fields: Any) -> functools.partial:  # noqa: N802
    """``st.MLPSpec(**fields)``, built by :func:`_resolved` inside the test."""
    return functools.partial(st.MLPSpec, **fields)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"normalize": "no"}, TypeError, "normalize must be True or False"),
        ({"progress": "yes"}, TypeError, "progress must be True or False"),
        ({"training": TRAINING(antithetic=1)}, TypeError, "antithetic must be True or False"),
        ({"training": TRAINING(restore_best="yes")}, TypeError, "restore_best must be True"),
        ({"ode": 0}, TypeError, "ode must be an ODEOptions"),
        ({"ode": "rk4"}, TypeError, "ode must be an ODEOptions"),
        ({"network": MLP(time_frequencies=2**70)}, ValueError, "time_frequencies must"),
        ({"network": MLP(time_frequencies=0)}, ValueError, "time_frequencies must"),
        ({"batch_size": 2**70}, ValueError, "batch_size must be an integer <="),
        ({"network": MLP(width=2**70)}, ValueError, "width must be an integer <="),
        ({"network": {}}, TypeError, "network must be 'auto', a network name, an MLPSpec"),
        ({"training": "fast"}, TypeError, "training must be a TrainSettings or None, got str"),
        ({"training": st.MLPSpec()}, TypeError, "training must be a TrainSettings or None"),
        ({"network": st.TrainSettings()}, TypeError, "network must be 'auto', a network name"),
        ({"optimize_path": 1}, TypeError, "optimize_path must be True, False or a PathSettings"),
        ({"optimize_path": True}, ValueError, "optimize_path needs a learnable interpolant"),
        ({"checkpoint": 5}, TypeError, "checkpoint must be a directory"),
        ({"latent": st.TrainSettings()}, TypeError, "latent must be an integer"),
        (
            {"training": TRAINING(checkpoint_every=5)},
            ValueError,
            "training.checkpoint_every=5 does not apply: no checkpoint=",
        ),
        (
            {"validation": 0, "training": TRAINING(restore_best=True)},
            ValueError,
            "training.restore_best=True keeps .* but validation=0 holds nothing out",
        ),
        ({"num_workers": 2}, ValueError, "num_workers=2 does not apply"),
        ({"network": st.UNetSpec()}, ValueError, r"network=UNetSpec\(.*\) is a U-Net"),
    ],
    ids=[
        "normalize",
        "progress",
        "antithetic",
        "restore_best",
        "ode-0",
        "ode-str",
        "time_frequencies-2**70",
        "time_frequencies-0",
        "batch_size-2**70",
        "width-2**70",
        "network-dict",
        "training-str",
        "training-MLPSpec",
        "network-TrainSettings",
        "optimize_path-1",
        "optimize_path-trig",
        "checkpoint-int",
        "latent-TrainSettings",
        "checkpoint_every-without-checkpoint",
        "restore_best-without-validation",
        "num_workers-without-dataset",
        "unet-for-vectors",
    ],
)
def test_fixed_fit_argument_errors(kwargs, error, match):
    """Pinned errors of fit's keywords and of its settings objects (a ``functools.partial``
    is built inside ``pytest.raises``: the object's own field check)."""
    with pytest.raises(error, match=match):
        st.fit("gaussian", MOONS, **_resolved({**FIT, **kwargs}))


@pytest.mark.parametrize(
    ("build", "match"),
    [
        (lambda: st.PathSettings(mode="nope"), "unknown path mode 'nope'"),
        (lambda: st.PathSettings(every=0), "path every must be an integer >= 1"),
        (lambda: st.Checkpointing("ckpt", every=0), "checkpoint every must be an integer >= 1"),
        (lambda: st.Checkpointing("", every=2), "checkpoint dir must be a non-empty str"),
        (lambda: st.LatentSpec(0), "latent components must be an integer >= 1"),
        (lambda: st.LatentSpec(None, -1.0), "LatentSpec.variance must be finite and > 0"),
        (lambda: st.MLPSpec(kind="unet"), "unknown MLP kind 'unet'"),
        (lambda: st.MLPSpec(activation=3), "activation must be a name"),
    ],
    ids=[
        "path-mode",
        "path-every",
        "ckpt-every",
        "ckpt-dir",
        "components",
        "variance",
        "kind",
        "activation",
    ],  # fmt: skip
)
def test_fixed_settings_object_errors(build, match):
    with pytest.raises((ValueError, TypeError), match=match):
        build()


def test_latent_variance_error_names_the_spec():
    with pytest.raises(ValueError, match=r"(?<!_)variance must be"):
        st.fit("gaussian", MOONS, **FIT, latent=st.LatentSpec(None, 2.0))


@pytest.mark.parametrize("value", [np.array([]), np.array([1.0, 2.0])], ids=["empty", "two"])
def test_dtype_array_is_refused_naming_dtype(value):
    with pytest.raises(TypeError, match="dtype must be torch.float32 or torch.float64"):
        st.fit("gaussian", MOONS, **FIT, dtype=value)


def test_transport_report_takes_samples_of_different_sizes(flow):
    """x0 and x1 of different sizes (and fewer rows than the batch size) used to fail in
    torch's broadcasting inside the H estimate."""
    x1 = np.random.default_rng(3).standard_normal((10, D))
    report = st.metrics.transport_report(flow, X[:3], x1)
    assert report.n == 3 and math.isfinite(report.h_upper) and report.h_upper > 0
    assert math.isfinite(st.metrics.transport_report(flow, x1, X[:3]).w2_bound)


def test_cli_stub_is_restored():
    """The command-line cases stub ``fit`` out; the real one is back afterwards."""
    _run_cli(["fit", "gaussian", "moons", "--n", "100", "-o", "/proc/sitransport-fuzz"])
    assert cli.fit is st.fit
