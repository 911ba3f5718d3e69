"""The von Mises–Fisher closed forms of U and S(ρ_w̄) for the linear loss (Appendix E)."""

from __future__ import annotations

import math

import numpy as np

from thermocheck import calibration, vmf
from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    estimate_dof,
    law,
    nonnegative,
    welch_dof,
    where,
)
from thermocheck.laws._entropy import leave_undecided
from thermocheck.results import LawResult
from thermocheck.states import Estimate, State

__all__ = ["vmf_closed_form"]

LAW = "vmf_closed_form"

#: Losses whose stationary law is von Mises–Fisher; None means the user asserts it.
_LINEAR = ("linear", None)


@law
def vmf_closed_form(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    model_tol: float = 1.0,
    resolution: float = 0.5,
) -> LawResult:
    """U and S(ρ_w̄) against the von Mises–Fisher law with κ = 1/T.

    For ``L(w̄) = 1 + μᵀw̄`` (‖μ‖ = 1) the stationary direction law is von Mises–Fisher with mean
    ``−μ`` and ``κ = 1/T`` (Eq. 7, 19; Appendix E): ``U = 1 − A_d(κ)``,
    ``S(ρ_w̄) = −log C_d(κ) − κ A_d(κ)`` (:func:`thermocheck.vmf.mean_loss`,
    :func:`thermocheck.vmf.entropy`). T comes from the state equation (``State.temperature``:
    ``η_eff σ²/2`` on the sphere and under fixed ELR, ``sqrt(ηλσ²/(2(d − 1)))`` under fixed LR,
    which is ``η_eff σ²/2`` with ``η_eff = η/r*²``). Needs the loss to be the energy and linear:
    ``state.extra["loss"]`` must be ``"linear"`` (or absent, meaning the user asserts it).

    Statistics: each of U and S(ρ) at each point passes when ``|measured − closed form| ≤ z σ +
    allowance`` (``z`` Bonferroni over 2n checks); σ combines the measurement's standard error and
    that of the prediction through σ² (``∂U/∂log T = C_V T``, ``∂S/∂log T = C_V``, C_V from
    :func:`thermocheck.vmf.heat_capacity`). Residuals are reported in units of ``C_V T`` (U) and
    ``C_V`` (S): as the relative temperature error that would explain them. A check is decided when
    the data exclude the change a ``resolution`` relative error of T would make
    (``|residual| + tolerance`` below it).

    Model allowance (``model_tol · ε`` in temperature, ``ε = η_eff + η_k p``): the Euler step biases
    the stationary law's temperature by a relative ``η_eff a/2`` (an Ornstein–Uhlenbeck well of
    curvature ``a = ‖μ‖ = 1`` has variance ``T/(a(1 − aη_eff/2))``), and the radius behind the fixed
    LR temperature carries the O(η_k p) terms of the norm balance; so U gets
    ``model_tol · ε · C_V T``, S(ρ) gets ``model_tol · ε · C_V``. ``model_tol = 1`` doubles the
    Euler estimate.

    Entropy estimator: when a state says how its entropy was estimated
    (``extra["entropy_queue"]``: ``method``, ``n_samples``, as the simulator records), S(ρ) is
    compared with ``S_VMF(κ) + b(κ)``, ``b`` the estimator's bias on independent VMF samples of that
    size (:func:`thermocheck.calibration.estimator_bias`, whose standard error joins σ and whose
    interpolation error between dimensions joins the allowance). The S(ρ) check is left undecided,
    never failed, when that record marks the snapshots ``correlated`` (closer than the direction's
    relaxation time: the k-NN estimate then reads low by an amount no table gives) or when the
    calibration table had to be left (its bias there is unknown).

    Parameters
    ----------
    grid : StateGrid, State or iterable of State
        Needs ``loss`` and/or ``sphere_entropy``.
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative temperature error to resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True,
              needs=("loss", "radius", "directions"))
    model_tol = nonnegative("model_tol", model_tol)
    losses = sorted({str(s.extra.get("loss")) for s in run.states if s.extra.get("loss")
                     not in _LINEAR})
    if losses:
        run.end("not_applicable", f"the closed forms hold for the linear loss L = 1 + μᵀw̄ only; "
                                  f"the states report loss={', '.join(losses)}")
    kappa = 1 / np.array([s.temperature for s in run.states])
    # the closed forms over the whole grid at once (one vectorised call each)
    U, S, C_V = (np.atleast_1d(f(run.d, kappa)) for f in (vmf.mean_loss, vmf.entropy,
                                                            vmf.heat_capacity))
    checks = [c for k, state in enumerate(run.states)
              for c in _checks(run, state, float(U[k]), float(S[k]), float(C_V[k]), model_tol)]
    doubts = [c for c in checks if "undecided" in c.info]
    if doubts:
        run.notes.append(f"S(ρ_w̄) left undecided at {len(doubts)} state(s), e.g. at "
                         f"{doubts[0].at}: {doubts[0].info['undecided']}")
    return run.judge(checks, z=run.z(len(checks)), notes=[
        "relative residuals are in units of C_V·T (U) and C_V (S(ρ)): the relative temperature "
        "error that would explain them"])


def _checks(run: Run, state: State, u: float, s: float, c_v: float,
            model_tol: float) -> list[Check]:
    """U and S(ρ) of one state against the closed forms ``u``, ``s`` (with ``C_V = c_v``), each
    with its change per unit relative temperature error (``∂U/∂log T = C_V T``,
    ``∂S/∂log T = C_V``) as the unit of its residual."""
    if state.loss is None and state.sphere_entropy is None:
        run.need(state, "loss")
    T = state.temperature
    # T ∝ σ (fixed LR) or σ² (otherwise): relative error of T through the measured σ²
    power = 0.5 if state.protocol == "fixed_lr" else 1.0
    t_rel = power * state.sigma2.stderr / state.sigma2.value
    eps = model_tol * discretisation(state)
    checks = []
    if state.loss is not None:
        checks.append(Check(at=where(state), place=state.hyperparameters, quantity="U",
                            observed=state.loss.value, expected=u,
                            stderr=math.hypot(state.loss.stderr, c_v * T * t_rel),
                            allowance=eps * c_v * T + ROUNDOFF * max(abs(u), run.R),
                            scale=c_v * T, effect=run.effect(c_v * T),
                            info={"kappa": 1 / T, "C_V": c_v},
                            dof=welch_dof([(state.loss.stderr, estimate_dof(state.loss)),
                                           (c_v * T * t_rel, estimate_dof(state.sigma2))])))
    if state.sphere_entropy is not None:
        checks.append(_entropy_check(run, state, state.sphere_entropy, s, c_v, eps, t_rel))
    return checks


def _entropy_check(run: Run, state: State, measured: Estimate, s: float, c_v: float, eps: float,
                   t_rel: float) -> Check:
    """S(ρ) against ``S_VMF + b``, ``b`` the calibrated estimator bias when the state records its
    estimator (``extra["entropy_queue"]``); undecided when that record or the table cannot vouch
    for the estimate."""
    T = state.temperature
    queue = state.extra.get("entropy_queue")
    expected, bias_se, model, info = s, 0.0, 0.0, {"kappa": 1 / T, "C_V": c_v}
    doubt = ""
    if isinstance(queue, dict):
        bias = calibration.estimator_bias(state.d, int(queue["n_samples"]), 1 / T,
                                          str(queue.get("method", "geodesic")))
        expected += bias.value.item()
        bias_se, model = bias.stderr.item(), abs(bias.model.item())
        info["estimator_bias"] = bias.value.item()
        if queue.get("correlated"):
            doubt = (f"its {queue['n_samples']} snapshots, {queue['spacing']} iterations apart, "
                     f"are closer than {queue.get('decorrelation', 0):g} relaxation times "
                     f"({queue.get('relaxation_steps', math.nan):.3g} iterations each): the k-NN "
                     "estimate reads low by an unknown amount")
        elif bias.extrapolated:
            doubt = "the estimator's bias is not calibrated there: " + "; ".join(bias.reasons)
    effect = run.effect(c_v)
    stderr = math.hypot(measured.stderr, c_v * t_rel, bias_se)
    allowance = eps * c_v + model + ROUNDOFF * max(abs(expected), run.R)
    dof = welch_dof([(measured.stderr, estimate_dof(measured)),
                     (c_v * t_rel, estimate_dof(state.sigma2)), (bias_se, None)])
    check = Check(at=where(state), place=state.hyperparameters, quantity="S(ρ_w̄)",
                  observed=measured.value, expected=expected, stderr=stderr, allowance=allowance,
                  scale=c_v, effect=effect, info=info, dof=dof)
    return leave_undecided(check, doubt) if doubt else check
