"""Networks as a sweep substrate: a grid's shards trained by the stacked trainer, cached per point.

:func:`sweep_spec` turns a :class:`~thermocheck.nets.train.GridConfig` into a
:class:`~thermocheck.sweep.SweepSpec` with ``substrate="net"``; :func:`train_shard` is that
substrate's runner (registered into the sweep's substrates on import), which trains one rectangle of
the grid as one stacked model. Each model draws its minibatches from a stream keyed by the seed and
its own grid point and starts from the same initial weights, so a point's trajectory does not depend
on which shard trained it (up to floating-point summation order, which may differ between stack
sizes: statistically the same states, not always the same digits in float32).

The cache key holds every config field that changes the numbers; the fields that do not (where the
data lie, threads, logging) travel as the spec's unkeyed ``settings``, so rerunning with another
``--data-dir`` or thread count reuses the cached points. ``GridConfig.extra`` does not reach the
cached states.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError
from thermocheck.nets.data import DATASET_SHAPES
from thermocheck.nets.models import make_model, trainable_vector
from thermocheck.nets.train import GridConfig, Trainer
from thermocheck.states import State
from thermocheck.sweep.shards import SweepSpec, register_substrate

__all__ = ["CHECKPOINT_EVERY", "sweep_spec", "train_shard", "trainable_dimension"]

#: A shard's trainer checkpoints every this many log points (``log_every`` steps each): a
#: checkpoint holds the weight queue, up to a gigabyte for the GPU presets.
CHECKPOINT_EVERY = 2

#: Config fields that do not change the measured numbers: the spec's unkeyed ``settings``.
_SETTINGS = ("data_dir", "threads", "log_every")
#: Config fields that are the spec's own (grid, iterations, seed, model, dataset), its settings, or
#: set by the runner (checkpoints, progress); ``extra`` (metadata for the states) does not reach
#: cached states. Every other field is a keyed option.
_NOT_OPTIONS = frozenset({
    "protocol", "x", "y", "iters", "seed", "model", "dataset", *_SETTINGS,
    "checkpoint", "checkpoint_every", "progress", "extra",
})


def trainable_dimension(config: GridConfig) -> int:
    """``d``, the number of trainable weights of ``config``'s model on its dataset."""
    channels, classes = DATASET_SHAPES[config.dataset]
    model = make_model(config.model, config.width, num_classes=classes, in_channels=channels)
    return int(trainable_vector(model).numel())


def sweep_spec(config: GridConfig) -> SweepSpec:
    """The sweep of ``config``'s grid on the ``net`` substrate (its cache key options: every field
    that changes the numbers)."""
    x, y = theory.AXES[config.protocol]
    fields = asdict(config)
    options = {k: v for k, v in fields.items() if k not in _NOT_OPTIONS}
    settings = {k: fields[k] for k in _SETTINGS}
    return SweepSpec(config.protocol, trainable_dimension(config), {x: config.x, y: config.y},
                     config.iters, config.seed, "net", config.model, config.dataset, options,
                     settings)


def train_shard(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray, *,
                workdir: Path | None = None) -> Iterable[State]:
    """Train ``xs × ys`` of ``spec``'s grid as one stacked model and return its states.

    With a ``workdir`` (the sweep gives each shard one) the trainer checkpoints there every
    :data:`CHECKPOINT_EVERY` log points and resumes from it, so a requeued Slurm job or a rerun
    after a crash continues mid-training. Shows a progress bar when standard error is a terminal;
    CIFAR is read from the settings' ``data_dir``, else ``$THERMOCHECK_DATA_DIR``
    (:func:`thermocheck.nets.data.load_dataset`).
    """
    options: dict[str, Any] = {**spec.options, **spec.settings}
    config = GridConfig(protocol=spec.protocol, x=tuple(float(v) for v in xs),
                        y=tuple(float(v) for v in ys), iters=spec.iterations, seed=spec.seed,
                        model=spec.model or "convnet", dataset=spec.dataset or "digits",
                        progress=sys.stderr.isatty(), **options)
    if workdir is not None:
        config = replace(config, checkpoint=str(Path(workdir) / "trainer.pt"),
                         checkpoint_every=CHECKPOINT_EVERY * config.log_every)
    trainer = Trainer(config)
    if trainer.P != spec.d:
        raise InvalidParameterError(
            f"d={spec.d} is invalid for {config.model} width {config.width} on {config.dataset}: "
            f"that model has d={trainer.P} trainable weights"
        )
    trainer.run()
    return trainer.grid()


register_substrate("net", train_shard)
