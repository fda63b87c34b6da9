"""Known answers for :mod:`sitransport.exact` (closed-form Gaussian-mixture interpolant fields).

What a user relies on, and how it is pinned down independently of the code under test:

* ``log_prob`` is the mixture of the Gaussians ``N(a mu0_i + b mu1_j, a^2 C0_i + b^2 C1_j + g^2 I)``
  (scipy densities, at the end points and inside);
* ``score`` is the gradient of ``log_prob`` (autograd);
* ``velocity`` solves the continuity equation with ``log_prob`` pointwise (autograd and
  forward-mode ``jvp``), and is the conditional expectation ``E[dI/dt | x_t]``: the residual
  ``dI/dt - v(x_t)`` is orthogonal to functions of ``x_t`` (Monte Carlo, c/sqrt(n));
* ``mean``/``cov`` are the moments of rho_t (component sums and Monte Carlo);
* Gaussian -> Gaussian: ``velocity`` is affine and equals a formula derived by hand.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy.stats import multivariate_normal

from sitransport.exact import GaussianMixtureInterpolation
from sitransport.interpolants import Custom, Interpolant, Linear, Trig

F64 = torch.float64


class NoisyTrig(Trig):
    """Stochastic test interpolant: trig plus ``gamma(t) = 0.5 sin^2(pi t)``."""

    stochastic = True

    def gamma(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * torch.sin(math.pi * t) ** 2

    def dgamma(self, t: torch.Tensor) -> torch.Tensor:
        return 0.5 * math.pi * torch.sin(2 * math.pi * t)


def quadratic() -> Interpolant:
    """Custom interpolant whose derivatives come from forward-mode autodiff."""
    return Custom(lambda t: (1 - t) ** 2, lambda t: 1 - (1 - t) ** 2)


INTERPOLANTS = {"linear": Linear, "trig": Trig, "noisy_trig": NoisyTrig, "quadratic": quadratic}
interpolant_names = st.sampled_from(sorted(INTERPOLANTS))


def coefficients(interpolant: Interpolant, t: float) -> dict[str, float]:
    tt = torch.tensor(t, dtype=F64)
    names = ("alpha", "beta", "gamma", "dalpha", "dbeta", "dgamma")
    return {k: float(getattr(interpolant, k)(tt)) for k in names}


@st.composite
def mixture_pairs(draw: st.DrawFn, max_components: int = 3, max_dim: int = 3) -> tuple:
    """Two random Gaussian mixtures of a common dimension: ``(w0, m0, c0, w1, m1, c1)``."""
    d = draw(st.integers(1, max_dim))
    out = []
    for _ in range(2):
        k = draw(st.integers(1, max_components))
        w = draw(arrays(np.float64, k, elements=st.floats(0.2, 1.0)))
        means = draw(arrays(np.float64, (k, d), elements=st.floats(-2.0, 2.0)))
        a = draw(arrays(np.float64, (k, d, d), elements=st.floats(-1.0, 1.0)))
        jitter = draw(st.floats(0.1, 1.0))
        covs = a @ a.transpose(0, 2, 1) + jitter * np.eye(d)
        out += [w / w.sum(), means, covs]
    return tuple(out)


def mixture_logpdf(x: np.ndarray, w: np.ndarray, means: np.ndarray, covs: np.ndarray):
    """log sum_k w_k N(x; means_k, covs_k), by scipy."""
    logs = [
        np.log(wk) + multivariate_normal(mk, ck).logpdf(x).reshape(-1)
        for wk, mk, ck in zip(w, means, covs, strict=True)
    ]
    return np.logaddexp.reduce(np.stack(logs), axis=0)


def sample_mixture(rng: np.random.Generator, n: int, w, means, covs) -> np.ndarray:
    """Independent numpy sampler of a Gaussian mixture."""
    idx = rng.choice(len(w), size=n, p=w)
    out = np.empty((n, means.shape[1]))
    for k in range(len(w)):
        sel = idx == k
        out[sel] = rng.multivariate_normal(means[k], covs[k], size=int(sel.sum()))
    return out


def pair_components(params: tuple, c: dict[str, float]) -> tuple:
    """Weights, means and covariances of the pair components of rho_t, in numpy."""
    w0, m0, c0, w1, m1, c1 = params
    d = m0.shape[1]
    w, m, cov = [], [], []
    for i in range(len(w0)):
        for j in range(len(w1)):
            w.append(w0[i] * w1[j])
            m.append(c["alpha"] * m0[i] + c["beta"] * m1[j])
            cov.append(
                c["alpha"] ** 2 * c0[i] + c["beta"] ** 2 * c1[j] + c["gamma"] ** 2 * np.eye(d)
            )
    return np.array(w), np.array(m), np.array(cov)


# A fixed, well-separated problem for the Monte Carlo tests (d = 2, 2 -> 3 components).
FIXED = (
    np.array([0.3, 0.7]),
    np.array([[-2.0, 0.0], [1.5, 1.0]]),
    np.array([[[0.5, 0.2], [0.2, 0.4]], [[0.3, -0.1], [-0.1, 0.6]]]),
    np.array([0.2, 0.5, 0.3]),
    np.array([[0.0, 3.0], [3.0, -1.0], [-2.0, -2.0]]),
    np.array([[[0.2, 0.0], [0.0, 0.2]], [[1.0, 0.5], [0.5, 0.8]], [[0.4, -0.2], [-0.2, 0.3]]]),
)


def sample_interpolant(rng: np.random.Generator, n: int, params: tuple, c: dict[str, float]):
    """Independent draws of ``(x_t, dI/dt)`` for the independent coupling, in numpy."""
    w0, m0, c0, w1, m1, c1 = params
    x0 = sample_mixture(rng, n, w0, m0, c0)
    x1 = sample_mixture(rng, n, w1, m1, c1)
    z = rng.standard_normal(x0.shape)
    xt = c["alpha"] * x0 + c["beta"] * x1 + c["gamma"] * z
    dxt = c["dalpha"] * x0 + c["dbeta"] * x1 + c["dgamma"] * z
    return xt, dxt


def assert_zero_mean(samples: np.ndarray, n_se: float = 5.0, what: str = "") -> None:
    """Assert the Monte Carlo mean of each column is 0 within ``n_se`` standard errors."""
    samples = samples.reshape(samples.shape[0], -1)
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / math.sqrt(samples.shape[0])
    assert np.all(np.abs(mean) <= n_se * se + 1e-12), f"{what}: mean {mean}, s.e. {se}"


# --------------------------------------------------------------------------- density and score


@given(params=mixture_pairs(), name=interpolant_names, seed=st.integers(0, 2**16))
def test_log_prob_is_the_pair_mixture_density(params: tuple, name: str, seed: int) -> None:
    interpolant = INTERPOLANTS[name]()
    gmi = GaussianMixtureInterpolation(*params, interpolant=interpolant)
    rng = np.random.default_rng(seed)
    d = params[1].shape[1]
    x = rng.uniform(-4, 4, size=(6, d))
    for t in (0.0, 0.37, 0.8, 1.0):
        want = mixture_logpdf(x, *pair_components(params, coefficients(interpolant, t)))
        got = gmi.log_prob(torch.from_numpy(x), t).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-9)


@given(params=mixture_pairs(), name=interpolant_names, seed=st.integers(0, 2**16))
def test_log_prob_at_the_end_points_is_rho0_and_rho1(params: tuple, name: str, seed: int) -> None:
    gmi = GaussianMixtureInterpolation(*params, interpolant=INTERPOLANTS[name]())
    x = np.random.default_rng(seed).uniform(-4, 4, size=(6, params[1].shape[1]))
    np.testing.assert_allclose(gmi.log_prob(x, 0.0), mixture_logpdf(x, *params[:3]), rtol=1e-9)
    np.testing.assert_allclose(gmi.log_prob(x, 1.0), mixture_logpdf(x, *params[3:]), rtol=1e-9)


@given(params=mixture_pairs(), name=interpolant_names, seed=st.integers(0, 2**16))
def test_score_is_the_gradient_of_log_prob(params: tuple, name: str, seed: int) -> None:
    gmi = GaussianMixtureInterpolation(*params, interpolant=INTERPOLANTS[name]())
    g = torch.Generator().manual_seed(seed)
    t = 0.02 + 0.96 * torch.rand(8, generator=g, dtype=F64)
    x = (3 * torch.randn(8, gmi.dim, generator=g, dtype=F64)).requires_grad_(True)
    (grad,) = torch.autograd.grad(gmi.log_prob(x, t).sum(), x)
    torch.testing.assert_close(gmi.score(x, t), grad, rtol=1e-9, atol=1e-10)


# --------------------------------------------------------------------------- continuity equation


@given(params=mixture_pairs(), name=interpolant_names, seed=st.integers(0, 2**16))
def test_velocity_solves_the_continuity_equation(params: tuple, name: str, seed: int) -> None:
    """d/dt log rho + div v + v . grad log rho = 0: d/dt rho + div(rho v) = 0 divided by rho."""
    gmi = GaussianMixtureInterpolation(*params, interpolant=INTERPOLANTS[name]())
    g = torch.Generator().manual_seed(seed)
    n = 8
    t = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=F64)
    x = gmi.sample(n, t, generator=g) + 0.5 * torch.randn(n, gmi.dim, generator=g, dtype=F64)
    # d/dt log rho_t(x) by forward mode: each row depends on its own t only.
    _, dlogp_dt = torch.func.jvp(lambda s: gmi.log_prob(x, s), (t,), (torch.ones_like(t),))
    # grad log rho and div v by reverse mode (rows are independent, so sum over rows).
    x = x.clone().requires_grad_(True)
    (grad_logp,) = torch.autograd.grad(gmi.log_prob(x, t).sum(), x)
    v = gmi.velocity(x, t)
    div = sum(
        torch.autograd.grad(v[:, k].sum(), x, retain_graph=True)[0][:, k] for k in range(gmi.dim)
    )
    transport = (v * grad_logp).sum(1)
    residual = dlogp_dt + div + transport
    scale = 1.0 + dlogp_dt.abs() + div.abs() + (v * grad_logp).abs().sum(1)
    assert torch.all(residual.abs() <= 1e-9 * scale), (residual, scale)


def test_time_derivative_agrees_with_central_differences() -> None:
    """Guards the autodiff time derivative used above against float64 finite differences."""
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant=NoisyTrig())
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-1.5, 0.5]], dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    _, exact = torch.func.jvp(lambda s: gmi.log_prob(x, s), (t,), (torch.ones_like(t),))
    h = 1e-5  # central differences: error O(h^2) + O(eps / h)
    fd = (gmi.log_prob(x, t + h) - gmi.log_prob(x, t - h)) / (2 * h)
    torch.testing.assert_close(exact, fd, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------- moments


@given(params=mixture_pairs(), name=interpolant_names, t=st.floats(0.0, 1.0))
def test_mean_and_cov_are_the_moments_of_the_pair_mixture(
    params: tuple, name: str, t: float
) -> None:
    interpolant = INTERPOLANTS[name]()
    gmi = GaussianMixtureInterpolation(*params, interpolant=interpolant)
    w, m, c = pair_components(params, coefficients(interpolant, t))
    mean = np.einsum("k,ki->i", w, m)
    cov = np.einsum("k,kij->ij", w, c + m[:, :, None] * m[:, None, :]) - np.outer(mean, mean)
    np.testing.assert_allclose(gmi.mean(t).numpy(), mean, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(gmi.cov(t).numpy(), cov, rtol=1e-10, atol=1e-12)
    # Batched times give the same rows.
    tt = torch.full((3,), t, dtype=F64)
    torch.testing.assert_close(gmi.mean(tt), gmi.mean(t).expand(3, -1))
    torch.testing.assert_close(gmi.cov(tt), gmi.cov(t).expand(3, -1, -1))


@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
@pytest.mark.parametrize("t", [0.0, 0.3, 0.75])
def test_mean_and_cov_match_monte_carlo(name: str, t: float) -> None:
    interpolant = INTERPOLANTS[name]()
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant=interpolant)
    n = 40_000
    xt_numpy, _ = sample_interpolant(
        np.random.default_rng(7), n, FIXED, coefficients(interpolant, t)
    )
    xt_library = gmi.sample(n, t, generator=torch.Generator().manual_seed(7)).numpy()
    mean, cov = gmi.mean(t).numpy(), gmi.cov(t).numpy()
    for xt in (xt_numpy, xt_library):
        centred = xt - mean
        assert_zero_mean(centred, what="mean")
        assert_zero_mean(centred[:, :, None] * centred[:, None, :] - cov, what="cov")


# ------------------------------------------------------------------- velocity = E[dI/dt | x_t]


@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
@pytest.mark.parametrize("t", [0.1, 0.5, 0.9])
def test_velocity_is_the_conditional_expectation_of_dI_dt(name: str, t: float) -> None:
    """E[(dI/dt - v(x_t)) f(x_t)] = 0 for test functions f, and the identities it implies."""
    interpolant = INTERPOLANTS[name]()
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant=interpolant)
    c = coefficients(interpolant, t)
    n = 20_000
    xt, dxt = sample_interpolant(np.random.default_rng(11), n, FIXED, c)
    v = gmi.velocity(xt, t)
    assert isinstance(v, np.ndarray) and v.shape == xt.shape

    # E_{rho_t}[v_t] = d/dt E[x_t] = alpha' E[x0] + beta' E[x1]  (exact right-hand side).
    w0, m0, _, w1, m1, _ = FIXED
    dmean = c["dalpha"] * (w0 @ m0) + c["dbeta"] * (w1 @ m1)
    assert_zero_mean(v - dmean, what="E[v] - d/dt E[x_t]")

    # Orthogonality of the residual to f(x_t) = 1, x_t, tanh(x_t), v(x_t).
    residual = dxt - v
    tests = [np.ones((n, 1)), xt, np.tanh(xt), v]
    for f in tests:
        assert_zero_mean(residual[:, :, None] * f[:, None, :], what="E[(dI/dt - v) f]")

    # Jensen / Pythagoras: E|dI/dt|^2 = E|v|^2 + E|dI/dt - v|^2 >= E|v|^2.
    kinetic_dxt, kinetic_v = (dxt**2).sum(1), (v**2).sum(1)
    gap = (residual**2).sum(1)
    assert kinetic_dxt.mean() > kinetic_v.mean()
    assert gap.mean() > 0.05
    assert_zero_mean(kinetic_dxt - kinetic_v - gap, what="Pythagoras")


def test_a_wrong_velocity_fails_the_conditional_expectation_check() -> None:
    """The Monte Carlo check above has power: dropping the 1/2 in 1/2 C' C^-1 is detected."""
    interpolant = Linear()
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant=interpolant)
    t = 0.5
    c = coefficients(interpolant, t)
    xt, dxt = sample_interpolant(np.random.default_rng(11), 20_000, FIXED, c)
    v = gmi.velocity(xt, t)
    # v_wrong = v + sum_ij w_ij 1/2 C'_ij C_ij^-1 (x - m_ij), built from the exact pieces.
    w, m, cov = pair_components(FIXED, c)
    dcov = np.array(
        [2 * c["alpha"] * c["dalpha"] * c0 + 2 * c["beta"] * c["dbeta"] * c1
         for c0 in FIXED[2] for c1 in FIXED[5]]
    )  # fmt: skip
    logs = np.stack(
        [
            np.log(wk) + multivariate_normal(mk, ck).logpdf(xt)
            for wk, mk, ck in zip(w, m, cov, strict=True)
        ]
    )
    post = np.exp(logs - np.logaddexp.reduce(logs, axis=0))
    extra = sum(
        post[k][:, None] * (0.5 * (xt - m[k]) @ np.linalg.solve(cov[k], dcov[k]))
        for k in range(len(w))
    )
    with pytest.raises(AssertionError):
        assert_zero_mean((dxt - (v + extra))[:, :, None] * xt[:, None, :])


