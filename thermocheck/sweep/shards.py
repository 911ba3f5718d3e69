"""A sweep's grid, its shards, and the job that measures one shard.

A :class:`SweepSpec` is one protocol and ``d`` on the outer product of two hyperparameter axes
(``theory.AXES``). :func:`split` cuts the grid into :class:`Shard` rectangles of at most
``shard_size`` points: a shard is itself an outer product, so the batched simulator trains it in
one call. A :class:`ShardTask` is what an executor runs: it measures the shard's points that the
cache lacks (or all of them, when forced) in batches, the substrate's unit of work
(:func:`batch_size`), and writes each batch's points to the cache as soon as the batch ends, so a
killed run loses at most the batch in flight. Each point is locked while it is measured
(:mod:`thermocheck.sweep.claims`), so concurrent runs on one cache measure it once. Each point has
its own random stream keyed by (seed, point), so its numbers do not depend on the shard or batch it
ran in: any split, executor or resume gives the same states.
"""

from __future__ import annotations

import importlib
import inspect
import math
import os
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_dimension, check_positive
from thermocheck.machine import cpu_budget
from thermocheck.states import State
from thermocheck.sweep.cache import (
    MEASUREMENT_VERSION,
    ResultsCache,
    config_key,
    source_fingerprint,
)
from thermocheck.sweep.claims import PointLock

__all__ = [
    "Runner",
    "Shard", "ShardReport",
    "ShardTask",
    "SweepSpec",
    "batch_size",
    "cpu_budget",
    "measurement_code",
    "missing_points",
    "register_substrate",
    "set_point_hook",
    "split",
    "substrate_names",
    "substrate_runner",
]

#: A substrate's measurement of a rectangle of the grid: ``runner(spec, xs, ys)`` returns the
#: states of every point of ``xs × ys``. It must be picklable (a module-level function) to run in
#: worker processes and Slurm jobs. A runner that declares a keyword ``workdir`` gets a folder of
#: its own under the cache for checkpoints: the same folder when the shard is run again (a Slurm
#: requeue, a rerun after a crash), removed once the shard's points are stored.
Runner = Callable[..., Iterable[State]]


