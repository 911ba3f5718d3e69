"""Run sweeps: split grids into shards, run the shards the cache lacks, assemble from the cache."""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, TextIO

from thermocheck.errors import check_choice
from thermocheck.sweep.assembly import SweepResult, assemble
from thermocheck.sweep.cache import ResultsCache
from thermocheck.sweep.executors import Executor, LocalExecutor
from thermocheck.sweep.progress import Progress
from thermocheck.sweep.shards import Runner, ShardTask, SweepSpec, missing_points, split
from thermocheck.sweep.slurm import SlurmExecutor, import_submitit

__all__ = ["failures", "run_sweep", "run_sweeps"]


def _executor(executor: str | Executor) -> Executor:
    if isinstance(executor, str):
        name = check_choice("executor", executor, ("local", "slurm"))
        return LocalExecutor() if name == "local" else SlurmExecutor()
    return executor


def _preflight(executor: Executor, store: ResultsCache) -> None:
    """Usage errors found before any work: a cache folder that cannot take files
    (:class:`~thermocheck.errors.InvalidParameterError`), an executor whose optional dependency is
    missing (:class:`~thermocheck.errors.MissingDependencyError`)."""
    store.check_writable()
    if isinstance(executor, SlurmExecutor):
        import_submitit()


def _parallelism(executor: Executor) -> int:
    if isinstance(executor, LocalExecutor):
        return executor.default_workers()
    if isinstance(executor, SlurmExecutor):
        return executor.options.array_parallelism
    return 1


def run_sweeps(
    specs: Sequence[SweepSpec],
    *,
    executor: str | Executor = "local",
    cache: ResultsCache | str | os.PathLike[str] | None = None,
    force: bool = False,
    shard_size: int | None = None,
    progress: bool | TextIO = True,
) -> list[SweepResult]:
    """Measure every point of several grids that the cache lacks, then read them all back.

    All grids' shards go to the executor together (one Slurm array job for the lot).

    Parameters
    ----------
    specs
        The grids to sweep.
    executor
        ``"local"`` (default), ``"slurm"``, or a configured
        :class:`~thermocheck.sweep.executors.LocalExecutor` /
        :class:`~thermocheck.sweep.slurm.SlurmExecutor`.
    cache
        The results cache or its folder (None: ``cache.default_cache_dir()``).
    force
        Measure every point again, replacing what the cache holds.
    shard_size
        Most points per shard. None: each grid is cut into as many shards as the executor runs at
        once (local workers, or Slurm's array parallelism).
    progress
        A progress bar of the points on standard error (True), nowhere (False), or on the given
        stream; not on a terminal, a line at the start and one at the end instead of the bar.

    Returns
    -------
    list of SweepResult
        One per spec, assembled from the cache: the finished states, the points still missing
        (a shard failed or was cancelled), the failed shards' errors, and how many points this
        run measured. A rerun measures only the missing points; that is how a cancelled or
        killed sweep resumes (each batch of points is stored as it ends). Concurrent runs on one
        cache share the work: a point another run is measuring is waited for, not measured again.

    Raises
    ------
    InvalidParameterError, MissingDependencyError
        Before any work: the cache folder cannot take files, or the executor's optional
        dependency (submitit for Slurm) is not installed.

    Notes
    -----
    A failed or cancelled shard never raises here. An interrupt (Ctrl-C) does: local shards in
    flight finish first (their points reach the cache), Slurm jobs not yet finished are cancelled.
    """
    ex = _executor(executor)
    stream = sys.stderr if progress is True else (progress or None)
    store = cache if isinstance(cache, ResultsCache) else ResultsCache(cache)
    _preflight(ex, store)
    tasks: list[ShardTask] = []
    owners: list[int] = []
    todos: list[int] = []
    cached = total = 0
    for n, spec in enumerate(specs):
        points = len(spec.points())
        total += points
        size = shard_size or math.ceil(points / _parallelism(ex))
        for shard in split(spec, size):
            todo = len(shard.points()) if force else len(missing_points(shard, store))
            cached += len(shard.points()) - todo
            if todo:
                tasks.append(ShardTask(shard, str(store.root), force))
                owners.append(n)
                todos.append(todo)
    if stream is not None:
        print(f"sweep: {len(specs)} grid(s), {total} points, {cached} cached in {store.root}; "
              f"{total - cached} to measure in {len(tasks)} shard(s) on {ex.name}",
              file=stream, flush=True)
    outcomes = []
    if tasks:
        with Progress(todos, ex.name, stream) as bar:
            outcomes = ex.run(tasks, bar)
    errors: list[list[str]] = [[] for _ in specs]
    measured = [0 for _ in specs]
    for owner, outcome in zip(owners, outcomes, strict=True):
        measured[owner] += outcome.report.computed if outcome.report is not None else 0
        if outcome.status == "failed":
            errors[owner].append(outcome.error)
            if stream is not None:
                last = outcome.error.strip().splitlines()[-1:] or ["(no message)"]
                print(f"sweep: a shard of {specs[owner].describe()} failed: {last[0]}",
                      file=stream, flush=True)
    return [replace(assemble(spec, store, tuple(errs)), measured=count)
            for spec, errs, count in zip(specs, errors, measured, strict=True)]


def failures(sweeps: Sequence[SweepResult]) -> list[str]:
    """Every shard failure of ``sweeps`` (a crashed worker, a job that vanished), each prefixed
    with the grid it belongs to: the environment errors of the run."""
    return [f"a shard of {done.spec.describe()} failed: {err}" for done in sweeps
            for err in done.errors]


def run_sweep(
    protocol: str,
    *,
    d: int,
    grid: Mapping[str, Sequence[float]],
    iterations: int,
    seed: int,
    substrate: str | Runner = "isotropic",
    model: str | None = None,
    dataset: str | None = None,
    options: Mapping[str, Any] | None = None,
    **run_options: Any,
) -> SweepResult:
    """Sweep one grid: :class:`~thermocheck.sweep.shards.SweepSpec` from the first arguments,
    then :func:`run_sweeps` with ``run_options`` (``executor``, ``cache``, ``force``,
    ``shard_size``, ``progress``).

    Examples
    --------
    ::

        result = run_sweep("fixed_lr", d=3, grid={"lr": [0.05, 0.1], "wd": [0.01, 0.02]},
                           iterations=20_000, seed=0, options={"entropy_logs": 0},
                           cache="sweep-cache")
        result.check(laws.ideal_gas).verdict    # 'passed'; run again: read from the cache
    """
    spec = SweepSpec(protocol, d, grid, iterations, seed, substrate, model, dataset,
                     dict(options or {}))
    return run_sweeps([spec], **run_options)[0]