# --------------------------------------------------------------------------- Gaussian -> Gaussian


@given(
    d=st.integers(1, 3),
    m=st.lists(st.floats(-3, 3), min_size=3, max_size=3),
    s=st.floats(0.2, 3.0),
    t=st.floats(0.0, 1.0),
    seed=st.integers(0, 2**16),
)
def test_linear_standard_normal_to_isotropic_gaussian_by_hand(
    d: int, m: list[float], s: float, t: float, seed: int
) -> None:
    """rho0 = N(0, I), rho1 = N(m, s^2 I), x_t = (1 - t) x0 + t x1 (derived by hand).

    m_t = t m, C_t = sigma^2 I with sigma^2 = (1 - t)^2 + t^2 s^2, m_t' = m,
    1/2 C_t' = (t s^2 - (1 - t)) I, so v_t(x) = m + (t s^2 - (1 - t)) / sigma^2 (x - t m),
    score_t(x) = -(x - t m) / sigma^2.
    """
    mean1 = np.array(m[:d])
    gmi = GaussianMixtureInterpolation.from_gaussians(
        np.zeros(d), np.eye(d), mean1, s**2 * np.eye(d), "linear"
    )
    x = np.random.default_rng(seed).normal(size=(5, d)) * 3
    sigma2 = (1 - t) ** 2 + t**2 * s**2
    v = mean1 + (t * s**2 - (1 - t)) / sigma2 * (x - t * mean1)
    np.testing.assert_allclose(gmi.velocity(x, t), v, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gmi.score(x, t), -(x - t * mean1) / sigma2, rtol=1e-10, atol=1e-10)
    logp = -0.5 * ((x - t * mean1) ** 2).sum(1) / sigma2 - 0.5 * d * np.log(2 * np.pi * sigma2)
    np.testing.assert_allclose(gmi.log_prob(x, t), logp, rtol=1e-10, atol=1e-10)


