"""Every public method of a flow checks that its result is finite: a flow whose stored
normalisation, weights or path coefficients are non-finite or extreme raises
:class:`~sitransport.errors.NonFiniteOutputError` (a ``FloatingPointError``) naming the method
and what to try, instead of returning nan or inf."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch

from sitransport.errors import NonFiniteOutputError, SitransportError
from sitransport.flow import Normalization, TransportFlow
from sitransport.interpolants import Fourier, Stochastic
from sitransport.latent import LatentFlow, PCAEncoder
from sitransport.nn import MLPVelocity, VelocityDenoiser

X = np.random.default_rng(0).standard_normal((6, 2))


def huge_scale_flow(interpolant: Any = "trig", net: torch.nn.Module | None = None) -> TransportFlow:
    """A float32 network in coordinates scaled by 1e300: every result overflows to inf."""
    torch.manual_seed(0)
    net = net if net is not None else MLPVelocity(2, width=8, depth=1)
    norm = Normalization(torch.zeros(2, dtype=torch.float64), 1e300)
    return TransportFlow(net, interpolant, base="gaussian", shape=(2,), normalization=norm)


def nan_path_flow() -> TransportFlow:
    """A Fourier path whose first coefficient is nan: the score divides by nan."""
    torch.manual_seed(0)
    path = Fourier("trig", K=2)
    with torch.no_grad():
        path.a[0] = float("nan")
    return TransportFlow(MLPVelocity(2, width=8, depth=1), path, base="gaussian")


def nan_weights_flow() -> TransportFlow:
    torch.manual_seed(0)
    net = MLPVelocity(2, width=8, depth=1)
    with torch.no_grad():
        next(net.parameters()).fill_(float("nan"))
    return TransportFlow(net, "trig", base="gaussian")


def denoiser_flow() -> TransportFlow:
    """A stochastic interpolant's flow, whose SDE runs in normalised coordinates."""
    torch.manual_seed(0)
    net = VelocityDenoiser(MLPVelocity(2, width=8, depth=1), MLPVelocity(2, width=8, depth=1))
    return huge_scale_flow(Stochastic("linear", "sin2"), net)


#: case -> (flow builder, the method named in the error, its call)
CASES: dict[str, tuple[Callable[[], Any], str, Callable[[Any], Any]]] = {
    "velocity/huge": (huge_scale_flow, "velocity", lambda f: f.velocity(X, 0.5)),
    "velocity/nan-weights": (nan_weights_flow, "velocity", lambda f: f.velocity(X, 0.5)),
    "transport/huge": (huge_scale_flow, "transport", lambda f: f.transport(X)),
    "push_forward/huge": (huge_scale_flow, "push_forward", lambda f: f.push_forward(X)),
    "pull_back/huge": (huge_scale_flow, "pull_back", lambda f: f.pull_back(X)),
    "path_energy/huge": (huge_scale_flow, "path_energy", lambda f: f.path_energy(X)),
    "trajectory/huge": (huge_scale_flow, "trajectory", lambda f: f.trajectory(X, [0.0, 1.0])),
    "score/huge": (huge_scale_flow, "score", lambda f: f.score(X, 0.5)),
    "score/nan-path": (nan_path_flow, "score", lambda f: f.score(X, 0.5)),
    "score/nan-weights": (nan_weights_flow, "score", lambda f: f.score(X, 0.5)),
    "score/denoiser": (denoiser_flow, "score", lambda f: f.score(X, 0.5)),
    "sample/ode": (huge_scale_flow, "sample", lambda f: f.sample(4, seed=0)),
    "sample/sde-denoiser": (
        denoiser_flow,
        "sample",
        lambda f: f.sample(4, seed=0, method="sde", steps=4),
    ),
    "log_prob/huge": (huge_scale_flow, "log_prob", lambda f: f.log_prob(X, progress=False)),
    "log_prob_estimate/huge": (
        huge_scale_flow,
        "log_prob_estimate",
        lambda f: f.log_prob_estimate(X, progress=False),
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_non_finite_result_is_refused_naming_the_method(case):
    build, method, call = CASES[case]
    with pytest.raises(NonFiniteOutputError, match=rf"^{method} produced non-finite values"):
        call(build())


def test_the_error_is_a_floating_point_error_that_says_what_to_try():
    with pytest.raises(FloatingPointError) as info:
        huge_scale_flow().sample(4, seed=0)
    assert isinstance(info.value, SitransportError)
    message = str(info.value)
    assert "What to try" in message and "normalization" in message, message


def latent_flow() -> LatentFlow:
    x = torch.tensor([[0.0, 1.0, 1.0], [2.0, 0.0, 1.0], [4.0, 1.0, 3.0]], dtype=torch.float64)
    return LatentFlow(huge_scale_flow(), PCAEncoder.fit(x, k=2), source_is_latent=True)


LATENT_CASES: dict[str, Callable[[LatentFlow], Any]] = {
    "sample": lambda f: f.sample(4, seed=0),
    "push_forward": lambda f: f.push_forward(X),
    "pull_back": lambda f: f.pull_back(np.ones((3, 3))),
    "latent_log_prob": lambda f: f.latent_log_prob(np.ones((3, 3)), progress=False),
}


@pytest.mark.parametrize("method", sorted(LATENT_CASES))
def test_a_latent_flow_refuses_a_non_finite_result(method):
    with pytest.raises(NonFiniteOutputError, match="produced non-finite values"):
        LATENT_CASES[method](latent_flow())


def test_a_latent_flow_checks_what_it_decodes():
    """An encoder whose mean overflows on decoding: the inner flow's result is finite."""
    inner = TransportFlow(lambda z, t: 0 * z, "linear", base="gaussian", shape=(1,))
    mean = torch.full((2,), 1.7e308, dtype=torch.float64)
    comps = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    flow = LatentFlow(inner, PCAEncoder(mean, comps, torch.ones(1)), source_is_latent=True)
    with pytest.raises(NonFiniteOutputError, match=r"^push_forward produced"):
        flow.push_forward(np.array([[1e308]]), nfe=1)
