"""The measurement layer: the :class:`Recorder` of training runs and the gradient-noise measurement
:func:`noise`.

A user's own loop records one model (``M = 1``)::

    recorder = Recorder(model, "fixed_lr", lr=0.1, wd=5e-4, data=(X, Y), batch_size=32,
                        noise_every=10)             # refuses a model that is not scale-invariant
    for x, y in batches:
        ...; loss.backward(); optimizer.step()
        recorder.step(loss)                         # on device: no host synchronisation
    state = recorder.state()                        # a State with batch-means standard errors

The network trainer measures ``M`` stacked models through the same class (``model=None``,
:meth:`Recorder.begin` / :meth:`Recorder.end` with weights ``W[M, P]``): one mechanism.

Per step the recorder keeps, on the weights' device, the Gram matrix of ``(w_k, g_k)``
(``‖w_k‖²``, ``⟨w_k, g_k⟩``, ``‖g_k‖²``) and the loss; ``‖w_{k+1}‖²`` is the next step's ``‖w‖²``.
Every ``every`` steps it turns them into block means of the derived quantities
(:data:`QUANTITIES`): the exact one-step norm balance of Eq. 111, the effective weight decay of
Eq. 83, the unit-radius gradient norm ``‖w_k‖²‖g_k‖² = ‖∇L_B(w̄_k)‖²`` (P1) and the residual of the
claimed update (zero to round-off when the optimizer does what the protocol says; momentum or a
different weight decay shows there). The host reads the block means only at log points
(:meth:`Recorder.sync`, :meth:`Recorder.state`). Directions are queued every ``queue_every`` steps
for the entropy (Eq. 25–28).

Why the noise scale comes from every training step
--------------------------------------------------
The state equations need stationary means: ``r*² = η_eff Tr / (2λ)`` (Eq. 12, 120) and
``r*⁴ = η Tr / (2λ)`` (Eq. 19, 119) with ``Tr = E_ρ[Tr Σ_w̄ + ‖∇L(w̄)‖²]`` (Appendix G), the mean over
the stationary law ρ of the direction. Each training step samples it without bias: the minibatch
of step k is drawn independently of ``w_k``, so ``E[‖w_k‖²‖g_k‖² | w_k] = Tr Σ_w̄_k + ‖∇L(w̄_k)‖²``.
A few snapshots (:func:`noise` at log points, the paper's method) sample only a handful of
``w̄``, and for networks ``E_B‖∇L_B(w̄)‖²`` is strongly right-skewed over ρ. Measured on the
``cpu-tiny`` grids (ConvNet width 2 on digits, fixed LR η ∈ {0.1, 0.2, 0.4} and fixed ELR
η_eff ∈ {0.007, 0.013, 0.025}, λ ∈ {0.025, 0.05, 0.1}; 1500-step tails): the per-step series has
mean/median 1.2–2.3 and p99/median 4–18, with an integrated autocorrelation time of 2–7 steps.
Fed with its mean, the state equation predicts the measured ``E‖w‖²`` within 2 % at all 9 fixed LR
points and within 10 % at all 9 fixed ELR points. Six snapshots were off by up to a factor 2, which
was the cause of the V1 failures: at η_eff = 0.013, λ = 0.1, E‖w‖² was 11.7, the per-step prediction
11.8 and the snapshot prediction 6.2. BatchNorm's chunking of the full-batch gradient is not the
cause (it moves Tr Σ by under 2 %), nor are radius fluctuations (E‖w‖⁴/E‖w‖²² ≤ 1.13).

The split between ``σ² = Tr Σ_w̄ /(d − 1)`` and ``E‖∇L(w̄)‖²`` needs gradients at one ``w`` for two
independent minibatches. Noise measurements are therefore small and frequent: a few minibatch
gradients (the stacked trainer reuses the training step's own gradient as one of them) every
few steps, which give ``E‖∇L(w̄)‖²`` without bias (:func:`noise_from_gradients`). Then
``σ² = (E‖w_k‖²‖g_k‖² − E‖∇L(w̄)‖²)/(d − 1)``. Their own σ² (the paper's, centred differently) is in
``State.extra["sigma2_measured"]`` for comparison. The corrected trace ``σ²(d − 1) + E‖∇L(w̄)‖²``
that V1 uses is then the per-step mean. The laws add the two terms' standard errors in
quadrature as if they were independent, which overstates its error a little: conservative.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.hooks import RemovableHandle

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_choice, check_positive
from thermocheck.states import Estimate, State
from thermocheck.stats import MIN_BATCHES, assess_stationarity, batch_means

__all__ = [
    "INTERPOLATION_REASON",
    "QUANTITIES",
    "GridSpec",
    "NoiseEstimate",
    "Recorder",
    "noise",
    "noise_from_gradients",
]

INTERPOLATION_REASON = "no stationary distribution: the model interpolates (Tr Σ → 0)"

#: Block means the recorder logs, in the order of its device history's first axis.
QUANTITIES = (
    "sq_norm",  # ‖w_k‖²
    "mean_radius",  # ‖w_k‖
    "step_grad_sq",  # ‖g_k‖²
    "unit_grad_sq",  # ‖w_k‖²‖g_k‖² = ‖∇L_B(w̄_k)‖² (P1)
    "norm_balance",  # (1 − η_k λ)²‖w_k‖² + η_k²‖g_k‖² − ‖w_k‖² (Eq. 111)
    "balance_lhs",  # (1 − η_k λ)²‖w_k‖² + η_k²‖g_k‖²
    "lambda_eff",  # (‖w_k − η_k g_k‖ − ‖w_k‖)/(η_k ‖w_k‖) (Eq. 83)
    "radial_cos",  # ⟨w_k, g_k⟩/(‖w_k‖‖g_k‖): 0 for a scale-invariant loss (P2)
    "loss",  # training loss (NaN where not given)
    "update_residual",  # (‖w_{k+1}‖² − claimed)/‖w_k‖² (NaN where w_{k+1} not given)
)
#: Raw per-step scalars, in the order of the step buffer's last axis: the Gram matrix of
#: (w_k, g_k) row by row and the loss. ‖w_{k+1}‖² is the next step's ‖w‖².
_RAW = ("sq", "wg", "gw", "gsq", "loss")
#: Logs after burn-in that the stationarity test needs (``stats.assess_stationarity``).
MIN_LOGS = 4 * MIN_BATCHES
#: Most contiguous sub-queues whose entropies give the entropy's standard error.
ENTROPY_BATCHES = 5

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unit_radius(sq_norm: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A squared gradient norm or noise trace measured at ``w``, converted to unit radius.

    ``∇L_B(w) = ∇L_B(w̄)/‖w‖`` (P1), so ``‖∇L_B(w̄)‖² = ‖w‖²‖∇L_B(w)‖²`` and
    ``Tr Σ_w̄ = ‖w‖² Tr Σ_w`` (``Σ_w = Σ_w̄ / r²``, THEORY §1). The one place the conversion is done.
    """
    return sq_norm * value


