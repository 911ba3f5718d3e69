"""The frozen result every law returns, with a self-explaining assertion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from thermocheck.errors import InvalidParameterError, LawFailure

__all__ = ["VERDICTS", "LawFailure", "LawResult", "Verdict"]

Verdict = Literal["passed", "failed", "inconclusive", "not_applicable"]
VERDICTS: tuple[Verdict, ...] = ("passed", "failed", "inconclusive", "not_applicable")


def _clean(x: Any) -> Any:
    """JSON-safe copy: non-finite floats become None (a report never shows NaN)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _clean(x.item())
    return x


@dataclass(frozen=True)
class LawResult:
    """Outcome of one law on one grid.

    ``observed`` / ``expected`` are the law's headline numbers (e.g. a fitted coefficient ratio and
    its prediction), ``tolerance`` the allowance the verdict used (from standard errors, plus any
    documented model-error allowance), ``residual`` the headline relative residual. ``details`` has
    one mapping per grid point (or per fitted quantity), ``notes`` free-text remarks. Every verdict
    other than ``passed`` carries a ``reason``. ``usable_states`` counts the states the law could
    use (stationary in the series it needs; None when not counted): a result with none rests on
    nothing measured, and :meth:`assert_passed` never accepts it.
    """

    law: str
    protocol: str
    substrate: str
    verdict: Verdict
    observed: float | None = None
    expected: float | None = None
    tolerance: float | None = None
    residual: float | None = None
    reason: str = ""
    details: Sequence[Mapping[str, Any]] = field(default_factory=tuple)
    notes: Sequence[str] = field(default_factory=tuple)
    d: int | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    usable_states: int | None = None

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise InvalidParameterError(f"verdict={self.verdict!r} must be one of {VERDICTS}")
        if self.verdict != "passed" and not self.reason:
            raise InvalidParameterError(f"a {self.verdict!r} result needs a reason")
        usable = self.usable_states
        if usable is not None and (isinstance(usable, bool) or not isinstance(usable, int)
                                   or usable < 0):
            raise InvalidParameterError(
                f"usable_states={usable!r} must be None or an integer >= 0")
        object.__setattr__(self, "details", tuple(self.details))
        object.__setattr__(self, "notes", tuple(self.notes))
        object.__setattr__(self, "options", dict(self.options))

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def measured(self) -> bool:
        """False when the result rests on no usable state (all diverged, or none stationary in
        what the law needs): nothing was measured, which is not "too noisy to decide"."""
        return self.usable_states != 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``results`` entries of ``report.json``)."""
        return _clean({
            "law": self.law, "protocol": self.protocol, "substrate": self.substrate, "d": self.d,
            "verdict": self.verdict, "passed": self.passed, "observed": self.observed,
            "expected": self.expected, "tolerance": self.tolerance, "residual": self.residual,
            "reason": self.reason, "details": list(self.details), "notes": list(self.notes),
            "options": dict(self.options), "usable_states": self.usable_states,
        })

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LawResult:
        keys = ("law", "protocol", "substrate", "verdict", "observed", "expected", "tolerance",
                "residual", "reason", "details", "notes", "d", "options", "usable_states")
        return cls(**{k: data[k] for k in keys if k in data})

    def summary(self) -> str:
        """One line: law, protocol, verdict, observed vs expected."""
        def fmt(v: float | None) -> str:
            return "—" if v is None else f"{v:.6g}"
        line = (f"{self.law} [{self.protocol}, {self.substrate}]: {self.verdict}; "
                f"observed {fmt(self.observed)}, expected {fmt(self.expected)}, "
                f"tolerance {fmt(self.tolerance)}")
        return line + (f" — {self.reason}" if self.reason else "")

    def explain(self, max_points: int = 5) -> str:
        """A multi-line explanation: the summary, the worst failing points, the notes, and a line
        that reproduces the check.

        A failing point reads ``at lr=0.01, wd=0.001: E‖w‖² = 1.3 ± 0.01, but the law says 1
        [ideal_gas] (tolerance 0.05, residual 0.3)`` when the law reports those fields; other
        details are listed as ``key=value``.
        """
        lines = [self.summary()]
        bad = sorted((p for p in self.details if p.get("ok") is False), key=_excess, reverse=True)
        if bad:
            lines.append(f"  {len(bad)} of {len(self.details)} points fail (worst first):")
        for p in bad[:max_points]:
            lines.append("  " + _describe_point(p, self.law))
        if len(bad) > max_points:
            lines.append(f"  … and {len(bad) - max_points} more failing points")
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.append("  reproduce: " + self.reproduction())
        return "\n".join(lines)

    def reproduction(self) -> str:
        """The call that reproduces this result on the same grid."""
        args = "".join(f", {k}={v!r}" for k, v in self.options.items())
        dim = f", d={self.d}" if self.d is not None else ""
        return (f"thermocheck.laws.{self.law}(grid{args})  # grid: the {self.protocol} states "
                f"({self.substrate}{dim}) this result was computed from")

    def assert_passed(self, *, allow_inconclusive: bool = False) -> None:
        """Raise :class:`LawFailure` unless the law passed (or, when allowed, was inconclusive).

        ``not_applicable`` fails too: asking a law that does not apply to pass is a test bug, and
        so does an inconclusive result with nothing measured (:attr:`measured`).
        """
        __tracebackhide__ = True
        if self.passed or (allow_inconclusive and self.verdict == "inconclusive"
                           and self.measured):
            return
        raise LawFailure(self.explain())


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _excess(point: Mapping[str, Any]) -> float:
    """|residual| / tolerance of a detail (how far outside its band), for sorting."""
    res, tol = point.get("residual"), point.get("tolerance")
    if not isinstance(res, (int, float)) or not isinstance(tol, (int, float)):
        return 0.0
    return abs(res) / tol if tol > 0 else math.inf


def _describe_point(p: Mapping[str, Any], law: str) -> str:
    """``at <where>: <quantity> = <got> ± <err>, but the law says <expected> [law] (…)`` when the
    detail has ``at``, ``quantity``, ``observed``, ``expected`` and ``tolerance``; else
    ``key=value`` pairs."""
    if not all(k in p for k in ("at", "quantity", "observed", "expected", "tolerance")):
        return "point " + ", ".join(f"{k}={_short(v)}" for k, v in p.items())
    err = f" ± {_short(p['stderr'])}" if p.get("stderr") else ""
    return (f"at {p['at']}: {p['quantity']} = {_short(p['observed'])}{err}, but the law says "
            f"{_short(p['expected'])} [{law}] (tolerance {_short(p['tolerance'])}, "
            f"residual {_short(p.get('residual'))})")
