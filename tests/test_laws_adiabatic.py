"""V4: the entropy is constant along the predicted adiabats."""

from __future__ import annotations

import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.states import StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(protocol="fixed_lr", noise=1e-3) | state_grids(protocol="fixed_elr",
                                                                     noise=1e-3))
def test_entropy_is_constant_along_adiabats(grid: StateGrid) -> None:
    laws.adiabatic(grid).assert_passed()


def test_not_applicable_on_the_sphere() -> None:
    result = laws.adiabatic(synthetic_grid("fixed_sphere", 3,
                                           grid={"elr": AXIS, "radius": [0.5, 1.0, 2.0]}))
    assert result.verdict == "not_applicable" and "fixed V" in result.reason


def test_low_temperature_adiabats_are_the_papers() -> None:
    """Low T (C_V → R): fixed LR adiabats are lines of constant η, fixed ELR η_eff²/λ = const."""
    lr = laws.adiabatic(synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS}))
    assert {p["adiabat"] for p in lr.details} == {"constant η"}
    elr = laws.adiabatic(synthetic_grid("fixed_elr", 3, grid={"elr": AXIS / 10, "wd": AXIS}))
    slopes = [float(p["adiabat"].split("= ")[1]) for p in elr.details]
    assert slopes == pytest.approx([2.0] * len(slopes), abs=1e-3)
    assert any("γ = C_p/C_V" in n for n in elr.notes)


@pytest.mark.parametrize("mutation", ["hot", "no_log_r", "T_linear"])
def test_misplaced_adiabats_are_caught(mutation: str) -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS}, mutation=mutation,
                          noise=1e-3)
    assert laws.adiabatic(grid).verdict == "failed"


def test_a_two_by_two_grid_is_inconclusive() -> None:
    result = laws.adiabatic(synthetic_grid("fixed_elr", 3, grid={"elr": AXIS[:2], "wd": AXIS[:2]}))
    assert result.verdict == "inconclusive" and "3×3" in result.reason
