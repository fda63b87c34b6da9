r"""Entropic and unbalanced optimal transport through geomloss, in torch on the batches'
device: :class:`EntropicOT` pairs each batch by its entropic plan; the solver helpers
(:func:`solve_potentials`, :func:`draw_partners`) are shared with the global plans of
:mod:`~sitransport.couplings.entropic_plan`.

**The plan.** For the cost :math:`C(x, y) = |x - y|^2 / 2` (geomloss's ``p=2``) and
:math:`\varepsilon = \mathrm{blur}^2`, geomloss's Sinkhorn loop (with its epsilon annealing
from the diameter of the point clouds down to ``blur``) returns the dual potentials
:math:`(F, G)` of :math:`\mathrm{OT}_\varepsilon`, and the plan is

.. math::
    \pi_{ij} = a_i b_j \exp\big((F_i + G_j - C_{ij}) / \varepsilon\big).

It is never formed in full: each row's partner is drawn from
:math:`j \sim b_j \exp((G_j - C_{ij}) / \varepsilon)` in chunks of rows (inverse CDF with one
uniform per row, so results are deterministic under a generator).

**Blur and the exact plan.** Between densities with an optimal map :math:`T = \nabla\phi`,
the partner of ``x`` under the entropic plan is, for small :math:`\varepsilon`, approximately
:math:`\mathcal N(T(x), \varepsilon\, DT(x))`: for maps close to the identity ``blur`` is the
standard deviation of a partner around its exact-OT image, per coordinate, in the training
coordinates (normalised samples). The transport cost exceeds the exact one by about
:math:`\varepsilon\, \mathrm{tr}\, DT` (``d * blur**2`` for the squared distance when
:math:`DT \approx I`).

**Convergence.** geomloss's loop does one (symmetrised) Sinkhorn update per annealing step,
enough for its loss but not for the plan's marginals: ``iterations`` further updates at the
final ``blur`` are appended to its schedule. Rows are exact by construction (every ``x0``
gets one partner); the columns' marginal error (total variation) is what the extra
iterations reduce; it is largest when ``blur`` is below the spacing of the points (then the
plan is nearly a permutation and :class:`~sitransport.couplings.ExactOT` is the better
tool).

**Unbalanced transport** (``reach`` set, :math:`\rho = \mathrm{reach}^2`): the marginals are
penalised by :math:`\rho\,\mathrm{KL}` instead of imposed, so mass that would travel much
farther than ``reach`` is created or destroyed rather than transported. Pairs are drawn from
the plan normalised to mass one: rows in proportion to their plan mass
:math:`r_i = \sum_j \pi_{ij}` (with replacement; source mass that is not transported is not
trained on), then a partner from the row. A target outlier or an extra far cluster gets
little column mass, hence (almost) no partners.

References:
    Feydy et al., Interpolating between optimal transport and MMD using Sinkhorn divergences
    (AISTATS 2019, arXiv:1810.08278); Séjourné et al., Sinkhorn divergences for unbalanced
    optimal transport, arXiv:1910.12958; Janati et al., Entropic optimal transport between
    unbalanced Gaussian measures has a closed form, arXiv:2006.02572.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import Tensor

from sitransport._geomloss import legacy
from sitransport._validation import check_choice, check_positive, check_positive_int
from sitransport.couplings.base import Coupling

# Potentials, solve_potentials, draw_partners and draw_rows are shared with entropic_plan
__all__ = ["EntropicOT"]

#: Solver backends: geomloss's dense softmin, KeOps (``pykeops``), or torch in row chunks.
BACKENDS = ("auto", "chunked", "online", "tensorized")
#: Largest cost matrix (entries) the ``auto`` backend forms in full.
DENSE_MAX = 2**22
#: Entries of one row chunk of the cost matrix (16 MB in float32).
CHUNK = 2**22


@dataclass(frozen=True)
class Potentials:
    """The dual potentials of :math:`\\mathrm{OT}_\\varepsilon` between two point sets with
    uniform weights: ``x0 (n0, d)``, ``x1 (n1, d)``, ``f (n0,)``, ``g (n1,)``, ``eps`` and
    ``rho`` (``None``: balanced)."""

    x0: Tensor
    x1: Tensor
    f: Tensor
    g: Tensor
    eps: float
    rho: float | None

    def scores(self, rows: Tensor) -> Tensor:
        """``log b_j + (g_j - C_ij) / eps`` for the rows ``rows`` (indices), up to a constant
        per row: ``(len(rows), n1)``."""
        x0, x1, eps = self.x0[rows], self.x1, self.eps
        h = self.g / eps - 0.5 * x1.pow(2).sum(1) / eps - math.log(x1.shape[0])
        return torch.addmm(h.unsqueeze(0), x0, x1.T, alpha=1.0 / eps)

    def row_constant(self, rows: Tensor) -> Tensor:
        """The per-row term left out of :meth:`scores`: ``-|x0_i|^2 / (2 eps)``."""
        return -0.5 * self.x0[rows].pow(2).sum(1) / self.eps

    def log_row_mass(self, chunk: int = CHUNK) -> Tensor:
        """``log r_i``, ``r_i = sum_j pi_ij`` (``1/n0`` for a converged balanced plan)."""
        n0 = self.x0.shape[0]
        out = []
        for rows in _chunks(n0, chunk // max(self.x1.shape[0], 1), self.x0.device):
            lse = self.scores(rows).logsumexp(1) + self.row_constant(rows)
            out.append(lse + self.f[rows] / self.eps - math.log(n0))
        return torch.cat(out)


def _chunks(n: int, size: int, device: torch.device) -> list[Tensor]:
    size = max(size, 1)
    return [torch.arange(i, min(i + size, n), device=device) for i in range(0, n, size)]


def _softmin_chunked(eps: float, c_xy: tuple[Tensor, Tensor], h_y: Tensor) -> Tensor:
    """geomloss's soft C-transform ``-eps log sum_j exp(h_j - C_ij / eps)`` for
    ``C = |x - y|^2 / 2``, in row chunks of the cost matrix (memory ``CHUNK`` entries)."""
    x, y = c_xy
    h = h_y.reshape(-1) - 0.5 * y.pow(2).sum(1) / eps
    size = max(CHUNK // max(y.shape[0], 1), 1)
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for i in range(0, x.shape[0], size):
        xi = x[i : i + size]
        s = torch.addmm(h.unsqueeze(0), xi, y.T, alpha=1.0 / eps).logsumexp(1)
        out[i : i + size] = -eps * (s - 0.5 * xi.pow(2).sum(1) / eps)
    return out


def _keops_available() -> bool:
    try:
        import pykeops.torch  # noqa: F401
    except ImportError:
        return False
    return True


def _backend(name: str, n0: int, n1: int) -> str:
    if name != "auto":
        return name
    if n0 * n1 <= DENSE_MAX:
        return "tensorized"
    return "online" if _keops_available() else "chunked"


def solve_potentials(
    x0: Tensor,
    x1: Tensor,
    *,
    blur: float,
    reach: float | None = None,
    scaling: float = 0.9,
    iterations: int = 50,
    backend: str = "auto",
) -> Potentials:
    """The dual potentials of the entropic (or unbalanced) OT problem between two point sets
    with uniform weights, by geomloss's Sinkhorn loop on their device and in their dtype.

    Args:
        x0: points ``(n0, d)``.
        x1: points ``(n1, d)``.
        blur: ``eps = blur**2`` for the cost ``|x - y|^2 / 2``.
        reach: ``rho = reach**2``; ``None`` for balanced OT. Default ``None``.
        scaling: geomloss's annealing ratio of successive blurs. Default ``0.9``.
        iterations: Sinkhorn updates at the final blur after the annealing. Default ``50``.
        backend: ``"tensorized"``, ``"online"`` (KeOps), ``"chunked"`` or ``"auto"``.

    Returns:
        A :class:`Potentials`.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [1.0]], dtype=torch.float64)
        >>> pot = solve_potentials(x, x + 0.5, blur=0.1)
        >>> pot.f.shape, pot.g.shape, round(pot.eps, 4)
        (torch.Size([2]), torch.Size([2]), 0.01)
    """
    divergence, samples = legacy()
    n0, n1 = x0.shape[0], x1.shape[0]
    eps, rho = blur**2, None if reach is None else reach**2
    diameter = max(divergence.max_diameter(x0, x1), blur)
    schedule = list(divergence.epsilon_schedule(2, diameter, blur, scaling)) + [eps] * iterations
    kind = _backend(backend, n0, n1)
    a_log = torch.full((n0,), -math.log(n0), dtype=x0.dtype, device=x0.device)
    b_log = torch.full((n1,), -math.log(n1), dtype=x1.dtype, device=x1.device)
    if kind == "tensorized":
        c_xy = (0.5 * torch.cdist(x0, x1).pow(2)).unsqueeze(0)
        softmin: Any = samples.softmin_tensorized
        costs: Any = (c_xy, c_xy.transpose(1, 2))
        a_log, b_log = a_log.unsqueeze(0), b_log.unsqueeze(0)
    elif kind == "online":
        if not _keops_available():
            raise ImportError("backend='online' needs pykeops (pip install 'sitransport[keops]')")
        softmin = partial(
            samples.softmin_online,
            log_conv=samples.lse_genred("(SqDist(X,Y) / IntCst(2))", x0.shape[1]),
        )
        costs = ((x0, x1), (x1, x0))
    else:
        softmin, costs = _softmin_chunked, ((x0, x1), (x1, x0))
    with torch.no_grad():  # the loop toggles grad mode; restored on exit
        _, _, g, f = divergence.sinkhorn_loop(
            softmin, a_log, b_log, None, None, *costs, schedule, rho, debias=False
        )
    return Potentials(x0, x1, f.reshape(-1), g.reshape(-1), eps, rho)


def _uniforms(n: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
    """``n`` uniforms from ``generator`` (drawn on its device, the CPU for a run's
    generator), moved to ``like``'s device and dtype."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    u = torch.rand(n, generator=generator, dtype=torch.float64, device=gen_device)
    return u.to(device=like.device, dtype=like.dtype)


