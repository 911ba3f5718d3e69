"""Machinery every law shares: grid coercion, stationarity filtering, the significance rule,
first-order error propagation, the discretisation scale of the allowances, and result building.

A law body reads::

    @law
    def ideal_gas(grid, *, alpha=1e-3, ...):
        run = Run("ideal_gas", grid, alpha=alpha, resolution=resolution)
        checks = [Check(...) for state in run.states]
        return run.judge(checks, z=run.z(len(checks)))

:class:`Run` coerces the grid, answers ``not_applicable`` for excluded protocols or for states whose
loss is not the energy, leaves non-stationary states out (listing them in ``details``), and turns
per-point :class:`Check` records into a :class:`~thermocheck.results.LawResult`. Any step may end
the law early (``run.inconclusive(reason)``); the :func:`law` decorator returns that result and
records the options the law ran with, so that every result can be reproduced.
"""

from __future__ import annotations

import functools
import inspect
import math
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeAlias

import numpy as np
from numpy.typing import ArrayLike

from thermocheck import theory
from thermocheck.errors import GridError, check_in_range, check_positive
from thermocheck.laws._fit import (
    SURFACE_COEFFICIENTS,
    UnidentifiableFit,
    identifiability,
    quadratic_design,
)
from thermocheck.results import LawResult, Verdict
from thermocheck.states import MEASURED, SERIES, Estimate, State, StateGrid

__all__ = [
    "ADAMW_REASON",
    "ENERGY_REASON",
    "MOMENTUM_TOL",
    "ROUNDOFF",
    "STABLE_STEP_DECAY",
    "Check",
    "GridLike",
    "Run",
    "discretisation",
    "effective_lr",
    "estimate_dof",
    "first_few",
    "law",
    "momentum_lag",
    "noise_kurtosis",
    "nonnegative",
    "predicts_stationary",
    "propagate",
    "propagate_estimates",
    "stencil",
    "step_decay",
    "student_z",
    "welch_dof",
    "where",
    "z_one_sided",
    "z_two_sided",
]

GridLike: TypeAlias = "StateGrid | State | Iterable[State]"

#: Why the laws that need U to be the energy do not apply to networks and users' models.
ENERGY_REASON = ("the states' loss is not the thermodynamic energy (energy_is_loss=False: "
                 "networks and users' models, docs/decisions.md), and this law needs U to be the "
                 "energy")

#: Why the laws of SGD do not apply to AdamW states.
ADAMW_REASON = ("the states were trained with AdamW, whose update does not scale with the "
                "gradient: the state equations of SGD (and a temperature) are not known for it; "
                "its norm equilibrium is thermocheck.optimizers.adamw_equilibrium (Kosson et al., "
                "2024)")

#: Relative round-off floor of fitted and differenced quantities: sqrt(float64 machine epsilon).
ROUNDOFF = math.sqrt(np.finfo(np.float64).eps)


class _Early(Exception):
    """Ends a law early with a finished (not applicable or inconclusive) result."""

    def __init__(self, result: LawResult) -> None:
        super().__init__(result.reason)
        self.result = result


def law(fn: Callable[..., LawResult]) -> Callable[..., LawResult]:
    """Make ``fn(grid, **options)`` a law: early results are returned, and every result records
    the options it ran with (defaults included) for :meth:`LawResult.reproduction`."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def wrapper(grid: GridLike, **options: Any) -> LawResult:
        bound = signature.bind(grid, **options)
        bound.apply_defaults()
        used = {k: v for k, v in bound.arguments.items() if k != "grid"}
        try:
            result = fn(grid, **options)
        except _Early as early:
            result = early.result
        return replace(result, options=used)

    return wrapper


def _as_grid(grid: GridLike) -> StateGrid:
    """A StateGrid from a StateGrid, a single State or an iterable of States."""
    if isinstance(grid, StateGrid):
        return grid
    if isinstance(grid, State):
        return StateGrid([grid])
    if isinstance(grid, (str, bytes, Mapping)) or not isinstance(grid, Iterable):
        raise GridError(f"grid={grid!r} must be a StateGrid, a State or an iterable of States")
    return StateGrid(list(grid))


def where(state: State) -> str:
    """``"lr=0.01, wd=0.001"``: a state's place on its grid."""
    return ", ".join(f"{k}={v:.4g}" for k, v in state.hyperparameters.items())


def first_few(reasons: Sequence[str], shown: int = 3) -> str:
    """The first ``shown`` of ``reasons`` joined by "; ", and how many more there are."""
    more = f"; … {len(reasons) - shown} more" if len(reasons) > shown else ""
    return "; ".join(reasons[:shown]) + more


