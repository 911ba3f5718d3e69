"""V1, the ideal gas law: E‖w‖² (or λ_eff) against the state equation."""

from __future__ import annotations

import pytest
from discrete_states import elr_state, sphere_state
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws, theory
from thermocheck.states import Estimate, StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid

pytestmark = pytest.mark.fast



def lr_grid(**kw: object) -> StateGrid:
    return synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS}, **kw)  # type: ignore[arg-type]


@SETTINGS
@given(state_grids(noise=1e-3))
def test_ideal_gas_holds_on_the_theory(grid: StateGrid) -> None:
    result = laws.ideal_gas(grid)
    result.assert_passed()
    quantity = "λ_eff" if grid.protocol == "fixed_sphere" else "E‖w‖²"
    assert {p["quantity"] for p in result.details} == {quantity}


def test_corrected_form_needs_the_gradient_norm() -> None:
    grid = StateGrid([s.replace(grad_sq=None) for s in lr_grid()])
    result = laws.ideal_gas(grid)
    assert result.verdict == "inconclusive"
    assert "grad_sq" in result.reason and "corrected=False" in result.reason
    laws.ideal_gas(grid, corrected=False).assert_passed()


def test_the_corrected_form_includes_the_measured_gradient_norm() -> None:
    """States on the discretisation-corrected radius (Eq. 119) pass the corrected law and fail
    the SDE form, which neglects E‖∇L(w̄)‖²."""
    states = []
    for s in lr_grid():
        g2 = 0.5 * s.d  # a large gradient norm, so the correction is far above the allowance
        r2 = float(theory.stationary_radius(s.protocol, s.d, 1.0, lr=s.lr, wd=s.wd,
                                            grad_sq=g2)) ** 2
        states.append(s.replace(grad_sq=Estimate(g2), sq_norm=Estimate(r2)))
    laws.ideal_gas(states).assert_passed()
    assert laws.ideal_gas(states, corrected=False).verdict == "failed"


def test_the_allowance_is_c_eta_lambda() -> None:
    """A relative deviation of 0.5 ηλ passes with model_tol = 1 and fails with model_tol = 0."""
    states = [s.replace(sq_norm=Estimate(s.sq_norm.value * (1 + 0.5 * s.lr * s.wd)))
              for s in lr_grid()]
    assert laws.ideal_gas(states).passed
    result = laws.ideal_gas(states, model_tol=0.0)
    assert result.verdict == "failed"
    worst = max(result.details, key=lambda p: abs(p["relative_residual"]))
    assert worst["relative_residual"] == pytest.approx(0.5 * 3e-2 * 3e-2)


def test_sigma2_uncertainty_widens_the_band() -> None:
    states = [s.replace(sq_norm=Estimate(s.sq_norm.value * 1.01)) for s in lr_grid()]
    assert laws.ideal_gas(states).verdict == "failed"
    vague = [s.replace(sigma2=Estimate(1.0, 0.01)) for s in states]
    assert laws.ideal_gas(vague).passed


def test_sphere_compares_the_effective_weight_decay() -> None:
    grid = synthetic_grid("fixed_sphere", 5, grid={"elr": AXIS, "radius": [0.5, 1.0, 2.0]},
                          mutation="wrong_R")
    result = laws.ideal_gas(grid)
    assert result.verdict == "failed"
    # λ_eff from R' = d/2: 5/4 of the prediction
    assert result.observed / result.expected == pytest.approx(5 / 4)


def test_missing_measurement_is_inconclusive() -> None:
    grid = StateGrid([s.replace(sq_norm=None) for s in lr_grid()])
    result = laws.ideal_gas(grid)
    assert result.verdict == "inconclusive" and "'sq_norm'" in result.reason


def test_too_noisy_to_resolve_half_the_value_is_inconclusive() -> None:
    """20% errors give a band of about 70%: a 50% error would pass, so the law cannot decide."""
    result = laws.ideal_gas(lr_grid(noise=0.2))
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("too noisy to decide") and "E‖w‖²" in result.reason
    assert laws.ideal_gas(lr_grid(noise=0.2), resolution=10.0).passed


@pytest.mark.parametrize("d", [2, 3, 10, 50])
def test_the_allowance_covers_eq83_bias_of_exact_discrete_steps(d: int) -> None:
    """Eq. 83 measures ``λ_eff (1 − κ₄ s/2 + …)``, ``κ₄ = (d + 1)/(d − 1)``: 1.5 s on the circle,
    beyond an allowance of s. The exact discrete mean is inside the allowance alone, at every d."""
    grid = [sphere_state(d, elr, radius) for elr in (0.03, 0.1) for radius in (0.5, 2.0)]
    result = laws.ideal_gas(grid)
    result.assert_passed()
    for p in result.details:
        assert abs(p["residual"]) <= p["allowance"]


def test_the_exact_discrete_radius_on_the_circle_passes() -> None:
    """fixed ELR at d = 2: the radius' fluctuations (relative variance 2s/(d − 1)) lower E‖w‖²
    by 1.5 s, beyond an allowance of s (seeded chains, no search)."""
    state = elr_state(2, 0.1, 0.05)
    result = laws.ideal_gas([state])
    result.assert_passed()
    s = result.details[0]["step_decay"]
    assert result.details[0]["relative_residual"] == pytest.approx(-1.5 * s, rel=0.3)
