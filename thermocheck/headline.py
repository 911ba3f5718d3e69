"""The headline of a law result: did it hold, by how much, where, in one line a reader can trust.

A :class:`Headline` names the quantity the law compares, in the paper's terms, gives its measured
value with its standard error and the band the verdict allowed, all in the same units, and a plain
reading. The quantity is fixed by the law, never "the worst check" (which jumps between seeds
from one kind of number to another):

* Maxwell relations on fixed LR / ELR (V3): the fit's main coefficient ratio, ``(a1 − a2)/R``
  (Eq. 23) or ``a2/R`` (Eq. 85), ± its standard error; the relation's maximal relative error over
  the grid (Table 4) in the reading.
* Potential minimisation (V2): the largest distance of a fitted minimiser from its point, in grid
  steps (Eq. 22); a grid judged only pointwise shows ``G_*(*) − min G_*`` in units of ``R T_*``.
* Every other law: the largest relative deviation from the prediction over the points (relative
  to the law's natural scale, e.g. the predicted ``E‖w‖²`` for V1, R for ``C_p − C_V``), with its
  relative standard error and band; the median deviation in the reading.

Passes that rest on the model allowance (``|z| > z_crit`` but inside ``z_crit·se + allowance``) and
one-sided comparisons say so. Only the details a law records (:meth:`Check.record
<thermocheck.laws._common.Check.record>`) are read, so reports loaded from disk get the same
headline.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thermocheck.results import LawResult

__all__ = ["Headline", "headline", "point_units"]

#: Per law: what its relative residual measures, with the paper's equation.
_RELATIVE: dict[str, str] = {
    "ideal_gas": "({quantity} − predicted)/predicted, state equation pV = RT (Eq. 12, 19, 84; "
                 "corrected: Eq. 119–121)",
    "maxwell": "(slope − R/V)/(R/V) of {quantity} at each radius (Eq. 82)",
    "first_law": "ΔU − (∫T dS − ∫p dV), relative to the segment's largest term (App. D.2)",
    "heat_capacity": "(C_p − C_V − R)/R (Eq. 97)",
    "adiabatic": "∂S along the predicted adiabat, relative to |∇S| (Eq. 29–31)",
    "vmf_closed_form": "residual of U, S(ρ) as a relative temperature error, κ = 1/T (App. E)",
    "norm_balance": "mean per-step norm-balance residual / E‖w‖² (Eq. 111)",
    "potential_minimum": "G_*(*) − min G_*, in units of R T_* (one-sided, Eq. 22)",
}

#: Maxwell relations fitted as one surface (Eq. 34): their main ratio heads the result.
_SURFACE_RELATIONS = {"fixed_lr": "Eq. 23", "fixed_elr": "Eq. 85"}

_FITTED = "fitted minimiser"


@dataclass(frozen=True)
class Headline:
    """What a result compares and how it came out.

    ``value``, ``stderr``, ``tolerance`` (the band's half-width, ``z·se + allowance``) and
    ``expected`` share ``units`` (``"relative"``: a fraction, shown in percent; ``"grid steps"``;
    ``"ratio"``: the fitted coefficient ratio itself). ``where`` is the point the value was found
    at; ``reading`` a plain sentence. A result with no defined comparison has ``value`` None.
    """

    quantity: str
    units: str
    reading: str
    value: float | None = None
    stderr: float | None = None
    tolerance: float | None = None
    expected: float | None = None
    where: str | None = None

    def measured(self) -> str:
        """``(a1 − a2)/R = 0.993 ± 0.012 (expected 1)`` or ``−2.1% ± 0.8%``; — without a value."""
        if self.value is None:
            return "—"
        text = _show(self.value, self.units, signed=True)
        if self.stderr is not None and math.isfinite(self.stderr):
            text += f" ± {_show(self.stderr, self.units)}"
        if self.units == "ratio":
            text += f" (expected {self.expected:g})"
        return text

    def band(self) -> str:
        """The band the verdict allowed, in the value's units: ``±3.4%``, ``±1.1 steps``."""
        if self.tolerance is None or not math.isfinite(self.tolerance):
            return "—"
        return f"±{_show(self.tolerance, self.units)}"

    def to_dict(self) -> dict[str, Any]:
        return {"quantity": self.quantity, "units": self.units, "value": self.value,
                "stderr": self.stderr, "tolerance": self.tolerance, "expected": self.expected,
                "where": self.where, "reading": self.reading}


def _show(value: float, units: str, signed: bool = False) -> str:
    sign = "+" if signed else ""
    if units == "relative":
        return f"{100 * value:{sign}.2g}%"
    if units == "grid steps":
        return f"{value:{sign}.2g} steps"
    return f"{value:{sign}.4g}"


def _defined(p: Mapping[str, Any]) -> bool:
    return all(isinstance(p.get(k), (int, float)) and math.isfinite(p[k])
               for k in ("observed", "expected", "tolerance", "residual"))


def _scale(p: Mapping[str, Any]) -> float | None:
    """The unit of a detail's relative residual (recorded, or derived from an older report)."""
    scale = p.get("scale")
    if isinstance(scale, (int, float)) and scale:
        return abs(float(scale))
    rel, residual = p.get("relative_residual"), p.get("residual")
    if isinstance(rel, (int, float)) and rel and isinstance(residual, (int, float)) and residual:
        return abs(residual / rel)
    return None


def point_units(p: Mapping[str, Any], law: str) -> tuple[float, str]:
    """The divisor and units that put a detail's residual, standard error and band into the
    units of its law's headline: grid steps for V2's fitted minimiser, its scale otherwise."""
    if law == "potential_minimum" and p.get("method") == _FITTED:
        return 1.0, "grid steps"
    scale = _scale(p)
    return (scale, "relative") if scale else (1.0, "ratio")


def _one_sided(p: Mapping[str, Any], law: str) -> bool:
    return bool(p.get("one_sided")) or (law == "potential_minimum"
                                        and p.get("method") == "pointwise")


def _allowance_note(p: Mapping[str, Any], divisor: float, units: str) -> str:
    """``passes through the model allowance: |z| = 18 > z_crit = 4.8, within allowance 3.1e-3``
    when the residual is significant but inside the allowance; else empty."""
    se, allowance = p.get("stderr") or 0.0, p.get("allowance") or 0.0
    if not (p.get("ok") and se > 0 and allowance > 0):
        return ""
    z = abs(p["residual"]) / se
    z_crit = (p["tolerance"] - allowance) / se
    if z <= z_crit:
        return ""
    return (f"passes through the model allowance: |z| = {z:.3g} > z_crit = {z_crit:.3g}, "
            f"within allowance {_show(allowance / divisor, units)}")


def _short(text: str, limit: int = 180) -> str:
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


def _verdict_phrase(r: LawResult, outside: int, n: int) -> str:
    if r.verdict == "passed":
        return f"held at all {n} checks" if n > 1 else "held"
    if r.verdict == "failed":
        return f"FAILED at {outside} of {n} checks"
    return f"{r.verdict.replace('_', ' ')}: {_short(r.reason)}"


def headline(r: LawResult) -> Headline:
    """The headline of ``r`` (module docstring)."""
    points = [p for p in r.details if _defined(p)]
    if not points:
        what = _RELATIVE.get(r.law, "relative residual")
        return Headline(quantity=what.format(quantity="the measured quantity"), units="relative",
                        reading=_verdict_phrase(r, 0, 0) if r.reason else "nothing compared")
    if r.law == "maxwell" and r.protocol in _SURFACE_RELATIONS:
        return _ratio(r, points)
    fitted = [p for p in points if r.law == "potential_minimum" and p.get("method") == _FITTED]
    return _largest(r, fitted or points)


def _ratio(r: LawResult, points: Sequence[Mapping[str, Any]]) -> Headline:
    """V3 on a fitted surface: the main ratio (the first of the fit's checks)."""
    main = points[0]
    inside = sum(bool(p.get("ok")) for p in points)
    worst = r.residual
    relation = (f"; the relation's max relative error over the grid {100 * worst:.2g}% (Table 4)"
                if worst is not None and math.isfinite(worst) else "")
    extra = _allowance_note(main, 1.0, "ratio")
    phrase = "held" if r.passed else _verdict_phrase(r, len(points) - inside, len(points))
    reading = (f"{phrase}: {inside} of {len(points)} fitted ratios within their band{relation}"
               + (f"; {extra}" if extra else ""))
    return Headline(quantity=f"{main['quantity']}, fitted coefficient ratio of Eq. 34 "
                             f"({_SURFACE_RELATIONS[r.protocol]})",
                    units="ratio", value=float(main["observed"]), stderr=main.get("stderr"),
                    tolerance=float(main["tolerance"]), expected=float(main["expected"]),
                    where=None, reading=reading)


def _largest(r: LawResult, points: Sequence[Mapping[str, Any]]) -> Headline:
    """The point with the largest deviation in the law's units (decided or failing points first:
    an undecided point's deviation says nothing)."""
    telling = [p for p in points if p.get("ok") is False or p.get("decided")] or list(points)
    units = {point_units(p, r.law)[1] for p in telling}
    if len(units) > 1:  # mixed: keep the law's main units (steps, else relative)
        telling = [p for p in telling if point_units(p, r.law)[1] != "ratio"] or telling
    deviations = [(p["residual"] / point_units(p, r.law)[0], p) for p in telling]
    value, p = max(deviations, key=lambda item: abs(item[0]))
    divisor, unit = point_units(p, r.law)
    median = statistics.median(v for v, _ in deviations)
    outside = sum(q.get("ok") is False for q in points)
    quantity = ("offset of the fitted minimiser of G_* from its point (Eq. 22)"
                if unit == "grid steps"
                else _RELATIVE.get(r.law, "relative residual of {quantity}"))
    sided = ("; one-sided: only an excess counts" if _one_sided(p, r.law) else "")
    extra = _allowance_note(p, divisor, unit)
    reading = (f"{_verdict_phrase(r, outside, len(points))}; largest {_show(value, unit, True)} "
               f"at {p.get('at', '?')} (band {_show(p['tolerance'] / divisor, unit)}{sided}), "
               f"median {_show(median, unit, True)} over {len(deviations)}"
               + (f"; {extra}" if extra else ""))
    se = p.get("stderr")
    return Headline(quantity=quantity.format(quantity=p.get("quantity", "the quantity")),
                    units=unit, value=float(value),
                    stderr=float(se) / divisor if isinstance(se, (int, float)) else None,
                    tolerance=float(p["tolerance"]) / divisor, expected=0.0,
                    where=str(p.get("at", "")) or None, reading=reading)
