"""V2: each stationary state minimises the thermodynamic potential at its own T and p."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_positive
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
from thermocheck.laws._entropy import Entropies, entropies, leave_undecided
from thermocheck.laws._fit import MAX_CONDITION, UnidentifiableFit, least_squares
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
    window: int = 2,
    resolution: float = 2.0,
) -> LawResult:
    """V2: the minimiser of ``G_*`` is the point ``*`` itself (Eq. 22), located by a local fit.

    Under fixed ELR and fixed LR, for every grid point ``*`` and every state ``i`` near it,
    ``G_*(i) = U_i − T_* S_i + p_* V_i`` (Gibbs at the point's temperature and pressure, from the
    state equations; U, S, V measured, with ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` of Eq. 28 and
    ``V = E‖w‖²/2``). On the fixed sphere V is fixed: for each radius the Helmholtz energy
    ``F_*(i) = U_i − T_* S_i`` along the ELR axis. Needs U to be the energy.

    Two tests per point; each point is judged by the one with the narrower band relative to
    what it must resolve (a choice from the standard errors and allowances, before the residuals
    are read), and the significance is Bonferroni over the events of both, so the family-wise
    false-alarm rate stays at most ``alpha``:

    1. **Fitted minimiser** (interior points). With ``u`` (and ``v``) the states' offsets from
       ``*`` in grid steps of ``log θ`` (the median log spacing of each axis), the states within
       ``window`` steps of ``*`` (Chebyshev) are fitted by weighted least squares with
       ``G = c + bᵀu + ½ uᵀA u`` (weights ``1/se²``, ``se² = se_U² + T_*² se_S² + p_*² se_V²``; as
       many states as coefficients: the interpolating quadratic, with the measured errors). The
       minimiser ``m = −A⁻¹ b`` (grid steps from ``*``) has the delta-method covariance
       ``J Cov Jᵀ``, ``∂m/∂a_j = −A⁻¹ (∂b/∂a_j + ∂A/∂a_j m)``. Each coordinate passes when
       ``|m_k| ≤ z se_k + allowance_k`` and is decided when ``|m_k| + z se_k + allowance_k`` is
       below ``resolution`` steps: the data then exclude a minimiser beyond the neighbours, which
       the paper counts as "very close". Model allowance, in grid steps, ``model_tol`` times
       (i) the minimiser the same fit finds on the exact low-temperature ideal gas,
       ``G_*(i) = R T_* [(t − 1 − log t) + (v − 1 − log v)]``, ``t = T_i/T_*``, ``v = V_i/V_*``
       (the Gibbs energy of ``U = RT``, whose cubic and higher terms displace the minimiser of a
       quadratic), plus (ii) the discretisation of the dynamics: discrete steps shift the
       stationary temperature and volume by a relative ``ε = η_eff + η_k p``
       (:func:`~thermocheck.laws._common.discretisation`), which moves the minimiser by
       ``Σ_j |(J⁻¹)_kj| ε`` steps, ``J = ∂(log T, log V)/∂(u, v)`` from the state equations (on
       the sphere ``ε / |∂ log T/∂u|``). A window needs 3 distinct values and a state on both
       sides of ``*`` along each axis (an edge point's minimiser would be extrapolated), and an
       identified fit (:func:`~thermocheck.laws._fit.least_squares`) with a positive definite
       ``A``.
    2. **Pointwise comparison**. ``G_*(*) − min_{i≠*} G_*(i) ≤ z σ + allowance``, one-sided, σ the
       propagated standard error of the difference (an event per ordered pair the rule could
       compare, valid although the rival is chosen by the data). Allowance ``model_tol · ε`` times
       the first-order slope ``R (|T_i − T_*| + T_* |V_i/V_* − 1|)``. Decided when the upper bound
       is below the depth of the minimum towards the nearest neighbour,
       ``R T_* [(t − 1 − log t) + (v − 1 − log v)]``. It decides coarse grids, where a step is
       deep, and edge points; a point without a neighbour has no depth to resolve.

    Entropy estimator: where a state records how its S(ρ_w̄) was estimated
    (``extra["entropy_queue"]``), the k-NN estimator's calibrated bias at its κ = 1/T, d and N is
    removed from S first (its standard error joins S's); the calibration's interpolation error
    between dimensions, common to the states, joins the allowances (``T_* |mode_* − mode_i|``
    pointwise; the minimiser's move when every S shifts by its mode, fitted); a check that uses a
    state where the calibration table had to be left is undecided, never failed
    (:mod:`thermocheck.laws._entropy`).

    A point neither test can judge is undetermined (its reason in the notes) and counts as
    undecided. The result reports the fitted minimiser's distance in grid steps and the grid's own
    argmin of ``G_*`` (``argmin_steps``, Chebyshev distance in the index grid).

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``, ``sphere_entropy``, and ``sq_norm``, ``mean_radius`` off the sphere.
    k : float, optional
        The multiplier ``z`` of the standard errors (> 0); default from ``alpha`` as above.
    alpha : float
        Family-wise false-alarm rate, in (0, 1) (used when ``k`` is None).
    model_tol : float
        Coefficient of the model allowance (>= 0).
    window : int
        Half-width of the fitted neighbourhood in grid steps (>= 1).
    resolution : float
        Distance in grid steps the minimiser must be located within (> 0).
    """
    run = Run(LAW, grid, alpha=alpha, needs_energy=True, needs=("loss", "radius", "directions"))
    model_tol = nonnegative("model_tol", model_tol)
    window = _window(window)
    resolution = float(check_positive("resolution", resolution))
    sphere = run.protocol == "fixed_sphere"
    groups = run.lines(0) if sphere else [list(run.states)]
    if not any(len(g) > 1 for g in groups):
        run.inconclusive("needs at least two stationary states" +
                         (" of one radius" if sphere else ""))
    local = _Local(run, window, resolution, model_tol, sphere)
    for group in groups:
        local.group(group)
    if not local.candidates:
        run.inconclusive(f"no grid point's minimum can be located: {local.undetermined[0]}")
    pairs = sum(len(g) * (len(g) - 1) for g in groups)
    events = pairs + 2 * local.dims * len(local.candidates)
    z = z_one_sided(run.alpha, events) if k is None else float(check_positive("k", k))
    checks = local.chosen(z)
    # an undetermined point counts as undecided in each of its axes
    quorum = 0.5 * (len(checks) + local.dims * len(local.undetermined)) / len(checks)
    return run.judge(checks, z=z, notes=local.notes(checks), quorum=quorum,
                     significance=(f"Bonferroni over {events} events: {pairs} one-sided "
                                   f"comparisons and both tails of the fitted coordinates"
                                   if k is None else "given k"),
                     effect_meaning=(f"fitted: the minimiser {resolution:g} grid step(s) away; "
                                     f"pointwise: the depth of the minimum towards the nearest "
                                     f"neighbour"))


@dataclass(frozen=True)
class _Minimiser:
    """The fitted minimiser ``m`` (grid steps from ``*``) and its covariance."""

    m: np.ndarray
    cov: np.ndarray


def _design(coords: np.ndarray) -> np.ndarray:
    """Columns ``1, u, ½u²`` (1-d) or ``1, u, v, ½u², ½v², uv`` (2-d) of a quadratic."""
    u = coords[:, 0]
    if coords.shape[1] == 1:
        return np.column_stack([np.ones_like(u), u, u**2 / 2])
    v = coords[:, 1]
    return np.column_stack([np.ones_like(u), u, v, u**2 / 2, v**2 / 2, u * v])


def _gradient_hessian(coef: np.ndarray, dims: int) -> tuple[np.ndarray, np.ndarray]:
    """``(b, A)`` of ``G = c + bᵀu + ½ uᵀAu`` from the coefficients of :func:`_design`."""
    if dims == 1:
        return coef[1:2], coef[2:3].reshape(1, 1)
    b = coef[1:3]
    A = np.array([[coef[3], coef[5]], [coef[5], coef[4]]])
    return b, A


def _too_few_values(coords: np.ndarray) -> str:
    """Why a quadratic fitted at ``coords`` (offsets from the point) cannot locate the point's
    minimiser by interpolation (empty when it can)."""
    distinct = [np.unique(np.round(coords[:, j], 9)).size for j in range(coords.shape[1])]
    if min(distinct) < 3:
        return (f"{'×'.join(map(str, distinct))} distinct axis values in the window (a quadratic "
                f"needs 3 along each axis)")
    if not (np.all(coords.min(axis=0) < 0) and np.all(coords.max(axis=0) > 0)):
        return ("on the edge of the grid: the window's minimiser would be extrapolated, where "
                "the fit's bias rests on the third derivative of G alone")
    return ""


def _minimiser(X: np.ndarray, g: np.ndarray, se: np.ndarray | None) -> _Minimiser | str:
    """The minimiser of the quadratic fitted to ``g``, or why there is none."""
    dims = 1 if X.shape[1] == 3 else 2
    fitted = _coefficients(X, g, se)
    if isinstance(fitted, str):
        return fitted
    coef, cov = fitted
    b, A = _gradient_hessian(coef, dims)
    if not np.all(np.linalg.eigvalsh(A) > 0):
        return "the fitted curvature is not positive definite (no minimum in the window)"
    m = -np.linalg.solve(A, b)
    jac = np.empty((dims, coef.size))
    for j in range(coef.size):
        db, dA = _gradient_hessian(np.eye(coef.size)[j], dims)
        jac[:, j] = -np.linalg.solve(A, db + dA @ m)
    return _Minimiser(m, jac @ cov @ jac.T)


def _coefficients(X: np.ndarray, g: np.ndarray,
                  se: np.ndarray | None) -> tuple[np.ndarray, np.ndarray] | str:
    """Coefficients and covariance of the quadratic through ``g``, or why it is undetermined.

    With more states than coefficients: weighted least squares (:func:`least_squares`). With as
    many, and every standard error positive: the interpolating quadratic ``X⁻¹ g``, whose
    covariance ``X⁻¹ diag(se²) X⁻ᵀ`` comes from the measured errors alone (no residual is left to
    estimate a misfit from).
    """
    n, p = X.shape
    if n == p and se is not None and np.all(se > 0):
        scaled = X / np.linalg.norm(X, axis=0)
        if not np.linalg.cond(scaled) <= MAX_CONDITION:
            return f"the {n} states of the window barely determine the quadratic (ill-conditioned)"
        inverse = np.linalg.inv(X)
        return inverse @ g, (inverse * se**2) @ inverse.T
    try:
        fit = least_squares(X, g, se)
    except UnidentifiableFit as e:
        return str(e)
    return fit.coef, fit.cov


class _Local:
    """The local fits of one law evaluation: checks, and the points left undetermined."""

    def __init__(self, run: Run, window: int, resolution: float, model_tol: float,
                 sphere: bool) -> None:
        self.run, self.window, self.resolution = run, window, resolution
        self.model_tol, self.sphere = model_tol, sphere
        self.dims = 1 if sphere else 2
        logs = [np.log(a) for a in run.states.axis_values()]
        self.step = np.array([float(np.median(np.diff(a))) if a.size > 1 else 1.0
                              for a in logs])
        self.candidates: list[tuple[list[Check], list[Check]]] = []
        self.undetermined: list[str] = []
        self.argmin_steps: list[int] = []
        self.entropy = Entropies([], [])

    def _coords(self, group: list[State]) -> np.ndarray:
        """The states' log hyperparameters in grid steps (the fitted axes only)."""
        pairs = list(zip(self.run.states.axes, self.step, strict=True))[:self.dims]
        return np.array([[math.log(getattr(s, a)) / h for a, h in pairs] for s in group])

    def group(self, group: list[State]) -> None:
        """Checks for every point of one set of mutually compared states."""
        run = self.run
        U = [run.need(s, "loss") for s in group]
        for s in group:
            run.need(s, "sphere_entropy")
            if not self.sphere:
                run.need(s, "sq_norm")
                run.need(s, "mean_radius")
        u, su = _arrays(U)
        entropy = entropies(group)
        self.entropy = Entropies([*self.entropy.states, *group], [*self.entropy.each,
                                                                   *entropy.each])
        s_, ss, mode = entropy.values, entropy.stderrs, entropy.modes
        v, sv = _arrays([s.volume for s in group])
        T = np.array([s.temperature for s in group])
        p = np.zeros(len(group)) if self.sphere else np.array([s.pressure for s in group])
        V_model = np.array([_model_volume(s) for s in group])
        index = np.array([run.index(s) for s in group])
        coords = self._coords(group)
        self.group_states = group
        for a, state in enumerate(group):
            G = u - T[a] * s_ + p[a] * v
            var = su**2 + T[a] ** 2 * ss**2 + p[a] ** 2 * sv**2
            best = int(np.argmin(G))
            argmin_steps = int(np.abs(index[best] - index[a]).max())
            self.argmin_steps.append(argmin_steps)
            info = {"argmin": where(group[best]), "argmin_steps": argmin_steps,
                    "T": float(T[a]), "p": float(p[a])}
            near = np.flatnonzero(np.abs(index - index[a]).max(axis=1) <= self.window)
            local = coords[near] - coords[a]
            why = _too_few_values(local)
            found = why or _minimiser(_design(local), G[near], np.sqrt(var[near]))
            fitted: list[Check] = []
            if isinstance(found, _Minimiser):
                allowance = self.model_tol * (
                    self._fit_bias(local, T[near] / T[a], V_model[near] / V_model[a],
                                   np.sqrt(var[near]))
                    + self._discretisation_shift(local, T[near], V_model[near], state)
                ) + _mode_shift(found, local, G[near] - T[a] * mode[near], np.sqrt(var[near]))
                fitted = [Check(
                    at=where(state), place=state.hyperparameters,
                    quantity=f"minimiser offset along {axis} (steps)",
                    observed=float(found.m[j]), expected=0.0,
                    stderr=math.sqrt(max(float(found.cov[j, j]), 0.0)),
                    allowance=float(allowance[j]) + ROUNDOFF, scale=1.0,
                    effect=self.resolution,
                    info={**info, "method": "fitted minimiser", "window_states": int(near.size)})
                    for j, axis in enumerate(run.states.axes[:self.dims])]
                doubt = entropy.doubt(near)
                fitted = [leave_undecided(c, doubt) for c in fitted] if doubt else fitted
            compared = self._pointwise(state, a, G, var, T, v, index, info, entropy)
            if not fitted and compared is None:
                self.undetermined.append(f"{where(state)}: {found}; no neighbour to compare with")
                continue
            self.candidates.append((fitted, [compared] if compared is not None else []))

    def _pointwise(self, state: State, a: int, G: np.ndarray, var: np.ndarray, T: np.ndarray,
                   v: np.ndarray, index: np.ndarray, info: dict,
                   entropy: Entropies) -> Check | None:
        """``G_*(*) − min_{i≠*} G_*(i) ≤ k σ + allowance`` (one-sided), decided against the depth
        of the minimum towards the nearest neighbour; None without a neighbour (docstring)."""
        near = np.flatnonzero(np.abs(index - index[a]).sum(axis=1) == 1)
        if near.size == 0:
            return None
        rivals = np.delete(np.arange(len(G)), a)
        m = int(rivals[np.argmin(G[rivals])])
        R = self.run.R
        t, w = T[near] / T[a], v[near] / v[a]
        depth = float(R * T[a] * np.min(t - 1 - np.log(t) + w - 1 - np.log(w)))
        slope = R * (abs(T[m] - T[a]) + T[a] * abs(v[m] / v[a] - 1))
        modes = entropy.modes
        check = Check(
            at=where(state), place=state.hyperparameters,
            quantity="F_*(*) − min F_*" if self.sphere else "G_*(*) − min G_*",
            observed=float(G[a]), expected=float(G[m]), stderr=math.sqrt(var[a] + var[m]),
            allowance=self.model_tol * discretisation(state) * slope
            + float(T[a] * abs(modes[a] - modes[m])) + ROUNDOFF * float(np.abs(G[a])),
            scale=R * T[a], effect=depth, one_sided=True,
            info={**info, "method": "pointwise", "rival": where(self.group_states[m])})
        doubt = entropy.doubt([a, m])
        return leave_undecided(check, doubt) if doubt else check

    def chosen(self, z: float) -> list[Check]:
        """Per point, the method with the narrower band relative to its effect."""
        def width(checks: list[Check]) -> float:
            if not checks:
                return math.inf
            return max(c.tolerance(z) / c.effect if c.effect else math.inf for c in checks)
        return [c for fitted, compared in self.candidates
                for c in min((fitted, compared), key=width)]

    def _fit_bias(self, local: np.ndarray, t: np.ndarray, v: np.ndarray,
                  se: np.ndarray) -> np.ndarray:
        """|m| of the same fit on the exact low-T ideal gas (in units of R T_*, which cancel)."""
        g = (t - 1 - np.log(t)) + (v - 1 - np.log(v))
        found = _minimiser(_design(local), g, se if np.all(se > 0) else None)
        return np.abs(found.m) if isinstance(found, _Minimiser) else np.zeros(self.dims)

    def _discretisation_shift(self, local: np.ndarray, T: np.ndarray, V: np.ndarray,
                              state: State) -> np.ndarray:
        """Steps the minimiser moves when T and V shift by a relative ε (docstring, (ii))."""
        eps = discretisation(state)
        X = np.column_stack([np.ones(len(local)), local])
        rows = [np.log(T)] if self.sphere else [np.log(T), np.log(V)]
        J = np.linalg.lstsq(X, np.column_stack(rows), rcond=None)[0][1:].T
        if abs(np.linalg.det(J)) < ROUNDOFF * max(float(np.abs(J).max()), 1.0) ** self.dims:
            return np.full(self.dims, eps / ROUNDOFF)
        return np.abs(np.linalg.inv(J)).sum(axis=1) * eps

    def notes(self, checks: list[Check]) -> list[str]:
        steps = self.argmin_steps
        fitted = [abs(c.residual) for c in checks if c.info["method"] == "fitted minimiser"]
        out = [f"the grid's argmin of {'F' if self.sphere else 'G'}_* is the point itself at "
               f"{steps.count(0)} of {len(steps)} points, at most {max(steps)} grid step(s) away",
               f"{len(checks) - len(fitted)} pointwise comparison(s); {len(fitted)} coordinates "
               f"of the minimiser of a quadratic fitted to the states within {self.window} grid "
               f"step(s) of a point "
               f"({'along the ELR axis, per radius' if self.sphere else '2-d'})"]
        if fitted:
            out.append(f"fitted minimiser at most {max(fitted):.3g} grid steps from its point "
                       f"(median {float(np.median(fitted)):.3g})")
        if self.undetermined:
            out.append(f"{len(self.undetermined)} point(s) whose minimum cannot be located: "
                       + "; ".join(self.undetermined[:3])
                       + ("; …" if len(self.undetermined) > 3 else ""))
        return out + self.entropy.notes()


def _mode_shift(found: _Minimiser, local: np.ndarray, shifted: np.ndarray,
                se: np.ndarray) -> np.ndarray:
    """How far the fitted minimiser moves (grid steps, per axis) when the window's G is
    ``shifted``: each S moved by the calibrated bias's interpolation mode, ``G − T_* mode``
    (:mod:`~thermocheck.laws._entropy`); infinite when the shifted fit has no minimum."""
    moved = _minimiser(_design(local), shifted, se)
    if not isinstance(moved, _Minimiser):
        return np.full(found.m.shape, math.inf)
    return np.abs(moved.m - found.m)


def _window(window: int) -> int:
    """``window`` after checking that it is an integer >= 1."""
    if isinstance(window, bool) or not isinstance(window, (int, np.integer)) or window < 1:
        raise InvalidParameterError(f"window={window!r} must be an integer >= 1 (grid steps)")
    return int(window)


def _arrays(estimates: list) -> tuple[np.ndarray, np.ndarray]:
    """Values and standard errors of a list of Estimates."""
    return (np.array([e.value for e in estimates]), np.array([e.stderr for e in estimates]))


def _model_volume(state: State) -> float:
    """V of the state equation (Eq. 12, 19; the sphere's r²/2), noise-free, for the allowances."""
    r = theory.stationary_radius(state.protocol, state.d, state.sigma2.value,
                                 lr=state.equivalent_lr, wd=state.wd, elr=state.equivalent_elr,
                                 radius=state.radius)
    return float(r) ** 2 / 2
