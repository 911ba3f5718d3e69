"""Numerical check that a loss is scale-invariant in the trainable parameters.

The paper (Section 2) studies fully scale-invariant networks: normalisation layers make the
parameters before them scale-invariant, so that ``L(αw) = L(w)`` for all ``α > 0``, hence (P1)
``∇L(αw) = ∇L(w)/α`` and (P2) ``wᵀ∇L(w) = 0`` (Lemma 3.1 of Li et al., 2020).

Structure against a normalisation's ε
-------------------------------------
BatchNorm, LayerNorm and GroupNorm divide by ``sqrt(Var + ε)``. ``Var`` scales as the square of
the weights before the normalisation, ε does not, so the loss changes under scaling by an amount of
order ``ε/Var ∝ 1/‖w‖²``. Measured on a LayerNorm MLP (64 → 32 → 32 → 10, ``eps = 1e-5``, frozen
head) at ``‖w‖ = 1``: a relative loss change of 1.6e-3. A structural break does not fall with the
radius: a trainable output layer scales the logits with α, and so does a layer whose output is
never normalised or an affine normalisation (``γ z + β``) that no normalisation follows.

So the decision is taken at :data:`INFLATION` (100) times the current weights, where ε's share is
1e4 times smaller than at the current radius and a structural break is as large as ever. The
changes at the current weights, ε included, are returned as measurements.

Probes
------
The theory needs the loss to be invariant to scaling *all* trainable parameters together
(``L(αw) = L(w)``, P1 and P2 for the whole ``w``), so that is what decides: the largest relative
loss
change over ``scales`` and the radial gradient share ``|⟨w, ∇L⟩|/(‖w‖ ‖∇L‖)`` at the probe point. A
model invariant only jointly (a bias before a normalisation, two branches summed before one
normalisation) is accepted. Two kinds of structure are refused by name:

* an affine normalisation (BatchNorm, LayerNorm, GroupNorm, InstanceNorm with trainable
  ``γ``/``β``):
  the paper's networks use none, and one before the head breaks the invariance outright;
* whatever the joint probe finds: an unfrozen head, a layer whose output reaches the loss without a
  normalisation. The message then names every tensor that changes the loss when scaled alone.

A tensor that is identically zero (a bias at initialisation) cannot be probed by scaling, so at the
probe point such tensors hold random values of the size of the other weights (a fixed seed: the
check is deterministic). Every forward pass runs with the same random seed, so dropout draws the
same masks in each.

Limits: the check is numerical, on one minibatch. A loss that saturates to exactly 0 at the
inflated weights hides a break. An ε larger than ``1e-4 · rtol`` times the pre-normalisation
variance still shows at 100 × (weights far below unit norm in a very large model): rescale the
weights up before checking.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.errors import (
    InvalidParameterError,
    ScaleInvarianceError,
    check_in_range,
    check_positive,
)

__all__ = ["INFLATION", "SCALES", "ScaleInvarianceError", "check_scale_invariance"]

#: Factor on the current weights at which structure is judged: ε's effect falls by its square.
INFLATION = 100.0
#: Scale factors α applied at the probe point.
SCALES = (0.5, 2.0, 10.0)
#: Seed of the dropout masks and of the values given to all-zero tensors at the probe point.
_SEED = 0

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class _Probe:
    """Largest relative loss change of one probe over the scales, and its radial gradient share."""

    change: float
    radial: float

    @property
    def worst(self) -> float:
        return max(self.change, self.radial)


class _Loss:
    """The minibatch loss of ``model`` in train mode, each forward pass with the same seed."""

    def __init__(self, model: nn.Module, batch: Sequence[torch.Tensor], loss_fn: LossFn) -> None:
        self.model, self.loss_fn = model, loss_fn
        self.x, self.y = batch
        self.devices = [self.x.device.index or 0] if self.x.device.type == "cuda" else []

    def __call__(self) -> torch.Tensor:
        with torch.random.fork_rng(devices=self.devices):
            torch.manual_seed(_SEED)
            return self.loss_fn(self.model(self.x), self.y)


def _relative_change(value: torch.Tensor, base: torch.Tensor) -> float:
    """``|value − base| / |base|``; infinite when either is not finite (a break, or overflow)."""
    v, b = float(value), float(base)
    if not (abs(v) < float("inf") and abs(b) < float("inf")):
        return float("inf")
    return abs(v - b) / max(abs(b), 1e-30)


@torch.no_grad()
def _scale_change(loss: _Loss, tensors: Sequence[torch.Tensor], scales: Sequence[float]) -> float:
    """Largest ``|L(α p) − L(p)|/|L(p)|`` over α for ``tensors`` scaled together, restored after."""
    base = loss()
    originals = [t.clone() for t in tensors]
    worst = 0.0
    for alpha in scales:
        for t in tensors:
            t.mul_(alpha)
        worst = max(worst, _relative_change(loss(), base))
        for t, o in zip(tensors, originals, strict=True):
            t.copy_(o)
    return worst


def _radial(loss: _Loss, params: Sequence[torch.Tensor]) -> tuple[float, list[float]]:
    """P2 jointly, ``|⟨w, ∇L⟩|/(‖w‖‖∇L‖)``, and per tensor, ``|⟨p, ∇_p L⟩|/(‖w‖‖∇L‖)``."""
    raw = torch.autograd.grad(loss(), list(params), allow_unused=True)
    grads = [torch.zeros_like(p) if g is None else g for p, g in zip(params, raw, strict=True)]
    dots = [float((p.detach() * g).sum()) for p, g in zip(params, grads, strict=True)]
    w_norm = float(torch.cat([p.detach().reshape(-1) for p in params]).norm())
    g_norm = float(torch.cat([g.reshape(-1) for g in grads]).norm())
    scale = max(w_norm * g_norm, 1e-300)
    return abs(sum(dots)) / scale, [abs(v) / scale for v in dots]


@torch.no_grad()
def _to_probe_point(params: Sequence[torch.Tensor], inflation: float) -> None:
    """In place: the weights times ``inflation``; all-zero tensors get random values of the size
    (root mean square) of the other weights."""
    zero = [not bool(p.ne(0).any()) for p in params]
    nonzero = [p.reshape(-1) for p, z in zip(params, zero, strict=True) if not z]
    typical = float(torch.cat(nonzero).square().mean().sqrt()) if nonzero else 1.0
    gen = torch.Generator().manual_seed(_SEED)
    for p, z in zip(params, zero, strict=True):
        if z:
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float64) * typical)
        p.mul_(inflation)


def check_scale_invariance(
    model: nn.Module,
    batch: tuple[torch.Tensor, torch.Tensor] | Sequence[torch.Tensor],
    *,
    loss_fn: LossFn = F.cross_entropy,
    scales: Sequence[float] = SCALES,
    rtol: float = 1e-4,
    inflation: float = INFLATION,
    option: str = "rtol",
) -> dict[str, float]:
    """Check numerically that the loss is scale-invariant in the trainable parameters, up to what
    a normalisation's ε explains (module docstring): ``L(αw) = L(w)`` and (P2) ``wᵀ∇L(w) = 0``.

    On one ``batch = (x, y)`` in train mode (normalisations use batch statistics). The weights,
    the buffers (running statistics), train/eval mode and the global random state are restored.

    Parameters
    ----------
    model : nn.Module
        Its parameters with ``requires_grad=True`` are the ``w`` of the theory.
    batch : (x, y)
        One minibatch; ``loss_fn(model(x), y)`` must be a scalar.
    loss_fn : callable, default ``F.cross_entropy``
    scales : sequence of float, default (0.5, 2, 10)
        The factors α, each > 0.
    rtol : float, default 1e-4
        Largest relative loss change and radial gradient share tolerated at the probe point
        (float32 round-off through a normalisation is about 1e-6).
    inflation : float, default 100
        Factor on the current weights at which structure is judged (> 1).
    option : str, default "rtol"
        The name under which the caller exposes ``rtol``, quoted in the error message.

    Returns
    -------
    dict
        ``loss_rel_change`` and ``radial_cosine``: the joint measurements at the current weights,
        where ε still acts; ``structural_change``: the largest relative loss change or radial
        share over all probes at the probe point, the quantity compared with ``rtol``; ``d``.

    Raises
    ------
    ScaleInvarianceError
        When a probe exceeds ``rtol``. The message names every tensor that breaks the invariance
        when scaled alone, the tolerance ``option`` and the value that would accept the model.
    """
    check_in_range("inflation", inflation, 1.0, math.inf, closed="neither")
    for i, alpha in enumerate(scales):
        check_positive(f"scales[{i}]", alpha)
    check_positive("rtol", rtol)
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not named:
        raise InvalidParameterError("the model has no trainable parameters (requires_grad=True)")
    params = [p for _, p in named]
    loss = _Loss(model, batch, loss_fn)
    originals = [p.detach().clone() for p in params]
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    was_training = model.training
    model.train()
    try:
        current = _Probe(_scale_change(loss, params, scales), _radial(loss, params)[0])
        _to_probe_point(params, inflation)
        joint_radial, radials = _radial(loss, params)
        joint = _Probe(_scale_change(loss, params, scales), joint_radial)
        alone = {} if joint.worst <= rtol else {  # only to name the culprits
            name: _Probe(_scale_change(loss, [p], scales), radial)
            for (name, p), radial in zip(named, radials, strict=True)}
    finally:
        with torch.no_grad():
            for p, o in zip(params, originals, strict=True):
                p.copy_(o)
            for n, b in model.named_buffers():
                b.copy_(buffers[n])
        model.train(was_training)
    affine = _affine_normalisations(model)
    structural = joint.worst
    if structural > rtol or affine:
        raise ScaleInvarianceError(
            _refusal(joint, alone, affine, current, structural, rtol, inflation, option))
    return {"loss_rel_change": current.change, "radial_cosine": current.radial,
            "structural_change": structural, "d": sum(p.numel() for p in params)}


_NORMS = (nn.modules.batchnorm._NormBase, nn.LayerNorm, nn.GroupNorm)


def _affine_normalisations(model: nn.Module) -> list[str]:
    """The trainable affine parameters (``γ``, ``β``) of the model's normalisation layers."""
    return [f"{module_name}.{name}" if module_name else name
            for module_name, module in model.named_modules() if isinstance(module, _NORMS)
            for name, p in module.named_parameters(recurse=False) if p.requires_grad]


