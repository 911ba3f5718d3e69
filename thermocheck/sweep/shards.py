"""A sweep's grid, its shards, and the job that measures one shard.

A :class:`SweepSpec` is one protocol and ``d`` on the outer product of two hyperparameter axes
(``theory.AXES``). :func:`split` cuts the grid into :class:`Shard` rectangles of at most
``shard_size`` points: a shard is itself an outer product, so the batched simulator trains it in
one call. A :class:`ShardTask` is what an executor runs: it measures the shard's points that the
cache lacks (or all of them, when forced) and writes each to the cache. Each point has its own
random stream keyed by (seed, point), so its numbers do not depend on the shard it ran in: any
split, executor or resume gives the same states.
"""

from __future__ import annotations

import inspect
import math
import shutil
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_dimension, check_positive
from thermocheck.states import State
from thermocheck.sweep.cache import MEASUREMENT_VERSION, ResultsCache, config_key

__all__ = [
    "Runner",
    "Shard", "ShardReport",
    "ShardTask",
    "SweepSpec",
    "missing_points",
    "split",
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


def _train_networks(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray,
                    workdir: Path | None = None) -> Iterable[State]:
    """The stacked network trainer on ``xs × ys`` (:func:`thermocheck.nets.substrate.train_shard`);
    ``spec.options`` are :class:`~thermocheck.nets.GridConfig` fields; it checkpoints in
    ``workdir``."""
    from thermocheck.nets.substrate import train_shard

    return train_shard(spec, xs, ys, workdir=workdir)


#: Built-in substrates by name. A user's own runner may be passed instead of a name.
SUBSTRATES: dict[str, Runner] = {"isotropic": _simulate, "net": _train_networks}


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
        if substrate not in SUBSTRATES:
            raise InvalidParameterError(
                f"substrate={substrate!r} is invalid: choose one of {tuple(SUBSTRATES)} or pass a "
                "runner function"
            )
        return substrate
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
        build its spec with :func:`thermocheck.nets.substrate.sweep_spec`) or a :data:`Runner`,
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
        return SUBSTRATES[self.substrate] if isinstance(self.substrate, str) else self.substrate

    def points(self) -> list[dict[str, float]]:
        """Every grid point as ``{x_name: x, y_name: y}``, x-major."""
        x, y = self.axes
        return [{x: a, y: b} for a in self.grid[x] for b in self.grid[y]]

    def config(self, point: Mapping[str, float]) -> dict[str, Any]:
        """The configuration of one point: what its cache key hashes (see ``cache.config_key``)."""
        return {
            "measurement_version": MEASUREMENT_VERSION,
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
    rows = max(1, shard_size // len(ys))
    x_parts = _chunks(xs, math.ceil(len(xs) / rows))
    y_parts = _chunks(ys, math.ceil(len(ys) / shard_size))
    return [Shard(spec, px, py) for px in x_parts for py in y_parts]


@dataclass(frozen=True)
class ShardReport:
    """What a finished :class:`ShardTask` did: points measured and found cached, and its time."""

    computed: int
    cached: int
    seconds: float


@dataclass(frozen=True)
class ShardTask:
    """The job of one shard: measure the points the cache lacks and store them.

    Picklable, so any executor can run it; calling it again (a rerun, a Slurm requeue) measures only
    what is still missing, unless ``force`` asks to measure everything again. The points to measure
    are reduced to the smallest rectangle that holds them, which the runner measures in one call.
    """

    shard: Shard
    cache_root: str
    force: bool = False

    def __call__(self) -> ShardReport:
        """Measure and store the missing (or, forced, all) points; say how many of each."""
        start = time.perf_counter()
        spec, cache = self.shard.spec, ResultsCache(self.cache_root)
        todo = self.shard.points() if self.force else missing_points(self.shard, cache)
        if todo:
            x, y = spec.axes
            xs = np.array(sorted({p[x] for p in todo}))
            ys = np.array(sorted({p[y] for p in todo}))
            workdir = _workdir(self.cache_root, spec, todo)
            if self.force:  # a checkpoint left by an earlier run may come from other code
                shutil.rmtree(workdir, ignore_errors=True)
            extra = {"workdir": workdir} if _takes_workdir(spec.runner) else {}
            states = {_point_key(s.hyperparameters, spec.axes): s
                      for s in spec.runner(spec, xs, ys, **extra)}
            seconds = (time.perf_counter() - start) / len(states)
            for point in todo:
                state = states.get(_point_key(point, spec.axes))
                if state is None:
                    raise InvalidParameterError(
                        f"substrate {spec.substrate_name!r} returned no state at {point}"
                    )
                cache.put(spec.config(point), state, seconds=seconds)
            shutil.rmtree(workdir, ignore_errors=True)
        return ShardReport(len(todo), len(self.shard.points()) - len(todo),
                           time.perf_counter() - start)

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
