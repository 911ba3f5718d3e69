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

import sys
from collections.abc import Callable, Sequence
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


def _advance(bar: Any, *, offset: int) -> Callable[[int, int], None]:
    """The simulator's ``progress(done, total)`` callback, moving ``bar`` to ``offset + done``."""

    def progress(done: int, total: int) -> None:
        bar.update(offset + done - bar.n)

    return progress


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
) -> tuple[list[LawResult], Path]:
    """Simulate, check every law on every protocol, write the report; return (results, folder).

    ``dim`` overrides the preset's dimension; ``progress`` shows a tqdm bar on stderr;
    ``command`` is recorded in the report's ``meta``.
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
    from tqdm.auto import tqdm

    from thermocheck import laws, presets

    spec = presets.get(preset)
    grids: dict[str, StateGrid] = {}
    results: list[LawResult] = []
    with tqdm(total=len(protocols) * spec.iterations, desc="thermocheck verify", unit="it",
              unit_scale=True, file=sys.stderr, disable=not progress) as bar:
        for k, protocol in enumerate(protocols):
            bar.set_postfix_str(f"{protocol}: simulating")
            run = spec.run(protocol, seed=seed, d=dim,
                           progress=_advance(bar, offset=k * spec.iterations))
            bar.set_postfix_str(f"{protocol}: checking the laws")
            grids[protocol] = run.grid
            results += [check(run.grid) for check in laws.ALL.values()]
            bar.update((k + 1) * spec.iterations - bar.n)
    folder = Path(out) if out is not None else default_out_dir(preset)
    path = write_report(results, folder, grids=grids, seed=seed, preset=preset, command=command,
                        extra_meta={"substrate": substrate, "protocols": protocols,
                                    "simulation": _run_options(spec, protocols[0], dim)})
    return results, path
