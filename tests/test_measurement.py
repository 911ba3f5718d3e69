"""Logged series → measurements: the one set of conventions of the simulator and the Recorder,
checked on synthetic series without torch."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from thermocheck import measurement
from thermocheck.simulator import measure as simulator_measure
from thermocheck.simulator.kernel import QUANTITIES
from thermocheck.stats import MIN_BATCHES, MIN_LOGS

pytestmark = pytest.mark.fast

ALPHA, RTOL = 1e-4, 1e-3


def _ar1(n: int, seed: int, mean: float = 1.0, phi: float = 0.5, scale: float = 0.05) -> np.ndarray:
    """A stationary AR(1) series around ``mean`` (started in its stationary law)."""
    rng = np.random.default_rng(seed)
    x = np.empty(n)
    x[0] = rng.normal(0.0, scale / np.sqrt(1 - phi**2))
    for k in range(1, n):
        x[k] = phi * x[k - 1] + rng.normal(0.0, scale)
    return mean + x


@pytest.mark.parametrize("seed", range(5))
def test_stationary_series_give_a_stationary_window(seed: int) -> None:
    n = 400
    got = measurement.judge({"radius": _ar1(n, seed), "loss": _ar1(n, seed + 100, 2.0),
                             "noise": _ar1(n, seed + 200, 3.0)}, alpha=ALPHA, rtol=RTOL)
    assert got.flags == {"radius": True, "loss": True, "noise": True, "directions": True}
    assert got.stationary and not got.reasons and 0 <= got.start < n // 2
    assert got.verdict.stationary and got.verdict.start == got.start


def test_a_drifting_loss_fails_the_loss_and_the_directions_only() -> None:
    n = 400
    drifting = _ar1(n, 1, 2.0) + np.linspace(0.0, 1.0, n)
    got = measurement.judge({"radius": _ar1(n, 2), "loss": drifting, "noise": _ar1(n, 3, 3.0)},
                            alpha=ALPHA, rtol=RTOL)
    assert got.flags == {"radius": True, "loss": False, "noise": True, "directions": False}
    assert not got.stationary and len(got.reasons) == 1


def test_without_a_loss_the_noise_judges_the_directions() -> None:
    n = 400
    drifting = _ar1(n, 4, 3.0) + np.linspace(0.0, 1.0, n)
    got = measurement.judge({"radius": _ar1(n, 5), "loss": np.full(n, np.nan),
                             "noise": drifting}, alpha=ALPHA, rtol=RTOL)
    assert "loss" not in got.flags  # a series with a non-finite value is not judged
    assert got.flags["directions"] is got.flags["noise"] is False


def test_a_window_shorter_than_two_known_relaxations_measures_nothing() -> None:
    """A quiet series passes every test on the window, but a theory that says it decorrelates
    over more than half the window leaves it out, with the reason; the other series stand."""
    n = 400
    series = {"radius": _ar1(n, 6), "loss": _ar1(n, 7, 2.0), "noise": _ar1(n, 8, 3.0)}
    assert measurement.judge(series, alpha=ALPHA, rtol=RTOL).stationary
    got = measurement.judge(series, alpha=ALPHA, rtol=RTOL, relaxation={"radius": n / 1.5,
                                                                        "noise": 1.0})
    assert got.flags == {"radius": False, "loss": True, "noise": True, "directions": True}
    assert len(got.reasons) == 1 and "relaxation time" in got.reasons[0]


def test_drifting_entropy_estimates_fail_the_directions() -> None:
    n = 400
    series = {"radius": _ar1(n, 6), "loss": _ar1(n, 7, 2.0), "noise": _ar1(n, 8, 3.0)}
    steady = measurement.judge(series, alpha=ALPHA, rtol=RTOL, entropy_logs=_ar1(20, 9, 1.0))
    drifting = measurement.judge(series, alpha=ALPHA, rtol=RTOL,
                                 entropy_logs=np.linspace(0.5, 1.5, 20) + _ar1(20, 9, 0.0, 0.0,
                                                                                 1e-3))
    assert steady.flags["directions"] and "entropy" in steady.details
    assert not drifting.flags["directions"] and "drift" in drifting.reasons[-1]
    assert drifting.flags["loss"]


def test_too_short_a_run_is_not_judged() -> None:
    n = MIN_LOGS - 1
    got = measurement.judge({"radius": _ar1(n, 0), "loss": _ar1(n, 1)}, alpha=ALPHA, rtol=RTOL,
                            burn_in=0.5)
    assert got.flags == {} and not got.stationary and got.start == n // 2
    assert f"{n} logs (< {MIN_LOGS})" in got.reasons[0]


@pytest.mark.parametrize("burn_in", [0.0, 0.3, 0.6])
def test_the_window_never_starts_inside_the_burn_in(burn_in: float) -> None:
    n = 300
    got = measurement.judge({"radius": _ar1(n, 11), "loss": _ar1(n, 12, 2.0)}, alpha=ALPHA,
                            rtol=RTOL, burn_in=burn_in)
    assert got.start >= int(burn_in * n) and n - got.start >= MIN_BATCHES


def test_window_estimate_and_entropy_estimate() -> None:
    x = _ar1(1000, 13, 5.0, phi=0.9)
    est = measurement.window_estimate(x)
    naive = x.std(ddof=1) / np.sqrt(x.size)
    assert est.value == pytest.approx(x.mean()) and est.n >= MIN_BATCHES
    assert est.stderr > 2 * naive  # autocorrelated logs: batch means, not the naive error
    short = measurement.window_estimate(x[:5])
    assert short.n == 5 and short.stderr == pytest.approx(x[:5].std(ddof=1) / np.sqrt(5))
    logs = np.array([1.0, 1.2, 0.8, 1.1])
    assert measurement.entropy_estimate(logs) == measurement.window_estimate(logs)


def test_the_simulator_measures_with_these_conventions(monkeypatch: pytest.MonkeyPatch) -> None:
    """A point's window and flags are those of :func:`measurement.judge` on its series."""
    n = 300
    rng = np.random.default_rng(0)
    series = 1.0 + 0.05 * rng.standard_normal((n, len(QUANTITIES)))
    entropy_logs = 1.0 + 0.01 * rng.standard_normal(12)
    calls: list[measurement.Judgement] = []

    def spy(*args: object, **kwargs: object) -> measurement.Judgement:
        calls.append(measurement.judge(*args, **kwargs))  # type: ignore[arg-type]
        return calls[-1]

    monkeypatch.setattr(simulator_measure, "judge", spy)
    state, verdict = simulator_measure.point_state(
        protocol="fixed_lr", d=3, hyperparameters={"lr": 0.01, "wd": 0.01}, sigma2=1.0,
        series=series, entropy_logs=entropy_logs, diverged_at=-1, log_every=10, extra={},
        alpha=ALPHA, rtol=RTOL)
    assert len(calls) == 1 and verdict == calls[0].verdict
    assert state.stationary_series == calls[0].flags
    assert state.extra["window_start_iteration"] == calls[0].start * 10
    assert state.sphere_entropy == measurement.entropy_estimate(entropy_logs)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_the_recorder_has_no_judgement_of_its_own() -> None:
    from thermocheck import record

    assert record.judge is measurement.judge
    assert record.window_estimate is measurement.window_estimate
    assert not hasattr(record.Recorder, "_judge")