@given(params=mixture_pairs(max_components=1), name=interpolant_names, t=st.floats(0.0, 1.0))
def test_gaussian_to_gaussian_velocity_is_affine(params: tuple, name: str, t: float) -> None:
    w0, m0, c0, w1, m1, c1 = params
    interpolant = INTERPOLANTS[name]()
    gmi = GaussianMixtureInterpolation.from_gaussians(m0[0], c0[0], m1[0], c1[0], interpolant)
    same = GaussianMixtureInterpolation(*params, interpolant=interpolant)
    g = torch.Generator().manual_seed(0)
    x, y = (3 * torch.randn(2, gmi.dim, generator=g, dtype=F64)).unbind(0)
    jac = lambda p: torch.func.jacrev(lambda q: gmi.velocity(q[None], t)[0])(p)  # noqa: E731
    torch.testing.assert_close(jac(x), jac(y), rtol=1e-9, atol=1e-10)
    lam = 0.3
    pts = torch.stack([x, y, lam * x + (1 - lam) * y])
    vx, vy, vmix = gmi.velocity(pts, t)
    torch.testing.assert_close(vmix, lam * vx + (1 - lam) * vy, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(gmi.velocity(pts, t), same.velocity(pts, t), rtol=0, atol=0)


# --------------------------------------------------------------------------- API behaviour


def test_time_shapes_types_and_dtypes() -> None:
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant="trig")
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-1.5, 0.5]], dtype=F64)
    t = torch.tensor([0.2, 0.5, 0.9], dtype=F64)
    batched = gmi.velocity(x, t)
    rows = torch.cat([gmi.velocity(x[i : i + 1], float(t[i])) for i in range(3)])
    torch.testing.assert_close(batched, rows, rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(gmi(x, t), batched, rtol=0, atol=0)
    assert gmi.log_prob(x, 0.5).shape == (3,) and gmi.score(x, 0.5).shape == (3, 2)
    assert gmi.mean(t).shape == (3, 2) and gmi.cov(t).shape == (3, 2, 2)
    # numpy in -> numpy out; float32 in -> float32 out.
    assert isinstance(gmi.velocity(x.numpy(), 0.5), np.ndarray)
    assert gmi.velocity(x.float(), 0.5).dtype == torch.float32
    assert gmi.weights0.dtype == F64 and gmi.n_components == (2, 3) and gmi.dim == 2


@pytest.mark.parametrize("name", sorted(INTERPOLANTS))
def test_velocity_is_finite_and_continuous_at_the_end_points(name: str) -> None:
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant=INTERPOLANTS[name]())
    x = torch.tensor([[0.3, -0.2], [1.0, 2.0], [-1.5, 0.5]], dtype=F64)
    for t0, t_near in ((0.0, 1e-7), (1.0, 1.0 - 1e-7)):
        v0 = gmi.velocity(x, t0)
        assert torch.isfinite(v0).all() and torch.isfinite(gmi.score(x, t0)).all()
        torch.testing.assert_close(v0, gmi.velocity(x, t_near), rtol=1e-5, atol=1e-5)


