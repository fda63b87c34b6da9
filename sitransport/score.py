r"""Scores from velocities for Gaussian bases, and an SDE sampler built on them.

For ``x0 ~ N(0, I)`` independent of ``x1`` and :math:`x_t = \alpha x_0 + \beta x_1`,
the velocity :math:`v = \dot\alpha\,\mathbb{E}[x_0|x_t] + \dot\beta\,\mathbb{E}[x_1|x_t]`
and :math:`x_t = \alpha\,\mathbb{E}[x_0|x_t] + \beta\,\mathbb{E}[x_1|x_t]` give the denoiser

.. math::

    \eta_0(x) = \mathbb{E}[x_0 \mid x_t = x]
    = \frac{\beta\, v_t(x) - \dot\beta\, x}{\beta\dot\alpha - \dot\beta\alpha},
    \qquad \nabla\log\rho_t(x) = -\frac{\eta_0(x)}{\alpha}

(Tweedie's formula; for ``trig`` the denominator is :math:`-\pi/2`). With the score, for any
:math:`\epsilon(t) \ge 0` the SDE
:math:`dX = [v + \epsilon\, \nabla\log\rho_t]\,dt + \sqrt{2\epsilon}\, dW` has the same
marginals :math:`\rho_t` as the ODE.

Near ``t = 1`` the score estimate divides by :math:`\alpha(t) \to 0`: :func:`score_from_velocity`
refuses times with :math:`\alpha(t)` below ``alpha_min`` (a ``ValueError`` naming the largest
admissible time) instead of returning silent infinities, and the default noise schedule
:math:`\epsilon(t) = \epsilon_0\,\alpha(t)^2` vanishes there, so the SDE's drift
:math:`\epsilon\nabla\log\rho_t = -\epsilon_0\alpha\,\eta_0` stays bounded.

References:
    Albergo & Vanden-Eijnden, arXiv:2209.15571, Sec. 2.4 and App. B.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from sitransport.errors import TransportError
from sitransport.interpolants import Interpolant, broadcast_coefficient

__all__ = ["denoiser_from_velocity", "score_from_velocity", "sde_integrate"]

#: Relative size below which a difference of two products counts as zero (cancelled).
_CANCEL = 1e-6


def denoiser_from_velocity(
    v: Tensor, x: Tensor, t: Tensor, interpolant: Interpolant, shift: Tensor | None = None
) -> Tensor:
    r""":math:`\eta_0 = \mathbb{E}[x_0 | x_t = x]` from the velocity ``v`` at ``(x, t)``.

    Args:
        v: velocities at ``x``, shape ``(n, d)``.
        x: points, shape ``(n, d)``.
        t: times, shape ``(n,)`` or scalar.
        interpolant: a deterministic spatially linear interpolant with scalar coefficients.
        shift: ``m`` when the process is :math:`\alpha x_0 + \beta x_1 + (1 - \alpha - \beta) m`
            (the path of flows saved in file format version 1 with a normalisation); ``None``
            for the interpolant itself.

    Returns:
        :math:`\eta_0`, shape ``(n, d)``. Where :math:`\beta(t) = 0` (at ``t = 0``, where
        :math:`x_t = \alpha x_0`) it is the limit :math:`x / \alpha`, also when the
        denominator :math:`\beta\dot\alpha - \dot\beta\alpha` vanishes there (e.g.
        ``Custom(lambda t: 1 - t**2, lambda t: t**2)``, whose denominator is :math:`-2t`).

    Raises:
        ValueError: the denominator vanishes (cancels to below ``1e-6`` of its terms) at a
            time with :math:`\beta(t) \neq 0`; the message names the interpolant and the time.

    Example:
        For ``rho0 = rho1 = N(0, I)`` and ``trig`` the exact velocity is zero and
        :math:`\mathbb{E}[x_0 | x_t = x] = \cos(\pi t / 2)\, x`:

        >>> import torch
        >>> from sitransport.interpolants import Trig
        >>> x = torch.tensor([[1.0, -2.0]], dtype=torch.float64)
        >>> eta0 = denoiser_from_velocity(torch.zeros_like(x), x, torch.tensor(0.5), Trig())
        >>> [round(e, 4) for e in eta0[0].tolist()]  # cos(pi / 4) x
        [0.7071, -1.4142]
    """
    a, b = interpolant.alpha(t), interpolant.beta(t)
    da, db = interpolant.dalpha(t), interpolant.dbeta(t)
    if shift is not None:  # remove the deterministic part c(t) m, c = 1 - alpha - beta
        c, dc = 1.0 - a, -da
        c, dc = c - b, dc - db
        x = x - broadcast_coefficient(c, t, x) * shift
        v = v - broadcast_coefficient(dc, t, v) * shift
    wronskian = b * da - db * a
    # x_t = alpha x0 where beta = 0 (t = 0): there E[x0 | x_t = x] = x / alpha, the limit of
    # the formula, whose denominator may vanish there (e.g. alpha = 1 - t^2, beta = t^2)
    singular = wronskian.abs() <= _CANCEL * ((b * da).abs() + (db * a).abs())
    limit = singular & (b.abs() <= _CANCEL * a.abs())
    _check_denominator(singular & ~limit, t, interpolant)
    safe = torch.where(singular, torch.ones_like(wronskian), wronskian)
    eta0 = (
        broadcast_coefficient(b, t, v) * v - broadcast_coefficient(db, t, x) * x
    ) / broadcast_coefficient(safe, t, x)
    if bool(limit.any()):
        eta0 = torch.where(
            broadcast_coefficient(limit, t, x), x / broadcast_coefficient(a, t, x), eta0
        )
    return eta0


def _check_denominator(bad: Tensor, t: Tensor, interpolant: Interpolant) -> None:
    r"""Refuse times where :math:`\beta\dot\alpha - \dot\beta\alpha` vanishes with
    :math:`\beta \neq 0`: :math:`\eta_0` is not determined by the velocity there."""
    if not bool(bad.any()):
        return
    if t.ndim == 0:
        where = float(t)
    else:
        where = float(t[bad.reshape(bad.shape[0], -1).any(1)][0])
    raise ValueError(
        f"the score/denoiser of interpolant {interpolant!r} divides by "
        f"beta(t) alpha'(t) - beta'(t) alpha(t), which vanishes at t={where:.6g}: the velocity "
        "does not determine E[x0 | x_t] there. Use other times, or an interpolant whose "
        "denominator does not vanish on (0, 1]"
    )


def score_from_velocity(
    v: Tensor,
    x: Tensor,
    t: Tensor,
    interpolant: Interpolant,
    shift: Tensor | None = None,
    *,
    alpha_min: float = 1e-3,
) -> Tensor:
    r"""Score :math:`\nabla\log\rho_t(x) = -\eta_0 / \alpha` for a standard Gaussian base.

    Args:
        v: velocities at ``x``, shape ``(n, d)``.
        x: points, shape ``(n, d)``.
        t: times, shape ``(n,)`` or scalar.
        interpolant: a deterministic spatially linear interpolant with scalar coefficients.
        shift: as in :func:`denoiser_from_velocity`. Default ``None``.
        alpha_min: smallest admissible :math:`\alpha(t)`. Default ``0.001``.

    Returns:
        The score, shape ``(n, d)``.

    Raises:
        ValueError: some :math:`\alpha(t) <` ``alpha_min`` (the estimate is singular at
            ``t = 1``); the message names the offending time. Or the denominator of
            :func:`denoiser_from_velocity` vanishes at a time with :math:`\beta(t) \neq 0`
            (the message names the interpolant and the time).

    Example:
        For ``rho0 = rho1 = N(0, I)`` the velocity of ``trig`` is zero and every
        :math:`\rho_t = N(0, I)`, whose score is :math:`-x`:

        >>> import torch
        >>> from sitransport.interpolants import Trig
        >>> x = torch.tensor([[1.0, -2.0], [0.5, 0.0]], dtype=torch.float64)
        >>> t = torch.tensor([0.2, 0.7], dtype=torch.float64)
        >>> score_from_velocity(torch.zeros_like(x), x, t, Trig())
        tensor([[-1.0000,  2.0000],
                [-0.5000,  0.0000]], dtype=torch.float64)
    """
    a = interpolant.alpha(t)
    if bool((a < alpha_min).any()):
        bad = float(t.max()) if t.ndim else float(t)
        raise ValueError(
            f"the score from the velocity divides by alpha(t), which is {float(a.min()):.3g} "
            f"< alpha_min={alpha_min:g} at t={bad:.6g}; it is singular at t = 1. Use times "
            "with alpha(t) >= alpha_min (e.g. t <= 0.999 for 'trig' and 'linear')"
        )
    eta0 = denoiser_from_velocity(v, x, t, interpolant, shift)
    return -eta0 / broadcast_coefficient(a, t, x)


def sde_integrate(
    drift: Callable[[Tensor, Tensor], Tensor],
    eps: Callable[[Tensor], Tensor],
    x: Tensor,
    t0: float,
    t1: float,
    steps: int,
    generator: torch.Generator,
    *,
    scheme: str = "heun",
) -> Tensor:
    r"""Integrate :math:`dX = b(X, t)\,dt + \sqrt{2\epsilon(t)}\,dW` on a uniform grid.

    Args:
        drift: ``b(x, t)`` with ``t`` a scalar tensor.
        eps: the noise schedule ``epsilon(t) >= 0``.
        x: initial states at ``t0``, shape ``(n, ...)``.
        t0: start time.
        t1: end time.
        steps: number of uniform steps.
        generator: random source of the Brownian increments.
        scheme: ``"euler"`` (Euler–Maruyama, strong order 1/2) or ``"heun"`` (stochastic
            Heun: a predictor–corrector on the drift with the same noise increment; order 1
            in the drift, exact for additive noise).

    Returns:
        The states at ``t1``, shape of ``x``.

    Raises:
        TransportError: the state became non-finite (the message names the time and what
            to try).

    Example:
        The Ornstein–Uhlenbeck process :math:`dX = -X dt + \sqrt 2 dW` keeps ``N(0, 1)``:

        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> x = torch.randn(20_000, 1, generator=g, dtype=torch.float64)
        >>> y = sde_integrate(lambda x, t: -x, lambda t: torch.ones_like(t), x, 0.0, 1.0, 20, g)
        >>> y.shape, round(float(y.var()), 1)
        (torch.Size([20000, 1]), 1.0)
    """
    if scheme not in ("euler", "heun"):
        raise ValueError(f"unknown scheme {scheme!r}; valid values are: euler, heun")
    ts = torch.linspace(t0, t1, steps + 1, dtype=torch.float64)
    h = (t1 - t0) / steps
    for k in range(steps):
        t, t_next = ts[k].to(x), ts[k + 1].to(x)
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64).to(x)
        dw = noise * abs(h) ** 0.5
        b = drift(x, t)
        sigma = (2.0 * eps(t)).clamp_min(0).sqrt()
        if scheme == "euler":
            x = x + b * h + sigma * dw
        else:
            x_pred = x + b * h + sigma * dw
            b_next = drift(x_pred, t_next)
            sigma_next = (2.0 * eps(t_next)).clamp_min(0).sqrt()
            x = x + 0.5 * (b + b_next) * h + 0.5 * (sigma + sigma_next) * dw
        if not bool(torch.isfinite(x).all()):
            raise TransportError(
                f"the SDE solve from t={t0:g} to t={t1:g} ({steps} {scheme} steps) failed: the "
                f"state became non-finite (nan or inf) in the step to t={float(t_next):.6g}. Try: "
                "more steps, a smaller eps, fit with dtype=torch.float64, or check the "
                "network's weights for nan/inf (e.g. after training with too large an lr)"
            )
    return x
