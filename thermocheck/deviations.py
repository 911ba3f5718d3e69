"""Known deviations: forms of a law that the paper itself predicts not to hold on a substrate.

A law may be run in a form that the theory predicts to deviate on some substrate. On networks the
SDE form of V1 (``ideal_gas(corrected=False)``: ``Tr Σ_w̄`` alone in the state equations, Eq. 12,
19, 84) leaves out Appendix G's full-gradient term ``E‖∇L(w̄)‖²``, which is 5–80 % of ``Tr Σ_w̄``
there, so E‖w‖² lies above its prediction by about that fraction; V1 is decided by the
discretisation-corrected form (Eq. 119–121). Such a result is a measurement, not a verdict on the
substrate: reports show it with its cause and its measured size, and it never counts towards the
overall verdict or the exit code, whatever its verdict.

:data:`KNOWN_DEVIATIONS` lists them, each with the substrate, the law, the form (the options that
select it), the cause and the paper's reference, the way Cantera's thermodynamic consistency suite
maps each known failure to what explains it instead of hiding it in a silent skip.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from thermocheck.results import LawResult

__all__ = ["KNOWN_DEVIATIONS", "KnownDeviation", "counted", "declare", "known_deviation"]


@dataclass(frozen=True)
class KnownDeviation:
    """A form of a law that the theory predicts to deviate on some substrates.

    Attributes
    ----------
    substrates
        The ``LawResult.substrate`` values it concerns.
    law
        The law's name (``thermocheck.laws.ALL`` key).
    options
        The options that select the form (``LawResult.options`` must hold each of them).
    form
        How reports name the form, e.g. ``"SDE form"``.
    cause
        Why the theory predicts the deviation.
    reference
        Where the paper says so.
    explained_by
        ``(details key, label)`` of the measured per-point quantity that explains the size of the
        deviation, if the law reports one.
    """

    substrates: tuple[str, ...]
    law: str
    options: Mapping[str, Any]
    form: str
    cause: str
    reference: str
    explained_by: tuple[str, str] | None = None

    def matches(self, result: LawResult) -> bool:
        """Whether ``result`` is this form of this law on one of these substrates."""
        return (result.substrate in self.substrates and result.law == self.law
                and all(k in result.options and result.options[k] == v
                        for k, v in self.options.items()))

    def measured(self, result: LawResult) -> str:
        """The deviation's measured size, from the result's per-point details: the relative gap
        from this form's prediction and the quantity that explains it (median and range)."""
        parts = [_spread("gap from this form's prediction", result.details, "relative_residual",
                         "+.1%")]
        if self.explained_by is not None:
            parts.append(_spread(self.explained_by[1], result.details, self.explained_by[0],
                                 ".1%"))
        return "; ".join(p for p in parts if p) or "not measured (no point was checked)"


def _spread(label: str, details: Sequence[Mapping[str, Any]], key: str, spec: str) -> str:
    """``label median +12.0% (+4.0% to +30.0%, 9 points)`` over the details that have ``key``,
    each number formatted with ``spec``."""
    values = [float(d[key]) for d in details if isinstance(d.get(key), (int, float))]
    if not values:
        return ""
    return (f"{label} median {statistics.median(values):{spec}} ({min(values):{spec}} to "
            f"{max(values):{spec}}, {len(values)} points)")


#: The known deviations (see the module docstring).
KNOWN_DEVIATIONS: tuple[KnownDeviation, ...] = (
    KnownDeviation(
        substrates=("net", "user"),
        law="ideal_gas",
        options={"corrected": False},
        form="SDE form",
        cause=("the SDE state equations (Eq. 12, 19, 84) leave out the full-gradient term "
               "E‖∇L(w̄)‖² of a finite step, which on networks is a sizeable fraction of "
               "Tr Σ_w̄, so E‖w‖² (λ_eff on the sphere) lies above the SDE prediction; "
               "V1 is decided by the discretisation-corrected form"),
        reference="Appendix G, Eq. 119–121",
        explained_by=("grad_ratio", "E‖∇L(w̄)‖²/Tr Σ_w̄"),
    ),
)


#: The built-in deviations and those substrates declare (:func:`declare`).
_DECLARED: list[KnownDeviation] = list(KNOWN_DEVIATIONS)


def declare(*deviations: KnownDeviation) -> None:
    """Add known deviations that a substrate declares (``thermocheck.substrates.register`` does),
    so that reports show them with their cause and never count them."""
    _DECLARED.extend(k for k in deviations if k not in _DECLARED)


def known_deviation(result: LawResult,
                    deviations: Sequence[KnownDeviation] | None = None
                    ) -> KnownDeviation | None:
    """The entry of ``deviations`` (default: every declared one) that ``result`` is an instance
    of, or None."""
    return next((k for k in (_DECLARED if deviations is None else deviations)
                 if k.matches(result)), None)


def counted(results: Sequence[LawResult]) -> list[LawResult]:
    """The results that decide a run: all but the known deviations."""
    return [r for r in results if known_deviation(r) is None]
