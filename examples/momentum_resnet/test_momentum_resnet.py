"""The momentum example's runs against the momentum-aware laws (about 40 s on 2 CPU cores).

Trains ``train.py``'s grid (SGD, β = 0.9, Recorder attached) and one broken setup: the recorder
told plain SGD (β = 0) while the loop runs β = 0.9.
"""

from __future__ import annotations

from types import ModuleType

import pytest

from thermocheck import laws
from thermocheck.states import StateGrid

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train(momentum_resnet_example: ModuleType) -> ModuleType:
    """``train.py`` beside this file, as a module (the root conftest loads it)."""
    return momentum_resnet_example


@pytest.fixture(scope="module")
def grid(train: ModuleType) -> StateGrid:
    return train.train_grid(train.Config())


def test_the_states_record_the_optimizer(grid: StateGrid) -> None:
    assert grid.optimizer == {"name": "sgd", "momentum": 0.9, "nesterov": False}
    assert all(s.stationary_series["radius"] and s.stationary_series["noise"] for s in grid)


def test_momentum_norm_balance(grid: StateGrid) -> None:
    laws.norm_balance(grid).assert_passed()


def test_momentum_ideal_gas(grid: StateGrid) -> None:
    """V1 with the velocity's measured memory of the gradient in the trace (docs/optimizers.md):
    without it E‖w‖² was 0.83–0.87 of the prediction, which failed."""
    assert all("velocity_grad" in s.extra for s in grid)
    result = laws.ideal_gas(grid, corrected=True)
    result.assert_passed()
    assert all(c["velocity_memory"] < 0 for c in result.details)  # momentum overshoots here


def test_a_recorder_told_plain_sgd_fails(train: ModuleType) -> None:
    cfg = train.Config()
    state = train.train_point(cfg.lrs[0], cfg.wds[0], train.digits(), cfg, claim_plain_sgd=True)
    assert state.optimizer["momentum"] == 0.0
    assert laws.ideal_gas(state, corrected=True).verdict == "failed"
    assert laws.norm_balance(state).verdict == "failed"
