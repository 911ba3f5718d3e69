"""The first law, dU = T dS − p dV, between neighbouring stationary states (Appendix D.2)."""

from __future__ import annotations

import numpy as np

from thermocheck import theory
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
from thermocheck.results import LawResult
from thermocheck.states import Estimate, State

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
) -> LawResult:
    """``ΔU = ∫ T dS − ∫ p dV`` between neighbouring stationary states along every grid line.

    The stationary states form a reversible process (Appendix D.2, Eq. 75–79). With U measured,
    ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` (Eq. 28), ``V = E‖w‖²/2`` and T and p from the state equations
    (THEORY §3; p = λ, on the sphere the predicted λ_eff of Eq. 84), every pair of neighbours
    (a, b) along a line of one hyperparameter θ must satisfy the first law. Between them the
    integrals run over ``t = log θ``: T(t) and p(t) are the state equations themselves (integrated
    by Gauss–Legendre), S is interpolated linearly and V log-linearly in t, so that
    ``∫ T dS = ΔS/h ∫ T dt`` and ``∫ p dV = ∫ p(t) c V_a e^{c(t − t_a)} dt`` with
    ``c = Δ log V / h``, ``h = Δt``. Both are exact for the ideal gas at low T (S linear, V
    exponential in t). Needs U to be the energy.

    Statistics: a pair passes when ``|ΔU − (∫ T dS − ∫ p dV)| ≤ z σ + allowance``, σ propagated to
    first order from the six measured values, z Bonferroni over the pairs.

    Allowances: the interpolation's leading error,
    ``quadrature_tol · h³/12 (|T′ S″| + |p′ V (log V)″|)`` (primes: d/dt; T′, p′ from the state
    equations, S″ and (log V)″ the second differences of the measured values over the line's
    neighbouring points, zero with a note on a two-point line;
    ``quadrature_tol = 2`` allows the finite-difference curvature to be off by 100%), plus
    ``model_tol · ε · |∫ T dS|`` for the discretisation of the dynamics: a stationary law whose
    temperature is off by a relative ``ε = η_eff + η_k p`` (the larger over the pair) moves
    ``∫ T dS`` by that much.

    Parameters
    ----------
    grid : StateGrid or iterable of State
        Needs ``loss``, ``sphere_entropy``, and ``sq_norm``, ``mean_radius`` off the sphere.
    alpha : float
        Family-wise false-alarm rate.
    model_tol, quadrature_tol : float
        Coefficients of the two allowances (>= 0).
    resolution : float
        A pair is decided when the data exclude a residual of ``resolution`` times the largest
        of ``|ΔU|``, ``|∫ T dS|``, ``|∫ p dV|`` (``|residual| + tolerance`` below it).
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True)
    model_tol = nonnegative("model_tol", model_tol)
    quadrature_tol = nonnegative("quadrature_tol", quadrature_tol)
    checks: list[Check] = []
    short = 0
    for axis in (0, 1):
        for line in run.lines(axis):
            short += len(line) == 2
            measured = _Line(run, line, run.states.axes[axis])
            checks += [measured.pair(j, model_tol, quadrature_tol) for j in range(len(line) - 1)]
    if not checks:
        run.inconclusive("no two neighbouring stationary states on any grid line")
    notes = [f"{len(checks)} pairs of neighbours along both axes; T(t), p(t) from the state "
             f"equations, S linear and V log-linear in t = log θ between neighbours"]
    if short:
        notes.append(f"{short} line(s) of two states: their curvature S″, (log V)″ is unknown, so "
                     f"their quadrature allowance is zero")
    return run.judge(checks, z=run.z(len(checks)), notes=notes)


def _curvature(t: np.ndarray, f: np.ndarray, j: int) -> float:
    """f″ over segment (j, j + 1): the mean curvature of the parabolas through the segment and
    each neighbouring node (zero on a two-node line)."""
    curvatures = []
    for lo in (j - 1, j):
        if lo >= 0 and lo + 2 < len(t):
            t0, t1, t2 = t[lo:lo + 3]
            f0, f1, f2 = f[lo:lo + 3]
            curvatures.append(2 * (f0 / ((t0 - t1) * (t0 - t2)) + f1 / ((t1 - t0) * (t1 - t2))
                                   + f2 / ((t2 - t0) * (t2 - t1))))
    return float(np.mean(curvatures)) if curvatures else 0.0


class _Line:
    """The measured U, S, V of one grid line and its log-coordinate t = log θ."""

    def __init__(self, run: Run, line: list[State], name: str) -> None:
        self.run, self.line, self.name = run, line, name
        self.t = np.log([getattr(s, name) for s in line])
        self.U = [run.need(s, "loss") for s in line]
        self.S = [_entropy(run, s) for s in line]
        self.V = [s.volume for s in line]

    def state_equations(self, j: int, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(T, p) of the state equations at ``θ = e^t`` with the other axis of state j."""
        s = self.line[j]
        hp = {k: getattr(s, k) for k in ("lr", "wd", "elr", "radius")}
        hp[self.name] = np.exp(t)
        sigma2 = s.sigma2.value
        T = theory.temperature(s.protocol, s.d, sigma2, lr=hp["lr"], wd=hp["wd"], elr=hp["elr"])
        p = theory.pressure(s.protocol, s.d, sigma2, wd=hp["wd"], elr=hp["elr"],
                            radius=hp["radius"])
        return np.broadcast_to(T, t.shape), np.broadcast_to(p, t.shape)

    def pair(self, j: int, model_tol: float, quadrature_tol: float) -> Check:
        a, b = self.line[j], self.line[j + 1]
        ta, h = self.t[j], self.t[j + 1] - self.t[j]
        tk = ta + h * (_NODES + 1) / 2
        wk = _WEIGHTS * h / 2
        T, p = self.state_equations(j, tk)
        mean_T = float(wk @ T) / h

        def heat_and_work(values: np.ndarray) -> tuple[float, float]:
            """(∫ T dS, ∫ p dV) from (S_a, S_b, V_a, V_b)."""
            s_a, s_b, v_a, v_b = values
            c = np.log(v_b / v_a) / h
            return mean_T * (s_b - s_a), float(wk @ (p * c * v_a * np.exp(c * (tk - ta))))

        def residual(values: np.ndarray) -> float:
            """ΔU − (∫ T dS − ∫ p dV) from (U_a, U_b, S_a, S_b, V_a, V_b)."""
            heat, work = heat_and_work(values[2:])
            return float(values[1] - values[0] - heat + work)

        estimates = [self.U[j], self.U[j + 1], self.S[j], self.S[j + 1], self.V[j], self.V[j + 1]]
        values = np.array([e.value for e in estimates])
        value, se = propagate(residual, values, [e.stderr for e in estimates])
        heat, work = heat_and_work(values[2:])
        dU = values[1] - values[0]
        (Ta, pa), (Tb, pb) = (self.state_equations(k, self.t[k:k + 1]) for k in (j, j + 1))
        v_mid = float(np.sqrt(values[4] * values[5]))
        interpolation = h**3 / 12 * (
            abs((Tb[0] - Ta[0]) / h * _curvature(self.t, np.array([e.value for e in self.S]), j))
            + abs((pb[0] - pa[0]) / h * v_mid
                  * _curvature(self.t, np.log([e.value for e in self.V]), j)))
        size = max(abs(dU), abs(heat), abs(work))
        eps = max(discretisation(a), discretisation(b))
        return Check(
            at=f"{where(a)} → {where(b)}", place={"from": where(a), "to": where(b)},
            quantity="ΔU", observed=dU, expected=dU - value, stderr=se,
            allowance=quadrature_tol * interpolation + model_tol * eps * abs(heat)
            + ROUNDOFF * size,
            scale=size, effect=self.run.effect(size),
            info={"heat": heat, "work": work, "interpolation_error": interpolation, "h": h},
        )


def _entropy(run: Run, state: State) -> Estimate:
    """The total entropy (Eq. 28), after checking the fields it needs."""
    run.need(state, "sphere_entropy")
    if state.protocol != "fixed_sphere":
        run.need(state, "sq_norm")
        run.need(state, "mean_radius")
    return state.entropy
