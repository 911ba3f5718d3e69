"""The results cache: canonical keys, atomic writes, exact round trips."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from thermocheck.errors import InvalidParameterError
from thermocheck.states import Estimate, State
from thermocheck.sweep import cache as cache_mod
from thermocheck.sweep.cache import (
    MEASUREMENT_VERSION,
    SCHEMA_VERSION,
    ResultsCache,
    canonical_config,
    config_key,
    default_cache_dir,
)

pytestmark = pytest.mark.fast

CONFIG = {
    "measurement_version": 1,
    "substrate": "isotropic",
    "model": None,
    "dataset": None,
    "protocol": "fixed_lr",
    "d": 3,
    "hyperparameters": {"lr": 0.01, "wd": 0.001},
    "seed": 0,
    "iterations": 2000,
    "options": {"chains": 64, "burn_in": 0.25},
}


def _state(loss: float = 0.123456789012345678) -> State:
    return State(protocol="fixed_lr", d=3, lr=0.01, wd=0.001, sigma2=Estimate(1.0, 0.01, 64),
                 loss=Estimate(loss, 1e-3 / 3, 640), sq_norm=Estimate(2.0 / 3, 1e-17, 7),
                 substrate="isotropic", extra={"tau": 1.5})


# -- keys -----------------------------------------------------------------------------------------
def test_key_is_sha256_of_pinned_canonical_json() -> None:
    """Changing the canonical form silently orphans every user's cache: pin it."""
    text = ('{"d":3,"dataset":null,"hyperparameters":{"lr":0.01,"wd":0.001},"iterations":2000,'
            '"measurement_version":1,"model":null,"options":{"burn_in":0.25,"chains":64},'
            '"protocol":"fixed_lr","seed":0,"substrate":"isotropic"}')
    assert config_key(CONFIG) == hashlib.sha256(text.encode()).hexdigest()
    assert config_key(CONFIG) == "0e25334b01b578fcba9932eda25c2bc003df8cdc6da1fcbd7d5a24404830d330"


def test_key_ignores_dict_order() -> None:
    shuffled = {k: CONFIG[k] for k in reversed(list(CONFIG))}
    shuffled["hyperparameters"] = {"wd": 0.001, "lr": 0.01}
    shuffled["options"] = {"burn_in": 0.25, "chains": 64}
    assert config_key(shuffled) == config_key(CONFIG)


@pytest.mark.parametrize("lr", [1e-2, 0.010, float("1.0e-2"), np.float64(0.01), np.array(0.01)[()]])
@pytest.mark.parametrize("d", [3, 3.0, np.int64(3), np.float64(3.0)])
def test_key_ignores_number_formatting_and_types(lr: float, d: float) -> None:
    config = {**CONFIG, "d": d, "hyperparameters": {"lr": lr, "wd": 1e-3},
              "options": {"chains": np.int32(64), "burn_in": np.float64(0.25)}}
    assert config_key(config) == config_key(CONFIG)


@pytest.mark.parametrize("change", [
    {"seed": 1}, {"iterations": 2001}, {"d": 4}, {"protocol": "fixed_elr"},
    {"substrate": "nets"}, {"model": "resnet"}, {"dataset": "cifar10"},
    {"measurement_version": MEASUREMENT_VERSION + 1},
    {"hyperparameters": {"lr": np.nextafter(0.01, 1.0), "wd": 0.001}},
    {"options": {"chains": 65, "burn_in": 0.25}},
])
def test_key_changes_with_every_field(change: dict) -> None:
    assert config_key({**CONFIG, **change}) != config_key(CONFIG)


def test_canonical_config_is_plain_json() -> None:
    options = {"sizes": np.array([1.0, 2.5]), "on": np.bool_(1)}
    canon = canonical_config({**CONFIG, "options": options})
    assert canon["options"] == {"on": True, "sizes": [1, 2.5]}
    assert json.loads(json.dumps(canon)) == canon


