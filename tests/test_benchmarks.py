"""The benchmark command: it runs end to end on tiny sizes and writes the JSON and the table.

Only the structure is asserted, never a timing: times depend on the machine and its load.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PEERS = {
    "vmf_scalar": {"scipy_ive", "mpmath"},
    "vmf_vector": {"scipy_ive"},
    "sphere_entropy": {"sklearn_brute"},
    "simulator": {"rng_floor_sfc64", "torch_per_step"},
    "nets_cpu": {"one_model_at_a_time"},
    "import": {"numpy_scipy_special"},
    "verify": {"figures_on_one_process"},
}


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bench")
    subprocess.run([sys.executable, "-m", "benchmarks", "--quick", "--repeats", "2",
                    "--out-dir", str(out)], cwd=ROOT, check=True, timeout=600)
    return out


def test_quick_run_measures_every_path_against_its_peers(quick_run: Path) -> None:
    report = json.loads((quick_run / "benchmark.json").read_text(encoding="utf-8"))
    assert report["schema_version"] == 1 and report["config"]["mode"] == "quick"
    assert {"cpus", "load_average"} <= set(report["machine"])
    rows = report["comparisons"]
    assert {row["path"] for row in rows} == set(PEERS)
    for row in rows:
        assert PEERS[row["path"]] <= set(row["peers"]), row["path"]
        assert row["best_peer"] in row["peers"]
        for name, samples in {"thermocheck": row["ours"], **row["peers"]}.items():
            assert len(samples) == 2 and all(s > 0 and math.isfinite(s) for s in samples), name
            stats = row["stats"][name]
            assert stats["min"] <= stats["median"] <= stats["max"]
        paired = [o / p for o, p in zip(row["ours"], row["peers"][row["best_peer"]], strict=True)]
        assert row["ratio"] == pytest.approx(statistics.median(paired))
    d3 = [r for r in rows if r["path"] == "sphere_entropy" and r["size"].startswith("d=3,")]
    assert d3 and "scipy_ckdtree" in d3[0]["peers"]
    for row in rows:  # the peers compute the same numbers
        for key in ("difference_to_scipy", "difference_to_sklearn"):
            if key in row["notes"]:
                assert row["notes"][key] < 1e-9, (row["path"], row["size"])


def test_quick_run_writes_the_table(quick_run: Path) -> None:
    report = json.loads((quick_run / "benchmark.json").read_text(encoding="utf-8"))
    table = (quick_run / "benchmark.md").read_text(encoding="utf-8").splitlines()
    assert table[0].startswith("| path | size | thermocheck | best peer")
    body = [line for line in table[2:] if line.startswith("|")]
    assert len(body) == len(report["comparisons"])
    for line, row in zip(body, report["comparisons"], strict=True):
        assert line.endswith(f"| {row['ratio']:.2f} |") and row["best_peer"] in line


def test_bad_repeats_is_a_usage_error(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "benchmarks", "--repeats", "0",
                           "--out-dir", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 2 and "--repeats=0 is invalid" in done.stderr


def test_false_alarm_calibration_turns_the_allowances_off_without_deprecated_options() -> None:
    """The calibration run sets the norm balance's absolute ``roundoff_tol`` (not its deprecated
    ``model_tol``) and the coefficient ``model_tol`` of the other laws to 0."""
    false_alarms = pytest.importorskip("benchmarks.false_alarms")
    with warnings.catch_warnings():
        warnings.simplefilter("error", DeprecationWarning)
        verdicts = false_alarms.verdicts(("fixed_lr", 3, 0.01, 0, None, 0.0, True))
    assert set(verdicts) == set(false_alarms.laws.ALL)
    for name in ("norm_balance", "ideal_gas"):
        options = false_alarms._options(name, calibrate=True)
        assert options["alpha"] == 0.05
        off = "roundoff_tol" if name == "norm_balance" else "model_tol"
        assert options[off] == 0.0 and set(options) == {"alpha", off}
