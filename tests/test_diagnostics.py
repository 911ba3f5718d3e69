"""Per-point network diagnostics: σ², the full-gradient term, the noise's effective rank, Z."""

from __future__ import annotations

from pathlib import Path

import pytest

from thermocheck import figures
from thermocheck.diagnostics import diagnostics, has_diagnostics
from thermocheck.nets import GridConfig, Trainer, synthetic
from thermocheck.report import diagnostics_markdown
from thermocheck.states import StateGrid
from thermocheck.synthetic import synthetic_grid

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]


def _grid(noise_samples: int) -> StateGrid:
    config = GridConfig(protocol="fixed_lr", x=(0.3, 1.0), y=(0.01, 0.1), width=2, batch_size=8,
                        iters=200, every=5, queue_size=20, queue_every=5, noise_every=10,
                        noise_samples=noise_samples, dtype="float64")
    trainer = Trainer(config, data=synthetic(64))
    trainer.run()
    return trainer.grid()


@pytest.fixture(scope="module")
def grid() -> StateGrid:
    return _grid(noise_samples=4)


def test_rows_carry_the_states_measurements(grid: StateGrid) -> None:
    rows = diagnostics(grid)
    assert len(rows) == len(grid)
    for row, state in zip(rows, grid, strict=True):
        assert (row["lr"], row["wd"]) == (state.lr, state.wd)
        assert row["eff_rank_over_d"] == state.extra["eff_rank_over_d"]
        assert 0 < row["eff_rank_over_d"] <= 1.5
        if state.stationary:
            assert state.sigma2 is not None and row["sigma2"] == state.sigma2.value
        else:
            assert row["sigma2"] is None and row["compressibility"] is None and row["reason"]


def test_markdown_has_a_row_per_point(grid: StateGrid) -> None:
    lines = diagnostics_markdown(grid, "fixed_lr")
    assert lines[0] == "### fixed_lr"
    assert sum(line.startswith("| 0.") or line.startswith("| 1") for line in lines) == len(grid)


def test_the_rank_is_unmeasured_with_one_deviation_per_measurement(tmp_path: Path) -> None:
    grid = _grid(noise_samples=2)  # the step's gradient and one more: a single deviation
    assert all(s.extra["eff_rank"] is None for s in grid)
    assert "| —" in "\n".join(diagnostics_markdown(grid, "g"))
    made, errors = figures.draw(grid, tmp_path, name="net")  # σ² alone, without the rank panel
    assert not errors and "noise" in {f.kind for f in made}


def test_simulator_grids_have_none() -> None:
    sim = synthetic_grid("fixed_lr", 5, grid={"lr": (0.1, 0.2), "wd": (0.01, 0.02)})
    assert not has_diagnostics(sim) and diagnostics_markdown(sim, "x") == []
    assert figures.noise_figure(sim) is None


def test_the_noise_figure_is_drawn_for_networks(grid: StateGrid, tmp_path: Path) -> None:
    made, errors = figures.draw(grid, tmp_path, name="net")
    assert not errors and "noise" in {f.kind for f in made}
