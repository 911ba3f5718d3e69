"""C_p − C_V = R (Appendix D.4)."""

from __future__ import annotations

import numpy as np

from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    first_few,
    law,
    noise_kurtosis,
    nonnegative,
    propagate,
    stencil,
    where,
)
from thermocheck.laws._fit import UnidentifiableFit
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

    Model allowance ``model_tol · ε · R`` (plus a round-off floor), ε the largest over the points
    the derivatives combine. ``ε = η_eff + w κ₄ s`` (:func:`discretisation`, ``s = η_k p``,
    ``κ₄ = (d + 1)/(d − 1)``): η_eff bounds Appendix G's ``E‖∇L(w̄)‖²`` in V and its T-slope, and
    ``κ₄ s`` bounds the relative bias β of the measured V (λ_eff) that discrete steps leave
    (:func:`~thermocheck.laws.ideal_gas`). β grows as ``s ∝ T²`` along a line of constant p
    (``s = η_eff² Tr/2`` under fixed ELR and on the sphere, ``ηλ ∝ T²`` under fixed LR), so each
    logarithmic T-derivative adds ``2β``: ``p (∂V/∂T)_p`` carries ``β + 2β`` (w = 3), and the
    sphere's ``(pV/T) (∂ln p/∂ln T)²`` carries ``β + 2·2β`` (w = 5; ``∂ln p/∂ln V`` at fixed η_eff
    has no β slope). Measured at d = 50, η_eff = 0.1: +49 % under fixed ELR (``s = 0.29``,
    ``3κ₄ s = 0.90``) and −35 % on the sphere (``s = 0.22``, ``5κ₄ s = 1.2``); at the paper's
    d = 3, ``s ≤ 0.01``.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``; ``sq_norm`` (fixed ELR/LR) or ``lambda_eff`` (sphere).
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative error of R to resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True,
              needs=("loss", "radius", "noise"))
    model_tol = nonnegative("model_tol", model_tol)
    skipped: list[str] = []
    if run.protocol == "fixed_sphere":
        checks = _sphere(run, model_tol, skipped)
        how = "C_p − C_V = −(pV/T) (∂ln λ_eff/∂ln T)² / (∂ln λ_eff/∂ln V)"
    else:
        checks = [c for line in run.lines(0) for c in _isobar(run, line, model_tol, skipped)]
        how = "C_p − C_V = p (∂V/∂T)_p along lines of constant λ"
    if not checks:
        run.inconclusive("needs two stationary states at distinct temperatures on a line of "
                         "constant pressure (and, on the sphere, of constant η_eff)"
                         + (f"; left out: {first_few(skipped)}" if skipped else ""))
    c_v = [c.info["C_V"] for c in checks]
    notes = [how, f"C_V = dU/dT ranges over [{min(c_v):.4g}, {max(c_v):.4g}] (R = {run.R:g})"]
    if skipped:
        notes.append(f"{len(skipped)} point(s) left out, their derivatives are not determined: "
                     f"{first_few(skipped)}")
    return run.judge(checks, z=run.z(len(checks)), notes=notes)


def _check(run: Run, state: State, observed: tuple[float, float], c_v: float,
           allowance: float) -> Check:
    """``C_p − C_V = observed`` (value, standard error) at ``state``, with ``C_V = c_v`` and a
    relative model ``allowance``."""
    value, se = observed
    return Check(at=where(state), place=state.hyperparameters, quantity="C_p − C_V",
                 observed=value, expected=run.R, stderr=se,
                 allowance=(allowance + ROUNDOFF) * run.R, scale=run.R,
                 effect=run.effect(run.R), info={"C_V": c_v, "C_p": c_v + value})


#: How often the radius' discretisation bias enters C_p − C_V, counting each logarithmic
#: T-derivative twice (the bias scales as T²): isobars ``p (∂V/∂T)_p``, 1 + 2; the sphere's
#: ``(pV/T) (∂ln p/∂ln T)²``, 1 + 2·2.
BIAS_WEIGHT = {"isobar": 3.0, "fixed_sphere": 5.0}


def _allowance(model_tol: float, states: list[State], weight: float) -> float:
    """``model_tol · ε`` with ``ε = η_eff + weight κ₄ η_k p`` the largest over the states a
    derivative combines."""
    return model_tol * max(discretisation(s, weight * noise_kurtosis(s.d)) for s in states)


def _isobar(run: Run, line: list[State], model_tol: float, skipped: list[str]) -> list[Check]:
    """fixed ELR/LR: one line of constant λ, ordered by temperature; points whose derivative the
    line cannot determine (repeated temperatures) are added to ``skipped`` with the reason."""
    line = sorted(line, key=lambda s: s.temperature)
    T = np.array([s.temperature for s in line])
    U = np.array([run.need(s, "loss").value for s in line])
    for s in line:
        run.need(s, "sq_norm")
    V = [s.volume for s in line]
    out = []
    for i, state in enumerate(line):
        try:
            idx, w = stencil(T, i)
        except UnidentifiableFit as err:
            skipped.append(f"{where(state)} ({err})")
            continue
        # p (∂V/∂T)_p = p Σ w_k V_k: linear in the measured V, so its error is exact
        observed = (state.pressure * float(w @ [V[k].value for k in idx]),
                    state.pressure * float(np.sqrt(np.sum((w * [V[k].stderr for k in idx]) ** 2))))
        out.append(_check(run, state, observed, float(w @ U[idx]),
                          _allowance(model_tol, [line[k] for k in idx], BIAS_WEIGHT["isobar"])))
    return out


def _sphere(run: Run, model_tol: float, skipped: list[str]) -> list[Check]:
    """fixed sphere: log-derivatives of λ_eff along both axes at every point; points whose
    derivatives their lines cannot determine are added to ``skipped`` with the reason."""
    along_elr = {id(s): line for line in run.lines(0) for s in line}
    along_radius = {id(s): line for line in run.lines(1) for s in line}
    out = []
    for state in run.states:
        if id(state) in along_elr and id(state) in along_radius:
            try:
                out.append(_sphere_point(run, state, along_elr[id(state)],
                                         along_radius[id(state)], model_tol))
            except UnidentifiableFit as err:
                skipped.append(f"{where(state)} ({err})")
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
    return _check(run, state, observed, float(wc @ U[ic]),
                  _allowance(model_tol, support, BIAS_WEIGHT["fixed_sphere"]))
