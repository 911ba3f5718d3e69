"""The Gibbs law ρ(w̄) ∝ exp(−f(w̄)/T) for random scale-invariant losses (Eq. 7, 19).

With isotropic noise the stationary direction law is Gibbs for *any* loss on the sphere. The
simulator's U = E f and S(ρ) are compared with quadrature over the circle (d = 2) and the sphere
S² (d = 3), on the fixed sphere (``T = η_eff σ²/2``) with 8 radii as independent replicas (the
radius does not enter the direction's dynamics; each point has its own stream).

Set-up and allowances: T = 0.5 and each loss is scaled to a range of 3T on the sphere, so that
every well is visited many times in 10⁶ iterations (deeper wells mix exponentially slowly and the
batch-means errors then miss the hopping; the stationarity rule cannot see that). η_eff = 0.01;
the Euler step biases U by a relative O(η_eff × curvature): allowance ``η_eff · c · T`` with
``c = 2(‖A‖₂ + ‖b‖)`` bounding the loss's curvature on the sphere (measured within 0.2 of that over
8 random losses). Queue samples are taken every 250 iterations, longer than the mixing time
``1/(η_eff T) = 200``; S(ρ) gets an allowance of 0.05 nats for the k-NN estimator at N = 1000.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.polynomial.legendre import leggauss

from thermocheck.simulator import QuadraticLoss, SimulationResult, simulate

pytestmark = pytest.mark.fast

T = 0.5
ELR = 0.01
Z = 5.0
T_ENTROPY = 4.0  # the pooled S has 16 estimates (8 replicas × 2): Student's t, 15 dof, 1e-3
KL_BIAS = 0.05
REPLICAS = np.geomspace(0.5, 2.0, 8)

Field = Callable[[np.ndarray], np.ndarray]


def sphere_nodes(d: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights on S^{d−1}: 4096 equal arcs (d = 2), or Gauss–Legendre in
    cos θ (300 nodes) × 600 equal steps in φ (d = 3); the weights sum to the sphere's area."""
    if d == 2:
        theta = np.linspace(0.0, 2 * np.pi, 4096, endpoint=False)
        return np.stack([np.cos(theta), np.sin(theta)], 1), np.full(4096, 2 * np.pi / 4096)
    z, wz = leggauss(300)
    phi = np.linspace(0.0, 2 * np.pi, 600, endpoint=False)
    zz, pp = np.meshgrid(z, phi, indexing="ij")
    s = np.sqrt(1 - zz**2)
    nodes = np.stack([s * np.cos(pp), s * np.sin(pp), zz], -1).reshape(-1, 3)
    return nodes, np.repeat(wz * 2 * np.pi / 600, 600)


def gibbs(f: Field, d: int) -> tuple[float, float]:
    """U = E f and S = −E log ρ of ρ ∝ exp(−f/T) on S^{d−1}, by quadrature."""
    nodes, weights = sphere_nodes(d)
    values = f(nodes)
    p = np.exp(-(values - values.min()) / T) * weights
    rho_w = p / p.sum()  # probability of each node's cell
    return float(rho_w @ values), float(-(rho_w @ np.log(rho_w / weights)))


def scaled_quadratic(a: np.ndarray, b: np.ndarray) -> QuadraticLoss:
    """``bᵀw̄ + w̄ᵀAw̄`` rescaled to a range of 3T over the sphere."""
    nodes, _ = sphere_nodes(b.size)
    values = QuadraticLoss(a, b=b)(nodes)[0]
    scale = 3 * T / float(np.ptp(values))
    return QuadraticLoss(a * scale, b=b * scale)


def run(d: int, loss: Any, iterations: int, *, entropy: bool) -> SimulationResult:
    return simulate("fixed_sphere", d=d, grid={"elr": [ELR], "radius": REPLICAS},
                    sigma2=2 * T / ELR, loss=loss, iterations=iterations,
                    log_every=iterations // 500, queue_size=1000, queue_every=250,
                    entropy_every=iterations // 4, entropy_logs=2 if entropy else 0)


def check_gibbs(result: SimulationResult, f: Field, curvature: float) -> None:
    states = list(result.grid)
    assert all(s.stationary for s in states), [s.reason for s in states if not s.stationary]
    u_expected, s_expected = gibbs(f, result.d)
    u = np.mean([s.loss.value for s in states])  # type: ignore[union-attr]
    u_err = np.sqrt(np.sum([s.loss.stderr**2 for s in states])) / len(states)  # type: ignore[union-attr]
    u_band = Z * u_err + ELR * curvature * T
    assert abs(u - u_expected) <= u_band, f"U = {u:.5f} ± {u_err:.2g}, Gibbs {u_expected:.5f}"
    if result.entropy.size:
        logs = result.entropy.ravel()
        s_err = logs.std(ddof=1) / np.sqrt(logs.size)
        s_band = T_ENTROPY * s_err + KL_BIAS
        assert abs(logs.mean() - s_expected) <= s_band, (
            f"S(ρ) = {logs.mean():.4f} ± {s_err:.2g}, Gibbs {s_expected:.4f}")


matrices = st.integers(2, 3).flatmap(lambda d: st.tuples(
    st.lists(st.lists(st.floats(-1, 1), min_size=d, max_size=d), min_size=d, max_size=d),
    st.lists(st.floats(-1, 1), min_size=d, max_size=d),
))


@settings(derandomize=True, deadline=None, max_examples=4, database=None)
@given(matrices)
def test_random_quadratic_losses_are_gibbs(ab: tuple[list[list[float]], list[float]]) -> None:
    """``f = bᵀw̄ + w̄ᵀAw̄`` with drawn A, b (plus ``e_1`` in b, so that f is never constant)."""
    a, b = np.asarray(ab[0]), np.asarray(ab[1])
    b[0] += 1.0
    loss = scaled_quadratic(a, b)
    d = b.size
    curvature = 2 * (float(np.abs(np.linalg.eigvalsh(loss.matrix(d))).max())
                     + float(np.linalg.norm(loss.linear(d))))
    check_gibbs(run(d, loss, 1_000_000, entropy=True), lambda w: loss(w)[0], curvature)


def test_a_python_loss_on_the_circle_is_gibbs() -> None:
    """A trigonometric loss (range 3T), not a built-in: it runs through the per-iteration Python
    path, 10⁵ iterations."""
    k = np.arange(1, 4)
    a, b = np.array([0.4, -0.3, 0.2]), np.array([0.1, 0.3, -0.2])
    theta = np.linspace(0.0, 2 * np.pi, 4096)[:, None]
    scale = 3 * T / float(np.ptp((a * np.cos(k * theta) + b * np.sin(k * theta)).sum(1)))
    a, b = a * scale, b * scale

    def f(wbar: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        angle = np.arctan2(wbar[:, 1], wbar[:, 0])[:, None]
        value = (a * np.cos(k * angle) + b * np.sin(k * angle)).sum(1)
        slope = (k * (b * np.cos(k * angle) - a * np.sin(k * angle))).sum(1)
        return value, slope[:, None] * np.stack([-wbar[:, 1], wbar[:, 0]], 1)

    curvature = float(np.sum((np.abs(a) + np.abs(b)) * k**2))
    check_gibbs(run(2, f, 100_000, entropy=False), lambda w: f(w)[0], curvature)
