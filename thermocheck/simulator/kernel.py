"""The fused numba kernel of the isotropic-noise simulator (Eq. 24 of arXiv:2511.07308).

One step of grid point ``m`` at iteration ``k`` (THEORY.md §2):

.. math::

    w \\leftarrow w - \\eta_k\\bigl(\\nabla L(w)
    + \\tfrac{\\sigma}{\\lVert w\\rVert} P_w \\varepsilon + \\lambda w\\bigr),
    \\qquad \\nabla L(w) = P_w \\nabla f(\\bar w) / \\lVert w\\rVert,
    \\qquad \\varepsilon \\sim N(0, I_d),

with ``η_k = lr`` (fixed LR, Eq. 15), ``η_k = elr·‖w‖²`` (fixed ELR, Eq. 8) or ``η_k = elr·r²``
followed by the projection on the sphere of radius ``r`` (fixed sphere, no weight decay). The
normals come from the point's own counter-based stream (:mod:`.rng`), so a point's trajectory is
the same alone or inside any grid, bit for bit.

Everything that can differ between a correct simulator and the broken ones of :mod:`.mutants` is a
field of :class:`Dynamics`; both run through this one kernel. The per-step measurements (at ``w_k``,
before the update) are summed and written as block means every ``log_every`` steps:

====  ==============  ========================================================================
 q     name           per-step sample
====  ==============  ========================================================================
 0     loss           ``f(w̄_k)``
 1     radius         ``‖w_k‖``
 2     sq_norm        ``‖w_k‖²``
 3     grad_sq        ``‖∇f(w̄_k)‖²`` (tangent gradient at unit radius; Appendix G)
 4     sigma2         ``‖w_k‖² ‖ξ_k‖² / (d − 1)`` with ``ξ_k`` the noise actually applied: its
                      mean is ``Tr Σ_w̄ / (d − 1)`` of the noise the substrate really injects
 5     lambda_eff     ``(‖w_k − η_k g_k‖ − ‖w_k‖) / (η_k ‖w_k‖)`` (Eq. 83, before any projection)
 6     norm_balance   ``(1 − η_k λ)² ‖w_k‖² + η_k² ‖g_k‖² − ‖w_k‖²`` (from Eq. 111, THEORY.md §4)
 7     g_sq           ``‖g_k‖²``
====  ==============  ========================================================================

``g_k = ∇L(w_k) + ξ_k`` is the stochastic gradient without weight decay; ``η_k`` and ``λ`` in
rows 5–6 are the *claimed* step and weight decay, so a substrate whose real step or decay differs
from what it reports shows a non-zero norm-balance mean. Rows 5–6 are computed without cancellation:
``‖w − ηg‖ − ‖w‖ = (η²‖g‖² − 2η wᵀg) / (‖w − ηg‖ + ‖w‖)`` and
``(1 − ηλ)²‖w‖² − ‖w‖² = ηλ(ηλ − 2)‖w‖²``.

Performance (2-core AMD EPYC, d = 3): 36 ns of CPU per point and step, 17 ns of wall time on 2
threads; the paper's 289 points × 2·10⁶ steps take 10 s. Two numba details matter: every helper
of the step is inlined at numba's IR level (``inline="always"``), and the loop over points is a
``prange`` (``parallel=True``), whose body numba lowers over raw arrays. Otherwise each step pays
atomic reference-count updates on the arrays it touches: measured on one thread, 88 ns per point
and step with a plain ``range`` against 33 ns with ``prange``.

Caching caveat for developers: numba's on-disk cache (``cache=True``) is keyed on this file only.
The inlined helpers of :mod:`.rng` are compiled into :func:`advance`, so after editing ``rng.py``
alone, delete ``thermocheck/simulator/__pycache__/*.nb[ic]`` (an installed release is unaffected:
its files change together).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit, prange

from thermocheck.simulator.rng import next_normal

__all__ = ["GIVEN", "LINEAR", "QUADRATIC", "QUANTITIES", "Dynamics", "KernelLoss", "advance"]

QUANTITIES: tuple[str, ...] = (
    "loss", "radius", "sq_norm", "grad_sq", "sigma2", "lambda_eff", "norm_balance", "g_sq",
)
_Q = len(QUANTITIES)

#: A point whose squared radius leaves [1e-200, 1e200] (or is NaN) has diverged and is stopped.
_MIN_SQ_RADIUS = 1e-200
_MAX_SQ_RADIUS = 1e200


#: Kinds of :class:`KernelLoss`: the built-in forms, or a loss evaluated by the caller.
LINEAR, QUADRATIC, GIVEN = 0, 1, 2


class KernelLoss(NamedTuple):
    """The loss as the kernel sees it: ``f(w̄) = c + μᵀw̄`` (``LINEAR``), ``c + μᵀw̄ + w̄ᵀAw̄``
    (``QUADRATIC``), or values and gradients given by the caller each iteration (``GIVEN``)."""

    c: float
    mu: np.ndarray
    a: np.ndarray
    kind: int

    @classmethod
    def given(cls, d: int) -> KernelLoss:
        """The placeholder for a loss the caller evaluates."""
        return cls(0.0, np.zeros(d), np.zeros((d, d)), GIVEN)


class Dynamics(NamedTuple):
    """What the substrate really does. The correct simulator is :meth:`correct`; mutants change
    one field and keep reporting the claimed hyperparameters."""

    step_power: int  # real step η_k = coef·‖w‖^step_power: 2 (fixed ELR) or 0
    claimed_step_power: int  # the step the substrate reports, used by the measurements
    wd_factor: float  # real weight decay = wd_factor × claimed λ
    noise_power: int  # noise scaled by ‖w‖^(−noise_power): 1 is Σ_w = Σ_w̄ / ‖w‖²
    project_noise: bool  # noise projected on the tangent space (P_w ε)
    project_grad: bool  # loss gradient projected on the tangent space (P2 of scale invariance)
    project_sphere: bool  # project on the sphere of the point's radius after each step

    @classmethod
    def correct(cls, protocol: str) -> Dynamics:
        """The dynamics of Eq. 24 under ``protocol``."""
        power = 2 if protocol == "fixed_elr" else 0
        return cls(power, power, 1.0, 1, True, True, protocol == "fixed_sphere")


@njit(cache=True, inline="always")
def _direction(wm: np.ndarray, wbar: np.ndarray) -> float:
    """Fill ``wbar = w/‖w‖`` and return ``‖w‖²``, or NaN when the point has diverged."""
    r2 = 0.0
    for i in range(wm.size):
        r2 += wm[i] * wm[i]
    if not (_MIN_SQ_RADIUS < r2 < _MAX_SQ_RADIUS):
        return math.nan
    inv_r = 1.0 / math.sqrt(r2)
    for i in range(wm.size):
        wbar[i] = wm[i] * inv_r
    return r2


@njit(cache=True, inline="always")
def _builtin_loss(wbar: np.ndarray, loss: KernelLoss, grad: np.ndarray) -> float:
    """``f(w̄) = c + μᵀw̄ (+ w̄ᵀAw̄)``; fills ``grad`` with the ambient ``∇f = μ (+ 2Aw̄)``."""
    d = wbar.size
    f = loss.c
    for i in range(d):
        f += loss.mu[i] * wbar[i]
        grad[i] = loss.mu[i]
    if loss.kind == QUADRATIC:
        for i in range(d):
            aw = 0.0
            for j in range(d):
                aw += loss.a[i, j] * wbar[j]
            f += wbar[i] * aw
            grad[i] += 2.0 * aw
    return f


@njit(cache=True, inline="always")
def _tangent(v: np.ndarray, wbar: np.ndarray) -> None:
    """``v ← P_w̄ v = v − (w̄ᵀv) w̄`` in place."""
    dot = 0.0
    for i in range(v.size):
        dot += v[i] * wbar[i]
    for i in range(v.size):
        v[i] -= dot * wbar[i]


@njit(cache=True, inline="always")
def _step(
    k: int, wm: np.ndarray, wbar: np.ndarray, r2: float, f: float, grad: np.ndarray,
    noise: np.ndarray, stream: np.ndarray, acc: np.ndarray, series: np.ndarray,
    queue: np.ndarray, coef: float, wd: float, radius: float, sigma: float,
    noise_scale: np.ndarray, dyn: Dynamics, log_every: int, queue_every: int,
) -> None:
    """One update of one point from ``w_k`` (``r2 = ‖w_k‖²``, loss ``f``, ambient ``∇f`` in
    ``grad``), with its measurements, log and queue bookkeeping. ``noise`` is scratch space."""
    d = wm.size
    r = math.sqrt(r2)
    inv_r = 1.0 / r
    if dyn.project_grad:
        _tangent(grad, wbar)
    grad_sq = 0.0
    for i in range(d):
        grad_sq += grad[i] * grad[i]
        noise[i] = noise_scale[i] * next_normal(stream)
    if dyn.project_noise:
        _tangent(noise, wbar)
    amplitude = sigma * inv_r if dyn.noise_power == 1 else sigma
    xi_sq = 0.0
    wg = 0.0
    gg = 0.0
    for i in range(d):  # noise ← g = ∇L(w) + ξ
        xi = amplitude * noise[i]
        xi_sq += xi * xi
        noise[i] = grad[i] * inv_r + xi
        wg += wm[i] * noise[i]
        gg += noise[i] * noise[i]
    eta = coef * r2 if dyn.claimed_step_power == 2 else coef
    new_sq = r2 - 2.0 * eta * wg + eta * eta * gg
    acc[0] += f
    acc[1] += r
    acc[2] += r2
    acc[3] += grad_sq
    acc[4] += r2 * xi_sq / (d - 1)
    acc[5] += (eta * eta * gg - 2.0 * eta * wg) / ((math.sqrt(new_sq) + r) * eta * r)
    acc[6] += eta * wd * (eta * wd - 2.0) * r2 + eta * eta * gg
    acc[7] += gg
    real_eta = coef * r2 if dyn.step_power == 2 else coef
    shrink = 1.0 - real_eta * dyn.wd_factor * wd
    for i in range(d):
        wm[i] = shrink * wm[i] - real_eta * noise[i]
    if dyn.project_sphere:
        norm = 0.0
        for i in range(d):
            norm += wm[i] * wm[i]
        scale = radius / math.sqrt(norm)
        for i in range(d):
            wm[i] *= scale
    if (k + 1) % log_every == 0:
        row = (k + 1) // log_every - 1
        for q in range(_Q):
            series[row, q] = acc[q] / log_every
            acc[q] = 0.0
    if (k + 1) % queue_every == 0:
        slot = ((k + 1) // queue_every - 1) % queue.shape[0]
        for i in range(d):
            queue[slot, i] = wm[i]


@njit(cache=True, parallel=True)
def advance(
    w: np.ndarray, streams: np.ndarray, acc: np.ndarray, series: np.ndarray, queue: np.ndarray,
    diverged: np.ndarray, coef: np.ndarray, wd: np.ndarray, radius: np.ndarray, sigma: float,
    noise_scale: np.ndarray, dyn: Dynamics, loss: KernelLoss, values: np.ndarray,
    grads: np.ndarray, start: int, stop: int, log_every: int, queue_every: int,
) -> None:
    """Iterations ``start … stop − 1`` of every point, in parallel over points, in place.

    Arrays: weights ``w[M, d]``, stream rows, running sums ``acc[M, Q]``, block means
    ``series[M, n_logs, Q]``, ring buffers ``queue[M, size, d]``, and ``diverged[M]`` (the iteration
    at which a point left the finite range, −1 while it has not; such a point is not advanced).
    A ``GIVEN`` loss takes ``values[M]`` and ambient gradients ``grads[M, d]`` evaluated by the
    caller at the current directions (one iteration per call; ``grads`` is overwritten); the
    built-in losses ignore them.

    One compiled function serves both paths: numba compiles it once (5–10 s) and caches it.
    """
    d = w.shape[1]
    given = loss.kind == GIVEN
    for m in prange(w.shape[0]):
        if diverged[m] >= 0:
            continue
        wbar = np.empty(d)
        noise = np.empty(d)
        own_grad = np.empty(d)
        wm, stream, am, sm, qm = w[m], streams[m], acc[m], series[m], queue[m]
        grad = grads[m] if given else own_grad
        for k in range(start, stop):
            r2 = _direction(wm, wbar)
            if math.isnan(r2):
                diverged[m] = k
                break
            f = values[m] if given else _builtin_loss(wbar, loss, grad)
            _step(k, wm, wbar, r2, f, grad, noise, stream, am, sm, qm, coef[m], wd[m], radius[m],
                  sigma, noise_scale, dyn, log_every, queue_every)
