"""Root conftest: the thermocheck plugin (registered through ``pytest11``) does the real work."""

import os

import pytest

pytest_plugins = ["pytester"]


@pytest.fixture(autouse=True, scope="session")
def _private_results_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the suite's sweeps out of the user's results cache (and away from stale entries)."""
    os.environ["THERMOCHECK_CACHE_DIR"] = str(tmp_path_factory.mktemp("thermocheck-cache"))
