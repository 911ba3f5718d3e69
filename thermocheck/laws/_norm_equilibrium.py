"""AdamW's norm equilibrium on scale-invariant weights (Kosson et al., 2024).

Not a law of the ideal-gas paper (arXiv:2511.07308): it is the rotational equilibrium of Kosson,
Messmer and Jaggi, "Rotational Equilibrium: How Weight Decay Balances Learning Across Neural
Networks" (ICML 2024, arXiv:2305.17212), for ``torch.optim.AdamW`` (decoupled weight decay).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from thermocheck.laws._common import Check, GridLike, Run, law, nonnegative, where
from thermocheck.optimizers import adamw_equilibrium
from thermocheck.results import LawResult
from thermocheck.states import Estimate, State

__all__ = ["ADAMW_TOL", "norm_equilibrium", "random_walk_gap"]

LAW = "norm_equilibrium"

#: Coefficient of the model allowance ``ADAMW_TOL · ε_A`` (:func:`random_walk_gap`). On the
#: simulator's AdamW table (``benchmarks/adamw_table.py``: d ∈ {3, 10, 30}, β1 ∈ {0.5, 0.9},
#: ηλ ∈ [1e-5, 1e-3], μ off the coordinate axes) the largest measured ``|relative deviation| / ε_A``
#: is 0.15 (the angular update at d = 3); the coefficient is twice that envelope.
ADAMW_TOL = 0.3

_SGD_REASON = ("the states were trained with SGD: the norm equilibrium of AdamW (Kosson et al., "
               "2024) does not apply; SGD's laws are ideal_gas, norm_balance and the others")


def random_walk_gap(state: State) -> float:
    """``ε_A = 1/√(d − 1) + ηλ/(1 − β1)``: the relative size of what the random-walk model of
    Kosson et al. (2024) leaves out.

    ``ηλ/(1 − β1)`` is the decay a kick sees while it is still in the first moment (first order
    in the step; the model takes the moment's memory ``1/(1 − β1)`` short against the radial
    relaxation ``1/(2ηλ)``). ``1/√(d − 1)`` is the measured finite-dimension envelope: on the
    simulator the deviation of ``E‖w‖²`` and of the angular update shrinks like ``1/√(d − 1)``
    (5% and 11% at d = 3, 2.4% at d = 10, 1.5% at d = 30; ``benchmarks/adamw_table.py``). It is
    measured, not derived."""
    beta1 = state.optimizer["betas"][0]
    assert state.lr is not None and state.wd is not None
    return 1 / math.sqrt(state.d - 1) + state.lr * state.wd / (1 - beta1)


@law
def norm_equilibrium(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = ADAMW_TOL,
    resolution: float = 0.5,
) -> LawResult:
    """AdamW's equilibrium norm and angular update (Kosson et al., 2024), per state.

    With ``u = m̂/(√ŝ + ε)`` a random walk of ``E u_i² = (1 − β1)/(1 + β1)`` per coordinate
    (noise-dominated gradients, ``ε ≪ √ŝ``), each kick of the first moment moves the weights by
    one unit per coordinate in all, and the decoupled decay ``w ← (1 − ηλ)w`` balances that at

        E‖w‖² = η C / (2λ),        angular update ∠(w_k, w_{k+1}) = √(2ηλ (1 − β1)/(1 + β1)),

    with ``C = d`` the number of coordinates (:func:`thermocheck.optimizers.adamw_equilibrium`).
    The norm does not depend on the gradient's scale, on σ² or on β2. A coupled decay (Adam with
    L2, ``g ← g + λw`` inside the moments) normalises the decay away and leaves a different norm.

    Checks: the measured ``sq_norm`` against ``ηd/(2λ)`` at every state, and the angular update
    ``extra["angular_update"]`` (an Estimate as a mapping ``{"value", "stderr", "n"}``, recorded by
    the simulator; ``benchmarks/adamw_network.py`` measures it beside a network's loop) where a
    state carries it. A check passes when
    ``|measured − predicted| ≤ z·stderr + model_tol · ε_A · predicted`` (:func:`random_walk_gap`);
    it is decided when the data exclude a ``resolution`` relative error. Applies to fixed-LR
    states trained with AdamW only; SGD states and the other protocols are not applicable.

    The allowance ε_A is measured on the isotropic simulator. On a CPU network (the example ResNet,
    C = 1220) E‖w‖² was 0.86–0.93 of the prediction, because the normalised update is 11–17 %
    smaller than the random walk's ``C(1 − β1)/(1 + β1)`` (docs/optimizers.md): there this law
    fails, which is what the measurement says about the equilibrium's approximation, not a
    defect of the training loop.

    Parameters
    ----------
    grid : StateGrid, State or iterable of State
        AdamW states (``optimizer["name"] == "adamw"``) under fixed LR, with ``sq_norm``.
    alpha : float
        Family-wise false-alarm rate.
    model_tol : float
        Coefficient of the model allowance ``model_tol · ε_A`` (relative), >= 0.
    resolution : float
        Relative error the checks must resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs=("radius",),
              optimizers={"sgd": _SGD_REASON}, not_applicable=dict.fromkeys(
                  ("fixed_sphere", "fixed_elr"),
                  "AdamW's step does not scale with the gradient: its equilibrium is stated for a "
                  "fixed learning rate η and weight decay λ (fixed_lr)"))
    model_tol = nonnegative("model_tol", model_tol)
    checks = [c for s in run.states for c in _checks(run, s, model_tol)]
    return run.judge(checks, z=run.z(len(checks)),
                     notes=["source: Kosson, Messmer, Jaggi (2024), arXiv:2305.17212, not the "
                            "ideal-gas paper"])


def _checks(run: Run, state: State, model_tol: float) -> list[Check]:
    """The norm check of ``state`` and, where it was measured, its angular-update check."""
    assert state.lr is not None and state.wd is not None
    eq = adamw_equilibrium(lr=state.lr, wd=state.wd, coordinates=state.d,
                           beta1=state.optimizer["betas"][0])
    gap = random_walk_gap(state)
    sq_norm = run.need(state, "sq_norm")
    checks = [_check(run, state, "E‖w‖²", sq_norm, eq.sq_norm, model_tol * gap)]
    angle = state.extra.get("angular_update")
    if angle is not None:
        checks.append(_check(run, state, "angular update per step", _estimate(angle),
                             eq.angular_update, model_tol * gap))
    return checks


def _estimate(record: Mapping[str, Any] | Estimate) -> Estimate:
    return Estimate.coerce("extra['angular_update']", record)


def _check(run: Run, state: State, quantity: str, measured: Estimate, predicted: float,
           relative_allowance: float) -> Check:
    return Check(
        at=where(state), place=state.hyperparameters, quantity=quantity,
        observed=measured.value, expected=predicted, stderr=measured.stderr,
        allowance=relative_allowance * predicted, scale=predicted, effect=run.effect(predicted),
        info={"random_walk_gap": random_walk_gap(state)},
    )
