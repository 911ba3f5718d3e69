"""Stationarity and standard errors of autocorrelated series (thermocheck.stats)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import lfilter

from thermocheck import stats
from thermocheck.errors import InvalidParameterError

pytestmark = pytest.mark.fast


def ar1(n: int, phi: float, rng: np.random.Generator, mean: float = 5.0) -> np.ndarray:
    """A stationary AR(1) series (started in its stationary law), unit innovations."""
    x0 = rng.normal() / np.sqrt(1 - phi**2)
    return lfilter([1.0], [1.0, -phi], rng.normal(size=n), zi=[phi * x0])[0] + mean


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_integrated_autocorr_time_of_ar1(phi: float) -> None:
    """τ_int = (1 + φ)/(1 − φ) for AR(1); within 15 % on 2·10⁵ values."""
    x = ar1(200_000, phi, np.random.default_rng(1))
    assert stats.integrated_autocorr_time(x) == pytest.approx((1 + phi) / (1 - phi), rel=0.15)


def test_constant_series_is_white_and_exact() -> None:
    x = np.full(500, 2.5)
    assert stats.integrated_autocorr_time(x) == 1.0
    bm = stats.batch_means(x)
    assert (bm.mean, bm.stderr) == (2.5, 0.0)
    assert stats.assess_stationarity({"x": x}).stationary


@pytest.mark.parametrize("phi", [0.0, 0.9])
def test_batch_means_coverage(phi: float) -> None:
    """±2 standard errors cover the true mean of AR(1) series about 95 % of the time."""
    rng = np.random.default_rng(2)
    covered = [abs((bm := stats.batch_means(ar1(2000, phi, rng))).mean - 5.0) < 2 * bm.stderr
               for _ in range(400)]
    assert 0.90 <= np.mean(covered) <= 0.99


def test_a_known_relaxation_time_keeps_a_short_window_honest() -> None:
    """A window of two relaxation times (AR(1), φ = 1 − 1/500, 1000 values) cannot show how
    slowly it decorrelates: its own τ_int estimate puts the true mean beyond 3 standard errors in
    a third of the series. With ``tau_floor = (1 + φ)/(1 − φ)`` the rate is within what a t law
    with the batches' degrees of freedom allows (Bonferroni-free, binomial 99.9 % bound)."""
    phi, n_series = 1 - 1 / 500, 200
    rng = np.random.default_rng(5)
    series = [ar1(1000, phi, rng) for _ in range(n_series)]

    def beyond_three(floor: float) -> float:
        fits = [stats.batch_means(x, tau_floor=floor) for x in series]
        return float(np.mean([abs(bm.mean - 5.0) > 3 * bm.stderr for bm in fits]))

    from scipy import stats as sps

    expected = 2 * sps.t.sf(3, df=stats.MIN_BATCHES - 1)
    bound = sps.binom.ppf(0.999, n_series, expected) / n_series
    assert beyond_three(1.0) > bound  # the failure the floor is for
    assert beyond_three((1 + phi) / (1 - phi)) <= bound
    with pytest.raises(InvalidParameterError, match="tau_floor"):
        stats.batch_means(series[0], tau_floor=0.5)


def test_batches_exceed_tau_when_the_series_allows() -> None:
    bm = stats.batch_means(ar1(20_000, 0.9, np.random.default_rng(3)))
    assert bm.batches_exceed_tau and 10 <= bm.n_batches <= 30
    short = stats.batch_means(ar1(300, 0.99, np.random.default_rng(3)))
    assert not short.batches_exceed_tau and short.n_batches == 10


def test_mser_cuts_an_initial_transient() -> None:
    """An exponential transient of 10 noise units decaying over 200 values: the cut lands after
    its bulk (> 300) and well before the middle; a stationary series is barely cut."""
    rng = np.random.default_rng(4)
    n = 4000
    transient = 10.0 * np.exp(-np.arange(n) / 200.0)
    cut = stats.mser_truncation(ar1(n, 0.5, rng) + transient)
    assert 300 < cut < n // 4
    assert stats.mser_truncation(ar1(n, 0.5, rng)) < n // 20


