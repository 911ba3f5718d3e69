"""Fully scale-invariant networks of the paper (docs/theory.md §7); the numerical invariance check
(:func:`check_scale_invariance`) lives in :mod:`thermocheck.invariance` and is re-exported here.

Every convolution is bias-free and followed by ``BatchNorm(affine=False)``, so the loss is unchanged
when all trainable weights are scaled: ``L(αw) = L(w)`` (docs/theory.md §1). The last linear
layer is frozen (``requires_grad=False``) with Frobenius norm 10, and the trainable weights start
at ``‖w₀‖ = 1``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.errors import InvalidParameterError, ScaleInvarianceError, check_choice
from thermocheck.invariance import check_scale_invariance

__all__ = [
    "ARCHITECTURES",
    "ConvNet",
    "PreActResNet18",
    "ScaleInvarianceError",
    "check_scale_invariance",
    "make_model",
    "rescaled_copy",
    "trainable_vector",
]

ARCHITECTURES = ("convnet", "resnet18")


def _conv_bn(
    cin: int, cout: int, stride: int = 1, kernel: int = 3, eps: float = 1e-5
) -> tuple[nn.Conv2d, nn.BatchNorm2d]:
    conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)
    return conv, nn.BatchNorm2d(cout, eps=eps, affine=False)


class ConvNet(nn.Module):
    """The paper's 4-layer ConvNet of width ``k``: channels k, 2k, 4k, 8k (docs/theory.md §7).

    ``conv → BN → ReLU`` four times, a 2×2 max-pool after layers 2–4, a global max-pool, and a
    frozen linear head (with a frozen bias). On 3×32×32 inputs ``d = 24 408`` at k = 8 and
    ``97 200`` at k = 16, the paper's sizes.
    """

    def __init__(
        self, k: int = 8, num_classes: int = 10, in_channels: int = 3, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        widths = [in_channels, k, 2 * k, 4 * k, 8 * k]
        pairs = [_conv_bn(widths[i], widths[i + 1], eps=bn_eps) for i in range(4)]
        self.convs = nn.ModuleList(c for c, _ in pairs)
        self.bns = nn.ModuleList(b for _, b in pairs)
        self.head = nn.Linear(8 * k, num_classes)
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (conv, bn) in enumerate(zip(self.convs, self.bns, strict=True)):
            x = F.relu(bn(conv(x)))
            if i > 0:
                x = F.max_pool2d(x, 2)
        return self.head(F.adaptive_max_pool2d(x, 1).flatten(1))


class PreActBlock(nn.Module):
    """Pre-activation block, made fully scale-invariant:
    ``BN → ReLU → conv → BN → ReLU → conv → BN``
    plus a shortcut that is the identity or ``conv1×1 → BN`` when it downsamples."""

    def __init__(self, cin: int, cout: int, stride: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(cin, eps=eps, affine=False)
        self.conv1, self.bn1 = _conv_bn(cin, cout, stride, eps=eps)
        self.conv2, self.bn2 = _conv_bn(cout, cout, eps=eps)
        self.short: nn.Sequential | None = None
        if stride != 1 or cin != cout:
            self.short = nn.Sequential(*_conv_bn(cin, cout, stride, kernel=1, eps=eps))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn0(x))
        short = x if self.short is None else self.short(out)
        out = self.conv1(out)
        out = self.bn2(self.conv2(F.relu(self.bn1(out))))
        return out + short


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 of width ``k`` (stages k, 2k, 4k, 8k; d = 43 692 at k = 4 on CIFAR).

    Every conv is followed by ``BatchNorm(affine=False)``, the stem included, so each block's
    output is invariant to the scale of every weight; the frozen head has no bias.
    """

    def __init__(
        self, k: int = 4, num_classes: int = 10, in_channels: int = 3, bn_eps: float = 1e-5
    ) -> None:
        super().__init__()
        self.stem, self.stem_bn = _conv_bn(in_channels, k, eps=bn_eps)
        blocks: list[nn.Module] = []
        cin = k
        for stage, cout in enumerate((k, 2 * k, 4 * k, 8 * k)):
            for j in range(2):
                stride = 2 if stage > 0 and j == 0 else 1
                blocks.append(PreActBlock(cin, cout, stride, bn_eps))
                cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(8 * k, num_classes, bias=False)
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem_bn(self.stem(x)))
        return self.head(F.adaptive_avg_pool2d(F.relu(x), 1).flatten(1))