def _refusal(joint: _Probe, alone: dict[str, _Probe], affine: list[str], current: _Probe,
             structural: float, rtol: float, inflation: float, option: str) -> str:
    """The error message: what breaks the invariance, by how much, and how to relax the check."""
    if structural <= rtol:
        return (f"the model has affine normalisation layers with trainable parameters: "
                f"{', '.join(affine)}. The laws assume a scale-invariant loss with normalisations "
                f"without affine parameters (use affine=False / elementwise_affine=False, or "
                f"freeze them with requires_grad_(False)); the loss is otherwise invariant here "
                f"(relative change {joint.change:.2e} at {inflation:g}× the weights), so no "
                f"tolerance ({option}) relaxes this.")
    culprits = [f"{name} (loss change {p.change:.2e} when scaled alone, radial gradient "
                f"{p.radial:.2e})" for name, p in alone.items() if p.worst > rtol]
    culprits += [f"{name} (affine normalisation)" for name in affine
                 if not any(c.startswith(f"{name} ") for c in culprits)]
    return (
        f"the loss is not scale-invariant in the trainable parameters, beyond what a "
        f"normalisation's eps explains: at {inflation:g}× the current weights (where eps's effect "
        f"is {inflation ** 2:.0e} times smaller) scaling all of them changes the loss by "
        f"{joint.change:.2e} (relative) and ⟨w, ∇L⟩/(‖w‖‖∇L‖) = {joint.radial:.2e} (at the "
        f"current weights: {current.change:.2e} and {current.radial:.2e}). Parameters that break "
        f"the invariance: {'; '.join(culprits) or 'no single tensor (only the joint scaling)'}. "
        f"Typical causes: a trainable output layer (freeze it), a layer whose output no "
        f"normalisation follows, an affine normalisation (use affine=False / "
        f"elementwise_affine=False). Tolerance {option}={rtol:g}; {option}={2 * structural:.2g} "
        f"would accept this model, but the laws assume L(αw) = L(w)."
    )
