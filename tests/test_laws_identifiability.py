"""Grids that cannot determine a law's fits: on correct states of any shape (random subsets,
lines such as lr = c·wd, single rows and columns, scattered points) no law fails and none raises;
a fit the points cannot determine is inconclusive and says why."""

from __future__ import annotations

import math
import zlib
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from thermocheck import laws
from thermocheck.laws._fit import (
    MAX_CONDITION,
    UnidentifiableFit,
    identifiability,
    least_squares,
    quadratic_surface,
)
from thermocheck.states import StateGrid
from thermocheck.strategies import dimensions, grid_ranges
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import AXES, PROTOCOLS, axes_grid

pytestmark = pytest.mark.fast

SETTINGS = settings(derandomize=True, deadline=None, max_examples=25,
                    suppress_health_check=[HealthCheck.too_slow])

#: How the points of a drawn grid are chosen from its product of axes (or drawn freely).
SHAPES = ("product", "subset", "diagonal", "anti_diagonal", "row", "column", "scattered")


# -- grids of every shape --------------------------------------------------------------------------
def _log_points(draw: Any, low: float, high: float, n: int, span: float | None) -> np.ndarray:
    """``n`` log-spaced values inside [low, high] covering ``span`` decades (drawn when None)."""
    lo, hi = math.log10(low), math.log10(high)
    width = draw(st.floats(0.1 * (hi - lo), hi - lo)) if span is None else span
    start = draw(st.floats(lo, hi - width))
    return np.logspace(start, start + width, n)


def _chosen(draw: Any, shape: str, n_x: int, n_y: int) -> list[tuple[int, int]]:
    """Index pairs of the product grid that a ``shape`` keeps."""
    every = [(i, j) for i in range(n_x) for j in range(n_y)]
    n = min(n_x, n_y)
    if shape == "subset":
        keep = draw(st.lists(st.booleans(), min_size=len(every), max_size=len(every)))
        return [p for p, k in zip(every, keep, strict=True) if k] or every[:1]
    if shape == "diagonal":
        return [(i, i) for i in range(n)]
    if shape == "anti_diagonal":
        return [(i, n - 1 - i) for i in range(n)]
    if shape == "row":
        j = draw(st.integers(0, n_y - 1))
        return [(i, j) for i in range(n_x)]
    if shape == "column":
        i = draw(st.integers(0, n_x - 1))
        return [(i, j) for j in range(n_y)]
    return every


@st.composite
def shaped_grids(draw: Any, protocol: str) -> StateGrid:
    """Correct synthetic states (exact or noisy) on a grid of a drawn shape inside the protocol's
    admissible ranges; the noise seed is a hash of the drawn structure, never searched."""
    d = draw(dimensions(max_value=32))
    noise = draw(st.sampled_from([0.0, 1e-3, 1e-2]))
    shape = draw(st.sampled_from(SHAPES))
    ranges = grid_ranges(protocol, d)
    x_name, y_name = AXES[protocol]
    (x_lo, x_hi), (y_lo, y_hi) = ranges[x_name], ranges[y_name]
    if shape == "scattered":
        n = draw(st.integers(1, 12))
        drawn = [(float(10 ** draw(st.floats(math.log10(x_lo), math.log10(x_hi)))),
                  float(10 ** draw(st.floats(math.log10(y_lo), math.log10(y_hi)))))
                 for _ in range(n)]
        # one point per place on the grid (StateGrid tells points apart to 9 digits)
        points = set({f"{x:.9e} {y:.9e}": (x, y) for x, y in drawn}.values())
    else:
        diagonal = shape in ("diagonal", "anti_diagonal")
        n_x = draw(st.integers(2, 9 if diagonal else 5))
        n_y = n_x if diagonal else draw(st.integers(1, 5))
        # equal spans in decades make the diagonal a line lr = c·wd (elr = c·wd, elr = c·radius)
        span = draw(st.floats(0.1, min(math.log10(x_hi / x_lo), math.log10(y_hi / y_lo)))) \
            if diagonal else None
        xs = _log_points(draw, x_lo, x_hi, n_x, span)
        ys = _log_points(draw, y_lo, y_hi, n_y, span)
        points = {(float(xs[i]), float(ys[j])) for i, j in _chosen(draw, shape, n_x, n_y)}
    ordered = sorted(points)
    seed = zlib.crc32(repr((protocol, d, noise, ordered)).encode())
    note(f"{shape}: synthetic_grid({protocol!r}, {d}, [x], [y], noise={noise}, seed={seed}) at "
         f"each (x, y) of {ordered}")
    states = [s for x, y in ordered
              for s in synthetic_grid(protocol, d, grid=axes_grid(protocol, [x], [y]), noise=noise,
                                      seed=seed)]
    return StateGrid(states)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@SETTINGS
@given(data=st.data())
def test_no_law_fails_or_raises_on_any_grid_shape(protocol: str, data: st.DataObject) -> None:
    grid = data.draw(shaped_grids(protocol))
    for name, law in laws.ALL.items():
        result = law(grid)
        assert result.verdict != "failed", result.explain()
        for point in result.details:
            if point.get("ok") is not None:
                assert math.isfinite(point["tolerance"]), (name, point)


