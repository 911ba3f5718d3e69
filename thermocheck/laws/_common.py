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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, NoReturn, TypeAlias

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri

from thermocheck import theory
from thermocheck.errors import GridError, InvalidParameterError, check_in_range, check_positive
from thermocheck.results import LawResult, Verdict
from thermocheck.states import MEASURED, Estimate, State, StateGrid

__all__ = [
    "ENERGY_REASON",
    "ROUNDOFF",
    "Check",
    "GridLike",
    "Run",
    "discretisation",
    "effective_lr",
    "law",
    "nonnegative",
    "propagate",
    "stencil",
    "step_decay",
    "where",
    "z_one_sided",
    "z_two_sided",
]

GridLike: TypeAlias = "StateGrid | State | Iterable[State]"

#: Why the laws that need U to be the energy do not apply to networks and users' models.
ENERGY_REASON = ("the states' loss is not the thermodynamic energy (energy_is_loss=False: "
                 "networks and users' models, READINGS.md), and this law needs U to be the energy")

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


# -- the discretisation scale of the allowances --------------------------------------------------
def _sq_norm(state: State) -> float:
    """E‖w‖²: measured when present, else the state equation's r*² (Eq. 12, 19); sphere: r²."""
    if state.protocol == "fixed_sphere":
        assert state.radius is not None
        return state.radius**2
    if state.sq_norm is not None:
        return state.sq_norm.value
    r = theory.stationary_radius(state.protocol, state.d, state.sigma2.value, lr=state.lr,
                                 wd=state.wd, elr=state.elr)
    return float(r) ** 2


def effective_lr(state: State) -> float:
    """η_eff: the hyperparameter under fixed ELR and on the sphere, ``η / E‖w‖²`` under fixed LR."""
    if state.protocol == "fixed_lr":
        assert state.lr is not None
        return state.lr / _sq_norm(state)
    assert state.elr is not None
    return state.elr


def step_decay(state: State) -> float:
    """``η_k p``: the per-step weight-decay shrinkage, ``η λ`` (fixed LR), ``η_eff E‖w‖² λ`` (fixed
    ELR), ``η_eff r² λ_eff`` (fixed sphere). The SDE drops terms of relative order ``η_k p``
    (Eq. 111–114: the ``η λ²`` term of the norm balance)."""
    return effective_lr(state) * _sq_norm(state) * state.pressure


def discretisation(state: State) -> float:
    """``ε = η_eff + η_k p``: the relative size of the first-order terms the SDE neglects.

    An Euler step of size η_eff on the sphere biases the stationary direction law by a relative
    O(η_eff) in temperature (for an Ornstein–Uhlenbeck well of curvature a the variance is
    ``T/(a(1 − aη/2))``; the linear loss has ``a = ‖μ‖ = 1``), and the radius balance drops terms of
    relative order ``η_k p`` (:func:`step_decay`). Laws that rest on the SDE state equations use
    ``model_tol · ε`` (times the natural scale of the compared quantity) as their model allowance.
    """
    return effective_lr(state) + step_decay(state)


def nonnegative(name: str, value: float) -> float:
    """``value`` as a float after checking that it is finite and >= 0."""
    return float(check_in_range(name, value, 0.0, math.inf, closed="left"))