def test_gradients_flow_to_x_and_t() -> None:
    gmi = GaussianMixtureInterpolation(*FIXED, interpolant="trig")
    x = torch.tensor([[0.3, -0.2]], dtype=F64, requires_grad=True)
    t = torch.tensor(0.4, dtype=F64, requires_grad=True)
    gx, gt = torch.autograd.grad(gmi.velocity(x, t).sum(), (x, t))
    assert torch.isfinite(gx).all() and gx.abs().sum() > 0 and gt.abs() > 0


# --------------------------------------------------------------------------- errors


def valid() -> list:
    return [np.asarray(p) for p in FIXED]


@pytest.mark.parametrize(
    "index, value, match",
    [
        (1, np.zeros(2), r"means0 must have shape \(K, d\)"),
        (2, np.stack([np.eye(3)] * 2), r"covs0 must have shape \(K, d, d\) = \(2, 2, 2\)"),
        (0, np.array([1.0]), r"weights0 must have shape \(K,\) = \(2,\)"),
        ((4, 5), (np.zeros((3, 3)), np.stack([np.eye(3)] * 3)), "the same dimension d"),
        (3, np.array([0.2, 0.5, 0.5]), r"weights1 must sum to 1 within 1e-06, got .*=1.2"),
        (3, np.array([0.5, 0.6, -0.1]), r"weights1 must all be > 0 .*weights1\[2\] = -0.1"),
        (2, np.stack([np.eye(2), np.array([[1.0, 2.0], [2.0, 1.0]])]), r"covs0\[1\] .*definite"),
        (5, np.stack([np.eye(2), np.eye(2), np.diag([1.0, 0.0])]), r"covs1\[2\] .*definite"),
        (5, np.stack([np.eye(2), np.eye(2), [[1.0, 0.5], [0.0, 1.0]]]), r"covs1\[2\] .*symmetric"),
        (1, np.array([[np.nan, 0.0], [0.0, 0.0]]), "means0 must be finite"),
    ],
)
def test_constructor_rejects_bad_parameters(index, value, match: str) -> None:
    args = valid()
    pairs = zip(index, value, strict=True) if isinstance(index, tuple) else [(index, value)]
    for i, val in pairs:
        args[i] = val
    with pytest.raises(ValueError, match=match):
        GaussianMixtureInterpolation(*args, interpolant="trig")