# -- the cases found on the code before the checks -------------------------------------------------
def line_grid(protocol: str, ratio: float = 10.0, n: int = 9, noise: float = 1e-3) -> StateGrid:
    """``n`` correct states on the line x = ratio · y (e.g. lr = 10·wd)."""
    y = np.geomspace(1e-3, 3e-3, n)
    return StateGrid(synthetic_grid(protocol, 3, grid=axes_grid(protocol, [ratio * v], [v]),
                                    noise=noise, seed=1)[0]
                     for v in y)


@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr"])
def test_maxwell_on_a_line_is_inconclusive(protocol: str) -> None:
    """Points on lr = 10·wd cannot separate a1 from a2 in Eq. 34: not a 'failed' 2e-16 ± 0."""
    result = laws.maxwell(line_grid(protocol))
    assert result.verdict == "inconclusive"
    assert "cannot determine the quadratic fit of Eq. 34" in result.reason
    assert "a1 (x), a2 (y)" in result.reason and "not separately identifiable" in result.reason


@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr"])
def test_adiabatic_on_a_line_is_inconclusive(protocol: str) -> None:
    result = laws.adiabatic(line_grid(protocol))
    assert result.verdict == "inconclusive" and "not separately identifiable" in result.reason


def test_adiabatic_leaves_out_points_whose_block_cannot_fit() -> None:
    """A full 4×4 grid less two points: the blocks that keep too few states are named."""
    axis = np.geomspace(1e-3, 3e-2, 4)
    grid = synthetic_grid("fixed_lr", 3, grid={"lr": axis, "wd": axis}, noise=1e-3)
    kept = StateGrid([s for k, s in enumerate(grid) if k not in (0, 1, 4)])
    result = laws.adiabatic(kept)
    assert result.verdict == "passed", result.explain()
    skipped = [n for n in result.notes if "left out, their 3×3 block" in n]
    assert skipped and "needs more than 6 points" in skipped[0]


# -- the fits themselves ---------------------------------------------------------------------------
def surface_points(n: int = 4) -> tuple[np.ndarray, np.ndarray]:
    x, y = np.meshgrid(np.arange(float(n)), np.arange(float(n)))
    return x.ravel(), y.ravel()


def test_a_full_grid_determines_the_surface() -> None:
    x, y = surface_points()
    z = 1 + x - 2 * y + 0.5 * x * y
    surface = quadratic_surface(x, y, z)
    assert surface.coef[5] == pytest.approx(0.5)


@pytest.mark.parametrize(("x", "y", "why"), [
    (np.arange(9.0), np.arange(9.0) + 2.3, "rank 3 < 6"),  # lr = c·wd
    (np.arange(9.0), -np.arange(9.0), "rank 3 < 6"),  # lr·wd = c
    (np.repeat([0.0, 1.0], 5), np.tile(np.arange(5.0), 2), "rank 5 < 6"),
    (np.arange(6.0), np.arange(6.0) ** 2, "needs more than 6 points"),
])
def test_a_surface_the_points_cannot_determine_raises_with_the_reason(
        x: np.ndarray, y: np.ndarray, why: str) -> None:
    with pytest.raises(UnidentifiableFit, match=why):
        quadratic_surface(x, y, np.ones_like(x))


def test_a_nearly_collinear_design_is_ill_conditioned() -> None:
    """Points a hair off the line lr = c·wd: full rank in exact arithmetic, not in float64."""
    x = np.arange(9.0)
    y = x + 1e-10 * (x - 4) ** 3  # off the line by a cubic float64 barely resolves
    reason = identifiability(np.column_stack([np.ones(9), x, y]))
    assert reason is not None and "ill-conditioned" in reason
    assert float(reason.split("condition number ")[1].split(" ")[0]) > MAX_CONDITION


def test_the_covariance_does_not_square_the_condition_number() -> None:
    """Nearly parallel columns (condition number 3e3 after scaling, 1e7 for XᵀX): the inverse of
    XᵀX was off by 7e-7 relative, the SVD of the design keeps the covariance to 1e-8."""
    x = 1e3 + np.linspace(-1.0, 1.0, 11)  # uncentred: the columns 1 and x are nearly parallel
    X = np.column_stack([np.ones_like(x), x])
    fit = least_squares(X, 2 + 3 * x + np.cos(7 * x), np.full(11, 0.1))
    _, Rm = np.linalg.qr(X / 0.1)
    exact = np.linalg.inv(Rm) @ np.linalg.inv(Rm).T * max(fit.chi2_red or 1.0, 1.0)
    np.testing.assert_allclose(fit.cov, exact, rtol=1e-8)


def test_a_line_fit_needs_two_distinct_abscissae() -> None:
    with pytest.raises(UnidentifiableFit, match="rank 1 < 2"):
        least_squares(np.column_stack([np.ones(4), np.full(4, 2.0)]), np.arange(4.0),
                      names=("intercept", "slope"))