# -- the discretisation scale of the allowances --------------------------------------------------
def _sq_norm(state: State) -> float:
    """E‖w‖²: measured when present, else the state equation's r*² (Eq. 12, 19); sphere: r²."""
    if state.protocol == "fixed_sphere":
        assert state.radius is not None
        return state.radius**2
    if state.sq_norm is not None:
        return state.sq_norm.value
    r = theory.stationary_radius(state.protocol, state.d, state.sigma2.value,
                                 lr=state.equivalent_lr, wd=state.wd, elr=state.equivalent_elr)
    return float(r) ** 2


def effective_lr(state: State) -> float:
    """η_eff: the hyperparameter under fixed ELR and on the sphere, ``η / E‖w‖²`` under fixed LR;
    with SGD momentum β, of the equivalent rate ``η/(1 − β)``."""
    if state.protocol == "fixed_lr":
        assert state.equivalent_lr is not None
        return state.equivalent_lr / _sq_norm(state)
    assert state.equivalent_elr is not None
    return state.equivalent_elr


def step_decay(state: State) -> float:
    """``η_k p``: the per-step weight-decay shrinkage, ``η λ`` (fixed LR), ``η_eff E‖w‖² λ`` (fixed
    ELR), ``η_eff r² λ_eff`` (fixed sphere). The SDE drops terms of relative order ``η_k p``
    (Eq. 111–114: the ``η λ²`` term of the norm balance)."""
    return effective_lr(state) * _sq_norm(state) * state.pressure


def noise_kurtosis(d: int) -> float:
    """``κ₄ = E‖ξ‖⁴ / (E‖ξ‖²)² = (d + 1)/(d − 1)`` for the isotropic Gaussian noise
    ``ξ = σ P_w̄ ε`` (Eq. 24): ``‖ξ‖²/σ²`` is χ² with d − 1 degrees of freedom. The squared step's
    spread, ``κ₄ − 1 = 2/(d − 1)``, sets the radius' stationary fluctuations and the bias of the
    measured λ_eff (Eq. 83); it is 3 on the circle (d = 2) and tends to 1 as d grows."""
    return (d + 1) / (d - 1)


#: Coefficient of the momentum allowance ``MOMENTUM_TOL · ε_β`` (:func:`momentum_lag`). On the
#: simulator's β table (docs/optimizers.md) the largest measured ``|relative deviation| / ε_β`` of
#: V1 is 0.70 (heavy ball, β = 0.5, fixed sphere, η_eff' = 0.1; Nesterov: 0.61, on the sphere).
MOMENTUM_TOL = 1.0


def momentum_lag(state: State) -> float:
    """``ε_β = β (η_eff' + η_k' p)/√(1 − β)``, with the rates at ``η' = η/(1 − β)``.

    The leading-order map ``η → η/(1 − β)`` holds when the velocity forgets a kick (in
    ``1/(1 − β)`` steps) long before the state relaxes (the direction in ``1/η_eff'`` steps, the
    radius in ``1/(η_k' p)``). Its first correction is of first order in those rates at fixed β
    and vanishes with β (measured: the deviation of V1 grows linearly with η_eff' at β = 0.5 and
    0.9); the factor ``β/√(1 − β)`` is the measured envelope of its growth with β over
    β ∈ {0.5, 0.9, 0.99} (docs/optimizers.md). Zero without momentum and for AdamW."""
    beta = state.optimizer.get("momentum", 0.0) if state.optimizer["name"] == "sgd" else 0.0
    return beta / math.sqrt(1 - beta) * (effective_lr(state) + step_decay(state))


def discretisation(state: State, radius_weight: float = 1.0) -> float:
    """``ε = η_eff + c η_k p``: the relative size of the first-order terms the SDE neglects, with
    ``c = radius_weight`` (default 1) weighting the radius balance's term.

    An Euler step of size η_eff on the sphere biases the stationary direction law by a relative
    O(η_eff) in temperature (for an Ornstein–Uhlenbeck well of curvature a the variance is
    ``T/(a(1 − aη/2))``; the linear loss has ``a = ‖μ‖ = 1``), and the radius balance drops terms of
    relative order ``η_k p`` (:func:`step_decay`). Laws that rest on the SDE state equations use
    ``model_tol · ε`` (times the natural scale of the compared quantity) as their model allowance.
    With SGD momentum β the rates are the equivalent ones, ``η/(1 − β)``, and ε adds the
    momentum correction ``MOMENTUM_TOL · ε_β`` (:func:`momentum_lag`). A law whose quantity
    carries the radius' bias more than once, or through its derivatives, passes the weight it
    derives (:func:`~thermocheck.laws.heat_capacity`).
    """
    return (effective_lr(state) + radius_weight * step_decay(state)
            + MOMENTUM_TOL * momentum_lag(state))


def nonnegative(name: str, value: float) -> float:
    """``value`` as a float after checking that it is finite and >= 0."""
    return float(check_in_range(name, value, 0.0, math.inf, closed="left"))


