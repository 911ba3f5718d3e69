"""V2: each stationary state minimises the thermodynamic potential at its own T and p."""

from __future__ import annotations

import math

import numpy as np

from thermocheck.errors import check_positive
from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    law,
    nonnegative,
    where,
    z_one_sided,
)
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["potential_minimum"]

LAW = "potential_minimum"


@law
def potential_minimum(
    grid: GridLike,
    *,
    k: float | None = None,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
) -> LawResult:
    """V2: ``argmin_i G_i(*) = *`` (Eq. 22), up to the measurements' noise.

    Under fixed ELR and fixed LR, for every grid point ``*`` and every state ``i`` of the grid,
    ``G_i(*) = U_i − T_* S_i + p_* V_i`` (Gibbs at the point's temperature and pressure, from the
    state equations; U, S, V measured, with ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` of Eq. 28 and
    ``V = E‖w‖²/2``). On the fixed sphere V is fixed: for each radius the Helmholtz energy
    ``F_i(*) = U_i − T_* S_i`` over the states of that radius (the ELR axis). Needs U to be the
    energy.

    Statistics (READINGS: an exact argmin is not demanded): a point passes when
    ``G_*(*) − min_{i≠*} G_i(*) ≤ k σ + allowance``, one-sided, with σ the propagated standard error
    of the difference of the two G's. ``k = Φ⁻¹(1 − α/N)`` over the N ordered pairs (*, i) the rule
    could compare (Bonferroni; valid although the rival is chosen by the data, since its event lies
    in the union over all pairs). The result also reports where the minimiser lies, in grid steps
    (Chebyshev distance in the index grid).

    Model allowance: discrete steps shift the stationary state's temperature and volume by a
    relative ``ε = η_eff + η_k p`` (:func:`~thermocheck.laws._common.discretisation`), which moves
    ``G_i(*) − G_*(*)`` by at most its first-order slope, ``R (|T_i − T_*| + T_* |V_i/V_* − 1|) ε``
    at low temperature (``C_V ≈ R``); the allowance is ``model_tol`` times that. A point is decided
    when the data exclude the minimiser one step away: when the upper bound
    ``G_*(*) − min_{i≠*} G_i(*) + k σ + allowance`` is below the depth of the minimum towards the
    nearest neighbour, ``R T_* [(t − 1 − log t) + (v − 1 − log v)]`` with ``t = T_j/T_*``,
    ``v = V_j/V_*`` (the low-T Gibbs energy, exact for ``U = RT``).

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``, ``sphere_entropy``, and ``sq_norm``, ``mean_radius`` off the sphere.
    k : float, optional
        Standard errors a point may lie above the minimum; default from ``alpha`` as above.
    alpha : float
        Family-wise false-alarm rate (used when ``k`` is None).
    model_tol : float
        Coefficient of the model allowance (>= 0).
    """
    run = Run(LAW, grid, alpha=alpha, needs_energy=True)
    model_tol = nonnegative("model_tol", model_tol)
    sphere = run.protocol == "fixed_sphere"
    groups = run.lines(0) if sphere else [list(run.states)]
    pairs = sum(len(g) * (len(g) - 1) for g in groups)
    if pairs == 0:
        run.inconclusive("needs at least two stationary states" +
                         (" of one radius" if sphere else ""))
    k = z_one_sided(run.alpha, pairs) if k is None else float(check_positive("k", k))
    checks = [c for g in groups for c in _group_checks(run, g, k, model_tol, sphere)]
    steps = [c.info["argmin_steps"] for c in checks]
    where_min = (f"the minimiser of {'F' if sphere else 'G'}(*) is the point itself at "
                 f"{steps.count(0)} of {len(steps)} points, at most {max(steps)} grid step(s) away")
    return run.judge(checks, z=k, notes=[where_min],
                     significance=f"one-sided k, Bonferroni over {pairs} ordered pairs",
                     effect_meaning="the depth of the minimum towards the nearest neighbour")


def _group_checks(run: Run, group: list[State], k: float, model_tol: float,
                  sphere: bool) -> list[Check]:
    """The checks of one set of mutually compared states (the grid, or one radius)."""
    U = [run.need(s, "loss") for s in group]
    for s in group:
        run.need(s, "sphere_entropy")
        if not sphere:
            run.need(s, "sq_norm")
            run.need(s, "mean_radius")
    S = [s.entropy for s in group]
    V = [s.volume for s in group]
    u, su = np.array([e.value for e in U]), np.array([e.stderr for e in U])
    s_, ss = np.array([e.value for e in S]), np.array([e.stderr for e in S])
    v, sv = np.array([e.value for e in V]), np.array([e.stderr for e in V])
    T = np.array([s.temperature for s in group])
    p = np.zeros(len(group)) if sphere else np.array([s.pressure for s in group])
    index = np.array([run.index(s) for s in group])
    out = []
    for a, state in enumerate(group):
        G = u - T[a] * s_ + p[a] * v
        var = su**2 + T[a] ** 2 * ss**2 + p[a] ** 2 * sv**2
        rivals = np.delete(np.arange(len(group)), a)
        m = int(rivals[np.argmin(G[rivals])])
        slope = run.R * (abs(T[m] - T[a]) + T[a] * abs(v[m] / v[a] - 1))
        size = abs(u[a]) + T[a] * abs(s_[a]) + p[a] * v[a]
        steps = np.abs(index - index[a]).max(axis=1)
        near = np.flatnonzero(np.abs(index - index[a]).sum(axis=1) == 1)
        t, w = T[near] / T[a], v[near] / v[a]
        depth = (float(run.R * T[a] * np.min(t - 1 - np.log(t) + w - 1 - np.log(w)))
                 if near.size else None)
        out.append(Check(
            at=where(state), place=state.hyperparameters,
            quantity="F_*(*)" if sphere else "G_*(*)", observed=float(G[a]),
            expected=float(G[m]), stderr=math.sqrt(var[a] + var[m]),
            allowance=model_tol * discretisation(state) * slope + ROUNDOFF * size,
            scale=run.R * T[a], effect=depth, one_sided=True,
            info={"rival": where(group[m]), "argmin": where(group[int(np.argmin(G))]),
                  "argmin_steps": int(steps[int(np.argmin(G))]), "T": float(T[a]),
                  "p": float(p[a])},
        ))
    return out
