"""Every parameter of the public API has its own described entry, with its default.

Issue 16: the API pages list one entry per parameter. For every public callable -- each
name in the ``__all__`` of ``sitransport`` and of its public submodules (the modules the
API pages are generated from, see ``docs/conf.py``), and the public methods of the public
classes that sitransport defines -- every parameter of the signature has an entry of its
own in the docstring's ``Args:`` section:

- functions and methods: their signature, without ``self``/``cls``; a method inherited from
  a sitransport base is checked once, on the class that defines it; dunder methods and
  methods inherited from torch or the standard library are documented there;
- classes: the signature of ``__init__`` (the class docstring is what the page shows); for
  a dataclass, its init fields, documented under ``Args:`` or ``Attributes:``; classes
  whose ``__init__`` comes from outside sitransport (exceptions, protocols) have none;
- an entry is ``name: text`` or ``name (type): text``, named exactly as the parameter
  (``*args:``, ``**kwargs:``); one entry names one parameter (no ``a, b: ...``);
- the default: an entry of a parameter with a default states it, i.e. its text contains
  the word "default" or a double-backquoted literal equal to the default value
  (``ast.literal_eval``: ``None``, ``1e-5``, ``"trig"``, ``(2, 3)``).
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import pkgutil
import re

import sitransport
from tests.helpers import own_methods

# Google section headers that hold one entry per parameter or field.
PARAM_SECTIONS = {"Args", "Arguments", "Parameters", "Keyword Args", "Keyword Arguments"}
FIELD_SECTIONS = PARAM_SECTIONS | {"Attributes"}
_HEADER = re.compile(r"^([A-Z][A-Za-z ]*):\s*$")
_ENTRY = re.compile(r"^(\*{0,2}[A-Za-z_][\w, *]*?)\s*(\([^)]*\))?\s*:(\s|$)")
_DEFAULT_WORD = re.compile(r"\bdefault", re.IGNORECASE)
_LITERAL = re.compile(r"``(.+?)``")


def public_modules() -> list[str]:
    """``sitransport`` and its public submodules (as ``docs/conf.py`` lists them)."""
    found = pkgutil.walk_packages(sitransport.__path__, prefix="sitransport.")
    names = [m.name for m in found if not any(p.startswith("_") for p in m.name.split("."))]
    return ["sitransport", *sorted(names)]


def public_callables() -> dict[str, object]:
    """Qualified name -> object: each public function and class once (under its first
    public name), and each public method once (under the class defining it)."""
    out: dict[str, object] = {}
    seen: set[int] = set()
    for module in public_modules():
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or id(obj) in seen:
                continue
            seen.add(id(obj))
            out[f"{module}.{name}"] = obj
            if inspect.isclass(obj) and obj.__module__.startswith("sitransport"):
                for attr, owner, func in own_methods(obj):
                    if id(func) not in seen:
                        seen.add(id(func))
                        out[f"{owner.__module__}.{owner.__qualname__}.{attr}"] = func
    return out


def parse_entries(doc: str, sections: set[str]) -> list[tuple[str, str]]:
    """``(name, text)`` of each entry of the given Google sections of ``doc`` (cleaned by
    ``inspect.cleandoc``): ``name`` as written before the type and colon, ``text`` the
    description with its continuation lines, whitespace collapsed."""
    entries: list[tuple[str, str]] = []
    lines = inspect.cleandoc(doc).splitlines()
    inside, indent = False, None
    for line in lines:
        stripped = line.strip()
        if not line.startswith(" ") and stripped:
            header = _HEADER.match(line)
            inside, indent = bool(header and header.group(1) in sections), None
            continue
        if not inside or not stripped:
            continue
        depth = len(line) - len(line.lstrip())
        indent = depth if indent is None else indent
        match = _ENTRY.match(stripped) if depth == indent else None
        if match:
            entries.append((match.group(1).strip(), stripped[match.end() :].strip()))
        elif entries:
            name, text = entries[-1]
            entries[-1] = (name, f"{text} {stripped}".strip())
    return entries


def _star_name(param: inspect.Parameter) -> str:
    stars = {param.VAR_POSITIONAL: "*", param.VAR_KEYWORD: "**"}.get(param.kind, "")
    return stars + param.name


def documented_parameters(obj) -> tuple[list[tuple[str, object]], set[str]] | None:
    """``([(entry name, default or inspect.Parameter.empty)], sections)`` that ``obj``'s
    docstring must document, or None if it takes no documented parameters."""
    if inspect.isclass(obj):
        if dataclasses.is_dataclass(obj):
            fields = [f for f in dataclasses.fields(obj) if f.init]
            params = [(f.name, _field_default(f)) for f in fields]
            return params, FIELD_SECTIONS
        init = next(vars(k)["__init__"] for k in obj.__mro__ if "__init__" in vars(k))
        if not getattr(init, "__module__", "").startswith("sitransport"):
            return None  # object's, an exception's or a protocol's
        signature = inspect.signature(obj.__init__)
    else:
        signature = inspect.signature(obj)
    params = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    return [(_star_name(p), p.default) for p in params], PARAM_SECTIONS


class _Factory:
    """The default of a field with a ``default_factory``: stated only by "default"."""

    def __repr__(self) -> str:
        return "<default_factory>"


def _field_default(field: dataclasses.Field):
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return _Factory()
    return inspect.Parameter.empty


def states_default(text: str, default) -> bool:
    """The entry's text says the default: the word "default", or a double-backquoted
    literal equal to it."""
    if _DEFAULT_WORD.search(text):
        return True
    for literal in _LITERAL.findall(text):
        try:
            value = ast.literal_eval(literal)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
        try:
            if type(value) is type(default) and value == default:
                return True
            numbers = (value, default)
            if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in numbers):
                if value == default:  # ``1e-5`` states 1e-05, ``2`` states 2.0
                    return True
        except Exception:  # noqa: BLE001 (a default whose == raises is not stated so)
            continue
    return False


def problems(name: str, obj) -> list[str]:
    """What ``obj``'s docstring misses, one line per problem."""
    wanted = documented_parameters(obj)
    if wanted is None:
        return []
    params, sections = wanted
    entries = parse_entries(inspect.getdoc(obj) or "", sections)
    out = [f"{name}: one entry names several parameters: {e!r}" for e, _ in entries if "," in e]
    texts = {entry: text for entry, text in entries}
    for param, default in params:
        if param not in texts:
            out.append(f"{name}: no entry for {param}")
        elif not texts[param]:
            out.append(f"{name}: the entry of {param} is empty")
        elif default is not inspect.Parameter.empty and not states_default(texts[param], default):
            out.append(f"{name}: the entry of {param} does not state its default {default!r}")
    return out


