"""``simulate``: the isotropic-noise simulator over a whole hyperparameter grid (Eq. 24).

Equilibration times, from the radius ODEs of docs/theory.md §4 (measured runs agree):

* **fixed LR** — ``u = r⁴`` obeys ``du/dt = −4ηλ u + 2η² Tr Σ_w̄``: the radius relaxes in about
  ``1/(4ηλ)`` iterations (2.5·10⁵ at η = λ = 10⁻³, the slowest corner of the paper's grid).
* **fixed ELR** — ``u = r²`` obeys ``du/dt = −2η_eff λ u² + η_eff² Tr Σ_w̄ u``; near ``r*`` it
  relaxes at the rate ``η_eff² Tr Σ_w̄ = η_eff² σ²(d − 1)``, *independent of λ* (5·10⁵
  iterations at η_eff = 10⁻³, d = 3), and from far above ``r*`` it first falls like
  ``1/u ≈ 2η_eff λ t``.
* **fixed sphere** — no radial motion; the direction mixes in about ``1/η_eff`` iterations (the
  angular relaxation of the VMF law at low T; ``1/(η_eff σ²)`` for diffusion across the sphere).

The angular relaxation under fixed LR / ELR takes about ``r*²/η`` or ``1/η_eff`` iterations,
always shorter than the radial one on the paper's grids. The stationarity rule (MSER-5 burn-in
and a drift test, :mod:`thermocheck.stats`) decides per point whether the run was long enough.

The entropy's snapshots must be about as independent as the k-NN estimator assumes: a queue of
snapshots closer than the direction's relaxation time traces a path, whose nearest neighbours are
its own recent past, and reads the entropy low. Each point therefore spaces its snapshots by
``decorrelation`` angular relaxation times (:func:`relaxation_steps`) and uses as many of them per
estimate as fit between two estimates, so that no two estimates share a snapshot; where fewer than
:data:`MIN_QUEUE_SAMPLES` would fit, it keeps that many, closer together, and its state says the
estimate is correlated (``extra["entropy_queue"]``).
"""

from __future__ import annotations

import contextlib
import math
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermocheck import theory, vmf
from thermocheck.errors import (
    InvalidParameterError,
    check_dimension,
    check_in_range,
    check_positive,
)
from thermocheck.optimizers import check_optimizer, momentum_factor
from thermocheck.simulator.engine import Engine
from thermocheck.simulator.kernel import QUANTITIES, Dynamics
from thermocheck.simulator.losses import LinearLoss, Loss, LossFunction, as_loss
from thermocheck.simulator.measure import point_state
from thermocheck.simulator.rng import point_id
from thermocheck.states import StateGrid
from thermocheck.stats import Stationarity

__all__ = ["MIN_QUEUE_SAMPLES", "SimulationResult", "relaxation_steps", "simulate"]

#: Refuse runs whose logged series would exceed this many bytes (raise log_every instead).
MAX_SERIES_BYTES = 2 * 2**30
#: The stationarity rule needs at least this many logs.
MIN_LOGS = 100
#: Chunks between progress reports (and between returns to Python, where Ctrl-C is seen).
PROGRESS_CHUNKS = 100
#: Fewest snapshots behind one entropy estimate; below it the snapshots are spaced closer instead.
MIN_QUEUE_SAMPLES = 50

Progress = Callable[[int, int], Any]


@contextlib.contextmanager
def _progress(progress: bool | Progress | None, total: int, desc: str) -> Iterator[Progress | None]:
    """``True`` → a tqdm bar on stderr (quiet when it is not a terminal); a callable → itself;
    ``None``/``False`` → nothing."""
    if progress is True:
        from tqdm.auto import tqdm

        with tqdm(total=total, desc=desc, unit="it", unit_scale=True, leave=False,
                  file=sys.stderr, disable=None) as bar:  # None: quiet off a terminal
            yield lambda done, _total: bar.update(done - bar.n)
    elif callable(progress):
        yield progress
    elif progress is None or progress is False:
        yield None
    else:
        raise InvalidParameterError(f"progress={progress!r} must be a bool, None or a callable")


