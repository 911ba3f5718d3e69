"""Sweep grids, their shards, and results assembled from the cache with missing points."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from thermocheck import laws, theory
from thermocheck.errors import GridError, InvalidParameterError
from thermocheck.results import VERDICTS, LawResult
from thermocheck.states import Estimate, State, StateGrid
from thermocheck.sweep import MEASUREMENT_VERSION, ResultsCache, SweepSpec, assemble, shards, split
from thermocheck.sweep import cache as cache_module
from thermocheck.sweep.cache import config_key
from thermocheck.synthetic import synthetic_grid

pytestmark = pytest.mark.fast

LRS = (0.01, 0.02, 0.03, 0.05, 0.08)
WDS = (1e-4, 1e-3, 1e-2)


def _spec(**changes: object) -> SweepSpec:
    kwargs = {"protocol": "fixed_lr", "d": 3, "grid": {"lr": LRS, "wd": WDS}, "iterations": 100,
              "seed": 7, **changes}
    return SweepSpec(**kwargs)  # type: ignore[arg-type]


def _state(point: dict[str, float]) -> State:
    return State(protocol="fixed_lr", d=3, sigma2=Estimate(1.0), loss=Estimate(point["lr"]),
                 substrate="isotropic", **point)


# -- specs ----------------------------------------------------------------------------------------
def test_spec_orders_axes_and_keeps_values_exactly() -> None:
    lrs = np.logspace(-3, -1, 4)
    spec = _spec(grid={"wd": list(WDS), "lr": lrs})
    assert spec.axes == ("lr", "wd")
    assert spec.grid["lr"] == tuple(lrs.tolist())
    assert spec.points()[:2] == [{"lr": lrs[0], "wd": 1e-4}, {"lr": lrs[0], "wd": 1e-3}]
    assert len(spec.points()) == 12
    assert spec.describe() == "fixed_lr d=3 (4×3 lr×wd, 100 iterations, seed 7)"


@pytest.mark.parametrize("changes, match", [
    ({"protocol": "adiabatic"}, "protocol"),
    ({"grid": {"elr": LRS, "wd": WDS}}, "needs exactly"),
    ({"grid": {"lr": (0.01, 0.01), "wd": WDS}}, "repeats"),
    ({"grid": {"lr": (0.01, -0.02), "wd": WDS}}, "finite and > 0"),
    ({"grid": {"lr": [], "wd": WDS}}, "non-empty"),
    ({"d": 1}, "d=1"),
    ({"iterations": 0}, "iterations=0"),
    ({"seed": 1.5}, "seed=1.5"),
    ({"substrate": "quantum"}, "substrate='quantum'"),
    ({"substrate": lambda spec, xs, ys: []}, "module-level function"),
])
def test_spec_validates(changes: dict, match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        _spec(**changes)


def test_config_names_everything_a_measurement_depends_on() -> None:
    config = _spec(options={"chains": 8}).config({"lr": 0.02, "wd": 1e-3})
    assert config == {"measurement_version": MEASUREMENT_VERSION, "substrate": "isotropic",
                      "measurement_code": shards.measurement_code("isotropic"), "model": None,
                      "dataset": None, "protocol": "fixed_lr", "d": 3,
                      "hyperparameters": {"lr": 0.02, "wd": 1e-3}, "seed": 7, "iterations": 100,
                      "options": {"chains": 8}}


def test_a_change_to_the_measuring_code_changes_every_key(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No version to bump by hand: editing a module that measures the substrate re-keys its
    points, while the estimators' fingerprint is shared by every substrate."""
    module = tmp_path / "toy_measure.py"
    module.write_text("SCALE = 1.0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(shards.MEASUREMENT_MODULES, "isotropic", ("toy_measure",))
    point = {"lr": 0.02, "wd": 1e-3}
    before = config_key(_spec().config(point))
    module.write_text("SCALE = 2.0\n")
    cache_module._fingerprint.cache_clear()
    after = config_key(_spec().config(point))
    assert before != after
    assert config_key(_spec().config(point)) == after  # the same code, the same key


def test_the_built_in_fingerprints_cover_their_packages() -> None:
    files = {p.name for p in cache_module._module_files("thermocheck.simulator")}
    assert {"measure.py", "kernel.py", "api.py", "__init__.py"} <= files
    assert shards.measurement_code("isotropic") != shards.measurement_code("net")
    assert len(shards.measurement_code("net")) == 16  # read by path: torch is not imported


@pytest.mark.parametrize("substrate, shared", [
    ("isotropic", {"measurement.py", "vmf.py"}),
    ("net", {"measurement.py", "noise.py", "record.py"}),
])
def test_the_fingerprints_cover_the_shared_measurement_modules(substrate: str,
                                                               shared: set[str]) -> None:
    """The series-to-State conventions (every substrate), the noise measurement (networks) and the
    VMF closed forms that space the simulator's snapshots sit outside the substrates' packages: an
    edit to them must re-key the points they measured."""
    files = {path.name for module in (*shards.MEASUREMENT_MODULES[substrate],
                                      *shards.ESTIMATOR_MODULES)
             for path in cache_module._module_files(module)}
    assert shared <= files


# -- shards ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("size, count", [
    (None, 1), (1, 15), (2, 10), (3, 5), (4, 5), (7, 3), (15, 1), (100, 1),
])
def test_shards_are_rectangles_covering_each_point_once(size: int | None, count: int) -> None:
    spec = _spec()
    shards = split(spec, size)
    points = [tuple(p.values()) for s in shards for p in s.points()]
    assert sorted(points) == sorted(tuple(p.values()) for p in spec.points())
    assert len(set(points)) == len(points)
    for shard in shards:
        assert len(shard.points()) == len(shard.xs) * len(shard.ys) <= (size or 15)
    assert len(shards) == count


