"""The simulator's API: streams, protocols, measurements, divergence, validation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from thermocheck import theory
from thermocheck.errors import InvalidParameterError
from thermocheck.simulator import (
    QUANTITIES,
    LinearLoss,
    Loss,
    QuadraticLoss,
    SimulationResult,
    relaxation_steps,
    simulate,
)
from thermocheck.simulator.api import MIN_QUEUE_SAMPLES

pytestmark = pytest.mark.fast

GRIDS: dict[str, dict[str, list[float]]] = {
    "fixed_sphere": {"elr": [0.02, 0.05], "radius": [0.5, 2.0]},
    "fixed_elr": {"elr": [0.02, 0.05], "wd": [0.02, 0.05]},
    "fixed_lr": {"lr": [0.02, 0.05], "wd": [0.02, 0.05]},
}
SHORT: dict[str, Any] = {"d": 3, "iterations": 20_000, "log_every": 100, "entropy_logs": 0}


def run(protocol: str, **options: Any) -> SimulationResult:
    return simulate(protocol, **{"grid": GRIDS[protocol], **SHORT, **options})


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_a_point_alone_equals_the_same_point_in_the_grid(protocol: str) -> None:
    """A point's stream depends on (seed, point) only (docs/architecture.md), so its trajectory and
    every logged number are bit-for-bit the same alone and among other points."""
    full = run(protocol, seed=11)
    x_axis, y_axis = theory.AXES[protocol]
    m = 3  # the last point of the 2 × 2 grid
    alone = run(protocol, seed=11, grid={x_axis: [full.x[m]], y_axis: [full.y[m]]})
    for q in QUANTITIES:
        assert np.array_equal(alone.series[q][0], full.series[q][m]), q
    assert np.array_equal(alone.weights[0], full.weights[m])
    assert not np.array_equal(run(protocol, seed=12).weights, full.weights)


def test_the_sphere_keeps_the_radius() -> None:
    res = run("fixed_sphere", queue_size=100)  # filled: 400 samples were taken
    radius = res.y
    assert np.all(np.abs(np.linalg.norm(res.weights, axis=1) / radius - 1) <= 4e-16)
    assert np.all(np.abs(np.linalg.norm(res.queue, axis=2) / radius[:, None] - 1) <= 4e-16)
    # logged block means of ‖w‖ over 100 steps: the round-off of the sum only
    assert np.all(np.abs(res.series["radius"] / radius[:, None] - 1) <= 1e-14)
    assert all(s.norm_balance is None and s.lambda_eff is not None for s in res.grid)


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_states_report_the_claimed_hyperparameters_and_sigma(protocol: str) -> None:
    res = run(protocol, sigma2=2.25)
    for s, x, y in zip(res.grid, res.x, res.y, strict=True):
        assert s.hyperparameters == theory.axes_grid(protocol, x, y)
        assert (s.sigma2.value, s.sigma2.stderr) == (2.25, 0.0)
        assert (s.substrate, s.energy_is_loss, s.extra["loss"]) == ("isotropic", True, "linear")
        measured = s.extra["sigma2_measured"]
        assert abs(measured["value"] - 2.25) < 5 * measured["stderr"] + 1e-3
        assert s.sphere_entropy is None


def test_result_shapes_and_timings() -> None:
    res = run("fixed_lr", entropy_logs=2, entropy_every=2000, queue_size=100, queue_every=20)
    n_logs = SHORT["iterations"] // SHORT["log_every"]
    assert all(a.shape == (4, n_logs) for a in res.series.values())
    assert res.iterations[-1] == SHORT["iterations"] and res.iterations.size == n_logs
    assert res.entropy.shape == (4, 2) and np.all(np.isfinite(res.entropy))
    assert list(res.entropy_iterations) == [18_000, 20_000]
    assert res.queue.shape == (4, 100, 3) and res.weights.shape == (4, 3)
    assert all(s.sphere_entropy is not None and s.sphere_entropy.n == 2 for s in res.grid)
    assert set(res.timings) >= {"kernel_s", "entropy_s", "total_s", "ns_per_point_step"}


def test_progress_is_reported_to_the_end() -> None:
    calls: list[tuple[int, int]] = []
    run("fixed_lr", progress=lambda done, total: calls.append((done, total)))
    done = [c[0] for c in calls]
    assert done == sorted(done) and calls[-1] == (SHORT["iterations"], SHORT["iterations"])
    assert 50 <= len(calls) <= 101


def test_a_callable_loss_runs_the_same_step() -> None:
    """The user-loss path (a Python call per iteration) runs the same kernel step: with the
    linear loss's own function the trajectory is bit-for-bit that of the built-in loss."""
    builtin = run("fixed_elr", iterations=2000, log_every=10)
    custom = run("fixed_elr", iterations=2000, log_every=10, loss=LinearLoss().__call__)
    assert np.array_equal(custom.weights, builtin.weights)
    np.testing.assert_allclose(custom.series["loss"], builtin.series["loss"], atol=1e-15)
    assert custom.grid[0].extra["loss"] == "custom"


