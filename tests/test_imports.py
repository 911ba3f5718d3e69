"""The package's structure: no import cycles, a light front door, one exception family.

The layering these tests keep, bottom to top (an arrow may only point down):

* ``_version``, ``atomic`` (import nothing from thermocheck), ``errors``;
* ``theory``, ``vmf``, ``stats``, ``entropy``, ``states``, ``results`` (closed forms, measured
  data, law results);
* ``measurement`` (logged series to a ``State``: one set of conventions, pure numpy) and ``noise``
  (σ² and ``‖∇L(w̄)‖²`` from minibatch gradients, torch);
* ``laws`` (consume states), ``simulator`` and ``record`` (produce them), ``synthetic``,
  ``strategies``;
* ``sweep`` (shards, cache, executors: substrates by name), then ``substrates`` (the registry:
  each substrate's presets, sweep specs and applicable laws), then ``nets`` (a substrate that
  registers itself into both);
* ``diagnostics``, ``figures``, ``report``, ``verify``, ``cli``;
* the pytest plugin and the front door (``thermocheck/__init__.py``), which nothing imports.

The import graph is read from the source with :mod:`ast`, in the spirit of import-linter:

* every ``import``/``from … import`` counts, at module level, inside functions (a deferred import
  still ties the two modules together, and would deadlock or fail half-initialised as soon as it
  moved to the top) and under ``if TYPE_CHECKING:`` (types are part of a layer's interface);
* importing ``a.b.c`` from outside package ``a.b`` also imports ``a/b/__init__.py``, so that edge
  counts too (from inside ``a.b`` the package is already being imported);
* the front door's lazy names (PEP 562) count as edges to the modules they come from;
* a lookup by name through a registry is no edge: the sweep resolves a substrate such as ``net``
  by importing the module that registers it (as entry points do), so the dependency points from
  the substrate to the sweep, which names it as data only.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import importlib
import importlib.util
import inspect
import itertools
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

import thermocheck
from thermocheck import errors

pytestmark = pytest.mark.fast

PACKAGE = Path(thermocheck.__file__).resolve().parent
ROOT = PACKAGE.parent


# -- the import graph -----------------------------------------------------------------------------
def _module_names() -> dict[str, Path]:
    names = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


MODULES = _module_names()


def _own(name: str) -> str | None:
    """The thermocheck module that ``name`` (a module or an attribute of one) lives in."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imported(node: ast.Import | ast.ImportFrom, module: str) -> Iterator[str]:
    """The dotted names one import statement of ``module`` loads."""
    if isinstance(node, ast.Import):
        yield from (alias.name for alias in node.names)
        return
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    base = node.module or ""
    if node.level:
        kept = package.split(".")[: len(package.split(".")) - node.level + 1]
        base = ".".join([*kept, base] if base else kept)
    yield from (f"{base}.{alias.name}" for alias in node.names)


