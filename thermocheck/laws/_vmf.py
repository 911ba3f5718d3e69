"""The von Mises–Fisher closed forms of U and S(ρ_w̄) for the linear loss (Appendix E)."""

from __future__ import annotations

import math

import numpy as np

from thermocheck import vmf
from thermocheck.laws._common import (
    ROUNDOFF,
    Check,
    GridLike,
    Run,
    discretisation,
    law,
    nonnegative,
    where,
)
from thermocheck.results import LawResult
from thermocheck.states import State

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

    Parameters
    ----------
    grid : StateGrid, State or iterable of State
        Needs ``loss`` and/or ``sphere_entropy``.
    alpha, model_tol, resolution : float
        False-alarm rate; allowance coefficient (>= 0); relative temperature error to resolve.
    """
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs_energy=True)
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
    compared = (("U", state.loss, u, c_v * T), ("S(ρ_w̄)", state.sphere_entropy, s, c_v))
    return [Check(at=where(state), place=state.hyperparameters, quantity=quantity,
                  observed=measured.value, expected=expected,
                  stderr=math.hypot(measured.stderr, slope * t_rel),
                  allowance=eps * slope + ROUNDOFF * max(abs(expected), run.R), scale=slope,
                  effect=run.effect(slope), info={"kappa": 1 / T, "C_V": c_v})
            for quantity, measured, expected, slope in compared if measured is not None]
