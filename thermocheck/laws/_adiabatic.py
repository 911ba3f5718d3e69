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
    first_few,
    law,
    nonnegative,
    propagate,
    where,
)
from thermocheck.laws._entropy import entropies, leave_undecided
from thermocheck.laws._fit import UnidentifiableFit, least_squares, quadratic_surface
from thermocheck.results import LawResult
from thermocheck.states import Estimate

__all__ = ["adiabatic"]

LAW = "adiabatic"

#: ∂log T/∂x and ∂log T/∂y of the state equation T(x = log η or log η_eff, y = log λ)
#: (docs/theory.md §3).
_LOG_T_SLOPES = {"fixed_lr": (0.5, 0.5), "fixed_elr": (1.0, 0.0)}


@law
def adiabatic(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
) -> LawResult:
    """V4: ``dS = 0`` along the predicted adiabats (Eq. 29–31; Appendix D.4; docs/decisions.md).

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
    times its own standard error; the local fits' error is O(h³) in the grid step h. A point whose
    block cannot determine the fits (fewer than 7 states, fewer than 3 distinct temperatures, points
    on one line: :func:`~thermocheck.laws._fit.identifiability`) is left out with the reason; with
    none left the law is inconclusive.

    Statistics: a point passes when ``|∂S/∂u| ≤ z σ + allowance``, with σ combining the surface
    fit's error (its covariance, χ²-inflated, see :mod:`~thermocheck.laws._fit`) and the error of
    C_V, which tilts u (first order); z Bonferroni over the points. Residuals are relative to ‖g‖,
    the predicted |∇S|; a point is decided when the data exclude a derivative of
    ``resolution · ‖g‖`` along the adiabat (``|∂S/∂u| + tolerance`` below it).

    Entropy estimator: where a state records how its S(ρ_w̄) was estimated
    (``extra["entropy_queue"]``), the k-NN estimator's calibrated bias at its κ = 1/T, d and N is
    removed from S first (its standard error joins S's); the calibration's interpolation error
    between dimensions, common to the states, is fitted as S is and its derivative along u joins
    the allowance; a point whose block holds a state where the calibration table had to be left
    is undecided, never failed (:mod:`thermocheck.laws._entropy`).

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
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True,
              needs=("loss", "radius", "directions"), not_applicable={
        "fixed_sphere": "an adiabat at fixed V is degenerate (δQ = dU = 0 fixes T): no process "
                        "to check on the fixed sphere"})
    model_tol = nonnegative("model_tol", model_tol)
    run.need_surface()
    for s in run.states:
        for name in ("sphere_entropy", "sq_norm", "mean_radius"):
            run.need(s, name)
    measured = _Measured(run, [run.need(s, "loss") for s in run.states], model_tol)
    checks: list[Check] = []
    skipped: list[str] = []
    for k, block in enumerate(_blocks(run)):
        try:
            checks.append(measured.check(k, block))
        except UnidentifiableFit as err:
            skipped.append(f"{where(run.states[k])} ({err})")
    if not checks:
        run.inconclusive(f"no point's 3×3 block of stationary states determines the local fits: "
                         f"{first_few(skipped)}")
    gammas = [(c.info["C_V"] + run.R) / c.info["C_V"] for c in checks]
    low_t = ("lines of constant η (pV² ∝ η)" if run.protocol == "fixed_lr"
             else "η_eff²/λ = const")
    notes = [f"γ = C_p/C_V over the grid: [{min(gammas):.4g}, {max(gammas):.4g}]; pV^γ = const is "
             f"the adiabat only where C_V is constant (low-T VMF: γ = 2, adiabats are {low_t})"]
    if skipped:
        notes.append(f"{len(skipped)} point(s) left out, their 3×3 block does not determine the "
                     f"local fits: {first_few(skipped)}")
    return run.judge(checks, z=run.z(len(checks)), notes=[*notes, *measured.entropy.notes()])


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
        self.entropy = entropies(run.states)
        self.S, self.S_se = self.entropy.values, self.entropy.stderrs
        self.U, self.U_se = np.array([e.value for e in U]), np.array([e.stderr for e in U])
        self.T = np.array([s.temperature for s in run.states])
        self.eps = np.array([discretisation(s) for s in run.states])

    def check(self, k: int, block: np.ndarray) -> Check:
        """The check at state ``k`` from the fits over ``block``; raises UnidentifiableFit when
        the block cannot determine them."""
        run, R, slopes = self.run, self.run.R, _LOG_T_SLOPES[self.run.protocol]
        surface = quadratic_surface(self.x[block], self.y[block], self.S[block], self.S_se[block])
        T = self.T[block]
        energy = least_squares(np.column_stack([np.ones_like(T), T, T**2]), self.U[block],
                               self.U_se[block], ("b0 (1)", "b1 (T)", "b2 (T²)"))
        c_v, c_v_se = energy.combination([0.0, 1.0, 2 * self.T[k]])
        cx, cy = surface.gradient_rows(self.x[k], self.y[k])
        grad = np.array([cx @ surface.coef, cy @ surface.coef])
        value, se_cv = propagate(lambda c: float(_direction(c[0], R, slopes) @ grad), [c_v],
                                 [c_v_se])
        u = _direction(c_v, R, slopes)
        _, se_fit = surface.fit.combination(u[0] * cx + u[1] * cy)
        norm = float(np.hypot(*_gradient(c_v, R, slopes)))
        state = run.states[k]
        mode = self._mode_slope(block, u[0] * cx + u[1] * cy)
        check = Check(
            at=where(state), place=state.hyperparameters, quantity="∂S/∂u", observed=value,
            expected=0.0, stderr=math.hypot(se_fit, se_cv),
            allowance=(self.model_tol * float(self.eps[block].max()) + ROUNDOFF) * norm + mode,
            scale=norm, effect=run.effect(norm),
            info={"C_V": c_v, "adiabat": _describe(u), "dS_dx": float(grad[0]),
                  "dS_dy": float(grad[1]), "estimator_mode": mode},
        )
        doubt = self.entropy.doubt(block)
        return leave_undecided(check, doubt) if doubt else check

    def _mode_slope(self, block: np.ndarray, row: np.ndarray) -> float:
        """``|∂/∂u|`` of the calibrated bias's interpolation mode over ``block``, fitted as S is:
        the most it can tilt the measured derivative (:mod:`~thermocheck.laws._entropy`)."""
        mode = self.entropy.modes[block]
        if not np.any(mode):
            return 0.0
        surface = quadratic_surface(self.x[block], self.y[block], mode, self.S_se[block])
        return abs(float(row @ surface.coef))


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