@pytest.mark.parametrize("phi", [0.0, 0.5, 0.9])
def test_false_rejection_rate_on_stationary_ar1(phi: float) -> None:
    """Stationary AR(1), 2000 values (≥ 100 τ_int): at most 1 false rejection in 300.

    Measured over 2000 series each (see assess_stationarity): 0 / 0 / 0 for φ = 0, 0.5, 0.9;
    0.2 % at φ = 0.97 (30 τ_int) and 11 % at φ = 0.99 (10 τ_int), where runs are too short."""
    rng = np.random.default_rng(5)
    rejected = sum(not stats.assess_stationarity({"x": ar1(2000, phi, rng)}).stationary
                   for _ in range(300))
    assert rejected <= 1


def test_ramp_is_rejected() -> None:
    """A linear ramp of 3 noise standard deviations over the run is rejected every time."""
    rng = np.random.default_rng(6)
    n = 2000
    ramp = np.linspace(0.0, 3.0 / np.sqrt(1 - 0.5**2), n)
    verdicts = [stats.assess_stationarity({"x": ar1(n, 0.5, rng) + ramp}) for _ in range(50)]
    assert not any(v.stationary for v in verdicts)
    assert all(v.reason.startswith(("drift", "no stationary window")) for v in verdicts)


def test_slow_relaxation_has_no_stationary_window() -> None:
    """A transient that decays over most of the run: no stationary window, by MSER truncating in
    the last half or by the drift left in the kept half."""
    rng = np.random.default_rng(7)
    n = 2000
    x = ar1(n, 0.5, rng, mean=1.0) * 0.01 + np.exp(-np.arange(n) / 600.0)
    verdict = stats.assess_stationarity({"radius": x, "loss": ar1(n, 0.0, rng)})
    assert not verdict.stationary
    assert "radius" in verdict.reason and verdict.start >= n // 2


@pytest.mark.parametrize("seed", [1, 2, 20])
def test_a_quiet_stretch_near_the_end_is_not_a_transient(seed: int) -> None:
    """Stationary AR(1) with φ = 0.99 (10 τ_int over the run) whose MSER-5 minimum falls in the
    last half (MSER's end effect): the whole run does not drift, so it is stationary."""
    x = ar1(2000, 0.99, np.random.default_rng(seed))
    assert 2 * stats.mser_truncation(x) > x.size
    verdict = stats.assess_stationarity({"x": x})
    assert verdict.stationary, verdict.reason
    assert 2 * verdict.start <= x.size


def test_small_drift_below_rtol_is_tolerated() -> None:
    """A drift of 1e-4 of the mean, significant against tiny noise, is below rtol = 1e-3."""
    rng = np.random.default_rng(8)
    x = 1.0 + 1e-4 * np.linspace(0, 1, 2000) + 1e-7 * rng.normal(size=2000)
    assert stats.drift_test(x).p_value < 1e-10
    assert stats.assess_stationarity({"x": x}).stationary
    assert not stats.assess_stationarity({"x": x}, rtol=1e-5).stationary


def test_validation_errors() -> None:
    x = np.zeros(100)
    with pytest.raises(InvalidParameterError, match="alpha"):
        stats.assess_stationarity({"x": x}, alpha=0.0)
    with pytest.raises(InvalidParameterError, match="one length"):
        stats.assess_stationarity({"x": x, "y": np.zeros(120)})
    with pytest.raises(InvalidParameterError, match="finite"):
        stats.batch_means(np.r_[x, np.nan])
    with pytest.raises(InvalidParameterError, match="at least"):
        stats.assess_stationarity({"x": np.zeros(10)})
    with pytest.raises(InvalidParameterError, match="at least one"):
        stats.assess_stationarity({})
