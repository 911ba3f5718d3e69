"""The first law between neighbouring stationary states (Appendix D.2)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.laws._first_law import _curvature
from thermocheck.states import StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(noise=1e-3))
def test_first_law_holds_on_the_theory(grid: StateGrid) -> None:
    laws.first_law(grid).assert_passed()


def test_every_neighbouring_pair_is_checked() -> None:
    result = laws.first_law(synthetic_grid("fixed_lr", 3, AXIS, AXIS[:3]))
    assert len(result.details) == 3 * 3 + 4 * 2  # along lr: 3 lines of 4; along wd: 4 lines of 3
    assert all("→" in p["at"] for p in result.details)


@pytest.mark.parametrize("protocol", ["fixed_sphere", "fixed_elr", "fixed_lr"])
@pytest.mark.parametrize("mutation", ["hot", "no_log_r"])
def test_wrong_heat_is_caught(protocol: str, mutation: str) -> None:
    y = [0.5, 1.0, 2.0] if protocol == "fixed_sphere" else AXIS
    grid = synthetic_grid(protocol, 3, AXIS, y, mutation=mutation, noise=1e-3)
    assert laws.first_law(grid).verdict == "failed"


def test_two_point_lines_are_noted() -> None:
    result = laws.first_law(synthetic_grid("fixed_elr", 3, AXIS, [1e-3, 1e-2]))
    result.assert_passed()
    assert any("line(s) of two states" in n for n in result.notes)


def test_curvature_is_exact_for_parabolas() -> None:
    t = np.array([0.0, 0.4, 1.5, 2.0])
    f = 3 * t**2 - t + 1
    assert all(_curvature(t, f, j) == pytest.approx(6.0) for j in range(3))
    assert _curvature(t[:2], f[:2], 0) == 0.0


def test_quadrature_allowance_covers_coarse_grids() -> None:
    """One point per decade: the interpolation of S and V is coarse but allowed for."""
    axis = np.geomspace(1e-3, 1e-1, 3)
    for protocol in ("fixed_lr", "fixed_elr"):
        laws.first_law(synthetic_grid(protocol, 10, axis, axis)).assert_passed()
