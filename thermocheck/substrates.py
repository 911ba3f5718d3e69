"""The substrate registry: what ``thermocheck verify`` can run, and how.

A substrate produces measured :class:`~thermocheck.states.State`\\ s (the isotropic-noise simulator,
scale-invariant networks, a user's own). Each declares, in one :class:`Substrate`:

* its presets, each with a line of help, its default preset and deprecated preset names;
* how a preset and options become sweeps: ``plan(preset, protocols, *, seed, dim, **options)``
  returns a :class:`Plan` of :class:`~thermocheck.sweep.SweepSpec`\\ s and report metadata;
* which laws apply: ``laws(spec)`` returns ``(law name, options)`` pairs of
  :data:`thermocheck.laws.ALL`, checked on that sweep's grid;
* its known deviations (:mod:`thermocheck.deviations`): forms of a law that the paper predicts
  not to hold there.

``plan`` and ``laws`` are named by import path (``"module:function"``) and imported on first use,
so that the registry, and with it the command line's choices and help, loads neither numba nor
torch. :func:`thermocheck.verify.verify` runs any of them; ``thermocheck verify`` takes its
``--substrate`` and ``--preset`` choices from :func:`substrates` and :func:`preset_owners`.

A package adds its own by :func:`register`, or without being imported, through an entry point in
the group :data:`ENTRY_POINT_GROUP` whose object is a :class:`Substrate` (docs/architecture.md,
"Adding a substrate").
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from thermocheck.deviations import KNOWN_DEVIATIONS, KnownDeviation, declare
from thermocheck.errors import InvalidParameterError, MissingDependencyError

if TYPE_CHECKING:
    from thermocheck.sweep.shards import SweepSpec

__all__ = [
    "DEFAULT_SUBSTRATE",
    "ENTRY_POINT_GROUP",
    "Plan",
    "Substrate",
    "get",
    "preset_owners",
    "register",
    "resolve_preset",
    "substrates",
    "unregister",
]

#: The entry-point group a package declares its substrates in (each object a :class:`Substrate`).
ENTRY_POINT_GROUP = "thermocheck.substrates"
#: The substrate of ``thermocheck verify`` without ``--substrate``.
DEFAULT_SUBSTRATE = "isotropic"


@dataclass(frozen=True)
class Plan:
    """What one run of a substrate measures: its sweeps and what the report records of them.

    Attributes
    ----------
    specs
        One sweep per protocol, in the order the report lists them.
    meta
        Substrate-specific report metadata (``report.json`` ``meta.extra``), e.g. the simulator's
        options or the network configurations.
    """

    specs: Sequence[SweepSpec]
    meta: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Substrate:
    """A substrate's declaration (see the module docstring).

    Attributes
    ----------
    name
        What ``--substrate`` and ``SweepSpec.substrate`` call it (an identifier).
    summary
        One line for ``thermocheck verify --help``.
    presets
        Preset name → one line of help. The first is the default.
    plan
        ``function(preset, protocols, *, seed, dim, **options) -> Plan``, or its import path
        ``"module:function"`` (imported on first use).
        ``protocols`` is None for the preset's default protocols. It raises
        :class:`~thermocheck.errors.InvalidParameterError` (or another usage error) on a bad
        option, before any work.
    laws
        ``function(spec) -> [(law name, options), …]``, or its import path.
    options
        The keyword options ``plan`` takes beyond the common ones (``verify(**options)``).
    deviations
        The known deviations of laws on this substrate.
    aliases
        Deprecated preset name → preset; using one warns (:class:`DeprecationWarning`).
    """

    name: str
    summary: str
    presets: Mapping[str, str]
    plan: str | Callable[..., Plan]
    laws: str | Callable[[SweepSpec], Sequence[tuple[str, Mapping[str, Any]]]]
    options: tuple[str, ...] = ()
    deviations: tuple[KnownDeviation, ...] = ()
    aliases: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise InvalidParameterError(f"name={self.name!r} is invalid: it must be an identifier")
        if not self.presets:
            raise InvalidParameterError(f"substrate {self.name!r} has no preset: declare one")
        for role in ("plan", "laws"):
            target = getattr(self, role)
            if not callable(target) and not (isinstance(target, str) and all(
                    target.partition(":")[::2]) and ":" in target):
                raise InvalidParameterError(f"{role}={target!r} is invalid: it must be a "
                                            "function or its import path 'module:function'")
        unknown = sorted(set(self.aliases.values()) - set(self.presets))
        if unknown:
            raise InvalidParameterError(f"aliases of substrate {self.name!r} name presets it does "
                                        f"not have: {unknown}")

    @property
    def default_preset(self) -> str:
        """The preset used when none is given: the first declared."""
        return next(iter(self.presets))

    def planner(self) -> Callable[..., Plan]:
        """The ``plan`` function, imported."""
        return _load(self.plan, self.name)

    def law_checks(self, spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
        """The ``(law name, options)`` pairs that apply to ``spec``'s grid."""
        return [(name, dict(options)) for name, options in _load(self.laws, self.name)(spec)]


