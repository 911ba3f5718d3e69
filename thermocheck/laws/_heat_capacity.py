"""C_p − C_V = R (Appendix D.4)."""

from __future__ import annotations

import numpy as np

from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    law,
    nonnegative,
    propagate,
    stencil,
    where,
)
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["heat_capacity"]

LAW = "heat_capacity"


@law
def heat_capacity(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
) -> LawResult:
    """``C_p − C_V = R = (d − 1)/2`` at every stationary state (Appendix D.4, Eq. 97).

    fixed ELR and fixed LR (p = λ): along each line of constant λ, ``C_V = dU/dT`` and
    ``C_p = dH/dT`` with ``H = U + pV``, so ``C_p − C_V = p (∂V/∂T)_p``, with V = E‖w‖²/2 measured
    and T from the state equation. fixed sphere (p = λ_eff measured): the general identity
    ``C_p − C_V = −T (∂p/∂T)_V² / (∂p/∂V)_T = −(pV/T) (∂ln p/∂ln T)_V² / (∂ln p/∂ln V)_T``, with
    the derivatives along the ELR axis (fixed r) and the radius axis (fixed η_eff). Derivatives are
    those of the parabola through the three nearest points of the line (:func:`stencil`; two on a
    two-point line), exact for the ideal gas, whose V is linear in T (and ln p linear in ln T and
    ln V). ``C_V = dU/dT`` is reported too (→ R at low T for the VMF model). Needs U to be the
    energy.

    Statistics: a point passes when ``|C_p − C_V − R| ≤ z σ + allowance``, σ propagated to first
    order from the measured values in its stencil, z Bonferroni over the points.

    Model allowance ``model_tol · ε · R`` (plus a round-off floor): discrete steps change V (λ_eff)
    by a relative ``ε = η_eff + η_k p`` that varies along the line, which changes the logarithmic
    slope by about ε; ε is the largest over the points the derivatives combine.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``; ``sq_norm`` (fixed ELR/LR) or ``lambda_eff`` (sphere).
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative error of R to resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True)
    model_tol = nonnegative("model_tol", model_tol)
    if run.protocol == "fixed_sphere":
        checks = _sphere(run, model_tol)
        how = "C_p − C_V = −(pV/T) (∂ln λ_eff/∂ln T)² / (∂ln λ_eff/∂ln V)"
    else:
        checks = [c for line in run.lines(0) for c in _isobar(run, line, model_tol)]
        how = "C_p − C_V = p (∂V/∂T)_p along lines of constant λ"
    if not checks:
        run.inconclusive("needs two stationary states on a line of constant pressure (and, on the "
                         "sphere, of constant η_eff)")
    c_v = [c.info["C_V"] for c in checks]
    return run.judge(checks, z=run.z(len(checks)), notes=[
        how, f"C_V = dU/dT ranges over [{min(c_v):.4g}, {max(c_v):.4g}] (R = {run.R:g})"])


def _check(run: Run, state: State, observed: tuple[float, float], c_v: float,
           allowance: float) -> Check:
    """``C_p − C_V = observed`` (value, standard error) at ``state``, with ``C_V = c_v`` and a
    relative model ``allowance``."""
    value, se = observed
    return Check(at=where(state), place=state.hyperparameters, quantity="C_p − C_V",
                 observed=value, expected=run.R, stderr=se,
                 allowance=(allowance + ROUNDOFF) * run.R, scale=run.R,
                 effect=run.effect(run.R), info={"C_V": c_v, "C_p": c_v + value})


def _allowance(model_tol: float, states: list[State]) -> float:
    """``model_tol · ε`` with ε the largest over the states a derivative combines."""
    return model_tol * max(discretisation(s) for s in states)


def _isobar(run: Run, line: list[State], model_tol: float) -> list[Check]:
    """fixed ELR/LR: one line of constant λ, ordered by temperature."""
    line = sorted(line, key=lambda s: s.temperature)
    T = np.array([s.temperature for s in line])
    U = np.array([run.need(s, "loss").value for s in line])
    for s in line:
        run.need(s, "sq_norm")
    V = [s.volume for s in line]
    out = []
    for i, state in enumerate(line):
        idx, w = stencil(T, i)
        # p (∂V/∂T)_p = p Σ w_k V_k: linear in the measured V, so its error is exact
        observed = (state.pressure * float(w @ [V[k].value for k in idx]),
                    state.pressure * float(np.sqrt(np.sum((w * [V[k].stderr for k in idx]) ** 2))))
        out.append(_check(run, state, observed, float(w @ U[idx]),
                          _allowance(model_tol, [line[k] for k in idx])))
    return out


def _sphere(run: Run, model_tol: float) -> list[Check]:
    """fixed sphere: log-derivatives of λ_eff along both axes at every point."""
    along_elr = {id(s): line for line in run.lines(0) for s in line}
    along_radius = {id(s): line for line in run.lines(1) for s in line}
    out = []
    for state in run.states:
        if id(state) in along_elr and id(state) in along_radius:
            out.append(_sphere_point(run, state, along_elr[id(state)], along_radius[id(state)],
                                     model_tol))
    return out


def _sphere_point(run: Run, state: State, iso_v: list[State], iso_t: list[State],
                  model_tol: float) -> Check:
    """``−(pV/T) a²/b`` at ``state``: a = ∂ln λ_eff/∂ln T on its radius, b = ∂ln λ_eff/∂ln V at
    its η_eff.

    The point belongs to both lines; the λ_eff values enter once each (the point's own value moves
    p, a and b together), so the first-order error is propagated over the distinct states."""
    i, j = iso_v.index(state), iso_t.index(state)
    others = [s for s in iso_t if s is not state]
    lam = [run.need(s, "lambda_eff") for s in (*iso_v, *others)]
    # positions of iso_t's states in the value vector (iso_v first, then the others)
    pos = np.array([i if s is state else len(iso_v) + others.index(s) for s in iso_t])
    lnT = np.log([s.temperature for s in iso_v])
    lnV = np.log([s.volume.value for s in iso_t])
    ia, wa = stencil(lnT, i)
    ib, wb = stencil(lnV, j)
    V, T_point = state.volume.value, state.temperature

    def difference(values: np.ndarray) -> float:
        log = np.log(values)
        a, b = wa @ log[ia], wb @ log[pos[ib]]
        return float(-values[i] * V / T_point * a**2 / b)

    observed = propagate(difference, [e.value for e in lam], [e.stderr for e in lam])
    T = np.exp(lnT)
    U = np.array([run.need(s, "loss").value for s in iso_v])
    ic, wc = stencil(T, i)
    support = [*(iso_v[k] for k in ia), *(iso_t[k] for k in ib)]
    return _check(run, state, observed, float(wc @ U[ic]), _allowance(model_tol, support))
