r"""Pairing within conditions: any :class:`~sitransport.couplings.Coupling` applied to a
batch of a conditional fit, so that pairs respect the condition (:func:`pair_within`,
:func:`submit_within`). The coupling itself is unchanged: it sees ordinary batches.

A conditional batch is ``n`` rows ``(x0[i], x1[i], codes[i])``: ``codes[i]`` is the condition
code of ``x1[i]`` (:class:`~sitransport.ends.ConditionEncoder`'s codes) and ``x0[i]`` a source
sample that may go with it (``x0`` drawn independently of the condition, or from the source
samples of the same condition). The result is again such rows, each ``x1`` with its own code.

- **Labels** (``labels=True``): the rows of each code are paired among themselves,
  ``coupling.pair(x0[I], x1[I])`` for the rows ``I`` of each code, and put back at rows ``I``:
  a block plan, one block per label, so every row keeps its code. A code held by one row
  keeps its pair; the null code (guidance) is one more label.
- **Features** (``labels=False``, codes ``(n, k + 1)``: standardised features and the
  presence column): the coupling pairs the augmented points
  :math:`(x, \sqrt{\lambda}\, c)`, i.e. it solves the cost

  .. math:: |x_0 - x_1|^2 + \lambda |c_0 - c_1|^2,

  where the source row ``i`` carries ``c0 = codes[i]`` (``x0`` is independent of the
  condition, so ``(x0[i], codes[i])`` is a draw of :math:`\rho_0 \otimes p(c)`). As
  :math:`\lambda \to \infty` the plan pairs only equal conditions (the conditional OT plan,
  Chemseddine et al., arXiv:2403.18705; Kerrigan et al., arXiv:2404.04240); at finite
  :math:`\lambda` a pair may join nearby conditions, and the output row carries the code of
  its ``x1`` (the target's condition). The presence column is part of ``c``: it costs
  nothing between present conditions, and null codes (all zeros) pair among themselves at
  large :math:`\lambda`. Images ``(n, c, h, w)`` are flattened for the
  augmentation; the returned points have their original shape.

**Which rows were paired.** The couplings return rows of their inputs as copies (indexing),
so the rows of the augmented batches the coupling returns are found exactly among its inputs
(a lexicographic sort, :func:`torch.unique`), and the result is built from the original
``x0``, ``x1`` and ``codes`` by those indices: nothing is recovered by rounding, and equal
rows are interchangeable. A coupling that returns other points (averages, projections)
cannot be used with features and raises ``ValueError``.

**The default weight.** :math:`\lambda = ` ``WEIGHT_PER_DIM`` :math:`\times d` with ``d``
the number of values of one sample: the squared distance of two unit-scale samples grows
like ``d`` (and :func:`~sitransport.fit` normalises ``x`` to unit scale and standardises the
features), so the weight keeps the same balance in every dimension. See ``WEIGHT_PER_DIM``
for the measurement that chose it.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from sitransport._validation import check_bool, check_positive
from sitransport.couplings.base import Coupling, Independent

__all__ = ["pair_within", "submit_within"]

#: Default weight of the condition term per value of a sample: ``lambda = 100 d``. Measured on
#: ``x1 | c ~ N(2 c, I)`` in ``d = 2``, ``c ~ U(-1, 1)`` standardised, ``x1`` normalised to
#: unit scale, source ``x0 ~ N(0, I)``, ExactOT on 200 batches of 256: ``dc`` is the mean
#: ``|c0 - c1|`` of the pairs (standardised units), ``cost`` the mean ``|x0 - x1|^2`` (the
#: conditional OT cost of the population is 1.381, independent pairs cost 4), ``corr`` the
#: correlation of ``x0`` with the paired ``c1``: zero when ``x0`` given the condition is still
#: ``rho0``, as the conditional flow needs (independent pairs give +0.005 on these draws):
#:
#: ============  ======  =====  ======
#: lambda / d    dc      cost   corr
#: ============  ======  =====  ======
#: 0 (plain OT)  1.147   0.286  +0.585
#: 1             0.308   0.917  +0.244
#: 10            0.070   1.634  +0.036
#: 100           0.025   2.036  +0.008
#: 1000          0.008   2.594  +0.005
#: 10000         0.002   3.247  +0.005
#: ============  ======  =====  ======
#:
#: At ``100 d`` the pairs join conditions 0.025 standard deviations apart, ``x0`` is as
#: uncorrelated with the condition as under independent pairs, and the batch keeps 75% of
#: the cost reduction conditional OT offers (4 -> 2.04, against 1.38); below it the pairs
#: bias the source given the condition (``corr`` 0.036 at ``10 d``), above it the pairing
#: tends to independent pairs within ever narrower conditions. In ``d = 8`` (population
#: cost 5.53, independent 16) ``100 d`` gives ``dc`` 0.023, cost 11.5 and ``corr`` 0.000.
WEIGHT_PER_DIM = 100.0

#: ``finish()`` of :func:`submit_within`: the paired ``(x0, x1, codes)``.
Finish = Callable[[], tuple[Tensor, Tensor, Tensor]]
Start = Callable[[Tensor, Tensor, "torch.Generator | None"], Callable[[], tuple[Tensor, Tensor]]]


def pair_within(
    coupling: Coupling,
    x0: Tensor,
    x1: Tensor,
    codes: Tensor,
    generator: torch.Generator | None = None,
    *,
    labels: bool,
    weight: float | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    r"""Pair a conditional batch with ``coupling``, within conditions (see the module).

    Args:
        coupling: any :class:`~sitransport.couplings.Coupling`; :class:`Independent`
            returns the batch as given (the same tensors).
        x0: source samples, shape ``(n, ...)``.
        x1: target samples, shape ``(n, ...)`` (the sample shape of ``x0``).
        codes: the condition code of each ``x1`` row: labels ``(n,)`` (any ids; rows with
            equal ids are paired together) or features ``(n, m)`` floats.
        generator: random source passed to the coupling. Default ``None``.
        labels: ``True`` for label codes (pairs within each label), ``False`` for feature
            codes (pairs under the cost ``|x0 - x1|^2 + weight |c0 - c1|^2``).
        weight: :math:`\lambda` of the feature cost, ``>= 0`` (``0`` ignores the
            condition). Default ``None``: ``WEIGHT_PER_DIM * d``, ``d`` the number of
            values of one sample. Features only.

    Returns:
        ``(x0, x1, codes)`` paired: ``n`` rows, ``codes[i]`` the code of the output ``x1[i]``.

    Raises:
        TypeError: ``coupling`` is not a Coupling, or an array is not a tensor.
        ValueError: shapes that do not match (named), ``weight`` negative, not finite or given
            with labels, or (features) a coupling that returns points not among its inputs.

    Example:
        >>> import torch
        >>> from sitransport.couplings import ExactOT
        >>> x0 = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
        >>> x1 = torch.tensor([[11.5], [0.5], [10.5], [1.5]])
        >>> codes = torch.tensor([1, 0, 1, 0])  # x1's labels
        >>> a, b, c = pair_within(ExactOT(processes=0), x0, x1, codes, labels=True)
        >>> b.flatten().tolist(), c.tolist()  # plain OT would give [0.5, 1.5, 10.5, 11.5]
        ([10.5, 0.5, 11.5, 1.5], [1, 0, 1, 0])
    """
    return _submit(coupling, x0, x1, codes, generator, labels, weight, submit=False)()


def submit_within(
    coupling: Coupling,
    x0: Tensor,
    x1: Tensor,
    codes: Tensor,
    generator: torch.Generator | None = None,
    *,
    labels: bool,
    weight: float | None = None,
) -> Finish:
    """Start :func:`pair_within` with ``coupling.submit`` (a worker process overlaps the
    solves with a training step where the coupling does so, all label blocks submitted at
    once); returns a function that completes it, with the same result as :func:`pair_within`.

    Args:
        coupling: any :class:`~sitransport.couplings.Coupling`.
        x0: source samples, shape ``(n, ...)``.
        x1: target samples, shape ``(n, ...)``.
        codes: the codes of the ``x1`` rows, labels ``(n,)`` or features ``(n, m)``.
        generator: random source passed to the coupling. Default ``None``.
        labels: label codes (``True``) or feature codes (``False``).
        weight: the feature cost's :math:`\\lambda`, as in :func:`pair_within`. Default
            ``None``.

    Returns:
        ``finish()`` returning the paired ``(x0, x1, codes)``.

    Raises:
        TypeError, ValueError: as :func:`pair_within` (shapes at once, the coupling's output
            when finishing).

    Example:
        >>> import torch
        >>> from sitransport.couplings import ExactOT
        >>> x0 = torch.tensor([[0.0], [10.0]])
        >>> x1, codes = torch.tensor([[10.5], [0.5]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])
        >>> finish = submit_within(ExactOT(), x0, x1, codes, labels=False)  # ... train a step
        >>> finish()[1].flatten().tolist()
        [0.5, 10.5]
    """
    return _submit(coupling, x0, x1, codes, generator, labels, weight, submit=True)


def _submit(
    coupling: Coupling,
    x0: Tensor,
    x1: Tensor,
    codes: Tensor,
    generator: torch.Generator | None,
    labels: bool,
    weight: float | None,
    *,
    submit: bool,
) -> Finish:
    labels = check_bool(labels, "labels")
    _check(coupling, x0, x1, codes, labels)
    if weight is not None:
        if labels:
            raise ValueError(
                f"weight applies to feature codes (labels=False) only, got weight={weight!r} "
                "with labels=True: labels are paired within each label"
            )
        weight = check_positive(weight, "weight", allow_zero=True)
    if isinstance(coupling, Independent):
        return lambda: (x0, x1, codes)
    start: Start = coupling.submit if submit else _in_place(coupling)
    if labels:
        return _within_labels(start, x0, x1, codes, generator)
    lam = WEIGHT_PER_DIM * x1[0].numel() if weight is None else weight
    return _within_features(start, x0, x1, codes, generator, lam)


def _in_place(coupling: Coupling) -> Start:
    def start(a: Tensor, b: Tensor, generator: torch.Generator | None):
        out = coupling.pair(a, b, generator)
        return lambda: out

    return start


def _check(coupling: Coupling, x0: Tensor, x1: Tensor, codes: Tensor, labels: bool) -> None:
    if not isinstance(coupling, Coupling):
        raise TypeError(
            f"coupling must be a sitransport.couplings.Coupling, got {type(coupling).__name__}"
        )
    for value, name in ((x0, "x0"), (x1, "x1"), (codes, "codes")):
        if not isinstance(value, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    for value, name in ((x0, "x0"), (x1, "x1")):
        if value.ndim < 2 or value.shape[0] < 1:
            raise ValueError(
                f"{name} must be samples of shape (n, ...) with n >= 1, got {tuple(value.shape)}"
            )
    if x0.shape != x1.shape:
        raise ValueError(
            f"x0 and x1 must have the same shape (row i of each is one pair), got "
            f"{tuple(x0.shape)} and {tuple(x1.shape)}"
        )
    n = x1.shape[0]
    if labels and (codes.ndim != 1 or codes.shape[0] != n):
        raise ValueError(
            f"codes must be labels of shape (n,) = ({n},), one per row of x1, got "
            f"{tuple(codes.shape)}"
        )
    if not labels and (codes.ndim != 2 or codes.shape[0] != n or not codes.is_floating_point()):
        raise ValueError(
            f"codes must be float features of shape (n, k + 1) with n = {n}, one row per row "
            f"of x1, got shape {tuple(codes.shape)} and dtype {codes.dtype}"
        )


def _within_labels(
    start: Start, x0: Tensor, x1: Tensor, codes: Tensor, generator: torch.Generator | None
) -> Finish:
    """Start the coupling on the rows of each code (two rows or more); the finish puts each
    block's pairs back at its rows."""
    _, inverse, counts = torch.unique(codes, return_inverse=True, return_counts=True)
    order = torch.argsort(inverse, stable=True).to(x0.device)
    blocks = [rows for rows in torch.split(order, counts.tolist()) if rows.numel() > 1]
    pending = [(rows, start(x0[rows], x1[rows], generator)) for rows in blocks]

    def finish() -> tuple[Tensor, Tensor, Tensor]:
        out0, out1 = x0.clone(), x1.clone()
        for rows, done in pending:
            a, b = done()
            for value, name in ((a, "x0"), (b, "x1")):
                if value.shape != (rows.numel(), *x1.shape[1:]):
                    raise ValueError(
                        f"coupling returned {name} of shape {tuple(value.shape)} for a label "
                        f"block of shape {(rows.numel(), *x1.shape[1:])}: pair_within needs "
                        "one pair per row"
                    )
            out0[rows], out1[rows] = a, b
        return out0, out1, codes

    return finish


