"""Tests of thermocheck.calibration: the shipped k-NN bias table and the drift it predicts."""

from __future__ import annotations

import copy
import json
import math
from importlib import resources

import numpy as np
import pytest

from thermocheck import calibration, vmf
from thermocheck.calibration import CalibrationTable, estimator_bias, estimator_drift
from thermocheck.entropy import sphere_entropy
from thermocheck.errors import InvalidParameterError

pytestmark = pytest.mark.fast


@pytest.fixture(scope="module")
def raw() -> dict:
    path = resources.files("thermocheck").joinpath(f"data/{calibration.TABLE_VERSION}.json")
    return json.loads(path.read_text())


def test_shipped_table_loads_with_its_schema(raw: dict) -> None:
    assert raw["schema_version"] == calibration.SCHEMA_VERSION
    table = CalibrationTable.load()
    assert table.schema_version == calibration.SCHEMA_VERSION
    assert table.version == calibration.TABLE_VERSION
    for method in ("geodesic", "angles", "chord"):
        assert {250, 1000, 4000} <= set(table.sizes(method))
    assert table.dimensions("geodesic", 1000)[-1] >= 24408
    size = len(resources.files("thermocheck").joinpath(
        f"data/{calibration.TABLE_VERSION}.json").read_bytes())
    assert size < 80_000  # 8 dimensions × 5 sample sizes × 3 methods, a few nodes each


def test_table_rejects_other_schema_and_malformed_curves(raw: dict) -> None:
    with pytest.raises(InvalidParameterError, match="schema_version"):
        CalibrationTable({**raw, "schema_version": 99})
    broken = copy.deepcopy(raw)
    broken["curves"][0]["bias"] = broken["curves"][0]["bias"][:-1]
    with pytest.raises(InvalidParameterError, match="equal-length"):
        CalibrationTable(broken)
    del broken["curves"][0]["seeds"]
    with pytest.raises(InvalidParameterError, match="malformed"):
        CalibrationTable(broken)


def test_bias_interpolates_between_dimensions_and_sizes() -> None:
    c = 1.0
    per_dof = {d: float(estimator_bias(d, 1000, c * d).value) / (d - 1) for d in (100, 1000)}
    mid = estimator_bias(316, 1000, c * 316)
    assert not mid.extrapolated and mid.reasons == ()
    assert min(per_dof.values()) <= float(mid.value) / 315 <= max(per_dof.values())
    by_n = [float(estimator_bias(1000, n, 1000.0).value) for n in (1000, 2000, 4000)]
    assert min(by_n[0], by_n[2]) <= by_n[1] <= max(by_n[0], by_n[2])


def test_drift_over_a_span() -> None:
    drift = estimator_drift(1000, 1000, 100.0, 10_000.0)
    assert not drift.extrapolated
    b = estimator_bias(1000, 1000, [100.0, 10_000.0])
    assert drift.change == pytest.approx(float(b.value[1] - b.value[0]))
    assert drift.slope == pytest.approx(drift.change / math.log(100.0))
    assert drift.max_slope >= abs(drift.slope) > 0
    assert drift.bound(2.0) == pytest.approx(abs(drift.change) + 2 * drift.change_stderr)
    assert drift.relative_change == pytest.approx(drift.change / 499.5)
    point = estimator_drift(1000, 1000, 1000.0, 1000.0)
    assert point.change == 0.0 and point.slope != 0.0


@pytest.mark.parametrize(("d", "n", "kappa", "what"), [
    (10**6, 1000, 10.0**6, "d=1000000 outside"),
    (100, 20, 100.0, "N=20 outside"),
    (100, 1000, 1e-3, "outside"),
])
def test_extrapolation_is_flagged(d: int, n: int, kappa: float, what: str) -> None:
    drift = estimator_drift(d, n, kappa, kappa * 10)
    assert drift.extrapolated
    assert any(what in r for r in drift.reasons)


@pytest.mark.parametrize("kwargs", [
    {"d": 1.5}, {"d": 1}, {"n_samples": 1}, {"kappa_min": -1.0}, {"kappa_max": math.inf},
    {"kappa_min": 20.0, "kappa_max": 10.0}, {"method": "knn"},
])
def test_drift_validates_input(kwargs: dict) -> None:
    args = {"d": 100, "n_samples": 1000, "kappa_min": 10.0, "kappa_max": 20.0, **kwargs}
    with pytest.raises(InvalidParameterError):
        estimator_drift(**args)


def test_held_out_point_matches_a_fresh_sample() -> None:
    """d = 100, κ = 200 (κ/d = 2 is not a node of the table), N = 1000, one fixed seed."""
    d, kappa = 100, 200.0
    predicted = estimator_bias(d, 1000, kappa)
    w = vmf.sample(d, kappa, 1000, rng=20240611)
    bias = sphere_entropy(w) - float(vmf.entropy(d, kappa))
    sigma = math.hypot(float(predicted.stderr), float(predicted.scatter))
    assert abs(bias - float(predicted.value)) <= 3 * sigma
    assert float(predicted.value) > 5 * sigma  # a real bias, not zero within the error


