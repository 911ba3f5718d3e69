"""Per-point diagnostics that the paper does not report: how noisy, how isotropic, how ideal.

For each state of a grid measured with gradient-noise measurements (networks, a user's loop):

* ``sigma2`` — σ² = Tr Σ_w̄ / (d − 1), with its standard error (docs/theory.md §3), the noise
  scale that
  sets the temperature; across the grid it shows how the noise depends on the hyperparameters;
* ``grad_sq`` — E‖∇L(w̄)‖², the full-gradient term of the discretization correction (Appendix G);
* ``eff_rank_over_d`` — the participation ratio (Tr Σ)² / Tr(Σ²) of the gradient-noise covariance
  over d − 1: 1 for isotropic noise (the simulator's assumption), near 0 when a few directions
  carry the noise;
* ``compressibility`` — Z = pV/(RT), 1 for the ideal gas (Eq. 12, 19 with the measured σ²);
* the loss, λ_eff on the sphere, and whether the state is stationary (with the reason if not).

:func:`diagnostics` returns the rows; :func:`thermocheck.report.diagnostics_markdown` renders
them for ``report.md``. Grids without noise measurements (the isotropic simulator) have none.
"""

from __future__ import annotations

from typing import Any

from thermocheck.states import State, StateGrid

__all__ = ["diagnostics", "has_diagnostics"]


def has_diagnostics(grid: StateGrid) -> bool:
    """Whether the grid's states carry gradient-noise measurements."""
    return any("eff_rank_over_d" in s.extra for s in grid)


def _estimate(s: State, name: str) -> tuple[float | None, float | None]:
    e = getattr(s, name)
    return (None, None) if e is None else (e.value, e.stderr)


def diagnostics(grid: StateGrid) -> list[dict[str, Any]]:
    """One row per state: its hyperparameters and the diagnostics above (None where unmeasured)."""
    rows = []
    for s in grid:
        sigma2, sigma2_se = _estimate(s, "sigma2")
        grad_sq, grad_sq_se = _estimate(s, "grad_sq")
        loss, _ = _estimate(s, "loss")
        lambda_eff, _ = _estimate(s, "lambda_eff")
        rows.append({
            **s.hyperparameters,
            "stationary": s.stationary,
            "loss": loss,
            "sigma2": sigma2 if s.stationary else None,
            "sigma2_stderr": sigma2_se if s.stationary else None,
            "grad_sq": grad_sq,
            "grad_sq_stderr": grad_sq_se,
            "eff_rank_over_d": s.extra.get("eff_rank_over_d"),
            "compressibility": s.extra.get("compressibility") if s.stationary else None,
            "lambda_eff": lambda_eff,
            "reason": s.reason or "",
        })
    return rows
