"""From a point's logged series to a measured :class:`~thermocheck.states.State`.

The window is chosen by :func:`thermocheck.stats.assess_stationarity` on the radius and loss series
(MSER-5 burn-in, drift test); every quantity's mean and standard error come from batch means over
that window (:func:`thermocheck.stats.batch_means`): one chain per point, so successive logs are
autocorrelated and batches longer than the integrated autocorrelation time are needed. The entropy
is the mean of the last ``entropy_logs`` queue estimates, its error the spread of those estimates
over √n (consecutive queues may overlap in time, which makes that error slightly optimistic).

What goes where:

* ``State.sigma2`` is the **claimed** σ² (exact), the value a user plugs into the theory; the σ²
  actually injected, ``E[‖w‖²‖ξ‖²]/(d − 1) = Tr Σ_w̄/(d − 1)``, is ``extra["sigma2_measured"]``.
  A substrate with the wrong noise then shows up in the laws, not in its own bookkeeping.
* ``State.norm_balance`` is the mean per-step residual of THEORY.md §4 with the claimed step and
  weight decay; it is left out on the fixed sphere, whose projection breaks the identity (the
  sphere's balance is ``lambda_eff``, Eq. 83–84).
* ``State.lambda_eff`` (Eq. 83) is measured on every protocol; under fixed LR / ELR it is the rate
  at which the stochastic gradient inflates the norm, which balances λ at stationarity.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from thermocheck.simulator.kernel import QUANTITIES
from thermocheck.states import Estimate, State
from thermocheck.stats import BatchMeans, Stationarity, assess_stationarity, batch_means

__all__ = ["MONITORED", "point_state"]

#: Series whose burn-in and drift decide whether a point is stationary.
MONITORED = ("radius", "loss")
_COLUMN = {name: i for i, name in enumerate(QUANTITIES)}
#: Kernel quantity → State field, and → ``extra`` key.
_STATE_FIELDS = {"loss": "loss", "radius": "mean_radius", "sq_norm": "sq_norm",
                 "grad_sq": "grad_sq", "lambda_eff": "lambda_eff", "norm_balance": "norm_balance"}
_EXTRA_FIELDS = {"sigma2": "sigma2_measured", "g_sq": "g_sq"}


def _estimate(bm: BatchMeans) -> Estimate:
    return Estimate(bm.mean, bm.stderr, bm.n_batches)


def point_state(
    *, protocol: str, d: int, hyperparameters: dict[str, float], sigma2: float,
    series: np.ndarray, entropy_logs: np.ndarray | None, diverged_at: int, log_every: int,
    extra: dict[str, Any], alpha: float, rtol: float,
) -> tuple[State, Stationarity | None]:
    """The state of one point from its block-mean ``series[n_logs, Q]`` and entropy logs.

    ``alpha`` and ``rtol`` go to :func:`assess_stationarity`. A diverged point
    (``diverged_at ≥ 0``) gives a non-stationary state without measurements.
    """
    base: dict[str, Any] = {"protocol": protocol, "d": d, "sigma2": Estimate(sigma2),
                            "substrate": "isotropic", "energy_is_loss": True, **hyperparameters}
    if diverged_at >= 0:
        return State(**base, stationary=False, extra=extra,
                     reason=f"diverged at iteration {diverged_at}: ‖w‖ left [1e-100, 1e100] "
                            "or became NaN"), None
    verdict = assess_stationarity({q: series[:, _COLUMN[q]] for q in MONITORED}, alpha=alpha,
                                  rtol=rtol)
    means = {q: batch_means(series[verdict.start:, _COLUMN[q]]) for q in QUANTITIES}
    measured: dict[str, Any] = {field: _estimate(means[q]) for q, field in _STATE_FIELDS.items()
                                if (field, protocol) != ("norm_balance", "fixed_sphere")}
    if entropy_logs is not None:
        n = entropy_logs.size
        measured["sphere_entropy"] = Estimate(float(entropy_logs.mean()),
                                              float(entropy_logs.std(ddof=1) / np.sqrt(n)), n)
    info = {
        "window_start_iteration": verdict.start * log_every,
        "stationarity": {name: dict(v) for name, v in verdict.details.items()},
        **{key: asdict(_estimate(means[q])) for q, key in _EXTRA_FIELDS.items()},
        **{f"tau_int_{q}_iterations": means[q].tau * log_every for q in MONITORED},
    }
    return State(**base, **measured, stationary=verdict.stationary, reason=verdict.reason,
                 extra={**extra, **info}), verdict