def _load(target: str | Callable[..., Any], substrate: str) -> Callable[..., Any]:
    """``target`` itself, or the function its import path names."""
    if callable(target):
        return target
    module, _, function = target.partition(":")
    try:
        return getattr(importlib.import_module(module), function)
    except ImportError as err:
        raise MissingDependencyError(f"substrate={substrate!r} needs {module}, which cannot be "
                                     f"imported ({err})") from None


_NET_DEVIATIONS = tuple(k for k in KNOWN_DEVIATIONS if "net" in k.substrates)

_BUILT_IN: tuple[Substrate, ...] = (
    Substrate(
        name="isotropic",
        summary="the isotropic-noise simulator (thermocheck.simulator)",
        presets={"quick": "under a minute, fast-equilibrating ranges",
                 "paper": "the paper's ranges (Section 6, Appendix E)"},
        plan="thermocheck.presets:plan",
        laws="thermocheck.presets:law_checks",
        options=("momentum", "nesterov"),
    ),
    Substrate(
        name="net",
        summary="scale-invariant networks (thermocheck.nets, needs torch)",
        presets={"cpu-tiny": "2 CPU cores, at most 5 min for fixed LR and fixed ELR",
                 "gpu-short": "gpu-nightly at half length, one GPU",
                 "gpu-nightly": "one GPU, at most 10 min for fixed LR and fixed ELR",
                 "gpu-interpolation": "the interpolation regime: no stationary distribution",
                 "paper": "the paper's ConvNet on CIFAR-10, GPU-hours per grid"},
        plan="thermocheck.nets.run:plan",
        laws="thermocheck.nets.run:law_checks",
        options=("model", "dataset", "data_dir", "device", "iters", "compile"),
        deviations=_NET_DEVIATIONS,
        aliases={"quick": "cpu-tiny"},
    ),
)

_REGISTERED: dict[str, Substrate] = {s.name: s for s in _BUILT_IN}
_entry_points_loaded = False


def register(substrate: Substrate) -> Substrate:
    """Add ``substrate`` (replacing one of the same name) and declare its known deviations
    (:func:`thermocheck.deviations.declare`); return it."""
    if not isinstance(substrate, Substrate):
        raise InvalidParameterError(f"substrate={substrate!r} is invalid: it must be a "
                                    "thermocheck.substrates.Substrate")
    declare(*substrate.deviations)
    _REGISTERED[substrate.name] = substrate
    return substrate


def unregister(name: str) -> None:
    """Remove the substrate called ``name`` (a built-in one included)."""
    _REGISTERED.pop(get(name).name)


def _load_entry_points() -> None:
    """Register the substrates other packages declare in :data:`ENTRY_POINT_GROUP`, once. One
    that cannot be loaded is left out with a warning, so that it does not break the others."""
    global _entry_points_loaded
    if _entry_points_loaded:
        return
    _entry_points_loaded = True
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        try:
            substrate = entry.load()
            if entry.name != getattr(substrate, "name", entry.name):
                raise InvalidParameterError(f"it declares the name {substrate.name!r}")
            register(substrate)
        except Exception as err:  # a broken plugin must not break the command line
            warnings.warn(f"substrate entry point {entry.name!r} ({entry.value}) is left out: "
                          f"{err}", RuntimeWarning, stacklevel=2)


def substrates() -> dict[str, Substrate]:
    """Every known substrate by name: built in, registered, and declared by entry points."""
    _load_entry_points()
    return dict(_REGISTERED)


def get(name: str) -> Substrate:
    """The substrate called ``name``."""
    known = substrates()
    if name not in known:
        raise InvalidParameterError(f"substrate={name!r} is invalid: choose one of "
                                    f"{tuple(known)}")
    return known[name]


def preset_owners(preset: str) -> list[str]:
    """The substrates that have a preset (not an alias) called ``preset``."""
    return [s.name for s in substrates().values() if preset in s.presets]


def resolve_preset(substrate: Substrate, preset: str | None) -> str:
    """``preset`` as ``substrate`` names it: its default for None, a deprecated alias's target
    (with a :class:`DeprecationWarning`). A preset of another substrate is refused with a message
    naming the substrate to choose."""
    if preset is None:
        return substrate.default_preset
    if preset in substrate.presets:
        return preset
    if preset in substrate.aliases:
        target = substrate.aliases[preset]
        warnings.warn(f"preset {preset!r} of substrate {substrate.name!r} is deprecated: use "
                      f"{target!r}", DeprecationWarning, stacklevel=3)
        return target
    owners = preset_owners(preset)
    hint = (f"; it is a preset of substrate {' and '.join(map(repr, owners))}: add --substrate "
            f"{owners[0]}") if owners else ""
    raise InvalidParameterError(f"preset={preset!r} is invalid for substrate "
                                f"{substrate.name!r}: choose one of {tuple(substrate.presets)}"
                                f"{hint}")
