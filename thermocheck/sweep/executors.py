"""Executors: where a sweep's shard tasks run.

``local`` (:class:`LocalExecutor`) runs them on this machine, one worker per visible GPU (each
worker sees only its own GPU and gets an equal share of the CPUs). Without GPUs the default is one
worker, in this process, holding the whole CPU budget: the simulator's kernel is already parallel
over grid points (numba ``prange``) and torch uses every core, so more processes would only split
the same CPUs and pay their start-up; ``workers=N`` splits the budget between N processes anyway.
It needs nothing beyond thermocheck's own dependencies, so it works where the optional ``submitit``
is absent (the GPU machines, say).
submitit's own LocalExecutor was not chosen: it is meant for debugging Slurm jobs, pickles every
job to files, starts a fresh interpreter per job and polls for results, where a process pool hands
futures over in memory and keeps each worker's imports and compiled kernels warm across shards.

``slurm`` (:class:`~thermocheck.sweep.slurm.SlurmExecutor`) submits the shards as a Slurm array
job through submitit.

Every executor reports each shard's status to a :class:`~thermocheck.sweep.progress.Progress` and
returns one :class:`ShardOutcome` per task, in order; a failed shard never raises. Local executors
also report each batch of points as it reaches the cache (from worker processes through a queue).
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
import multiprocessing
import os
import queue
import shutil
import subprocess
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from thermocheck.errors import InvalidParameterError
from thermocheck.sweep.progress import Progress, Status
from thermocheck.sweep.shards import ShardReport, ShardTask, cpu_budget, set_point_hook

__all__ = ["Executor", "LocalExecutor", "ShardOutcome", "visible_gpus"]

#: Seconds between the pool's looks at the workers' stored points.
_POLL_S = 0.5


@dataclass(frozen=True)
class ShardOutcome:
    """How one shard task ended: ``done`` with its report, or ``failed`` with the error's text."""

    status: Status
    report: ShardReport | None = None
    error: str = ""


class Executor(Protocol):
    """Runs shard tasks, keeps ``progress`` current, and returns their outcomes in order."""

    @property
    def name(self) -> str:
        """How progress lines name the executor."""

    def run(self, tasks: Sequence[ShardTask], progress: Progress) -> list[ShardOutcome]: ...


# -- local --------------------------------------------------------------------------------------


def visible_gpus() -> list[str]:
    """The GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``.

    Found without importing torch (a second or two, and none of the executor's business).
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [d.strip() for d in env.split(",") if d.strip()]
        return [] if ids[:1] == ["-1"] else ids
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                             timeout=20).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU")]


#: A worker's queue to the parent's progress bar: ``(task index, points stored)``.
_stored_queue: Any = None


def _init_worker(devices: Any, threads: int, stored: Any) -> None:
    """Pin a fresh worker to one GPU (when there are some) and to its share of the CPUs, and give
    it the queue of stored points.

    Runs before the worker imports torch or numba, which read these variables once.
    """
    global _stored_queue
    if devices is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = devices.get()
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = str(threads)
    _stored_queue = stored


def _call(task: ShardTask, index: int = 0) -> ShardOutcome:
    """Run ``task``; in a worker process, its stored points go to the parent's queue."""
    if _stored_queue is not None:
        set_point_hook(lambda n: _stored_queue.put((index, n)))
    try:
        return ShardOutcome("done", task())
    except Exception:  # a failed shard is reported, the others go on
        return ShardOutcome("failed", error=traceback.format_exc())
    finally:
        set_point_hook(None)


@dataclass(frozen=True)
class LocalExecutor:
    """Shard tasks on this machine.

    Parameters
    ----------
    workers
        Worker processes. None: one per visible GPU, else one. With one worker (or one task) the
        tasks run in this process, one after another, with every CPU of the budget.
    """

    workers: int | None = None
    name: str = "local"

    def __post_init__(self) -> None:
        if self.workers is not None and (isinstance(self.workers, bool) or self.workers < 1):
            raise InvalidParameterError(f"workers={self.workers!r} is invalid: it must be >= 1")

    def default_workers(self) -> int:
        """``workers`` if set, else the number of visible GPUs, else 1."""
        return self.workers or len(visible_gpus()) or 1

    def run(self, tasks: Sequence[ShardTask], progress: Progress) -> list[ShardOutcome]:
        workers = min(self.default_workers(), len(tasks))
        if workers <= 1:
            outcomes = []
            for i, task in enumerate(tasks):
                progress.set(i, "running")
                set_point_hook(functools.partial(progress.advance, i))
                outcomes.append(_call(task))
                progress.set(i, outcomes[-1].status)
            return outcomes
        return self._pool(tasks, workers, progress)

    def _pool(
        self, tasks: Sequence[ShardTask], workers: int, progress: Progress
    ) -> list[ShardOutcome]:
        # spawn, not fork: a forked child inherits CUDA and thread-pool state it cannot use.
        ctx = multiprocessing.get_context("spawn")
        gpus = visible_gpus()
        devices = None
        if len(gpus) >= workers:  # one GPU each; more workers than GPUs share them all
            devices = ctx.Queue()
            for gpu in gpus[:workers]:
                devices.put(gpu)
        threads = max(1, cpu_budget() // workers)
        stored = ctx.Queue()
        outcomes: dict[int, ShardOutcome] = {}
        waiting = list(range(len(tasks)))[::-1]
        running: dict[cf.Future[ShardOutcome], int] = {}
        # Hand a worker one task at a time, so that "running" means running; on an interrupt the
        # tasks in flight finish (their points reach the cache) and no other starts.
        with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                    initargs=(devices, threads, stored)) as pool:
            while waiting or running:
                while waiting and len(running) < workers:
                    i = waiting.pop()
                    try:
                        running[pool.submit(_call, tasks[i], i)] = i
                    except cf.process.BrokenProcessPool as err:  # a worker died (killed, OOM)
                        outcomes[i] = ShardOutcome("failed", error=f"worker pool broken: {err}")
                        progress.set(i, "failed")
                        continue
                    progress.set(i, "running")
                finished, _ = cf.wait(running, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
                _drain(stored, progress)
                for fut in finished:
                    i = running.pop(fut)
                    outcomes[i] = _pool_outcome(fut)
                    progress.set(i, outcomes[i].status)
        return [outcomes[i] for i in range(len(tasks))]


def _drain(stored: Any, progress: Progress) -> None:
    """Advance ``progress`` by the points the workers have reported stored."""
    while True:
        try:
            index, n = stored.get_nowait()
        except queue.Empty:
            return
        progress.advance(index, n)


def _pool_outcome(fut: cf.Future[ShardOutcome]) -> ShardOutcome:
    err = fut.exception()
    if err is None:
        return fut.result()
    return ShardOutcome("failed", error=f"worker process failed: {type(err).__name__}: {err}")
