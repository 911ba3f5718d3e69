"""The state of a running simulation of M grid points, advanced chunk by chunk.

:class:`Engine` owns the arrays the kernel updates in place (weights, random streams, running sums,
logged block means, weight queues, divergence marks), runs the kernel (built-in loss: whole chunks,
points in parallel; user loss: one Python call of the loss per iteration, then the same kernel for
one step) and estimates the entropy of each point's weight queue when asked. Each point has its
own queue spacing and sample size (set by :func:`thermocheck.simulator.api.simulate` from its
angular relaxation time).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import numba
import numpy as np

from thermocheck.entropy import sphere_entropy
from thermocheck.simulator.kernel import QUANTITIES, Dynamics, KernelLoss, advance
from thermocheck.simulator.losses import Loss
from thermocheck.simulator.rng import new_streams

__all__ = ["Engine", "lag_correlation"]


@contextlib.contextmanager
def _threads(at_most: int) -> Iterator[None]:
    """Run numba's parallel regions on at most ``at_most`` threads (no idle threads to wake and
    wait for at each region's barrier, which costs most on a busy machine)."""
    threads = numba.get_num_threads()
    numba.set_num_threads(max(1, min(threads, at_most)))
    try:
        yield
    finally:
        numba.set_num_threads(threads)


@dataclass
class Engine:
    """Arrays of a simulation in progress; ``step`` iterations are done."""

    w: np.ndarray  # [M, d] weights
    vel: np.ndarray  # [M, d] real velocities (momentum; zeros without)
    cvel: np.ndarray  # [M, d] velocities as the claimed optimizer would hold them
    streams: np.ndarray  # [M, STREAM_WIDTH] counter-based random streams
    acc: np.ndarray  # [M, Q] running sums of the current log block
    series: np.ndarray  # [M, n_logs, Q] block means
    queue: np.ndarray  # [M, queue_size, d] ring buffers of weights
    diverged: np.ndarray  # [M] iteration of divergence, −1 if none
    coef: np.ndarray  # [M] step coefficient: lr, elr, or elr·radius²
    wd: np.ndarray  # [M] claimed weight decay λ (0 on the sphere)
    radius: np.ndarray  # [M] sphere radius (fixed sphere), unused otherwise
    sigma: float
    noise_scale: np.ndarray  # [d] per-coordinate noise scale (ones: isotropic)
    dynamics: Dynamics
    loss: Loss
    log_every: int
    queue_every: np.ndarray  # [M] iterations between a point's queued weights
    queue_used: np.ndarray  # [M] the latest snapshots of a point that one entropy estimate uses
    step: int = 0

    @classmethod
    def start(
        cls, *, seed: int, pids: np.ndarray, d: int, init_radius: np.ndarray, n_logs: int,
        queue_size: int, coef: np.ndarray, wd: np.ndarray, radius: np.ndarray, sigma: float,
        noise_scale: np.ndarray, dynamics: Dynamics, loss: Loss, log_every: int,
        queue_every: np.ndarray, queue_used: np.ndarray,
    ) -> Engine:
        """Fresh arrays; each point starts at radius ``init_radius`` in a uniform random direction,
        drawn from numpy's Philox keyed by (seed, point id): its own stream, like the noise's."""
        m = pids.size
        w = np.empty((m, d))
        for i, pid in enumerate(pids):
            z = np.random.Generator(np.random.Philox(key=[seed, int(pid)])).standard_normal(d)
            w[i] = z / np.linalg.norm(z) * init_radius[i]
        return cls(
            w=w, vel=np.zeros((m, d)), cvel=np.zeros((m, d)),
            streams=new_streams(seed, pids),
            acc=np.zeros((m, len(QUANTITIES))),
            series=np.zeros((m, n_logs, len(QUANTITIES))),
            queue=np.zeros((m, queue_size, d)),
            diverged=np.full(m, -1, dtype=np.int64),
            coef=coef, wd=wd, radius=radius, sigma=float(sigma), noise_scale=noise_scale,
            dynamics=dynamics, loss=loss, log_every=log_every,
            queue_every=np.asarray(queue_every, dtype=np.int64),
            queue_used=np.asarray(queue_used, dtype=np.int64),
        )

    def run_to(self, stop: int) -> None:
        """Run iterations ``step … stop − 1``."""
        m, d = self.w.shape
        arrays = (self.w, self.vel, self.cvel, self.streams, self.acc, self.series, self.queue,
                  self.diverged, self.coef, self.wd, self.radius, self.sigma, self.noise_scale,
                  self.dynamics)
        terms = self.loss.kernel(d)
        if terms is not None:
            with _threads(m):
                advance(*arrays, terms, np.empty(0), np.empty((0, d)), self.step, stop,
                        self.log_every, self.queue_every)
        else:
            given = KernelLoss.given(d)
            # one step per call: waking numba's worker threads would cost more than the step
            # (measured on a loaded machine: 142 µs per iteration on 2 threads, 64 µs on one)
            with _threads(1):
                for k in range(self.step, stop):
                    values, grads = self.loss.evaluate(self._directions())
                    advance(*arrays, given, values, grads, k, k + 1, self.log_every,
                            self.queue_every)
        self.step = stop

    def _directions(self) -> np.ndarray:
        """``w̄`` of every point; a diverged point's row is ``e_1`` (its loss is not used)."""
        norms = np.linalg.norm(self.w, axis=1, keepdims=True)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            wbar = self.w / norms
        bad = ~np.all(np.isfinite(wbar), axis=1) | (self.diverged >= 0)
        wbar[bad] = 0.0
        wbar[bad, 0] = 1.0
        return wbar

    def snapshots(self, m: int) -> np.ndarray:
        """Point ``m``'s latest ``queue_used[m]`` queued weights, oldest first."""
        taken = self.step // int(self.queue_every[m])
        order = np.arange(taken - int(self.queue_used[m]), taken) % self.queue.shape[1]
        return self.queue[m, order]

    def queue_entropy(self) -> tuple[np.ndarray, np.ndarray]:
        """``S(ρ_w̄)`` of each point's latest snapshots (:func:`thermocheck.entropy.sphere_entropy`,
        geodesic k-NN, nats) and their lag-one autocorrelation (:func:`lag_correlation`); NaN for a
        diverged point."""
        entropy = np.full(self.w.shape[0], np.nan)
        lag = np.full(self.w.shape[0], np.nan)
        for m in np.flatnonzero(self.diverged < 0):
            w = self.snapshots(int(m))
            entropy[m] = sphere_entropy(w)
            lag[m] = lag_correlation(w)
        return entropy, lag


def lag_correlation(w: np.ndarray) -> float:
    r"""Lag-one autocorrelation of a time-ordered sample of directions ``w̄_i = w_i/‖w_i‖``:

    .. math:: \hat\rho = \frac{\sum_i (\bar w_i - m)^\top (\bar w_{i+1} - m)}
              {\sum_i \lVert \bar w_i - m\rVert^2}, \qquad m = \frac1N \sum_i \bar w_i .

    About 0 (± 1/√N) for independent snapshots, ``e^{−Δ/τ}`` for snapshots ``Δ`` steps apart of a
    process that relaxes in ``τ`` steps.
    """
    u = w / np.linalg.norm(w, axis=1, keepdims=True)
    dev = u - u.mean(axis=0)
    return float(np.sum(dev[1:] * dev[:-1]) / np.sum(dev * dev))
