r"""``coupling="ot"``: one name for "I want the optimal-transport map", resolved by
:func:`choose_ot` into a concrete coupling, a network kind and an interpolant from the data's
shape, the number of training samples and the device.

The rule (measured on ``benchmarks/bench_ot_map.py``, known Brenier maps at d = 2..64):

- **vectors**: ``global_ot`` with plans of :data:`PLAN_POINTS` (8,192) points per end (the
  whole training sets when both have at most that many points: the exact OT plan of the
  data, solved once), the gradient velocity ``network="potential"`` (a curl-free field like
  the OT velocity: about the MLP's L2-UVP at d <= 4, markedly lower from d = 8, and it
  does not memorise the plan's pairs as the MLP does at d >= 32) and the
  straight ``"linear"`` interpolant (the displacement interpolation of the OT plan).
  A plan's bias, not training, is the accuracy limit at d >= 16, and it shrinks with the
  plan's size: 4,096-point plans stop improving with more steps (mixture, d = 16: 1.15 %
  at 8,000 and 16,000 steps), 8,192-point plans reach 0.70 % (0.61 % at 20,000 steps of
  batch 512).
- **steps**: :data:`OT_STEPS` (4,000 of fit's batch of 512) up to d = 16, not fit's 20,000. Trained
  longer, the network fits the finite plans' pairs (their noise around the map) ever more
  closely: on the Gaussian pair at d = 16 the L2-UVP grows with the steps, 0.20 / 0.29 /
  0.43 / 1.83 % at 2,000 / 4,000 / 8,000 / 20,000 steps (the map is linear: nothing is
  left to learn after a few thousand steps), while the mixture at d = 16 needs the
  length: 0.80 % at 4,000 steps, 1.7 % at 2,000 of batch 256, 0.61 % at 20,000. Above
  d = 16, 8,000 steps: the mixture at d = 64 reaches 2.56 % (3.58 % at 4,000), the Gaussian
  pair's error there is over 1.5 % at either length (1.64 % at 4,000; its finite plans'
  noise grows with d).
- **images**: exact minibatch OT in blocks (``exact_ot``), the U-Net and ``"linear"``: a
  global plan between images holds ``n x n`` costs of ``c h w``-dimensional points and the
  potential network is a vector MLP (not measured on a known map).
- **the entropic global plan** (issue 26: geomloss, on the training device) is the choice
  to make where an exact plan cannot go: on CUDA (the exact plan is solved on CPU) and for
  sets much larger than an exact plan (:func:`choose_ot` marks the place). Until it is
  registered as a coupling the exact plan on refreshed subsamples serves every case.

The choice is recorded in ``flow.config.ot_choice``
(:class:`~sitransport.config.OTChoice`); ``flow.config.coupling`` is the concrete coupling.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from sitransport._validation import check_positive_int
from sitransport.config import OTChoice

__all__ = ["OT_STEPS", "PLAN_POINTS", "choose_ot", "is_ot"]

#: Points per end of ``coupling="ot"``'s exact global plan (about 1.6 GB while it is solved,
#: some 30 s on one core; a solve overlaps training in a worker process).
PLAN_POINTS = 8192

#: Optimisation steps of ``coupling="ot"`` on vectors of dimension up to 16, of fit's batch
#: of 512. The potential network fits the finite plans' pairs ever more closely as it
#: trains, so past a few thousand steps the map error grows again where the map is simple
#: (module docstring). Twice as many above d = 16, where a curved map needs them.
OT_STEPS = 4000


def is_ot(coupling: Any) -> bool:
    """Whether ``fit``'s ``coupling=`` asks for :func:`choose_ot`: ``"ot"`` or
    ``{"name": "ot"}``.

    Args:
        coupling: ``fit``'s ``coupling=`` argument, as given.

    Raises:
        ValueError: ``{"name": "ot", ...}`` with settings (``"ot"`` takes none).

    Example:
        >>> is_ot("ot"), is_ot({"name": "ot"}), is_ot("exact_ot")
        (True, True, False)
    """
    if isinstance(coupling, str):
        return coupling == "ot"
    if isinstance(coupling, Mapping) and coupling.get("name") == "ot":
        if set(coupling) != {"name"}:
            raise ValueError(
                "coupling 'ot' takes no settings (it picks them from the data), got keys "
                f"{sorted(set(coupling) - {'name'})}; name a coupling to set them, e.g. "
                "{'name': 'global_ot', 'n': 8192}"
            )
        return True
    return False


def choose_ot(
    shape: tuple[int, ...], n: int | None, device: str | torch.device = "cpu"
) -> OTChoice:
    """What ``coupling="ot"`` picks for data of sample ``shape``, ``n`` training samples and
    ``device`` (the rule is in the module docstring).

    Args:
        shape: one sample's shape: ``(d,)`` for vectors, ``(c, h, w)`` for images.
        n: the number of training samples of the larger finite end (``None``: both ends are
            streams, e.g. ``"gaussian"`` and a torch Distribution).
        device: the training device. Default ``"cpu"``.

    Returns:
        The choice: the coupling spec, network, interpolant, steps (``None`` for images:
        fit's default) and the reason.

    Raises:
        ValueError, TypeError: ``shape`` is not a tuple of positive integers, or ``n`` is not
            a positive integer or ``None``.

    Example:
        >>> choice = choose_ot((16,), 20000)
        >>> choice.coupling, choice.network, choice.interpolant, choice.steps
        ({'name': 'global_ot', 'n': 8192}, 'potential', 'linear', 4000)
        >>> choose_ot((16,), 5000).coupling  # both sets whole: the data's exact plan
        {'name': 'global_ot', 'n': 5000}
        >>> choose_ot((3, 32, 32), 50000).coupling
        {'name': 'exact_ot'}
    """
    if not isinstance(shape, tuple) or not shape:
        raise TypeError(f"shape must be a non-empty tuple of sizes, got {shape!r:.60}")
    for size in shape:
        check_positive_int(size, "shape")
    if n is not None:
        check_positive_int(n, "n")
    device = torch.device(device)
    if len(shape) > 1:
        return OTChoice(
            {"name": "exact_ot"},
            "auto",
            "linear",
            "images: exact minibatch OT in blocks (a global plan would hold n x n costs "
            "between images), the U-Net, straight paths",
        )
    # The entropic global plan (geomloss, on the training device) belongs here: on CUDA, and
    # for n far beyond PLAN_POINTS, once it is a registered coupling (issue 26, item 2).
    # Until then the exact plan, on refreshed subsamples when n > PLAN_POINTS, serves all.
    points = PLAN_POINTS if n is None else min(n, PLAN_POINTS)
    steps = OT_STEPS if shape[0] <= 16 else 2 * OT_STEPS
    whole = n is not None and n <= PLAN_POINTS
    plan = (
        f"the exact OT plan of the whole training sets ({n} points)"
        if whole
        else f"exact OT plans of {PLAN_POINTS} points per end, refreshed on fresh subsamples"
    )
    return OTChoice(
        {"name": "global_ot", "n": points},
        "potential",
        "linear",
        f"vectors, d = {shape[0]}, n = {n}, {device.type}: {plan}; a gradient velocity; "
        f"straight paths; {steps} steps (longer runs fit the plans' pairs)",
        steps=steps,
    )
