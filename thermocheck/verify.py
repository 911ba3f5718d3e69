"""``thermocheck verify`` as a function: run a substrate's preset, check its laws, write a report.

>>> results, path = verify(protocols=["fixed_lr"], preset="quick", seed=0)  # doctest: +SKIP
>>> results, path = verify(substrate="net", preset="cpu-tiny", device="cpu")  # doctest: +SKIP

One path serves every substrate of :mod:`thermocheck.substrates`: the substrate's ``plan`` turns
the preset and options into sweeps (:mod:`thermocheck.sweep`: sharded, cached, resumable), each
grid is checked by the laws the substrate declares (every pair of law and protocol gets a result,
``not_applicable`` ones included, never dropped), and the report goes to ``out`` (default: a new
``reports/verify-<preset>-<UTC time>/``, ``verify-<substrate>-<preset>-…`` for a substrate other
than the default). :func:`thermocheck.report.exit_code` turns the results into the command's exit
code; the substrate's known deviations (:mod:`thermocheck.deviations`) are shown, never counted.

Usage errors (an invalid value, a report folder or results cache that cannot take files, a
missing optional dependency) raise before any work. A shard that fails during the run (a crashed
worker) does not stop it: the report of what finished is written, with the failures, and then
:class:`~thermocheck.errors.RunError` is raised.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from thermocheck import substrates, theory
from thermocheck.errors import (
    InvalidParameterError,
    RunError,
    check_dimension,
    check_writable_folder,
)
from thermocheck.report import write_report
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

__all__ = ["default_out_dir", "verify"]


def default_out_dir(preset: str, root: str | Path = "reports") -> Path:
    """A new, not yet existing folder ``<root>/verify-<preset>-<UTC time>[-n]``."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    base = Path(root) / f"verify-{preset}-{stamp}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    return path


def report_name(substrate: str, preset: str) -> str:
    """How default report folders name a run: the preset, prefixed by the substrate unless it
    is the default one (``quick``, ``net-cpu-tiny``)."""
    return preset if substrate == substrates.DEFAULT_SUBSTRATE else f"{substrate}-{preset}"


def _check_protocols(protocols: Sequence[str] | None) -> list[str] | None:
    if protocols is None:
        return None
    if isinstance(protocols, str):
        protocols = [protocols]
    checked: list[str] = [theory.check_protocol(p) for p in protocols]
    if not checked:
        raise InvalidParameterError(f"protocols is empty: give at least one of {theory.PROTOCOLS}")
    return checked


def _check_options(substrate: substrates.Substrate, options: Mapping[str, Any]) -> None:
    unknown = sorted(set(options) - set(substrate.options))
    if unknown:
        owners = [s.name for s in substrates.substrates().values() if set(unknown) & set(s.options)]
        hint = f" (see substrate {' or '.join(map(repr, owners))})" if owners else ""
        raise InvalidParameterError(
            f"options {unknown} are not options of substrate={substrate.name!r}{hint}: it takes "
            f"{substrate.options or 'no further options'}")


def verify(
    *,
    substrate: str = substrates.DEFAULT_SUBSTRATE,
    preset: str | None = None,
    protocols: Sequence[str] | None = None,
    seed: int = 0,
    dim: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    command: str | None = None,
    sweep: Mapping[str, Any] | None = None,
    **options: Any,
) -> tuple[list[LawResult], Path]:
    """Run ``substrate``'s ``preset``, check its laws on every protocol, write the report; return
    (results, report folder).

    Parameters
    ----------
    substrate
        A name of :func:`thermocheck.substrates.substrates` (default ``isotropic``).
    preset
        One of that substrate's presets (default: its first; ``thermocheck verify --help`` lists
        them). A preset of another substrate is refused, naming that substrate.
    protocols
        Protocols to check (default: the preset's, all three on the simulator).
    seed, dim
        The seed of every grid point's random stream; the dimension d (default: the preset's; a
        network's d is set by its architecture, so there it is noted and ignored).
    out
        Report folder (default: a new one under ``reports/``, :func:`default_out_dir`).
    progress, command
        Print the shards' progress on stderr; the command line recorded in the report's ``meta``.
    sweep
        Keywords of :func:`thermocheck.sweep.run_sweeps` (``executor``, ``cache``, ``force``,
        ``shard_size``): points already in the results cache are not measured again.
    **options
        The substrate's own options (``Substrate.options``): ``momentum`` and ``nesterov`` on the
        simulator (SGD momentum β; the rate axis is scaled by ``(1 − β)^{3/2}``), ``model``,
        ``dataset``, ``data_dir``, ``device``, ``iters``, ``compile`` on networks.

    Raises
    ------
    InvalidParameterError, MissingDependencyError, DatasetUnavailableError
        Before any work: an invalid value, an option or preset of another substrate, an ``out``
        or cache folder that cannot take files, a missing optional dependency.
    RunError
        After writing the report, when shards failed during the run (their points are missing).
    """
    chosen = substrates.get(substrate)
    preset = substrates.resolve_preset(chosen, preset)
    checked = _check_protocols(protocols)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
        raise InvalidParameterError(f"seed={seed!r} is invalid: seed must be an integer >= 0")
    if dim is not None:
        dim = check_dimension(dim, name="dim")
    _check_options(chosen, options)
    plan = chosen.planner()(preset, checked, seed=seed, dim=dim, **options)
    folder = check_writable_folder(
        "out", out if out is not None else default_out_dir(report_name(chosen.name, preset)))
    from thermocheck import laws
    from thermocheck.sweep import run_sweeps
    from thermocheck.sweep.run import failures

    sweeps = run_sweeps(plan.specs, progress=progress, **dict(sweep or {}))
    grids: dict[str, StateGrid] = {}
    results: list[LawResult] = []
    for done in sweeps:
        if done.grid is not None:
            grids[done.spec.protocol] = done.grid
        results += [done.check(laws.ALL[name], **kw) for name, kw in chosen.law_checks(done.spec)]
    errors = failures(sweeps)
    path = write_report(results, folder, grids=grids, seed=seed, preset=preset, command=command,
                        extra_meta={"substrate": chosen.name,
                                    "protocols": [s.protocol for s in plan.specs], **plan.meta,
                                    "sweep": [done.to_dict() for done in sweeps]},
                        errors=errors)
    if errors:
        raise RunError(errors, results=results, report=path)
    return results, path
