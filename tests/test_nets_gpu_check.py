"""The GPU presets' settings and budget, and the GPU benchmark driver in its tiny CPU mode.

Only structure and derived quantities are asserted, never a timing: times depend on the machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from thermocheck.errors import InvalidParameterError
from thermocheck.nets import PRESETS, preset_config
from thermocheck.nets.substrate import trainable_dimension

pytestmark = pytest.mark.fast

ROOT = Path(__file__).resolve().parents[1]


def test_nightly_trains_the_papers_convnet_on_generated_data() -> None:
    for protocol in PRESETS["gpu-nightly"].default_protocols:
        c = preset_config("gpu-nightly", protocol)
        assert (c.model, c.width, c.dataset, c.batch_size) == ("convnet", 8, "gratings", 128)
        assert trainable_dimension(c) == 24_408  # the paper's d for ConvNet k = 8 on 3 × 32 × 32


def test_nightly_fits_ten_minutes_at_the_committed_h200_throughput() -> None:
    """Model-iterations of the nightly (noise measurements included: ``noise_samples − 1`` extra
    gradients every ``noise_every`` steps of the tail) at the H200's measured M = 32 rate leave
    at least a third of 10 minutes for start-up, data, entropies and the report."""
    bench = json.loads((ROOT / "reports/gpu-h200/bench.json").read_text())
    rate = bench["results"]["batched_M32"]
    work = 0.0
    for protocol in PRESETS["gpu-nightly"].default_protocols:
        c = preset_config("gpu-nightly", protocol)
        extra = (1 - c.burn_in) * (c.noise_samples - 1) / c.noise_every
        work += len(c.points()) * c.iters * (1 + extra)
    assert work / rate <= 600 * 2 / 3, f"{work / rate:.0f} s of training"


def test_interpolation_preset_is_wide_and_fixed_elr_only() -> None:
    c = preset_config("gpu-interpolation", "fixed_elr")
    assert c.width == 32 and max(c.x) <= 3e-3
    with pytest.raises(InvalidParameterError, match="protocol"):
        preset_config("gpu-interpolation", "fixed_lr")


def test_time_limit_stops_a_slow_part() -> None:
    from benchmarks.gpu_bench import time_limit

    t0 = time.perf_counter()
    with pytest.raises(TimeoutError, match="limit of 1 s"), time_limit(1):
        time.sleep(5)
    assert time.perf_counter() - t0 < 3


def _driver(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_bench", "--device", "cpu",
                           "--tiny", "--threads", "1", "--out", str(tmp_path), *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize(("args", "match"), [(["--only", "nonsense"], "unknown parts"),
                                             (["--models", "0"], "--models=0"),
                                             (["--peak-tflops", "-1"], "--peak-tflops=-1")])
def test_driver_rejects_bad_arguments(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                      args: list[str], match: str) -> None:
    from benchmarks.gpu_bench import main

    with pytest.raises(SystemExit) as exit_info:
        main(["--device", "cpu", "--tiny", "--out", str(tmp_path), *args])
    assert exit_info.value.code == 2 and match in capsys.readouterr().err
    assert not (tmp_path / "bench.json").exists()


def test_driver_tiny_cpu_mode_writes_ratios_and_flops(tmp_path: Path) -> None:
    """Eager parts only (compiling takes minutes on a loaded CPU): every ratio is the part's
    throughput over the same architecture's one-at-a-time loop; the FLOP count is the analytic
    count of the tiny ConvNet's convolutions and head."""
    done = _driver(tmp_path, "--compile", "--only", "batched", "batched_vmap", "update_eager_ms",
                   "--peak-tflops", "1")
    assert done.returncode == 0, done.stderr
    out = json.loads((tmp_path / "bench.json").read_text())
    assert out["errors"] == {} and out["schema_version"] == 1
    raw, res = out["raw"], out["results"]
    assert set(raw) == {"loop", "batched", "batched_vmap", "update_eager_ms", "resnet18_loop"}
    assert res["batched"]["ratio_vs_loop"] == pytest.approx(raw["batched"] / raw["loop"])
    assert res["resnet18_loop"]["ratio_vs_loop"] == pytest.approx(1.0)
    assert "update_eager_ms" not in res and raw["update_eager_ms"] > 0
    c = out["config"]
    flops = out["flops_per_model_iteration"]["convnet"]
    assert flops == _convnet_flops(c["width"], c["batch"], c["size"])
    tflops = raw["batched"] * flops / 1e12
    assert res["batched"]["peak_fraction"] == pytest.approx(tflops / 1.0)
    assert out["goal"]["met"] is False  # M = 4 < 32: the goal is not judged on toy sizes
    assert "block_capture" in out["not_implemented"]


def _convnet_flops(k: int, batch: int, size: int) -> int:
    """Forward ``2·B·H·W·C_out·C_in·9`` per convolution (layers 2–4 after a 2 × 2 pool of the
    previous output), backward twice that except the first layer (no input gradient); the frozen
    head ``2·B·8k·10`` forward and once more for its input gradient."""
    widths, side, total = [3, k, 2 * k, 4 * k, 8 * k], size, 0
    for i in range(4):
        if i >= 2:
            side //= 2
        conv = 2 * batch * side * side * widths[i + 1] * widths[i] * 9
        total += conv * (2 if i == 0 else 3)
    return total + 2 * (2 * batch * 8 * k * 10)


def test_cli_offers_every_dataset() -> None:
    from thermocheck import cli
    from thermocheck.nets.data import DATASETS

    assert cli.DATASET_CHOICES == DATASETS
