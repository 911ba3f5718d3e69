"""From a point's logged series to a measured :class:`~thermocheck.states.State`.

The conventions are those of every substrate (:mod:`thermocheck.measurement`): stationarity is
judged per series (``State.stationary_series``) by :func:`thermocheck.measurement.judge`,
``radius`` on ‖w_k‖, ``loss`` on L(w̄_k), ``noise`` on the injected noise power
``‖w_k‖²‖ξ_k‖²/(d − 1)``, and ``directions`` by the loss's verdict (a function of w̄ alone)
together with a drift test of the entropy estimates; every quantity's mean and standard error come
from batch means over the stationary window. The entropy is the mean of the last ``entropy_logs``
queue estimates, its error the spread of those estimates over √n
(:func:`thermocheck.measurement.entropy_estimate`).

What goes where:

* ``State.sigma2`` is the **claimed** σ² (exact), the value a user plugs into the theory; the σ²
  actually injected, ``E[‖w‖²‖ξ‖²]/(d − 1) = Tr Σ_w̄/(d − 1)``, is ``extra["sigma2_measured"]``.
  A substrate with the wrong noise then shows up in the laws, not in its own bookkeeping.
* ``State.norm_balance`` is the mean per-step residual of docs/theory.md §4 with the claimed step
  and
  weight decay; it is left out on the fixed sphere, whose projection breaks the identity (the
  sphere's balance is ``lambda_eff``, Eq. 83–84).
* ``State.lambda_eff`` (Eq. 83) is measured on every protocol; under fixed LR / ELR it is the rate
  at which the stochastic gradient inflates the norm, which balances λ at stationarity.
* AdamW states (``optimizer["name"] == "adamw"``) have neither: the kernel's rows 5–6 hold the
  angular update per step and ``‖u‖²`` of AdamW's normalised update instead, reported as
  ``extra["angular_update"]`` and ``extra["update_sq"]`` (``{"value", "stderr", "n"}``), the
  quantities of the norm equilibrium of Kosson et al. (2024).
* SGD momentum states carry ``extra["velocity_grad"]``, ``E[‖w‖²⟨v, g⟩]`` with the claimed
  velocity before the step: the memory term of the momentum state equation (``ideal_gas``).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from thermocheck.measurement import entropy_estimate, judge
from thermocheck.simulator.kernel import QUANTITIES
from thermocheck.states import Estimate, State
from thermocheck.stats import BatchMeans, Stationarity, batch_means

__all__ = ["MONITORED", "point_state"]

#: Judged series (``State.stationary_series``) → the kernel quantity whose logs judge it.
MONITORED = {"radius": "radius", "loss": "loss", "noise": "sigma2"}
_COLUMN = {name: i for i, name in enumerate(QUANTITIES)}
#: Kernel quantity → State field, and → ``extra`` key.
_STATE_FIELDS = {"loss": "loss", "radius": "mean_radius", "sq_norm": "sq_norm",
                 "grad_sq": "grad_sq", "lambda_eff": "lambda_eff", "norm_balance": "norm_balance"}
_EXTRA_FIELDS = {"sigma2": "sigma2_measured", "g_sq": "g_sq"}
#: Kernel quantities that move with the radius, whose autocorrelation lasts as long as the
#: radius's relaxation (the loss and ‖∇L(w̄)‖² depend on the direction alone).
_RADIAL = frozenset(QUANTITIES) - {"loss", "grad_sq"}
#: What rows 5–6 hold for AdamW (kernel quantity → ``extra`` key), instead of their SGD fields.
_ADAMW_FIELDS = {"lambda_eff": "angular_update", "norm_balance": "update_sq"}


def _estimate(bm: BatchMeans) -> Estimate:
    return Estimate(bm.mean, bm.stderr, bm.n_batches)


def point_state(
    *, protocol: str, d: int, hyperparameters: dict[str, float], sigma2: float,
    series: np.ndarray, entropy_logs: np.ndarray | None, diverged_at: int, log_every: int,
    extra: dict[str, Any], alpha: float, rtol: float, optimizer: dict[str, Any] | None = None,
    radial_relaxation: float = 0.0,
) -> tuple[State, Stationarity | None]:
    """The state of one point from its block-mean ``series[n_logs, Q]`` and entropy logs.

    ``optimizer`` is the claimed optimizer record (``State.optimizer``; None: plain SGD).
    ``radial_relaxation`` is the theory's relaxation time of the radius in iterations (0: none):
    the quantities that move with the radius take ``τ_int ≥ 2·radial_relaxation/log_every`` logs
    (an AR(1)'s ``τ_int = (1 + φ)/(1 − φ)``), so that a window of a few relaxation times, whose
    series cannot show how slowly it decorrelates, gets an honest error.
    ``alpha`` and ``rtol`` go to :func:`assess_stationarity` (and to the entropy's drift test). A
    diverged point (``diverged_at ≥ 0``) gives a diverged state without measurements; the returned
    :class:`~thermocheck.stats.Stationarity` is the verdict over every judged series.
    """
    base: dict[str, Any] = {"protocol": protocol, "d": d, "sigma2": Estimate(sigma2),
                            "substrate": "isotropic", "energy_is_loss": True,
                            "optimizer": optimizer, **hyperparameters}
    if diverged_at >= 0:
        return State(**base, stationary=False, diverged=True, extra=extra,
                     reason=f"diverged at iteration {diverged_at}: ‖w‖ left [1e-100, 1e100] "
                            "or became NaN"), None
    floor = max(1.0, 2.0 * radial_relaxation / log_every)
    judgement = judge({name: series[:, _COLUMN[q]] for name, q in MONITORED.items()},
                      alpha=alpha, rtol=rtol, entropy_logs=entropy_logs,
                      relaxation={name: floor for name, q in MONITORED.items() if q in _RADIAL})
    verdict, flags = judgement.verdict, judgement.flags
    means = {q: batch_means(series[verdict.start:, _COLUMN[q]],
                            tau_floor=floor if q in _RADIAL else 1.0) for q in QUANTITIES}
    adamw = optimizer is not None and optimizer["name"] == "adamw"
    measured: dict[str, Any] = {field: _estimate(means[q]) for q, field in _STATE_FIELDS.items()
                                if (field, protocol) != ("norm_balance", "fixed_sphere")
                                and not (adamw and q in _ADAMW_FIELDS)}
    if entropy_logs is not None:
        measured["sphere_entropy"] = entropy_estimate(entropy_logs)
    info = {
        "window_start_iteration": verdict.start * log_every,
        "stationarity": {name: dict(v) for name, v in verdict.details.items()},
        **{key: asdict(_estimate(means[q])) for q, key in _EXTRA_FIELDS.items()},
        **({key: asdict(_estimate(means[q])) for q, key in _ADAMW_FIELDS.items()} if adamw
           else {}),
        **({"velocity_grad": asdict(_estimate(means["vel_grad"]))}
           if optimizer is not None and not adamw and optimizer["momentum"] > 0 else {}),
        **{f"tau_int_{q}_iterations": means[q].tau * log_every for q in ("radius", "loss")},
    }
    return State(**base, **measured, stationary=verdict.stationary, reason=verdict.reason,
                 stationary_series=flags, extra={**extra, **info}), verdict
