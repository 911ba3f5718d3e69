"""Sweeps on a real Slurm cluster: an array job, a cancelled and resumed sweep, a requeue.

Skipped with a reason where no cluster answers (the ``slurm`` marker; ``.ci/slurm-up.sh`` starts a
single-node one as root). The cache lives in pytest's ``tmp_path``, which the jobs must see: true on
a single-node cluster. Each test compares the Slurm run with an uninterrupted in-process run of the
same grid: the same states, bit for bit, and so the same verdicts.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermocheck import laws
from thermocheck.simulator import simulate
from thermocheck.states import StateGrid
from thermocheck.sweep import (
    LocalExecutor,
    ResultsCache,
    SlurmExecutor,
    SlurmOptions,
    SweepResult,
    SweepSpec,
    run_sweeps,
)

pytestmark = pytest.mark.slurm

pytest.importorskip("submitit", reason="the slurm executor needs submitit (pip install submitit)")

#: A tiny simulator grid: 3 × 2 points, split below into 3 shards of 2 (a second or two each).
SPEC = SweepSpec("fixed_lr", d=3, grid={"lr": (0.05, 0.1, 0.2), "wd": (0.01, 0.02)},
                 iterations=20_000, seed=11,
                 options={"entropy_logs": 2, "entropy_every": 2000, "queue_size": 200,
                          "queue_every": 10})
#: How long to wait for a job state. A wait ends as soon as its condition holds, so the limit only
#: matters on failure (the whole module takes about 25 s on an idle 2-core machine).
TIMEOUT_S = 120


def gated_simulator(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> StateGrid:
    """The simulator, once the file ``options["gate"]`` exists: a job that is surely mid-run
    (it has touched ``<gate>.started``) until the test opens the gate."""
    gate = Path(spec.options["gate"])
    gate.with_suffix(".started").touch()
    deadline = time.monotonic() + TIMEOUT_S  # never outlive a test that gave up
    while not gate.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.1)
    options = {k: v for k, v in spec.options.items() if k != "gate"}
    x, y = spec.axes
    return simulate(spec.protocol, d=spec.d, grid={x: xs, y: ys}, iterations=spec.iterations,
                    seed=spec.seed, **options).grid


@pytest.fixture
def slurm_executor() -> Iterator[Callable[..., SlurmExecutor]]:
    """Executors whose jobs carry one fresh name, cancelled after the test whatever its outcome."""
    name = f"tc-test-{uuid.uuid4().hex[:8]}"

    def make(**options: Any) -> SlurmExecutor:
        # 30 minutes: submitit calls a USR2 within min(80 %, limit − 10 min) of the start a
        # preemption, which is what these tests send.
        return SlurmExecutor(SlurmOptions(job_name=name, poll_s=0.5, time_min=30, **options))

    yield make
    subprocess.run(["scancel", f"--name={name}"], check=False)


def _local(spec: SweepSpec, cache: Path) -> SweepResult:
    return run_sweeps([spec], executor=LocalExecutor(1), cache=cache, progress=False)[0]


def _jobs(name: str) -> dict[str, str]:
    """``{job id: state}`` of the jobs called ``name`` that are still queued or running."""
    out = subprocess.run(["squeue", "--noheader", "--array", f"--name={name}", "--format=%i %T"],
                         capture_output=True, text=True, check=True).stdout
    return dict(line.split() for line in out.splitlines())


def _wait_for(condition: Callable[[], object], what: str, timeout: float = TIMEOUT_S) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class _Sweep(threading.Thread):
    """A sweep in shards of 2, running in the background as a user's command would while the
    test acts on its jobs."""

    def __init__(self, spec: SweepSpec, executor: SlurmExecutor, cache: Path) -> None:
        super().__init__(daemon=True)
        self.args_ = (spec, executor, cache)
        self.result: SweepResult | None = None
        self.start()

    def run(self) -> None:
        spec, executor, cache = self.args_
        self.result = run_sweeps([spec], executor=executor, cache=cache, shard_size=2,
                                 progress=False)[0]

    def outcome(self) -> SweepResult:
        self.join(TIMEOUT_S)
        assert self.result is not None, "the sweep did not return"
        return self.result


def _same(a: SweepResult, b: SweepResult) -> None:
    __tracebackhide__ = True
    assert a.complete and b.complete, (a.missing, b.missing, a.errors, b.errors)
    assert list(a.grid) == list(b.grid)  # every measured float, bit for bit
    assert a.to_dict() == b.to_dict()
    assert [a.check(law).to_dict() for law in laws.ALL.values()] \
        == [b.check(law).to_dict() for law in laws.ALL.values()]  # the same verdicts and numbers


def test_array_job_gives_the_local_results(
    tmp_path: Path, slurm_executor: Callable[..., SlurmExecutor]
) -> None:
    slurm = run_sweeps([SPEC], executor=slurm_executor(), cache=tmp_path / "slurm", shard_size=2,
                       progress=False)[0]
    assert not slurm.errors
    tasks = [p.name for p in (tmp_path / "slurm" / "slurm").glob("*_*") if p.is_dir()]
    assert sorted(t.split("_")[1] for t in tasks) == ["0", "1", "2"]  # one array job, 3 tasks
    _same(slurm, _local(SPEC, tmp_path / "local"))


def test_network_shards_on_slurm_give_the_local_results(
    tmp_path: Path, slurm_executor: Callable[..., SlurmExecutor]
) -> None:
    """The ``net`` substrate as array tasks (2 grid points each): the states of the same shards
    trained locally, bit for bit."""
    from thermocheck.nets import GridConfig
    from thermocheck.nets.substrate import sweep_spec

    spec = sweep_spec(GridConfig(x=(0.3, 1.0), y=(0.01, 0.1), width=2, dataset="synthetic",
                                 batch_size=8, iters=60, every=5, queue_size=10, queue_every=5,
                                 noise_every=10, noise_samples=4, threads=1))
    slurm = run_sweeps([spec], executor=slurm_executor(), cache=tmp_path / "slurm", shard_size=2,
                       progress=False)[0]
    assert not slurm.errors
    _same(slurm, run_sweeps([spec], cache=tmp_path / "local", shard_size=2, progress=False)[0])


def test_cancelled_sweep_resumes_from_the_cache(
    tmp_path: Path, slurm_executor: Callable[..., SlurmExecutor]
) -> None:
    """scancel mid-run, run the same sweep again: it measures only what is missing."""
    cache = ResultsCache(tmp_path / "slurm")
    executor = slurm_executor(array_parallelism=1)  # shards one after another: cancel between them
    sweep = _Sweep(SPEC, executor, cache.root)
    _wait_for(lambda: len(cache) >= 2, "the first shard's points")
    subprocess.run(["scancel", f"--name={executor.options.job_name}"], check=True)
    cancelled = sweep.outcome()
    assert cancelled.missing and any("CANCELLED" in e for e in cancelled.errors), cancelled.errors
    kept = {key: cache.path(key).stat().st_mtime_ns for key in cache.keys()}

    resumed = run_sweeps([SPEC], executor=executor, cache=cache, shard_size=2, progress=False)[0]
    assert all(cache.path(key).stat().st_mtime_ns == t for key, t in kept.items())
    _same(resumed, _local(SPEC, tmp_path / "local"))


def test_preempted_job_is_checkpointed_requeued_and_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, slurm_executor: Callable[..., SlurmExecutor]
) -> None:
    """USR2 (preemption or the time limit) makes submitit checkpoint and requeue the shard."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent),
                                                      os.environ.get("PYTHONPATH", "")]))
    gate = tmp_path / "gate"
    spec = replace(SPEC, grid={"lr": (0.05,), "wd": (0.01, 0.02)},  # one shard, one job
                   substrate=gated_simulator, options={**SPEC.options, "gate": str(gate)})
    executor = slurm_executor()
    sweep = _Sweep(spec, executor, tmp_path / "slurm")
    _wait_for(gate.with_suffix(".started").exists, "the job to start measuring")
    (job_id,) = _jobs(executor.options.job_name)
    # What Slurm does on preemption: SIGTERM (submitit ignores it), then USR2. scancel returns
    # before delivery, so wait until the job has seen the TERM: a TERM that lands after the USR2
    # handler has started `scontrol requeue` kills that child, and the job is never requeued.
    log = tmp_path / "slurm" / "slurm" / job_id / f"{job_id}_0_log.out"
    subprocess.run(["scancel", "--signal=TERM", job_id], check=True)
    _wait_for(lambda: log.is_file() and "Bypassing signal SIGTERM" in log.read_text(),
              "the job to ignore SIGTERM")
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    _wait_for(lambda: {"Restarts=1", "JobState=PENDING"} <= set(_show(job_id).split()),
              "the requeued job")
    # Slurm holds a requeued job back for two minutes (BeginTime); let it start sooner, but not
    # before the node has dropped the old run's credential (else: "Job credential revoked").
    time.sleep(3)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)
    gate.touch()
    result = sweep.outcome()
    assert not result.errors
    text = log.read_text()
    assert "this job is preempted" in text and "Calling checkpoint method" in text, text
    assert text.count("Starting with JobEnvironment") == 2, text
    assert "Job completed successfully" in text, text
    _same(result, _local(spec, tmp_path / "local"))


def _show(job_id: str) -> str:
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                          text=True).stdout
