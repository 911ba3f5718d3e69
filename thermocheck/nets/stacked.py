"""M networks fused into one: grouped convolutions over stacked weights ``W[M, P]``
(docs/architecture.md, "Training a grid at once").

Model ``m``'s trainable parameters are the row ``W[m]`` (in the module's ``parameters()`` order);
a conv weight is ``W[:, o:o+n]`` reshaped to ``[M·C_out, C_in, k, k]`` and applied with
``groups=M`` to activations ``[B, M·C, H, W]``; ``BatchNorm(affine=False)`` over ``M·C`` channels
is per channel, hence exactly per model. The frozen heads are a buffer ``H[M, K, C]``. The update
of all three protocols is one expression with per-model coefficients
(:class:`thermocheck.record.GridSpec`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.errors import InvalidParameterError
from thermocheck.nets.models import ConvNet, PreActResNet18
from thermocheck.record import GridSpec

__all__ = ["StackedNet", "per_model_loss", "sgd_step_"]


def sgd_step_(W: torch.Tensor, G: torch.Tensor, spec: GridSpec) -> None:
    """In place: ``W ← W − η_k (G + λ W)``, then ``W ← r W / ‖W‖`` where projected
    (docs/theory.md §2).

    Mirrors ``torch.optim.SGD`` (``d = g + λw; w −= η d``). No host synchronisation.
    """
    eta = spec.step_size(W.square().sum(1))
    W.sub_(eta[:, None] * (G + spec.wd[:, None] * W))
    scale = torch.where(spec.project, spec.radius / W.norm(dim=1), torch.ones_like(spec.radius))
    W.mul_(scale[:, None])


def _stack_buffers(bns: list[list[nn.BatchNorm2d]], i: int, name: str) -> torch.Tensor:
    """Model-major concatenation of BatchNorm layer ``i``'s buffer ``name`` over the models."""
    return torch.cat([getattr(bn[i], name) for bn in bns]).clone()


