"""Per-point diagnostics that the paper does not report: how noisy, how isotropic, how ideal.

For each state of a grid measured with gradient-noise measurements (networks, a user's loop):

* ``sigma2`` — σ² = Tr Σ_w̄ / (d − 1), with its standard error (THEORY §3), the noise scale that
  sets the temperature; across the grid it shows how the noise depends on the hyperparameters;
* ``grad_sq`` — E‖∇L(w̄)‖², the full-gradient term of the discretization correction (Appendix G);
* ``eff_rank_over_d`` — the participation ratio (Tr Σ)² / Tr(Σ²) of the gradient-noise covariance
  over d − 1: 1 for isotropic noise (the simulator's assumption), near 0 when a few directions
  carry the noise;
* ``compressibility`` — Z = pV/(RT), 1 for the ideal gas (Eq. 12, 19 with the measured σ²);
* the loss, λ_eff on the sphere, and whether the state is stationary (with the reason if not).

:func:`diagnostics` returns the rows; :func:`diagnostics_markdown` renders them for
``report.md``. Grids without noise measurements (the isotropic simulator) have none.
"""

from __future__ import annotations

from typing import Any

from thermocheck.states import State, StateGrid

__all__ = ["diagnostics", "diagnostics_markdown", "has_diagnostics"]


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


def _fmt(value: Any, stderr: Any = None) -> str:
    if value is None:
        return "—"
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return f"{text} ± {stderr:.2g}" if stderr is not None else text


def diagnostics_markdown(grid: StateGrid, title: str) -> list[str]:
    """A markdown table of :func:`diagnostics` under a ``###`` heading (no lines when the grid
    has no noise measurements)."""
    if not has_diagnostics(grid):
        return []
    x, y = grid.axes
    sphere = grid.protocol == "fixed_sphere"
    head = [x, y, "stationary", "loss", "σ² = TrΣ/(d−1)", "E‖∇L(w̄)‖²", "eff. rank / (d−1)",
            "Z = pV/(RT)", *(["λ_eff"] if sphere else [])]
    lines = [f"### {title}", "",
             "Noise scale, full-gradient term, isotropy of the gradient noise (1: isotropic) and "
             "compressibility (1: ideal gas; with the SDE temperature, so Z − 1 is what the SDE "
             "form of V1 misses) per point; σ² and Z only where stationary.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in diagnostics(grid):
        cells = [_fmt(row[x]), _fmt(row[y]),
                 "yes" if row["stationary"] else f"no: {row['reason']}".replace("|", "\\|"),
                 _fmt(row["loss"]), _fmt(row["sigma2"], row["sigma2_stderr"]),
                 _fmt(row["grad_sq"], row["grad_sq_stderr"]), _fmt(row["eff_rank_over_d"]),
                 _fmt(row["compressibility"]), *([_fmt(row["lambda_eff"])] if sphere else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]
