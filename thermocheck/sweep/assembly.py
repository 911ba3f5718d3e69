"""A sweep's result, read back from the cache: the finished grid, the missing points, the errors.

Reports are assembled from the cache, never from what the jobs returned, so a report after a
resume is the report of an uninterrupted run. :meth:`SweepResult.check` runs a law on the points
that have finished: a grid too incomplete for the law gives an ``inconclusive`` result that names
the missing points, never an exception.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from thermocheck.errors import GridError
from thermocheck.results import LawResult
from thermocheck.states import State, StateGrid
from thermocheck.sweep.cache import ResultsCache
from thermocheck.sweep.shards import SweepSpec

__all__ = ["SCHEMA_VERSION", "SweepResult", "assemble"]

#: Version of :meth:`SweepResult.to_dict`'s format.
SCHEMA_VERSION = 1

_SHOWN = 5


def _point(point: Mapping[str, float]) -> str:
    return ", ".join(f"{k}={v:.6g}" for k, v in point.items())


@dataclass(frozen=True)
class SweepResult:
    """The states of a sweep's grid that have finished, and what is missing.

    Attributes
    ----------
    spec
        What was swept.
    grid
        The finished states, in grid order (None when no point has finished).
    missing
        The points without a state, in grid order.
    errors
        Why shards failed in this run (empty when none did).
    measured
        Points this run measured (the others came from the cache, or from a concurrent run);
        not part of :meth:`to_dict`, which is the same for every run of one grid.
    """

    spec: SweepSpec
    grid: StateGrid | None
    missing: tuple[dict[str, float], ...] = ()
    errors: tuple[str, ...] = ()
    measured: int = 0

    @property
    def complete(self) -> bool:
        return not self.missing

    def missing_summary(self) -> str:
        """E.g. ``2 of 20 points missing: lr=0.01, wd=0.001; lr=0.01, wd=0.01``."""
        total = len(self.missing) + (len(self.grid) if self.grid is not None else 0)
        shown = "; ".join(_point(p) for p in self.missing[:_SHOWN])
        more = f"; … and {len(self.missing) - _SHOWN} more" if len(self.missing) > _SHOWN else ""
        return f"{len(self.missing)} of {total} points missing: {shown}{more}"

    def check(self, law: Callable[..., LawResult], **options: Any) -> LawResult:
        """``law(grid, **options)`` on the finished points.

        When points are missing, the result's notes say which; when the grid is too incomplete for
        the law (no point at all, or the law raises :class:`~thermocheck.errors.GridError`), the
        result is ``inconclusive`` with that reason.
        """
        if self.grid is None:
            return self._inconclusive(law, options, "grid incomplete: no point has finished; "
                                                    + self.missing_summary())
        try:
            result = law(self.grid, **options)
        except GridError as err:
            reason = f"grid incomplete: {err}"
            if self.missing:
                reason += f" ({self.missing_summary()})"
            return self._inconclusive(law, options, reason)
        if self.missing:
            result = replace(result, notes=(*result.notes, self.missing_summary()))
        return result

    def _inconclusive(self, law: Callable[..., LawResult], options: Mapping[str, Any],
                      reason: str) -> LawResult:
        """An inconclusive result that records the options it was asked with (a known deviation
        is recognised by them, :mod:`thermocheck.deviations`)."""
        return LawResult(law=getattr(law, "__name__", str(law)), protocol=self.spec.protocol,
                         substrate=self.spec.substrate_name, verdict="inconclusive",
                         reason=reason, d=self.spec.d, options=options)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for a report: what was swept, and which points are missing.

        Holds no times or machine fields, so two runs of one grid give the same dict.
        """
        x, y = self.spec.axes
        return {
            "schema_version": SCHEMA_VERSION,
            "protocol": self.spec.protocol,
            "d": self.spec.d,
            "substrate": self.spec.substrate_name,
            "axes": {x: list(self.spec.grid[x]), y: list(self.spec.grid[y])},
            "iterations": self.spec.iterations,
            "seed": self.spec.seed,
            "points": len(self.spec.points()),
            "finished": len(self.grid) if self.grid is not None else 0,
            "missing": [dict(p) for p in self.missing],
            "errors": list(self.errors),
        }


def assemble(spec: SweepSpec, cache: ResultsCache, errors: tuple[str, ...] = ()) -> SweepResult:
    """Read every point of ``spec`` from ``cache`` into a :class:`SweepResult`."""
    found: list[State] = []
    missing: list[dict[str, float]] = []
    for point in spec.points():
        state = cache.get(spec.config(point))
        if state is None:
            missing.append(point)
        else:
            found.append(state)
    return SweepResult(spec, StateGrid(found) if found else None, tuple(missing), errors)
