"""Root conftest: the thermocheck plugin (registered through ``pytest11``) does the real work;
this file adds the repository's own defaults."""

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType

import pytest

pytest_plugins = ["pytester"]


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    """This repository's Hypothesis default: the thermocheck ``ci`` profile where ``$CI`` is true,
    else ``dev``. The plugin itself loads a profile only when ``--thermocheck-profile`` is given,
    so it leaves users' sessions alone; this hook runs before the plugin's and fills the option in,
    and an explicit ``--thermocheck-profile`` or ``--hypothesis-profile`` still wins."""
    if config.getoption("thermocheck_profile") is None:
        config.option.thermocheck_profile = "ci" if _ci() else "dev"


@pytest.fixture(autouse=True, scope="session")
def _private_results_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the suite's sweeps out of the user's results cache (and away from stale entries)."""
    os.environ["THERMOCHECK_CACHE_DIR"] = str(tmp_path_factory.mktemp("thermocheck-cache"))


@pytest.fixture(scope="session")
def user_model_example() -> ModuleType:
    """``examples/user_model/train.py`` as a module: a user's scale-invariant MLP on digits."""
    return _example("user_model")


@pytest.fixture(scope="session")
def momentum_resnet_example() -> ModuleType:
    """``examples/momentum_resnet/train.py`` as a module: a scale-invariant ResNet, SGD momentum."""
    return _example("momentum_resnet")


def _example(name: str) -> ModuleType:
    """``examples/<name>/train.py`` imported as the module ``<name>_train`` (they run on digits,
    which needs scikit-learn)."""
    pytest.importorskip("sklearn")
    path = Path(__file__).resolve().parent / "examples" / name / "train.py"
    spec = importlib.util.spec_from_file_location(f"{name}_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
