"""Scale-invariant networks as a thermocheck substrate (docs/theory.md §7).

Models (:class:`ConvNet`, :class:`PreActResNet18`, :func:`make_model`), the numerical check
:func:`check_scale_invariance` for any ``nn.Module``, datasets (:func:`load_cifar`,
:func:`load_digits`, :func:`synthetic`), the stacked grid trainer (:class:`StackedNet`,
:class:`Trainer`, :class:`GridConfig`; a user's own module is stacked by :class:`FunctionalStack`)
and :func:`run_grid`; ``thermocheck verify --substrate net`` runs the presets
(:mod:`thermocheck.substrates`). Measurements go through
:class:`thermocheck.record.Recorder`.
"""

from thermocheck.nets.data import (
    Dataset,
    DatasetUnavailableError,
    load_cifar,
    load_dataset,
    load_digits,
    synthetic,
)
from thermocheck.nets.functional import FunctionalStack
from thermocheck.nets.models import (
    ConvNet,
    PreActResNet18,
    ScaleInvarianceError,
    check_scale_invariance,
    make_model,
)
from thermocheck.nets.run import PRESETS, preset_config, run_grid
from thermocheck.nets.stacked import StackedNet, per_model_loss, sgd_step_
from thermocheck.nets.train import GridConfig, Trainer

__all__ = [
    "PRESETS",
    "ConvNet",
    "Dataset",
    "DatasetUnavailableError",
    "FunctionalStack",
    "GridConfig",
    "PreActResNet18",
    "ScaleInvarianceError",
    "StackedNet",
    "Trainer",
    "check_scale_invariance",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "make_model",
    "per_model_loss",
    "preset_config",
    "run_grid",
    "sgd_step_",
    "synthetic",
]