def per_model_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy per model, ``[M]``, from ``logits[B, M, K]`` and ``y[B, M]``.

    Backpropagate the *sum* over models: each model's gradient is then its own.
    """
    B, M, K = logits.shape
    return (
        F.cross_entropy(logits.reshape(B * M, K), y.reshape(B * M), reduction="none")
        .view(B, M)
        .mean(0)
    )


class StackedNet:
    """``M`` copies of one architecture, trained as one; built from ``M`` modules of equal shape.

    Parameters
    ----------
    modules : sequence of ConvNet or PreActResNet18
        Same architecture and widths; their trainable parameters become ``W[M, P]``
        (:meth:`initial_weights`), their BatchNorm running buffers and frozen heads are stacked.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        if not modules:
            raise InvalidParameterError("StackedNet needs at least one module")
        first = modules[0]
        if not isinstance(first, (ConvNet, PreActResNet18)):
            raise InvalidParameterError(
                f"StackedNet supports ConvNet and PreActResNet18, got {type(first).__name__}"
            )
        self.arch = "convnet" if isinstance(first, ConvNet) else "resnet18"
        self.M = len(modules)
        named = [(n, p) for n, p in first.named_parameters() if p.requires_grad]
        self.names = [n for n, _ in named]
        self.shapes = {n: tuple(p.shape) for n, p in named}
        self.sizes = [p.numel() for _, p in named]
        self.P = int(sum(self.sizes))
        for m in modules:
            if [tuple(p.shape) for p in m.parameters() if p.requires_grad] != list(
                self.shapes.values()
            ):
                raise InvalidParameterError(
                    "all modules must have the same architecture and widths"
                )
        self._modules = list(modules)
        bns: list[list[nn.BatchNorm2d]] = [
            [b for b in m.modules() if isinstance(b, nn.BatchNorm2d)] for m in modules
        ]
        self.bn_index = {id(b): i for i, b in enumerate(bns[0])}
        self.bn_mean = [_stack_buffers(bns, i, "running_mean") for i in range(len(bns[0]))]
        self.bn_var = [_stack_buffers(bns, i, "running_var") for i in range(len(bns[0]))]
        self.momentum = float(bns[0][0].momentum or 0.0)
        self.eps = float(bns[0][0].eps)
        heads: list[nn.Linear] = [m.head for m in modules]  # type: ignore[misc]
        self.head_w = torch.stack([h.weight.detach() for h in heads]).clone()
        self.head_b = (
            None
            if heads[0].bias is None
            else torch.stack([h.bias.detach() for h in heads]).clone()
        )

    # -- state -------------------------------------------------------------------------------------
    def initial_weights(self) -> torch.Tensor:
        """``W[M, P]``: each module's trainable parameters flattened, one row per model."""
        return torch.stack(
            [
                torch.cat([p.detach().reshape(-1) for p in m.parameters() if p.requires_grad])
                for m in self._modules
            ]
        )

    def to(self, device: torch.device | str, dtype: torch.dtype) -> StackedNet:
        self.bn_mean = [t.to(device, dtype) for t in self.bn_mean]
        self.bn_var = [t.to(device, dtype) for t in self.bn_var]
        self.head_w = self.head_w.to(device, dtype)
        self.head_b = None if self.head_b is None else self.head_b.to(device, dtype)
        return self

    def buffers(self) -> list[torch.Tensor]:
        """BatchNorm running means then variances, ``[M·C]`` each (for checkpoints and tests)."""
        return [*self.bn_mean, *self.bn_var]

    def model_buffers(self, m: int) -> list[torch.Tensor]:
        """Model ``m``'s slice of :meth:`buffers`, in the module's BatchNorm order."""
        return [t.view(self.M, -1)[m] for t in self.buffers()]

    # -- forward -----------------------------------------------------------------------------------
    def _weights(self, W: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each layer's stacked conv weight ``[M·C_out, C_in, k, k]``, cut from ``W`` with one
        ``split`` (whose backward is one ``cat``; ``torch.compile`` also lowers it where slicing
        by offsets failed, torch 2.13)."""
        return {
            name: part.reshape(self.M * self.shapes[name][0], *self.shapes[name][1:])
            for name, part in zip(self.names, W.split(self.sizes, dim=1), strict=True)
        }

    def _conv(
        self, w: dict[str, torch.Tensor], name: str, x: torch.Tensor, stride: int = 1
    ) -> torch.Tensor:
        k = self.shapes[name][-1]
        return F.conv2d(x, w[name], stride=stride, padding=k // 2, groups=self.M)

    def _bn(self, module: nn.Module, x: torch.Tensor, update: bool) -> torch.Tensor:
        i = self.bn_index[id(module)]
        rm, rv = (self.bn_mean[i], self.bn_var[i]) if update else (None, None)
        return F.batch_norm(x, rm, rv, training=True, momentum=self.momentum, eps=self.eps)

    def forward(
        self, W: torch.Tensor, x: torch.Tensor, *, update_stats: bool = True
    ) -> torch.Tensor:
        """Logits ``[B, M, K]`` for inputs ``x[B, M·C_in, H, W]`` (model m's image in channels
        ``m·C_in … (m+1)·C_in − 1``). BatchNorm is in train mode; its running buffers are updated
        only when ``update_stats`` (measurement passes leave them alone)."""
        net: Any = self._modules[0]
        w = self._weights(W)
        if self.arch == "convnet":
            for i, bn in enumerate(net.bns):
                x = F.relu(self._bn(bn, self._conv(w, f"convs.{i}.weight", x), update_stats))
                if i > 0:
                    x = F.max_pool2d(x, 2)
            feat = F.adaptive_max_pool2d(x, 1)
        else:
            x = self._bn(net.stem_bn, self._conv(w, "stem.weight", x), update_stats)
            for j, blk in enumerate(net.blocks):
                p = f"blocks.{j}."
                stride = blk.conv1.stride[0]
                out = F.relu(self._bn(blk.bn0, x, update_stats))
                short = (
                    x
                    if blk.short is None
                    else self._bn(
                        blk.short[1], self._conv(w, p + "short.0.weight", out, stride), update_stats
                    )
                )
                out = F.relu(
                    self._bn(blk.bn1, self._conv(w, p + "conv1.weight", out, stride), update_stats)
                )
                x = self._bn(blk.bn2, self._conv(w, p + "conv2.weight", out), update_stats) + short
            feat = F.adaptive_avg_pool2d(F.relu(x), 1)
        feat = feat.view(x.shape[0], self.M, -1)
        logits = torch.einsum("bmc,mkc->bmk", feat, self.head_w)
        return logits if self.head_b is None else logits + self.head_b
