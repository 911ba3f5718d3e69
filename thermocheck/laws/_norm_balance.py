"""The exact one-step norm balance (Eq. 111; docs/theory.md §4), checked through its stationary
mean."""

from __future__ import annotations

import warnings

import numpy as np

from thermocheck.laws._common import (
    Check,
    GridLike,
    Run,
    estimate_dof,
    law,
    nonnegative,
    step_decay,
    where,
)
from thermocheck.results import LawResult
from thermocheck.states import State

__all__ = ["norm_balance"]

LAW = "norm_balance"

#: One float32 ulp of ‖w‖²: the precision of per-step norms accumulated on a GPU.
FLOAT32_ULP = float(np.finfo(np.float32).eps)


def norm_balance(
    grid: GridLike,
    *,
    alpha: float = 1e-3,
    roundoff_tol: float = FLOAT32_ULP,
    resolution: float = 0.5,
    model_tol: float | None = None,
) -> LawResult:
    """The stationary mean of the per-step norm-balance residual is zero.

    Since the stochastic gradient is orthogonal to w (P2), one step gives exactly
    ``‖w_{k+1}‖² = (1 − η_k λ)² ‖w_k‖² + η_k² ‖g_k‖²`` (Eq. 111), and at stationarity
    ``E[(1 − η_k λ)² ‖w_k‖² + η_k² ‖g_k‖² − ‖w_k‖²] = 0`` (docs/theory.md §4). The state's
    ``norm_balance`` Estimate is that mean, measured per step (``η_k = η`` under fixed LR,
    ``η_eff ‖w_k‖²`` under fixed ELR); no SDE approximation is involved.

    What it sees: a radial component of the noise with non-zero mean, a weight decay other than the
    one claimed (e.g. applied twice), a step other than the one claimed. What it cannot see: the
    noise scale σ², anisotropic noise, a wrong temperature or stationary law of the direction — any
    ``g ⊥ w`` satisfies it; the other laws catch those.

    Statistics: a point passes when ``|mean| ≤ z · stderr + roundoff_tol · E‖w‖²`` with
    ``z = Φ⁻¹(1 − α/(2n))``; the residual is reported relative to ``E‖w‖²``. It is decided when the
    data exclude a mean of ``resolution × 2 η_k λ E‖w‖²`` (``|mean| + tolerance`` below it): a
    ``resolution`` relative error of the weight-decay shrinkage the balance weighs. Not applicable
    on the fixed sphere, whose radius is fixed by the projection; its ideal-gas form is the λ_eff
    check of :func:`ideal_gas`.

    Parameters
    ----------
    grid : StateGrid, State or iterable of State
        Needs ``norm_balance`` and ``sq_norm``.
    alpha : float
        Family-wise false-alarm rate.
    roundoff_tol : float
        Allowance relative to E‖w‖²: by default one float32 ulp (2⁻²³), the round-off of per-step
        norms on a GPU; pass ``2**-52`` for float64 measurements. (In the other laws ``model_tol``
        is a coefficient of the discretisation ε; this identity is exact, so its only allowance is
        round-off.)
    resolution : float
        Relative error of λ the check must resolve.
    model_tol : float, optional
        Deprecated spelling of ``roundoff_tol`` (it warns).
    """
    if model_tol is not None:
        warnings.warn("norm_balance(model_tol=) is deprecated: it is an absolute allowance, "
                      "spelled roundoff_tol (model_tol is a coefficient of ε in the other laws)",
                      DeprecationWarning, stacklevel=2)
        roundoff_tol = model_tol
    return _norm_balance(grid, alpha=alpha, roundoff_tol=roundoff_tol, resolution=resolution)


@law
def _norm_balance(grid: GridLike, *, alpha: float, roundoff_tol: float,
                  resolution: float) -> LawResult:
    """:func:`norm_balance` with its options resolved (they are recorded in the result)."""
    run = Run(LAW, grid, alpha=alpha, resolution=resolution, needs=("radius", "noise"),
              not_applicable={
        "fixed_sphere": "the radius is fixed by the projection, so there is no norm balance to "
                        "check; the sphere's ideal-gas form is the λ_eff check of ideal_gas"})
    roundoff_tol = nonnegative("roundoff_tol", roundoff_tol)
    checks = [_check(run, s, roundoff_tol) for s in run.states]
    return run.judge(checks, z=run.z(len(checks)))


def _check(run: Run, state: State, roundoff_tol: float) -> Check:
    residual = run.need(state, "norm_balance")
    sq_norm = run.need(state, "sq_norm").value
    shrinkage = 2 * step_decay(state) * sq_norm
    return Check(
        at=where(state), place=state.hyperparameters, quantity="mean norm-balance residual",
        observed=residual.value, expected=0.0, stderr=residual.stderr,
        allowance=roundoff_tol * sq_norm, scale=sq_norm, effect=run.effect(shrinkage),
        info={"wd_shrinkage": shrinkage}, dof=estimate_dof(residual),
    )
