"""How the slurm executor reads the queue and decides a job's outcome (no cluster needed)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest

from thermocheck.sweep import slurm
from thermocheck.sweep.shards import ShardReport

pytestmark = pytest.mark.fast


Squeue = Callable[..., Path]


@pytest.fixture
def squeue(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Squeue:
    """Put a fake ``squeue`` first on PATH: call it with the text to print and its exit code;
    it returns the file where the fake writes its arguments."""

    def install(output: str, code: int = 0) -> Path:
        script = tmp_path / "squeue"
        script.write_text(f"#!/bin/sh\necho \"$@\" > {tmp_path}/argv\nprintf '{output}'\n"
                          f"exit {code}\n")
        script.chmod(0o755)
        monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
        return tmp_path / "argv"

    return install


def test_queue_states_per_task_with_the_array_record_for_unstarted_tasks(squeue: Squeue) -> None:
    argv = squeue("5_0|COMPLETED\\n5_1|RUNNING\\n5|CANCELLED\\n7|PENDING\\n")
    states = slurm._queue_states(["5_0", "5_1", "5_2", "7", "9_0"])
    assert states == {"5_0": "COMPLETED", "5_1": "RUNNING", "5_2": "CANCELLED", "7": "PENDING"}
    assert "--jobs 5,7,9" in argv.read_text() and "--states=all" in argv.read_text()


def test_queue_states_is_none_when_squeue_fails(squeue: Squeue) -> None:
    squeue("slurm_load_jobs error: Socket timed out\\n", code=1)
    assert slurm._queue_states(["5_0"]) is None


def _job(tmp_path: Path, result: object = None) -> SimpleNamespace:
    pickle = tmp_path / "5_0_result.pkl"

    def get() -> object:
        if isinstance(result, Exception):
            raise result
        return result

    if result is not None:
        pickle.write_bytes(b"")
    return SimpleNamespace(job_id="5_0", result=get,
                           paths=SimpleNamespace(result_pickle=pickle, stdout=tmp_path / "log"))


REPORT = ShardReport(computed=2, cached=0, seconds=1.0)


@pytest.mark.parametrize("state", ["PENDING", "REQUEUED", "RUNNING", "COMPLETING"])
def test_a_queued_or_running_job_has_no_outcome_even_with_a_result_file(
    tmp_path: Path, state: str
) -> None:
    """A requeued job's earlier run may have left a result behind; its next run replaces it."""
    job = _job(tmp_path, RuntimeError("stale"))
    assert slurm.SlurmExecutor._outcome(job, state, {}, 0) is None


@pytest.mark.parametrize("state", ["COMPLETED", None])
def test_a_finished_job_gives_its_result(tmp_path: Path, state: str | None) -> None:
    outcome = slurm.SlurmExecutor._outcome(_job(tmp_path, REPORT), state, {}, 0)
    assert outcome == slurm.ShardOutcome("done", REPORT)


def test_a_job_that_raised_is_a_failed_shard(tmp_path: Path) -> None:
    outcome = slurm.SlurmExecutor._outcome(_job(tmp_path, RuntimeError("boom")), "COMPLETED", {}, 0)
    assert outcome is not None and outcome.status == "failed" and "boom" in outcome.error


def test_a_cancelled_job_without_result_failed(tmp_path: Path) -> None:
    outcome = slurm.SlurmExecutor._outcome(_job(tmp_path), "CANCELLED", {}, 0)
    assert outcome is not None and outcome.status == "failed"
    assert "ended CANCELLED without a result" in outcome.error


def test_a_job_gone_without_result_fails_after_a_grace_period(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    vanished: dict[int, float] = {}
    assert slurm.SlurmExecutor._outcome(_job(tmp_path), None, vanished, 0) is None
    assert 0 in vanished
    monkeypatch.setattr(slurm, "_VANISH_GRACE_S", 0.0)
    outcome = slurm.SlurmExecutor._outcome(_job(tmp_path), None, vanished, 0)
    assert outcome is not None and "left the queue" in outcome.error
