"""The first law, dU = T dS − p dV, between neighbouring stationary states (Appendix D.2)."""

from __future__ import annotations

import math

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    law,
    nonnegative,
    propagate_estimates,
    where,
)
from thermocheck.laws._entropy import Entropies, entropies, leave_undecided
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["first_law"]

LAW = "first_law"

#: Gauss–Legendre rule for the state equations over one segment: exact to round-off for their
#: power laws in θ = e^t over the grid steps in use.
_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)


@law
def first_law(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    quadrature_tol: float = 2.0,
    resolution: float = 0.5,
    span: int = 4,
) -> LawResult:
    """``ΔU = ∫ T dS − ∫ p dV`` along every segment of ``span`` neighbour steps of every grid line.

    The stationary states form a reversible process (Appendix D.2, Eq. 75–79). With U measured,
    ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` (Eq. 28), ``V = E‖w‖²/2`` and T and p from the state equations
    (p = λ; on the sphere the predicted λ_eff of Eq. 84), the first law holds between any two
    states of a line of one hyperparameter θ. Between neighbours (a, b) the integrals run over
    ``t = log θ``: T(t) and p(t) are the state equations themselves (integrated by
    Gauss–Legendre), S is interpolated linearly and V log-linearly in t, so that
    ``∫ T dS = ΔS/h ∫ T dt`` and ``∫ p dV = ∫ p(t) c V_a e^{c(t − t_a)} dt`` with
    ``c = Δ log V / h``, ``h = Δt``. Both are exact for the ideal gas at low T (S linear, V
    exponential in t). A segment sums its neighbours' integrals: ``ΔU`` telescopes and the
    interior S_j enter ``Σ ∫ T dS`` only through the change of the mean T between steps, so the
    segment's noise stays that of one step while its ``ΔU`` grows with its length; ``span = 1``
    checks every neighbouring pair. Each line is covered by its segments of ``min(span, m − 1)``
    steps (m states on the line) starting at every state, so a defect at one state is an end of
    some segment. Needs U to be the energy.

    Statistics: a segment passes when ``|ΔU − (∫ T dS − ∫ p dV)| ≤ z σ + allowance``, σ propagated
    to first order from the measured U, S, V of its states, z Bonferroni over the segments.

    Allowances, summed over the segment's steps: the interpolation's leading error,
    ``quadrature_tol · h³/12 (|T′ S″| + |p′ V (log V)″|)`` (primes: d/dt; T′, p′ from the state
    equations, S″ and (log V)″ the second differences of the measured values over the line's
    neighbouring points, zero with a note on a two-point line;
    ``quadrature_tol = 2`` allows the finite-difference curvature to be off by 100%), plus
    ``model_tol · ε · |∫ T dS|`` for the discretisation of the dynamics: a stationary law whose
    temperature is off by a relative ``ε = η_eff + η_k p`` (the larger over the step) moves
    ``∫ T dS`` by that much.

    Entropy estimator: where a state records how its S(ρ_w̄) was estimated
    (``extra["entropy_queue"]``), the k-NN estimator's calibrated bias at its κ = 1/T, d and N is
    removed first (its standard error joins S's, the calibration's interpolation error between
    dimensions joins the allowance); a segment through a state where the calibration table had to
    be left is undecided, never failed (:mod:`thermocheck.laws._entropy`). That bias moves by
    about a nat across a d = 30 grid, and T ΔS with it.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``, ``sphere_entropy``, and ``sq_norm``, ``mean_radius`` off the sphere.
    alpha : float
        Family-wise false-alarm rate.
    model_tol, quadrature_tol : float
        Coefficients of the two allowances (>= 0).
    resolution : float
        A segment is decided when the data exclude a residual of ``resolution`` times the largest
        of ``|ΔU|``, ``|∫ T dS|``, ``|∫ p dV|`` (``|residual| + tolerance`` below it).
    span : int
        Neighbour steps per segment (>= 1).
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True)
    model_tol = nonnegative("model_tol", model_tol)
    quadrature_tol = nonnegative("quadrature_tol", quadrature_tol)
    if isinstance(span, bool) or not isinstance(span, (int, np.integer)) or span < 1:
        raise InvalidParameterError(f"span={span!r} must be an integer >= 1 (neighbour steps)")
    entropy = _entropies(run)
    checks: list[Check] = []
    short = 0
    for axis in (0, 1):
        for line in run.lines(axis):
            short += len(line) == 2
            measured = _Line(run, line, run.states.axes[axis], entropy.subset(line))
            steps = min(int(span), len(line) - 1)
            checks += [measured.segment(j, j + steps, model_tol, quadrature_tol)
                       for j in range(len(line) - steps)]
    if not checks:
        run.inconclusive("no two neighbouring stationary states on any grid line")
    notes = [f"{len(checks)} segments of up to {span} neighbour step(s) along both axes; T(t), "
             f"p(t) from the state equations, S linear and V log-linear in t = log θ between "
             f"neighbours", *entropy.notes()]
    if short:
        notes.append(f"{short} line(s) of two states: their curvature S″, (log V)″ is unknown, so "
                     f"their quadrature allowance is undefined and their segments undecided")
    return run.judge(checks, z=run.z(len(checks)), notes=notes)


def _curvature(t: np.ndarray, f: np.ndarray, j: int) -> float:
    """f″ over segment (j, j + 1): the mean curvature of the parabolas through the segment and
    each neighbouring node. A two-node line cannot tell its curvature: NaN, which leaves the
    quadrature allowance undefined and the segment undecided rather than judged without it."""
    curvatures = []
    for lo in (j - 1, j):
        if lo >= 0 and lo + 2 < len(t):
            t0, t1, t2 = t[lo:lo + 3]
            f0, f1, f2 = f[lo:lo + 3]
            curvatures.append(2 * (f0 / ((t0 - t1) * (t0 - t2)) + f1 / ((t1 - t0) * (t1 - t2))
                                   + f2 / ((t2 - t0) * (t2 - t1))))
    return float(np.mean(curvatures)) if curvatures else math.nan


class _Line:
    """The measured U, S, V of one grid line and its log-coordinate t = log θ."""

    def __init__(self, run: Run, line: list[State], name: str, entropy: Entropies) -> None:
        self.run, self.line, self.name, self.entropy = run, line, name, entropy
        self.t = np.log([getattr(s, name) for s in line])
        self.U = [run.need(s, "loss") for s in line]
        self.S = entropy.total
        self.V = [s.volume for s in line]
        self.steps = [self._step(j) for j in range(len(line) - 1)]

    def state_equations(self, j: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, p) of the state equations at ``θ = e^t`` with the other axis of state j."""
        s = self.line[j]
        hp = {k: getattr(s, k) for k in ("lr", "wd", "elr", "radius")}
        hp[self.name] = np.exp(t)
        for rate in ("lr", "elr"):  # SGD momentum β: the equivalent rates η/(1 − β)
            hp[rate] = None if hp[rate] is None else hp[rate] * s.momentum_factor
        sigma2 = s.sigma2.value
        T = theory.temperature(s.protocol, s.d, sigma2, lr=hp["lr"], wd=hp["wd"], elr=hp["elr"])
        p = theory.pressure(s.protocol, s.d, sigma2, wd=hp["wd"], elr=hp["elr"],
                            radius=hp["radius"])
        return np.broadcast_to(T, t.shape), np.broadcast_to(p, t.shape)

    def _step(self, j: int) -> tuple[np.ndarray, np.ndarray, float]:
        """Gauss–Legendre nodes t_k, weights × p(t_k), and the mean T over step (j, j + 1)."""
        h = self.t[j + 1] - self.t[j]
        tk = self.t[j] + h * (_NODES + 1) / 2
        wk = _WEIGHTS * h / 2
        T, p = self.state_equations(j, tk)
        return tk, wk * p, float(wk @ T) / h

    def _heat_and_work(self, j: int, s_a: float, s_b: float, v_a: float,
                       v_b: float) -> tuple[float, float]:
        """(∫ T dS, ∫ p dV) over step (j, j + 1) from its end values of S and V."""
        tk, wp, mean_T = self.steps[j]
        c = np.log(v_b / v_a) / (self.t[j + 1] - self.t[j])
        return mean_T * (s_b - s_a), float(wp @ (c * v_a * np.exp(c * (tk - self.t[j]))))

    def _interpolation(self, j: int) -> float:
        """The leading interpolation error of step (j, j + 1) (docstring of first_law)."""
        h = self.t[j + 1] - self.t[j]
        (Ta, pa), (Tb, pb) = (self.state_equations(k, self.t[k:k + 1]) for k in (j, j + 1))
        v = np.array([e.value for e in self.V])
        return h**3 / 12 * (
            abs((Tb[0] - Ta[0]) / h * _curvature(self.t, np.array([e.value for e in self.S]), j))
            + abs((pb[0] - pa[0]) / h * float(np.sqrt(v[j] * v[j + 1]))
                  * _curvature(self.t, np.log(v), j)))

    def segment(self, lo: int, hi: int, model_tol: float, quadrature_tol: float) -> Check:
        """The first law from state ``lo`` to state ``hi`` of the line."""
        n = hi - lo + 1

        def parts(values: np.ndarray) -> tuple[float, float, float]:
            """(ΔU, Σ ∫ T dS, Σ ∫ p dV) from (U_lo..U_hi, S_lo..S_hi, V_lo..V_hi)."""
            u, s, v = values[:n], values[n:2 * n], values[2 * n:]
            steps = [self._heat_and_work(lo + k, s[k], s[k + 1], v[k], v[k + 1])
                     for k in range(n - 1)]
            return (float(u[-1] - u[0]), sum(q for q, _ in steps), sum(w for _, w in steps))

        def residual(values: np.ndarray) -> float:
            """ΔU − (∫ T dS − ∫ p dV) over the segment."""
            dU, heat, work = parts(values)
            return dU - heat + work

        estimates = [*self.U[lo:hi + 1], *self.S[lo:hi + 1], *self.V[lo:hi + 1]]
        values = np.array([e.value for e in estimates])
        value, se, dof = propagate_estimates(residual, estimates)
        # the calibrated bias's interpolation mode, common to the states, moves S by mode_i
        shifted = values.copy()
        shifted[n:2 * n] += self.entropy.modes[lo:hi + 1]
        mode = abs(residual(shifted) - value)
        dU, heat, work = parts(values)
        heats = [self._heat_and_work(j, values[n + j - lo], values[n + j - lo + 1],
                                     values[2 * n + j - lo], values[2 * n + j - lo + 1])[0]
                 for j in range(lo, hi)]
        eps = [max(discretisation(self.line[j]), discretisation(self.line[j + 1]))
               for j in range(lo, hi)]
        interpolation = sum(self._interpolation(j) for j in range(lo, hi))
        size = max(abs(dU), abs(heat), abs(work))
        a, b = self.line[lo], self.line[hi]
        check = Check(
            at=f"{where(a)} → {where(b)}", place={"from": where(a), "to": where(b)},
            quantity="ΔU", observed=dU, expected=dU - value, stderr=se,
            allowance=quadrature_tol * interpolation
            + model_tol * float(np.dot(eps, np.abs(heats))) + mode + ROUNDOFF * size,
            scale=size, effect=self.run.effect(size),
            info={"heat": heat, "work": work, "interpolation_error": interpolation,
                  "estimator_mode": mode, "steps": hi - lo, "h": float(self.t[hi] - self.t[lo])},
            dof=dof,
        )
        doubt = self.entropy.doubt(range(lo, hi + 1))
        return leave_undecided(check, doubt) if doubt else check


def _entropies(run: Run) -> Entropies:
    """The total entropies (Eq. 28) of the run's states, the calibrated estimator bias removed
    (:mod:`~thermocheck.laws._entropy`), after checking the fields they need."""
    for state in run.states:
        run.need(state, "sphere_entropy")
        if state.protocol != "fixed_sphere":
            run.need(state, "sq_norm")
            run.need(state, "mean_radius")
    return entropies(run.states)
