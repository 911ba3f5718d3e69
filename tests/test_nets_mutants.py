"""The network laws against broken trainers: each law must fail on some mutant (``pytest -m slow``).

The substrate is a user's scale-invariant MLP (``examples/user_model``: two bias-free linear layers,
each followed by ``BatchNorm1d(affine=False)``, a frozen head; d = 3072) on scikit-learn's digits,
5 × 5 grids on thermocheck's grid trainer (about 12 s per grid on one CPU thread). A mutant changes
the update the trainer applies while the states keep the grid's labels, the kind of plumbing bug a
real training loop has:

* ``lr_squared`` (fixed LR): the step applies η²/η₀ instead of η;
* ``wd_doubled`` (fixed LR): the step applies weight decay 2λ;
* ``elr_without_norm`` (fixed ELR): the step forgets the ‖w‖² factor of Eq. 8 (η = η_eff).

Measured (seed 0): the correct trainer passes V1 (corrected), V3 and the norm balance, with
(a1 − a2)/R = 1.003 ± 0.010 under fixed LR and a2/R = −1.008 ± 0.016 under fixed ELR; ``lr_squared``
fails all three ((a1 − a2)/R = 2.68 ± 0.013); ``wd_doubled`` fails V1 and the norm balance at every
point and passes V3, as it must (a constant factor on λ shifts log λ and leaves the slopes);
``elr_without_norm`` fails all three (a2/R = +0.80 ± 0.03).
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

import pytest

from thermocheck import laws
from thermocheck.record import GridSpec
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

pytestmark = pytest.mark.slow

PROTOCOLS = ("fixed_lr", "fixed_elr")
LAWS: dict[str, Callable[[StateGrid], LawResult]] = {
    "ideal_gas": lambda grid: laws.ideal_gas(grid, corrected=True),
    "maxwell": lambda grid: laws.maxwell(grid, entropy_samples=200),  # the WIDE queue
    "norm_balance": laws.norm_balance,
}


def _lr_squared(spec: GridSpec) -> None:
    spec.a.copy_(spec.a.square() / spec.a.max().sqrt() / spec.a.min().sqrt())


def _wd_doubled(spec: GridSpec) -> None:
    spec.wd.mul_(2)


def _elr_without_norm(spec: GridSpec) -> None:
    spec.a.copy_(spec.b)
    spec.b.zero_()


MUTANTS: dict[str, tuple[str, Callable[[GridSpec], None], tuple[str, ...]]] = {
    # name: (protocol, mutation of the applied update, laws that must fail)
    "lr_squared": ("fixed_lr", _lr_squared, ("ideal_gas", "maxwell", "norm_balance")),
    "wd_doubled": ("fixed_lr", _wd_doubled, ("ideal_gas", "norm_balance")),
    "elr_without_norm": ("fixed_elr", _elr_without_norm, ("ideal_gas", "maxwell", "norm_balance")),
}


def _grid(example: ModuleType, protocol: str,
          mutate: Callable[[GridSpec], None] | None = None) -> StateGrid:
    trainer = example.grid_trainer(example.WIDE, protocol, example.WIDE_AXES[protocol],
                                   noise_samples=4)
    if mutate is not None:
        mutate(trainer.spec)
    trainer.run()
    return trainer.grid()


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_the_correct_trainer_passes(user_model_example: ModuleType, protocol: str) -> None:
    grid = _grid(user_model_example, protocol)
    for name, law in LAWS.items():
        result = law(grid)
        print(result.summary())
        # V3's quadratic terms are noisier under fixed ELR: there it may be undecided, never failed
        result.assert_passed(allow_inconclusive=name == "maxwell" and protocol == "fixed_elr")


@pytest.mark.parametrize("mutant", list(MUTANTS))
def test_each_mutant_is_caught(user_model_example: ModuleType, mutant: str) -> None:
    protocol, mutate, caught_by = MUTANTS[mutant]
    grid = _grid(user_model_example, protocol, mutate)
    verdicts = {name: law(grid).verdict for name, law in LAWS.items()}
    assert all(verdicts[name] == "failed" for name in caught_by), (mutant, verdicts)


def test_every_network_law_fails_on_some_mutant() -> None:
    assert {name for *_, caught in MUTANTS.values() for name in caught} == set(LAWS)
