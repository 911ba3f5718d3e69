"""V2: each state minimises the Gibbs (Helmholtz) energy at its own temperature and pressure."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.states import StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid

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
    grid = synthetic_grid("fixed_elr", 3, AXIS, AXIS)
    result = laws.potential_minimum(swapped(grid, 0, 15))
    assert result.verdict == "failed"
    bad = {p["at"]: p for p in result.details if not p["ok"]}
    corner = "elr=0.001, wd=0.001"
    assert corner in bad and bad[corner]["argmin_steps"] == 3
    assert any("grid step" in n for n in result.notes)


def test_sphere_uses_helmholtz_per_radius() -> None:
    grid = synthetic_grid("fixed_sphere", 3, AXIS, [0.5, 2.0])
    result = laws.potential_minimum(grid)
    result.assert_passed()
    assert {p["quantity"] for p in result.details} == {"F_*(*)"}
    assert all("radius=0.5" in p["rival"] for p in result.details if "radius=0.5" in p["at"])


def test_k_can_be_given() -> None:
    grid = synthetic_grid("fixed_lr", 3, AXIS, AXIS, noise=1e-3)
    result = laws.potential_minimum(grid, k=2.0)
    assert result.options["k"] == 2.0
    assert any("z = 2 " in n for n in result.notes)


def test_noise_beyond_the_depth_of_the_minimum_is_inconclusive() -> None:
    grid = synthetic_grid("fixed_lr", 3, np.geomspace(1e-2, 3e-2, 4), AXIS, noise=0.05)
    result = laws.potential_minimum(grid)
    assert result.verdict == "inconclusive" and "too noisy" in result.reason


def test_one_state_is_inconclusive() -> None:
    result = laws.potential_minimum(synthetic_grid("fixed_lr", 3, [0.01], [0.01]))
    assert result.verdict == "inconclusive" and "two stationary states" in result.reason
