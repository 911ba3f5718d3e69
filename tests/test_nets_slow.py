"""The CPU network tier (``pytest -m slow``, about 30 s of CPU per protocol) and the GPU nightly.

Both assert V1 (discretisation-corrected) and the norm balance through :mod:`thermocheck.laws`; the
nightly asserts V3 too, the CPU tier reports it (it may be inconclusive at that scale). At the tiny
tier's size the networks keep learning slowly (the loss or the radius drifts by a few % over the
tail at some grid points), and the stationarity test of :mod:`thermocheck.stats` rightly leaves
those points out; the laws are asserted on the rest, and at least ``min_stationary`` of them must
remain. Measured over seeds 0–2 (``run_grid(..., seed=s, init_seed=1 + s)``): 5–8 of 9 points
stationary under fixed LR and 4–7 under fixed ELR, V1 and the norm balance passed every time, V3 was
inconclusive (grid incomplete).
"""

from __future__ import annotations

import time

import pytest

from thermocheck import laws
from thermocheck.nets import preset_config, run_grid
from thermocheck.states import StateGrid


def _assert_tier(grid: StateGrid, min_stationary: int, queue_size: int, *,
                 assert_v3: bool = False) -> None:
    __tracebackhide__ = True
    stationary = grid.stationary()
    count = 0 if stationary is None else len(stationary)
    assert count >= min_stationary, (
        f"{count} of {len(grid)} points stationary, at least {min_stationary} needed "
        f"[{grid.protocol}]: " + "; ".join(s.reason for s in grid if not s.stationary)
    )
    laws.ideal_gas(grid, corrected=True).assert_passed()
    laws.norm_balance(grid).assert_passed()
    v3 = laws.maxwell(grid, entropy_samples=queue_size)
    print(v3.summary())
    if assert_v3:
        v3.assert_passed()


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr"])
def test_cpu_tiny(protocol: str) -> None:
    pytest.importorskip("sklearn")
    t0 = time.perf_counter()
    grid = run_grid("cpu-tiny", protocol=protocol)
    print(f"cpu-tiny {protocol}: {time.perf_counter() - t0:.0f} s, d={grid.d}")
    _assert_tier(grid, 3, preset_config("cpu-tiny", protocol).queue_size)


#: V3 fits six coefficients (Eq. 34): nine stationary points leave it three degrees of freedom.
#: Measured with the earlier digits ``gpu-short`` on the CPU: 25 and 24 of 25; the ``gratings``
#: nightly is too slow for a CPU and awaits its first GPU run.
_NIGHTLY_MIN_STATIONARY = 9


@pytest.mark.gpu
def test_gpu_nightly() -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device: run `pytest -m gpu` on a GPU machine")
    for protocol in ("fixed_lr", "fixed_elr"):
        _assert_tier(run_grid("gpu-nightly", protocol=protocol), _NIGHTLY_MIN_STATIONARY,
                     preset_config("gpu-nightly", protocol).queue_size, assert_v3=True)
