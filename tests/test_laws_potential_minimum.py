"""V2: each state minimises the Gibbs (Helmholtz) energy at its own temperature and pressure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.errors import InvalidParameterError
from thermocheck.states import StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(noise=1e-4))
def test_minimum_holds_on_the_theory(grid: StateGrid) -> None:
    result = laws.potential_minimum(grid)
    result.assert_passed()
    assert all(p["argmin_steps"] == 0 for p in result.details)


def swapped(grid: StateGrid, i: int, j: int) -> StateGrid:
    """The grid with the measurements of states i and j exchanged."""
    fields = ("loss", "sphere_entropy", "sq_norm", "mean_radius")
    states = list(grid)
    a, b = states[i], states[j]
    states[i] = a.replace(**{f: getattr(b, f) for f in fields})
    states[j] = b.replace(**{f: getattr(a, f) for f in fields})
    return StateGrid(states)


def test_exchanged_states_are_caught_and_located() -> None:
    grid = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": AXIS})
    result = laws.potential_minimum(swapped(grid, 0, 15))
    assert result.verdict == "failed"
    bad = [p for p in result.details if not p["ok"]]
    assert {p["at"] for p in bad} <= {"elr=0.001, wd=0.001", "elr=0.03, wd=0.03"}
    assert all(p["argmin_steps"] == 3 for p in bad)
    assert any("grid step" in n for n in result.notes)


def test_sphere_uses_helmholtz_per_radius() -> None:
    grid = synthetic_grid("fixed_sphere", 3, grid={"elr": AXIS, "radius": [0.5, 2.0]})
    result = laws.potential_minimum(grid)
    result.assert_passed()
    assert {p["quantity"] for p in result.details} <= {"F_*(*) − min F_*",
                                                       "minimiser offset along elr (steps)"}
    assert all("radius=0.5" in p["argmin"] for p in result.details if "radius=0.5" in p["at"])
    assert any("F_*" in n for n in result.notes)


def test_k_can_be_given() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS}, noise=1e-3)
    result = laws.potential_minimum(grid, k=2.0)
    assert result.options["k"] == 2.0
    assert any("z = 2 " in n for n in result.notes)


def test_noise_beyond_the_depth_of_the_minimum_is_inconclusive() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": np.geomspace(1e-2, 3e-2, 4), "wd": AXIS},
                          noise=0.05)
    result = laws.potential_minimum(grid)
    assert result.verdict == "inconclusive" and "too noisy" in result.reason


def test_one_state_is_inconclusive() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": [0.01], "wd": [0.01]})
    result = laws.potential_minimum(grid)
    assert result.verdict == "inconclusive" and "two stationary states" in result.reason


PAPER_AXIS = np.geomspace(1e-3, 1e-1, 17)


@pytest.mark.parametrize("protocol", ["fixed_sphere", "fixed_elr", "fixed_lr"])
def test_the_paper_grid_is_decided(protocol: str) -> None:
    """17 × 17 at 1 % noise (the entropy ±0.01 R, the radius ±1 %): neighbours differ by less
    than their errors, but the fitted minimiser locates the minimum."""
    y = np.geomspace(0.1, 10, 17) if protocol == "fixed_sphere" else PAPER_AXIS
    grid = synthetic_grid(protocol, 3, grid=axes_grid(protocol, PAPER_AXIS, y), noise=0.01, seed=3)
    result = laws.potential_minimum(grid)
    result.assert_passed()
    assert any(p["method"] == "fitted minimiser" for p in result.details)


def test_a_hot_direction_law_moves_the_fitted_minimiser() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": PAPER_AXIS, "wd": PAPER_AXIS}, noise=0.01,
                          seed=3, mutation="hot", strength=0.5)
    result = laws.potential_minimum(grid)
    assert result.verdict == "failed"
    assert any(p["method"] == "fitted minimiser" and not p["ok"] for p in result.details)


def test_edges_and_gaps_never_fail() -> None:
    """An incomplete 6 × 6 grid: edge points and points next to holes still get a verdict."""
    axis = np.geomspace(1e-3, 3e-2, 6)
    states = [s for i, s in enumerate(synthetic_grid("fixed_elr", 3, grid={"elr": axis, "wd": axis},
                                                     noise=0.01))
              if i % 7 != 3]
    assert laws.potential_minimum(StateGrid(states)).verdict != "failed"


def test_window_must_be_a_positive_integer() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS})
    with pytest.raises(InvalidParameterError, match="window=0"):
        laws.potential_minimum(grid, window=0)
    with pytest.raises(InvalidParameterError, match=r"window=1\.5"):
        laws.potential_minimum(grid, window=1.5)