def _within_features(
    start: Start,
    x0: Tensor,
    x1: Tensor,
    codes: Tensor,
    generator: torch.Generator | None,
    lam: float,
) -> Finish:
    """Start the coupling on the augmented points ``(x, sqrt(lam) c)``; the finish finds the
    rows it returned among its inputs and takes ``x0``, ``x1`` and ``codes`` by those rows."""
    dtype = torch.promote_types(x0.dtype, x1.dtype)
    c = codes.to(device=x1.device, dtype=dtype) * math.sqrt(lam)
    aug0 = torch.cat([x0.flatten(1).to(dtype), c], 1)
    aug1 = torch.cat([x1.flatten(1).to(dtype), c], 1)
    done = start(aug0, aug1, generator)

    def finish() -> tuple[Tensor, Tensor, Tensor]:
        p0, p1 = done()
        rows1 = _rows_among(p1, aug1, "x1")
        rows0 = None if p0 is aug0 else _rows_among(p0, aug0, "x0")
        out0 = x0 if rows0 is None else x0[rows0.to(x0.device)]
        return out0, x1[rows1.to(x1.device)], codes[rows1.to(codes.device)]

    return finish


def _rows_among(out: Tensor, given: Tensor, name: str) -> Tensor:
    """The index in ``given`` of each row of ``out`` (rows compared exactly; of equal rows,
    any one)."""
    if out.ndim != 2 or out.shape[1] != given.shape[1] or out.shape[0] != given.shape[0]:
        raise ValueError(
            f"coupling returned {name} of shape {tuple(out.shape)} for augmented points of "
            f"shape {tuple(given.shape)}: pair_within needs one pair per row"
        )
    both = torch.cat([given, out.to(device=given.device, dtype=given.dtype)])
    _, ids = torch.unique(both, dim=0, return_inverse=True)
    n = given.shape[0]
    first = torch.full((int(ids.max()) + 1,), -1, dtype=torch.long, device=ids.device)
    first[ids[:n]] = torch.arange(n, device=ids.device)
    rows = first[ids[n:]]
    if bool((rows < 0).any()):
        raise ValueError(
            f"coupling returned {name} rows that are not rows of its input: pair_within with "
            "feature codes finds the pairs among the given points, so it needs a coupling that "
            "returns its input rows (as every sitransport coupling does)"
        )
    return rows
