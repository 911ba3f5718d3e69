"""The worked example's grid against V1 (ideal gas law) and V3 (Maxwell relation).

Loads ``states.json`` beside this file when it exists (written by ``train.py``); otherwise runs
``train.py`` into a temporary folder first, so CI checks both the training script and the laws
(about 25 s on 2 CPU cores). The last test hands the same model to thermocheck's grid trainer.
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from thermocheck import laws
from thermocheck.states import StateGrid

HERE = Path(__file__).resolve().parent

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def train(user_model_example: ModuleType) -> ModuleType:
    """The example's ``train.py`` (the root conftest loads it)."""
    return user_model_example


@pytest.fixture(scope="module")
def grid(tmp_path_factory: pytest.TempPathFactory, train: ModuleType) -> StateGrid:
    path = HERE / "states.json"
    if not path.is_file():
        path = train.main(tmp_path_factory.mktemp("user_model") / "states.json")
    return StateGrid.load(path)


def test_ideal_gas(grid: StateGrid) -> None:
    laws.ideal_gas(grid).assert_passed()


def test_maxwell(grid: StateGrid) -> None:
    laws.maxwell(grid).assert_passed(allow_inconclusive=True)


def test_the_same_model_on_the_grid_trainer(train: ModuleType) -> None:
    """The user's model through thermocheck's stacked trainer (about 7 s): the same laws hold."""
    stacked = train.train_grid_at_once(train.Config())
    assert stacked.substrate == "net" and stacked[0].extra["model"] == "Sequential"
    laws.ideal_gas(stacked, corrected=True).assert_passed()
    laws.maxwell(stacked, entropy_samples=train.Config().queue_size).assert_passed(
        allow_inconclusive=True)
