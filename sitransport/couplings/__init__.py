r"""Couplings: how a minibatch of ``x0`` is paired with a minibatch of ``x1``.

The interpolant loss is minimised over pairs :math:`(x_0, x_1) \sim \pi`. With the
independent coupling :math:`\pi = \rho_0 \otimes \rho_1` (the paper's) the learned flow
transports ``rho0`` to ``rho1`` but not optimally. Pairing each minibatch by optimal
transport (Pooladian et al. 2023, arXiv:2304.14772; Tong et al. 2023, arXiv:2302.00482)
straightens the paths toward the Benamou–Brenier optimum.

- ``independent``: the batches as drawn.
- ``exact_ot``: the exact OT plan of the batch for the squared Euclidean cost. For uniform
  batches of equal size the plan is a permutation (Birkhoff), found by POT's ``ot.emd``
  (the assignment solver ``scipy.optimize.linear_sum_assignment`` as fallback); its cost
  equals POT's ``ot.emd2`` (tested). Pairs are taken without replacement: every point is used
  exactly once. Batches larger than ``block`` (256) are cut into blocks, each paired by exact
  OT: a block-diagonal plan, so a batch of 512 costs two solves of 256, not one of 512.
- ``global_ot``: the exact OT plan of large subsamples (``n`` = 4096 points) of the two
  training sets, solved once (or every ``reuse`` passes over its pairs, on fresh subsamples)
  and batches drawn from it (:class:`GlobalOT`, :class:`PlanSampler`): OT pairs at about
  the cost of independent ones.
- ``sinkhorn``: the entropic plan (POT's log-domain solver with epsilon scaling, stable at
  small ``reg``); each ``x0`` is paired with one ``x1`` drawn from its row of the plan, so no
  ``x0`` is dropped or duplicated (``x1`` may repeat); ``replace=True`` instead draws
  ``n`` pairs from the whole plan.
- ``entropic``: the entropic (or, with ``reach``, unbalanced) plan of the batch by geomloss's
  Sinkhorn loop, in torch on the batch's device (:class:`EntropicOT`); each ``x0`` gets one
  partner drawn from its row, computed in row chunks (the plan is never formed in full).
- ``global_entropic``: batches drawn from one entropic plan between large subsamples
  (``n`` = 65,536) or the whole training sets, solved on the training device and refreshed
  in a background thread (:class:`GlobalEntropicOT`, :class:`EntropicPlanSampler`).

Couplings act on whatever batch they are given, on its device, so under data parallelism
they can run on the all-gathered global batch. A coupling also says where a training run's
batches come from (:meth:`Coupling.source`, a :class:`PairSource`): each batch as drawn and
then paired, or, for ``global_ot``, drawn from the plans; the trainer only draws from the
source it is given.

In a conditional fit, :func:`pair_within` (and :func:`submit_within`) applies any coupling
within conditions: per label, or under the cost ``|x0 - x1|^2 + lambda |c0 - c1|^2`` for
continuous features; with ``global_ot`` the batches come from plans solved within
conditions instead (:class:`GroupPlans` per condition value, :class:`FeaturePlans` between
points augmented with their features).
"""

from __future__ import annotations

from sitransport.couplings.base import Coupling, Independent, PairSource
from sitransport.couplings.base import DrawPairs as DrawPairs
from sitransport.couplings.base import End as End
from sitransport.couplings.conditional import pair_within, submit_within
from sitransport.couplings.conditional_plan import FeaturePlans, GroupPlans
from sitransport.couplings.entropic import EntropicOT
from sitransport.couplings.entropic_plan import EntropicPlanSampler, GlobalEntropicOT
from sitransport.couplings.global_plan import GlobalOT, PlanSampler
from sitransport.couplings.minibatch import BLOCK as BLOCK
from sitransport.couplings.minibatch import ExactOT, Sinkhorn
from sitransport.couplings.registry import coupling_names, get_coupling

# BLOCK, End and DrawPairs (type aliases and a constant, outside __all__) are importable here
__all__ = [
    "Coupling",
    "EntropicOT",
    "EntropicPlanSampler",
    "ExactOT",
    "FeaturePlans",
    "GlobalEntropicOT",
    "GlobalOT",
    "GroupPlans",
    "Independent",
    "PairSource",
    "PlanSampler",
    "Sinkhorn",
    "coupling_names",
    "get_coupling",
    "pair_within",
    "submit_within",
]