@pytest.mark.parametrize("bad, match", [
    (float("nan"), "finite"), (float("inf"), "finite"), (object(), "cannot enter a cache key"),
])
def test_key_rejects_what_cannot_be_canonical(bad: object, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        config_key({**CONFIG, "options": {"x": bad}})


# -- entries --------------------------------------------------------------------------------------
def test_put_get_round_trip_is_exact(tmp_path: Path) -> None:
    cache = ResultsCache(tmp_path)
    assert cache.get(CONFIG) is None and CONFIG not in cache and len(cache) == 0
    path = cache.put(CONFIG, _state(), seconds=1.5)
    assert path == cache.path(config_key(CONFIG)) and path.is_relative_to(tmp_path)
    assert cache.get(CONFIG) == _state()
    assert CONFIG in cache and list(cache.keys()) == [config_key(CONFIG)]
    entry = json.loads(path.read_text())
    assert entry["schema_version"] == SCHEMA_VERSION
    assert entry["config"] == canonical_config(CONFIG)
    assert entry["meta"]["seconds"] == 1.5


def test_put_replaces_and_leaves_no_temporary_files(tmp_path: Path) -> None:
    cache = ResultsCache(tmp_path)
    cache.put(CONFIG, _state(0.1))
    cache.put(CONFIG, _state(0.2))
    assert cache.get(CONFIG) == _state(0.2)
    assert [p.name for p in cache.path(config_key(CONFIG)).parent.iterdir()] == [
        f"{config_key(CONFIG)}.json"]


def test_interrupted_write_keeps_the_old_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = ResultsCache(tmp_path)
    cache.put(CONFIG, _state(0.1))

    def crash(src: str, dst: str) -> None:
        raise KeyboardInterrupt  # killed between writing the temporary file and renaming it

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        cache.put(CONFIG, _state(0.2))
    monkeypatch.undo()
    assert cache.get(CONFIG) == _state(0.1)
    assert len(list(cache.path(config_key(CONFIG)).parent.iterdir())) == 1


@pytest.mark.parametrize("text", ["{not json", json.dumps({"schema_version": 999, "state": {}})])
def test_unreadable_or_foreign_entries_count_as_missing(tmp_path: Path, text: str) -> None:
    cache = ResultsCache(tmp_path)
    path = cache.path(config_key(CONFIG))
    path.parent.mkdir(parents=True)
    path.write_text(text)
    with pytest.warns(UserWarning, match="ignoring"):
        assert cache.get(CONFIG) is None


@pytest.mark.parametrize("edit", [
    lambda e: e["state"]["extra"].update(tau=1.6),  # a number changed by hand
    lambda e: e["config"].update(seed=8),  # the configuration it claims to measure
    lambda e: e.pop("checksum"),  # a checksum removed
    lambda e: e.update(schema_version=1),  # an entry of the format before checksums
])
def test_an_entry_edited_by_hand_counts_as_missing(tmp_path: Path, edit: object) -> None:
    cache = ResultsCache(tmp_path)
    path = cache.put(CONFIG, _state(0.1))
    entry = json.loads(path.read_text())
    edit(entry)  # type: ignore[operator]
    path.write_text(json.dumps(entry, indent=1))
    with pytest.warns(UserWarning, match="ignoring cache entry"):
        assert cache.get(CONFIG) is None


def test_the_checksum_ignores_where_and_when(tmp_path: Path) -> None:
    cache = ResultsCache(tmp_path)
    path = cache.put(CONFIG, _state(0.1), seconds=2.0)
    entry = json.loads(path.read_text())
    entry["meta"]["host"] = "elsewhere"
    path.write_text(json.dumps(entry))  # reformatted, and the metadata changed: the same content
    assert cache.get(CONFIG) == _state(0.1)
    assert entry["checksum"] == cache_mod.entry_checksum(entry)


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("THERMOCHECK_CACHE_DIR", raising=False)
    monkeypatch.setattr(cache_mod.sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "thermocheck"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "thermocheck"
    monkeypatch.setenv("THERMOCHECK_CACHE_DIR", str(tmp_path / "mine"))
    assert default_cache_dir() == tmp_path / "mine"
    assert ResultsCache().root == tmp_path / "mine"
