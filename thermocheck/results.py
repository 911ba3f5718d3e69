"""The frozen result every law returns, with a self-explaining assertion."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["VERDICTS", "LawFailure", "LawResult", "Verdict"]

Verdict = Literal["passed", "failed", "inconclusive", "not_applicable"]
VERDICTS: tuple[Verdict, ...] = ("passed", "failed", "inconclusive", "not_applicable")


class LawFailure(AssertionError):
    """Raised by :meth:`LawResult.assert_passed`; the message explains the failure."""


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
    other than ``passed`` carries a ``reason``.
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

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict={self.verdict!r} must be one of {VERDICTS}")
        if self.verdict != "passed" and not self.reason:
            raise ValueError(f"a {self.verdict!r} result needs a reason")
        object.__setattr__(self, "details", tuple(self.details))
        object.__setattr__(self, "notes", tuple(self.notes))

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the ``results`` entries of ``report.json``)."""
        return _clean({
            "law": self.law, "protocol": self.protocol, "substrate": self.substrate, "d": self.d,
            "verdict": self.verdict, "passed": self.passed, "observed": self.observed,
            "expected": self.expected, "tolerance": self.tolerance, "residual": self.residual,
            "reason": self.reason, "details": list(self.details), "notes": list(self.notes),
        })

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LawResult:
        keys = ("law", "protocol", "substrate", "verdict", "observed", "expected", "tolerance",
                "residual", "reason", "details", "notes", "d")
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
        """A multi-line explanation: the summary, the worst points, the notes."""
        lines = [self.summary()]
        bad = [p for p in self.details if p.get("ok") is False]
        for p in bad[:max_points]:
            lines.append("  point " + ", ".join(f"{k}={_short(v)}" for k, v in p.items()))
        if len(bad) > max_points:
            lines.append(f"  … and {len(bad) - max_points} more failing points")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)

    def assert_passed(self, *, allow_inconclusive: bool = False) -> None:
        """Raise :class:`LawFailure` unless the law passed (or, when allowed, was inconclusive).

        ``not_applicable`` fails too: asking a law that does not apply to pass is a test bug.
        """
        __tracebackhide__ = True
        if self.passed or (allow_inconclusive and self.verdict == "inconclusive"):
            return
        raise LawFailure(self.explain())


def _short(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)