def draw_partners(
    pot: Potentials, rows: Tensor, generator: torch.Generator | None, chunk: int = CHUNK
) -> Tensor:
    """One partner ``j ~ b_j exp((g_j - C_ij) / eps)`` for each row index in ``rows``
    (repeats allowed: independent draws), in chunks of rows; ``(len(rows),)`` indices.

    Example:
        >>> import torch
        >>> x = torch.tensor([[0.0], [5.0]], dtype=torch.float64)
        >>> pot = solve_potentials(x, x.flip(0) + 0.1, blur=0.1)
        >>> draw_partners(pot, torch.arange(2), torch.Generator().manual_seed(0)).tolist()
        [1, 0]
    """
    n1 = pot.x1.shape[0]
    u = _uniforms(rows.shape[0], generator, pot.x1)
    out = torch.empty(rows.shape[0], dtype=torch.long, device=pot.x1.device)
    size = max(chunk // max(n1, 1), 1)
    for i in range(0, rows.shape[0], size):
        cdf = torch.softmax(pot.scores(rows[i : i + size]), 1).cumsum(1)
        pick = torch.searchsorted(cdf, (u[i : i + size] * cdf[:, -1]).unsqueeze(1))
        out[i : i + size] = pick.squeeze(1).clamp_max(n1 - 1)
    return out


def draw_rows(pot: Potentials, m: int, generator: torch.Generator | None) -> Tensor:
    """``m`` row indices: ``arange(n0)`` for a balanced plan (``m == n0``: every row once),
    else drawn with replacement in proportion to the rows' plan mass."""
    n0 = pot.x0.shape[0]
    if pot.rho is None and m == n0:
        return torch.arange(n0, device=pot.x0.device)
    mass = torch.softmax(pot.log_row_mass().double(), 0).cpu()
    idx = torch.multinomial(mass, m, replacement=True, generator=_cpu(generator))
    return idx.to(pot.x0.device)


def _cpu(generator: torch.Generator | None) -> torch.Generator | None:
    if generator is None or generator.device.type == "cpu":
        return generator
    raise ValueError(f"generator must be a CPU generator, got one on {generator.device}")


def check_settings(blur: Any, reach: Any, scaling: Any, iterations: Any, backend: Any) -> None:
    """Check the solver settings shared by the entropic couplings.

    Raises:
        TypeError, ValueError: naming the setting, with what was expected and received.
    """
    check_positive(blur, "blur")
    if reach is not None:
        check_positive(reach, "reach")
    if isinstance(scaling, bool) or not isinstance(scaling, (int, float)):
        raise TypeError(f"scaling must be a number in (0, 1), got {scaling!r}")
    if not 0.0 < float(scaling) < 1.0:
        raise ValueError(f"scaling must be in (0, 1) (geomloss's annealing ratio), got {scaling}")
    check_positive_int(iterations, "iterations", minimum=0)
    check_choice(backend, "backend", BACKENDS)


def flat_points(x0: Tensor, x1: Tensor) -> tuple[Tensor, Tensor]:
    """The two batches as detached ``(n, d)`` points, checked.

    Raises:
        TypeError: not tensors, or integer dtypes.
        ValueError: empty, different sample shapes or devices, or non-finite values.
    """
    for x, name in ((x0, "x0"), (x1, "x1")):
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim < 2 or x.shape[0] < 1:
            raise ValueError(
                f"{name} must be samples of shape (n, ...) with n >= 1, got {tuple(x.shape)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {x.dtype}")
        if not bool(torch.isfinite(x).all()):
            raise ValueError(f"{name} must be finite (it holds NaN or inf values)")
    if x0.shape[1:] != x1.shape[1:]:
        raise ValueError(
            f"x0 and x1 must have the same sample shape, got {tuple(x0.shape[1:])} and "
            f"{tuple(x1.shape[1:])}"
        )
    if x0.device != x1.device:
        raise ValueError(f"x0 and x1 must be on one device, got {x0.device} and {x1.device}")
    a, b = x0.detach().flatten(1), x1.detach().flatten(1)
    return a, b.to(a.dtype)


@dataclass(frozen=True)
class EntropicOT(Coupling):
    r"""Entropic (``reach=None``) or unbalanced minibatch OT through geomloss, on the batches'
    device: each ``x0`` is paired with one ``x1`` drawn from its row of the batch's entropic
    plan (see :mod:`~sitransport.couplings.entropic` for the plan, the blur's meaning and the
    unbalanced semantics).

    Args:
        blur: the entropic scale in training units (normalised samples),
            :math:`\varepsilon = \mathrm{blur}^2` for the cost ``|x - y|^2 / 2``: about the
            standard deviation of a partner around its exact-OT image. Default ``0.1``
            (10% of the data's scale: a transport cost within about ``d * 0.01`` of exact
            OT's, while geomloss's Sinkhorn still converges in the ``iterations`` given).
        reach: unbalanced OT with :math:`\rho = \mathrm{reach}^2` (mass farther than about
            ``reach`` from any partner is not transported); ``None`` for balanced. Default
            ``None``.
        scaling: geomloss's epsilon-annealing ratio between successive blurs (from the
            diameter down to ``blur``). Default ``0.9``.
        iterations: Sinkhorn updates at the final ``blur`` after the annealing (geomloss does
            one per annealing step; the plan's marginals need more). Default ``50``.
        backend: ``"tensorized"`` (geomloss's dense cost matrix), ``"online"`` (KeOps, the
            optional ``keops`` extra), ``"chunked"`` (torch, rows in chunks) or ``"auto"``
            (dense up to ``2**22`` entries, else KeOps when installed, else chunked).
            Default ``"auto"``.

    Raises:
        TypeError, ValueError: a setting out of range (named).

    Example:
        >>> import torch
        >>> from sitransport.couplings import EntropicOT, get_coupling
        >>> x0, x1 = torch.tensor([[0.0], [10.0]]), torch.tensor([[10.5], [0.5]])
        >>> g = torch.Generator().manual_seed(0)
        >>> EntropicOT(blur=0.1).pair(x0, x1, g)[1].flatten().tolist()
        [0.5, 10.5]
        >>> get_coupling(EntropicOT(reach=1.0).spec()) == EntropicOT(reach=1.0)
        True
    """

    blur: float = 0.1
    reach: float | None = None
    scaling: float = 0.9
    iterations: int = 50
    backend: str = "auto"

    def __post_init__(self) -> None:
        check_settings(self.blur, self.reach, self.scaling, self.iterations, self.backend)

    def potentials(self, x0: Tensor, x1: Tensor) -> Potentials:
        """The dual potentials of this coupling's plan between two batches.

        Args:
            x0: batch of rho0, shape ``(n0, ...)`` (flattened to vectors for the cost).
            x1: batch of rho1, shape ``(n1, ...)``, same sample shape.

        Example:
            >>> import torch
            >>> pot = EntropicOT().potentials(torch.zeros(3, 2), torch.ones(4, 2))
            >>> pot.f.shape, pot.g.shape
            (torch.Size([3]), torch.Size([4]))
        """
        a, b = flat_points(x0, x1)
        return solve_potentials(
            a,
            b,
            blur=self.blur,
            reach=self.reach,
            scaling=self.scaling,
            iterations=self.iterations,
            backend=self.backend,
        )

    def pair(self, x0, x1, generator=None):
        start = time.perf_counter()
        pot = self.potentials(x0, x1)
        rows = draw_rows(pot, x0.shape[0], generator)
        cols = draw_partners(pot, rows, generator)
        self._record(time.perf_counter() - start)
        paired0 = x0 if self.reach is None else x0[rows]
        return paired0, x1[cols.to(x1.device)]

    def spec(self) -> dict[str, Any]:
        return {
            "name": "entropic",
            "blur": self.blur,
            "reach": self.reach,
            "scaling": self.scaling,
            "iterations": self.iterations,
            "backend": self.backend,
        }
