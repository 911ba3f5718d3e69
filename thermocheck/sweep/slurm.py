"""The ``slurm`` executor: a sweep's shards as one Slurm array job, through submitit.

submitit is an optional extra (``pip install 'thermocheck[slurm]'``), imported only when a sweep
runs here. Each task is checkpointable: on preemption or timeout (``USR2``) submitit calls its
``checkpoint`` and requeues the job, and the requeued job measures only the points the cache still
lacks. Job states come from ``squeue``, which every cluster answers; submitit's own watcher would
need ``sacct``, which needs Slurm's accounting database.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from thermocheck.errors import MissingDependencyError
from thermocheck.sweep.executors import ShardOutcome
from thermocheck.sweep.progress import Progress
from thermocheck.sweep.shards import ShardTask

__all__ = ["SlurmExecutor", "SlurmOptions", "import_submitit"]


@dataclass(frozen=True)
class SlurmOptions:
    """Resources of each shard's Slurm job.

    Parameters
    ----------
    partition
        Slurm partition (None: the cluster's default).
    time_min
        Time limit per job, minutes. submitit signals ``USR2`` 90 s before it, and the job is
        checkpointed and requeued (at most ``max_requeues`` times on timeout).
    gpus_per_job, cpus_per_job, mem_gb
        Resources per job (0 GPUs: a CPU job; None memory: the partition's default).
    array_parallelism
        How many of the sweep's jobs may run at once.
    sbatch
        Further ``#SBATCH`` flags, e.g. ``{"account": "proj", "qos": "high"}``.
    folder
        Where submitit keeps job scripts, pickles and logs; None: ``<cache>/slurm``. Like the cache,
        it must be on a file system the nodes share.
    poll_s
        Seconds between queue checks.
    max_requeues
        Requeues allowed after timeouts (submitit's ``max_num_timeout``).
    """

    partition: str | None = None
    time_min: int = 60
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_gb: float | None = None
    array_parallelism: int = 64
    sbatch: Mapping[str, str] = field(default_factory=dict)
    folder: str | None = None
    poll_s: float = 5.0
    max_requeues: int = 3
    job_name: str = "thermocheck"


_PENDING = {"PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESIZING",
            "SUSPENDED", "PREEMPTED"}
_RUNNING = {"RUNNING", "COMPLETING", "STAGE_OUT", "SIGNALING"}
#: Seconds a job may be absent from the queue, with no result file, before it counts as failed
#: (a result written on another node may take a moment to appear on a shared file system).
_VANISH_GRACE_S = 30.0


def import_submitit() -> Any:
    """The ``submitit`` module; :class:`~thermocheck.errors.MissingDependencyError` (a usage
    error, found before any work) when it is not installed."""
    try:
        import submitit
    except ImportError:
        raise MissingDependencyError(
            "--executor slurm needs submitit, which is not installed: pip install "
            "'thermocheck[slurm]' (or use --executor local)"
        ) from None
    return submitit


def _queue_states(job_ids: Sequence[str]) -> dict[str, str] | None:
    """``{job id: Slurm state}`` from squeue, finished jobs included while Slurm keeps them
    (``MinJobAge``); None when squeue does not answer (a busy controller, say).

    Array tasks come one per line; tasks that never started (cancelled while pending, say) take
    the state of their array's own record.
    """
    arrays = sorted({j.split("_")[0] for j in job_ids})
    try:
        out = subprocess.run(["squeue", "--noheader", "--array", "--states=all", "--format=%i|%T",
                              "--jobs", ",".join(arrays)],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    listed = dict(line.split("|", 1) for line in out.split() if "|" in line)
    states = {j: listed.get(j) or listed.get(j.split("_")[0]) for j in job_ids}
    return {j: s for j, s in states.items() if s}


@dataclass(frozen=True)
class SlurmExecutor:
    """Shard tasks as one Slurm array job, through submitit.

    Parameters
    ----------
    options
        Resources and limits of each job.
    """

    options: SlurmOptions = field(default_factory=SlurmOptions)
    name: str = "slurm"

    def _executor(self, folder: Path) -> Any:
        submitit = import_submitit()
        opts = self.options
        ex = submitit.SlurmExecutor(folder=Path(opts.folder or folder) / "%j",
                                    max_num_timeout=opts.max_requeues)
        # numba and torch would start a thread per CPU of the node, not per CPU of the job.
        threads = [f"export {var}=${{SLURM_CPUS_PER_TASK:-1}}"
                   for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")]
        params: dict[str, Any] = {"time": opts.time_min, "cpus_per_task": opts.cpus_per_job,
                                  "array_parallelism": opts.array_parallelism,
                                  "job_name": opts.job_name, "setup": threads,
                                  "additional_parameters": dict(opts.sbatch)}
        if opts.partition:
            params["partition"] = opts.partition
        if opts.gpus_per_job:
            params["gpus_per_node"] = opts.gpus_per_job
        if opts.mem_gb is not None:
            params["mem"] = f"{int(opts.mem_gb * 1024)}M"
        ex.update_parameters(**params)
        return ex

    def run(self, tasks: Sequence[ShardTask], progress: Progress) -> list[ShardOutcome]:
        ex = self._executor(Path(tasks[0].cache_root) / "slurm")
        with ex.batch():
            jobs = [ex.submit(task) for task in tasks]
        outcomes: dict[int, ShardOutcome] = {}
        vanished: dict[int, float] = {}
        try:
            while len(outcomes) < len(jobs):
                states = _queue_states([j.job_id for j in jobs])
                for i, job in enumerate(jobs):
                    if i in outcomes or states is None:  # None: ask again at the next poll
                        continue
                    outcome = self._outcome(job, states.get(job.job_id), vanished, i)
                    if outcome is not None:
                        outcomes[i] = outcome
                        progress.set(i, outcome.status)
                    else:
                        progress.set(i, "running" if states.get(job.job_id) in _RUNNING
                                     else "pending")
                if len(outcomes) < len(jobs):
                    time.sleep(self.options.poll_s)
        except BaseException:
            for i, job in enumerate(jobs):
                if i not in outcomes:
                    job.cancel(check=False)
            raise
        return [outcomes[i] for i in range(len(jobs))]

    @staticmethod
    def _outcome(
        job: Any, state: str | None, vanished: dict[int, float], i: int
    ) -> ShardOutcome | None:
        """The job's outcome once it has one; None while it is queued or running.

        A queued or running job has no outcome yet even when a result file exists: a job
        requeued on preemption may have left one behind (a signal during an import can turn
        submitit's exit into an error), and its next run will replace it.
        """
        if state in _PENDING or state in _RUNNING:
            vanished.pop(i, None)
            return None
        if job.paths.result_pickle.exists():
            try:
                return ShardOutcome("done", job.result())
            except Exception as err:  # the task raised, or was not requeued
                return ShardOutcome("failed", error=f"job {job.job_id}: {err}")
        if state not in (None, "COMPLETED"):
            return ShardOutcome("failed", error=f"job {job.job_id} ended {state} without a "
                                                f"result; logs: {job.paths.stdout}")
        # Finished or gone from the queue: its result may still be on its way.
        first = vanished.setdefault(i, time.monotonic())
        if time.monotonic() - first < _VANISH_GRACE_S:
            return None
        return ShardOutcome("failed", error=f"job {job.job_id} ended ({state or 'left the queue'})"
                                            f" without a result; logs: {job.paths.stdout}")
