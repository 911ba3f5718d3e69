"""V3: the Maxwell relations of the three protocols (Appendix D.3)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from thermocheck import calibration, theory
from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    first_few,
    law,
    nonnegative,
)
from thermocheck.laws._entropy import Entropies, entropies, leave_undecided
from thermocheck.laws._fit import UnidentifiableFit, least_squares, quadratic_surface
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["maxwell"]

LAW = "maxwell"

#: Series each protocol's relation needs stationary: the entropy surface (radius and directions),
#: or the sphere's λ_eff (the noise's outward push at the fixed radius).
_NEEDS = {"fixed_lr": ("radius", "directions"), "fixed_elr": ("radius", "directions"),
          "fixed_sphere": ("radius", "noise")}

#: Per protocol: (name, coefficient row of a0..a5, prediction), all divided by R (Eq. 34, Table 4).
_RATIOS: dict[str, tuple[tuple[str, tuple[int, ...], float], ...]] = {
    "fixed_lr": (("(a1 − a2)/R", (0, 1, -1, 0, 0, 0), 1.0),
                 ("(2a3 − a5)/R", (0, 0, 0, 2, 0, -1), 0.0),
                 ("(2a4 − a5)/R", (0, 0, 0, 0, 2, -1), 0.0)),
    "fixed_elr": (("a2/R", (0, 0, 1, 0, 0, 0), -1.0),
                  ("2a4/R", (0, 0, 0, 0, 2, 0), 0.0),
                  ("a5/R", (0, 0, 0, 0, 0, 1), 0.0)),
}


@law
def maxwell(
    grid: GridLike,
    *,
    corrected: bool = True,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
    entropy_samples: int | None = None,
    entropy_method: str = "geodesic",
) -> LawResult:
    """V3: the protocol's Maxwell relation.

    fixed LR: ``(∂S/∂log η)_λ − (∂S/∂log λ)_η = (d − 1)/2`` (Eq. 23, 110); fixed ELR:
    ``(∂S/∂log λ)_{η_eff} = −(d − 1)/2`` (Eq. 85). Following the paper, the measured total entropy
    (``S = S(ρ_w̄) + (d − 1) log E‖w‖``, Eq. 28) is fitted by
    ``S = a0 + a1 x + a2 y + a3 x² + a4 y² + a5 xy`` with ``x = log η`` (``log η_eff``),
    ``y = log λ`` (Eq. 34, 108), here centred on the grid so that a1 − a2 (a2) is the relation at
    the grid's centre. The relation holds on the whole grid iff fixed LR ``(a1 − a2)/R = 1``,
    ``(2a3 − a5)/R = 0``, ``(2a4 − a5)/R = 0``; fixed ELR ``a2/R = −1``, ``2a4/R = 0``,
    ``a5/R = 0``. The result reports R², each ratio with its standard error (from the fit's
    covariance, :mod:`~thermocheck.laws._fit`) and, as the headline residual, the maximal relative
    error of the relation over the grid points (Table 4).

    fixed sphere: ``(∂S/∂V)_T = (∂p/∂T)_V = (d − 1)/(2V)`` (Eq. 82). The S-form is vacuous there
    (S(ρ_w̄) depends on T only and the radial term on V only), so at each radius the measured
    ``λ_eff`` is fitted as a straight line in T and its slope compared with ``(d − 1)/(2V) = R/V``.
    With ``corrected``, T is the discretisation-corrected ``η_eff (σ²(d − 1) + E‖∇L(w̄)‖²) / (2(d −
    1))`` that makes Eq. 121 read ``λ_eff = R T / V`` (Appendix G). Errors in T are neglected.

    Statistics: every ratio (slope) passes when ``|ratio − prediction| ≤ z se + allowance`` with
    ``z = Φ⁻¹(1 − α/(2n))`` over the n ratios (slopes). Inconclusive when the grid is smaller than
    3×3 (3 ELR values per radius), or when the fit cannot exclude an error of ``resolution`` (50%)
    of the relation: ``|ratio − prediction| + z se + allowance`` is not below it.

    Model allowance (``model_tol · max ε`` on each ratio, relative to R, plus a round-off floor):
    discrete steps shift T and r by a relative ``ε = η_eff + η_k p`` that varies over the grid,
    which changes ``∂S/∂log η`` by ``C_V ∂ε/∂log η ≈ R ε`` (and λ_eff's slope by ``ε``). The
    quadratic surface's own misfit enters through the fit's errors: a weighted fit's covariance is
    inflated by the reduced χ² when the residuals exceed the errors, and without errors the
    covariance comes from the residual variance.

    Entropy estimator (fixed LR/ELR): the k-NN entropy's bias is large in high d and changes with T
    (:mod:`thermocheck.calibration`, measured on VMF samples). Where a state records how its S(ρ_w̄)
    was estimated (``extra["entropy_queue"]``, as the simulator does), the calibrated bias at its
    κ = 1/T, d and recorded N is removed from S before the fit (its standard error joins S's), and
    the calibration's interpolation error between dimensions, common to the states, is fitted as
    S is and its shift of each ratio joins the allowance; a state where the calibration table had
    to be left makes the ratios undecided, never failed (:mod:`thermocheck.laws._entropy`). States
    that do not record it keep their S; with ``entropy_samples`` the calibrated bias at each
    state's κ for ``d``, N = ``entropy_samples`` and ``entropy_method`` is then fitted exactly as S
    is, and each ratio's allowance grows by ``|shift| + z·stderr`` of that fit. At stationarity
    the bias depends on η_eff (fixed ELR) or ηλ (fixed LR) alone, which the ratios cancel to
    second order, so this allowance is small on complete grids. A ratio outside its band without
    these allowances and inside with them makes the verdict inconclusive: the estimator alone
    could explain the deviation.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        fixed LR/ELR need ``sphere_entropy`` and ``mean_radius``; the sphere needs ``lambda_eff``
        (and ``grad_sq`` when ``corrected``).
    corrected : bool
        fixed sphere only: use the discretisation-corrected temperature.
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative error of the relation to resolve.
    entropy_samples : int, optional
        Directions N behind each entropy estimate of the states that do not record it; None
        (default) leaves their estimator drift out.
    entropy_method : {"geodesic", "angles", "chord"}
        The :func:`~thermocheck.entropy.sphere_entropy` method that measured S(ρ_w̄) there.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs=_NEEDS)
    model_tol = nonnegative("model_tol", model_tol)
    allowance = model_tol * max(discretisation(s) for s in run.states) + ROUNDOFF
    if run.protocol == "fixed_sphere":
        return _sphere(run, corrected, allowance)
    return _surface(run, allowance, entropy_samples, entropy_method)


def _surface(run: Run, allowance: float, samples: int | None, method: str) -> LawResult:
    """fixed LR / fixed ELR: Eq. 34 fitted to the total entropy."""
    run.need_surface()
    states = list(run.states)
    for s in states:
        run.need(s, "sphere_entropy")
        run.need(s, "mean_radius")
    x_name, y_name = run.states.axes
    x = np.log([getattr(s, x_name) for s in states])
    y = np.log([getattr(s, y_name) for s in states])
    entropy = entropies(states)
    try:
        fit = quadratic_surface(x, y, entropy.values, entropy.stderrs)
    except UnidentifiableFit as err:
        run.inconclusive(f"the weighted fit of Eq. 34 over {len(states)} states: {err}")
    R = run.R
    z = run.z(len(_RATIOS[run.protocol]))
    drift, drift_notes = _estimator_drift(run, x, y, entropy, samples, method, z)
    doubt = entropy.doubt(range(len(states)))
    checks = []
    for (name, row, prediction), extra in zip(_RATIOS[run.protocol], drift, strict=True):
        value, se = fit.fit.combination(np.array(row) / R)
        check = Check(at=name, quantity=name, observed=value, expected=prediction, stderr=se,
                      allowance=allowance + extra, effect=run.effect(1.0),
                      info={"estimator_drift": float(extra)})
        checks.append(leave_undecided(check, doubt) if doubt else check)
    # the relation at every grid point, from the fit (Table 4's "max. relative error")
    rhs = theory.maxwell_rhs(run.protocol, run.d)
    errors = []
    for xi, yi in zip(x, y, strict=True):
        cx, cy = fit.gradient_rows(xi, yi)
        lhs = (cx - cy if run.protocol == "fixed_lr" else cy) @ fit.coef
        errors.append(abs(lhs / rhs - 1))
    main = checks[0]
    relation = ("(∂S/∂log η)_λ − (∂S/∂log λ)_η = R" if run.protocol == "fixed_lr"
                else "(∂S/∂log λ)_η_eff = −R")
    notes = [f"fit of Eq. 34 over {len(states)} states: R² = {fit.fit.r2:.4f}, {fit.fit.method}; "
             f"x, y centred at log {x_name} = {fit.x0:.3g}, log {y_name} = {fit.y0:.3g}",
             f"relation {relation} from the fit: max relative error {max(errors):.3g}, mean "
             f"{float(np.mean(errors)):.3g} over the grid points",
             *(f"{c.quantity} = {c.observed:.4g} ± {c.stderr:.2g} (expected {c.expected:g})"
               for c in checks), *drift_notes]
    headline = (main.observed, main.expected, main.tolerance(z), float(max(errors)))
    result = run.judge(checks, z=z, quorum=1.0, headline=headline, notes=notes)
    explained = [c for c, extra in zip(checks, drift, strict=True)
                 if not replace(c, allowance=c.allowance - extra).ok(z)]
    if explained and result.verdict == "passed":
        c = explained[0]
        extra = c.info["estimator_drift"]
        return replace(result, verdict="inconclusive", reason=(
            f"the k-NN estimator's calibrated drift alone could explain the deviation: "
            f"{c.quantity} = {c.observed:.4g} (expected {c.expected:g}) is outside the band "
            f"{c.tolerance(z) - extra:.3g} of the fit, inside it once widened by the estimator "
            f"drift {extra:.3g}"))
    return result


def _estimator_drift(run: Run, x: np.ndarray, y: np.ndarray, entropy: Entropies,
                     samples: int | None, method: str, z: float) -> tuple[np.ndarray, list[str]]:
    """Per ratio, the allowance for what remains of the k-NN estimator's calibrated bias in the
    fit of Eq. 34, and notes on it: the interpolation mode of the bias removed from the states
    that record their estimator, fitted as S is (``|shift|``); and, when some state does not
    record it, with ``samples``, the whole bias carried through the fit (``|shift| + z·stderr``,
    :func:`~thermocheck.calibration.surface_drift`)."""
    rows = np.array([row for _, row, _ in _RATIOS[run.protocol]]) / run.R
    se = entropy.stderrs
    extra = np.zeros(len(rows))
    if np.any(entropy.modes):
        extra += np.abs(rows @ quadratic_surface(x, y, entropy.modes, se).coef)
    if all(e.assessed for e in entropy.each):
        unused = ([f"entropy_samples={samples} not used: every state records its own estimator "
                   f"and N"] if samples is not None else [])
        return extra, [*entropy.notes(), *unused]
    if samples is None:
        return extra, entropy.notes(unrecorded="the estimator's drift over the grid is not "
                                               "assessed there (pass entropy_samples, the number "
                                               "of directions behind each entropy estimate)")
    kappa = [1 / s.temperature for s in run.states]
    drift = calibration.surface_drift(run.d, samples, kappa, x, y, list(rows), se=se,
                                      method=method)
    span = drift.span
    notes = [*entropy.notes(unrecorded=f"their whole calibrated bias at N = {samples} is allowed "
                                       f"for below"),
             f"estimator drift ({method}, N = {samples}, {span.table_version}): the bias changes "
             f"by {span.change:+.4g} ± {span.change_stderr:.2g} nats ({span.relative_change:+.3g} "
             f"R) over κ = {span.kappa_min:.3g}–{span.kappa_max:.3g}; it moves the ratios by "
             + ", ".join(f"{v:+.2g} ± {e:.2g}" for v, e in
                         zip(drift.shifts, drift.stderrs, strict=True))]
    if span.extrapolated:
        notes.append("estimator drift extrapolated: " + "; ".join(span.reasons))
    return extra + drift.bounds(z), notes


def _sphere(run: Run, corrected: bool, allowance: float) -> LawResult:
    """fixed sphere: (∂p/∂T)_V = R/V with p = λ_eff, one straight-line fit per radius."""
    lines = [line for line in run.lines(0) if len(line) >= 3]
    if not lines:
        run.inconclusive("the fixed-sphere relation needs at least 3 stationary ELR values at one "
                         "radius (grid incomplete)")
    checks: list[Check] = []
    skipped: list[str] = []
    for line in lines:
        try:
            checks.append(_slope(run, line, corrected, allowance))
        except UnidentifiableFit as err:
            skipped.append(f"radius={line[0].radius:.4g} ({err})")
    notes = ["the S-form (∂S/∂V)_T is vacuous on the sphere: S(ρ_w̄) depends on T only, so it is "
             "checked as (∂p/∂T)_V = (d − 1)/(2V) with p = λ_eff (Eq. 82–84)"]
    if skipped:
        notes.append(f"{len(skipped)} radius line(s) left out, their straight-line fit is not "
                     f"identifiable: {first_few(skipped)}")
    if not checks:
        run.inconclusive(f"no radius line determines the slope of λ_eff against T: "
                         f"{first_few(skipped)}")
    return run.judge(checks, z=run.z(len(checks)), notes=notes)


def _slope(run: Run, line: list[State], corrected: bool, allowance: float) -> Check:
    """The slope of λ_eff against T at one radius (a weighted straight-line fit) against R/V.

    Raises UnidentifiableFit when the line's temperatures cannot determine the slope."""
    # T × Tr/(σ²(d − 1)): the state equation's temperature, with Appendix G's trace when corrected
    T = [s.temperature * run.trace(s, corrected).value / (s.sigma2.value * (s.d - 1))
         for s in line]
    lam = [run.need(s, "lambda_eff") for s in line]
    fit = least_squares(np.column_stack([np.ones(len(T)), T]), [e.value for e in lam],
                        [e.stderr for e in lam], ("intercept", "slope"))
    slope, se = fit.combination(np.array([0.0, 1.0]))
    radius = line[0].radius
    assert radius is not None
    expected = run.R / (radius**2 / 2)
    return Check(at=f"radius={radius:.4g}", place={"radius": radius}, quantity="(∂λ_eff/∂T)_V",
                 observed=slope, expected=expected, stderr=se, allowance=allowance * expected,
                 scale=expected, effect=run.effect(expected),
                 info={"r2": fit.r2, "points": len(line)})
