"""The laws that difference S remove the k-NN estimator's calibrated bias where a state records
its estimator (``extra["entropy_queue"]``), and leave undecided what the calibration cannot vouch
for."""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import pytest

from thermocheck import laws
from thermocheck.calibration import estimator_bias
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._entropy import measured_entropy
from thermocheck.states import Estimate, State, StateGrid
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import axes_grid

pytestmark = pytest.mark.fast

#: The quick preset's rate and weight-decay axes.
AXIS = np.geomspace(1e-2, 1e-1, 5)
RADII = np.geomspace(1e-1, 1e1, 5)


def _slow_points_fewer(state: State) -> int:
    """N per point as the simulator chooses it: fewer snapshots where the direction is slow."""
    rate = state.lr if state.protocol == "fixed_lr" else state.elr
    return int(1000 * math.sqrt(rate / AXIS[-1]))


def biased(grid: StateGrid, samples: Callable[[State], int] = _slow_points_fewer, *,
           record: bool = True, tabulated_n: int | None = None) -> StateGrid:
    """The exact states with S(ρ_w̄) read high by the calibrated bias of ``samples(state)``
    snapshots at κ = 1/T (bias of ``tabulated_n`` snapshots when given), as the simulator
    measures it, with its ``entropy_queue`` record unless ``record`` is False."""
    out = []
    for s in grid:
        n = samples(s)
        bias = estimator_bias(s.d, tabulated_n or n, 1 / s.temperature).value.item()
        extra = dict(s.extra)
        if record:
            extra["entropy_queue"] = {"method": "geodesic", "n_samples": n, "correlated": False}
        out.append(s.replace(sphere_entropy=Estimate(s.sphere_entropy.value + bias, 0.02),
                             extra=extra))
    return StateGrid(out)


def _grid(protocol: str, d: int, **kw: object) -> StateGrid:
    y = RADII if protocol == "fixed_sphere" else AXIS
    return synthetic_grid(protocol, d, grid=axes_grid(protocol, AXIS, y), noise=1e-3, seed=1, **kw)


@pytest.mark.parametrize(("law", "protocol", "d"), [
    ("first_law", "fixed_lr", 30),  # `thermocheck verify --dim 30` failed here
    ("first_law", "fixed_sphere", 100),
    ("adiabatic", "fixed_lr", 100),
    ("potential_minimum", "fixed_lr", 1000),
])
def test_the_recorded_estimator_bias_is_no_false_alarm(law: str, protocol: str, d: int) -> None:
    """The bias moves by one to tens of nats across these grids: without the record the law
    fails on correct states; with it, the bias is removed and the law passes."""
    grid = _grid(protocol, d)
    assert laws.ALL[law](biased(grid, record=False)).verdict == "failed"
    result = laws.ALL[law](biased(grid))
    result.assert_passed()
    assert any("corrected for the k-NN estimator's calibrated bias" in n for n in result.notes)


@pytest.mark.parametrize("law", ["first_law", "potential_minimum", "adiabatic", "maxwell"])
def test_states_without_the_record_keep_their_entropy_and_say_so(law: str) -> None:
    grid = _grid("fixed_elr", 3)
    result = laws.ALL[law](grid)
    result.assert_passed()
    assert any("do not record their entropy estimator" in n for n in result.notes)


@pytest.mark.parametrize("law", ["first_law", "potential_minimum", "adiabatic", "maxwell"])
def test_an_uncalibrated_correction_is_undecided_never_failed(law: str) -> None:
    """N = 20 snapshots lie below the table's sizes: the correction is not vouched for, so the
    checks that use those states are undecided, although the states' S carries a bias the table
    does not know (that of N = 50, the table's edge, here standing in for it)."""
    grid = biased(_grid("fixed_lr", 100), lambda s: 20, tabulated_n=50)
    shifted = StateGrid([s.replace(sphere_entropy=Estimate(s.sphere_entropy.value + 0.3 * k, 0.02))
                         for k, s in enumerate(grid)])  # and an unexplained drift on top
    result = laws.ALL[law](shifted)
    assert result.verdict == "inconclusive", result.reason
    assert "not calibrated there" in result.reason and "N=20" in result.reason
    assert any("cannot vouch" in n for n in result.notes)


def test_a_wrong_temperature_is_still_caught_through_the_bias() -> None:
    grid = biased(_grid("fixed_lr", 30, mutation="T_linear"))
    assert laws.first_law(grid).verdict == "failed"
    assert laws.maxwell(grid).verdict == "failed"


def test_between_tabulated_dimensions_the_interpolation_mode_is_allowed_for() -> None:
    """d = 50 lies between the table's d = 30 and 100: the bias there carries an interpolation
    error common to the states, which joins the allowances, and the correct states pass."""
    grid = biased(_grid("fixed_lr", 50))
    for law in ("first_law", "potential_minimum", "adiabatic", "maxwell"):
        result = laws.ALL[law](grid)
        result.assert_passed()
    modes = [p["estimator_mode"] for p in laws.first_law(grid).details]
    assert max(modes) > 0


def test_measured_entropy_removes_the_bias_and_adds_its_error() -> None:
    state = biased(_grid("fixed_lr", 30), lambda s: 1000)[0]
    bias = estimator_bias(30, 1000, 1 / state.temperature)
    got = measured_entropy(state)
    assert got.assessed and not got.doubt
    assert got.sphere.value == pytest.approx(state.sphere_entropy.value - bias.value.item())
    assert got.sphere.stderr == pytest.approx(math.hypot(0.02, bias.stderr.item()))
    assert got.total.value == pytest.approx(got.sphere.value
                                            + 29 * math.log(state.mean_radius.value))
    bare = measured_entropy(state.replace(extra={}))
    assert not bare.assessed and bare.total == state.entropy


@pytest.mark.parametrize(("record", "match"), [
    ({"method": "geodesic", "n_samples": 1}, r'\["n_samples"\]=1 .* integer >= 2'),
    ({"method": "geodesic", "n_samples": 10.5}, r'\["n_samples"\]=10.5'),
    ({"method": "knn", "n_samples": 100}, "method="),
    ("geodesic", "must be a mapping"),
])
def test_a_malformed_record_is_a_clear_error(record: object, match: str) -> None:
    state = _grid("fixed_lr", 30)[0]
    with pytest.raises(InvalidParameterError, match=match):
        laws.first_law([s.replace(extra={"entropy_queue": record}) for s in _grid("fixed_lr", 30)])
    with pytest.raises(InvalidParameterError, match=match):
        measured_entropy(state.replace(extra={"entropy_queue": record}))


def test_maxwell_uses_entropy_samples_only_where_no_state_records_it() -> None:
    grid = biased(_grid("fixed_lr", 30), lambda s: 1000)
    bare = StateGrid([s.replace(extra={}) for s in grid])
    drift = laws.maxwell(bare, entropy_samples=1000)
    assert any(n.startswith("estimator drift (geodesic, N = 1000") for n in drift.notes)
    assert any(p["estimator_drift"] > 0 for p in drift.details)
    recorded = laws.maxwell(grid, entropy_samples=1000)
    assert any("entropy_samples=1000 not used" in n for n in recorded.notes)
    assert not any(n.startswith("estimator drift (") for n in recorded.notes)
    assert any("not assessed" in n for n in laws.maxwell(bare).notes)
