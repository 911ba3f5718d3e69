"""``M`` copies of any ``nn.Module`` trained as one through ``torch.func`` (docs/architecture.md,
"Training a grid at once").

:class:`~thermocheck.nets.stacked.StackedNet` fuses the two built-in architectures by hand into
grouped convolutions; :class:`FunctionalStack` does the same for a user's own scale-invariant module
with ``torch.func.functional_call`` under ``vmap`` (whose convolution rule also folds the models
into groups). Model ``m``'s trainable parameters are the row ``W[m]`` in ``parameters()`` order;
its buffers (BatchNorm running statistics) are stacked along a leading model axis and updated in
place by the vmapped forward, so each model keeps its own; frozen parameters (the head) are shared.
Slower than the hand-fused path on the built-in models, identical in float64.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn
from torch.func import functional_call, vmap

from thermocheck.errors import InvalidParameterError

__all__ = ["FunctionalStack"]


def _check_supported(module: nn.Module) -> None:
    """Refuse layers that ``vmap`` cannot run per model: dropout (random per call) and a
    BatchNorm with ``momentum=None`` (its cumulative average reads its counter on the host)."""
    for name, layer in module.named_modules():
        if isinstance(layer, nn.modules.dropout._DropoutNd) and layer.p > 0:
            raise InvalidParameterError(
                f"{name} ({type(layer).__name__}, p={layer.p}) is not supported on the grid "
                "trainer: dropout draws random masks inside the stacked forward; remove it or "
                "record your own loop with thermocheck.record.Recorder")
        if isinstance(layer, nn.modules.batchnorm._BatchNorm) and layer.momentum is None:
            raise InvalidParameterError(
                f"{name} ({type(layer).__name__}) has momentum=None (a cumulative average), which "
                "the grid trainer cannot stack; give it a momentum, e.g. 0.1")


class FunctionalStack:
    """``M`` modules of equal shape as one model with weights ``W[M, P]`` (the interface of
    :class:`~thermocheck.nets.stacked.StackedNet`: ``initial_weights``, ``to``, ``buffers``,
    ``model_buffers``, ``forward``).

    Parameters
    ----------
    modules : sequence of nn.Module
        Same architecture; their parameters with ``requires_grad=True`` are the trained ``w``,
        those without are frozen and taken from the first module.
    """

    def __init__(self, modules: Sequence[nn.Module]) -> None:
        if not modules:
            raise InvalidParameterError("FunctionalStack needs at least one module")
        first = modules[0]
        self.M = len(modules)
        named = [(n, p) for n, p in first.named_parameters() if p.requires_grad]
        if not named:
            raise InvalidParameterError(
                "the model has no trainable parameters (requires_grad=True)")
        self.names = [n for n, _ in named]
        self.shapes = [tuple(p.shape) for _, p in named]
        self.sizes = [p.numel() for _, p in named]
        self.P = int(sum(self.sizes))
        for m in modules:
            if [tuple(p.shape) for p in m.parameters() if p.requires_grad] != self.shapes:
                raise InvalidParameterError("all modules must have the same architecture")
        _check_supported(first)
        self._modules = list(modules)
        self.frozen = {n: p.detach().clone() for n, p in first.named_parameters()
                       if not p.requires_grad}
        self.stacked_buffers = {
            n: torch.stack([dict(m.named_buffers())[n] for m in modules]).clone()
            for n, _ in first.named_buffers()
        }
        self.base = copy.deepcopy(first).to("meta")
        self.base.train()

    def initial_weights(self) -> torch.Tensor:
        """``W[M, P]``: each module's trainable parameters flattened, one row per model."""
        return torch.stack([
            torch.cat([p.detach().reshape(-1) for p in m.parameters() if p.requires_grad])
            for m in self._modules
        ])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> FunctionalStack:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, dtype) if t.is_floating_point() else t.to(device)

        self.frozen = {n: move(t) for n, t in self.frozen.items()}
        self.stacked_buffers = {n: move(t) for n, t in self.stacked_buffers.items()}
        return self

    def buffers(self) -> list[torch.Tensor]:
        """The stacked buffers ``[M, …]``, in the module's order (for checkpoints and tests)."""
        return list(self.stacked_buffers.values())

    def model_buffers(self, m: int) -> list[torch.Tensor]:
        """Model ``m``'s buffers, in the module's order."""
        return [t[m] for t in self.buffers()]

    def forward(
        self, W: torch.Tensor, x: torch.Tensor, *, update_stats: bool = True
    ) -> torch.Tensor:
        """Outputs ``[B, M, K]`` for inputs ``x[B, M·C, …]`` (model m's sample in the m-th block of
        the second axis, as the trainer's batches are laid out). Train mode; the buffers are
        updated only when ``update_stats``."""
        params = {
            name: part.view(self.M, *shape)
            for name, part, shape in zip(self.names, W.split(self.sizes, dim=1), self.shapes,
                                         strict=True)
        }
        buffers = (self.stacked_buffers if update_stats
                   else {n: t.clone() for n, t in self.stacked_buffers.items()})
        per_model = x.view(x.shape[0], self.M, -1, *x.shape[2:])  # [B, M, C, …] or [B, M, F]

        def one(p: dict[str, torch.Tensor], b: dict[str, torch.Tensor],
                xb: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = functional_call(self.base, (p, self.frozen, b), (xb,))
            return out

        out: torch.Tensor = vmap(one, in_dims=(0, 0, 1), out_dims=1)(params, buffers, per_model)
        return out
