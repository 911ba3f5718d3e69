"""Meta-tests of the Hypothesis strategies: ranges, structure, and a noise seed fixed by the
drawn example."""

from __future__ import annotations

import math
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from thermocheck import theory
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._common import discretisation
from thermocheck.states import State, StateGrid
from thermocheck.strategies import (
    RANGES,
    axis_spans,
    concentrations,
    dimensions,
    grid_ranges,
    hyperparameters,
    mutations,
    protocols,
    state_grids,
)
from thermocheck.synthetic import MUTATIONS

pytestmark = pytest.mark.fast

SETTINGS = settings(derandomize=True, deadline=None, max_examples=40,
                    suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(protocols(), dimensions(min_value=3, max_value=9), concentrations(max_value=10.0))
def test_scalar_strategies_respect_their_bounds(protocol: str, d: int, kappa: float) -> None:
    assert protocol in theory.PROTOCOLS
    assert 3 <= d <= 9
    assert 1e-2 <= kappa <= 10.0


@SETTINGS
@given(st.data())
def test_hyperparameters_stay_where_the_sde_holds(data: st.DataObject) -> None:
    protocol = data.draw(protocols())
    d = data.draw(dimensions())
    hp = data.draw(hyperparameters(protocol, d=d, max_discretisation=0.05))
    assert set(hp) == set(theory.AXES[protocol])
    for name, value in hp.items():
        low, high = RANGES[name]
        assert low <= value <= high * (1 + 1e-12)
    state = State(protocol=protocol, d=d, sigma2=1.0, **hp)
    assert discretisation(state) <= 0.05 * (1 + 1e-9)


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
@pytest.mark.parametrize("d", [2, 3, 64])
def test_grid_ranges_keep_every_corner_admissible(protocol: str, d: int) -> None:
    ranges = grid_ranges(protocol, d)
    x, y = theory.AXES[protocol]
    assert ranges[x][1] / ranges[x][0] >= 3 and ranges[y][1] / ranges[y][0] >= 3
    for vx in ranges[x]:
        for vy in ranges[y]:
            state = State(protocol=protocol, d=d, sigma2=1.0, **{x: vx, y: vy})
            assert discretisation(state) <= 0.05 * (1 + 1e-9)


@SETTINGS
@given(axis_spans(low=1e-3, high=1e-1, min_points=3, max_points=6))
def test_axis_spans_are_log_spaced_inside_their_range(values: np.ndarray) -> None:
    assert 3 <= values.size <= 6
    assert 1e-3 * (1 - 1e-12) <= values[0] and values[-1] <= 1e-1 * (1 + 1e-12)
    assert values[-1] / values[0] >= 3.0 * (1 - 1e-9)
    assert np.allclose(np.diff(np.log(values)), np.log(values[1] / values[0]))


@SETTINGS
@given(state_grids())
def test_grids_are_synthetic_and_complete(grid: StateGrid) -> None:
    xs, ys = grid.axis_values()
    assert len(grid) == xs.size * ys.size and 3 <= xs.size <= 5 and 3 <= ys.size <= 5
    assert grid.substrate == "synthetic" and all(s.energy_is_loss and s.stationary for s in grid)
    assert max(discretisation(s) for s in grid) <= 0.05 * (1 + 1e-9)


@SETTINGS
@given(state_grids(noise=1e-2))
def test_the_noise_seed_is_a_function_of_the_drawn_structure(grid: StateGrid) -> None:
    xs, ys = grid.axis_values()
    expected = zlib.crc32(repr((grid.protocol, grid.d, xs.tolist(), ys.tolist())).encode())
    assert {s.extra["seed"] for s in grid} == {expected}
    assert all(s.loss.stderr == pytest.approx(1e-2 * abs(s.loss.value), rel=0.2) for s in grid)


@SETTINGS
@given(st.data())
def test_fixed_structure_is_kept(data: st.DataObject) -> None:
    protocol, d = data.draw(protocols()), data.draw(dimensions(max_value=10))
    grid = data.draw(state_grids(protocol, d))
    assert (grid.protocol, grid.d) == (protocol, d)


@SETTINGS
@given(st.data())
def test_mutants_are_drawn_on_their_protocols(data: st.DataObject) -> None:
    name = data.draw(mutations())
    grid = data.draw(state_grids(mutation=name))
    assert grid.protocol in MUTATIONS[name].protocols
    assert {s.extra["mutation"] for s in grid} == {name}
    assert data.draw(mutations("fixed_sphere")) in ("wrong_R", "no_log_r", "hot")


def test_invalid_bounds_say_how_to_fix_them() -> None:
    with pytest.raises(InvalidParameterError, match="min_value"):
        concentrations(min_value=0.0)
    with pytest.raises(InvalidParameterError, match="low"):
        axis_spans(low=1.0, high=2.0)
    with pytest.raises(InvalidParameterError, match="min_points"):
        axis_spans(low=1e-3, high=1.0, min_points=4, max_points=3)
    with pytest.raises(InvalidParameterError, match="raise it"):
        hyperparameters("fixed_elr", d=3, max_discretisation=1e-4)
    with pytest.raises(InvalidParameterError, match="max_value"):
        dimensions(min_value=5, max_value=4)
    with pytest.raises(InvalidParameterError, match="protocol"):
        hyperparameters("fixed_moon")


def test_ranges_are_the_papers() -> None:
    assert RANGES == {"lr": (1e-3, 1e-1), "wd": (1e-3, 1e-1), "elr": (1e-3, 1e-1),
                      "radius": (0.1, 10.0)}
    assert math.isclose(RANGES["radius"][1] / RANGES["radius"][0], 100)