def stencil(t: np.ndarray, i: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and weights of ``f'(t_i) ≈ Σ w_j f(t_j)``: the derivative of the parabola through
    the three nodes nearest ``t_i`` (centred inside, one-sided at the ends; exact for quadratics),
    or the secant when ``t`` has two nodes. ``t`` must be strictly increasing."""
    m = len(t)
    if m < 2:
        raise InvalidParameterError("a derivative needs at least two nodes")
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
def z_two_sided(alpha: float, n: int) -> float:
    """``z = Φ⁻¹(1 − α / (2n))``: Bonferroni over ``n`` two-sided tests at family-wise rate α."""
    return float(ndtri(1 - alpha / (2 * max(n, 1))))


def z_one_sided(alpha: float, n: int) -> float:
    """``k = Φ⁻¹(1 − α / n)``: Bonferroni over ``n`` one-sided tests at family-wise rate α."""
    return float(ndtri(1 - alpha / max(n, 1)))


def propagate(
    f: Callable[[np.ndarray], float], values: ArrayLike, stderr: ArrayLike
) -> tuple[float, float]:
    """``f(values)`` and its first-order standard error for independent inputs.

    ``se² = Σ_k (∂f/∂v_k · se_k)²`` with each partial derivative taken as the central secant over
    ``v_k ± se_k`` (exact for linear f, first order otherwise, and free of round-off trouble).
    """
    v = np.asarray(values, dtype=np.float64)
    s = np.asarray(stderr, dtype=np.float64)
    total = 0.0
    for k in np.flatnonzero(s > 0):
        hi, lo = v.copy(), v.copy()
        hi[k] += s[k]
        lo[k] -= s[k]
        total += ((f(hi) - f(lo)) / 2) ** 2
    return float(f(v)), math.sqrt(total)


# -- per-point checks ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Check:
    """One comparison of a measured quantity with the law's prediction.

    It passes when ``|observed − expected| ≤ z·stderr + allowance`` (``one_sided``: when
    ``observed − expected ≤ z·stderr + allowance``, the observed value may lie anywhere below).
    It is *decided* when the data exclude a deviation of size ``effect``, the smallest the law must
    resolve (e.g. a 50% error of a fitted ratio): when the largest deviation its band allows,
    ``|residual| + tolerance`` (one-sided: ``residual + tolerance``), is below ``effect``; this is
    the equivalence test (TOST) of the same level. ``effect=None`` means always decided. ``scale``
    is the unit of the relative residual; ``at`` and ``place`` say where the check was made;
    ``info`` adds law-specific numbers to its details.
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

    @property
    def residual(self) -> float:
        return self.observed - self.expected

    def tolerance(self, z: float) -> float:
        return z * self.stderr + self.allowance

    @property
    def _excursion(self) -> float:
        """The part of the residual the band must hold."""
        return max(self.residual, 0.0) if self.one_sided else abs(self.residual)

    def upper(self, z: float) -> float:
        """The largest deviation from the prediction the data allow, in the checked direction."""
        return (self.residual if self.one_sided else abs(self.residual)) + self.tolerance(z)

    def ok(self, z: float) -> bool:
        return bool(self._excursion <= self.tolerance(z))

    def decided(self, z: float) -> bool:
        return self.effect is None or bool(self.upper(z) < self.effect)

    def excess(self, z: float) -> float:
        """|residual| / tolerance: above 1 outside the band."""
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
            "z": float(self.residual / self.stderr) if self.stderr > 0 else None,
            "ok": self.ok(z), "decided": self.decided(z), "effect": self.effect, **self.info,
        }


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
    needs_energy : bool
        The law needs U to be the thermodynamic energy (``State.energy_is_loss``).
    """

    def __init__(
        self,
        law: str,
        grid: GridLike,
        *,
        alpha: float,
        resolution: float | None = None,
        not_applicable: Mapping[str, str] | None = None,
        needs_energy: bool = False,
    ) -> None:
        self.law = law
        self.alpha = float(check_in_range("alpha", alpha, 0.0, 1.0, closed="neither"))
        self.resolution = None if resolution is None else float(check_positive("resolution",
                                                                                  resolution))
        self.grid = _as_grid(grid)
        self.protocol = self.grid.protocol
        self.d = self.grid.d
        self.R = theory.gas_constant(self.d)
        self.excluded = [s for s in self.grid if not s.stationary]
        self.notes: list[str] = []
        if self.excluded:
            shown = "; ".join(f"{where(s)} ({s.reason})" for s in self.excluded[:5])
            more = f"; … {len(self.excluded) - 5} more" if len(self.excluded) > 5 else ""
            self.notes.append(f"{len(self.excluded)} non-stationary state(s) left out: "
                              f"{shown}{more}")
        reason = (not_applicable or {}).get(self.protocol)
        if reason:
            self.end("not_applicable", reason)
        if needs_energy and not all(s.energy_is_loss for s in self.grid):
            self.end("not_applicable", ENERGY_REASON)
        kept = [s for s in self.grid if s.stationary]
        if not kept:
            self.inconclusive(f"no stationary state among the {len(self.grid)} given")
        self.states = StateGrid(kept)

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
        points: the least a quadratic surface (Eq. 34) can be fitted to with a residual."""
        xs, ys = self.states.axis_values()
        if xs.size < 3 or ys.size < 3 or len(self.states) < 9:
            self.inconclusive(f"the quadratic fit of Eq. 34 needs a grid of at least 3×3 "
                              f"stationary states; got {xs.size}×{ys.size} axis values, "
                              f"{len(self.states)} states (grid incomplete)")

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
            why = (f"at {c.at} the data cannot exclude a deviation of {c.effect:.3g} in "
                   f"{c.quantity} ({meaning}), the effect the law must resolve: it may be off by "
                   f"{c.upper(z):.3g} (residual {c.residual:.3g}, tolerance {c.tolerance(z):.3g})")
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
                     "excluded": f"not stationary: {s.reason}"} for s in self.excluded]
        return LawResult(law=self.law, protocol=self.protocol, substrate=self.grid.substrate,
                         verdict=verdict, reason=reason, details=[*details, *excluded],
                         notes=list(self.notes), d=self.d, observed=observed,
                         expected=expected, tolerance=tolerance, residual=residual)
