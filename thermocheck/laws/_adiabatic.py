"""V4: the entropy is constant along the adiabats the state equations predict."""

from __future__ import annotations

import math

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
    where,
)
from thermocheck.laws._fit import least_squares, quadratic_surface
from thermocheck.results import LawResult
from thermocheck.states import Estimate

__all__ = ["adiabatic"]

LAW = "adiabatic"

#: ∂log T/∂x and ∂log T/∂y of the state equation T(x = log η or log η_eff, y = log λ) (THEORY §3).
_LOG_T_SLOPES = {"fixed_lr": (0.5, 0.5), "fixed_elr": (1.0, 0.0)}


@law
def adiabatic(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
) -> LawResult:
    """V4: ``dS = 0`` along the predicted adiabats (Eq. 29–31; Appendix D.4; READINGS).

    The exact adiabat is ``S(ρ_w̄)(T) + R log(2V) = const``. From the state equations
    ``dS = (C_V/T) dT + (R/V) dV = (C_V + R) d log T − R d log p`` (V = RT/p), with ``C_V = dU/dT``
    measured. In the grid's coordinates ``x = log η`` (``log η_eff``), ``y = log λ``, the predicted
    gradient is ``g = ((C_V + R) ∂_x log T, (C_V + R) ∂_y log T − R)`` and the adiabat runs along
    ``u = (−g_y, g_x)/‖g‖``; at every grid point the derivative of the measured total S (Eq. 28)
    along u must vanish. At low T the VMF model has ``C_V = R``: fixed LR adiabats are lines of
    constant η (``pV² ∝ η``, Eq. 29–31), fixed ELR adiabats ``η_eff²/λ = const``. The ``pV^γ`` form
    with ``γ = C_p/C_V`` (exact only where C_V is constant) is reported in the notes. Needs U to be
    the energy (C_V from U); not applicable on the fixed sphere, where V is fixed and an adiabat
    degenerates to constant T.

    Both derivatives come from fits over the 3×3 block of grid points nearest to the point (centred
    inside, shifted inward at the edges): S by the quadratic surface of Eq. 34, U by a parabola in
    the state-equation T (``C_V = b1 + 2 b2 T``). A single quadratic over the whole grid is biased
    at its corners once C_V varies (the VMF C_V falls from R by a relative ``(d − 3) T/2``), by many
    times its own standard error; the local fits' error is O(h³) in the grid step h.

    Statistics: a point passes when ``|∂S/∂u| ≤ z σ + allowance``, with σ combining the surface
    fit's error (its covariance, χ²-inflated, see :mod:`~thermocheck.laws._fit`) and the error of
    C_V, which tilts u (first order); z Bonferroni over the points. Residuals are relative to ‖g‖,
    the predicted |∇S|; a point is decided when the data exclude a derivative of
    ``resolution · ‖g‖`` along the adiabat (``|∂S/∂u| + tolerance`` below it).

    Model allowance ``(model_tol · ε + round-off) · ‖g‖``: discrete steps shift T and r by a
    relative ``ε = η_eff + η_k p``, which changes S's derivatives by about ``R ε`` (as in
    :func:`maxwell`); ε is the largest over the block, since the local fits combine all its values.
    The fits' truncation error is not in the allowance: the grid steps must be small against the
    scale on which C_V varies.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``, ``sphere_entropy``, ``sq_norm``, ``mean_radius`` on a grid of at least 3×3.
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative gradient to resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True, not_applicable={
        "fixed_sphere": "an adiabat at fixed V is degenerate (δQ = dU = 0 fixes T): no process "
                        "to check on the fixed sphere"})
    model_tol = nonnegative("model_tol", model_tol)
    run.need_surface()
    for s in run.states:
        for name in ("sphere_entropy", "sq_norm", "mean_radius"):
            run.need(s, name)
    measured = _Measured(run, [run.need(s, "loss") for s in run.states], model_tol)
    checks = [measured.check(k, block) for k, block in enumerate(_blocks(run))
              if block.size > 6]
    skipped = len(run.states) - len(checks)
    gammas = [(c.info["C_V"] + run.R) / c.info["C_V"] for c in checks]
    low_t = ("lines of constant η (pV² ∝ η)" if run.protocol == "fixed_lr"
             else "η_eff²/λ = const")
    notes = [f"γ = C_p/C_V over the grid: [{min(gammas):.4g}, {max(gammas):.4g}]; pV^γ = const is "
             f"the adiabat only where C_V is constant (low-T VMF: γ = 2, adiabats are {low_t})"]
    if skipped:
        notes.append(f"{skipped} point(s) skipped: fewer than 7 stationary states in their 3×3 "
                     f"block, too few for the local fit")
    return run.judge(checks, z=run.z(len(checks)), notes=notes)


def _blocks(run: Run) -> list[np.ndarray]:
    """For each state (in ``run.states`` order) the indices of its 3×3 block of nearest grid
    points (stationary ones only)."""
    xs, ys = run.states.axis_values()
    where_at = {run.index(s): k for k, s in enumerate(run.states)}
    out = []
    for i, j in where_at:
        i0, j0 = min(max(i - 1, 0), xs.size - 3), min(max(j - 1, 0), ys.size - 3)
        out.append(np.array([where_at[(a, b)] for a in range(i0, i0 + 3)
                             for b in range(j0, j0 + 3) if (a, b) in where_at], dtype=int))
    return out


class _Measured:
    """The grid's coordinates, S, U and T as arrays, and the check at one point."""

    def __init__(self, run: Run, U: list[Estimate], model_tol: float) -> None:
        self.run, self.model_tol = run, model_tol
        x_name, y_name = run.states.axes
        self.x = np.log([getattr(s, x_name) for s in run.states])
        self.y = np.log([getattr(s, y_name) for s in run.states])
        S = [s.entropy for s in run.states]
        self.S, self.S_se = np.array([e.value for e in S]), np.array([e.stderr for e in S])
        self.U, self.U_se = np.array([e.value for e in U]), np.array([e.stderr for e in U])
        self.T = np.array([s.temperature for s in run.states])
        self.eps = np.array([discretisation(s) for s in run.states])

    def check(self, k: int, block: np.ndarray) -> Check:
        run, R, slopes = self.run, self.run.R, _LOG_T_SLOPES[self.run.protocol]
        surface = quadratic_surface(self.x[block], self.y[block], self.S[block], self.S_se[block])
        T = self.T[block]
        energy = least_squares(np.column_stack([np.ones_like(T), T, T**2]), self.U[block],
                               self.U_se[block])
        c_v, c_v_se = energy.combination([0.0, 1.0, 2 * self.T[k]])
        cx, cy = surface.gradient_rows(self.x[k], self.y[k])
        grad = np.array([cx @ surface.coef, cy @ surface.coef])
        value, se_cv = propagate(lambda c: float(_direction(c[0], R, slopes) @ grad), [c_v],
                                 [c_v_se])
        u = _direction(c_v, R, slopes)
        _, se_fit = surface.fit.combination(u[0] * cx + u[1] * cy)
        norm = float(np.hypot(*_gradient(c_v, R, slopes)))
        state = run.states[k]
        return Check(
            at=where(state), place=state.hyperparameters, quantity="∂S/∂u", observed=value,
            expected=0.0, stderr=math.hypot(se_fit, se_cv),
            allowance=(self.model_tol * float(self.eps[block].max()) + ROUNDOFF) * norm,
            scale=norm, effect=run.effect(norm),
            info={"C_V": c_v, "adiabat": _describe(u), "dS_dx": float(grad[0]),
                  "dS_dy": float(grad[1])},
        )


def _gradient(c_v: float, R: float, slopes: tuple[float, float]) -> np.ndarray:
    """The predicted ``(∂S/∂x, ∂S/∂y) = ((C_V + R) ∂_x log T, (C_V + R) ∂_y log T − R)``."""
    return np.array([(c_v + R) * slopes[0], (c_v + R) * slopes[1] - R])


def _direction(c_v: float, R: float, slopes: tuple[float, float]) -> np.ndarray:
    """Unit vector along the predicted adiabat (orthogonal to the predicted gradient)."""
    g = _gradient(c_v, R, slopes)
    return np.array([-g[1], g[0]]) / np.hypot(*g)


def _describe(u: np.ndarray) -> str:
    """The adiabat's direction as ``d log λ / d log η``."""
    return "constant η" if abs(u[0]) <= ROUNDOFF else f"dlogλ/dlogη = {u[1] / u[0]:.4g}"