def trainable_vector(model: nn.Module) -> torch.Tensor:
    """The trainable parameters flattened into one vector ``w`` (a copy), ``parameters()`` order."""
    return torch.cat([p.detach().reshape(-1) for p in model.parameters() if p.requires_grad])


@torch.no_grad()
def make_model(
    arch: str = "convnet",
    k: int = 8,
    *,
    num_classes: int = 10,
    in_channels: int = 3,
    init_seed: int = 1,
    head_seed: int = 4,
    init_radius: float = 1.0,
    head_norm: float = 10.0,
    bn_eps: float = 1e-5,
    dtype: torch.dtype = torch.float32,
) -> nn.Module:
    """Build a model as the paper does: torch's default init with ``init_seed``, trainable weights
    rescaled jointly to ``‖w₀‖ = init_radius``, frozen head drawn with ``head_seed`` and rescaled to
    Frobenius norm ``head_norm`` (paper: seeds 1 and 4, radius 1, norm 10).

    ``bn_eps`` is BatchNorm's ``ε`` in ``(x − μ)/sqrt(Var + ε)``. The paper's code keeps torch's
    default ``ε = 1e-5`` (``nn.BatchNorm2d(c, affine=False)`` in the authors' ConvNet, with
    ``eps=0.0`` left commented out), and so does this default. ``ε`` breaks scale invariance
    (docs/theory.md §1), because ``Var`` scales as ``‖w‖²`` and ``ε`` does not.
    The loss then depends on
    ``‖w‖`` through ``ε / Var``, and the gradient gets a radial component that P2 forbids. Measured
    in float64 on a batch of 128 Gaussian 3×32×32 inputs, the relative loss change under
    ``w → w/2`` is 3.9e-3, 4.3e-4 and 3.9e-5 for ConvNet k = 8 at ``‖w‖`` = 1, 3 and 10, and
    9.6e-3, 1.1e-3 and 9.5e-5 for ResNet-18 k = 4; for the ``cpu-tiny`` ConvNet (k = 2, digits,
    32 samples) 1.5e-3, 7.2e-4, 1.0e-4 and 1.2e-5 at ``‖w‖`` = 1, 1.5, 4 and 12, the range of its
    stationary radii. It falls as ``1/‖w‖²``, and training moves ‖w‖ to its stationary value within
    a few hundred steps, so the effect on measured states is that of the stationary radius.
    :func:`check_scale_invariance` accepts it (it judges structure at 100 × the weights, where ε's
    effect is 1e4 times smaller); an exact invariance at the current weights needs a tiny ε such
    as 1e-30.
    """
    check_choice("arch", arch, ARCHITECTURES)
    if k < 1:
        raise InvalidParameterError(f"k={k!r} is invalid: the width must be an integer >= 1")
    torch.manual_seed(init_seed)
    cls = ConvNet if arch == "convnet" else PreActResNet18
    model = cls(k, num_classes, in_channels, bn_eps).to(dtype)
    _rescale_(model, init_radius)
    gen = torch.Generator().manual_seed(head_seed)
    head = torch.randn(model.head.weight.shape, generator=gen, dtype=dtype)
    model.head.weight.copy_(head * (head_norm / head.norm()))
    return model


@torch.no_grad()
def _rescale_(model: nn.Module, radius: float) -> None:
    """In place: the trainable weights rescaled jointly to ``‖w‖ = radius``."""
    scale = radius / trainable_vector(model).norm()
    for p in model.parameters():
        if p.requires_grad:
            p.mul_(scale)


def rescaled_copy(model: nn.Module, radius: float) -> nn.Module:
    """A deep copy of ``model`` whose trainable weights are rescaled jointly to ``‖w‖ = radius``."""
    copied = copy.deepcopy(model)
    _rescale_(copied, radius)
    return copied