def _grid(protocol: str, nx: int, ny: int, hx: float, hy: float, d: int
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y = (a.ravel() for a in np.meshgrid(np.linspace(-hx, hx, nx), np.linspace(-hy, hy, ny),
                                           indexing="ij"))
    log_kappa = -x if protocol == "fixed_elr" else -(x + y) / 2
    return d * np.exp(log_kappa), x, y


def test_surface_drift_vanishes_for_fixed_elr_on_a_complete_grid() -> None:
    d = 1000
    kappa, x, y = _grid("fixed_elr", 9, 5, 2.5, 2.3, d)
    rows = [np.array(r) / ((d - 1) / 2) for r in
            [(0, 0, 1, 0, 0, 0), (0, 0, 0, 0, 2, 0), (0, 0, 0, 0, 0, 1)]]
    drift = calibration.surface_drift(d, 1000, kappa, x, y, rows)
    assert abs(drift.span.relative_change) > 0.2  # the bias itself moves by a fifth of R
    assert np.all(np.abs(drift.shifts) < 1e-10)


def test_surface_drift_of_fixed_lr_is_third_order() -> None:
    d = 1000
    rows = [np.array(r) / ((d - 1) / 2) for r in
            [(0, 1, -1, 0, 0, 0), (0, 0, 0, 2, 0, -1), (0, 0, 0, 0, 2, -1)]]
    square = calibration.surface_drift(d, 1000, *_grid("fixed_lr", 7, 7, 2.0, 2.0, d), rows)
    assert abs(square.shifts[0]) < 1e-10  # a grid symmetric in x and y: a1 = a2 exactly
    assert np.all(np.abs(square.shifts[1:]) < 0.05)  # fourth-order terms leak, but little
    oblong = calibration.surface_drift(d, 1000, *_grid("fixed_lr", 13, 5, 3.5, 2.3, d), rows)
    assert np.all(np.abs(oblong.shifts) < 0.05)  # cubic terms leak, but little
    assert np.all(oblong.bounds(2.0) >= np.abs(oblong.shifts))


def test_surface_drift_validates_input() -> None:
    kappa, x, y = _grid("fixed_lr", 3, 3, 1.0, 1.0, 100)
    with pytest.raises(InvalidParameterError, match="equal length"):
        calibration.surface_drift(100, 1000, kappa[:-1], x, y, [np.zeros(6)])
    with pytest.raises(InvalidParameterError, match="6 entries"):
        calibration.surface_drift(100, 1000, kappa, x, y, [np.zeros(5)])
    with pytest.raises(InvalidParameterError, match="se has"):
        calibration.surface_drift(100, 1000, kappa, x, y, [np.zeros(6)], se=[1.0])


def test_corrected_entropy_on_vmf_and_on_a_held_out_mixture() -> None:
    d, kappa, n = 100, 200.0, 1000
    exact = float(vmf.entropy(d, kappa))
    w = vmf.sample(d, kappa, n, rng=5)
    fixed = calibration.corrected_entropy(sphere_entropy(w), d, n)
    sigma = math.hypot(fixed.bias_stderr, fixed.noise_gain * float(estimator_bias(d, n, kappa)
                                                                   .scatter))
    assert not fixed.extrapolated
    assert abs(fixed.value - exact) <= 3 * sigma
    assert fixed.kappa_hat == pytest.approx(kappa, rel=0.1)
    assert fixed.value == pytest.approx(fixed.estimate - fixed.bias)
    # two antipodal VMFs: they do not overlap, so the exact entropy is S_VMF + log 2
    kappa = 100.0
    half = vmf.sample(d, kappa, n // 2, rng=6)
    mixture = np.vstack([half, vmf.sample(d, kappa, n // 2, mean_direction=-np.eye(d)[0], rng=7)])
    exact = float(vmf.entropy(d, kappa)) + math.log(2)
    estimate = sphere_entropy(mixture)
    fixed = calibration.corrected_entropy(estimate, d, n)
    assert abs(fixed.value - exact) < abs(estimate - exact) / 3


def test_corrected_entropy_flags_and_validates() -> None:
    uniform = float(vmf.entropy_uniform(100))
    assert calibration.corrected_entropy(uniform + 5, 100, 1000).extrapolated
    with pytest.raises(InvalidParameterError):
        calibration.corrected_entropy(math.nan, 100, 1000)
    with pytest.raises(InvalidParameterError):
        calibration.corrected_entropy(0.0, 100, 1000, method="knn")


@pytest.mark.parametrize("method", ["geodesic", "angles", "chord"])
def test_stated_scatter_covers_fresh_samples_with_a_random_mean(method: str) -> None:
    """The table's claims hold for any orientation: fresh VMF samples about random mean
    directions (seeds the table never used) land within the stated bias ± scatter. Six
    independent estimates per method: each must lie within 4 standard deviations (Bonferroni
    over 18 at a 1e-3 family rate), and their mean squared z must not exceed what a χ²₆/6 reaches
    with probability 1e-3 (22.46/6), so a scatter stated 2× too small is caught."""
    rng = np.random.default_rng(777)
    z2 = []
    for d, c in [(10, 3.0), (30, 0.3), (100, 1.0), (100, 10.0), (1000, 0.3), (1000, 3.0)]:
        kappa = c * d
        w = vmf.sample(d, kappa, 250, mean_direction=rng.standard_normal(d), rng=rng)
        predicted = estimator_bias(d, 250, kappa, method)
        sigma = math.hypot(float(predicted.total_stderr), float(predicted.scatter))
        z = (sphere_entropy(w, method=method) - float(vmf.entropy(d, kappa))
             - float(predicted.value)) / sigma
        assert abs(z) < 4.0, (method, d, c, z)
        z2.append(z * z)
    assert np.mean(z2) < 22.46 / 6
