"""Long runs lose nothing when killed, and concurrent runs on one cache share the work.

A sweep stores each batch of points as it ends and locks each point while measuring it: a run
killed with SIGKILL resumes with every stored point and gives the report of an uninterrupted run,
and two runs started together on one cache measure each point once and give the same report.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from thermocheck.sweep import ResultsCache
from thermocheck.sweep.claims import PointLock, lock_path

pytestmark = pytest.mark.fast

#: A sweep of the simulator, small enough to run in seconds and long enough to be killed mid-way:
#: 16 points in batches of 4 (``NUMBA_NUM_THREADS=1`` below), every law checked, the report's
#: verdicts, numbers and states printed as JSON, with how many points this run measured.
SCRIPT = textwrap.dedent("""
    import json, sys, time
    from pathlib import Path
    from thermocheck import laws
    from thermocheck.report import write_report
    from thermocheck.sweep import LocalExecutor, SweepSpec, run_sweeps

    cache, out, go = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    spec = SweepSpec("fixed_lr", 3, {"lr": (0.03, 0.05, 0.08, 0.1), "wd": (0.03, 0.05, 0.08, 0.1)},
                     300_000, 5, options={"log_every": 100, "entropy_logs": 2,
                                          "entropy_every": 20_000, "queue_size": 200,
                                          "queue_every": 10})
    while not go.exists():  # start together with the other runs
        time.sleep(0.01)
    done, = run_sweeps([spec], executor=LocalExecutor(1), cache=cache, progress=False)
    results = [done.check(law) for law in laws.ALL.values()]
    write_report(results, out, grids={"fixed_lr": done.grid} if done.grid else {})
    print(json.dumps({"measured": done.measured, "missing": len(done.missing)}))
""")

POINTS = 16


def _start(cache: Path, out: Path, go: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NUMBA_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(cache), str(out), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _finish(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _same_report(folder: Path) -> dict[str, object]:
    """What two runs of one grid must share: summary, results and states (not meta, not times)."""
    data = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    return {key: data[key] for key in ("summary", "results", "states")}


def _stored(cache: Path) -> int:
    return len(ResultsCache(cache))


def test_a_run_killed_mid_way_resumes_with_every_stored_point(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    reference = _start(tmp_path / "ref-cache", tmp_path / "ref", go)
    assert _finish(reference) == {"measured": POINTS, "missing": 0}

    killed = _start(tmp_path / "cache", tmp_path / "out", go)
    deadline = time.monotonic() + 300
    while _stored(tmp_path / "cache") == 0 and killed.poll() is None:
        assert time.monotonic() < deadline, "no point was stored"
        time.sleep(0.005)
    killed.send_signal(signal.SIGKILL)
    killed.wait(60)
    kept = _stored(tmp_path / "cache")
    assert killed.returncode == -signal.SIGKILL and 0 < kept < POINTS  # killed mid-way

    resumed = _start(tmp_path / "cache", tmp_path / "out", go)
    assert _finish(resumed) == {"measured": POINTS - kept, "missing": 0}
    assert _same_report(tmp_path / "out") == _same_report(tmp_path / "ref")


def test_two_runs_on_one_cache_measure_each_point_once(tmp_path: Path) -> None:
    go = tmp_path / "go"
    runs = [_start(tmp_path / "cache", tmp_path / f"out{i}", go) for i in range(2)]
    time.sleep(1.0)  # both import thermocheck, then wait for the signal
    go.touch()
    counts = [_finish(run) for run in runs]
    assert sum(c["measured"] for c in counts) == POINTS
    assert all(c["missing"] == 0 for c in counts)
    assert _same_report(tmp_path / "out0") == _same_report(tmp_path / "out1")
    assert not list((tmp_path / "cache").rglob("*.lock"))


# -- the point lock -------------------------------------------------------------------------------
def test_a_point_lock_excludes_a_second_holder_and_leaves_no_file(tmp_path: Path) -> None:
    first, second = PointLock(tmp_path, "ab12"), PointLock(tmp_path, "ab12")
    assert first.acquire() and first.held
    assert not second.acquire()
    assert PointLock(tmp_path, "cd34").acquire()  # another point is free
    first.release()
    assert not lock_path(tmp_path, "ab12").exists()
    assert second.acquire()
    second.release()


HOLDER = textwrap.dedent("""
    import sys, time
    from thermocheck.sweep.claims import PointLock
    lock = PointLock(sys.argv[1], "ab12")
    assert lock.acquire()
    print("held", flush=True)
    time.sleep(600)
""")


def test_a_killed_holder_frees_its_point_at_once(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not PointLock(tmp_path, "ab12").acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(60)
    lock = PointLock(tmp_path, "ab12")
    assert lock.acquire()  # no stale claim to time out
    lock.release()
