"""V3: the Maxwell relations, from the quadratic entropy surface (Eq. 34) or λ_eff's slope."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from law_settings import AXIS, SETTINGS

from thermocheck import laws
from thermocheck.laws._fit import least_squares, quadratic_surface
from thermocheck.states import Estimate, StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast



@SETTINGS
@given(state_grids(noise=1e-3))
def test_relations_hold_on_the_theory(grid: StateGrid) -> None:
    laws.maxwell(grid).assert_passed()


@pytest.mark.parametrize(("protocol", "names"), [
    ("fixed_lr", ["(a1 − a2)/R", "(2a3 − a5)/R", "(2a4 − a5)/R"]),
    ("fixed_elr", ["a2/R", "2a4/R", "a5/R"]),
])
def test_reports_the_papers_ratios(protocol: str, names: list[str]) -> None:
    result = laws.maxwell(synthetic_grid(protocol, 3, grid=axes_grid(protocol, AXIS, AXIS),
                                         noise=1e-3))
    assert [p["quantity"] for p in result.details] == names
    assert all(p["stderr"] > 0 for p in result.details)
    assert any("R² =" in n for n in result.notes)
    assert any("max relative error" in n for n in result.notes)
    assert result.expected == (1.0 if protocol == "fixed_lr" else -1.0)


def test_a_grid_smaller_than_three_by_three_is_inconclusive() -> None:
    result = laws.maxwell(synthetic_grid("fixed_lr", 3,
                                         grid={"lr": [1e-3, 1e-2], "wd": [1e-3, 1e-2]}))
    assert result.verdict == "inconclusive" and "3×3" in result.reason


def test_too_noisy_a_fit_is_inconclusive() -> None:
    result = laws.maxwell(synthetic_grid("fixed_elr", 3,
                                         grid={"elr": [1e-3, 2e-3, 3e-3], "wd": [1e-3, 2e-3, 3e-3]},
                                         noise=0.2))
    assert result.verdict == "inconclusive"
    assert "cannot exclude a deviation of 0.5" in result.reason and "a 50% error" in result.reason


@pytest.mark.parametrize("mutation", ["no_log_r", "r_sqrt", "T_linear"])
def test_wrong_entropy_scalings_fail(mutation: str) -> None:
    result = laws.maxwell(synthetic_grid("fixed_lr", 3, grid={"lr": AXIS, "wd": AXIS},
                                         mutation=mutation, noise=1e-2))
    assert result.verdict == "failed"
    assert result.residual > 0.3  # the relation is off by a sizeable fraction of R


def test_sphere_checks_the_slope_of_lambda_eff() -> None:
    grid = synthetic_grid("fixed_sphere", 3, grid={"elr": AXIS, "radius": [0.5, 1.0, 2.0]},
                          noise=1e-3)
    result = laws.maxwell(grid)
    result.assert_passed()
    assert [p["radius"] for p in result.details] == [0.5, 1.0, 2.0]
    for p in result.details:
        assert p["expected"] == pytest.approx(2 / p["radius"] ** 2)  # (d − 1)/(2V) = R/V
    assert any("vacuous" in n for n in result.notes)
    assert laws.maxwell(synthetic_grid("fixed_sphere", 3,
                                       grid={"elr": AXIS, "radius": [0.5, 1.0, 2.0]},
                                       mutation="wrong_R")).verdict == "failed"


def test_sphere_corrected_form_needs_the_gradient_norm() -> None:
    states = synthetic_grid("fixed_sphere", 3, grid={"elr": AXIS, "radius": [1.0]})
    grid = StateGrid([s.replace(grad_sq=None) for s in states])
    assert laws.maxwell(grid).verdict == "inconclusive"
    laws.maxwell(grid, corrected=False).assert_passed()


def test_fit_without_errors_uses_the_residual_variance() -> None:
    x, y = np.meshgrid(np.arange(4.0), np.arange(4.0))
    z = 1 + x - 2 * y + 0.1 * np.sin(3 * x.ravel()).reshape(x.shape)
    surface = quadratic_surface(x.ravel(), y.ravel(), z.ravel())
    assert not surface.fit.weighted and surface.fit.cov[1, 1] > 0
    weighted = quadratic_surface(x.ravel(), y.ravel(), z.ravel(), np.full(16, 1e-6))
    assert weighted.fit.weighted and weighted.fit.chi2_red > 1
    # a misfitting model gets the wider errors its residuals show (Birge ratio)
    assert weighted.fit.cov[1, 1] == pytest.approx(surface.fit.cov[1, 1], rel=1e-6)


def test_line_fit_with_exact_errors_keeps_them() -> None:
    fit = least_squares(np.column_stack([np.ones(5), np.arange(5.0)]), 2 * np.arange(5.0),
                        np.full(5, 0.1))
    value, se = fit.combination(np.array([0.0, 1.0]))
    assert value == pytest.approx(2) and se == pytest.approx(0.1 / np.sqrt(10))


def test_ratio_uncertainties_follow_the_entropy_errors() -> None:
    grid = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": AXIS})
    a = laws.maxwell(StateGrid([s.replace(sphere_entropy=Estimate(s.sphere_entropy.value, 0.01))
                                for s in grid]))
    b = laws.maxwell(StateGrid([s.replace(sphere_entropy=Estimate(s.sphere_entropy.value, 0.02))
                                for s in grid]))
    assert b.details[0]["stderr"] == pytest.approx(2 * a.details[0]["stderr"])
