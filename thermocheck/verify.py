"""``thermocheck verify`` as a function: simulate a preset's grids, check every law, write a report.

>>> results, path = verify(protocols=["fixed_lr"], preset="quick", seed=0)  # doctest: +SKIP

Each protocol's grid is simulated on the isotropic-noise substrate (:mod:`thermocheck.simulator`)
with the preset's hyperparameters and run lengths (:mod:`thermocheck.presets`); each of the laws in
:data:`thermocheck.laws.ALL` is checked on it, so every pair of law and protocol gets a result
(``not_applicable`` ones included, never dropped); the report goes to ``out`` (default: a new
``reports/verify-<preset>-<UTC time>/``). :func:`thermocheck.report.exit_code` turns the results
into the command's exit code.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_choice, check_dimension
from thermocheck.report import write_report
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

__all__ = ["SUBSTRATES", "default_out_dir", "verify"]

#: Substrates ``verify`` runs itself; ``net`` is dispatched by the CLI to :mod:`thermocheck.nets`.
SUBSTRATES = ("isotropic",)


def default_out_dir(preset: str, root: str | Path = "reports") -> Path:
    """A new, not yet existing folder ``<root>/verify-<preset>-<UTC time>[-n]``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(root) / f"verify-{preset}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def _run_options(spec: Any, protocol: str, dim: int | None) -> dict[str, Any]:
    """The simulator's options, less the grid (the report's ``states`` hold it)."""
    return {k: v for k, v in spec.options(protocol, d=dim).items() if k != "grid"}


def verify(
    substrate: str = "isotropic",
    protocols: Sequence[str] = theory.PROTOCOLS,
    preset: str = "quick",
    out: str | Path | None = None,
    seed: int = 0,
    dim: int | None = None,
    progress: bool = True,
    *,
    command: str | None = None,
    sweep: Mapping[str, Any] | None = None,
) -> tuple[list[LawResult], Path]:
    """Simulate, check every law on every protocol, write the report; return (results, folder).

    ``dim`` overrides the preset's dimension; ``progress`` prints the shards' progress on stderr;
    ``command`` is recorded in the report's ``meta``; ``sweep`` holds the keywords of
    :func:`thermocheck.sweep.run_sweeps` (``executor``, ``cache``, ``force``, ``shard_size``):
    points already in the results cache are not simulated again.
    """
    check_choice("substrate", substrate, SUBSTRATES)
    protocols = [theory.check_protocol(p) for p in protocols]
    if not protocols:
        raise InvalidParameterError("protocols is empty: give at least one of "
                                    f"{theory.PROTOCOLS}")
    if seed < 0:
        raise InvalidParameterError(f"seed={seed!r} is invalid: seed must be an integer >= 0")
    if dim is not None:
        dim = check_dimension(dim, name="dim")
    from thermocheck import laws, presets
    from thermocheck.sweep import SweepSpec, run_sweeps

    spec = presets.get(preset)
    specs = []
    for protocol in protocols:
        kw = spec.options(protocol, d=dim)
        specs.append(SweepSpec(protocol, kw.pop("d"), kw.pop("grid"), kw.pop("iterations"), seed,
                               options=kw))
    sweeps = run_sweeps(specs, progress=progress, **dict(sweep or {}))
    grids: dict[str, StateGrid] = {}
    results: list[LawResult] = []
    for done in sweeps:
        if done.grid is not None:
            grids[done.spec.protocol] = done.grid
        results += [done.check(law) for law in laws.ALL.values()]
    folder = Path(out) if out is not None else default_out_dir(preset)
    path = write_report(results, folder, grids=grids, seed=seed, preset=preset, command=command,
                        extra_meta={"substrate": substrate, "protocols": protocols,
                                    "simulation": _run_options(spec, protocols[0], dim),
                                    "sweep": [done.to_dict() for done in sweeps]})
    return results, path
