"""V1: the ideal gas law pV = RT, as the stationary radius or the sphere's effective decay."""

from __future__ import annotations

import math

from thermocheck import theory
from thermocheck.laws._common import Check, GridLike, Run, law, nonnegative, step_decay, where
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["ideal_gas"]

LAW = "ideal_gas"


@law
def ideal_gas(
    grid: GridLike,
    *,
    corrected: bool = True,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
) -> LawResult:
    """V1, ``p V = R T`` at every stationary state.

    fixed ELR and fixed LR compare the measured ``E‖w‖²`` with the state equation's ``r*²``:
    ``r*² = η_eff Tr / (2λ)`` (Eq. 12, 120) and ``r*² = (η Tr / (2λ))^{1/2}`` (Eq. 19, 119). The
    fixed sphere compares the measured ``λ_eff`` (Eq. 83) with ``η_eff Tr / (2r²)`` (Eq. 84, 121).
    ``Tr = σ²(d − 1) + E‖∇L(w̄)‖²`` with the measured gradient norm when ``corrected`` (Appendix G),
    ``Tr = σ²(d − 1)`` (the SDE form) otherwise. Applies to every substrate.

    Statistics: a point passes when ``|observed − predicted| ≤ z σ + allowance``; σ combines the
    standard errors of the measurement and of the prediction (through σ² and g², first order), and
    ``z = Φ⁻¹(1 − α/(2n))`` over the n points (Bonferroni).

    Model allowance (``model_tol · η_k p`` relative): the exact stationary norm balance is
    ``η E‖g‖² = (2λ − ηλ²) E‖w‖²`` with ``E‖g‖² = Tr · E[1/‖w‖²]`` (THEORY §4, Eq. 111–114). The
    state equation drops the ``ηλ²`` term, a relative ``η_k λ/4`` in E‖w‖² under fixed LR
    (``η_k λ/2`` under fixed ELR, where ``η_k = η_eff ‖w‖²``), and the Jensen gap
    ``E[1/r²] E[r²] − 1``, which the linearised radius fluctuations make ``≈ η_k λ/(d − 1)``. Both
    together are at most ``3/4 η_k λ``, so ``model_tol = 1`` covers them with margin. On the
    sphere, Eq. 83 measures ``(‖w − η g‖ − ‖w‖)/(η‖w‖) = λ_eff (1 − η λ_eff r²/2 + …)``, a
    relative ``η_k λ_eff/2``.
    The SDE form (``corrected=False``) also neglects Appendix G's ``E‖∇L(w̄)‖² / Tr``, about
    ``η_eff/2`` for the linear loss; it is not in the allowance, so that form fails where the
    discretization matters (the paper's Fig. 2c).

    Parameters
    ----------
    grid : StateGrid, State or iterable of State
        Measured states; each needs ``sq_norm`` (``lambda_eff`` on the sphere), and ``grad_sq``
        when ``corrected``.
    corrected : bool
        Use the discretisation-corrected state equation (Eq. 119–121).
    alpha : float
        Family-wise false-alarm rate.
    model_tol : float
        Coefficient c of the model allowance ``c · η_k p`` (relative), >= 0.
    resolution : float
        A point whose data cannot exclude a ``resolution`` relative error of the prediction
        (``|residual| + tolerance`` not below it) is undecided (see :mod:`thermocheck.laws`).

    Returns
    -------
    LawResult
        Headline: the worst point's measured and predicted value; ``residual`` relative to the
        prediction.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution)
    model_tol = nonnegative("model_tol", model_tol)
    checks = [_check(run, s, corrected, model_tol) for s in run.states]
    form = ("discretisation-corrected (Tr Σ_w̄ + E‖∇L(w̄)‖², Eq. 119–121)" if corrected
            else "SDE form (Eq. 12, 19, 84; neglects E‖∇L(w̄)‖², Appendix G)")
    return run.judge(checks, z=run.z(len(checks)), notes=[f"state equation: {form}"])


def _check(run: Run, state: State, corrected: bool, model_tol: float) -> Check:
    trace = run.trace(state, corrected)
    sigma2 = trace.value / (state.d - 1)
    if state.protocol == "fixed_sphere":
        assert state.elr is not None and state.radius is not None  # required on the sphere
        observed = run.need(state, "lambda_eff")
        expected = float(theory.effective_wd(state.d, sigma2, elr=state.elr, radius=state.radius))
        power, quantity = 1.0, "λ_eff"
    else:
        observed = run.need(state, "sq_norm")
        expected = float(theory.stationary_radius(state.protocol, state.d, sigma2, lr=state.lr,
                                                  wd=state.wd, elr=state.elr)) ** 2
        power, quantity = (0.5 if state.protocol == "fixed_lr" else 1.0), "E‖w‖²"
    # r*² ∝ Tr (fixed ELR, sphere) or Tr^{1/2} (fixed LR): first-order error of the prediction
    predicted_se = expected * power * trace.stderr / trace.value
    return Check(
        at=where(state), place=state.hyperparameters, quantity=quantity,
        observed=observed.value, expected=expected,
        stderr=math.hypot(observed.stderr, predicted_se),
        allowance=model_tol * step_decay(state) * expected,
        scale=expected, effect=run.effect(expected),
        info={"step_decay": step_decay(state)},
    )