@dataclass(frozen=True)
class SimulationResult:
    """States of one simulated grid, with the raw series for plots and diagnostics.

    ``series[q]`` is ``[M, n_logs]``: block means of quantity ``q`` (see
    :data:`thermocheck.simulator.kernel.QUANTITIES`) over ``log_every`` iterations, the block ending
    at iteration ``iterations[j]``. Points are ordered as the outer product of the two axes (first
    axis slowest), like ``x`` and ``y``. ``entropy[M, entropy_logs]`` are the queue estimates at
    ``entropy_iterations``; ``queue`` holds each point's last weight samples (a ring buffer),
    taken every ``queue_every[m]`` iterations, of which an estimate uses the last
    ``queue_used[m]``; ``entropy_lag[M, entropy_logs]`` is the lag-one autocorrelation of those
    snapshots at each estimate.
    """

    grid: StateGrid
    protocol: str
    d: int
    axes: tuple[str, str]
    x: np.ndarray
    y: np.ndarray
    series: Mapping[str, np.ndarray]
    iterations: np.ndarray
    entropy: np.ndarray
    entropy_iterations: np.ndarray
    queue: np.ndarray
    weights: np.ndarray
    stationarity: tuple[Stationarity | None, ...]
    timings: Mapping[str, float] = field(default_factory=dict)
    queue_every: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    queue_used: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    entropy_lag: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidParameterError(
            f"{name}={value!r} is invalid: {name} must be an integer >= {low}"
        )
    return int(value)


