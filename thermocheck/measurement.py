"""From logged series to measurements: one set of conventions for every substrate (pure numpy).

A substrate logs block means of its quantities (one chain per grid point) and, optionally, a series
of entropy estimates. Both the simulator (:mod:`thermocheck.simulator.measure`) and the
:class:`~thermocheck.record.Recorder` turn them into a :class:`~thermocheck.states.State` with:

* :func:`judge`: the stationary window and the verdict of each judged series
  (``State.stationary_series``). Each series is judged by
  :func:`thermocheck.stats.assess_stationarity` (MSER-5 truncation, slope test for drift) at level
  ``alpha`` split over the tests run; ``directions`` takes the verdict of the loss (of the noise
  when no loss is logged), both functions of w̄ alone, and fails too when the entropy estimates
  drift (a slope test, run when there are at least ``MIN_BATCHES`` of them). The window starts
  after the ``burn_in`` fraction and after the MSER-5 truncation of every stationary series (of
  every series when none is); when that leaves fewer than ``MIN_BATCHES`` logs, after the burn-in
  alone. Fewer than ``MIN_LOGS`` logs are too short to judge. A series whose autocorrelation time
  ``τ_int`` is known from the substrate's theory (``relaxation``) is not stationary either when the
  window holds fewer than ``MIN_RELAXATIONS`` of them: its mean is then one stretch of a slow
  fluctuation, not a measurement of the stationary mean, and no test on the window can tell.
* :func:`window_estimate`: a quantity's mean over the window with its batch-means standard error
  (:func:`thermocheck.stats.batch_means`; successive logs of one chain are autocorrelated), the
  number of batches as ``n``.
* :func:`entropy_estimate`: the mean of entropy estimates with the standard error of their spread.

The window's start is reported in iterations as ``extra["window_start_iteration"]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermocheck.states import Estimate
from thermocheck.stats import (
    MIN_BATCHES,
    MIN_LOGS,
    Stationarity,
    assess_stationarity,
    batch_means,
    drift_test,
)

__all__ = ["MIN_RELAXATIONS", "Judgement", "entropy_estimate", "judge", "window_estimate"]

#: Autocorrelation times a window must hold for its mean to measure a series (2: the effective
#: sample size ``n/τ_int`` leaves at least one degree of freedom for its error, ``τ s²/(n − τ)``).
MIN_RELAXATIONS = 2.0


@dataclass(frozen=True)
class Judgement:
    """The stationary window of one chain and the verdict of each judged series.

    Attributes
    ----------
    start
        First log of the window.
    flags
        Judged series (and ``directions``) → stationary; empty when the run is too short.
    reasons
        Why each series that is not stationary is not.
    details
        The tests' statistics per series (``entropy``: the drift test of the entropy logs).
    """

    start: int
    flags: dict[str, bool]
    reasons: list[str] = field(default_factory=list)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def stationary(self) -> bool:
        """Every judged series is stationary (False when none could be judged)."""
        return bool(self.flags) and all(self.flags.values())

    @property
    def verdict(self) -> Stationarity:
        """The overall verdict as :class:`~thermocheck.stats.Stationarity`."""
        return Stationarity(self.stationary, self.start, "; ".join(self.reasons), self.details)


def judge(series: Mapping[str, np.ndarray], *, alpha: float, rtol: float, burn_in: float = 0.0,
          entropy_logs: np.ndarray | None = None,
          relaxation: Mapping[str, float] | None = None) -> Judgement:
    """Judge the logged ``series`` (name → 1-d array of block means, one length) of one chain and
    place its stationary window (module docstring). Series holding a non-finite value are not
    judged. ``burn_in`` is the fraction of the logs always left out, in [0, 1). ``relaxation``
    maps a series to its ``τ_int`` in logs as the theory knows it (a lower bound)."""
    n = len(next(iter(series.values())))
    burn = int(burn_in * n)
    if n < MIN_LOGS:
        return Judgement(burn, {}, [f"too short to judge stationarity: {n} logs (< {MIN_LOGS}); "
                                    "run longer or log more often"])
    judged = {name: x for name, x in series.items() if np.isfinite(x).all()}
    drift = entropy_logs is not None and entropy_logs.size >= MIN_BATCHES
    level = alpha / (len(judged) + drift)
    verdicts = {name: assess_stationarity({name: x}, alpha=level, rtol=rtol)
                for name, x in judged.items()}
    flags = {name: v.stationary for name, v in verdicts.items()}
    reasons = [v.reason for v in verdicts.values() if not v.stationary]
    details: dict[str, dict[str, Any]] = {name: dict(d) for v in verdicts.values()
                                          for name, d in v.details.items()}
    flags["directions"] = flags.get("loss", flags.get("noise", False))
    if drift:
        assert entropy_logs is not None
        test = drift_test(entropy_logs)
        details["entropy"] = {"drift_change": test.change, "drift_p": test.p_value}
        if test.p_value < level and abs(test.change) > rtol * max(abs(test.mean), 1.0):
            flags["directions"] = False
            reasons.append(f"drift: the entropy estimates change by {test.change:+.3g} nats over "
                           f"the run's last {entropy_logs.size} queues (slope test p = "
                           f"{test.p_value:.2g} < {level:.2g})")
    cuts = [v.start for v in verdicts.values() if v.stationary]
    start = max([burn, *(cuts or [v.start for v in verdicts.values()])])
    if n - start < MIN_BATCHES:
        start = burn
    for name, tau in (relaxation or {}).items():
        if flags.get(name) and n - start < MIN_RELAXATIONS * tau:
            flags[name] = False
            reasons.append(f"{name}: the window of {n - start} logs holds fewer than "
                           f"{MIN_RELAXATIONS:g} autocorrelation times of {tau:.4g} logs (the "
                           "theory's relaxation time): run longer")
    return Judgement(start, flags, reasons, details)


def window_estimate(x: np.ndarray) -> Estimate:
    """Mean and batch-means standard error (:func:`thermocheck.stats.batch_means`); a window
    shorter than ``MIN_BATCHES`` logs (a state too short to be stationary) gets the naive one."""
    if x.size >= MIN_BATCHES:
        bm = batch_means(x)
        return Estimate(bm.mean, bm.stderr, bm.n_batches)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return Estimate(float(x.mean()), se, x.size)


def entropy_estimate(logs: np.ndarray) -> Estimate:
    """The mean of ``logs`` (entropy estimates of separate queues) with ``sd/√n``."""
    n = logs.size
    return Estimate(float(logs.mean()), float(logs.std(ddof=1) / np.sqrt(n)), n)
