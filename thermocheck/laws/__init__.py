"""The laws of the ideal-gas thermodynamics of SGD, as checks over measured stationary states.

Every law has the signature ``laws.name(grid, *, options) -> LawResult``: ``grid`` is a
:class:`~thermocheck.states.StateGrid`, an iterable of :class:`~thermocheck.states.State` or a
single State (for the per-point laws). The verdict is ``passed``, ``failed``, ``inconclusive``
(too few stationary states, grid incomplete, too noisy to decide) or ``not_applicable`` (with the
reason).
Non-stationary states are left out and listed in the result's details.

Significance: a check passes when ``|residual| ≤ z σ + allowance``: σ is propagated from the
measurements' standard errors (first order), ``z = Φ⁻¹(1 − α/(2n))`` keeps the family-wise
false-alarm rate at ``alpha`` over the n checks (Bonferroni), and the allowance covers the
documented model error of an asymptotic theory (each law's ``model_tol``).

Verdict: ``failed`` when any check lies outside its band. A check is *decided* when the data
exclude the smallest deviation the law must resolve (its ``effect``, usually ``resolution`` = 50%
of the predicted value): ``|residual| + z σ + allowance`` is below it (the equivalence test of the
same level). The law is ``inconclusive`` when fewer than half of its checks are decided (all of
them for the Maxwell ratios, which belong to one fit), else ``passed``; the notes say how many
checks were too noisy to decide.

=====================  ===================================================  =====================
law                    relation (paper)                                     not applicable
=====================  ===================================================  =====================
``ideal_gas``          V1: pV = RT, r* or λ_eff (Eq. 12, 19, 84, 119–121)   —
``potential_minimum``  V2: G (F on the sphere) minimal at its own state     loss ≠ energy
                       (Eq. 22)
``maxwell``            V3: Maxwell relations (Eq. 23, 34, 82–85)            —
``first_law``          dU = T dS − p dV (Appendix D.2)                      loss ≠ energy
``heat_capacity``      C_p − C_V = R (Appendix D.4)                         loss ≠ energy
``adiabatic``          V4: S constant along adiabats (Eq. 29–31, D.4)       loss ≠ energy; sphere
``vmf_closed_form``    U, S(ρ) of the von Mises–Fisher law (Appendix E)     loss ≠ energy; other
                                                                            losses
``norm_balance``       exact one-step norm balance (Eq. 111, docs/theory.md §4)     sphere
=====================  ===================================================  =====================

AdamW states (``State.optimizer["name"] == "adamw"``) make every law above ``not_applicable``.
Their law is :func:`norm_equilibrium`, the rotational equilibrium of Kosson et al. (2024,
arXiv:2305.17212), not a result of the ideal-gas paper; it is not in :data:`ALL`, which holds the
paper's laws, each of which passes on some protocol of an SGD run (``thermocheck verify``), where
``norm_equilibrium`` has nothing to check.
"""

from __future__ import annotations

from collections.abc import Callable

from thermocheck.laws._adiabatic import adiabatic
from thermocheck.laws._first_law import first_law
from thermocheck.laws._heat_capacity import heat_capacity
from thermocheck.laws._ideal_gas import ideal_gas
from thermocheck.laws._maxwell import maxwell
from thermocheck.laws._norm_balance import norm_balance
from thermocheck.laws._norm_equilibrium import norm_equilibrium
from thermocheck.laws._potential import potential_minimum
from thermocheck.laws._vmf import vmf_closed_form
from thermocheck.results import LawResult

__all__ = [
    "ALL",
    "adiabatic",
    "first_law",
    "heat_capacity",
    "ideal_gas",
    "maxwell",
    "norm_balance",
    "norm_equilibrium",
    "potential_minimum",
    "vmf_closed_form",
]

#: Every law by name, in the paper's order.
ALL: dict[str, Callable[..., LawResult]] = {
    "ideal_gas": ideal_gas,
    "potential_minimum": potential_minimum,
    "maxwell": maxwell,
    "first_law": first_law,
    "heat_capacity": heat_capacity,
    "adiabatic": adiabatic,
    "vmf_closed_form": vmf_closed_form,
    "norm_balance": norm_balance,
}