def _simulate(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> Iterable[State]:
    """The batched isotropic simulator on ``xs × ys``; ``spec.options`` are its further keywords."""
    from thermocheck.simulator import simulate

    x, y = spec.axes
    return simulate(spec.protocol, d=spec.d, grid={x: xs, y: ys}, iterations=spec.iterations,
                    seed=spec.seed, **spec.options).grid


#: Points per thread in a batch of the simulator. Its kernel runs the points in parallel (numba
#: ``prange``) and pays a fixed cost per parallel call, about 100 per run; measured on a loaded
#: 2-core machine, wall time per point at 2, 4, 8, 16 points: 0.81, 0.41, 0.21, 0.11 s
#: (10⁶ iterations, d = 3), so a batch of one point per thread would double the run. Each thread
#: also advances two points together, so a small batch leaves a thread idle: the quick preset's
#: 5 × 5 grids took 13.4 s at 4 points per thread (batches of one row, 5 points) and 12.0 s at 8
#: (2 quiet cores, whole ``thermocheck verify``).
SIMULATOR_POINTS_PER_THREAD = 8


def _simulator_batch() -> int:
    """Points per batch of the simulator: :data:`SIMULATOR_POINTS_PER_THREAD` per kernel thread.
    A killed run loses at most that many points' work per thread."""
    threads = int(os.environ.get("NUMBA_NUM_THREADS") or cpu_budget())
    return SIMULATOR_POINTS_PER_THREAD * threads


#: Substrates by name (:func:`register_substrate`). A user's own runner may be passed instead.
_RUNNERS: dict[str, Runner] = {"isotropic": _simulate}

#: Points per batch of a substrate, by name (:func:`batch_size`); a substrate not listed measures a
#: whole shard in one call (the stacked network trainer: one model per shard, checkpointed in its
#: ``workdir``, so a killed shard resumes mid-training instead).
_BATCHES: dict[str, Callable[[], int]] = {"isotropic": _simulator_batch}

#: Substrates that live above the sweep layer, by the module that registers them when imported
#: (a lazy lookup, as entry points do): a job in a fresh process resolves the name, and the sweep
#: imports none of them at module level.
_PROVIDERS: dict[str, str] = {"net": "thermocheck.nets.substrate"}


#: The estimators every substrate's states pass through: part of every point's code fingerprint.
ESTIMATOR_MODULES = ("thermocheck._knn_kernels", "thermocheck.calibration", "thermocheck.entropy",
                     "thermocheck.measurement", "thermocheck.optimizers", "thermocheck.states",
                     "thermocheck.stats", "thermocheck.theory")

#: The modules that measure each built-in substrate (a package: all of it), read by path without
#: importing them. A registered substrate or a runner function is measured by its own module.
MEASUREMENT_MODULES: dict[str, tuple[str, ...]] = {
    "isotropic": ("thermocheck.simulator", "thermocheck.vmf"),
    "net": ("thermocheck.nets", "thermocheck.record", "thermocheck.noise",
            "thermocheck.invariance"),
}


def measurement_code(substrate: str | Runner) -> str:
    """The fingerprint (:func:`~thermocheck.sweep.cache.source_fingerprint`) of the code that
    measures ``substrate``'s points: its modules and :data:`ESTIMATOR_MODULES`. Part of every
    point's cache key, so an edit to that code measures the points again."""
    if isinstance(substrate, str) and substrate in MEASUREMENT_MODULES:
        own = MEASUREMENT_MODULES[substrate]
    else:
        runner = _RUNNERS.get(substrate) if isinstance(substrate, str) else substrate
        own = (runner.__module__,) if runner is not None else ()
    return source_fingerprint((*own, *ESTIMATOR_MODULES))


def register_substrate(name: str, runner: Runner, *, batch: int | None = None) -> None:
    """Make ``runner`` the substrate called ``name`` (see :data:`Runner`).

    ``batch`` is how many points it measures in one call, the work a killed run may lose (None:
    a whole shard). A substrate's module registers itself on import; registering a name again
    replaces it. Jobs in other processes (worker pools, Slurm) find the name only where their
    process imports that module too; pass the runner function itself otherwise.
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise InvalidParameterError(f"name={name!r} is invalid: it must be an identifier")
    if not callable(runner):
        raise InvalidParameterError(f"runner={runner!r} is invalid: it must be callable")
    _RUNNERS[name] = runner
    if batch is None:
        _BATCHES.pop(name, None)
    else:
        size = _check_int("batch", batch, 1)
        _BATCHES[name] = lambda: size


def batch_size(spec: SweepSpec) -> int | None:
    """Points of ``spec`` measured (and stored) together: the substrate's batch, None for a whole
    shard (a runner passed as a function, or a substrate registered without a batch)."""
    size = _BATCHES.get(spec.substrate) if isinstance(spec.substrate, str) else None
    return size() if size is not None else None


def substrate_names() -> tuple[str, ...]:
    """The names of the known substrates, registered or registering on first use."""
    return tuple(sorted(set(_RUNNERS) | set(_PROVIDERS)))


def substrate_runner(name: str) -> Runner:
    """The runner of the substrate called ``name``, importing its provider module if needed."""
    _check_substrate(name)
    if name not in _RUNNERS:
        importlib.import_module(_PROVIDERS[name])
    return _RUNNERS[name]


def _check_substrate(name: str) -> str:
    if name not in substrate_names():
        raise InvalidParameterError(
            f"substrate={name!r} is invalid: choose one of {substrate_names()} or pass a runner "
            "function"
        )
    return name


def _axis(name: str, values: Any) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameterError(f"grid[{name!r}] must be a non-empty 1-d array of values")
    check_positive(f"grid[{name!r}]", arr)
    if np.unique(arr).size != arr.size:
        raise InvalidParameterError(f"grid[{name!r}] repeats a value: each must appear once")
    return tuple(float(v) for v in arr)


def _check_int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InvalidParameterError(f"{name}={value!r} is invalid: it must be an integer >= {low}")
    return int(value)


def _substrate_name(substrate: str | Runner) -> str:
    if isinstance(substrate, str):
        return _check_substrate(substrate)
    module, name = getattr(substrate, "__module__", None), getattr(substrate, "__qualname__", "")
    if not module or "<" in name:  # a lambda, a closure, a partial: not importable by a job
        raise InvalidParameterError(
            f"substrate={substrate!r} is invalid: pass a module-level function (jobs import it "
            "by name, and the cache key names it)"
        )
    return f"{module}:{name}"


@dataclass(frozen=True)
class SweepSpec:
    """What a sweep measures: one protocol and ``d`` on the outer product of two axes.

    Parameters
    ----------
    protocol
        ``fixed_sphere``, ``fixed_elr`` or ``fixed_lr``.
    d
        Dimension (integer >= 2).
    grid
        ``{axis: values}`` for the protocol's two axes (``theory.AXES``), e.g.
        ``{"lr": lrs, "wd": wds}``; values are positive, distinct, and kept exactly.
    iterations, seed
        Training iterations per point and the seed of every point's random stream.
    substrate
        ``"isotropic"`` (the batched simulator; default), ``"net"`` (the stacked network trainer;
        build its spec with :func:`thermocheck.nets.substrate.sweep_spec`), another name given to
        :func:`register_substrate`, or a :data:`Runner`,
        which the cache key
        names by its import path (so change ``options`` or use ``--force`` when its code changes).
    model, dataset
        What a network substrate trains (part of the cache key; None for the simulator).
    options
        Further keywords of the substrate (part of the cache key), e.g. the simulator's
        ``log_every`` or ``entropy_logs``; plain numbers, strings, lists and mappings.
    settings
        Further keywords of the substrate that do not change its numbers, hence are no part of the
        cache key: where the data lie, CPU threads, how often to log (the network runner's
        ``data_dir``, ``threads``, ``log_every``).
    """

    protocol: str
    d: int
    grid: Mapping[str, Sequence[float]]
    iterations: int
    seed: int
    substrate: str | Runner = "isotropic"
    model: str | None = None
    dataset: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        protocol = theory.check_protocol(self.protocol)
        axes = theory.AXES[protocol]
        if set(self.grid) != set(axes):
            raise InvalidParameterError(
                f"grid has axes {sorted(self.grid)}: protocol={protocol!r} needs exactly {axes}"
            )
        object.__setattr__(self, "d", check_dimension(self.d))
        object.__setattr__(self, "grid", {a: _axis(a, self.grid[a]) for a in axes})
        object.__setattr__(self, "iterations", _check_int("iterations", self.iterations, 1))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))
        _substrate_name(self.substrate)
        object.__setattr__(self, "options", dict(self.options))
        object.__setattr__(self, "settings", dict(self.settings))

    @property
    def axes(self) -> tuple[str, str]:
        """The two hyperparameter names, in (x, y) order."""
        return theory.AXES[self.protocol]

    @property
    def substrate_name(self) -> str:
        """The substrate as the cache key names it: a built-in name or ``module:function``."""
        return _substrate_name(self.substrate)

    @property
    def runner(self) -> Runner:
        """The function that measures a rectangle of this grid."""
        return (substrate_runner(self.substrate) if isinstance(self.substrate, str)
                else self.substrate)

    def points(self) -> list[dict[str, float]]:
        """Every grid point as ``{x_name: x, y_name: y}``, x-major."""
        x, y = self.axes
        return [{x: a, y: b} for a in self.grid[x] for b in self.grid[y]]

    def config(self, point: Mapping[str, float]) -> dict[str, Any]:
        """The configuration of one point: what its cache key hashes (see ``cache.config_key``)."""
        return {
            "measurement_version": MEASUREMENT_VERSION,
            "measurement_code": measurement_code(self.substrate),
            "substrate": self.substrate_name,
            "model": self.model,
            "dataset": self.dataset,
            "protocol": self.protocol,
            "d": self.d,
            "hyperparameters": {k: float(point[k]) for k in self.axes},
            "seed": self.seed,
            "iterations": self.iterations,
            "options": self.options,
        }

    def describe(self) -> str:
        """One line, e.g. ``fixed_lr d=3 (5×4 lr×wd, 2000 iterations, seed 0)``."""
        x, y = self.axes
        return (f"{self.protocol} d={self.d} ({len(self.grid[x])}×{len(self.grid[y])} {x}×{y}, "
                f"{self.iterations} iterations, seed {self.seed})")


@dataclass(frozen=True)
class Shard:
    """A rectangle ``xs × ys`` of a sweep's grid: the points one job measures together."""

    spec: SweepSpec
    xs: tuple[float, ...]
    ys: tuple[float, ...]

    def points(self) -> list[dict[str, float]]:
        x, y = self.spec.axes
        return [{x: a, y: b} for a in self.xs for b in self.ys]


def _chunks(values: tuple[float, ...], parts: int) -> list[tuple[float, ...]]:
    return [tuple(c.tolist()) for c in np.array_split(np.asarray(values), parts) if c.size]


def _rectangles(xs: tuple[float, ...], ys: tuple[float, ...],
                size: int) -> list[tuple[tuple[float, ...], tuple[float, ...]]]:
    """``xs × ys`` cut into rectangles of at most ``size`` points (see :func:`split`)."""
    rows = max(1, size // len(ys))
    x_parts = _chunks(xs, math.ceil(len(xs) / rows))
    y_parts = _chunks(ys, math.ceil(len(ys) / size))
    return [(px, py) for px in x_parts for py in y_parts]


def split(spec: SweepSpec, shard_size: int | None = None) -> list[Shard]:
    """Cut the grid into rectangles of at most ``shard_size`` points (None: one shard).

    Whole rows of the x axis go together while they fit (``shard_size // len(y)`` rows per shard,
    balanced); a row longer than ``shard_size`` is cut into balanced pieces of y.
    """
    x, y = spec.axes
    xs, ys = tuple(spec.grid[x]), tuple(spec.grid[y])
    if shard_size is None:
        return [Shard(spec, xs, ys)]
    shard_size = _check_int("shard_size", shard_size, 1)
    return [Shard(spec, px, py) for px, py in _rectangles(xs, ys, shard_size)]


@dataclass(frozen=True)
class ShardReport:
    """What a finished :class:`ShardTask` did: points it measured, points found cached (or
    measured meanwhile by a concurrent run), and its time."""

    computed: int
    cached: int
    seconds: float


#: Called with the number of points a task has just stored (:func:`set_point_hook`).
PointHook = Callable[[int], None]
_point_hook: PointHook | None = None


def set_point_hook(hook: PointHook | None) -> None:
    """Have every :class:`ShardTask` of this process call ``hook(n)`` after storing ``n`` points
    (an executor's progress bar; None: no call)."""
    global _point_hook
    _point_hook = hook


def _batches(shard: Shard, size: int | None) -> list[list[dict[str, float]]]:
    """The shard's points in rectangles of at most ``size`` points (:func:`split`'s cut)."""
    if size is None or size >= len(shard.points()):
        return [shard.points()]
    return [Shard(shard.spec, px, py).points() for px, py in _rectangles(shard.xs, shard.ys, size)]


@dataclass(frozen=True)
class ShardTask:
    """The job of one shard: measure the points the cache lacks and store them.

    Picklable, so any executor can run it; calling it again (a rerun, a Slurm requeue) measures only
    what is still missing, unless ``force`` asks to measure everything again. The shard is measured
    in batches of :func:`batch_size` points, each stored as soon as it ends. A batch measures only
    the points that no other run holds (:class:`~thermocheck.sweep.claims.PointLock`), reduced to
    the smallest rectangle that holds them, in one runner call; points another run holds are
    waited for and taken over if that run ends without storing them.
    """

    shard: Shard
    cache_root: str
    force: bool = False

    def __call__(self) -> ShardReport:
        """Measure and store the missing (or, forced, all) points; say how many of each."""
        start, since = time.perf_counter(), time.time()
        pending = _batches(self.shard, batch_size(self.shard.spec))
        computed = 0
        while pending:
            left = []
            for batch in pending:
                locks = [self._lock(p) for p in batch]
                got = [lock.acquire() for lock in locks]
                try:
                    computed += self._measure([p for p, ok in zip(batch, got, strict=True)
                                               if ok and self._needed(p, since)])
                finally:
                    for lock in locks:
                        lock.release()
                rest = [p for p, ok in zip(batch, got, strict=True) if not ok]
                if rest:
                    left.append(rest)
            pending = left
            if pending:  # every point left is held by another run: wait until one is released
                with self._lock(pending[0][0]):
                    pass
        total = len(self.shard.points())
        return ShardReport(computed, total - computed, time.perf_counter() - start)

    def _lock(self, point: Mapping[str, float]) -> PointLock:
        return PointLock(self.cache_root, config_key(self.shard.spec.config(point)))

    def _needed(self, point: Mapping[str, float], since: float) -> bool:
        """Whether this task must measure ``point``: missing from the cache, or (forced) not
        measured since the task began (by a concurrent forced run)."""
        config = self.shard.spec.config(point)
        cache = ResultsCache(self.cache_root)
        if not self.force:
            return cache.get(config) is None
        path = cache.path(config_key(config))
        return not path.is_file() or path.stat().st_mtime < since

    def _measure(self, todo: Sequence[Mapping[str, float]]) -> int:
        """Measure ``todo`` in one runner call and store every point; return how many."""
        if not todo:
            return 0
        start = time.perf_counter()
        spec, cache = self.shard.spec, ResultsCache(self.cache_root)
        x, y = spec.axes
        xs = np.array(sorted({p[x] for p in todo}))
        ys = np.array(sorted({p[y] for p in todo}))
        workdir = _workdir(self.cache_root, spec, todo)
        if self.force:  # a checkpoint left by an earlier run may come from other code
            shutil.rmtree(workdir, ignore_errors=True)
        extra = {"workdir": workdir} if _takes_workdir(spec.runner) else {}
        states = {_point_key(s.hyperparameters, spec.axes): s
                  for s in spec.runner(spec, xs, ys, **extra)}
        seconds = (time.perf_counter() - start) / max(len(states), 1)
        for point in todo:
            state = states.get(_point_key(point, spec.axes))
            if state is None:
                raise InvalidParameterError(
                    f"substrate {spec.substrate_name!r} returned no state at {dict(point)}"
                )
            cache.put(spec.config(point), state, seconds=seconds)
        shutil.rmtree(workdir, ignore_errors=True)
        if _point_hook is not None:
            _point_hook(len(todo))
        return len(todo)

    def checkpoint(self) -> Any:
        """Submitit's hook on preemption or timeout (``USR2``): requeue this same task.

        Points already stored are not measured again (unless the task is forced), so the
        requeued job continues where the cache stands.
        """
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def missing_points(shard: Shard, cache: ResultsCache) -> list[dict[str, float]]:
    """The points of ``shard`` that ``cache`` has no (readable) state for."""
    return [p for p in shard.points() if cache.get(shard.spec.config(p)) is None]


def _workdir(cache_root: str, spec: SweepSpec, points: Sequence[Mapping[str, float]]) -> Path:
    """``<cache>/work/<hash of the points' configurations>``: one folder per set of points."""
    return Path(cache_root) / "work" / config_key({"points": [spec.config(p) for p in points]})


def _takes_workdir(runner: Runner) -> bool:
    try:
        return "workdir" in inspect.signature(runner).parameters
    except (TypeError, ValueError):  # a builtin or C callable: no signature to read
        return False


def _point_key(point: Mapping[str, float], axes: tuple[str, str]) -> tuple[float, float]:
    return (float(point[axes[0]]), float(point[axes[1]]))
