"""The exact one-step norm balance (Eq. 111), through its stationary mean."""

from __future__ import annotations

import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.laws._norm_balance import FLOAT32_ULP
from thermocheck.states import Estimate, StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(protocol="fixed_elr", noise=1e-2))
def test_balance_holds_on_the_theory(grid: StateGrid) -> None:
    laws.norm_balance(grid).assert_passed()


def test_not_applicable_on_the_sphere() -> None:
    result = laws.norm_balance(synthetic_grid("fixed_sphere", 3,
                                              grid={"elr": AXIS, "radius": [1.0, 2.0]}))
    assert result.verdict == "not_applicable" and "projection" in result.reason


@pytest.mark.parametrize("mutation", ["radial_noise", "wd_twice"])
@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr"])
def test_radial_noise_and_doubled_decay_are_seen(protocol: str, mutation: str) -> None:
    result = laws.norm_balance(synthetic_grid(protocol, 3, grid=axes_grid(protocol, AXIS, AXIS),
                                              mutation=mutation, noise=1e-2))
    assert result.verdict == "failed"
    # relative to E‖w‖² the residual is of order η_k λ (docs/theory.md §4)
    assert 0 < abs(result.residual) < 0.1


def test_a_wrong_noise_scale_is_invisible() -> None:
    """Any g ⊥ w satisfies the balance: a state that is wrong only in σ² passes."""
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS})
    wrong = StateGrid([s.replace(sigma2=Estimate(2.0)) for s in grid])
    laws.norm_balance(wrong).assert_passed()
    assert laws.ideal_gas(wrong).verdict == "failed"


def test_the_allowance_is_float32_round_off() -> None:
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS})
    shifted = StateGrid([s.replace(norm_balance=Estimate(0.5 * FLOAT32_ULP * s.sq_norm.value))
                         for s in grid])
    assert laws.norm_balance(shifted).passed
    assert laws.norm_balance(shifted, roundoff_tol=2.0**-52).verdict == "failed"


def test_model_tol_is_a_deprecated_spelling_of_roundoff_tol() -> None:
    """``model_tol`` is a coefficient of ε in the other laws; here the allowance is absolute."""
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS})
    shifted = StateGrid([s.replace(norm_balance=Estimate(0.5 * FLOAT32_ULP * s.sq_norm.value))
                         for s in grid])
    with pytest.warns(DeprecationWarning, match="spelled roundoff_tol"):
        old = laws.norm_balance(shifted, model_tol=2.0**-52)
    assert old.verdict == "failed" and old.options["roundoff_tol"] == 2.0**-52


def test_residual_is_reported_relative_to_the_squared_norm() -> None:
    """radial_noise: the mean residual is η_kλ(1 − η_kλ) E‖w‖², with η_k = η_eff E‖w‖²."""
    grid = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": AXIS}, mutation="radial_noise")
    result = laws.norm_balance(grid)
    for state, point in zip(grid, result.details, strict=True):
        decay = state.elr * state.sq_norm.value * state.wd
        assert point["relative_residual"] == pytest.approx(decay * (1 - decay))
