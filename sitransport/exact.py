r"""Closed-form interpolant fields between Gaussian mixtures: test oracles and references.

For Gaussian mixtures

.. math::

    \rho_0 = \sum_i p_i\, \mathcal N(\mu^0_i, C^0_i), \qquad
    \rho_1 = \sum_j q_j\, \mathcal N(\mu^1_j, C^1_j),

the independent coupling :math:`(x_0, x_1) \sim \rho_0 \otimes \rho_1` and a spatially linear
interpolant :math:`x_t = a(t) x_0 + b(t) x_1 + g(t) z`, :math:`z \sim \mathcal N(0, I)`
(:math:`g = 0` for deterministic interpolants; :math:`a, b, g` are the interpolant's
``alpha, beta, gamma``), every pair of components :math:`(i, j)` gives a Gaussian

.. math::

    x_t \mid (i, j) \sim \mathcal N_{ij} = \mathcal N(m_{ij}, C_{ij}), \qquad
    m_{ij} = a \mu^0_i + b \mu^1_j, \qquad C_{ij} = a^2 C^0_i + b^2 C^1_j + g^2 I,

so the marginal is :math:`\rho_t = \sum_{ij} p_i q_j \mathcal N_{ij}`. Given the component,
:math:`\dot x_t = \dot a x_0 + \dot b x_1 + \dot g z` and :math:`x_t` are jointly Gaussian with
:math:`\operatorname{Cov}(\dot x_t, x_t) = a \dot a C^0_i + b \dot b C^1_j + g \dot g I
= \tfrac12 \dot C_{ij}`, hence
:math:`E[\dot x_t \mid x_t = x, (i, j)]
= \dot m_{ij} + \tfrac12 \dot C_{ij} C_{ij}^{-1}(x - m_{ij})` and, averaging over the
posterior of the component, the exact velocity (the minimiser
:math:`E[\dot x_t \mid x_t = x]` of the quadratic loss) is

.. math::

    v_t(x) = \sum_{ij} w_{ij}(x) \Big[\dot m_{ij} + \tfrac12 \dot C_{ij} C_{ij}^{-1}
    (x - m_{ij})\Big], \qquad
    w_{ij}(x) = \frac{p_i q_j \mathcal N_{ij}(x)}{\rho_t(x)},

with score :math:`\nabla \log \rho_t(x) = -\sum_{ij} w_{ij}(x)\, C_{ij}^{-1} (x - m_{ij})`
and moments :math:`E[x_t] = a E[x_0] + b E[x_1]`,
:math:`\operatorname{Cov}(x_t) = a^2 \operatorname{Cov}(x_0) + b^2 \operatorname{Cov}(x_1) + g^2 I`.
Each bracket is the affine velocity that transports :math:`\mathcal N_{ij}` exactly
(:math:`A C + C A^\top = \dot C` for :math:`A = \tfrac12 \dot C C^{-1}`), so :math:`v_t`
solves the continuity equation :math:`\partial_t \rho_t + \nabla \cdot (\rho_t v_t) = 0`.

This is the velocity of the *independent coupling*, not the optimal-transport velocity: its
kinetic energy :math:`\int_0^1 E|v_t|^2 dt` is at least :math:`W_2^2(\rho_0, \rho_1)`.

Numerics: :math:`C_{ij}` is factorised by Cholesky, the weights are a softmax of log
weights (``logsumexp``), and everything is a torch expression, differentiable in ``x``, in
``t`` and in learnable interpolant parameters (forward and reverse mode).

References:
    Albergo & Vanden-Eijnden, Building Normalizing Flows with Stochastic Interpolants,
    ICLR 2023, arXiv:2209.15571.
    Albergo, Boffi & Vanden-Eijnden, Stochastic Interpolants: A Unifying Framework for
    Flows and Diffusions, arXiv:2303.08797.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

import numpy as np
import torch
from torch import Tensor

from sitransport._validation import (
    as_tensor,
    check_covariance,
    check_mixture_weights,
    check_positive_int,
    check_times,
)
from sitransport.interpolants import Interpolant, get_interpolant

__all__ = ["GaussianMixtureInterpolation"]


def _to_array(x: Any, name: str, ndim: int, shape_hint: str) -> Tensor:
    """Convert an array-like parameter to a validated tensor of rank ``ndim`` (no copy yet)."""
    if isinstance(x, (list, tuple)) or (isinstance(x, numbers.Real) and not isinstance(x, bool)):
        try:
            x = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be an array of floats of shape {shape_hint}, got a "
                f"{type(x).__name__} that numpy cannot convert to float64 ({exc})"
            ) from None
    rank = getattr(x, "ndim", None)
    if rank is not None and rank != ndim:
        raise ValueError(f"{name} must have shape {shape_hint}, got shape {tuple(x.shape)}")
    t, _ = as_tensor(x, name, ndim=ndim)
    return t.detach()


def _check_cov(c: Tensor, label: str) -> Tensor:
    """Check that ``c`` (float64, shape (d, d)) is symmetric positive definite (a singular
    covariance has no density); return it symmetrised, on its device."""
    checked = check_covariance(c.detach().cpu().numpy(), label, definite=True)
    return torch.from_numpy(checked).to(c.device)


def _mixture(weights: Any, means: Any, covs: Any, k: str) -> tuple[Tensor, Tensor, Tensor]:
    """Validate one mixture (``k`` is "0" or "1"); return float64 CPU tensors."""
    wn, mn, cn = f"weights{k}", f"means{k}", f"covs{k}"
    w = _to_array(weights, wn, 1, "(K,)").to(torch.float64)
    m = _to_array(means, mn, 2, "(K, d)").to(torch.float64)
    c = _to_array(covs, cn, 3, "(K, d, d)").to(torch.float64)
    n_comp, d = m.shape
    if d < 1:
        raise ValueError(f"{mn} must have shape (K, d) with d >= 1, got shape {tuple(m.shape)}")
    if w.shape[0] != n_comp:
        raise ValueError(
            f"{wn} must have shape (K,) = ({n_comp},) to match {mn} of shape "
            f"{tuple(m.shape)}, got {wn} of shape {tuple(w.shape)}"
        )
    if tuple(c.shape) != (n_comp, d, d):
        raise ValueError(
            f"{cn} must have shape (K, d, d) = ({n_comp}, {d}, {d}) to match {mn} of shape "
            f"{tuple(m.shape)}, got {cn} of shape {tuple(c.shape)}"
        )
    check_mixture_weights(w.cpu().numpy(), wn)
    total = float(w.sum())
    c = torch.stack([_check_cov(c[i], f"{cn}[{i}]") for i in range(n_comp)])
    return w / total, m.clone(), c


class GaussianMixtureInterpolation:
    r"""Exact interpolant density, velocity and score between two Gaussian mixtures.

    With the notation of the module docstring, :meth:`velocity` is
    :math:`v_t(x) = E[\dot x_t \mid x_t = x]` for the independent coupling, :meth:`log_prob`
    and :meth:`score` are :math:`\log \rho_t` and :math:`\nabla \log \rho_t`, and
    :meth:`mean`, :meth:`cov` the exact moments of :math:`\rho_t`. An instance is itself a
    velocity field: ``gmi(x, t) == gmi.velocity(x, t)``.

    Mixture parameters are validated, copied and detached on construction (they are
    constants). Evaluations take ``x`` of shape ``(n, d)`` and ``t`` a float, a 0-d tensor
    or a tensor of shape ``(n,)`` in ``[0, 1]``; they compute in the dtype and on the
    device of ``x`` and are differentiable in ``x``, ``t`` and the interpolant's parameters.

    Singularity: :math:`C_{ij}(t) = a^2 C^0_i + b^2 C^1_j + g^2 I` is positive definite
    whenever :math:`(a, b, g) \ne 0`, because the input covariances are required to be
    positive definite. For ``linear`` and ``trig`` this holds at every :math:`t \in [0, 1]`
    including the end points (:math:`C_{ij}(0) = C^0_i`, :math:`C_{ij}(1) = C^1_j`); only a
    custom interpolant with :math:`a = b = g = 0` at some time would make it singular, which
    raises ``ValueError``.

    Args:
        weights0: component weights of ``rho0``, shape ``(K0,)``, positive, summing to 1.
        means0: component means of ``rho0``, shape ``(K0, d)``.
        covs0: component covariances of ``rho0``, shape ``(K0, d, d)``, symmetric positive
            definite.
        weights1: component weights of ``rho1``, shape ``(K1,)``.
        means1: component means of ``rho1``, shape ``(K1, d)``.
        covs1: component covariances of ``rho1``, shape ``(K1, d, d)``.
        interpolant: ``"trig"``, ``"linear"``, a spec dict or an
            :class:`~sitransport.interpolants.Interpolant` (stochastic ones included). Its
            ``alpha, beta, gamma`` must be scalar per time.
        dtype: floating dtype in which the parameters are stored (``float64`` by default).
        device: device on which the parameters are stored. Default ``None``.

    Raises:
        TypeError: a parameter is not an array of floats, or a bad interpolant.
        ValueError: inconsistent shapes, NaN/Inf, non-positive weights or weights not summing
            to 1 (within ``1e-6``; they are then renormalised exactly), a covariance that is
            not symmetric positive definite, ``rho0`` and ``rho1`` of different dimensions.

    References:
        Albergo & Vanden-Eijnden, arXiv:2209.15571.

    Example:
        >>> import numpy as np, torch
        >>> from sitransport.exact import GaussianMixtureInterpolation
        >>> gmi = GaussianMixtureInterpolation(
        ...     [0.5, 0.5], [[-2.0, 0.0], [2.0, 0.0]], np.stack([np.eye(2)] * 2),
        ...     [1.0], [[0.0, 3.0]], [0.25 * np.eye(2)], interpolant="linear")
        >>> x = torch.zeros(5, 2, dtype=torch.float64)
        >>> tuple(gmi(x, 0.5).shape), tuple(gmi.log_prob(x, 0.5).shape)
        ((5, 2), (5,))
        >>> gmi.mean(0.5).tolist()
        [0.0, 1.5]
    """

    def __init__(
        self,
        weights0: Any,
        means0: Any,
        covs0: Any,
        weights1: Any,
        means1: Any,
        covs1: Any,
        interpolant: str | dict[str, Any] | Interpolant = "trig",
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> None:
        if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating torch.dtype, got {dtype!r}")
        w0, m0, c0 = _mixture(weights0, means0, covs0, "0")
        w1, m1, c1 = _mixture(weights1, means1, covs1, "1")
        if m0.shape[1] != m1.shape[1]:
            raise ValueError(
                "rho0 and rho1 must have the same dimension d, got means0 of shape "
                f"{tuple(m0.shape)} and means1 of shape {tuple(m1.shape)}"
            )
        self._interpolant = get_interpolant(interpolant)
        kw: dict[str, Any] = {"dtype": dtype, "device": device}
        self._w0, self._m0, self._c0 = w0.to(**kw), m0.to(**kw), c0.to(**kw)
        self._w1, self._m1, self._c1 = w1.to(**kw), m1.to(**kw), c1.to(**kw)
        k0, k1, d = m0.shape[0], m1.shape[0], m0.shape[1]
        # Pairs (i, j) flattened to k = i * K1 + j.
        self._logw = (w0.log()[:, None] + w1.log()[None, :]).reshape(-1).to(**kw)
        self._pm0 = m0[:, None].expand(k0, k1, d).reshape(-1, d).to(**kw)
        self._pm1 = m1[None, :].expand(k0, k1, d).reshape(-1, d).to(**kw)
        self._pc0 = c0[:, None].expand(k0, k1, d, d).reshape(-1, d, d).to(**kw)
        self._pc1 = c1[None, :].expand(k0, k1, d, d).reshape(-1, d, d).to(**kw)
        # Mixture moments of the end points.
        mean0, mean1 = w0 @ m0, w1 @ m1
        self._mean0, self._mean1 = mean0.to(**kw), mean1.to(**kw)
        self._cov0 = _mixture_cov(w0, m0, c0, mean0).to(**kw)
        self._cov1 = _mixture_cov(w1, m1, c1, mean1).to(**kw)

    @classmethod
    def from_gaussians(
        cls,
        mean0: Any,
        cov0: Any,
        mean1: Any,
        cov1: Any,
        interpolant: str | dict[str, Any] | Interpolant = "trig",
        *,
        dtype: torch.dtype = torch.float64,
        device: torch.device | str | None = None,
    ) -> GaussianMixtureInterpolation:
        r"""One Gaussian to one Gaussian, :math:`\mathcal N(m_0, C_0) \to \mathcal N(m_1, C_1)`.

        The velocity is then affine in ``x``:
        :math:`v_t(x) = \dot m_t + \tfrac12 \dot C_t C_t^{-1} (x - m_t)`.

        Args:
            mean0: mean of ``rho0``, shape ``(d,)``.
            cov0: covariance of ``rho0``, shape ``(d, d)``, symmetric positive definite.
            mean1: mean of ``rho1``, shape ``(d,)``.
            cov1: covariance of ``rho1``, shape ``(d, d)``.
            interpolant: as in the constructor. Default ``"trig"``.
            dtype: parameter dtype. Default ``torch.float64``.
            device: parameter device. Default ``None``.

        Returns:
            A :class:`GaussianMixtureInterpolation` with one component on each side.

        Raises:
            TypeError: non-array input.
            ValueError: inconsistent shapes, NaN/Inf, a covariance that is not SPD.

        Example:
            >>> import numpy as np
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     np.zeros(2), np.eye(2), np.ones(2), 4 * np.eye(2), "linear")
            >>> gmi.cov(0.5).diagonal().tolist()
            [1.25, 1.25]
        """
        ends = []
        for k, mean, cov in (("0", mean0, cov0), ("1", mean1, cov1)):
            m = _to_array(mean, f"mean{k}", 1, "(d,)").to(torch.float64)
            c = _to_array(cov, f"cov{k}", 2, "(d, d)").to(torch.float64)
            d = m.shape[0]
            if tuple(c.shape) != (d, d):
                raise ValueError(
                    f"cov{k} must have shape (d, d) = ({d}, {d}) to match mean{k} of shape "
                    f"({d},), got cov{k} of shape {tuple(c.shape)}"
                )
            ends.append(
                (torch.ones(1, dtype=torch.float64), m[None], _check_cov(c, f"cov{k}")[None])
            )
        (w0, m0, c0), (w1, m1, c1) = ends
        if m0.shape != m1.shape:
            raise ValueError(
                f"mean0 and mean1 must have the same dimension, got mean0 of shape "
                f"({m0.shape[1]},) and mean1 of shape ({m1.shape[1]},)"
            )
        return cls(w0, m0, c0, w1, m1, c1, interpolant, dtype=dtype, device=device)

    # ------------------------------------------------------------------ read-only attributes

    @property
    def interpolant(self) -> Interpolant:
        """The interpolant defining :math:`a, b, g`."""
        return self._interpolant

    @property
    def dim(self) -> int:
        """Dimension ``d`` of the samples."""
        return int(self._m0.shape[1])

    @property
    def n_components(self) -> tuple[int, int]:
        """Numbers of components ``(K0, K1)`` of ``rho0`` and ``rho1``."""
        return int(self._m0.shape[0]), int(self._m1.shape[0])

    @property
    def weights0(self) -> Tensor:
        """Component weights of ``rho0``, shape ``(K0,)`` (a copy)."""
        return self._w0.clone()

    @property
    def means0(self) -> Tensor:
        """Component means of ``rho0``, shape ``(K0, d)`` (a copy)."""
        return self._m0.clone()

    @property
    def covs0(self) -> Tensor:
        """Component covariances of ``rho0``, shape ``(K0, d, d)`` (a copy)."""
        return self._c0.clone()

    @property
    def weights1(self) -> Tensor:
        """Component weights of ``rho1``, shape ``(K1,)`` (a copy)."""
        return self._w1.clone()

    @property
    def means1(self) -> Tensor:
        """Component means of ``rho1``, shape ``(K1, d)`` (a copy)."""
        return self._m1.clone()

    @property
    def covs1(self) -> Tensor:
        """Component covariances of ``rho1``, shape ``(K1, d, d)`` (a copy)."""
        return self._c1.clone()

    def __repr__(self) -> str:
        k0, k1 = self.n_components
        return (
            f"{type(self).__name__}(dim={self.dim}, n_components=({k0}, {k1}), "
            f"interpolant={self._interpolant!r})"
        )

    # ------------------------------------------------------------------ internals

    def _coefficients(self, t: Tensor) -> dict[str, Tensor]:
        """``a, b, g`` and their derivatives at times ``t`` (shape ``(m,)``)."""
        ip = self._interpolant
        out = {
            "a": ip.alpha(t), "b": ip.beta(t), "g": ip.gamma(t),
            "da": ip.dalpha(t), "db": ip.dbeta(t), "dg": ip.dgamma(t),
        }  # fmt: skip
        for key, val in out.items():
            if not isinstance(val, Tensor) or val.shape != t.shape:
                got = tuple(val.shape) if isinstance(val, Tensor) else type(val).__name__
                raise ValueError(
                    "the closed forms need an interpolant whose coefficients are one scalar "
                    f"per time; for t of shape {tuple(t.shape)} coefficient {key!r} of "
                    f"{ip!r} has shape {got}"
                )
        return out

    def _inputs(self, x: Any, t: Any) -> tuple[Tensor, Tensor, Any, dict[str, Tensor]]:
        """Validate ``x`` and ``t``; return tensors, the array-type round trip and params."""
        xt, back = as_tensor(x, "x", ndim=2, dim=self.dim)
        tt = _times(t, xt.shape[0]).to(dtype=xt.dtype, device=xt.device)
        tt = tt.reshape(1) if tt.ndim == 0 else tt
        return xt, tt, back, self._params(xt)

    def _params(self, like: Tensor) -> dict[str, Tensor]:
        kw: dict[str, Any] = {"dtype": like.dtype, "device": like.device}
        return {
            "logw": self._logw.to(**kw), "m0": self._pm0.to(**kw), "m1": self._pm1.to(**kw),
            "c0": self._pc0.to(**kw), "c1": self._pc1.to(**kw),
        }  # fmt: skip

    def _components(
        self, x: Tensor, t: Tensor, p: dict[str, Tensor], *, need_velocity: bool
    ) -> dict[str, Tensor]:
        """Per-pair quantities; batch dims ``(n, K)`` (``m`` = 1 or ``n`` time rows)."""
        c = self._coefficients(t)
        col, mat = (lambda s: s[:, None, None]), (lambda s: s[:, None, None, None])
        d = x.shape[1]
        eye = torch.eye(d, dtype=x.dtype, device=x.device)
        mean = col(c["a"]) * p["m0"] + col(c["b"]) * p["m1"]  # (m, K, d)
        cov = (
            mat(c["a"] ** 2) * p["c0"] + mat(c["b"] ** 2) * p["c1"] + mat(c["g"] ** 2) * eye
        )  # (m, K, d, d)
        chol, info = torch.linalg.cholesky_ex(cov)
        if bool((info > 0).any()):
            bad = int(torch.nonzero(info > 0)[0, 0])
            raise ValueError(
                "C_ij(t) = alpha^2 C0_i + beta^2 C1_j + gamma^2 I is not positive definite "
                f"at t={float(t[bad]):.6g} (alpha={float(c['a'][bad]):.3g}, "
                f"beta={float(c['b'][bad]):.3g}, gamma={float(c['g'][bad]):.3g}); the "
                "interpolant must not vanish"
            )
        r = (x[:, None, :] - mean).unsqueeze(-1)  # (n, K, d, 1)
        y = torch.linalg.solve_triangular(chol, r, upper=False)
        s = torch.linalg.solve_triangular(chol.mT, y, upper=True).squeeze(-1)  # C^-1 (x - m)
        half_logdet = torch.diagonal(chol, dim1=-2, dim2=-1).log().sum(-1)  # (m, K)
        log_joint = (
            p["logw"]
            - 0.5 * y.squeeze(-1).pow(2).sum(-1)
            - half_logdet
            - 0.5 * d * math.log(2.0 * math.pi)
        )  # (n, K)
        out = {"log_joint": log_joint, "s": s}
        if need_velocity:
            dmean = col(c["da"]) * p["m0"] + col(c["db"]) * p["m1"]  # (m, K, d)
            half_dcov = (
                mat(c["a"] * c["da"]) * p["c0"]
                + mat(c["b"] * c["db"]) * p["c1"]
                + mat(c["g"] * c["dg"]) * eye
            )  # (m, K, d, d)
            out["u"] = dmean + (half_dcov @ s.unsqueeze(-1)).squeeze(-1)  # (n, K, d)
        return out

    # ------------------------------------------------------------------ public evaluations

    def velocity(self, x: Any, t: Any) -> Any:
        r"""Exact velocity :math:`v_t(x) = E[\dot x_t \mid x_t = x]`.

        .. math::

            v_t(x) = \sum_{ij} w_{ij}(x) \Big[\dot m_{ij} + \tfrac12 \dot C_{ij}
            C_{ij}^{-1} (x - m_{ij})\Big].

        Args:
            x: points, shape ``(n, d)`` (numpy, torch or xarray).
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``.

        Returns:
            Velocities of shape ``(n, d)``, in the caller's array type and ``x``'s dtype.

        Raises:
            TypeError: non-array or non-floating ``x`` or ``t``.
            ValueError: wrong shapes, NaN/Inf, ``t`` outside ``[0, 1]``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(1), torch.eye(1), torch.ones(1), torch.eye(1), "linear")
            >>> gmi.velocity(torch.zeros(3, 1, dtype=torch.float64), 0.5).flatten().tolist()
            [1.0, 1.0, 1.0]
        """
        xt, tt, back, p = self._inputs(x, t)
        comp = self._components(xt, tt, p, need_velocity=True)
        w = torch.softmax(comp["log_joint"], dim=-1)
        return back((w.unsqueeze(-1) * comp["u"]).sum(-2))

    __call__ = velocity

    def log_prob(self, x: Any, t: Any) -> Any:
        r"""Log density :math:`\log \rho_t(x) = \log \sum_{ij} p_i q_j \mathcal N_{ij}(x)`.

        Args:
            x: points, shape ``(n, d)``.
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``.

        Returns:
            Log densities of shape ``(n,)``.

        Raises:
            TypeError: non-array or non-floating ``x`` or ``t``.
            ValueError: wrong shapes, NaN/Inf, ``t`` outside ``[0, 1]``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), "trig")
            >>> round(float(gmi.log_prob(torch.zeros(1, 1, dtype=torch.float64), 0.3)), 6)
            -0.918939
        """
        xt, tt, back, p = self._inputs(x, t)
        comp = self._components(xt, tt, p, need_velocity=False)
        return back(torch.logsumexp(comp["log_joint"], dim=-1))

    def score(self, x: Any, t: Any) -> Any:
        r"""Score :math:`\nabla_x \log \rho_t(x) = -\sum_{ij} w_{ij}(x) C_{ij}^{-1}(x - m_{ij})`.

        Args:
            x: points, shape ``(n, d)``.
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``.

        Returns:
            Scores of shape ``(n, d)``.

        Raises:
            TypeError: non-array or non-floating ``x`` or ``t``.
            ValueError: wrong shapes, NaN/Inf, ``t`` outside ``[0, 1]``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(2), "trig")
            >>> gmi.score(torch.ones(1, 2, dtype=torch.float64), 0.0).tolist()
            [[-1.0, -1.0]]
        """
        xt, tt, back, p = self._inputs(x, t)
        comp = self._components(xt, tt, p, need_velocity=False)
        w = torch.softmax(comp["log_joint"], dim=-1)
        return back(-(w.unsqueeze(-1) * comp["s"]).sum(-2))

    def _time(self, t: Any) -> tuple[Tensor, bool]:
        tt = _times(t).to(dtype=self._m0.dtype, device=self._m0.device)
        return (tt.reshape(1), True) if tt.ndim == 0 else (tt, False)

    def mean(self, t: Any) -> Tensor:
        r"""Exact mean :math:`E[x_t] = a(t) E[x_0] + b(t) E[x_1]` of :math:`\rho_t`.

        Args:
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``.

        Returns:
            Tensor of shape ``(d,)`` for a scalar ``t``, ``(n, d)`` otherwise, in the
            parameters' dtype and device.

        Raises:
            TypeError, ValueError: bad ``t``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2), "linear")
            >>> gmi.mean(0.25).tolist()
            [0.25, 0.25]
        """
        tt, scalar = self._time(t)
        c = self._coefficients(tt)
        out = c["a"][:, None] * self._mean0 + c["b"][:, None] * self._mean1
        return out[0] if scalar else out

    def cov(self, t: Any) -> Tensor:
        r"""Exact covariance :math:`a^2 \mathrm{Cov}(x_0) + b^2 \mathrm{Cov}(x_1) + g^2 I`.

        Exact because :math:`x_0, x_1, z` are independent; :math:`\operatorname{Cov}(x_k)` is
        the mixture covariance :math:`\sum_i p_i (C_i + \mu_i \mu_i^\top) - \bar\mu \bar\mu^\top`.

        Args:
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``.

        Returns:
            Tensor of shape ``(d, d)`` for a scalar ``t``, ``(n, d, d)`` otherwise.

        Raises:
            TypeError, ValueError: bad ``t``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(1), torch.eye(1), torch.zeros(1), torch.eye(1), "trig")
            >>> round(float(gmi.cov(0.3)[0, 0]), 12)
            1.0
        """
        tt, scalar = self._time(t)
        c = self._coefficients(tt)
        eye = torch.eye(self.dim, dtype=self._m0.dtype, device=self._m0.device)
        sq = lambda s: (s**2)[:, None, None]  # noqa: E731
        out = sq(c["a"]) * self._cov0 + sq(c["b"]) * self._cov1 + sq(c["g"]) * eye
        return out[0] if scalar else out

    def sample(self, n: int, t: Any = 1.0, *, generator: torch.Generator | None = None) -> Tensor:
        r"""Draw :math:`x_t = a x_0 + b x_1 + g z` with independent :math:`x_0, x_1, z`.

        Args:
            n: number of samples.
            t: time in ``[0, 1]``: a float, a 0-d tensor or shape ``(n,)``; ``t = 0`` draws
                from ``rho0`` and ``t = 1`` (default) from ``rho1``.
            generator: torch random generator (the global RNG is never seeded). Default ``None``.

        Returns:
            Samples of shape ``(n, d)`` in the parameters' dtype and device.

        Raises:
            TypeError, ValueError: bad ``n`` or ``t``.

        Example:
            >>> import torch
            >>> gmi = GaussianMixtureInterpolation.from_gaussians(
            ...     torch.zeros(2), torch.eye(2), torch.ones(2), torch.eye(2))
            >>> tuple(gmi.sample(7, 0.5, generator=torch.Generator().manual_seed(0)).shape)
            (7, 2)
        """
        n = check_positive_int(n, "n")
        tt = _times(t, n).to(dtype=self._m0.dtype, device=self._m0.device)
        x0 = _sample_mixture(self._w0, self._m0, self._c0, n, generator)
        x1 = _sample_mixture(self._w1, self._m1, self._c1, n, generator)
        c = self._coefficients(tt.reshape(1) if tt.ndim == 0 else tt)
        xt = c["a"][:, None] * x0 + c["b"][:, None] * x1
        if self._interpolant.stochastic:
            z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
            xt = xt + c["g"][:, None] * z
        return xt


def _times(t: Any, n: int | None = None) -> Tensor:
    """Validate times (on a detached view, so no autograd warning); keep a tensor's graph."""
    if isinstance(t, Tensor):
        check_times(t.detach(), "t", n=n)
        return t
    return check_times(t, "t", n=n)


def _mixture_cov(w: Tensor, m: Tensor, c: Tensor, mean: Tensor) -> Tensor:
    second = torch.einsum("k,kij->ij", w, c + m[:, :, None] * m[:, None, :])
    return second - torch.outer(mean, mean)


def _sample_mixture(
    w: Tensor, m: Tensor, c: Tensor, n: int, generator: torch.Generator | None
) -> Tensor:
    idx = torch.multinomial(w, n, replacement=True, generator=generator)
    chol = torch.linalg.cholesky(c)[idx]  # (n, d, d)
    z = torch.randn(m[idx].shape, generator=generator, dtype=m.dtype, device=m.device)
    return m[idx] + (chol @ z.unsqueeze(-1)).squeeze(-1)
