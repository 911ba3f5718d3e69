"""Running sweeps locally: skip on rerun, --force, failed shards, executors agree bit for bit."""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermocheck.errors import InvalidParameterError, ThermocheckError
from thermocheck.states import StateGrid
from thermocheck.sweep import (
    LocalExecutor,
    ResultsCache,
    SlurmExecutor,
    SlurmOptions,
    SweepResult,
    SweepSpec,
    add_sweep_arguments,
    run_sweep,
    run_sweeps,
    sweep_options,
)
from thermocheck.sweep.progress import Progress
from thermocheck.sweep.shards import ShardTask, register_substrate, split
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast

GRID = {"lr": (0.01, 0.02, 0.04, 0.08), "wd": (1e-3, 1e-2, 3e-2)}
CALLS: list[tuple[tuple[float, ...], tuple[float, ...]]] = []


def fake_runner(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> StateGrid:
    """A stand-in substrate with the simulator's contract (each point's noise comes from its own
    stream, keyed by seed and point): the theory's states with 1 % noise."""
    CALLS.append((tuple(xs), tuple(ys)))
    return synthetic_grid(spec.protocol, spec.d, grid=axes_grid(spec.protocol, xs, ys), noise=0.01,
                          seed=spec.seed)


def flaky_runner(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> StateGrid:
    """Fails on the shard that holds lr = 0.08 while ``DEVICE_LOST`` is set."""
    if DEVICE_LOST and 0.08 in xs:
        raise RuntimeError("device lost")
    return fake_runner(spec, xs, ys)


DEVICE_LOST = False


def dying_runner(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> StateGrid:
    """Kills its worker process (as the OOM killer would) on the shard that holds lr = 0.08."""
    if 0.08 in xs:
        os._exit(9)
    return fake_runner(spec, xs, ys)


def device_logging_runner(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> StateGrid:
    """Records which GPU and how many threads the worker process was given."""
    line = f"{os.getpid()} {os.environ['CUDA_VISIBLE_DEVICES']} {os.environ['NUMBA_NUM_THREADS']}\n"
    with open(Path(spec.options["log_dir"]) / f"{xs[0]}.log", "w") as fh:
        fh.write(line)
    return fake_runner(spec, xs, ys)


def _spec(runner: Any = fake_runner, **changes: Any) -> SweepSpec:
    kwargs = {"protocol": "fixed_lr", "d": 5, "grid": GRID, "iterations": 10, "seed": 3,
              "substrate": runner, **changes}
    return SweepSpec(**kwargs)


def _run(tmp_path: Path, *, spec: SweepSpec | None = None, **options: Any) -> SweepResult:
    options = {"executor": LocalExecutor(1), "cache": tmp_path, "progress": False, **options}
    return run_sweeps([spec or _spec()], **options)[0]


def _mtimes(cache: ResultsCache) -> dict[str, int]:
    return {key: cache.path(key).stat().st_mtime_ns for key in cache.keys()}


# -- cache use ------------------------------------------------------------------------------------
def test_sweep_matches_the_runner_called_directly(tmp_path: Path) -> None:
    result = _run(tmp_path, shard_size=5)
    direct = list(fake_runner(_spec(), GRID["lr"], GRID["wd"]))
    assert result.complete and not result.errors
    assert list(result.grid) == direct  # dataclass equality: every float bit for bit


def test_two_sweeps_sharing_a_cache_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """Two sweeps of one grid write the same cache at once: each point ends up stored exactly
    once (atomic replace), no temporary file is left, and the grid reads back bit for bit."""
    ctx = multiprocessing.get_context("fork")
    sweeps = [ctx.Process(target=_run, args=(tmp_path,), kwargs={"shard_size": 2})
              for _ in range(2)]
    for sweep in sweeps:
        sweep.start()
    for sweep in sweeps:
        sweep.join(120)
    assert [sweep.exitcode for sweep in sweeps] == [0, 0]
    assert len(list(ResultsCache(tmp_path).keys())) == 12
    assert not [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    CALLS.clear()
    assert list(_run(tmp_path).grid) == list(fake_runner(_spec(), GRID["lr"], GRID["wd"]))


def test_rerun_skips_cached_points_and_force_measures_again(tmp_path: Path) -> None:
    cache = ResultsCache(tmp_path)
    first = _run(tmp_path, shard_size=6)
    before = _mtimes(cache)
    assert len(before) == 12
    CALLS.clear()
    stream = io.StringIO()
    again = _run(tmp_path, shard_size=6, progress=stream)
    assert CALLS == [] and _mtimes(cache) == before
    assert "12 points, 12 cached" in stream.getvalue() and "0 shard(s)" in stream.getvalue()
    assert list(again.grid) == list(first.grid)
    forced = _run(tmp_path, shard_size=6, force=True)
    assert len(CALLS) == 2
    assert all(t > before[k] for k, t in _mtimes(cache).items())
    assert list(forced.grid) == list(first.grid)


def test_partly_cached_shard_measures_only_the_rectangle_it_lacks(tmp_path: Path) -> None:
    spec, cache = _spec(), ResultsCache(tmp_path)
    for point in spec.points():
        if point["lr"] != 0.04 or point["wd"] == 1e-3:
            cache.put(spec.config(point), fake_runner(spec, [point["lr"]], [point["wd"]])[0])
    CALLS.clear()
    result = _run(tmp_path)
    assert CALLS == [((0.04,), (1e-2, 3e-2))]
    assert result.complete


def test_options_and_seed_enter_the_key(tmp_path: Path) -> None:
    _run(tmp_path)
    CALLS.clear()
    _run(tmp_path, spec=_spec(seed=4))
    _run(tmp_path, spec=_spec(options={"chains": 2}))
    assert len(CALLS) == 2 and len(ResultsCache(tmp_path)) == 36


def test_task_reruns_idempotently(tmp_path: Path) -> None:
    shard = split(_spec(), 6)[0]
    first = ShardTask(shard, str(tmp_path))()
    second = ShardTask(shard, str(tmp_path))()
    assert (first.computed, first.cached, second.computed, second.cached) == (6, 0, 0, 6)
    assert ShardTask(shard, str(tmp_path), force=True)().computed == 6


# -- failures and resume --------------------------------------------------------------------------
def test_failed_shard_leaves_points_missing_and_a_rerun_resumes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "DEVICE_LOST", True)
    progress = io.StringIO()
    broken = _run(tmp_path, spec=_spec(flaky_runner), shard_size=3, progress=progress)
    assert broken.missing == tuple({"lr": 0.08, "wd": wd} for wd in GRID["wd"])
    assert len(broken.grid) == 9
    assert len(broken.errors) == 1 and "RuntimeError: device lost" in broken.errors[0]
    assert "local: 9 of 12 points in " in progress.getvalue()
    assert "shards 0 pending · 0 running · 3 done · 1 failed (of 4)" in progress.getvalue()
    assert "failed: RuntimeError: device lost" in progress.getvalue()
    monkeypatch.setattr(sys.modules[__name__], "DEVICE_LOST", False)
    CALLS.clear()
    resumed = _run(tmp_path, spec=_spec(flaky_runner), shard_size=3)
    assert CALLS == [((0.08,), GRID["wd"])]
    assert resumed.complete and not resumed.errors
    reference = _run(tmp_path / "ref", spec=_spec(flaky_runner), shard_size=12)
    assert list(resumed.grid) == list(reference.grid)


# -- executors ------------------------------------------------------------------------------------
def test_process_pool_is_bit_identical_to_in_process(tmp_path: Path) -> None:
    in_process = _run(tmp_path / "a", shard_size=12)
    pooled = _run(tmp_path / "b", executor=LocalExecutor(2), shard_size=2)
    assert list(pooled.grid) == list(in_process.grid)
    assert not pooled.errors


def test_simulator_sweep_is_bit_identical_to_one_simulate_call(tmp_path: Path) -> None:
    """Shards in worker processes, each point its own random stream: the numbers of one
    in-process ``simulate`` over the whole grid, bit for bit."""
    from thermocheck.simulator import simulate

    grid = {"lr": (0.05, 0.1, 0.2), "wd": (0.01, 0.02)}
    options = {"entropy_logs": 2, "entropy_every": 2000, "queue_size": 200, "queue_every": 10}
    spec = SweepSpec("fixed_lr", 3, grid, 20_000, 11, options=options)
    pooled = _run(tmp_path, spec=spec, executor=LocalExecutor(2), shard_size=2)
    direct = simulate("fixed_lr", d=3, grid=grid, iterations=20_000, seed=11, **options).grid
    assert not pooled.errors and list(pooled.grid) == list(direct)


def test_pool_gives_each_worker_its_own_gpu(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    spec = _spec(device_logging_runner, options={"log_dir": str(tmp_path)})
    result = _run(tmp_path / "cache", spec=spec, executor=LocalExecutor(), shard_size=3)
    assert result.complete
    seen = [log.read_text().split() for log in tmp_path.glob("*.log")]
    assert len(seen) == 4
    gpu_of = {pid: gpu for pid, gpu, _ in seen}
    assert set(gpu_of.values()) <= {"0", "3"}
    assert len({(pid, gpu) for pid, gpu, _ in seen}) == len(gpu_of)  # one GPU per worker
    assert len(set(gpu_of.values())) == len(gpu_of)  # never shared
    assert {threads for *_, threads in seen} == {str(max(1, len(os.sched_getaffinity(0)) // 2))}


def test_dead_worker_fails_shards_without_raising(tmp_path: Path) -> None:
    result = _run(tmp_path, spec=_spec(dying_runner), executor=LocalExecutor(2), shard_size=3)
    assert {"lr": 0.08, "wd": 1e-3} in result.missing
    assert result.errors and all("BrokenProcessPool" in e or "broken" in e for e in result.errors)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_counts_points_with_rate_and_eta() -> None:
    stream = _Terminal()
    with Progress([4, 2], "local", stream) as progress:
        progress.set(0, "running")
        progress.advance(0, 3)
        progress.set(0, "done")  # the shard's last point
        progress.set(1, "failed")
        assert progress.stored == 4
    text = stream.getvalue()
    assert "local:" in text and "4/6" in text and "pt/s" in text and "<" in text  # rate, ETA
    assert "1 done · 1 failed shards" in text


def test_progress_is_quiet_off_a_terminal_but_for_one_closing_line() -> None:
    stream = io.StringIO()
    with Progress([2, 3], "local", stream) as progress:
        progress.set(0, "running")
        progress.advance(0, 2)
        progress.set(0, "done")
        progress.set(1, "failed")
        assert stream.getvalue() == ""
    line, = stream.getvalue().splitlines()
    assert line.startswith("local: 2 of 5 points in ")
    assert line.endswith("shards 0 pending · 0 running · 1 done · 1 failed (of 2)")


def test_progress_counts_each_stored_batch_as_it_happens(tmp_path: Path) -> None:
    """In-process shards advance the bar per stored batch, not per finished shard."""
    register_substrate("batched_fake", fake_runner, batch=2)
    seen: list[int] = []

    class Watch(Progress):
        def advance(self, index: int, n: int) -> None:
            super().advance(index, n)
            if n:  # a shard's "done" advances by what is left: nothing here
                seen.append(self.stored)

    spec = _spec("batched_fake")
    shard = split(spec, None)[0]
    with Watch([12], "local", None) as progress:
        LocalExecutor(1).run([ShardTask(shard, str(tmp_path))], progress)
    # batches of at most 2 points: each row of 3 wd values in pieces of 2 and 1
    assert seen == [2, 3, 5, 6, 8, 9, 11, 12]


def test_progress_goes_to_stderr_by_default(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _run(tmp_path, progress=True, shard_size=6)
    err = capsys.readouterr().err
    assert "sweep: 1 grid(s), 12 points, 0 cached" in err and "2 shard(s) on local" in err
    assert err.endswith("shards 0 pending · 0 running · 2 done · 0 failed (of 2)\n")
    assert "local: 12 of 12 points in " in err


def test_default_workers_follow_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,3")
    assert LocalExecutor().default_workers() == 2
    assert LocalExecutor(5).default_workers() == 5
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert LocalExecutor().default_workers() == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "-1")
    assert LocalExecutor().default_workers() == 1
    with pytest.raises(InvalidParameterError, match="workers=0"):
        LocalExecutor(0)


def test_slurm_executor_without_submitit_says_how_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)
    with pytest.raises(ThermocheckError, match=r"pip install 'thermocheck\[slurm\]'"):
        _run(tmp_path, executor="slurm")


def test_run_sweep_builds_the_spec(tmp_path: Path) -> None:
    result = run_sweep("fixed_lr", d=5, grid=GRID, iterations=10, seed=3, substrate=fake_runner,
                       executor="local", cache=tmp_path, progress=False, shard_size=12)
    assert result.spec == _spec() and result.complete


# -- command line ---------------------------------------------------------------------------------
def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_sweep_arguments(parser)
    return parser.parse_args(argv)


def test_default_arguments_run_locally() -> None:
    options = sweep_options(_parse())
    assert options == {"executor": LocalExecutor(None), "cache": None, "force": False,
                       "shard_size": None}


def test_slurm_arguments() -> None:
    args = _parse("--executor", "slurm", "--cache", "/shared/tc", "--force", "--shard-size", "16",
                  "--slurm-partition", "gpu", "--slurm-time", "30", "--slurm-gpus-per-job", "1",
                  "--slurm-array-parallelism", "8", "--slurm-sbatch", "account=proj",
                  "--slurm-sbatch=--qos=high")
    options = sweep_options(args)
    assert options["executor"] == SlurmExecutor(SlurmOptions(
        partition="gpu", time_min=30, gpus_per_job=1, array_parallelism=8,
        sbatch={"account": "proj", "qos": "high"}))
    assert options["cache"] == Path("/shared/tc")
    assert (options["force"], options["shard_size"]) == (True, 16)


@pytest.mark.parametrize("argv", [("--shard-size", "0"), ("--slurm-sbatch", "noequals"),
                                  ("--executor", "ssh"), ("--workers", "two")])
def test_bad_arguments_are_usage_errors(argv: tuple[str, ...]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2


def test_slurm_options_need_the_slurm_executor() -> None:
    with pytest.raises(InvalidParameterError, match="--slurm-partition need --executor slurm"):
        sweep_options(_parse("--slurm-partition", "gpu"))
