"""The coupling of a fit as a frozen spec: :class:`CouplingSpec`, the ``spec()`` of a built-in
coupling, reflow's ``"paired"``, or a user's coupling object kept as it is; and what
``coupling="ot"`` chose for it (:class:`OTChoice`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from sitransport._validation import check_positive_int
from sitransport.couplings import Coupling, coupling_names, get_coupling

__all__ = ["CouplingSpec", "OTChoice"]


@dataclass(frozen=True)
class CouplingSpec:
    """The coupling of a fit: the ``spec()`` of a built-in coupling, or ``"paired"`` (the
    pairs ``(x0, T(x0))`` of :func:`~sitransport.reflow`).

    A user's :class:`~sitransport.couplings.Coupling` that :func:`get_coupling` cannot rebuild
    as itself (a subclass, or one whose ``spec()`` names no built-in) is kept in ``custom``:
    it trains and :meth:`build` returns it, but :meth:`spec` refuses it, so a flow fitted
    with it cannot be saved (never rebuilt as a built-in on loading).

    Args:
        name: a built-in coupling's name (``"independent"``, ``"exact_ot"``, ``"global_ot"``,
            ``"sinkhorn"``), ``"paired"`` for reflow, or the class name of a ``custom`` coupling.
            Default ``"independent"``.
        options: the built-in coupling's settings besides its name, as plain data (e.g.
            ``{"reg": 0.05}`` for Sinkhorn). Default ``{}``: the coupling's own defaults.
        custom: a user's coupling object that no spec rebuilds (then ``name`` is its class name and
            ``options`` empty); ``None`` for a built-in. Default ``None``.

    Example:
        >>> from sitransport.couplings import ExactOT
        >>> from sitransport.config import CouplingSpec
        >>> spec = CouplingSpec.of(ExactOT(processes=0))
        >>> spec.spec()
        {'name': 'exact_ot', 'processes': 0, 'block': 256}
        >>> spec.build()
        ExactOT(processes=0, block=256)
    """

    #: The name of reflow's coupling (pairs from a map), which is no Coupling object.
    PAIRED: ClassVar[str] = "paired"

    name: str = "independent"
    options: dict[str, Any] = field(default_factory=dict)
    custom: Coupling | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.custom is not None:
            return
        if not isinstance(self.options, Mapping):
            raise TypeError(f"coupling options must be a dict, got {type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))
        if self.name != self.PAIRED:
            get_coupling(self.spec())  # a built-in: the name and options are checked

    @classmethod
    def of(cls, coupling: Coupling) -> CouplingSpec:
        """The spec of a coupling object (``custom`` if it cannot be rebuilt as itself).

        Args:
            coupling: a :class:`~sitransport.couplings.Coupling` instance, built-in or the user's.

        Example:
            >>> from sitransport.couplings import ExactOT, Sinkhorn
            >>> CouplingSpec.of(Sinkhorn(reg=0.1))
            CouplingSpec(name='sinkhorn', options={'reg': 0.1, 'replace': False})
            >>> class Mine(ExactOT): ...
            >>> CouplingSpec.of(Mine()).name  # a subclass: kept as the user's object
            'Mine'
        """
        try:
            spec = dict(coupling.spec())
            rebuilt = get_coupling(spec)
        except (NotImplementedError, TypeError, ValueError, KeyError):
            return cls(type(coupling).__qualname__, {}, custom=coupling)
        if type(rebuilt) is not type(coupling) or rebuilt.spec() != spec:
            return cls(type(coupling).__qualname__, {}, custom=coupling)
        name = spec.pop("name")
        return cls(name, spec)

    def spec(self) -> dict[str, Any]:
        """Plain data: ``{"name": .., **options}``, the coupling's own ``spec()``.

        Raises:
            TypeError: a user's coupling (``custom``), which a file cannot rebuild.

        Example:
            >>> CouplingSpec("exact_ot", {"processes": 0}).spec()
            {'name': 'exact_ot', 'processes': 0}
        """
        if self.custom is not None:
            raise TypeError(
                f"the coupling {self.name} is not a built-in sitransport coupling (its spec() "
                "does not rebuild it with get_coupling), so a saved flow could not record it "
                "and would load it as something else; fit with a built-in coupling "
                f"({', '.join(coupling_names())}) to save the flow"
            )
        return {"name": self.name, **self.options}

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any] | str) -> CouplingSpec:
        """The inverse of :meth:`spec`; a name alone is its default options.

        Args:
            spec: a dict as :meth:`spec` returns it (``{"name": ..., **options}``), or a coupling's
                name alone.

        Example:
            >>> CouplingSpec.from_spec("sinkhorn")
            CouplingSpec(name='sinkhorn', options={'reg': 0.05, 'replace': False})
        """
        if isinstance(spec, str):
            spec = {"name": spec}
        fields = dict(spec)
        name = fields.pop("name", None)
        if name != cls.PAIRED:
            return cls.of(get_coupling({"name": name, **fields}))  # defaults filled in
        return cls(name, fields)

    def build(self) -> Coupling:
        """The coupling object (a fresh built-in, or the user's own).

        Raises:
            ValueError: the spec is reflow's ``"paired"``, which is no coupling object.

        Example:
            >>> CouplingSpec("global_ot", {"n": 512}).build()
            GlobalOT(n=512, reuse=250, processes=1)
        """
        if self.custom is not None:
            return self.custom
        if self.name == self.PAIRED:
            raise ValueError("the 'paired' coupling of reflow pairs x0 with T(x0): no object")
        return get_coupling(self.spec())


@dataclass(frozen=True)
class OTChoice:
    """What ``coupling="ot"`` picked for a fit and why
    (:func:`~sitransport.fitting.choose_ot`): ``flow.config.ot_choice``.

    ``flow.config.coupling`` is the concrete coupling the fit trained with (this
    ``coupling``); ``network`` and ``interpolant`` are what ``"ot"`` picks, which the fit used
    unless the caller gave its own (then named in ``overridden``).

    Args:
        coupling: the coupling spec picked (``{"name": .., **settings}``, plain data).
        network: the network picked: ``"potential"`` (vectors) or ``"auto"`` (images).
        interpolant: the interpolant picked (``"linear"``).
        reason: the rule's reason, in words (dimension, number of samples, device).
        overridden: the settings the caller gave, which won over the pick (``"network"``,
            ``"interpolant"``, ``"steps"``). Default ``()``.
        steps: the optimisation steps picked (``None``: fit's default; files written before
            this field read as ``None``). Default ``None``.

    Raises:
        TypeError: a field of the wrong type.

    Example:
        >>> from sitransport.config import OTChoice
        >>> choice = OTChoice({"name": "global_ot", "n": 8192}, "potential", "linear", "d = 16")
        >>> OTChoice.from_spec(choice.spec()) == choice
        True
    """

    coupling: dict[str, Any]
    network: str
    interpolant: str
    reason: str
    overridden: tuple[str, ...] = ()
    steps: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.coupling, Mapping) or not isinstance(self.coupling.get("name"), str):
            raise TypeError(f"OTChoice.coupling must be a spec dict, got {self.coupling!r:.60}")
        object.__setattr__(self, "coupling", dict(self.coupling))
        for name in ("network", "interpolant", "reason"):
            if not isinstance(getattr(self, name), str):
                raise TypeError(f"OTChoice.{name} must be a str, got {getattr(self, name)!r:.60}")
        if isinstance(self.overridden, str) or not all(isinstance(s, str) for s in self.overridden):
            raise TypeError(f"OTChoice.overridden must be names, got {self.overridden!r:.60}")
        if self.steps is not None:
            check_positive_int(self.steps, "OTChoice.steps")
        object.__setattr__(self, "overridden", tuple(self.overridden))

    def spec(self) -> dict[str, Any]:
        """Plain data (``overridden`` as a list).

        Example:
            >>> OTChoice({"name": "exact_ot"}, "auto", "linear", "images").spec()["overridden"]
            []
        """
        return {
            "coupling": dict(self.coupling),
            "network": self.network,
            "interpolant": self.interpolant,
            "reason": self.reason,
            "overridden": list(self.overridden),
            "steps": self.steps,
        }

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> OTChoice:
        """The inverse of :meth:`spec`.

        Args:
            spec: a dict as :meth:`spec` returns it.

        Raises:
            TypeError: ``spec`` is not a dict with exactly :meth:`spec`'s keys.

        Example:
            >>> OTChoice.from_spec({"coupling": {"name": "exact_ot"}, "network": "auto",
            ...                     "interpolant": "linear", "reason": "images",
            ...                     "overridden": ["network"]}).overridden
            ('network',)
        """
        keys = {"coupling", "network", "interpolant", "reason", "overridden"}
        if not isinstance(spec, Mapping) or set(spec) - {"steps"} != keys:
            got = sorted(spec) if isinstance(spec, Mapping) else type(spec).__name__
            raise TypeError(f"an OTChoice spec has the keys {sorted(keys)} (and steps), got {got}")
        return cls(**{**spec, "overridden": tuple(spec["overridden"])})