def test_shard_sizes_are_balanced() -> None:
    sizes = [len(s.points()) for s in split(_spec(), 9)]  # 3 rows per shard at most, balanced
    assert sizes == [9, 6]
    assert [len(s.points()) for s in split(_spec(grid={"lr": LRS, "wd": np.arange(1, 8)}), 3)] \
        == [3, 2, 2] * 5


def test_shard_size_is_validated() -> None:
    with pytest.raises(InvalidParameterError, match="shard_size=0"):
        split(_spec(), 0)


# -- assembly -------------------------------------------------------------------------------------
def _cached(tmp_path: Path, skip: int = 0) -> ResultsCache:
    cache, spec = ResultsCache(tmp_path), _spec()
    for point in spec.points()[skip:]:
        cache.put(spec.config(point), _state(point))
    return cache


def _needs_full_grid(grid: StateGrid) -> LawResult:
    if len(grid) < 15:
        raise GridError(f"the law needs the full 5×3 grid, got {len(grid)} points")
    return LawResult("full_grid", grid.protocol, grid.substrate, "passed", d=grid.d)


def _any_grid(grid: StateGrid) -> LawResult:
    return LawResult("any_grid", grid.protocol, grid.substrate, "passed", notes=("fine",))


def test_assemble_complete_grid(tmp_path: Path) -> None:
    result = assemble(_spec(), _cached(tmp_path))
    assert result.complete and result.grid is not None
    assert list(result.grid) == [_state(p) for p in _spec().points()]
    assert result.check(_needs_full_grid).verdict == "passed"
    assert result.to_dict()["missing"] == [] and result.to_dict()["finished"] == 15


def test_incomplete_grid_gives_inconclusive_not_a_crash(tmp_path: Path) -> None:
    result = assemble(_spec(), _cached(tmp_path, skip=2))
    assert result.missing == ({"lr": 0.01, "wd": 1e-4}, {"lr": 0.01, "wd": 1e-3})
    assert result.grid is not None and len(result.grid) == 13
    law = result.check(_needs_full_grid)
    assert law.verdict == "inconclusive"
    assert "grid incomplete: the law needs the full 5×3 grid" in law.reason
    assert "2 of 15 points missing: lr=0.01, wd=0.0001; lr=0.01, wd=0.001" in law.reason
    passed = result.check(_any_grid)
    assert passed.verdict == "passed"
    assert passed.notes == ("fine", result.missing_summary())
    assert result.to_dict()["missing"] == [{"lr": 0.01, "wd": 1e-4}, {"lr": 0.01, "wd": 1e-3}]