def _edges_of(module: str) -> Iterator[tuple[str, int]]:
    """(imported thermocheck module, line) for every import in ``module``'s source."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        for name in _imported(node, module):
            target = _own(name) if name.split(".")[0] == "thermocheck" else None
            if target is None or target == module:
                continue
            yield target, node.lineno
            yield from ((parent, node.lineno) for parent in _parents(target, module))


def _parents(target: str, module: str) -> Iterator[str]:
    """The packages whose ``__init__`` importing ``target`` runs, seen from ``module``."""
    parts = target.split(".")
    for end in range(2, len(parts)):
        parent = ".".join(parts[:end])
        if not f"{module}.".startswith(f"{parent}."):
            yield parent


def import_graph() -> dict[str, dict[str, int]]:
    """``{module: {imported module: first line}}`` over every thermocheck module."""
    graph: dict[str, dict[str, int]] = {m: {} for m in MODULES}
    for module in MODULES:
        for target, line in _edges_of(module):
            graph[module].setdefault(target, line)
    for name, source in thermocheck._EXPORTS.items():  # the front door's lazy names
        graph["thermocheck"].setdefault(source, 0)
        assert source in MODULES, f"thermocheck.{name} comes from {source}, not a module"
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One cycle of ``graph`` as ``[a, b, …, a]``, or None (iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in graph:
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return [*path[path.index(nxt):], nxt]
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def _describe(cycle: list[str], graph: dict[str, dict[str, int]]) -> str:
    return "\n".join(f"  {a} -> {b}  ({MODULES[a].relative_to(ROOT)}:{graph[a][b]})"
                     for a, b in itertools.pairwise(cycle))


def test_no_import_cycles() -> None:
    graph = import_graph()
    cycle = find_cycle(graph)
    assert cycle is None, f"import cycle between thermocheck modules:\n{_describe(cycle, graph)}"


def test_the_cycle_finder_sees_cycles() -> None:
    """The checker itself: a cycle through a deferred import and a package ``__init__``."""
    graph = {"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    del graph["c"]["a"]
    assert find_cycle(graph) is None
    assert set(_parents("thermocheck.nets.models", "thermocheck.record")) == {"thermocheck.nets"}
    assert not list(_parents("thermocheck.nets.models", "thermocheck.nets.train"))


def test_known_edges_are_seen() -> None:
    """Deferred imports, ``from package import module`` and package ``__init__`` files reach
    the graph."""
    graph = import_graph()
    assert "thermocheck.simulator" in graph["thermocheck.sweep.shards"]  # inside a function
    assert "thermocheck.vmf" in graph["thermocheck.laws._vmf"]  # from thermocheck import vmf
    assert "thermocheck.sweep" in graph["thermocheck.nets.substrate"]  # the package __init__


def test_nothing_imports_the_front_door() -> None:
    graph = import_graph()
    importers = sorted(m for m, targets in graph.items() if "thermocheck" in targets)
    assert importers == [], f"{importers} import thermocheck/__init__.py: import the module instead"


def test_sweep_does_not_import_networks() -> None:
    """The sweep names the ``net`` substrate; only resolving it imports the networks (and torch)."""
    code = ("import sys; import thermocheck.sweep; "
            "from thermocheck.sweep.shards import substrate_runner\n"
            "print('thermocheck.nets' in sys.modules, 'torch' in sys.modules)\n"
            "from thermocheck.nets.substrate import train_shard\n"
            "print(substrate_runner('net') is train_shard)")
    assert _run(code) == ["False False", "True"]


# -- the front door -------------------------------------------------------------------------------
def _run(code: str) -> list[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         timeout=300)
    return out.stdout.split("\n")[:-1]


def test_import_is_light() -> None:
    """``import thermocheck`` and the plugin import neither torch nor numpy; the names that need
    no network (all but Recorder) import no torch either."""
    light = [n for n in thermocheck.__all__ if n != "Recorder"]
    code = ("import sys, thermocheck, thermocheck.plugin\n"
            "print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))\n"
            f"[getattr(thermocheck, n) for n in {light!r}]\n"
            "print('torch' in sys.modules)")
    assert _run(code) == ["[]", "False"]


def test_front_door_names() -> None:
    from thermocheck.record import Recorder
    from thermocheck.results import LawResult
    from thermocheck.states import Estimate, State, StateGrid

    expected = {"State": State, "StateGrid": StateGrid, "Estimate": Estimate,
                "LawResult": LawResult, "Recorder": Recorder,
                "laws": importlib.import_module("thermocheck.laws")}
    for name, value in expected.items():
        assert getattr(thermocheck, name) is value, name
    assert set(thermocheck.__all__) == {*thermocheck._EXPORTS, "__version__"}
    assert dir(thermocheck) == sorted(thermocheck.__all__)
    with pytest.raises(AttributeError, match="no attribute 'Stategrid'"):
        thermocheck.Stategrid  # noqa: B018


def test_every_error_is_exported_and_in_the_family() -> None:
    family = [getattr(errors, n) for n in errors.__all__ if inspect.isclass(getattr(errors, n))]
    assert len(family) > 1
    for cls in family:
        assert issubclass(cls, errors.ThermocheckError), cls
        assert getattr(thermocheck, cls.__name__) is cls, f"thermocheck.{cls.__name__}"


def test_old_error_locations_still_work() -> None:
    """Errors moved into thermocheck.errors stay importable where they used to be defined, and
    keep the built-in bases users may catch them by."""
    from thermocheck.nets.data import DatasetUnavailableError
    from thermocheck.nets.models import ScaleInvarianceError
    from thermocheck.results import LawFailure

    assert DatasetUnavailableError is errors.DatasetUnavailableError
    assert ScaleInvarianceError is errors.ScaleInvarianceError
    assert LawFailure is errors.LawFailure
    assert issubclass(DatasetUnavailableError, FileNotFoundError)
    assert issubclass(ScaleInvarianceError, ValueError)
    assert issubclass(LawFailure, AssertionError)
    assert issubclass(errors.StateNotFoundError, KeyError)


def test_py_typed_is_shipped() -> None:
    assert (PACKAGE / "py.typed").is_file()
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "py.typed" in config["tool"]["setuptools"]["package-data"]["thermocheck"]


# -- one exception family -------------------------------------------------------------------------
#: Built-in exceptions raised on purpose, by protocol: ``AttributeError`` from a module's
#: ``__getattr__`` (PEP 562), ``NotImplementedError`` from an abstract method, and argparse's
#: ``ArgumentTypeError``, which argparse turns into a usage error (exit 2) before any work.
PROTOCOL_ERRORS = (AttributeError, NotImplementedError, argparse.ArgumentTypeError)

#: Modules that need an optional extra to import (checked where it is installed).
OPTIONAL = {"thermocheck.extra.lightning": "lightning"}


def _importable() -> Iterator[tuple[str, Path, dict[str, object]]]:
    """(module, source, namespace) of every module whose dependencies are installed."""
    for module, path in MODULES.items():
        if module not in OPTIONAL or importlib.util.find_spec(OPTIONAL[module]) is not None:
            yield module, path, vars(importlib.import_module(module))


def _deferred_names(tree: ast.Module, module: str) -> dict[str, object]:
    """The thermocheck names ``module`` imports inside its functions."""
    found: dict[str, object] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            for alias, name in zip(node.names, _imported(node, module), strict=True):
                owner, _, attr = name.rpartition(".")
                if owner.split(".")[0] == "thermocheck" and owner in MODULES:
                    found[alias.asname or alias.name] = getattr(
                        importlib.import_module(owner), attr, None)
    return found


def _raised() -> Iterator[tuple[str, int, object]]:
    """(module, line, class) of every ``raise X(...)`` in the package, X looked up in its module.

    ``raise type(err)(...)`` re-raises a caught exception's own type with more context, so its
    class is that of the caught error; it is left to the check that raised it first.
    """
    for module, path, names in _importable():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scope = {**vars(builtins), **_deferred_names(tree, module), **names}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)):
                continue
            expr = ast.unparse(node.exc.func)
            if not expr.startswith("type("):
                yield module, node.lineno, eval(expr, scope)


def _in_family(cls: object) -> bool:
    return isinstance(cls, type) and (issubclass(cls, errors.ThermocheckError)
                                      or issubclass(cls, PROTOCOL_ERRORS))


def test_every_raised_exception_is_in_the_family() -> None:
    """Every exception the package raises derives from ThermocheckError, except the protocol
    ones above and private control-flow exceptions that never leave their module."""
    bad = [f"{m}:{line} raises {getattr(cls, '__qualname__', cls)}" for m, line, cls in _raised()
           if not _in_family(cls) and not getattr(cls, "__name__", "").startswith("_")]
    assert bad == [], "raise an error of thermocheck.errors instead:\n" + "\n".join(bad)


def test_exception_classes_are_in_the_family() -> None:
    """Every public exception class the package defines derives from ThermocheckError."""
    bad = []
    for module, path, names in _importable():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for name in (n.name for n in ast.walk(tree) if isinstance(n, ast.ClassDef)):
            cls = names.get(name)
            if (isinstance(cls, type) and issubclass(cls, BaseException)
                    and not name.startswith("_")
                    and not issubclass(cls, errors.ThermocheckError)):
                bad.append(f"{module}.{name}")
    assert bad == [], f"{bad} must derive from thermocheck.errors.ThermocheckError"
