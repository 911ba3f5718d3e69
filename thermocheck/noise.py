"""The gradient-noise measurement: ``σ² = Tr Σ_w̄ / (d − 1)`` and ``‖∇L(w̄)‖²`` from minibatch
gradients (Eq. 119–121, Appendix G).

* :func:`noise_from_gradients` turns ``n`` independent minibatch gradients at stacked weights
  ``W[M, P]`` into a :class:`NoiseEstimate` (σ², its standard error, ``‖∇L(w̄)‖²`` and the
  participation ratio of Σ), centred at the full-batch gradient (the paper's measurement) or at
  the gradients' own mean (cheap enough to repeat every few steps).
* :func:`noise` measures one ``nn.Module`` at its current weights, drawing the minibatches itself.
* :func:`unit_radius` converts a squared gradient norm or a noise trace measured at ``w`` to unit
  radius, the one place the conversion is done.

The :class:`~thermocheck.record.Recorder` and the stacked network trainer
(:mod:`thermocheck.nets.train`) both measure the noise through this module; why the measurements
are small and frequent is explained in :mod:`thermocheck.record`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.errors import InvalidParameterError, check_choice

__all__ = ["LossFn", "NoiseEstimate", "noise", "noise_from_gradients", "trainable_parameters",
           "unit_radius"]

#: ``loss_fn(model(x), y)``: the mean minibatch loss.
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def unit_radius(sq_norm: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """A squared gradient norm or noise trace measured at ``w``, converted to unit radius.

    ``∇L_B(w) = ∇L_B(w̄)/‖w‖`` (P1), so ``‖∇L_B(w̄)‖² = ‖w‖²‖∇L_B(w)‖²`` and
    ``Tr Σ_w̄ = ‖w‖² Tr Σ_w`` (``Σ_w = Σ_w̄ / r²``, docs/theory.md §1).
    The one place the conversion is done.
    """
    return sq_norm * value


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


def trainable_parameters(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    """The model's parameters with ``requires_grad=True``, by name: the weights ``w``."""
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not params:
        raise InvalidParameterError("the model has no trainable parameters (requires_grad=True)")
    return params


def _flat(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in tensors])


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
    ms and 110 ms (the convolution's batching rule folds the minibatches into groups,
    docs/architecture.md,
    so its gain varies between runs). ``vmap`` removes the per-minibatch Python and dispatch
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
    named = trainable_parameters(model)
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

