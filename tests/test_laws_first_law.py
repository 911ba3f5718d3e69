"""The first law between neighbouring stationary states (Appendix D.2)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._first_law import _curvature
from thermocheck.states import StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(noise=1e-3))
def test_first_law_holds_on_the_theory(grid: StateGrid) -> None:
    laws.first_law(grid).assert_passed()


def test_span_one_checks_every_neighbouring_pair() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS[:3]})
    result = laws.first_law(grid, span=1)
    assert len(result.details) == 3 * 3 + 4 * 2  # along lr: 3 lines of 4; along wd: 4 lines of 3
    assert all("→" in p["at"] and p["steps"] == 1 for p in result.details)


def test_segments_start_at_every_state_of_a_line() -> None:
    """A line of m states has m − span segments of span steps (the whole line when shorter)."""
    axis = np.geomspace(1e-3, 3e-2, 7)
    grid = synthetic_grid("fixed_elr", 3, grid={"elr": axis, "wd": AXIS[:3]})
    result = laws.first_law(grid, span=4)
    steps = [p["steps"] for p in result.details]
    assert steps.count(4) == 3 * (7 - 4) and steps.count(2) == 7  # 3 lines of 7, 7 lines of 3


@pytest.mark.parametrize("protocol", ["fixed_sphere", "fixed_elr", "fixed_lr"])
@pytest.mark.parametrize("mutation", ["hot", "no_log_r"])
def test_wrong_heat_is_caught(protocol: str, mutation: str) -> None:
    y = [0.5, 1.0, 2.0] if protocol == "fixed_sphere" else AXIS
    grid = synthetic_grid(protocol, 3, grid=axes_grid(protocol, AXIS, y), mutation=mutation,
                          noise=1e-3)
    assert laws.first_law(grid).verdict == "failed"


def test_two_point_lines_are_noted() -> None:
    result = laws.first_law(synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": [1e-3, 1e-2]}))
    assert result.verdict != "failed"
    assert any("line(s) of two states" in n and "undecided" in n for n in result.notes)
    two_node = [p for p in result.details if p.get("ok") is None and "excluded" not in p]
    assert two_node and all(not p["decided"] for p in two_node)


@pytest.mark.parametrize("protocol, d, xs, ys", [
    ("fixed_lr", 2, [0.01], [1e-3, 1e-2]),
    ("fixed_lr", 22, [0.03162], [0.005273, 0.03162]),
    ("fixed_sphere", 32, [0.001, 0.03162], [1.585]),
])
def test_a_grid_of_two_node_lines_is_undecided_not_failed(protocol, d, xs, ys) -> None:
    """Exact states: a two-node line's curvature is unknown, so its quadrature allowance is too."""
    result = laws.first_law(synthetic_grid(protocol, d, grid=axes_grid(protocol, xs, ys)))
    assert result.verdict == "inconclusive", result.explain()


def test_curvature_is_exact_for_parabolas() -> None:
    t = np.array([0.0, 0.4, 1.5, 2.0])
    f = 3 * t**2 - t + 1
    assert all(_curvature(t, f, j) == pytest.approx(6.0) for j in range(3))
    assert math.isnan(_curvature(t[:2], f[:2], 0))  # two nodes cannot tell a curvature


def test_quadrature_allowance_covers_coarse_grids() -> None:
    """One point per decade: the interpolation of S and V is coarse but allowed for."""
    axis = np.geomspace(1e-3, 1e-1, 3)
    for protocol in ("fixed_lr", "fixed_elr"):
        grid = synthetic_grid(protocol, 10, grid=axes_grid(protocol, axis, axis))
        laws.first_law(grid).assert_passed()


def test_the_paper_grid_is_decided_on_fixed_lr() -> None:
    """17 × 17 at 1 % noise: one step's ΔU is below its error, a segment's is not."""
    axis = np.geomspace(1e-3, 1e-1, 17)
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": axis, "wd": axis}, noise=0.01, seed=5)
    laws.first_law(grid).assert_passed()
    assert laws.first_law(grid, span=1).verdict == "inconclusive"


def test_span_must_be_a_positive_integer() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS})
    with pytest.raises(InvalidParameterError, match="span=0"):
        laws.first_law(grid, span=0)
