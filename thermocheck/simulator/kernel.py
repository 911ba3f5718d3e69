"""The fused numba kernel of the isotropic-noise simulator (Eq. 24 of arXiv:2511.07308).

One step of grid point ``m`` at iteration ``k`` (docs/theory.md §2):

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
 6     norm_balance   ``(1 − η_k λ)² ‖w_k‖² + η_k² ‖g_k‖² − ‖w_k‖²`` (from Eq. 111)
 7     g_sq           ``‖g_k‖²``
 8     vel_grad       ``‖w_k‖²⟨v_k, g_k⟩`` with the claimed velocity before the step (momentum;
                      0 without): the velocity's memory of past gradients
====  ==============  ========================================================================

With momentum β (``Dynamics.momentum``; ``torch.optim.SGD`` with dampening 0 and coupled decay:
``v ← βv + g + λw``, ``w ← w − ηv``, or Nesterov's ``w ← w − η(g + λw + βv)``) rows 5–6 use the
claimed update ``u`` built from the claimed velocity: row 6 is ``η_k²‖u_k‖² − 2η_k⟨w_k, u_k⟩``
(the exact one-step change of ‖w‖², with ``⟨w_k, g_k⟩ = 0``), row 5 is Eq. 83 for ``u`` without
this step's decay, per effective step ``η_k/(1 − β)`` (:func:`_momentum_measure`). At β = 0 both
reduce to the rows above, and the plain step runs unchanged.

With AdamW (``Dynamics.adam``; fixed LR only, ``torch.optim.AdamW``: per-coordinate moments
``m ← β1 m + (1 − β1) g``, ``s ← β2 s + (1 − β2) g²``, bias-corrected, ``u = m̂/(√ŝ + ε)``, then
``w ← (1 − ηλ) w − η u``) rows 5–6 hold what the norm equilibrium of Kosson et al. (2024) is about:
row 5 is the angular update ``∠(w_k, w_{k+1})``, computed as ``2 atan2(‖ŵ_k − ŵ_{k+1}‖,
‖ŵ_k + ŵ_{k+1}‖)`` on unit vectors (no cancellation at small angles), row 6 is ``‖u_k‖²``
(:func:`_adam_step`).

``g_k = ∇L(w_k) + ξ_k`` is the stochastic gradient without weight decay; ``η_k`` and ``λ`` in
rows 5–6 are the *claimed* step and weight decay, so a substrate whose real step or decay differs
from what it reports shows a non-zero norm-balance mean. Rows 5–6 are computed without cancellation:
``‖w − ηg‖ − ‖w‖ = (η²‖g‖² − 2η wᵀg) / (‖w − ηg‖ + ‖w‖)`` and
``(1 − ηλ)²‖w‖² − ‖w‖² = ηλ(ηλ − 2)‖w‖²``.

Performance (2-core Xeon, d = 3, the paper's 17 × 17 grid under fixed LR, other jobs keeping the
load average at 4–5): 36 ns of CPU per point and step on one thread, 1.4× the CPU time numpy's
SFC64 takes for the step's three normals. On 2 threads the wall time is 1.4× that of the same
normals drawn on 2 plain threads on a quiet machine (the reference of ``python -m benchmarks
--sections simulator``), 1.6–1.7× under load: OpenMP's spinning workers take the cores the
working threads need. The step is a chain of dependent latencies (norm, square root, division,
projections, update), so what matters:

* a thread advances two points together (:func:`advance`), and the processor overlaps their
  independent chains;
* a step's loops are fused: the draws with the projections' dot products, then the projections,
  the measured sums and plain SGD's update in one loop (:func:`_step`); log and queue times are
  counted down, not divided;
* the helpers of the plain step are inlined at numba's IR level (``inline="always"``) and the loop
  over points is a ``prange`` (``parallel=True``), whose body numba lowers over raw arrays.
  Otherwise each step pays atomic reference-count updates on the arrays it touches (measured on
  one thread: 88 ns per point and step with a plain ``range`` against 33 ns with ``prange``).
  Momentum's and AdamW's helpers are called out of line: they pay such updates, but keep the
  compiled code (and numba's compile time) of the doubled plain step small;
* what a step writes (weights, velocities, sums, the stream's buffer) lives in a pair's own
  padded memory during a call: in the shared per-point arrays, two threads' rows met in one cache
  line, which then moved between the cores at every step (measured on 2 quiet cores, d = 3: 4
  points ran at 33–35 ns per point and step, as fast as on one thread, 16 points at 21.5; with
  private memory 18–18.5 at any count from 4 on).

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
    "vel_grad",
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
    momentum: float = 0.0  # real heavy-ball coefficient β of the velocity
    claimed_momentum: float = 0.0  # the β the substrate reports, used by the measurements
    nesterov: bool = False  # Nesterov's step w ← w − η(g + λw + βv) instead of w ← w − ηv
    decay_in_velocity: bool = True  # weight decay enters the velocity (torch.optim.SGD)
    adam: bool = False  # AdamW's step (β1 = ``momentum``) instead of SGD's
    beta2: float = 0.0  # AdamW's second-moment coefficient
    eps: float = 0.0  # AdamW's ε
    decoupled: bool = True  # AdamW's decay w ← (1 − ηλ)w; False: λw is added to g (Adam + L2)

    @classmethod
    def correct(cls, protocol: str, *, momentum: float = 0.0, nesterov: bool = False) -> Dynamics:
        """The dynamics of Eq. 24 under ``protocol``, with heavy-ball (or Nesterov) momentum β
        as ``torch.optim.SGD`` applies it (dampening 0, coupled weight decay)."""
        power = 2 if protocol == "fixed_elr" else 0
        return cls(power, power, 1.0, 1, True, True, protocol == "fixed_sphere", float(momentum),
                   float(momentum), bool(nesterov))

    @classmethod
    def adamw(cls, *, beta1: float, beta2: float, eps: float) -> Dynamics:
        """``torch.optim.AdamW`` under fixed LR (decoupled decay, bias-corrected moments)."""
        return cls(0, 0, 1.0, 1, True, True, False, momentum=float(beta1), adam=True,
                   beta2=float(beta2), eps=float(eps))


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


@njit(cache=True)
def _momentum_measure(
    wm: np.ndarray, g: np.ndarray, cvel: np.ndarray, r2: float, wg: float, gg: float,
    eta: float, wd: float, dyn: Dynamics, acc: np.ndarray,
) -> None:
    """Rows 5–6 with momentum, from the *claimed* update ``u = a g + b w + c v`` (``v``: the
    claimed velocity before the step): heavy ball ``(a, b, c) = (1, λ, β)``, Nesterov
    ``(1 + β, (1 + β)λ, β²)``.

    Row 6 is ``‖w − ηu‖² − ‖w‖² = η²‖u‖² − 2η⟨w, u⟩`` with ``⟨w, g⟩ = 0`` (the claim of scale
    invariance, P2), as in the plain residual it reduces to at β = 0. Row 5 is Eq. 83 for the
    update without this step's decay, ``q = a g + c v``, per effective step ``η/(1 − β)``:
    ``(‖w − ηq‖ − ‖w‖)/(η/(1 − β)·‖w‖)``, written without cancellation.
    """
    beta = dyn.claimed_momentum
    a = 1.0 + beta if dyn.nesterov else 1.0
    c = beta * beta if dyn.nesterov else beta
    b = a * wd
    wv = 0.0
    vv = 0.0
    vg = 0.0
    for i in range(wm.size):
        wv += wm[i] * cvel[i]
        vv += cvel[i] * cvel[i]
        vg += cvel[i] * g[i]
    wu = b * r2 + c * wv
    uu = a * a * gg + b * b * r2 + c * c * vv + 2.0 * b * c * wv + 2.0 * a * c * vg
    acc[6] += eta * (eta * uu - 2.0 * wu)
    acc[8] += r2 * vg
    wq = a * wg + c * wv
    qq = a * a * gg + c * c * vv + 2.0 * a * c * vg
    r = math.sqrt(r2)
    inflation = eta * eta * qq - 2.0 * eta * wq
    new_sq = max(r2 + inflation, 0.0)
    acc[5] += inflation * (1.0 - beta) / ((math.sqrt(new_sq) + r) * eta * r)


@njit(cache=True)
def _momentum_update(
    wm: np.ndarray, g: np.ndarray, vel: np.ndarray, cvel: np.ndarray, real_eta: float,
    wd: float, dyn: Dynamics,
) -> None:
    """The real step with momentum, as ``torch.optim.SGD`` (dampening 0): ``v ← βv + g + λw``,
    then ``w ← w − ηv`` (heavy ball) or ``w ← w − η(g + λw + βv)`` (Nesterov); a substrate with
    ``decay_in_velocity=False`` keeps λw out of ``v`` and subtracts ``ηλw`` from w instead. The
    claimed velocity ``cvel`` follows the claimed β with coupled decay."""
    lam = dyn.wd_factor * wd
    lam_in = lam if dyn.decay_in_velocity else 0.0
    lam_out = lam - lam_in
    beta = dyn.momentum
    for i in range(wm.size):
        kick = g[i] + lam_in * wm[i]
        v_new = beta * vel[i] + kick
        step = kick + beta * v_new if dyn.nesterov else v_new
        vel[i] = v_new
        cvel[i] = dyn.claimed_momentum * cvel[i] + g[i] + wd * wm[i]
        wm[i] -= real_eta * (step + lam_out * wm[i])


@njit(cache=True)
def _adam_step(
    k: int, wm: np.ndarray, g: np.ndarray, m1: np.ndarray, m2: np.ndarray, r2: float, eta: float,
    wd: float, dyn: Dynamics, acc: np.ndarray,
) -> None:
    """One AdamW step of ``torch.optim.AdamW`` at iteration ``k`` (bias corrections at
    ``t = k + 1``), in place; ``g`` (the stochastic gradient) is overwritten with ``w_{k+1}``.
    Rows 5–6: the angular update ``∠(w_k, w_{k+1})`` and ``‖u_k‖²``, ``u = m̂/(√ŝ + ε)``. A substrate
    with ``decoupled=False`` feeds ``λw`` into the moments instead (Adam with L2 regularisation)."""
    b1 = dyn.momentum
    b2 = dyn.beta2
    c1 = 1.0 - b1 ** (k + 1)
    c2 = 1.0 - b2 ** (k + 1)
    lam = dyn.wd_factor * wd
    lam_in = 0.0 if dyn.decoupled else lam
    shrink = 1.0 - eta * lam if dyn.decoupled else 1.0
    uu = 0.0
    new_sq = 0.0
    for i in range(wm.size):
        gi = g[i] + lam_in * wm[i]
        m1[i] = b1 * m1[i] + (1.0 - b1) * gi
        m2[i] = b2 * m2[i] + (1.0 - b2) * gi * gi
        u = (m1[i] / c1) / (math.sqrt(m2[i] / c2) + dyn.eps)
        uu += u * u
        g[i] = shrink * wm[i] - eta * u
        new_sq += g[i] * g[i]
    inv_old = 1.0 / math.sqrt(r2)
    inv_new = 1.0 / math.sqrt(new_sq) if new_sq > 0.0 else 0.0
    chord = 0.0
    across = 0.0
    for i in range(wm.size):
        a = wm[i] * inv_old
        b = g[i] * inv_new
        chord += (a - b) * (a - b)
        across += (a + b) * (a + b)
        wm[i] = g[i]
    acc[5] += 2.0 * math.atan2(math.sqrt(chord), math.sqrt(across))
    acc[6] += uu


@njit(cache=True, inline="always")
def _step(
    k: int, wm: np.ndarray, wbar: np.ndarray, r2: float, f: float, grad: np.ndarray,
    noise: np.ndarray, vel: np.ndarray, cvel: np.ndarray, stream: np.ndarray, zbuf: np.ndarray,
    acc: np.ndarray,
    series: np.ndarray,
    queue: np.ndarray, coef: float, wd: float, radius: float, sigma: float,
    noise_scale: np.ndarray, dyn: Dynamics, log_every: int, log_row: int, queue_slot: int,
) -> None:
    """One update of one point from ``w_k`` (``r2 = ‖w_k‖²``, loss ``f``, ambient ``∇f`` in
    ``grad``), with its measurements; at ``log_row >= 0`` the block means go to that row of the
    log, at ``queue_slot >= 0`` the new weights to that slot of the queue. ``noise`` is scratch
    space; ``vel`` and ``cvel`` are the real and the claimed velocity (used only with momentum), or
    AdamW's first and second moments; ``zbuf`` is the stream row viewed as float64
    (:func:`.rng.next_normal`).

    The arithmetic is that of Eq. 24 term by term, in two fused loops: the draws with the dot
    products of the tangent projections ``P_w̄ v = v − (w̄ᵀv) w̄``, then the projected gradient and
    noise, ``g = ∇L(w) + ξ``, the sums of the measurements and (plain SGD) the update.
    Momentum and AdamW update after the loop, from ``g`` (left in ``noise``)."""
    d = wm.size
    r = math.sqrt(r2)
    inv_r = 1.0 / r
    dot_grad = 0.0
    dot_noise = 0.0
    for i in range(d):  # the draws, and the dot products of the tangent projections
        noise[i] = noise_scale[i] * next_normal(stream, zbuf)
        dot_grad += grad[i] * wbar[i]
        dot_noise += noise[i] * wbar[i]
    amplitude = sigma * inv_r if dyn.noise_power == 1 else sigma
    plain = (not dyn.adam and dyn.momentum == 0.0 and dyn.claimed_momentum == 0.0
             and dyn.decay_in_velocity)
    real_eta = coef * r2 if dyn.step_power == 2 else coef
    shrink = 1.0 - real_eta * dyn.wd_factor * wd
    grad_sq = 0.0
    xi_sq = 0.0
    wg = 0.0
    gg = 0.0
    for i in range(d):  # noise ← g = ∇L(w) + ξ; plain SGD steps here
        gi = grad[i] - dot_grad * wbar[i] if dyn.project_grad else grad[i]
        ni = noise[i] - dot_noise * wbar[i] if dyn.project_noise else noise[i]
        grad_sq += gi * gi
        xi = amplitude * ni
        xi_sq += xi * xi
        g = gi * inv_r + xi
        noise[i] = g
        wg += wm[i] * g
        gg += g * g
        if plain:
            wm[i] = shrink * wm[i] - real_eta * g
    eta = coef * r2 if dyn.claimed_step_power == 2 else coef
    acc[0] += f
    acc[1] += r
    acc[2] += r2
    acc[3] += grad_sq
    acc[4] += r2 * xi_sq / (d - 1)
    acc[7] += gg
    if dyn.adam:
        _adam_step(k, wm, noise, vel, cvel, r2, real_eta, wd, dyn, acc)
    elif plain:
        new_sq = r2 - 2.0 * eta * wg + eta * eta * gg
        acc[5] += (eta * eta * gg - 2.0 * eta * wg) / ((math.sqrt(new_sq) + r) * eta * r)
        acc[6] += eta * wd * (eta * wd - 2.0) * r2 + eta * eta * gg
    else:
        _momentum_measure(wm, noise, cvel, r2, wg, gg, eta, wd, dyn, acc)
        _momentum_update(wm, noise, vel, cvel, real_eta, wd, dyn)
    if dyn.project_sphere:
        norm = 0.0
        for i in range(d):
            norm += wm[i] * wm[i]
        scale = radius / math.sqrt(norm)
        for i in range(d):
            wm[i] *= scale
    if log_row >= 0:
        for q in range(_Q):
            series[log_row, q] = acc[q] / log_every
            acc[q] = 0.0
    if queue_slot >= 0:
        for i in range(d):
            queue[queue_slot, i] = wm[i]


@njit(cache=True, inline="always")
def _iterate(
    k: int, m: int, wm: np.ndarray, wbar: np.ndarray, grad: np.ndarray, noise: np.ndarray,
    vm: np.ndarray, cm: np.ndarray, stream: np.ndarray, zbuf: np.ndarray, am: np.ndarray,
    sm: np.ndarray, qm: np.ndarray, diverged: np.ndarray, coef: np.ndarray, wd: np.ndarray,
    radius: np.ndarray, sigma: float, noise_scale: np.ndarray, dyn: Dynamics, loss: KernelLoss,
    values: np.ndarray, log_every: int, log_row: int, queue_every: np.ndarray, queue_left: int,
) -> int:
    """Iteration ``k`` of point ``m`` (row views ``wm``, ``vm``, ``cm``, ``stream``, ``am``, ``sm``,
    ``qm``; scratch ``wbar``, ``grad``, ``noise``); a diverged point is left as it is. Returns the
    iterations left until the point next queues its weights (``queue_left`` counts down)."""
    if diverged[m] >= 0:
        return queue_left
    r2 = _direction(wm, wbar)
    if math.isnan(r2):
        diverged[m] = k
        return queue_left
    slot = -1
    queue_left -= 1
    if queue_left == 0:
        queue_left = queue_every[m]
        slot = ((k + 1) // queue_every[m] - 1) % qm.shape[0]
    f = values[m] if loss.kind == GIVEN else _builtin_loss(wbar, loss, grad)
    _step(k, wm, wbar, r2, f, grad, noise, vm, cm, stream, zbuf, am, sm, qm, coef[m], wd[m],
          radius[m], sigma, noise_scale, dyn, log_every, log_row, slot)
    return queue_left


#: float64 or uint64 words in a cache line (64 bytes on x86-64 and most ARM cores).
_LINE_WORDS = 8


@njit(cache=True, inline="always")
def _own(size: int, dtype: np.dtype) -> np.ndarray:
    """``size`` 8-byte words of ``dtype`` with a cache line of padding on each side: a thread's
    hot state in memory that no other thread's data shares a cache line with. Written every step,
    per-point rows of the shared arrays that met at a thread boundary sent their line back and
    forth between the cores (measured: 4 points on 2 threads ran no faster than on one)."""
    return np.empty(size + 2 * _LINE_WORDS, dtype=dtype)[_LINE_WORDS : _LINE_WORDS + size]


@njit(cache=True, inline="always")
def _private(row: np.ndarray) -> np.ndarray:
    """A copy of ``row`` in memory of its own (:func:`_own`)."""
    out = _own(row.size, row.dtype)
    out[:] = row
    return out


@njit(cache=True, parallel=True)
def advance(
    w: np.ndarray, vel: np.ndarray, cvel: np.ndarray, streams: np.ndarray, acc: np.ndarray,
    series: np.ndarray, queue: np.ndarray, diverged: np.ndarray, coef: np.ndarray,
    wd: np.ndarray, radius: np.ndarray, sigma: float,
    noise_scale: np.ndarray, dyn: Dynamics, loss: KernelLoss, values: np.ndarray,
    grads: np.ndarray, start: int, stop: int, log_every: int, queue_every: np.ndarray,
) -> None:
    """Iterations ``start … stop − 1`` of every point, in parallel over pairs of points, in place.

    Arrays: weights ``w[M, d]``, real and claimed velocities ``vel[M, d]``, ``cvel[M, d]``
    (momentum only; zeros otherwise), stream rows, running sums ``acc[M, Q]``, block means
    ``series[M, n_logs, Q]``, ring buffers ``queue[M, size, d]`` (point m stores its weights every
    ``queue_every[m]`` iterations), and ``diverged[M]`` (the iteration
    at which a point left the finite range, −1 while it has not; such a point is not advanced).
    A ``GIVEN`` loss takes ``values[M]`` and ambient gradients ``grads[M, d]`` evaluated by the
    caller at the current directions (one iteration per call); the built-in losses ignore them.

    A thread advances two points together, iteration by iteration (the first point of an odd
    count alone, so that a pair costs no more than a lone point on the busiest thread): one
    point's step is a chain of dependent latencies (norm, square root, division, projections),
    and the processor overlaps the two independent chains. A pair's state lives in memory of its
    own during the call (:func:`_private`) and is written back at the end. A point's arithmetic,
    and so its trajectory, is the same in any pairing, bit for bit.

    One compiled function serves both paths: numba compiles it once (12 s of CPU on a 2-core
    Xeon) and caches it.
    """
    d = w.shape[1]
    points = w.shape[0]
    given = loss.kind == GIVEN
    odd = points % 2
    for p in prange((points + 1) // 2):
        m0 = max(2 * p - odd, 0)  # item 0 is an odd count's lone point: where the items split
        m1 = 2 * p + 1 - odd  # unevenly, the first thread has one more, and so a lone point
        scratch = _own(6 * d, w.dtype).reshape((6, d))
        grad0 = grads[m0] if given else scratch[0]
        grad1 = grads[m1] if given else scratch[1]
        wbar0, wbar1, noise0, noise1 = scratch[2], scratch[3], scratch[4], scratch[5]
        w0, v0, c0, s0, a0 = (_private(w[m0]), _private(vel[m0]), _private(cvel[m0]),
                              _private(streams[m0]), _private(acc[m0]))
        w1, v1, c1, s1, a1 = (_private(w[m1]), _private(vel[m1]), _private(cvel[m1]),
                              _private(streams[m1]), _private(acc[m1]))
        z0, z1 = s0.view(np.float64), s1.view(np.float64)
        l0, q0 = series[m0], queue[m0]
        l1, q1 = series[m1], queue[m1]
        log_left = log_every - start % log_every
        left0 = queue_every[m0] - start % queue_every[m0]
        left1 = queue_every[m1] - start % queue_every[m1]
        for k in range(start, stop):
            log_row = -1
            log_left -= 1
            if log_left == 0:
                log_left = log_every
                log_row = (k + 1) // log_every - 1
            left0 = _iterate(k, m0, w0, wbar0, grad0, noise0, v0, c0, s0, z0, a0, l0, q0,
                             diverged, coef, wd, radius, sigma, noise_scale, dyn, loss, values,
                             log_every, log_row, queue_every, left0)
            if m1 != m0:
                left1 = _iterate(k, m1, w1, wbar1, grad1, noise1, v1, c1, s1, z1, a1, l1, q1,
                                 diverged, coef, wd, radius, sigma, noise_scale, dyn, loss,
                                 values, log_every, log_row, queue_every, left1)
        w[m0], vel[m0], cvel[m0], streams[m0], acc[m0] = w0, v0, c0, s0, a0
        if m1 != m0:
            w[m1], vel[m1], cvel[m1], streams[m1], acc[m1] = w1, v1, c1, s1, a1
