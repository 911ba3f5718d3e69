"""The fused kernel (thermocheck.simulator.kernel): Eq. 24 step by step, and a point's trajectory
the same in any pairing of points and any chunking of iterations."""

from __future__ import annotations

import numpy as np
import pytest

from thermocheck.simulator.engine import Engine
from thermocheck.simulator.kernel import QUANTITIES, Dynamics
from thermocheck.simulator.losses import LinearLoss, Loss, QuadraticLoss
from thermocheck.simulator.rng import point_id, standard_normals

pytestmark = pytest.mark.fast

SEED, D, SIGMA, RADIUS, LOG_EVERY, QUEUE_SIZE = 5, 3, 0.7, 1.3, 5, 7
#: Five points (an odd count: the last one of a thread's pairs runs alone), each with its own
#: step coefficient, weight decay and queue spacing.
POINTS = np.array([[0.05, 0.02], [0.12, 0.07], [0.03, 0.2], [0.2, 0.01], [0.08, 0.1]])
QUEUE_EVERY = np.array([1, 2, 3, 2, 1])
ITERATIONS = 200
#: Chunk ends that cut log blocks, queue spacings and the streams' 64-normal refills anywhere.
CHUNKS = (1, 37, 64, 129, ITERATIONS)


def _engine(order: np.ndarray, dynamics: Dynamics, loss: Loss, protocol: str) -> Engine:
    """An engine for ``POINTS[order]``; each point keeps its hyperparameters and queue spacing."""
    x, y = POINTS[order, 0], POINTS[order, 1]
    pids = np.array([point_id(a, b) for a, b in zip(x, y, strict=True)], dtype=np.uint64)
    m = len(order)
    return Engine.start(
        seed=SEED, pids=pids, d=D, init_radius=np.full(m, RADIUS), n_logs=ITERATIONS // LOG_EVERY,
        queue_size=QUEUE_SIZE, coef=x.copy(),
        wd=np.zeros(m) if protocol == "fixed_sphere" else y.copy(), radius=np.full(m, RADIUS),
        sigma=SIGMA, noise_scale=np.ones(D), dynamics=dynamics, loss=loss, log_every=LOG_EVERY,
        queue_every=QUEUE_EVERY[order], queue_used=np.full(m, QUEUE_SIZE),
    )


def _run(engine: Engine, chunks: tuple[int, ...]) -> Engine:
    for stop in chunks:
        engine.run_to(stop)
    return engine


def _per_point(engine: Engine) -> list[np.ndarray]:
    return [engine.w, engine.vel, engine.cvel, engine.acc, engine.series, engine.queue,
            engine.diverged]


DYNAMICS = {
    "fixed_lr": ("fixed_lr", Dynamics.correct("fixed_lr")),
    "fixed_elr": ("fixed_elr", Dynamics.correct("fixed_elr")),
    "fixed_sphere": ("fixed_sphere", Dynamics.correct("fixed_sphere")),
    "nesterov": ("fixed_lr", Dynamics.correct("fixed_lr", momentum=0.5, nesterov=True)),
    "adamw": ("fixed_lr", Dynamics.adamw(beta1=0.9, beta2=0.999, eps=1e-8)),
    "mutant": ("fixed_elr", Dynamics(2, 0, 0.5, 0, False, False, False)),
}


@pytest.mark.parametrize("name", DYNAMICS)
@pytest.mark.parametrize("quadratic", [False, True])
def test_a_point_runs_the_same_in_any_pairing_and_chunking(name: str, quadratic: bool) -> None:
    """Reversing the points changes every pairing (and which point runs alone); chunks change where
    iterations stop. Weights, velocities, sums, logs and queues stay the same, bit for bit, and
    so does a point run alone."""
    protocol, dynamics = DYNAMICS[name]
    loss = (QuadraticLoss(A=np.diag([1.0, -0.5, 0.2]), b=[0.1, 0.0, 0.3]) if quadratic
            else LinearLoss())
    order = np.arange(len(POINTS))
    whole = _per_point(_run(_engine(order, dynamics, loss, protocol), (ITERATIONS,)))
    reverse = _per_point(_run(_engine(order[::-1], dynamics, loss, protocol), CHUNKS))
    for a, b in zip(whole, reverse, strict=True):
        assert np.array_equal(a, b[::-1])
    alone = _per_point(_run(_engine(order[2:3], dynamics, loss, protocol), CHUNKS))
    for a, b in zip(whole, alone, strict=True):
        assert np.array_equal(a[2:3], b)


def _reference(protocol: str, m: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Eq. 24 written out with numpy for point ``m`` (linear loss ``f = c + μᵀw̄``, ``∇L(w) =
    P_w̄ μ/‖w‖``, noise ``σ P_w̄ ε/‖w‖`` with ε the point's own normals, η = lr or elr‖w‖², the
    sphere's projection) → final weights, block means of the loss and radius, the queue."""
    lr, wd = POINTS[m]
    wd = 0.0 if protocol == "fixed_sphere" else wd
    terms = LinearLoss().kernel(D)
    pid = point_id(*POINTS[m])
    z = np.random.Generator(np.random.Philox(key=[SEED, pid])).standard_normal(D)
    w = z / np.linalg.norm(z) * RADIUS
    eps = standard_normals(SEED, pid, D * ITERATIONS).reshape(ITERATIONS, D)
    loss, radius = np.zeros(ITERATIONS), np.zeros(ITERATIONS)
    queue = np.zeros((QUEUE_SIZE, D))
    for k in range(ITERATIONS):
        r = np.linalg.norm(w)
        wbar = w / r
        loss[k], radius[k] = terms.c + terms.mu @ wbar, r
        grad = terms.mu - (terms.mu @ wbar) * wbar
        noise = eps[k] - (eps[k] @ wbar) * wbar
        eta = lr * r**2 if protocol == "fixed_elr" else lr
        w = (1 - eta * wd) * w - eta * (grad / r + SIGMA / r * noise)
        if protocol == "fixed_sphere":
            w *= RADIUS / np.linalg.norm(w)
        if (k + 1) % QUEUE_EVERY[m] == 0:
            queue[((k + 1) // QUEUE_EVERY[m] - 1) % QUEUE_SIZE] = w
    blocks = (ITERATIONS // LOG_EVERY, LOG_EVERY)
    return w, np.stack([loss.reshape(blocks).mean(1), radius.reshape(blocks).mean(1)], 1), queue


@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr", "fixed_sphere"])
def test_the_plain_step_is_eq_24(protocol: str) -> None:
    """The fused step against Eq. 24 written out term by term, over chunks that cut log blocks
    and queue spacings: weights, logged loss and radius, and every queued snapshot. The two
    differ only in rounding order: a few roundings per step, accumulated over the run (the
    dynamics contract, so errors do not grow faster), bound them by 10 ε per iteration."""
    engine = _run(_engine(np.arange(len(POINTS)), Dynamics.correct(protocol), LinearLoss(),
                          protocol), CHUNKS)
    rtol = 10 * ITERATIONS * np.finfo(float).eps
    rows = [QUANTITIES.index("loss"), QUANTITIES.index("radius")]
    for m in range(len(POINTS)):
        w, logged, queue = _reference(protocol, m)
        np.testing.assert_allclose(engine.w[m], w, rtol=rtol, atol=0)
        np.testing.assert_allclose(engine.series[m][:, rows], logged, rtol=rtol, atol=0)
        np.testing.assert_allclose(engine.queue[m], queue, rtol=rtol, atol=rtol * RADIUS)
