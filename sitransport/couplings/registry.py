"""The one registry of couplings: names and spec dicts to objects (:func:`get_coupling`,
:func:`coupling_names`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sitransport._validation import resolve
from sitransport.couplings.base import Coupling, Independent
from sitransport.couplings.entropic import EntropicOT
from sitransport.couplings.entropic_plan import GlobalEntropicOT
from sitransport.couplings.global_plan import GlobalOT
from sitransport.couplings.minibatch import ExactOT, Sinkhorn

__all__ = ["CHOSEN_BY_FIT", "coupling_names", "get_coupling"]


def _chosen_by_fit() -> Coupling:
    """``"ot"``: no coupling object, a choice ``fit`` makes from the data."""
    raise ValueError(
        "coupling 'ot' is chosen by fit from the data (shape, number of samples, device): "
        "pass it to fit(coupling='ot') (see sitransport.fitting.choose_ot), or "
        f"name a coupling here: {', '.join(sorted(_COUPLINGS.keys() - CHOSEN_BY_FIT))}"
    )


_COUPLINGS: dict[str, Callable[..., Coupling]] = {
    "entropic": EntropicOT,
    "exact_ot": ExactOT,
    "global_entropic": GlobalEntropicOT,
    "global_ot": GlobalOT,
    "independent": Independent,
    "ot": _chosen_by_fit,
    "sinkhorn": Sinkhorn,
}

#: Names that ``fit`` resolves into a concrete coupling by the data (listed by
#: :func:`coupling_names`, refused by :func:`get_coupling`).
CHOSEN_BY_FIT = frozenset({"ot"})


def coupling_names() -> list[str]:
    """Names of ``fit``'s ``coupling=``, sorted: the couplings :func:`get_coupling` builds
    and ``"ot"``, which ``fit`` resolves into one of them (:data:`CHOSEN_BY_FIT`).

    Example:
        >>> coupling_names()
        ['entropic', 'exact_ot', 'global_entropic', 'global_ot', 'independent', 'ot', 'sinkhorn']
    """
    return sorted(_COUPLINGS)


def get_coupling(spec: str | dict[str, Any] | Coupling) -> Coupling:
    """Resolve ``"independent"``, ``"exact_ot"``, ``"global_ot"``, ``"sinkhorn"``, ``"entropic"``,
    ``"global_entropic"``, a spec dict
    (``{"name": "sinkhorn", "reg": 0.01}``) or a :class:`Coupling` instance.

    Args:
        spec: a coupling name, a dict with ``"name"`` and that coupling's settings, or a
            :class:`Coupling` (returned as is).

    Raises:
        ValueError: unknown name (the message lists the valid ones), a dict with keys the
            coupling does not take (named, with the valid keys), or ``"ot"``, which only
            ``fit`` resolves (from the data).
        TypeError: anything else.

    Example:
        >>> get_coupling({"name": "sinkhorn", "reg": 0.01})
        Sinkhorn(reg=0.01, replace=False)
    """
    return resolve(spec, _COUPLINGS, "coupling", Coupling)
