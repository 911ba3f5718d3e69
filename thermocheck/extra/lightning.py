"""PyTorch Lightning integration: record a ``LightningModule``'s training with a
:class:`~thermocheck.record.Recorder`.

::

    from thermocheck.extra.lightning import RecorderCallback
    from thermocheck.record import Recorder

    recorder = Recorder(module, "fixed_lr", lr=0.1, wd=5e-4, data=(X, Y), batch_size=64,
                        noise_every=50)
    lightning.Trainer(callbacks=[RecorderCallback(recorder)], max_steps=20_000).fit(module, loader)
    state = recorder.state()

Lightning passes ``optimizer.step`` a closure that runs the forward and backward passes, so the
optimizer's step pre-hook (:meth:`Recorder.attach`) would fire before the gradient exists. The
callback uses Lightning's own hooks instead: ``on_before_optimizer_step`` runs after the backward
pass and before the update (``w_k``, ``g_k``: :meth:`Recorder.begin`), ``on_train_batch_end`` after
the update (``w_{k+1}`` and the loss returned by ``training_step``: :meth:`Recorder.end`). With
gradient accumulation only the batches that end in an optimizer step are recorded. The recorded
protocol is the one the optimizer claims: plain SGD without momentum, a constant learning rate
(fixed LR) or one set to ``η_eff ‖w‖²`` every step (fixed ELR).

Lightning is imported when this module is; thermocheck itself never imports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from thermocheck.errors import MissingDependencyError

try:
    from lightning.pytorch import Callback, LightningModule, Trainer
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError(
        "thermocheck.extra.lightning needs PyTorch Lightning: pip install 'thermocheck[lightning]'"
    ) from err
from torch.optim import Optimizer

from thermocheck.record import Recorder

__all__ = ["RecorderCallback"]


class RecorderCallback(Callback):
    """Feeds every optimizer step of a Lightning fit to ``recorder`` (made with the module, or
    the submodule whose parameters are the scale-invariant ``w``)."""

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def on_before_optimizer_step(
        self, trainer: Trainer, pl_module: LightningModule, optimizer: Optimizer
    ) -> None:
        self.recorder.begin()

    def on_train_batch_end(
        self, trainer: Trainer, pl_module: LightningModule, outputs: Any, batch: Any,
        batch_idx: int,
    ) -> None:
        if self.recorder.step_open:
            loss = outputs.get("loss") if isinstance(outputs, Mapping) else outputs
            self.recorder.end(loss=loss)