def test_empty_grid_gives_inconclusive(tmp_path: Path) -> None:
    result = assemble(_spec(), ResultsCache(tmp_path))
    assert result.grid is None and len(result.missing) == 15
    law = result.check(_any_grid)
    assert (law.verdict, law.law, law.protocol) == ("inconclusive", "_any_grid", "fixed_lr")
    assert law.reason.startswith("grid incomplete: no point has finished; 15 of 15 points missing")
    assert law.reason.endswith("… and 10 more")


@pytest.mark.parametrize("protocol", ["fixed_sphere", "fixed_elr", "fixed_lr"])
@pytest.mark.parametrize("kept", [20, 18, 3, 1, 0])
def test_every_law_gives_a_verdict_on_an_incomplete_sweep(
    tmp_path: Path, protocol: str, kept: int
) -> None:
    """Laws run on the finished points; the missing ones are named, nothing raises."""
    x, y = theory.AXES[protocol]
    xs, ys = np.geomspace(1e-3, 1e-2, 5), np.geomspace(1e-3, 1e-2, 4)
    if protocol == "fixed_sphere":
        ys = np.geomspace(0.5, 2.0, 4)
    elif protocol == "fixed_lr":
        xs = np.geomspace(1e-2, 1e-1, 5)
    spec = SweepSpec(protocol, d=5, grid={x: xs, y: ys}, iterations=100, seed=3)
    cache = ResultsCache(tmp_path)
    full = synthetic_grid(protocol, 5, grid=theory.axes_grid(protocol, xs, ys), noise=0.01, seed=3)
    for point, state in list(zip(spec.points(), full, strict=True))[20 - kept:]:
        cache.put(spec.config(point), state)
    result = assemble(spec, cache)
    assert len(result.missing) == 20 - kept
    for law in laws.ALL.values():
        checked = result.check(law)
        assert checked.verdict in VERDICTS
        if kept == 0:
            assert checked.verdict == "inconclusive" and "no point has finished" in checked.reason
        elif kept < 20:
            assert result.missing_summary() in (*checked.notes, checked.reason)


# -- substrates by name ---------------------------------------------------------------------------
def _constant_runner(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> list[State]:
    x, y = spec.axes
    return [_state({x: float(a), y: float(b)}) for a in xs for b in ys]


def test_registered_substrate_runs_by_name(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from thermocheck.sweep import shards

    monkeypatch.setattr(shards, "_RUNNERS", dict(shards._RUNNERS))
    shards.register_substrate("constant", _constant_runner)
    assert "constant" in shards.substrate_names()
    spec = _spec(substrate="constant")
    assert spec.runner is _constant_runner and spec.config(spec.points()[0])["substrate"] == \
        "constant"
    report = shards.ShardTask(split(spec)[0], str(tmp_path))()
    assert (report.computed, report.cached) == (len(LRS) * len(WDS), 0)


def test_net_substrate_is_found_by_name() -> None:
    from thermocheck.nets.substrate import train_shard
    from thermocheck.sweep.shards import substrate_runner

    assert substrate_runner("net") is train_shard


@pytest.mark.parametrize(("args", "match"), [
    (("no such", _constant_runner), "name='no such' is invalid: it must be an identifier"),
    (("fine", "not callable"), "runner='not callable' is invalid: it must be callable"),
])
def test_register_substrate_validates(args: tuple, match: str) -> None:
    from thermocheck.sweep.shards import register_substrate

    with pytest.raises(InvalidParameterError, match=match):
        register_substrate(*args)


def test_unknown_substrate_names_the_known_ones() -> None:
    from thermocheck.sweep.shards import substrate_runner

    with pytest.raises(InvalidParameterError, match=r"substrate='quantum'.*'isotropic', 'net'"):
        substrate_runner("quantum")
