"""The direction entropy the laws difference, with the k-NN estimator's calibrated bias removed.

The first law, V2, V3 and V4 use differences of the measured ``S = S(ρ_w̄) + (d − 1) log E‖w‖``
(Eq. 28) between stationary states. The k-NN estimate of ``S(ρ_w̄)`` (Eq. 25–27) is biased, and the
bias depends on the concentration κ = 1/T, on d and on the number N of snapshots behind it
(:mod:`thermocheck.calibration`): at d = 30 it moves by about a nat across a grid, enough to fail
the first law on a correct substrate. The paper assumes that bias constant over a grid
(Section 5); here it is removed where the state says how its entropy was estimated.

A state records its estimator in ``extra["entropy_queue"]`` (``method``, ``n_samples``; the
simulator writes it). Then

    ``Ŝ(ρ_w̄) − b(d, N, κ = 1/T)``,

``b`` the calibrated bias (:func:`thermocheck.calibration.estimator_bias`) on independent von
Mises–Fisher samples at the state-equation temperature T (Eq. 7, 19). The bias's own standard error
joins the estimate's, in quadrature. Between two tabulated dimensions the calibration adds an
interpolation error common to all κ (``BiasEstimate.model``): a signed *mode*, which cancels in a
difference of two states up to ``mode_i − mode_j``; each law carries it through its own statistic
(the change of that statistic when every S moves by its mode) as an allowance. Where the table had
to be left (κ/d, d or N outside it) the correction is not vouched for: the state is marked
``doubtful`` and the checks that use it are left undecided, never failed. A state without the
record keeps its estimate as measured, and a note says that the estimator's drift was not
assessed there.

For a linear loss the stationary law is von Mises–Fisher at κ = 1/T, which the table calibrates;
for other losses the table is a proxy at the same κ, right in the size and shape of the drift,
not in its last digit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from thermocheck import calibration
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._common import Check, first_few, where
from thermocheck.states import Estimate, State

__all__ = ["Entropies", "MeasuredEntropy", "entropies", "leave_undecided", "measured_entropy"]

#: The key of a state's ``extra`` that records how its direction entropy was estimated.
RECORD = "entropy_queue"


@dataclass(frozen=True)
class MeasuredEntropy:
    """One state's entropy as the laws difference it.

    Attributes
    ----------
    sphere : Estimate
        ``S(ρ_w̄)``: the estimate less the calibrated bias (when ``assessed``), the bias's standard
        error added in quadrature.
    total : Estimate
        ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` (Eq. 28; the sphere's radius r on the fixed sphere).
    bias : float
        The bias removed (nats; 0 when not assessed).
    mode : float
        The signed interpolation error of the bias common to all the states of one d and N (nats;
        0 at a tabulated d or when not assessed).
    method, n_samples :
        The recorded estimator and its number of snapshots (None when not assessed).
    assessed : bool
        Whether the state recorded its estimator, so that the bias could be removed.
    doubt : str
        Why the calibration cannot vouch for the correction (the table was left); empty otherwise.
    """

    sphere: Estimate
    total: Estimate
    bias: float = 0.0
    mode: float = 0.0
    method: str | None = None
    n_samples: int | None = None
    assessed: bool = False
    doubt: str = ""


def _record(state: State) -> tuple[str, int] | None:
    """``(method, N)`` of the state's ``extra["entropy_queue"]``, None without one."""
    record = state.extra.get(RECORD)
    if record is None:
        return None
    if not isinstance(record, Mapping):
        raise InvalidParameterError(
            f'extra["{RECORD}"]={record!r} of the state at {where(state)} must be a mapping '
            f"with 'method' and 'n_samples'")
    n = record.get("n_samples")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
        raise InvalidParameterError(
            f'extra["{RECORD}"]["n_samples"]={n!r} of the state at {where(state)} must be an '
            f"integer >= 2 (the snapshots behind one entropy estimate)")
    return str(record.get("method", "geodesic")), int(n)


def measured_entropy(state: State) -> MeasuredEntropy:
    """The state's direction and total entropy with the calibrated estimator bias removed when
    the state records its estimator (module docstring); needs ``sphere_entropy`` (and
    ``mean_radius`` off the fixed sphere).

    Raises
    ------
    InvalidParameterError
        If ``extra["entropy_queue"]`` is malformed or names an unknown method.
    """
    estimate = state.require("sphere_entropy")
    found = _record(state)
    if found is None:
        return MeasuredEntropy(sphere=estimate, total=state.entropy)
    method, n = found
    b = calibration.estimator_bias(state.d, n, 1 / state.temperature, method)
    sphere = Estimate(estimate.value - b.value.item(),
                      math.hypot(estimate.stderr, b.stderr.item()), estimate.n)
    doubt = ("the k-NN estimator's bias is not calibrated there: " + "; ".join(b.reasons)
             if b.extrapolated else "")
    return MeasuredEntropy(sphere=sphere, total=state.replace(sphere_entropy=sphere).entropy,
                           bias=b.value.item(), mode=b.model.item(), method=method, n_samples=n,
                           assessed=True, doubt=doubt)


@dataclass(frozen=True)
class Entropies:
    """The :class:`MeasuredEntropy` of a list of states, as arrays, with the notes a law reports."""

    states: Sequence[State]
    each: Sequence[MeasuredEntropy]

    @property
    def total(self) -> list[Estimate]:
        """The total entropies (Eq. 28)."""
        return [e.total for e in self.each]

    @property
    def values(self) -> np.ndarray:
        return np.array([e.total.value for e in self.each])

    @property
    def stderrs(self) -> np.ndarray:
        return np.array([e.total.stderr for e in self.each])

    @property
    def modes(self) -> np.ndarray:
        """Per state, the signed interpolation mode of its removed bias (nats)."""
        return np.array([e.mode for e in self.each])

    def subset(self, states: Sequence[State]) -> Entropies:
        """The entries of ``states`` (the same objects, in their order)."""
        index = {id(s): k for k, s in enumerate(self.states)}
        return Entropies(list(states), [self.each[index[id(s)]] for s in states])

    def doubt(self, indices: Sequence[int] | np.ndarray) -> str:
        """Why the states at ``indices`` cannot all be vouched for (empty when they can)."""
        doubtful = [int(i) for i in indices if self.each[int(i)].doubt]
        if not doubtful:
            return ""
        first = doubtful[0]
        return f"at {where(self.states[first])} {self.each[first].doubt}"

    def notes(self, unrecorded: str = "the estimator's drift over the grid is not assessed "
                                      "there") -> list[str]:
        """What was corrected, what was not (``unrecorded`` says what that means), and what the
        table could not vouch for."""
        assessed = [(s, e) for s, e in zip(self.states, self.each, strict=True) if e.assessed]
        out = []
        if assessed:
            biases = [e.bias for _, e in assessed]
            kinds = sorted({f"{e.method}, N = {e.n_samples}" for _, e in assessed})
            out.append(
                f"S(ρ_w̄) corrected for the k-NN estimator's calibrated bias at κ = 1/T "
                f"({calibration.TABLE_VERSION}; {first_few(kinds)}) at {len(assessed)} state(s): "
                f"{min(biases):+.4g} to {max(biases):+.4g} nats removed (a spread of "
                f"{max(biases) - min(biases):.3g} nats over the grid)")
        missing = len(self.each) - len(assessed)
        if missing:
            out.append(f"S(ρ_w̄) left as measured at {missing} state(s), which do not record "
                       f'their entropy estimator (extra["{RECORD}"] with method and n_samples): '
                       f"{unrecorded}")
        correlated = [where(s) for s, e in zip(self.states, self.each, strict=True)
                      if e.assessed and s.extra[RECORD].get("correlated")]
        if correlated:
            out.append(f"{len(correlated)} state(s) took their snapshots closer than the "
                       f"direction's relaxation time ({first_few(correlated)}): the calibration "
                       f"assumes independent snapshots, and such an estimate reads low")
        doubtful = [f"{where(s)} ({e.doubt})" for s, e in zip(self.states, self.each, strict=True)
                    if e.doubt]
        if doubtful:
            out.append(f"the calibration cannot vouch for the correction at {len(doubtful)} "
                       f"state(s), whose checks are left undecided: {first_few(doubtful, 1)}")
        return out


def entropies(states: Sequence[State]) -> Entropies:
    """:func:`measured_entropy` of every state."""
    states = list(states)
    return Entropies(states, [measured_entropy(s) for s in states])


def leave_undecided(check: Check, reason: str) -> Check:
    """``check`` with a band that holds any residual but cannot exclude its effect: it neither
    fails nor decides, and ``reason`` says why."""
    effect = 0.0 if check.effect is None else check.effect
    info: dict[str, Any] = {**check.info, "undecided": reason}
    return replace(check, allowance=abs(check.residual) + effect, effect=effect, info=info)