def test_every_parameter_has_its_own_entry_with_its_default():
    found = public_callables()
    assert len(found) > 200, f"the walk found only {len(found)} public callables"
    for name in ("sitransport.fit", "sitransport.flow.transport.TransportFlow.push_forward"):
        assert name in found, f"the walk misses {name}"
    offenders = sorted(line for name, obj in found.items() for line in problems(name, obj))
    assert not offenders, f"{len(offenders)} parameter entries missing or incomplete:\n" + (
        "\n".join(offenders)
    )


def test_the_check_can_fail():
    """Each rule catches what it is meant to: missing, shared, empty and default-less
    entries, stars in names, dataclass fields."""

    def good(x, *args, scale=1.5, name="trig", **kwargs):
        """Summary.

        Args:
            x: points, shape ``(n, d)``.
            *args: more points.
            scale: a factor, continued on a second
                line. Default ``1.5``.
            name: the path, ``"trig"``.
            **kwargs: options.

        Returns:
            Nothing; ``x:`` here is no entry.
        """

    def bad(x, y, z=None, w=2, *args):
        """Summary.

        Args:
            x, y: two at once.
            z: no word about it.
            w: a literal that is not it, ``3``.
            args: stars missing.
        """

    assert problems("good", good) == []
    assert sorted(problems("bad", bad)) == [
        "bad: no entry for *args",
        "bad: no entry for x",
        "bad: no entry for y",
        "bad: one entry names several parameters: 'x, y'",
        "bad: the entry of w does not state its default 2",
        "bad: the entry of z does not state its default None",
    ]

    @dataclasses.dataclass
    class Result:
        """Summary.

        Attributes:
            a: documented.
            b: the number of things.
        """

        a: int
        b: int = 0
        c: list = dataclasses.field(default_factory=list)

    assert problems("Result", Result) == [
        "Result: the entry of b does not state its default 0",
        "Result: no entry for c",
    ]


def test_default_statements():
    assert states_default("the scale. Default ``1e-5``.", 1e-5)
    assert states_default("``None``: the flow's own.", None)
    assert states_default("as drawn (the default).", object())
    assert states_default("shape ``(2, 3)``.", (2, 3))
    assert not states_default("``None`` or a tensor.", 0)
    assert not states_default("``True`` to show it.", 1)  # True == 1, but not the same value
    assert not states_default("a factor ``1.5``", 2.5)