def stencil(t: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of ``f'(t_i) ≈ Σ w_j f(t_j)``: the derivative of the parabola through
    the three nodes nearest ``t_i`` (centred inside, one-sided at the ends; exact for quadratics),
    or the secant when ``t`` has two nodes.

    Raises :class:`~thermocheck.laws._fit.UnidentifiableFit` unless ``t`` holds at least two
    finite, strictly increasing nodes: repeated nodes (e.g. two states at one temperature) cannot
    determine a derivative."""
    m = len(t)
    if m < 2:
        raise UnidentifiableFit(f"a derivative needs at least two nodes; got {m}")
    if not (np.all(np.isfinite(t)) and np.all(np.diff(t) > 0)):
        raise UnidentifiableFit(f"a derivative needs distinct nodes in increasing order; got "
                                f"{np.array2string(np.asarray(t), precision=4)}")
    lo = min(max(i - 1, 0), max(m - 3, 0))
    idx = np.arange(lo, min(lo + 3, m))
    nodes = t[idx]
    w = np.zeros(idx.size)
    for j in range(idx.size):
        others = np.delete(nodes, j)
        # d/dx of the Lagrange basis polynomial L_j at x = t_i
        for k in range(others.size):
            rest = np.delete(others, k)
            w[j] += np.prod(t[i] - rest) / np.prod(nodes[j] - others)
    return idx, w


# -- statistics ----------------------------------------------------------------------------------
_STANDARD_NORMAL = statistics.NormalDist()


def z_two_sided(alpha: float, n: int) -> float:
    """``z = Φ⁻¹(1 − α / (2n))``: Bonferroni over ``n`` two-sided tests at family-wise rate α."""
    return _STANDARD_NORMAL.inv_cdf(1 - alpha / (2 * max(n, 1)))


def student_z(z: float, dof: float | None) -> float:
    """The Student-t multiplier with the tail probability of the normal ``z``: ``t_ν⁻¹(Φ(z))``.

    A standard error estimated from ``b`` batch means (or ``b`` repeated estimates) has ``b − 1``
    degrees of freedom; at the far tails a Bonferroni family reaches (z ≈ 4.6 for α = 1e-3 over 300
    checks), ``z`` times such an error holds the residual far less often than Φ says: with 9
    degrees of freedom the multiplier of the same tail is 10. ``dof=None`` (or infinite) keeps
    ``z``."""
    if dof is None or not math.isfinite(dof):
        return z
    from scipy.special import stdtrit  # imported here: scipy.special doubles the laws' import

    return float(stdtrit(max(dof, 1.0), 0.5 * math.erfc(-z / math.sqrt(2.0))))


def welch_dof(parts: Iterable[tuple[float, float | None]]) -> float | None:
    """Welch–Satterthwaite degrees of freedom of ``sqrt(Σ s_i²)`` from ``(s_i, ν_i)`` parts:
    ``ν = (Σ s_i²)² / Σ (s_i⁴ / ν_i)``. A part with ``ν_i = None`` is exact (a claimed value, a
    calibration constant): it adds variance but no sampling error of the error. None when no part
    has a finite ``ν_i``."""
    parts = [(float(s), nu) for s, nu in parts if s > 0]
    total = sum(s * s for s, _ in parts)
    noisy = sum(s**4 / nu for s, nu in parts if nu is not None and math.isfinite(nu) and nu > 0)
    if total <= 0 or noisy <= 0:
        return None
    return total * total / noisy


def estimate_dof(estimate: Estimate | None) -> float | None:
    """``n − 1`` of an estimate's ``n`` batch means or repeats; None (exact or unknown) for
    ``n ≤ 1``, which is how a user's single value with a stated error reads."""
    return None if estimate is None or estimate.n <= 1 else float(estimate.n - 1)


def z_one_sided(alpha: float, n: int) -> float:
    """``k = Φ⁻¹(1 − α / n)``: Bonferroni over ``n`` one-sided tests at family-wise rate α."""
    return _STANDARD_NORMAL.inv_cdf(1 - alpha / max(n, 1))


def propagate(
    f: Callable[[np.ndarray], float], values: ArrayLike, stderr: ArrayLike
) -> tuple[float, float]:
    """``f(values)`` and its first-order standard error for independent inputs.

    ``se² = Σ_k (∂f/∂v_k · se_k)²`` with each partial derivative taken as the central secant over
    ``v_k ± se_k`` (exact for linear f, first order otherwise, and free of round-off trouble).

    A positive input whose linear step leaves f's domain (f not finite there, as for the log of a
    volume whose standard error exceeds it) is stepped in log space instead, ``v_k e^{±se_k/v_k}``:
    that secant estimates ``∂f/∂log v_k · se_k/v_k = ∂f/∂v_k · se_k``, the same first-order term,
    and the input stays positive. When f is not finite at the values, or at the steps of an input
    either way, the standard error is NaN: undefined, so a :class:`Check` with it is undecided.
    """
    value, parts = _contributions(f, np.asarray(values, dtype=np.float64),
                                  np.asarray(stderr, dtype=np.float64))
    return value, math.sqrt(sum(p * p for p in parts)) if parts is not None else math.nan


def propagate_estimates(
    f: Callable[[np.ndarray], float], estimates: Sequence[Estimate]
) -> tuple[float, float, float | None]:
    """:func:`propagate` over measured estimates, with the Welch–Satterthwaite degrees of freedom
    of the result's standard error (:func:`welch_dof`, each input's from :func:`estimate_dof`)."""
    value, parts = _contributions(f, np.array([e.value for e in estimates], dtype=np.float64),
                                  np.array([e.stderr for e in estimates], dtype=np.float64))
    if parts is None:
        return value, math.nan, None
    se = math.sqrt(sum(p * p for p in parts))
    return value, se, welch_dof(zip(parts, (estimate_dof(e) for e in estimates), strict=True))


def _contributions(f: Callable[[np.ndarray], float], v: np.ndarray,
                   s: np.ndarray) -> tuple[float, list[float] | None]:
    """``f(v)`` and each input's first-order contribution ``|∂f/∂v_k| se_k`` to its standard
    error (zero where ``se_k = 0``; :func:`propagate`), or None when one is undefined."""
    value = _finite_or_nan(f, v)
    parts = [0.0] * v.size
    for k in np.flatnonzero(s > 0):
        steps = [(v[k] + s[k], v[k] - s[k])]
        if v[k] > 0:
            steps.append((v[k] * math.exp(s[k] / v[k]), v[k] * math.exp(-s[k] / v[k])))
        for up, down in steps:
            hi, lo = v.copy(), v.copy()
            hi[k], lo[k] = up, down
            half = (_finite_or_nan(f, hi) - _finite_or_nan(f, lo)) / 2
            if math.isfinite(half):
                parts[k] = abs(half)
                break
        else:
            return value, None
    return value, parts if math.isfinite(value) else None


def _finite_or_nan(f: Callable[[np.ndarray], float], v: np.ndarray) -> float:
    """``f(v)``, or NaN where ``v`` lies outside f's domain (a non-finite value, a domain error)."""
    try:
        with np.errstate(all="ignore"):
            out = float(f(v))
    except (ArithmeticError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


# -- per-point checks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One comparison of a measured quantity with the law's prediction.

    It passes when ``|observed − expected| ≤ z·stderr + allowance`` (``one_sided``: when
    ``observed − expected ≤ z·stderr + allowance``, the observed value may lie anywhere below).
    A check whose numbers are not all finite (an undefined standard error, see :func:`propagate`)
    is *undefined*: it neither fails nor counts as decided, and its record shows ``ok=None``.
    It is *decided* when the data exclude a deviation of size ``effect``, the smallest the law must
    resolve (e.g. a 50% error of a fitted ratio): when the largest deviation its band allows,
    ``|residual| + tolerance`` (one-sided: ``residual + tolerance``), is below ``effect``; this is
    the equivalence test (TOST) of the same level. ``effect=None`` means always decided. ``scale``
    is the unit of the relative residual; ``at`` and ``place`` say where the check was made;
    ``info`` adds law-specific numbers to its details. ``dof`` is the degrees of freedom of
    ``stderr`` (:func:`welch_dof`); with it the pass/fail band's multiplier is the Student-t one of
    the same tail probability (:func:`student_z`), None keeps the normal ``z``; whether the check
    resolves its effect is judged with the normal ``z`` (:meth:`upper`).
    """

    at: str
    quantity: str
    observed: float
    expected: float
    stderr: float
    allowance: float = 0.0
    scale: float = 1.0
    effect: float | None = None
    one_sided: bool = False
    place: Mapping[str, Any] = field(default_factory=dict)
    info: Mapping[str, Any] = field(default_factory=dict)
    dof: float | None = None

    @property
    def residual(self) -> float:
        return self.observed - self.expected

    @property
    def defined(self) -> bool:
        """The observed and expected values, standard error and allowance are all finite."""
        return all(math.isfinite(v) for v in (self.observed, self.expected, self.stderr,
                                              self.allowance))

    def tolerance(self, z: float) -> float:
        return student_z(z, self.dof) * self.stderr + self.allowance

    @property
    def _excursion(self) -> float:
        """The part of the residual the band must hold."""
        return max(self.residual, 0.0) if self.one_sided else abs(self.residual)

    def upper(self, z: float) -> float:
        """The largest deviation from the prediction the data allow, in the checked direction
        (infinite when the check is undefined), with the normal ``z``: whether a coarse effect (a
        50 % error) is resolved does not hinge on the far tail of the error's own uncertainty,
        which :meth:`tolerance` carries for the pass/fail band."""
        if not self.defined:
            return math.inf
        return ((self.residual if self.one_sided else abs(self.residual)) + z * self.stderr
                + self.allowance)

    def ok(self, z: float) -> bool:
        """Inside the band, or undefined (an undefined check does not fail)."""
        return not self.defined or bool(self._excursion <= self.tolerance(z))

    def decided(self, z: float) -> bool:
        return self.defined and (self.effect is None or bool(self.upper(z) < self.effect))

    def undecided_reason(self, z: float, meaning: str) -> str:
        """Why this check is not decided; ``meaning`` says what its ``effect`` is."""
        if "undecided" in self.info:
            return f"at {self.at} {self.quantity} is left undecided: {self.info['undecided']}"
        if not self.defined:
            numbers = {"observed value": self.observed, "expected value": self.expected,
                       "standard error": self.stderr, "allowance": self.allowance}
            missing = ", ".join(k for k, v in numbers.items() if not math.isfinite(v))
            return (f"at {self.at} the band of {self.quantity} is undefined (its {missing} is not "
                    f"finite: the inputs leave the domain of its formula, or the grid cannot "
                    f"determine it)")
        return (f"at {self.at} the data cannot exclude a deviation of {self.effect:.3g} in "
                f"{self.quantity} ({meaning}), the effect the law must resolve: it may be off by "
                f"{self.upper(z):.3g} (residual {self.residual:.3g}, tolerance "
                f"{self.tolerance(z):.3g})")

    def excess(self, z: float) -> float:
        """|residual| / tolerance: above 1 outside the band; 0 when undefined."""
        if not self.defined:
            return 0.0
        tol = self.tolerance(z)
        if tol > 0:
            return self._excursion / tol
        return math.inf if self._excursion else 0.0

    def record(self, z: float) -> dict[str, Any]:
        """The point's ``details`` entry."""
        return {
            "at": self.at, **self.place, "quantity": self.quantity,
            "observed": float(self.observed), "expected": float(self.expected),
            "stderr": float(self.stderr), "allowance": float(self.allowance),
            "tolerance": float(self.tolerance(z)), "residual": float(self.residual),
            "relative_residual": float(self.residual / self.scale) if self.scale else None,
            "scale": float(self.scale), "one_sided": self.one_sided,
            "z": float(self.residual / self.stderr) if self.stderr > 0 else None,
            "ok": self.ok(z) if self.defined else None, "decided": self.decided(z),
            "effect": self.effect, "dof": self.dof, **self.info,
        }


#: Per protocol, the largest per-step decay ``u* = η_k λ`` at the predicted radius r* at which a
#: substrate with the claimed noise is predicted to reach a stationary state that a run does not
#: leave (:func:`predicts_stationary`).
STABLE_STEP_DECAY = {"fixed_lr": 0.5, "fixed_elr": 0.02}


def _max_grad_sq(state: State) -> float | None:
    """An upper bound on ``‖∇L(w̄)‖²`` from the loss described in ``state.extra`` (linear:
    ``‖μ‖²``; quadratic ``bᵀw̄ + w̄ᵀAw̄``: ``(‖b‖ + 2‖A‖₂)²``); None for any other loss."""
    kind = state.extra.get("loss")
    if kind == "linear" and "mu" in state.extra:
        return float(np.sum(np.square(state.extra["mu"])))
    if kind == "quadratic" and {"A", "b"} <= set(state.extra):
        return float(np.linalg.norm(state.extra["b"]) + 2 * np.linalg.norm(state.extra["A"], 2))**2
    return None


def predicts_stationary(state: State) -> bool:
    """Whether the theory predicts a stationary state at ``state``'s hyperparameters, so that a
    diverged run there is a failure of the substrate.

    Only a state whose noise is the claimed σ² (``energy_is_loss``: the isotropic model) carries
    such a prediction. The fixed sphere never diverges: the projection holds ‖w‖ = r, and
    ``g ⊥ w`` keeps ``‖w − η g‖ ≥ ‖w‖ > 0``. Under fixed LR and ELR, ``g ⊥ w`` (P2) gives the exact
    map of ``x = ‖w‖²`` (Eq. 111), ``x_{k+1} = (1 − u_k)² x_k + η_k² ‖g_k‖²``, ``u_k = η_k λ``,
    with ``‖g_k‖² = G_k / x_k`` and ``G_k = ‖∇L(w̄_k) + σ P ε_k‖²`` (unit radius):

    * fixed LR, ``u = ηλ``: the mean map's fixed point ``x*² = η² E G / (u(2 − u))`` has slope
      ``2(1 − u)² − 1``, inside (−1, 1) for ``0 < u < 1``: stable, and ``log x`` fluctuates by
      about ``sqrt(u Var(G/E G)/2)``. Measured on the simulator (d = 2, 3, 10; σ = 0.1, 1, 3;
      2·10⁶ iterations): no divergence up to ``u = 0.99``. Predicted for ``u <= 0.5``.
    * fixed ELR, ``η_k = η_eff x``: ``u_{k+1} = u_k((1 − u_k)² + η_eff² G_k)`` has the stable fixed
      point ``u* = 1 − sqrt(1 − c)``, ``c = η_eff² E G``, only for ``c < 1``; above
      ``1 + sqrt(1 − c)`` (and always above 2) it grows without bound, and the multiplicative noise
      ``η_eff² G_k`` carries it there. Measured on the simulator (linear loss, 10⁶–2·10⁶
      iterations): every run diverges at ``c ≈ 0.4`` (d = 2, 3) and none at ``c <= 0.2``. With the
      bound ``c <= η_eff² (σ²(d − 1) + max ‖∇L‖²)`` (:func:`_max_grad_sq`; no prediction for a loss
      without one) the prediction is taken for ``c/2 <= 0.02`` (``u* ≈ c/2``), ten times inside
      that edge; it holds on the paper's grids (``c/2 = 0.015`` at η_eff = 0.1, d = 3, σ = 1).

    With SGD momentum β both bounds are taken at the equivalent rates ``η/(1 − β)``,
    ``η_eff/(1 − β)``: the accumulated step of a kick, ten times the step at β = 0.9.
    """
    if not state.energy_is_loss:
        return False
    if state.protocol == "fixed_sphere":
        return True
    if state.protocol == "fixed_lr":
        assert state.equivalent_lr is not None and state.wd is not None
        return state.equivalent_lr * state.wd <= STABLE_STEP_DECAY["fixed_lr"]
    assert state.equivalent_elr is not None
    grad_sq = _max_grad_sq(state)
    if grad_sq is None:
        return False
    c = state.equivalent_elr**2 * (state.sigma2.value * (state.d - 1) + grad_sq)
    return c / 2 <= STABLE_STEP_DECAY["fixed_elr"]


def _left_out(state: State, needs: Sequence[str]) -> str:
    """Why ``state`` is left out, said once: how it diverged, or the needed series in which it is
    not stationary and why."""
    if state.diverged:
        return state.reason if state.reason.startswith("diverged") else f"diverged: {state.reason}"
    series = ", ".join(state.not_stationary_in(needs))
    return f"not stationary in {series}: {state.reason.removeprefix('not stationary: ')}"


class Run:
    """One evaluation of one law on one grid.

    Parameters
    ----------
    law : str
        The law's name (``laws.ALL`` key).
    grid : StateGrid, State or iterable of State
        The measured states.
    alpha : float
        Family-wise false-alarm rate, in (0, 1).
    resolution : float, optional
        The relative effect the law must resolve (> 0): a check whose data cannot exclude a
        deviation of its ``effect`` is undecided. Laws whose effect is not a relative error pass
        None.
    not_applicable : mapping, optional
        ``{protocol: reason}`` for protocols on which the law is vacuous or undefined.
    optimizers : mapping, optional
        ``{optimizer name: reason}`` for the optimizers the law does not hold for (default: the
        laws of SGD are not applicable to AdamW, :data:`ADAMW_REASON`).
    needs_energy : bool
        The law needs U to be the thermodynamic energy (``State.energy_is_loss``).
    needs : sequence of str, or mapping
        The measured series (:data:`~thermocheck.states.SERIES`) the law needs stationary, or
        ``{protocol: series}``; default: all of them. States not stationary in one of them are
        left out and named in ``details`` and ``notes``.

    A grid with no state stationary in what the law needs ends ``inconclusive`` with "nothing
    measured" (``usable_states=0``, which :meth:`~thermocheck.results.LawResult.assert_passed` does
    not accept as inconclusive); a diverged state where :func:`predicts_stationary` ends it
    ``failed``: the substrate broke where the theory says it cannot.
    """

    def __init__(
        self,
        law: str,
        grid: GridLike,
        *,
        alpha: float,
        resolution: float | None = None,
        not_applicable: Mapping[str, str] | None = None,
        optimizers: Mapping[str, str] | None = None,
        needs_energy: bool = False,
        needs: Sequence[str] | Mapping[str, Sequence[str]] = SERIES,
    ) -> None:
        self.law = law
        self.alpha = float(check_in_range("alpha", alpha, 0.0, 1.0, closed="neither"))
        self.resolution = None if resolution is None else float(check_positive("resolution",
                                                                                  resolution))
        self.grid = _as_grid(grid)
        self.protocol = self.grid.protocol
        self.d = self.grid.d
        self.R = theory.gas_constant(self.d)
        self.needs = tuple(needs.get(self.protocol, SERIES) if isinstance(needs, Mapping)
                           else needs)
        kept = [s for s in self.grid if s.is_stationary_in(self.needs)]
        self.excluded = [s for s in self.grid if not s.is_stationary_in(self.needs)]
        self.usable = len(kept)
        self.notes: list[str] = []
        if self.excluded:
            shown = "; ".join(f"{where(s)} ({_left_out(s, self.needs)})"
                              for s in self.excluded[:5])
            more = f"; … {len(self.excluded) - 5} more" if len(self.excluded) > 5 else ""
            self.notes.append(f"{len(self.excluded)} non-stationary state(s) left out (the "
                              f"series {law} needs: {', '.join(self.needs)}): {shown}{more}")
        reason = (not_applicable or {}).get(self.protocol) or (
            {"adamw": ADAMW_REASON} if optimizers is None else optimizers
        ).get(self.grid.optimizer["name"])
        if reason:
            self.end("not_applicable", reason)
        if needs_energy and not all(s.energy_is_loss for s in self.grid):
            self.end("not_applicable", ENERGY_REASON)
        broken = [s for s in self.grid if s.diverged and predicts_stationary(s)]
        if broken:
            self.end("failed", self._broken(broken))
        if not kept:
            self.inconclusive(self._nothing_measured())
        self.states = StateGrid(kept)

    def _broken(self, diverged: Sequence[State]) -> str:
        """The reason of a substrate that diverged where :func:`predicts_stationary`."""
        shown = "; ".join(where(s) for s in diverged[:5])
        more = f"; … {len(diverged) - 5} more" if len(diverged) > 5 else ""
        return (f"the substrate diverged at {len(diverged)} of {len(self.grid)} points where the "
                f"theory predicts a stable stationary state (claimed σ², per-step decay η_k λ "
                f"well below 1 at the predicted r*: predicts_stationary): {shown}{more}")

    def _nothing_measured(self) -> str:
        """The reason of a grid with no usable state: how many diverged, and how many are not
        stationary in each needed series."""
        diverged = sum(s.diverged for s in self.grid)
        counts = {q: sum(q in s.not_stationary_in(self.needs) for s in self.grid
                         if not s.diverged) for q in self.needs}
        parts = ([f"{diverged} diverged"] if diverged else []) + [
            f"{n} not stationary in {q}" for q, n in counts.items() if n]
        return (f"nothing measured: none of the {len(self.grid)} states is stationary in the "
                f"series {self.law} needs ({', '.join(self.needs)}): {', '.join(parts)}")

    # -- ending early -----------------------------------------------------------------------------
    def end(self, verdict: Verdict, reason: str) -> NoReturn:
        raise _Early(self._result(verdict, reason=reason))

    def inconclusive(self, reason: str) -> NoReturn:
        self.end("inconclusive", reason)

    def need(self, state: State, name: str) -> Estimate:
        """The measured field ``name`` of ``state``; its absence makes the law inconclusive."""
        value = getattr(state, name)
        if value is None:
            self.inconclusive(f"the state at {where(state)} has no measured {name!r} "
                              f"({MEASURED[name]}), which {self.law} needs")
        return value

    def need_surface(self) -> None:
        """Inconclusive unless the stationary states span at least 3 values of each axis and 9
        points, the least a quadratic surface (Eq. 34) can be fitted to with a residual, and
        determine its six coefficients (:func:`~thermocheck.laws._fit.identifiability` of the
        design in ``log x``, ``log y``: not on one line, not ill-conditioned)."""
        xs, ys = self.states.axis_values()
        if xs.size < 3 or ys.size < 3 or len(self.states) < 9:
            self.inconclusive(f"the quadratic fit of Eq. 34 needs a grid of at least 3×3 "
                              f"stationary states; got {xs.size}×{ys.size} axis values, "
                              f"{len(self.states)} states (grid incomplete)")
        x, y = (np.log([getattr(s, name) for s in self.states]) for name in self.states.axes)
        reason = identifiability(quadratic_design(x, y)[0], SURFACE_COEFFICIENTS)
        if reason is not None:
            self.inconclusive(f"the {len(self.states)} stationary states cannot determine the "
                              f"quadratic fit of Eq. 34 in log {self.states.axes[0]}, log "
                              f"{self.states.axes[1]}: {reason}")

    def trace(self, state: State, corrected: bool) -> Estimate:
        """``Tr Σ_w̄ = σ²(d − 1)``, plus the measured ``E‖∇L(w̄)‖²`` when ``corrected`` (Appendix G,
        Eq. 119–121), with its standard error; a missing ``grad_sq`` makes the law inconclusive."""
        grad_sq = Estimate(0.0)
        if corrected:
            if state.grad_sq is None:
                self.inconclusive(
                    f"corrected=True needs the measured grad_sq (E‖∇L(w̄)‖², Appendix G) and the "
                    f"state at {where(state)} has none: measure it, or pass corrected=False for "
                    f"the SDE form")
            grad_sq = state.grad_sq
        d1 = state.d - 1
        return Estimate(state.sigma2.value * d1 + grad_sq.value,
                        math.hypot(state.sigma2.stderr * d1, grad_sq.stderr))

    # -- grid structure ---------------------------------------------------------------------------
    def lines(self, axis: int) -> list[list[State]]:
        """Stationary states along ``axis`` (0: x, 1: y of ``theory.AXES``), one list per value of
        the other axis (as in :meth:`StateGrid.axis_values`), sorted along ``axis``; lines of a
        single state are dropped."""
        name, other = self.states.axes[axis], self.states.axes[1 - axis]
        groups: dict[float, list[State]] = {}
        for s in self.states:
            groups.setdefault(getattr(s, other), []).append(s)
        return [sorted(g, key=lambda s: getattr(s, name)) for _, g in sorted(groups.items())
                if len(g) > 1]

    def index(self, state: State) -> tuple[int, int]:
        """``(i, j)``: the state's position in ``grid.axis_values()`` (for distances in steps)."""
        xs, ys = self.states.axis_values()
        x, y = self.states.axes
        return (int(np.searchsorted(xs, getattr(state, x))),
                int(np.searchsorted(ys, getattr(state, y))))

    def effect(self, scale: float) -> float | None:
        """The effect a check must resolve: ``resolution × scale`` (None without a resolution)."""
        return None if self.resolution is None else self.resolution * abs(scale)

    # -- the verdict ------------------------------------------------------------------------------
    def z(self, n: int) -> float:
        """Two-sided Bonferroni multiplier for ``n`` checks at this run's ``alpha``."""
        return z_two_sided(self.alpha, n)

    def judge(
        self,
        checks: Sequence[Check],
        *,
        z: float,
        headline: tuple[float, float, float, float] | None = None,
        notes: Iterable[str] = (),
        significance: str | None = None,
        effect_meaning: str | None = None,
        quorum: float = 0.5,
    ) -> LawResult:
        """The verdict over ``checks``: failed if any is outside its band; else inconclusive unless
        at least a fraction ``quorum`` of them is decided (the grid is mostly too noisy to tell);
        else passed, with a note on the undecided ones.

        ``headline`` overrides the (observed, expected, tolerance, relative residual) of the result,
        which default to those of the worst check; ``significance`` says how ``z`` was chosen
        (default: two-sided Bonferroni over the checks) and ``effect_meaning`` what a check's
        ``effect`` is (default: the ``resolution`` relative error). Laws whose checks are parts of
        one relation (the Maxwell ratios of one fit) pass ``quorum=1``.
        """
        self.notes.extend(notes)
        if not checks:
            self.inconclusive("nothing to check on this grid")
        how = significance or f"two-sided, Bonferroni over {len(checks)} checks"
        self.notes.append(f"significance: z = {z:.3g} for alpha = {self.alpha:g} ({how})")
        worst = max(checks, key=lambda c: c.excess(z))
        if headline is None:
            headline = (worst.observed, worst.expected, worst.tolerance(z),
                        worst.residual / worst.scale if worst.scale else math.nan)
        bad = [c for c in checks if not c.ok(z)]
        undecided = [c for c in checks if not c.decided(z)]
        verdict: Verdict = "passed"
        reason = ""
        if undecided:
            meaning = effect_meaning or f"a {self.resolution or 0:.0%} error"
            c = max(undecided, key=lambda c: c.upper(z) / (c.effect or 1.0))
            why = c.undecided_reason(z, meaning)
            if len(checks) - len(undecided) < quorum * len(checks):
                verdict = "inconclusive"
                reason = f"too noisy to decide at {len(undecided)} of {len(checks)} checks: {why}"
            else:
                self.notes.append(f"{len(undecided)} of {len(checks)} checks too noisy to decide, "
                                  f"the verdict rests on the others; worst {why}")
        if bad:
            verdict = "failed"
            reason = (f"{len(bad)} of {len(checks)} checks outside their band; worst at "
                      f"{worst.at}: {worst.quantity} = {worst.observed:.6g} ± "
                      f"{worst.stderr:.2g}, expected {worst.expected:.6g} (tolerance "
                      f"{worst.tolerance(z):.3g})")
        observed, expected, tolerance, residual = (float(v) for v in headline)
        return self._result(verdict, reason=reason, observed=observed, expected=expected,
                            tolerance=tolerance, residual=residual,
                            details=[c.record(z) for c in checks])

    def _result(self, verdict: Verdict, *, reason: str = "", details: Sequence[Mapping] = (),
                observed: float | None = None, expected: float | None = None,
                tolerance: float | None = None, residual: float | None = None) -> LawResult:
        excluded = [{"at": where(s), **s.hyperparameters, "ok": None,
                     "excluded": _left_out(s, self.needs), "diverged": s.diverged,
                     "series": list(s.not_stationary_in(self.needs))} for s in self.excluded]
        return LawResult(law=self.law, protocol=self.protocol, substrate=self.grid.substrate,
                         verdict=verdict, reason=reason, details=[*details, *excluded],
                         notes=list(self.notes), d=self.d, observed=observed,
                         expected=expected, tolerance=tolerance, residual=residual,
                         usable_states=self.usable)