# -- protocols as update coefficients --------------------------------------------------------------
@dataclass(frozen=True)
class GridSpec:
    """Per-model update coefficients: step ``η_k = a + b‖w_k‖²``, weight decay ``wd``, projection.

    fixed LR (Eq. 15): ``a = η, b = 0``; fixed ELR (Eq. 8): ``a = 0, b = η_eff``; fixed sphere:
    ``a = η_eff r², b = 0, wd = 0`` and a projection on the sphere of radius ``r``. Tensors have
    shape ``[M]``; one grid may mix protocols.
    """

    a: torch.Tensor
    b: torch.Tensor
    wd: torch.Tensor
    radius: torch.Tensor
    project: torch.Tensor

    @classmethod
    def build(
        cls,
        protocols: Sequence[str],
        *,
        lr: Sequence[float | None],
        wd: Sequence[float | None],
        elr: Sequence[float | None],
        radius: Sequence[float | None],
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> GridSpec:
        """Coefficients for models ``i`` with ``protocols[i]`` and hyperparameters ``lr[i]`` …"""
        a: list[float] = []
        b: list[float] = []
        w: list[float] = []
        r: list[float] = []
        proj: list[bool] = []
        for i, p in enumerate(protocols):
            theory.check_protocol(p)
            given = {"lr": lr[i], "wd": wd[i], "elr": elr[i], "radius": radius[i]}
            hp = {name: float(check_positive(f"{name} (model {i}, {p})",
                                             np.nan if given[name] is None else given[name]))
                  for name in theory.AXES[p]}
            sphere = p == "fixed_sphere"
            step = hp["elr"] * hp["radius"] ** 2 if sphere else 0.0
            a.append(hp["lr"] if p == "fixed_lr" else step)
            b.append(hp["elr"] if p == "fixed_elr" else 0.0)
            w.append(0.0 if sphere else hp["wd"])
            r.append(hp["radius"] if sphere else 1.0)
            proj.append(sphere)

        def t(v: list[float]) -> torch.Tensor:
            return torch.tensor(v, dtype=dtype, device=device)

        return cls(t(a), t(b), t(w), t(r), torch.tensor(proj, device=device))

    def step_size(self, sq: torch.Tensor) -> torch.Tensor:
        """``η_k = a + b‖w_k‖²`` per model."""
        return self.a + self.b * sq


# -- gradient noise --------------------------------------------------------------------------------
@dataclass(frozen=True)
class NoiseEstimate:
    """Gradient noise at one point, per model (arrays of length M).

    ``sigma2 = Tr Σ_w̄ / (d − 1)`` with its standard error and ``grad_sq = ‖∇L(w̄)‖²``, both at unit
    radius; ``rank_num / rank_den`` estimates the participation ratio ``(Tr Σ)² / Tr(Σ²)``
    (``d − 1`` for isotropic noise; pool several estimates as ``Σ num / Σ den``); ``n`` is the
    number of minibatch gradients.
    """

    sigma2: np.ndarray
    sigma2_se: np.ndarray
    grad_sq: np.ndarray
    rank_num: np.ndarray
    rank_den: np.ndarray
    n: int

    @property
    def eff_rank(self) -> np.ndarray:
        """The participation ratio ``(Tr Σ)² / Tr(Σ²)`` of this measurement (NaN where fewer than
        two deviations were kept: one cannot estimate it)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.rank_den > 0, self.rank_num / self.rank_den, np.nan)


def noise_from_gradients(
    minibatch_grad: Callable[[int], torch.Tensor],
    W: torch.Tensor,
    *,
    full_grad: torch.Tensor | None = None,
    n: int = 64,
    rank_samples: int = 32,
) -> NoiseEstimate:
    """σ², its standard error and ``‖∇L(w̄)‖²`` from ``n`` independent minibatch gradients at ``W``.

    With ``full_grad`` (the paper's measurement): ``Tr Σ_w = mean_i ‖g_i − ∇L(w)‖²`` and
    ``‖∇L(w)‖²`` from the full gradient. Without it (cheap, for frequent measurements): the unbiased
    sample versions ``Tr Σ_w = Σ_i ‖g_i − ḡ‖² / (n − 1)`` and ``‖∇L(w)‖² = ‖ḡ‖² − Tr Σ_w / n``,
    where ``ḡ`` is the mean of the n gradients (its expectation is the mean minibatch gradient, the
    drift of SGD; with BatchNorm it differs from a full-batch gradient in chunks by under 2 % of
    Tr Σ on the ``cpu-tiny`` preset). Deviations are formed before squaring, in float64, so nothing
    cancels. Both are converted once by :func:`unit_radius`: ``σ² = r² Tr Σ_w / (d − 1)``,
    ``‖∇L(w̄)‖² = r² ‖∇L(w)‖²`` (the correction of Eq. 119–121). The standard error of σ² is that of
    the mean of the n squared deviations. The participation ratio comes from independent
    deviations ``δ_k`` (``g_k − ∇L(w)``, or ``(g_{2k} − g_{2k+1})/√2`` without ``full_grad``; the
    first ``rank_samples``) through the unbiased pair sums ``(Tr Σ)² ≈ Σ_{k≠l} ‖δ_k‖²‖δ_l‖²`` and
    ``Tr Σ² ≈ Σ_{k≠l} (δ_k·δ_l)²``.

    Parameters
    ----------
    minibatch_grad : callable
        ``minibatch_grad(i)`` returns the gradient ``[M, P]`` at ``W`` of an independent minibatch.
    W : Tensor ``[M, P]``
        The weights (``d = P``).
    full_grad : Tensor ``[M, P]``, optional
        The full-batch gradient at ``W``.
    n, rank_samples : int
        Number of minibatch gradients (>= 2), and at most how many deviations feed the
        participation ratio (and are held in memory; with fewer than two, ``rank_num`` and
        ``rank_den`` are 0). Without ``full_grad`` all n gradients are held in memory.

    Notes
    -----
    One host synchronisation, at the end: call it at log points.
    """
    if n < 2:
        raise InvalidParameterError(f"n={n!r} must be >= 2 minibatch gradients")
    d = W.shape[1]
    f64 = torch.float64
    r2 = W.to(f64).square().sum(1)
    R = max(2, rank_samples)
    if full_grad is None:
        g = torch.stack([minibatch_grad(i).detach().to(f64) for i in range(n)], 1)
        centre = g.mean(1)
        sq = (g - centre[:, None]).square().sum(2) * (n / (n - 1))
        trace = sq.mean(1)
        grad_sq = centre.square().sum(1) - trace / n
        pairs = 2 * min(n // 2, R)
        rank_dev = (g[:, 0:pairs:2] - g[:, 1:pairs:2]) / math.sqrt(2)
    else:  # streamed: only the first R deviations are kept
        full = full_grad.to(f64)
        rows, kept = [], []
        for i in range(n):
            delta = minibatch_grad(i).detach().to(f64) - full
            rows.append(delta.square().sum(1))
            if i < R:
                kept.append(delta)
        sq = torch.stack(rows, 1)
        trace = sq.mean(1)
        grad_sq = full.square().sum(1)
        rank_dev = torch.stack(kept, 1)
    gram = torch.bmm(rank_dev, rank_dev.transpose(1, 2))
    diag = torch.diagonal(gram, dim1=1, dim2=2)
    off = ~torch.eye(gram.shape[1], dtype=torch.bool, device=W.device)
    out = (
        torch.stack(
            [
                unit_radius(r2, trace) / (d - 1),
                unit_radius(r2, sq.std(1) / math.sqrt(n)) / (d - 1),
                unit_radius(r2, grad_sq),
                ((diag[:, :, None] * diag[:, None, :]) * off).sum((1, 2)),
                (gram.square() * off).sum((1, 2)),
            ]
        )
        .cpu()
        .numpy()
    )
    return NoiseEstimate(out[0], out[1], out[2], out[3], out[4], n)


def _trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise InvalidParameterError("the model has no trainable parameters (requires_grad=True)")
    return params


def _flat(tensors: Sequence[torch.Tensor], out: torch.Tensor | None = None) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors], out=out)


def _grads_loop(
    model: nn.Module,
    params: list[nn.Parameter],
    loss_fn: LossFn,
    xs: torch.Tensor,
    ys: torch.Tensor,
) -> torch.Tensor:
    """``[c, P]``: one autograd pass per minibatch ``xs[i], ys[i]``."""
    grads = [torch.autograd.grad(loss_fn(model(x), y), params) for x, y in zip(xs, ys, strict=True)]
    return torch.stack([_flat(g) for g in grads])


def _grads_vmap(
    model: nn.Module, names: list[str], loss_fn: LossFn, xs: torch.Tensor, ys: torch.Tensor
) -> torch.Tensor:
    """``[c, P]``: the minibatches ``xs[i], ys[i]`` in one ``vmap(grad(·))`` pass.

    Each minibatch gets its own copy of the buffers, so train-mode BatchNorm normalises with that
    minibatch's statistics and updates only its own running statistics (discarded here).
    """
    from torch.func import functional_call, grad, vmap

    trainable = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    frozen = {n: p.detach() for n, p in model.named_parameters() if not p.requires_grad}
    c = xs.shape[0]
    buffers = {n: b.expand(c, *b.shape).clone() for n, b in model.named_buffers()}

    def loss_at(
        params: dict[str, torch.Tensor], bufs: dict[str, torch.Tensor], x: torch.Tensor,
        y: torch.Tensor,
    ) -> torch.Tensor:
        return loss_fn(functional_call(model, ({**params, **frozen}, bufs), (x,)), y)

    g = vmap(grad(loss_at), in_dims=(None, 0, 0, 0), randomness="different")(
        trainable, buffers, xs, ys
    )
    return torch.cat([g[n].reshape(c, -1) for n in names], 1)


def noise(
    model: nn.Module,
    data: tuple[torch.Tensor, torch.Tensor],
    *,
    batch_size: int,
    loss_fn: LossFn = F.cross_entropy,
    n: int = 64,
    full_batch: bool = True,
    rank_samples: int = 32,
    chunk: int = 1024,
    method: str = "vmap",
    vmap_chunk: int = 16,
    generator: torch.Generator | None = None,
) -> NoiseEstimate:
    """Gradient noise of a model at its current weights (``M = 1``).

    ``n`` minibatches of ``batch_size`` samples are drawn from ``data`` independently with
    replacement and :func:`noise_from_gradients` turns their gradients into
    ``σ² = r² Tr Σ_w/(d − 1)`` (the unit conversion ``Tr Σ_w̄ = r² Tr Σ_w`` is done there, once), its
    standard error,
    ``‖∇L(w̄)‖²`` and the effective rank. With ``full_batch`` (the paper's measurement) they are
    centred at the full-batch gradient, the mean over ``data`` in chunks of ``chunk`` samples in
    train mode (as the reference code: BatchNorm normalises with each chunk's statistics); without,
    at their own mean (cheap enough to repeat often, see :class:`Recorder`). The model's buffers
    (BatchNorm running statistics), train/eval mode, ``.grad`` fields and the global random state
    (dropout) are left as they were.

    Parameters
    ----------
    model : nn.Module
        Its parameters with ``requires_grad=True`` are ``w``.
    data : (x, y)
        The training set (or the part the loss is defined on), on the model's device.
    batch_size : int
        The training loop's minibatch size: the noise scale depends on it.
    loss_fn : callable, default ``F.cross_entropy``
        ``loss_fn(model(x), y)`` is the mean minibatch loss.
    n : int
        Minibatch gradients (>= 2).
    full_batch : bool
        Centre at the full-batch gradient (else at the minibatch mean).
    rank_samples : int
        At most how many deviations feed the effective rank.
    chunk : int
        Samples per chunk of the full-batch gradient.
    method : {"vmap", "loop"}
        ``"vmap"`` computes ``vmap_chunk`` minibatch gradients per pass with ``torch.func``
        (``vmap(grad(functional_call))``, per-minibatch buffers); ``"loop"`` one autograd pass each.
        Both give the same gradients (to round-off; ``tests/test_record.py``).
    vmap_chunk : int
        Minibatches per vmapped pass (memory grows linearly with it).
    generator : torch.Generator, optional
        Draws the minibatch indices (on the CPU).

    Notes
    -----
    Measured with ``benchmarks/bench_recorder.py --parts noise`` (2-core CPU, one thread, torch
    2.13; n = 64 minibatches of 32 plus the full batch of 1797 digits; medians of 31): the
    examples' BatchNorm MLP of width 32 (d = 3 072) takes 7.3 ms with ``"vmap"`` and 10.7 ms with
    ``"loop"``; width 128 (d = 24 576) 24.2 and 26.1 ms; the ConvNet of width 4 (d = 6 084) 85–108
    ms and 110 ms (the convolution's batching rule folds the minibatches into groups, NETS_DESIGN
    §2, so its gain varies between runs). ``vmap`` removes the per-minibatch Python and dispatch
    overhead, which is what dominates small models; it is the default. The stacked trainer
    batches over models instead and uses :func:`noise_from_gradients` directly.
    """
    check_choice("method", method, ("vmap", "loop"))
    x, y = data
    N = int(x.shape[0])
    if batch_size < 1 or chunk < 1 or vmap_chunk < 1 or N < 1:
        raise InvalidParameterError(
            f"batch_size={batch_size}, chunk={chunk}, vmap_chunk={vmap_chunk} must be >= 1 and "
            f"data must hold samples (got {N})"
        )
    named = _trainable(model)
    names = [name for name, _ in named]
    params = [p for _, p in named]
    saved = {k: b.clone() for k, b in model.named_buffers()}
    was_training = model.training
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    model.train()
    try:
        with torch.random.fork_rng(devices=devices):
            full = None
            if full_batch:
                full = torch.stack([
                    _flat(torch.autograd.grad(loss_fn(model(xc), yc), params)) * (len(xc) / N)
                    for xc, yc in zip(x.split(chunk), y.split(chunk), strict=True)
                ]).sum(0)
            idx = torch.randint(0, N, (n, batch_size), generator=generator).to(x.device)
            grads = torch.cat(
                [
                    _grads_vmap(model, names, loss_fn, x[ib], y[ib])
                    if method == "vmap"
                    else _grads_loop(model, params, loss_fn, x[ib], y[ib])
                    for ib in idx.split(vmap_chunk)
                ]
            )
    finally:
        with torch.no_grad():
            for k, b in model.named_buffers():
                b.copy_(saved[k])
        model.train(was_training)
    return noise_from_gradients(
        lambda i: grads[i][None],
        _flat(params)[None],
        full_grad=None if full is None else full[None],
        n=n,
        rank_samples=rank_samples,
    )


# -- the recorder ----------------------------------------------------------------------------------
def _estimate(x: np.ndarray) -> Estimate:
    """Mean and batch-means standard error (:func:`thermocheck.stats.batch_means`); a window
    shorter than ``MIN_BATCHES`` logs (a state too short to be stationary) gets the naive one."""
    if x.size >= MIN_BATCHES:
        bm = batch_means(x)
        return Estimate(bm.mean, bm.stderr, bm.n_batches)
    se = float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else 0.0
    return Estimate(float(x.mean()), se, x.size)


def _spread(values: np.ndarray) -> Estimate:
    """Mean of independent-ish measurements with ``sd/√k``; a single one counts as ±100 %."""
    k = values.size
    se = float(values.std(ddof=1) / math.sqrt(k)) if k > 1 else abs(float(values[0]))
    return Estimate(float(values.mean()), se, k)


def _entropy(snapshots: torch.Tensor) -> Estimate:
    """Direction entropy of the queue (Eq. 25–28) with its standard error.

    The value is :func:`thermocheck.entropy.sphere_entropy` of all ``N`` snapshots (the k-NN bias
    falls with N, so no sample is wasted). The error is ``sd(S_1 … S_b)/√b`` over ``b`` contiguous
    sub-queues (``b = min(5, N // 5)``): the entropy logs of shorter queues, as batch means are for
    a series. It assumes the estimator's variance falls as ``1/N``; measured over 150 seeds of
    i.i.d. von Mises–Fisher samples (b = 5), the root-mean-square of this error over the true
    standard deviation is 0.99 (d = 10, κ = 50, N = 400), 0.96 (d = 50, κ = 500, N = 200) and 0.99
    (d = 300, κ = 3000, N = 150). Contiguous sub-queues also carry the snapshots' autocorrelation.
    """
    from thermocheck.entropy import sphere_entropy

    n = snapshots.shape[0]
    b = min(ENTROPY_BATCHES, n // 5)
    subs = np.array([sphere_entropy(part) for part in snapshots.tensor_split(b)])
    return Estimate(sphere_entropy(snapshots), float(subs.std(ddof=1) / math.sqrt(b)), n)


class Recorder:
    """Records training runs on device and returns their stationary :class:`State` s.

    Give it the user's ``model`` (``M = 1``), or ``model=None`` and ``d`` for ``M`` stacked models
    whose weights ``W[M, P]`` and gradients are passed to :meth:`begin` / :meth:`end` (the network
    trainer). Hyperparameters are named as in :class:`State` and may be sequences of length ``M``.

    Four ways to feed it, each once per optimisation step ``k``:

    * :meth:`step` right after ``optimizer.step()`` (and before ``zero_grad``): reads ``g_k`` from
      ``.grad`` and ``w_k`` from its own copy of the weights (taken at construction, then after
      every step). Under fixed sphere, project first, then call it. Construct the recorder before
      the first step.
    * :meth:`attach` registers the optimizer's step pre-hook (reads ``w_k``, ``g_k``) and post-hook
      (closes the step); give the loss with :meth:`log_loss`. It needs ``optimizer.step()``
      without a closure, since a closure computes the gradient after the pre-hook.
    * :meth:`begin` after the backward pass and :meth:`end` after the update (integrations, e.g.
      :class:`thermocheck.extra.lightning.RecorderCallback`).
    * :meth:`begin` ``(W, G)`` / :meth:`end` ``(loss)`` with arrays ``[M, P]`` (``model=None``).

    ``‖w_{k+1}‖²`` is always the next step's ``‖w‖²``: weights changed between steps (a projection)
    count as part of the update.

    Parameters
    ----------
    model : nn.Module or None
        The model; its parameters with ``requires_grad=True`` are ``w`` (d of them).
    protocol : str or sequence of str
        One of ``theory.PROTOCOLS`` for all models, or one per model.
    lr, wd, elr, radius : float or sequence of float, optional
        Hyperparameters named as in :class:`State` (η, λ, η_eff, sphere radius).
    d : int, optional
        Trainable parameters per model; required and only allowed when ``model`` is None.
    every : int, default 25
        Steps per logged block (block means form the time series).
    burn_in : float, default 0.5
        Fraction of the logs always discarded; MSER-5 may cut more (:mod:`thermocheck.stats`).
    queue_size, queue_every : int
        Direction snapshots kept for the entropy (0: none) and their spacing in steps.
    queue_storage : {"cpu", "device", "disk"}
        Where the queue lives: host memory (pinned when the weights are on a GPU, so pushes are
        asynchronous), the weights' device, or a float32 ``np.memmap`` file (``queue_path``, or a
        temporary file) for queues larger than memory; a push from a GPU to disk synchronises.
    queue_path : str or Path, optional
        The memmap file for ``queue_storage="disk"``.
    data : (x, y), optional
        The training set, for :meth:`measure_noise` and the scale-invariance check.
    batch_size : int, optional
        The training minibatch size; required with ``data``.
    loss_fn : callable, default ``F.cross_entropy``
        ``loss_fn(model(x), y)``, for the noise measurement and the scale-invariance check.
    noise_every : int, default 0
        With ``data``, measure the noise every so many steps inside :meth:`end` (a log point);
        0 leaves it to explicit :meth:`measure_noise` calls. ``E‖∇L(w̄)‖²`` is the mean over the
        measurements in the stationary window, so take many (dozens): it is as right-skewed over
        the stationary law as the trace (module docstring).
    noise_samples : int, default 8
        Minibatch gradients per measurement (vmapped in one pass for dense models).
    noise_full_batch : bool, default False
        Centre the measurement at the full-batch gradient (the paper's; one pass over ``data``
        each time) instead of at the minibatch mean.
    sample : (x, y), optional
        A minibatch for :func:`~thermocheck.nets.check_scale_invariance`; defaults to the first
        ``batch_size`` samples of ``data``. Given either, the recorder refuses
        (:class:`~thermocheck.nets.ScaleInvarianceError`) a model whose loss changes by more than
        ``invariance_rtol`` (relative) when all trainable weights are scaled by 0.5 or 3, or whose
        gradient has a radial component; without either it trusts the model.
    invariance_rtol : float, default 1e-3
        Tolerance of that check. It separates structure from round-off and BatchNorm's ε, which
        breaks invariance by about ``ε/Var`` (:func:`~thermocheck.nets.make_model`). Measured on
        the example's MLP (``examples/user_model``, float32, at initialisation): ε = 1e-5 changes
        the loss by 1.2e-4 (radial cosine 7e-6, harmless to the norm dynamics), an unfrozen head
        by 1.5 and a layer without BatchNorm by 0.56. The check is numerical at the current
        weights: an affine BatchNorm followed by ReLU and another BatchNorm is invariant at
        initialisation (γ = 1, β = 0; change 6e-4) and only stops being so as β trains.
    device : torch.device or str, optional
        Device of the weights when ``model`` is None.
    substrate : str, default "user"
        Recorded in the states (the trainer passes ``"net"``).
    interpolation_loss : float, default 1e-3
        A mean training loss below this, or a last measured σ² below 1e-6 of the largest, is
        reported as interpolation: no stationary distribution.
    alpha, rtol : float
        Level and practical threshold of the stationarity test (:func:`stats.assess_stationarity`).
    seed : int, default 0
        Seeds the noise measurement's minibatch draws.
    """

    def __init__(
        self,
        model: nn.Module | None,
        protocol: str | Sequence[str],
        *,
        lr: float | Sequence[float] | None = None,
        wd: float | Sequence[float] | None = None,
        elr: float | Sequence[float] | None = None,
        radius: float | Sequence[float] | None = None,
        d: int | None = None,
        every: int = 25,
        burn_in: float = 0.5,
        queue_size: int = 0,
        queue_every: int = 25,
        queue_storage: str = "cpu",
        queue_path: str | Path | None = None,
        data: tuple[torch.Tensor, torch.Tensor] | None = None,
        batch_size: int | None = None,
        loss_fn: LossFn = F.cross_entropy,
        noise_every: int = 0,
        noise_samples: int = 8,
        noise_full_batch: bool = False,
        sample: tuple[torch.Tensor, torch.Tensor] | None = None,
        invariance_rtol: float = 1e-3,
        device: torch.device | str | None = None,
        substrate: str = "user",
        interpolation_loss: float = 1e-3,
        alpha: float = 1e-4,
        rtol: float = 1e-3,
        seed: int = 0,
    ) -> None:
        hp = {"lr": lr, "wd": wd, "elr": elr, "radius": radius}
        sizes = {len(v) for v in hp.values() if isinstance(v, Sequence)}
        if isinstance(protocol, Sequence) and not isinstance(protocol, str):
            sizes.add(len(protocol))
        if len(sizes) > 1:
            raise InvalidParameterError(f"hyperparameter arrays differ in length: {sorted(sizes)}")
        self.M = sizes.pop() if sizes else 1
        self.protocols = [protocol] * self.M if isinstance(protocol, str) else list(protocol)
        self.hp = {k: (list(v) if isinstance(v, Sequence) else [v] * self.M) for k, v in hp.items()}
        if min(every, queue_every) < 1 or min(queue_size, noise_every) < 0 or not 0 <= burn_in < 1:
            raise InvalidParameterError(
                f"every={every}, queue_every={queue_every} must be >= 1, queue_size={queue_size} "
                f"and noise_every={noise_every} >= 0, burn_in={burn_in} in [0, 1)"
            )
        check_choice("queue_storage", queue_storage, ("cpu", "device", "disk"))
        self.model = model
        self._params: list[nn.Parameter] = []
        if model is None:
            if d is None or device is None:
                raise InvalidParameterError("model=None (stacked weights) needs d and device")
            self.d, self.device = int(d), torch.device(device)
        else:
            if d is not None or self.M != 1:
                raise InvalidParameterError(
                    "a model is recorded alone: give scalar hyperparameters and no d"
                )
            self._params = [p for _, p in _trainable(model)]
            self.d = sum(p.numel() for p in self._params)
            self.device = self._params[0].device
        if data is not None and batch_size is None:
            raise InvalidParameterError("data needs the training batch_size (the noise scale)")
        self.data, self.batch_size, self.loss_fn = data, batch_size, loss_fn
        self.noise_every, self.noise_samples, self.noise_full_batch = (
            noise_every, noise_samples, noise_full_batch
        )
        self._generator = torch.Generator().manual_seed(seed)
        if model is not None:
            check = sample if sample is not None else (
                None if data is None else (data[0][:batch_size], data[1][:batch_size])
            )
            if check is not None:
                from thermocheck.nets.models import check_scale_invariance

                check_scale_invariance(model, check, loss_fn=loss_fn, rtol=invariance_rtol)
        self.spec = GridSpec.build(self.protocols, **self.hp, device=self.device,
                                   dtype=torch.float64)
        self.every, self.burn_in, self.substrate = every, burn_in, substrate
        self.queue_size, self.queue_every = queue_size, queue_every
        self.interpolation_loss, self.alpha, self.rtol = interpolation_loss, alpha, rtol
        self.step_count = 0
        f64, dev = torch.float64, self.device
        self._raw = torch.full((every, self.M, len(_RAW)), math.nan, dtype=f64, device=dev)
        self._raw_gram = self._raw[:, :, :4]
        self._hist = torch.zeros(len(QUANTITIES), 64, self.M, dtype=f64, device=dev)
        self._slots = 0
        self._open = False
        self._pending_loss: torch.Tensor | None = None
        self._queue = self._make_queue(queue_storage, queue_path)
        self._queue_steps: list[int] = []
        self._noise: list[tuple[int, NoiseEstimate]] = []
        if self._params:  # rows w and g: the flattened model, read in place each step
            self._X = torch.empty(2, self.d, dtype=self._params[0].dtype, device=self.device)
            self._ptrs: list[int] = []
            self._views: list[torch.Tensor] = []
            self._read_model(self._X, grads=False)

    def _make_queue(self, storage: str, path: str | Path | None) -> torch.Tensor:
        shape = (self.M, self.queue_size, self.d)
        if storage == "disk":
            file = Path(path) if path is not None else Path(
                tempfile.NamedTemporaryFile(suffix=".f32", delete=False).name
            )
            self.queue_file: Path | None = file
            mm = np.memmap(file, dtype=np.float32, mode="w+", shape=shape) if self.queue_size else (
                np.zeros(shape, np.float32)
            )
            return torch.from_numpy(mm)
        self.queue_file = None
        dev = self.device if storage == "device" else torch.device("cpu")
        pin = dev.type == "cpu" and self.device.type == "cuda"
        return torch.zeros(shape, dtype=torch.float32, device=dev, pin_memory=pin)

    # -- per step: raw scalars on device -----------------------------------------------------------
    def _read_model(self, X: torch.Tensor, weights: bool = True, grads: bool = True) -> None:
        """Flatten the model's weights into ``X[0]`` and its ``.grad`` into ``X[1]``.

        Flat views of the weights are kept between steps (optimizers update in place) and rebuilt
        when a parameter's storage changes (``p.data = …``) or is not contiguous.
        """
        if weights:
            ptrs = [p.data_ptr() for p in self._params]
            if ptrs != self._ptrs:
                self._views = [p.detach().reshape(-1) for p in self._params]
                contiguous = all(p.is_contiguous() for p in self._params)
                self._ptrs = ptrs if contiguous else []
            torch.cat(self._views, out=X[0])
        if grads:
            torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if p.grad is None
                       else p.grad.reshape(-1) for p in self._params], out=X[1])

    def _require_model(self, what: str) -> None:
        if self.model is None:
            raise InvalidParameterError(f"{what} needs a recorder made with a model")

    @staticmethod
    def _gram(X: torch.Tensor) -> torch.Tensor:
        """``X Xᵀ`` over the last axis: the Gram matrix ``[[‖w‖², ⟨w, g⟩], [⟨g, w⟩, ‖g‖²]]`` of
        ``X = (w, g)``, batched over leading axes. One matrix product, in float32 for float32
        weights on a CPU (summation error ~1e-6 relative: it enters the norm balance multiplied by
        ``2η_kλ``, far below the balance's statistical error), in float64 elsewhere (TF32 never
        applies)."""
        if X.dtype != torch.float32 or X.device.type != "cpu":
            X = X.to(torch.float64)
        return X @ X.transpose(-1, -2)

    def _open_step(self, gram: torch.Tensor, W: torch.Tensor) -> None:
        """Step k from the Gram matrices ``[M, 2, 2]`` of (w_k, g_k) and the weights ``W[M, P]``
        (pushed to the queue when due); ``‖w_{k+1}‖²`` is the next step's ``‖w‖²``."""
        if self._open:
            raise InvalidParameterError("begin() called twice: close each step with end()")
        self._raw_gram[self.step_count % self.every].copy_(gram.view(self.M, 4))
        if self.queue_size and self.step_count % self.queue_every == 0:
            slot = len(self._queue_steps) % self.queue_size
            self._queue[:, slot].copy_(W, non_blocking=True)
            self._queue_steps.append(self.step_count)
        self._open = True

    def begin(self, W: torch.Tensor | None = None, G: torch.Tensor | None = None) -> None:
        """Open step k: ``W[M, P]`` = w_k, ``G[M, P]`` = g_k (weight decay excluded), both read
        from the model and its ``.grad`` when not given. Pushes ``w_k`` to the queue when due."""
        if W is None and G is None:
            self._require_model("begin() without arrays")
            self._read_model(self._X)
            self._open_step(self._gram(self._X), self._X[:1])
        elif W is None or G is None:
            raise InvalidParameterError("give both W and G, or neither (read from the model)")
        else:
            W = W.detach()
            self._open_step(self._gram(torch.stack((W, G.detach()), 1)), W)

    def end(self, loss: torch.Tensor | None = None) -> None:
        """Close step k, after the update, with the training loss (``[M]`` or a scalar tensor;
        pass it without ``.item()``). ``‖w_{k+1}‖²`` is read at the next :meth:`begin`."""
        if not self._open:
            raise InvalidParameterError("end() without begin(): open each step with begin()")
        k = self.step_count % self.every
        if loss is not None:
            self._raw[k, :, 4] = loss.detach().reshape(self.M)
        self._open = False
        self.step_count += 1
        if k == self.every - 1:
            self._close_block()
        if self.noise_every and self.data is not None and self.step_count % self.noise_every == 0:
            self.measure_noise()

    @property
    def step_open(self) -> bool:
        """Whether :meth:`begin` has opened a step that :meth:`end` has not closed yet."""
        return self._open

    def step(self, loss: torch.Tensor | None = None) -> None:
        """Record the step just taken: call right after ``optimizer.step()`` (and after the
        projection on the fixed sphere). ``loss`` is the minibatch loss tensor (no ``.item()``)."""
        self._require_model("step()")
        self._read_model(self._X, weights=False)  # X[0] holds w_k since the previous call
        self._open_step(self._gram(self._X), self._X[:1])
        self.end(loss)
        self._read_model(self._X, grads=False)  # w_{k+1}: the next call's w_k

    def attach(self, optimizer: torch.optim.Optimizer) -> list[RemovableHandle]:
        """Record every ``optimizer.step()`` through its step hooks (pre: w_k and g_k; post:
        closes the step with the loss given to :meth:`log_loss`). Returns the hook handles
        (``handle.remove()`` detaches)."""
        self._require_model("attach()")
        theirs = {id(p) for group in optimizer.param_groups for p in group["params"]}
        if not all(id(p) in theirs for p in self._params):
            raise InvalidParameterError(
                "the optimizer does not update every trainable parameter of the recorded model"
            )

        def pre(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            # args are step()'s positional arguments, the optimizer itself first
            if args[1:] or kwargs.get("closure") is not None:
                raise InvalidParameterError(
                    "attach() needs optimizer.step() without a closure (the closure computes the "
                    "gradient after the pre-hook); call recorder.step() after the step instead"
                )
            self.begin()

        def post(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
            self.end(self._pending_loss)
            self._pending_loss = None

        return [optimizer.register_step_pre_hook(pre), optimizer.register_step_post_hook(post)]

    def log_loss(self, loss: torch.Tensor) -> None:
        """The current step's training loss, for :meth:`attach` (any time before the step ends)."""
        self._pending_loss = loss.detach()

    def _close_block(self) -> None:
        """Block means of :data:`QUANTITIES` from the raw scalars into the device history."""
        sq, wg, _, gsq, loss = self._raw.unbind(2)
        nxt = torch.cat([sq[1:], torch.full_like(sq[:1], math.nan)])  # ‖w_{k+1}‖²
        s = self.spec
        eta = s.step_size(sq)
        decay = 1 - eta * s.wd
        lhs = decay**2 * sq + eta**2 * gsq  # Eq. 111: exact for g ⊥ w
        r = sq.sqrt()
        stepped = (sq - 2 * eta * wg + eta**2 * gsq).clamp_min(0).sqrt()
        lam = (stepped - r) / (eta * r)  # Eq. 83
        claimed = torch.where(s.project, s.radius**2, lhs - 2 * eta * decay * wg)
        cos = wg / (r * gsq.sqrt()).clamp_min(1e-300)
        every_step = torch.stack([sq, r, gsq, unit_radius(sq, gsq), lhs - sq, lhs, lam, cos])
        some_steps = torch.stack([loss, (nxt - claimed) / sq])
        if self._slots == self._hist.shape[1]:
            self._hist = torch.cat([self._hist, torch.zeros_like(self._hist)], 1)
        self._hist[:, self._slots] = torch.cat([every_step.mean(1), some_steps.nanmean(1)])
        self._raw.fill_(math.nan)
        self._slots += 1

    # -- gradient noise (log points) ---------------------------------------------------------------
    def add_noise(self, estimate: NoiseEstimate) -> None:
        """Attach a gradient-noise measurement taken now (after :meth:`end` of the last step)."""
        self._noise.append((self.step_count, estimate))

    def measure_noise(self, **kwargs: Any) -> NoiseEstimate:
        """:func:`noise` of the recorded model on ``data`` now, attached with :meth:`add_noise`;
        ``kwargs`` override :func:`noise`'s options (e.g. ``n``, ``method``)."""
        self._require_model("measure_noise()")
        if self.data is None or self.batch_size is None:
            raise InvalidParameterError("measure_noise() needs the recorder's data and batch_size")
        assert self.model is not None
        options = {"loss_fn": self.loss_fn, "n": self.noise_samples,
                   "full_batch": self.noise_full_batch, "generator": self._generator, **kwargs}
        est = noise(self.model, self.data, batch_size=self.batch_size, **options)
        self.add_noise(est)
        return est

    # -- host side ---------------------------------------------------------------------------------
    def sync(self) -> dict[str, np.ndarray]:
        """The logged block means, ``{quantity: array[blocks, M]}`` (one device→host copy)."""
        h = self._hist[:, : self._slots].cpu().numpy()
        return dict(zip(QUANTITIES, h, strict=True))

    def states(self, *, extra: dict[str, Any] | None = None, entropy: bool = True) -> list[State]:
        """One :class:`State` per model, measured over its stationary window.

        :func:`thermocheck.stats.assess_stationarity` runs on the whole logged series of the
        monitored quantities (the radius except on the sphere, the loss when given, else the
        unit-radius gradient norm): MSER-5 finds the end of the transient, a slope test the drift.
        The window starts at that truncation or after ``burn_in``, whichever is later. Means carry
        batch-means standard errors (:func:`thermocheck.stats.batch_means`), with the number of
        batches as ``n``. The noise: ``grad_sq`` is the mean of the measurements taken in the
        window (batch means over them, or ``sd/√k`` when fewer than 10), clipped at 0, and
        ``σ² = (E‖w_k‖²‖g_k‖² − E‖∇L(w̄)‖²)/(d − 1)`` (module docstring), errors combined in
        quadrature. The entropy is that of the window's queued directions (:func:`_entropy`).

        A state is ``stationary=False`` with the reason when the run diverged, interpolates
        (:data:`INTERPOLATION_REASON`), has fewer than 40 logs, has no noise measurement yet,
        leaves no noise once the gradient term is taken out, or fails the stationarity test.
        """
        hist = self.sync()
        return [self._state(m, hist, extra or {}, entropy) for m in range(self.M)]

    def state(self, m: int = 0, **kwargs: Any) -> State:
        """The state of model ``m`` (default: the only one of a user's loop)."""
        return self.states(**kwargs)[m]

    def _window(self, series: dict[str, np.ndarray], protocol: str) -> tuple[int, list[str], dict]:
        """Start of the stationary window (in logs), the reasons it is not stationary, details."""
        n = series["sq_norm"].size
        burn = int(self.burn_in * n)
        if n < MIN_LOGS:
            return burn, [f"too short to judge stationarity: {n} logs (< {MIN_LOGS}); run longer "
                          f"or log more often (every)"], {}
        monitored = {q: series[q] for q in ("mean_radius", "loss")
                     if (q != "mean_radius" or protocol != "fixed_sphere")
                     and np.isfinite(series[q]).all()}
        verdict = assess_stationarity(monitored or {"unit_grad_sq": series["unit_grad_sq"]},
                                      alpha=self.alpha, rtol=self.rtol)
        details = {k: dict(v) for k, v in verdict.details.items()}
        start = max(burn, verdict.start)
        if n - start < MIN_BATCHES:
            start = burn
        return start, [] if verdict.stationary else [f"not stationary: {verdict.reason}"], details

    def _noise_terms(self, m: int, first_step: int) -> tuple[Estimate | None, dict[str, Any]]:
        """``E‖∇L(w̄)‖²`` of model ``m`` from the noise measurements taken from ``first_step`` on
        (the latest one when none is), and diagnostics: the measurements' own σ², the pooled
        effective rank."""
        snaps = [e for s, e in self._noise if s >= first_step]
        info: dict[str, Any] = {"noise_measurements": len(snaps)}
        if not snaps:
            if not self._noise:
                return None, info
            snaps = [self._noise[-1][1]]
            info["noise_outside_window"] = True

        def series(name: str) -> np.ndarray:
            return np.array([getattr(e, name)[m] for e in snaps])

        def mean(x: np.ndarray) -> Estimate:
            return _estimate(x) if x.size >= MIN_BATCHES else _spread(x)

        grad_sq, s2 = mean(series("grad_sq")), mean(series("sigma2"))
        den = float(series("rank_den").sum())  # 0 when measurements had < 2 deviations each
        rank = float(series("rank_num").sum()) / den if den > 0 else None
        info.update(sigma2_measured=s2.value, sigma2_measured_stderr=s2.stderr, eff_rank=rank,
                    eff_rank_over_d=None if rank is None else rank / (self.d - 1))
        history = np.array([e.sigma2[m] for _, e in self._noise])
        info["noise_collapsed"] = bool(history[-1] < 1e-6 * history.max())
        return Estimate(max(grad_sq.value, 0.0), grad_sq.stderr, grad_sq.n), info

    def _state(
        self, m: int, hist: dict[str, np.ndarray], extra: dict[str, Any], entropy: bool
    ) -> State:
        series = {q: hist[q][:, m] for q in QUANTITIES}
        n = series["sq_norm"].size
        if n < 2:
            raise InvalidParameterError(
                f"only {n} logged blocks: run at least {2 * self.every} steps before state()"
            )
        p = self.protocols[m]
        hp: dict[str, Any] = {k: v[m] for k, v in self.hp.items() if v[m] is not None}
        if not all(np.isfinite(series[q]).all() for q in ("sq_norm", "step_grad_sq")):
            return State(protocol=p, d=self.d, sigma2=Estimate(np.finfo(float).tiny),
                         substrate=self.substrate, stationary=False,
                         reason="diverged: non-finite weights or gradients (step too large)",
                         extra={"diverged": True, "sigma2_placeholder": True, **extra}, **hp)
        start, reasons, details = self._window(series, p)
        window = {q: x[start:] for q, x in series.items()}
        est = {q: _estimate(x) for q, x in window.items() if np.isfinite(x).all()}
        first_step = start * self.every
        grad_sq, info = self._noise_terms(m, first_step)
        info.update(window_start_step=first_step, logged_blocks=n, window_blocks=n - start,
                    steps=self.step_count, stationarity=details)
        trace = est["unit_grad_sq"]
        d1 = self.d - 1
        s2 = (trace.value - (grad_sq.value if grad_sq else 0.0)) / d1
        s2_se = math.hypot(trace.stderr, grad_sq.stderr if grad_sq else 0.0) / d1
        loss = est.get("loss")
        if info.get("noise_collapsed") or (loss and loss.value < self.interpolation_loss):
            reasons.insert(0, INTERPOLATION_REASON)
        if grad_sq is None:
            reasons.append("no gradient-noise measurement yet: call measure_noise() (or pass data "
                           "and noise_every) so that E‖∇L(w̄)‖² can be taken out of the trace")
        elif s2 <= 0:
            reasons.append(f"no gradient noise resolved: E‖w_k‖²‖g_k‖² = {trace.value:.4g} ± "
                           f"{trace.stderr:.2g} does not exceed E‖∇L(w̄)‖² = {grad_sq.value:.4g}")
        entropy_est = self._window_entropy(m, first_step) if self.queue_size and entropy else None
        info.update(trace_per_step=trace.value, trace_per_step_stderr=trace.stderr,
                    radial_cosine=est["radial_cos"].value,
                    queue_snapshots=0 if entropy_est is None else entropy_est.n)
        if "update_residual" in est:
            info["update_residual"] = est["update_residual"].value
        state = State(
            protocol=p,
            d=self.d,
            sigma2=Estimate(max(s2, np.finfo(float).tiny), s2_se, trace.n),
            loss=loss,
            sq_norm=est["sq_norm"],
            mean_radius=est["mean_radius"],
            grad_sq=grad_sq,
            norm_balance=None if p == "fixed_sphere" else est["norm_balance"],
            lambda_eff=est["lambda_eff"],
            sphere_entropy=entropy_est,
            substrate=self.substrate,
            energy_is_loss=False,
            stationary=not reasons,
            reason=reasons[0] if reasons else "",
            extra={**info, **extra},
            **hp,
        )
        return state.replace(extra={**state.extra, "compressibility": _compressibility(state)})

    def _window_entropy(self, m: int, first_step: int) -> Estimate | None:
        """:func:`_entropy` of model ``m``'s snapshots taken from ``first_step`` on (oldest first;
        the ring holds the last ``queue_size``); None with fewer than 10 or non-finite ones."""
        total = len(self._queue_steps)
        slots = [i % self.queue_size for i in range(max(0, total - self.queue_size), total)
                 if self._queue_steps[i] >= first_step]
        if len(slots) < 10:
            return None
        snaps = self._queue[m].index_select(0, torch.tensor(slots, device=self._queue.device))
        return _entropy(snaps) if bool(torch.isfinite(snaps).all()) else None

    # -- checkpoints -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (the queue included)."""
        sd: dict[str, Any] = {
            "raw": self._raw,
            "hist": self._hist,
            "slots": self._slots,
            "step": self.step_count,
            "open": self._open,
            "queue": self._queue,
            "queue_steps": self._queue_steps,
            "noise": [(s, e.__dict__) for s, e in self._noise],
            "generator": self._generator.get_state(),
        }
        if self._params:
            sd["weights"] = self._X[0]
        return sd

    def load_state_dict(self, sd: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`."""
        self._raw.copy_(sd["raw"])
        self._hist = sd["hist"].to(self.device)
        self._slots, self.step_count, self._open = sd["slots"], sd["step"], sd["open"]
        self._queue.copy_(sd["queue"])
        self._queue_steps = list(sd["queue_steps"])
        self._noise = [(s, NoiseEstimate(**e)) for s, e in sd["noise"]]
        self._generator.set_state(sd["generator"])
        if self._params:
            self._X[0].copy_(sd["weights"])


def _compressibility(state: State) -> float | None:
    """``Z = pV/(RT)`` with the measured σ², V and (on the sphere) λ_eff: 1 for the ideal gas."""
    try:
        T = state.temperature
        return float(state.pressure * state.volume.value / (theory.gas_constant(state.d) * T))
    except (InvalidParameterError, ZeroDivisionError):
        return None