def _check_counts(points: int, **counts: Any) -> dict[str, int]:
    """Validate the integer options; the logs must suit the stationarity rule and memory."""
    lows = {"iterations": 1, "log_every": 1, "queue_size": 2, "queue_every": 1,
            "entropy_every": 1, "entropy_logs": 0, "seed": 0}
    out = {name: _int(name, counts[name], low) for name, low in lows.items()}
    iterations, log_every = out["iterations"], out["log_every"]
    if iterations % log_every or iterations // log_every < MIN_LOGS:
        raise InvalidParameterError(
            f"iterations={iterations} must be a multiple of log_every={log_every} giving at least "
            f"{MIN_LOGS} logs (the stationarity rule needs them)"
        )
    if points * (iterations // log_every) * len(QUANTITIES) * 8 > MAX_SERIES_BYTES:
        raise InvalidParameterError(
            f"{points} points × {iterations // log_every} logs would take more than "
            f"{MAX_SERIES_BYTES / 2**30:.0f} GiB of series: raise log_every"
        )
    if out["entropy_logs"] == 1:
        raise InvalidParameterError("entropy_logs=1 is invalid: use 0 (no entropy) or >= 2")
    if out["seed"] >= 2**64:
        raise InvalidParameterError(f"seed={out['seed']} is invalid: seed must be < 2**64")
    return out


def _axis(name: str, value: Any) -> np.ndarray:
    arr = check_positive(name, np.atleast_1d(np.asarray(value, dtype=np.float64)))
    if arr.ndim != 1 or arr.size == 0 or np.unique(arr).size != arr.size:
        raise InvalidParameterError(
            f"grid[{name!r}] must be a non-empty 1-d array of distinct positive values"
        )
    return arr


def _grid_axes(protocol: str, grid: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = (_axis(a, v) for a, v in zip(theory.AXES[protocol], theory.grid_axes(protocol, grid),
                                            strict=True))
    return np.repeat(xs, ys.size), np.tile(ys, xs.size)


def _entropy_iterations(iterations: int, every: int, logs: int, queue_span: int) -> np.ndarray:
    """End-aligned entropy times; all their queues must lie in the run's last half, hence inside
    any window the stationarity rule accepts (it rejects truncations past the middle)."""
    if logs == 0:
        return np.zeros(0, dtype=np.int64)
    times = iterations - every * np.arange(logs - 1, -1, -1, dtype=np.int64)
    if 2 * (times[0] - queue_span) < iterations:
        raise InvalidParameterError(
            f"entropy_logs={logs} every {every} iterations with a queue spanning {queue_span} "
            f"iterations reach back to iteration {times[0] - queue_span}, before the middle of the "
            f"run ({iterations // 2}): lengthen the run or take fewer/closer entropy logs"
        )
    return times


def _protocol_arrays(
    protocol: str, x: np.ndarray, y: np.ndarray, init_radius: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-point step coefficient, claimed weight decay, sphere radius and initial radius."""
    zeros = np.zeros_like(x)
    if protocol == "fixed_sphere":  # x = elr, y = radius; η = η_eff r², no weight decay
        return x * y**2, zeros, y, y
    return x, y, zeros, np.full_like(x, init_radius)  # x = lr or elr, y = wd


def _checked_noise_scale(noise_scale: Any, d: int) -> np.ndarray:
    if noise_scale is None:
        return np.ones(d)
    arr = np.asarray(noise_scale, dtype=np.float64)
    if arr.shape != (d,) or not np.all(np.isfinite(arr) & (arr >= 0)):
        raise InvalidParameterError(f"noise_scale must be {d} finite values >= 0")
    return arr


def relaxation_steps(protocol: str, x: np.ndarray, y: np.ndarray, *, d: int, sigma: float,
                     curvature: float) -> np.ndarray:
    r"""Angular relaxation time of the direction, in iterations, at grid points ``(x, y)``.

    The direction moves by ``δw̄ = −η_eff (P_w̄ ∇f(w̄) + σ P_w̄ ε)`` per step (Eq. 24 with
    ``η = η_eff ‖w‖²``). For ``f = 1 + μᵀw̄`` with ``‖μ‖ = a`` (``curvature``), a tangent deviation
    ``v`` from the minimum feels the restoring drift ``−η_eff a cos∠(w̄, −μ) v`` and the noise's
    Itô drift ``−η_eff (d − 1) T v`` (``T = η_eff σ²/2``), so it relaxes at the rate

    .. math:: \gamma = \eta_\mathrm{eff}\,\bigl(a\,A_d(a/T) + (d - 1)\,T\bigr)

    per step, ``A_d = E cos`` the mean resultant length of the stationary VMF law (Appendix E): at
    low T the well's rate ``η_eff a``, at high T free diffusion on ``S^{d−1}``, whose
    ``E[w̄_kᵀw̄_0]`` decays at ``(d − 1) η_eff T``. Returns ``1/γ``. ``curvature = 0`` (a loss
    whose well is not known) keeps the diffusion alone, the slow limit.

    ``η_eff`` is ``x`` on the sphere and under fixed ELR; under fixed LR it is ``η/r*²`` with the
    discretisation-corrected stationary radius ``r*⁴ = η (σ²(d − 1) + a²)/(2λ)`` (Eq. 19, 119;
    ``E‖∇L(w̄)‖² ≤ a²``, so ``r*`` is not underestimated and neither is the time).
    """
    if protocol == "fixed_lr":
        elr = x / np.sqrt(x * (sigma**2 * (d - 1) + curvature**2) / (2 * y))
    else:
        elr = x
    temperature = elr * sigma**2 / 2
    well = curvature * vmf.mean_resultant_length(d, curvature / temperature) if curvature else 0.0
    return 1 / (elr * (well + (d - 1) * temperature))


def _queue_plan(tau: np.ndarray, *, every: int, size: int, entropy_every: int,
                decorrelation: float) -> tuple[np.ndarray, np.ndarray]:
    """Per point: iterations between snapshots (at least ``every`` and ``decorrelation·τ``) and
    snapshots per entropy estimate (at most ``size``, and no more than fit in ``entropy_every``
    iterations, so consecutive estimates share none; at least ``MIN_QUEUE_SAMPLES``, spaced closer
    where that many do not fit). ``decorrelation = 0`` keeps ``every`` and ``size`` everywhere."""
    if decorrelation == 0:
        return np.full(tau.size, every, dtype=np.int64), np.full(tau.size, size, dtype=np.int64)
    spacing = np.maximum(every, np.ceil(decorrelation * tau)).astype(np.int64)
    floor = min(size, MIN_QUEUE_SAMPLES)
    used = np.minimum(size, entropy_every // spacing)
    short = used < floor
    used[short] = floor
    spacing[short] = np.maximum(every, entropy_every // floor)
    return spacing, used.astype(np.int64)


def _queue_info(tau: float, spacing: int, used: int, lags: np.ndarray,
                decorrelation: float) -> dict[str, Any]:
    """The ``extra["entropy_queue"]`` record of one point: how its snapshots were taken, the
    measured lag-one autocorrelation, the effective sample size ``N (1 − ρ)/(1 + ρ)`` it implies
    (AR(1)), and whether the spacing fell short of ``decorrelation`` relaxation times."""
    rho = float(np.mean(lags)) if lags.size else math.nan
    clipped = min(max(rho, 0.0), 1.0) if math.isfinite(rho) else math.nan
    return {"method": "geodesic", "k": 1, "n_samples": int(used), "spacing": int(spacing),
            "relaxation_steps": float(tau), "decorrelation": float(decorrelation),
            "lag_correlation": rho,
            "effective_samples": float(used * (1 - clipped) / (1 + clipped)),
            "correlated": bool(spacing < decorrelation * tau)}


def simulate(
    protocol: str,
    *,
    d: int,
    grid: Mapping[str, Any],
    iterations: int,
    sigma2: float | None = None,
    loss: Loss | LossFunction | None = None,
    log_every: int = 50,
    queue_size: int = 1000,
    queue_every: int = 50,
    entropy_every: int = 40_000,
    entropy_logs: int = 10,
    decorrelation: float = 2.0,
    init_radius: float = 1.0,
    seed: int = 0,
    alpha: float = 1e-4,
    rtol: float = 1e-3,
    progress: bool | Progress | None = None,
    momentum: float = 0.0,
    nesterov: bool = False,
    adamw: Mapping[str, Any] | bool | None = None,
    sigma: float | None = None,
) -> SimulationResult:
    """Simulate Eq. 24 at every point of a hyperparameter grid and measure its stationary states.

    .. math::

        w \\leftarrow w - \\eta_k\\Bigl(\\nabla L(w) + \\frac{\\sigma}{\\lVert w\\rVert} P_w
        \\varepsilon + \\lambda w\\Bigr),\\qquad \\varepsilon \\sim N(0, I_d),

    with ``η_k = lr`` (``fixed_lr``, Eq. 15), ``η_k = elr·‖w‖²`` (``fixed_elr``, Eq. 8), or
    ``η_k = elr·radius²``, ``λ = 0`` and a projection back on the sphere (``fixed_sphere``).

    Parameters
    ----------
    protocol : {"fixed_sphere", "fixed_elr", "fixed_lr"}
    d : int
        Dimension, ``d >= 2``.
    grid : dict
        The protocol's two axes (``theory.AXES[protocol]``: ``elr, radius`` / ``elr, wd`` /
        ``lr, wd``), each a 1-d array of distinct positive values; the grid is their outer product.
    iterations : int
        Iterations per point, a multiple of ``log_every`` giving at least 100 logs.
    sigma2 : float, default 1
        Noise variance σ² per direction (``Tr Σ_w̄ = σ²(d − 1)``), as ``State.sigma2`` and the
        laws spell it. ``sigma=σ``, the noise scale, is its deprecated spelling (it warns).
    loss : LinearLoss, QuadraticLoss or callable, default ``LinearLoss()`` (``1 + w̄_1``)
        The loss on the direction; a callable ``f(wbar[M, d]) -> (loss[M], grad[M, d])`` runs on the
        slower per-iteration path.
    log_every : int, default 50
        Iterations per logged block mean (every iteration is measured; see ``kernel``).
    queue_size, queue_every : int, default 1000, 50
        Weight queue for the entropy: at most ``queue_size`` weights per estimate, at least
        ``queue_every`` iterations apart.
    entropy_every, entropy_logs : int, default 40 000, 10
        Entropy estimates every ``entropy_every`` iterations, the last ``entropy_logs`` of them
        counted back from the end (the paper averages its last 10); ``entropy_logs=0`` skips the
        entropy, otherwise it must be at least 2 (its error comes from their spread) and the
        queues must lie in the run's last half.
    decorrelation : float, default 2
        Snapshots are at least this many angular relaxation times apart
        (:func:`relaxation_steps`; lag-one correlation about ``e^{−decorrelation}``), and an
        estimate uses only the snapshots taken since the previous one (at most ``queue_size``,
        at least :data:`MIN_QUEUE_SAMPLES`): the estimates are then independent and their spread
        an honest error. A point where that does not fit is marked
        ``extra["entropy_queue"]["correlated"]``. 0 takes ``queue_size`` snapshots exactly
        ``queue_every`` apart everywhere (the paper's scheme).
    init_radius : float, default 1
        Initial ‖w‖ (fixed LR / ELR; the sphere starts on its sphere). The direction is uniform,
        drawn from the point's own stream.
    seed : int, default 0
        Key of the random streams (0 ≤ seed < 2⁶⁴). Point (x, y)'s stream depends only on the seed
        and (x, y), so a point gives the same trajectory alone or in any grid.
    alpha, rtol : float
        Level and practical threshold of the drift test
        (:func:`thermocheck.stats.assess_stationarity`).
    progress : bool or callable, optional
        ``True`` shows a tqdm bar on stderr; a callable is called as ``progress(done, iterations)``
        about 100 times.
    momentum, nesterov : float in [0, 1), bool
        SGD momentum β as ``torch.optim.SGD`` applies it (dampening 0, weight decay inside the
        velocity): ``v ← βv + g + λw``, then ``w ← w − η_k v`` (heavy ball) or
        ``w ← w − η_k(g + λw + βv)`` (Nesterov), with each point's own velocity (zero at start;
        on the sphere the projection acts on w alone). The states record the optimizer
        (``State.optimizer``); to leading order they are those of plain SGD at ``η/(1 − β)``
        (:mod:`thermocheck.optimizers`).
    adamw : True or mapping, optional
        Train with ``torch.optim.AdamW`` instead of SGD (fixed LR only; ``η = lr``, ``λ = wd``):
        ``True`` for its defaults, or ``{"betas": (β1, β2), "eps": ε}``. Each point keeps its own
        per-coordinate moments; the update is ``w ← (1 − ηλ)w − η m̂/(√ŝ + ε)``. The states record
        ``optimizer={"name": "adamw", ...}``, their angular update per step and ``E‖u‖²`` in
        ``extra`` (:mod:`thermocheck.simulator.measure`); their law is
        :func:`thermocheck.laws.norm_equilibrium` (Kosson et al., 2024).

    Returns
    -------
    SimulationResult
        ``.grid`` holds one :class:`~thermocheck.states.State` per point
        (``substrate="isotropic"``, ``energy_is_loss=True``); non-stationary or diverged points
        carry ``stationary=False`` and a reason. ``.timings["kernel_s"]`` includes numba's
        compilation on the first call in a fresh cache (about 10 s).
    """
    return run_simulation(**locals())  # the parameters above, nothing else


def _noise_scale(sigma2: float | None, sigma: float | None) -> float:
    """The noise scale σ the kernel takes, from ``simulate(sigma2=σ²)`` (default 1) or from the
    deprecated ``simulate(sigma=σ)``."""
    if sigma is None:
        return math.sqrt(float(check_positive("sigma2", 1.0 if sigma2 is None else sigma2)))
    if sigma2 is not None:
        raise InvalidParameterError("sigma2 and sigma were both given: pass sigma2 = σ² alone "
                                    "(sigma is its deprecated spelling)")
    warnings.warn("simulate(sigma=σ) is deprecated: pass sigma2=σ², the noise variance, as "
                  "State.sigma2 and the laws spell it", DeprecationWarning, stacklevel=4)
    return float(check_positive("sigma", sigma))


def run_simulation(
    protocol: str, *, d: int, grid: Mapping[str, Any], iterations: int, sigma2: float | None,
    loss: Loss | LossFunction | None, log_every: int, queue_size: int, queue_every: int,
    entropy_every: int, entropy_logs: int, decorrelation: float, init_radius: float, seed: int,
    alpha: float,
    rtol: float, progress: bool | Progress | None, momentum: float = 0.0, nesterov: bool = False,
    adamw: Mapping[str, Any] | bool | None = None, dynamics: Dynamics | None = None,
    noise_scale: Any = None, mutant: str | None = None, sigma: float | None = None,
) -> SimulationResult:
    """:func:`simulate` with the substrate's real dynamics open to change (for :mod:`.mutants`):
    ``dynamics`` (default: correct for the protocol) and a per-coordinate ``noise_scale``. The
    states always report the claimed hyperparameters and σ²; ``mutant`` is recorded in ``extra``."""
    t_start = time.perf_counter()
    protocol = theory.check_protocol(protocol)
    d = check_dimension(d)
    sigma = _noise_scale(sigma2, sigma)
    init_radius = float(check_positive("init_radius", init_radius))
    x, y = _grid_axes(protocol, grid)
    n = _check_counts(x.size, iterations=iterations, log_every=log_every, queue_size=queue_size,
                      queue_every=queue_every, entropy_every=entropy_every,
                      entropy_logs=entropy_logs, seed=seed)
    decorrelation = float(check_in_range("decorrelation", decorrelation, 0.0, 1e6))
    claimed = _claimed_optimizer(protocol, momentum, nesterov, adamw)
    if dynamics is None:
        dynamics = _correct_dynamics(protocol, claimed)
    if claimed["name"] == "sgd":
        claimed["momentum"] = dynamics.claimed_momentum
    loss = as_loss(loss)
    loss.kernel(d)  # validates a built-in loss against d
    tau = _relaxation(protocol, x, y, d=d, sigma=sigma, optimizer=claimed,
                      curvature=1.0 if isinstance(loss, LinearLoss) else 0.0)
    spacing, used = _queue_plan(tau, every=n["queue_every"], size=n["queue_size"],
                                entropy_every=n["entropy_every"], decorrelation=decorrelation)
    times = _entropy_iterations(n["iterations"], n["entropy_every"], n["entropy_logs"],
                                int(np.max(spacing * used)))
    coef, wd, radius, r0 = _protocol_arrays(protocol, x, y, init_radius)
    pids = np.array([point_id(a, b) for a, b in zip(x, y, strict=True)], dtype=np.uint64)
    engine = Engine.start(
        seed=n["seed"], pids=pids, d=d, init_radius=r0, n_logs=n["iterations"] // n["log_every"],
        queue_size=n["queue_size"], coef=coef, wd=wd, radius=radius, sigma=sigma,
        noise_scale=_checked_noise_scale(noise_scale, d),
        dynamics=dynamics, loss=loss,
        log_every=n["log_every"], queue_every=spacing, queue_used=used,
    )
    with _progress(progress, n["iterations"], protocol) as report:
        entropy, lag, timings = _run(engine, n["iterations"], times, report)
    axes = theory.AXES[protocol]
    radial = _radial_relaxation(protocol, x, y, d=d, sigma=sigma, optimizer=claimed)
    extra = {**loss.describe(d), "seed": n["seed"], "sigma": sigma,
             "iterations": n["iterations"], **({"mutant": mutant} if mutant else {})}
    measured = [
        point_state(protocol=protocol, d=d, sigma2=sigma**2,
                    hyperparameters={axes[0]: float(x[m]), axes[1]: float(y[m])},
                    series=engine.series[m], entropy_logs=entropy[m] if times.size else None,
                    diverged_at=int(engine.diverged[m]), log_every=n["log_every"],
                    optimizer=claimed,
                    extra={**extra, "point_id": int(pids[m]),
                           **({"entropy_queue": _queue_info(tau[m], spacing[m], used[m], lag[m],
                                                            decorrelation)}
                              if times.size else {})},
                    alpha=alpha, rtol=rtol, radial_relaxation=float(radial[m]))
        for m in range(x.size)
    ]
    timings["total_s"] = time.perf_counter() - t_start
    return SimulationResult(
        grid=StateGrid(state for state, _ in measured), protocol=protocol, d=d, axes=axes, x=x,
        y=y, series={q: engine.series[:, :, i] for i, q in enumerate(QUANTITIES)},
        iterations=n["log_every"] * np.arange(1, engine.series.shape[1] + 1), entropy=entropy,
        entropy_iterations=times, queue=engine.queue, weights=engine.w,
        stationarity=tuple(verdict for _, verdict in measured), timings=timings,
        queue_every=spacing, queue_used=used, entropy_lag=lag,
    )


def _claimed_optimizer(protocol: str, momentum: float, nesterov: bool,
                       adamw: Mapping[str, Any] | bool | None) -> dict[str, Any]:
    """The validated optimizer record of a run: SGD with ``momentum``/``nesterov``, or AdamW
    (``adamw=True`` or its hyperparameters), which runs under fixed LR only."""
    if adamw is None or adamw is False:
        return check_optimizer({"name": "sgd", "momentum": momentum, "nesterov": nesterov})
    if protocol != "fixed_lr":
        raise InvalidParameterError(
            f"adamw is invalid for protocol={protocol!r}: AdamW's step does not scale with the "
            "gradient, so only fixed_lr (η = lr, λ = wd) is defined for it")
    if momentum or nesterov:
        raise InvalidParameterError(f"momentum={momentum!r}, nesterov={nesterov!r} are SGD's: "
                                    "AdamW takes betas=(β1, β2) in adamw={...}")
    if adamw is not True and not isinstance(adamw, Mapping):
        raise InvalidParameterError(f"adamw={adamw!r} must be True or a mapping with 'betas' "
                                    "and 'eps'")
    return check_optimizer({"name": "adamw", **({} if adamw is True else adamw)})


def _correct_dynamics(protocol: str, optimizer: Mapping[str, Any]) -> Dynamics:
    """The correct dynamics of ``protocol`` under the validated ``optimizer`` record."""
    if optimizer["name"] == "adamw":
        beta1, beta2 = optimizer["betas"]
        return Dynamics.adamw(beta1=beta1, beta2=beta2, eps=optimizer["eps"])
    return Dynamics.correct(protocol, momentum=optimizer["momentum"],
                            nesterov=optimizer["nesterov"])


def _relaxation(protocol: str, x: np.ndarray, y: np.ndarray, *, d: int, sigma: float,
                optimizer: Mapping[str, Any], curvature: float) -> np.ndarray:
    """The direction's relaxation time in iterations (:func:`relaxation_steps`). With SGD
    momentum β the direction relaxes as under plain SGD at the equivalent rate ``η/(1 − β)``. With
    AdamW it diffuses with the total angular displacement ``2ηλ`` per step of the random-walk
    equilibrium (Kosson et al., 2024), so that ``E[w̄_k·w̄_0]`` decays in ``1/(ηλ)`` steps."""
    if optimizer["name"] == "adamw":
        return 1.0 / (x * y)
    rates = x * momentum_factor(optimizer["momentum"])
    return relaxation_steps(protocol, rates, y, d=d, sigma=sigma, curvature=curvature)


def _radial_relaxation(protocol: str, x: np.ndarray, y: np.ndarray, *, d: int, sigma: float,
                       optimizer: Mapping[str, Any]) -> np.ndarray:
    """The radius's relaxation time in iterations near its stationary value (module docstring):
    ``1/(4ηλ)`` under fixed LR, ``1/(η_eff² σ² (d − 1))`` under fixed ELR (the loss's gradient
    only speeds it up, so this does not underestimate it), 0 on the fixed sphere. SGD momentum β
    acts as the rate ``η/(1 − β)``; AdamW's decoupled decay relaxes ``‖w‖²`` at ``2ηλ``."""
    if protocol == "fixed_sphere":
        return np.zeros_like(x)
    if optimizer["name"] == "adamw":
        return 1.0 / (2.0 * x * y)
    rates = x * momentum_factor(optimizer["momentum"])
    if protocol == "fixed_lr":
        return 1.0 / (4.0 * rates * y)
    return 1.0 / (rates**2 * sigma**2 * (d - 1))


def _run(engine: Engine, iterations: int, times: np.ndarray,
         report: Progress | None) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """Run ``engine`` to the end in about 100 chunks (and at each entropy time), estimating
    the queue entropies on the way → ``(entropy[M, len(times)], lag[M, len(times)], timings)``
    (``lag``: the snapshots' lag-one autocorrelation)."""
    entropy = np.full((engine.w.shape[0], times.size), np.nan)
    lag = np.full_like(entropy, np.nan)
    chunk = max(iterations // PROGRESS_CHUNKS, 1)
    t_kernel = t_entropy = 0.0
    for stop in sorted({*range(chunk, iterations, chunk), *times.tolist(), iterations}):
        t0 = time.perf_counter()
        engine.run_to(stop)
        t_kernel += time.perf_counter() - t0
        if stop in times:
            t0 = time.perf_counter()
            col = int(np.searchsorted(times, stop))
            entropy[:, col], lag[:, col] = engine.queue_entropy()
            t_entropy += time.perf_counter() - t0
        if report is not None:
            report(stop, iterations)
    points = engine.w.shape[0]
    return entropy, lag, {"kernel_s": t_kernel, "entropy_s": t_entropy,
                     "ns_per_point_step": 1e9 * t_kernel / (points * iterations)}