def test_a_loss_subclass_runs_the_python_path() -> None:
    """A user's :class:`Loss` subclass (here returning Fortran-ordered gradients, which the
    kernel could not take) is checked and copied before the kernel sees it."""

    class Tilted(Loss):
        name = "tilted"

        def __call__(self, wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            values, grads = LinearLoss()(wbar)
            return values, np.asfortranarray(grads)

    builtin = run("fixed_lr", iterations=2000, log_every=10)
    custom = run("fixed_lr", iterations=2000, log_every=10, loss=Tilted())
    assert np.array_equal(custom.weights, builtin.weights)
    assert custom.grid[0].extra["loss"] == "tilted"


def test_a_quadratic_loss_matches_its_callable_form() -> None:
    rng = np.random.default_rng(0)
    loss = QuadraticLoss(rng.normal(size=(3, 3)), b=rng.normal(size=3), c=0.5)
    builtin = run("fixed_lr", iterations=2000, log_every=10, loss=loss)
    custom = run("fixed_lr", iterations=2000, log_every=10, loss=loss.__call__)
    np.testing.assert_allclose(custom.weights, builtin.weights, rtol=1e-9)
    np.testing.assert_allclose(custom.series["loss"], builtin.series["loss"], rtol=1e-9)
    assert builtin.grid[0].extra["loss"] == "quadratic"


def test_a_diverged_point_is_reported_not_raised() -> None:
    """ηλ > 2 under fixed LR makes ‖w‖ grow geometrically: that point is non-stationary with
    reason "diverged", the others are measured as usual."""
    res = simulate("fixed_lr", d=3, grid={"lr": [0.05, 50.0], "wd": [0.05]}, iterations=20_000,
                   log_every=100, entropy_logs=2, entropy_every=2000, queue_size=100,
                   queue_every=20)
    ok, bad = res.grid
    assert ok.stationary and ok.loss is not None and ok.sphere_entropy is not None
    assert not bad.stationary and bad.reason.startswith("diverged")
    assert bad.loss is None and bad.sphere_entropy is None and np.isnan(res.entropy[1]).all()


def test_a_custom_loss_returning_nan_diverges() -> None:
    def broken(wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return np.zeros(len(wbar)), np.full(wbar.shape, np.nan)

    res = run("fixed_lr", iterations=1000, log_every=10, loss=broken)
    assert all(not s.stationary and s.reason.startswith("diverged") for s in res.grid)


def test_an_unfinished_relaxation_is_not_stationary() -> None:
    """Fixed LR relaxes in about 1/(4ηλ) iterations: from ‖w‖ = 10 at ηλ = 1e-5 (25 000
    iterations) a run of 20 000 iterations has no stationary window."""
    res = simulate("fixed_lr", d=3, grid={"lr": [0.01], "wd": [0.001]}, init_radius=10.0,
                   iterations=20_000, log_every=100, entropy_logs=0)
    state = res.grid[0]
    assert not state.stationary and "radius" in state.reason
    assert state.loss is not None  # measured anyway, for inspection


@pytest.mark.parametrize(("options", "match"), [
    ({"protocol": "sgd"}, "protocol"),
    ({"grid": {"lr": [0.1]}}, "needs exactly the axes"),
    ({"grid": {"lr": [0.1, 0.1], "wd": [0.1]}}, "distinct"),
    ({"grid": {"lr": [-0.1], "wd": [0.1]}}, "lr"),
    ({"d": 1}, "d=1"),
    ({"sigma2": 0.0}, "sigma2"),
    ({"iterations": 1050}, "multiple of log_every"),
    ({"iterations": 5000}, "at least 100 logs"),
    ({"entropy_logs": 1}, "entropy_logs=1"),
    ({"entropy_logs": 3, "entropy_every": 8000, "queue_size": 100, "queue_every": 20},
     "before the middle"),
    ({"seed": -1}, "seed"),
    ({"seed": 2**64}, "2\\*\\*64"),
    ({"queue_size": 1}, "queue_size"),
    ({"log_every": 0}, "log_every"),
    ({"loss": LinearLoss([1.0, 0.0])}, "length d=3"),
    ({"loss": LinearLoss([2.0, 0.0, 0.0])}, "unit vector"),
    ({"loss": QuadraticLoss(np.eye(2))}, "3×3"),
    ({"loss": "linear"}, "loss="),
    ({"progress": "yes"}, "progress"),
])
def test_invalid_options_are_refused(options: dict[str, Any], match: str) -> None:
    kwargs = {"protocol": "fixed_lr", "grid": GRIDS["fixed_lr"], **SHORT, **options}
    with pytest.raises(InvalidParameterError, match=match):
        simulate(kwargs.pop("protocol"), **kwargs)


def test_a_custom_loss_with_wrong_shapes_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match="grad of shape"):
        run("fixed_lr", loss=lambda wbar: (np.zeros(len(wbar)), np.zeros(3)))
    with pytest.raises(InvalidParameterError, match="must return"):
        run("fixed_lr", loss=lambda wbar: np.zeros(len(wbar)))


# ---------------------------------------------------------------------------------------------
# The entropy's snapshots follow the direction's relaxation time
# ---------------------------------------------------------------------------------------------


def test_relaxation_time_has_the_well_and_diffusion_limits() -> None:
    """Low T: the well relaxes at η_eff·‖μ‖ per step; high T (no well): diffusion on S^{d−1} at
    (d − 1) η_eff T; fixed LR uses η_eff = η/r*²."""
    elr = np.array([1e-3])
    cold = relaxation_steps("fixed_elr", elr, np.array([0.1]), d=3, sigma=1.0, curvature=1.0)
    assert abs(cold[0] * 1e-3 - 1) < 2e-3  # T = 5e-4: a correction of order (d − 1)T/2
    free = relaxation_steps("fixed_sphere", elr, np.array([1.0]), d=30, sigma=1.0, curvature=0.0)
    assert free[0] == pytest.approx(1 / (29 * 1e-3 * 5e-4), rel=1e-12)
    lr, wd = np.array([1e-2]), np.array([1e-3])
    elr_lr = lr / np.sqrt(lr * (1.0 * 9 + 1.0) / (2 * wd))
    assert relaxation_steps("fixed_lr", lr, wd, d=10, sigma=1.0, curvature=1.0) == pytest.approx(
        relaxation_steps("fixed_elr", elr_lr, wd, d=10, sigma=1.0, curvature=1.0), rel=1e-12)


def test_snapshots_are_spaced_by_the_relaxation_time() -> None:
    """At η_eff = 10⁻² (relaxation ~100 steps) snapshots 10 steps apart would be ~90 %
    correlated; the queue spaces them by two relaxation times, the estimates share no snapshot,
    and the measured lag-one correlation is about e⁻² (the old fixed spacing gave 0.9)."""
    grid = {"elr": [1e-2], "radius": [1.0]}
    res = simulate("fixed_sphere", d=3, grid=grid, iterations=400_000, log_every=1000,
                   queue_size=1000, queue_every=10, entropy_every=50_000, entropy_logs=4, seed=3)
    tau = relaxation_steps("fixed_sphere", np.array([1e-2]), np.array([1.0]), d=3, sigma=1.0,
                           curvature=1.0)[0]
    assert res.queue_every[0] == math.ceil(2 * tau)
    assert res.queue_used[0] == 50_000 // res.queue_every[0]  # one estimate's window, no more
    info = res.grid[0].extra["entropy_queue"]
    assert not info["correlated"] and info["n_samples"] == res.queue_used[0]
    # e^-2 = 0.135, sampling error of one lag-one estimate about 1/sqrt(N) = 0.04 each
    assert abs(np.mean(res.entropy_lag) - math.exp(-2)) < 4 / math.sqrt(4 * res.queue_used[0])
    old = simulate("fixed_sphere", d=3, grid=grid, iterations=400_000, log_every=1000,
                   queue_size=1000, queue_every=10, entropy_every=50_000, entropy_logs=4, seed=3,
                   decorrelation=0)
    assert np.mean(old.entropy_lag) > 0.8 and not old.grid[0].extra["entropy_queue"]["correlated"]


def test_a_point_too_slow_for_its_window_is_marked_correlated() -> None:
    res = simulate("fixed_sphere", d=3, grid={"elr": [1e-3, 0.05], "radius": [1.0]},
                   iterations=40_000, log_every=100, queue_size=500, queue_every=5,
                   entropy_every=5_000, entropy_logs=2)
    slow, fast = (s.extra["entropy_queue"] for s in res.grid)
    assert slow["correlated"] and slow["n_samples"] == MIN_QUEUE_SAMPLES
    assert slow["spacing"] == 5_000 // MIN_QUEUE_SAMPLES
    assert not fast["correlated"] and fast["spacing"] >= 2 * fast["relaxation_steps"]


def test_entropy_of_a_point_does_not_depend_on_its_neighbours() -> None:
    options = {"d": 3, "iterations": 40_000, "log_every": 100, "queue_size": 500,
               "queue_every": 5, "entropy_every": 10_000, "entropy_logs": 2, "seed": 5}
    full = simulate("fixed_elr", grid={"elr": [0.02, 0.08], "wd": [0.05]}, **options)
    alone = simulate("fixed_elr", grid={"elr": [0.08], "wd": [0.05]}, **options)
    assert np.array_equal(alone.entropy[0], full.entropy[1])
    assert alone.queue_every[0] == full.queue_every[1]


def test_noise_is_spelled_sigma2_and_sigma_is_a_deprecated_alias() -> None:
    """σ² is the one spelling (``State.sigma2``, the laws); ``simulate(sigma=σ)`` still runs the
    same simulation, with a DeprecationWarning."""
    new = run("fixed_lr", sigma2=2.25)
    with pytest.warns(DeprecationWarning, match=r"pass sigma2=σ²"):
        old = run("fixed_lr", sigma=1.5)
    assert [s.to_dict() for s in new.grid] == [s.to_dict() for s in old.grid]
    assert all(s.sigma2.value == 2.25 for s in new.grid)
    with pytest.raises(InvalidParameterError, match="sigma2 and sigma were both given"):
        run("fixed_lr", sigma2=2.25, sigma=1.5)
    with pytest.raises(InvalidParameterError, match="sigma2"):
        run("fixed_lr", sigma2=0.0)