def test_other_input_errors() -> None:
    with pytest.raises(TypeError, match="weights0 must be an array of floats"):
        GaussianMixtureInterpolation(["a", "b"], *valid()[1:])
    with pytest.raises(TypeError, match="covs1 must have a floating dtype"):
        args = valid()
        args[5] = np.stack([np.eye(2, dtype=np.int64)] * 3)
        GaussianMixtureInterpolation(*args)
    with pytest.raises(ValueError, match="unknown interpolant 'cubic'"):
        GaussianMixtureInterpolation(*valid(), interpolant="cubic")
    with pytest.raises(ValueError, match=r"cov1 must have shape \(d, d\) = \(2, 2\)"):
        GaussianMixtureInterpolation.from_gaussians(np.zeros(2), np.eye(2), np.zeros(2), np.eye(3))
    with pytest.raises(ValueError, match="mean0 and mean1 must have the same dimension"):
        GaussianMixtureInterpolation.from_gaussians(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))
    with pytest.raises(ValueError, match="cov0 must be symmetric positive definite"):
        GaussianMixtureInterpolation.from_gaussians(np.zeros(2), -np.eye(2), np.zeros(2), np.eye(2))
    gmi = GaussianMixtureInterpolation(*valid())
    x = np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"x must have trailing shape \(2,\)"):
        gmi.velocity(np.zeros((4, 3)), 0.5)
    with pytest.raises(ValueError, match=r"expected t in \[0, 1\]"):
        gmi.log_prob(x, 1.5)
    with pytest.raises(ValueError, match=r"t must have shape \(4,\)"):
        gmi.score(x, np.full(3, 0.5))
    vanishing = Custom(lambda t: (1 - 2 * t).abs() * (1 - t), lambda t: t * (2 * t - 1).abs())
    with pytest.raises(ValueError, match="not positive definite at t=0.5"):
        GaussianMixtureInterpolation(*valid(), interpolant=vanishing).velocity(x, 0.5)
