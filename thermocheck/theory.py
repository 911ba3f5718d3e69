"""Closed-form predictions of the ideal-gas theory of SGD, per protocol (docs/theory.md §3–5).

Every function states its formula and the equation of Sadrtdinov et al. (arXiv:2511.07308) it
implements. One vocabulary names the three training protocols: ``fixed_sphere`` (weights
projected on a sphere of radius ``radius``, step ``elr * radius**2``), ``fixed_elr`` (step
``elr * ||w||**2`` and weight decay ``wd``, Eq. 8) and ``fixed_lr`` (plain SGD with learning
rate ``lr`` and weight decay ``wd``, Eq. 15). Hyperparameters are keyword-only and validated;
``sigma2`` is the per-direction gradient-noise variance ``Tr Σ_w̄ / (d − 1)``; ``grad_sq`` is
``E‖∇L(w̄)‖²`` at unit radius, the discretization correction of Appendix G (zero: the SDE limit).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np

from thermocheck.errors import InvalidParameterError, check_choice, check_dimension, check_positive

__all__ = [
    "AXES",
    "PROTOCOLS",
    "Protocol",
    "adiabatic_invariant",
    "axes_grid",
    "effective_wd",
    "gas_constant",
    "gibbs",
    "grid_axes",
    "heat_capacities",
    "helmholtz",
    "maxwell_rhs",
    "pressure",
    "stationary_radius",
    "temperature",
    "total_entropy",
    "volume",
]

Protocol = Literal["fixed_sphere", "fixed_elr", "fixed_lr"]
PROTOCOLS: tuple[Protocol, ...] = ("fixed_sphere", "fixed_elr", "fixed_lr")

#: The two hyperparameters that span a protocol's grid, in (x, y) order (Eq. 34 fits S(x, y)).
AXES: dict[str, tuple[str, str]] = {
    "fixed_sphere": ("elr", "radius"),
    "fixed_elr": ("elr", "wd"),
    "fixed_lr": ("lr", "wd"),
}


def check_protocol(protocol: str) -> Protocol:
    """Validate a protocol name."""
    return check_choice("protocol", protocol, PROTOCOLS)  # type: ignore[return-value]


def axes_grid(protocol: str, x_values: Any, y_values: Any) -> dict[str, Any]:
    """``{x: x_values, y: y_values}`` for the protocol's two axes ``(x, y)`` of :data:`AXES`: the
    ``grid`` argument of :func:`thermocheck.simulator.simulate` and
    :func:`thermocheck.synthetic.synthetic_grid` from values in ``(x, y)`` order."""
    return dict(zip(AXES[check_protocol(protocol)], (x_values, y_values), strict=True))


def grid_axes(protocol: str, grid: object) -> tuple[Any, Any]:
    """The values of ``grid = {name: values}`` on the protocol's two axes, in :data:`AXES` order.

    ``grid`` must name exactly the axes of ``protocol`` (e.g. ``{"lr": [...], "wd": [...]}`` for
    fixed LR); the grid is the outer product of the two. The values are returned as given, for the
    caller to validate.
    """
    axes = AXES[check_protocol(protocol)]
    if not isinstance(grid, Mapping) or set(grid) != set(axes):
        keys = sorted(grid) if isinstance(grid, Mapping) else grid
        raise InvalidParameterError(
            f"grid={keys!r} is invalid: protocol={protocol!r} needs exactly the axes {axes}"
        )
    return grid[axes[0]], grid[axes[1]]


def _require(name: str, value: float | None, protocol: str) -> np.ndarray:
    if value is None:
        raise InvalidParameterError(f"{name} is required for protocol={protocol!r}")
    return check_positive(name, value)


def _nonnegative(name: str, value: object) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if np.any(~np.isfinite(arr) | (arr < 0)):
        raise InvalidParameterError(f"{name}={value!r} is invalid: {name} must be finite and >= 0")
    return arr


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def gas_constant(d: int) -> float:
    """Gas constant ``R = (d − 1) / 2`` (Section 3: d − 1 angular degrees of freedom)."""
    return (check_dimension(d) - 1) / 2


def temperature(
    protocol: str,
    d: int,
    sigma2: float,
    *,
    lr: float | None = None,
    wd: float | None = None,
    elr: float | None = None,
) -> float | np.ndarray:
    """Temperature of the stationary state.

    fixed sphere / fixed ELR: ``T = η_eff σ² / 2`` (Eq. 7, 10);
    fixed LR: ``T = sqrt(η λ σ² / (2 (d − 1)))`` (Eq. 19–20), which equals ``η σ² / (2 r*²)``.
    """
    protocol = check_protocol(protocol)
    d = check_dimension(d)
    s2 = check_positive("sigma2", sigma2)
    if protocol == "fixed_lr":
        return _out(np.sqrt(_require("lr", lr, protocol) * _require("wd", wd, protocol) * s2
                            / (2 * (d - 1))))
    return _out(_require("elr", elr, protocol) * s2 / 2)


def stationary_radius(
    protocol: str,
    d: int,
    sigma2: float,
    *,
    lr: float | None = None,
    wd: float | None = None,
    elr: float | None = None,
    radius: float | None = None,
    grad_sq: float = 0.0,
) -> float | np.ndarray:
    """Stationary weight norm ``r*``.

    fixed ELR: ``r* = sqrt(η_eff (σ²(d−1) + g²) / (2λ))`` (Eq. 12; Eq. 120 with ``g² = E‖∇L(w̄)‖²``);
    fixed LR: ``r* = (η (σ²(d−1) + g²) / (2λ))^{1/4}`` (Eq. 19; Eq. 119);
    fixed sphere: the sphere's radius.
    ``grad_sq = 0`` gives the SDE prediction, the measured ``g²`` the discretization-corrected one.
    """
    protocol = check_protocol(protocol)
    d = check_dimension(d)
    trace = check_positive("sigma2", sigma2) * (d - 1) + _nonnegative("grad_sq", grad_sq)
    if protocol == "fixed_sphere":
        return _out(_require("radius", radius, protocol))
    wd_ = _require("wd", wd, protocol)
    if protocol == "fixed_elr":
        return _out(np.sqrt(_require("elr", elr, protocol) * trace / (2 * wd_)))
    return _out((_require("lr", lr, protocol) * trace / (2 * wd_)) ** 0.25)


def effective_wd(
    d: int, sigma2: float, *, elr: float | np.ndarray, radius: float | np.ndarray,
    grad_sq: float = 0.0,
) -> float | np.ndarray:
    """Predicted effective weight decay on the fixed sphere (the ideal gas law there).

    ``λ_eff = η_eff (σ²(d−1) + g²) / (2 r²)`` (Eq. 84; Eq. 121 with ``g² = E‖∇L(w̄)‖²``), to be
    compared with the measured ``E[(‖w − η∇L_B‖ − ‖w‖) / (η‖w‖)]`` of Eq. 83.
    """
    d = check_dimension(d)
    trace = check_positive("sigma2", sigma2) * (d - 1) + _nonnegative("grad_sq", grad_sq)
    return _out(check_positive("elr", elr) * trace
                / (2 * check_positive("radius", radius) ** 2))


def pressure(
    protocol: str,
    d: int,
    sigma2: float,
    *,
    wd: float | None = None,
    elr: float | None = None,
    radius: float | None = None,
) -> float | np.ndarray:
    """Pressure ``p``: the weight decay ``λ`` (fixed ELR, fixed LR); on the sphere the predicted
    effective weight decay ``λ_eff`` of Eq. 84."""
    protocol = check_protocol(protocol)
    if protocol == "fixed_sphere":
        return effective_wd(d, sigma2, elr=_require("elr", elr, protocol),
                            radius=_require("radius", radius, protocol))
    return _out(_require("wd", wd, protocol))


def volume(sq_norm: float) -> float | np.ndarray:
    """Volume ``V = E‖w‖² / 2`` (Section 3)."""
    return _out(check_positive("sq_norm", sq_norm) / 2)


def total_entropy(d: int, sphere_entropy: float, mean_radius: float) -> float | np.ndarray:
    """Entropy ``S = S(ρ_w̄) + (d − 1) log E‖w‖`` (Eq. 1, Eq. 28 with the mean radius)."""
    d = check_dimension(d)
    return _out(np.asarray(sphere_entropy, dtype=np.float64)
                + (d - 1) * np.log(check_positive("mean_radius", mean_radius)))


def helmholtz(U: float, S: float, T: float) -> float | np.ndarray:
    """Helmholtz free energy ``F = U − T S`` (fixed T and V: the fixed sphere; Section 4)."""
    return _out(np.asarray(U) - np.asarray(T) * np.asarray(S))


def gibbs(U: float, S: float, V: float, T: float, p: float) -> float | np.ndarray:
    """Gibbs free energy ``G = U − T S + p V`` (fixed T and p: fixed ELR and LR; Eq. 22)."""
    return _out(np.asarray(U) - np.asarray(T) * np.asarray(S) + np.asarray(p) * np.asarray(V))


def heat_capacities(d: int, T: np.ndarray, U: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``C_V = dU/dT`` (numerically, along T) and ``C_p = C_V + R`` (Appendix D.4).

    ``C_p − C_V = p (∂V/∂T)_p = R`` holds for any ``U(T)`` because ``V = R T / p``.
    """
    R = gas_constant(d)
    T = check_positive("T", T)
    if T.ndim != 1 or T.size < 3:
        raise InvalidParameterError("T must be a 1-d array of at least 3 temperatures")
    c_v = np.gradient(np.asarray(U, dtype=np.float64), T)
    return c_v, c_v + R


def adiabatic_invariant(d: int, sphere_entropy: float, V: float) -> float | np.ndarray:
    """``S_ρ + R log(2V)``: constant along an adiabat (exact form; ``p V^γ = const`` at low T).

    Since ``S = S(ρ_w̄) + (d−1) log r`` and ``2V = r²``, this is the total entropy S (Eq. 28–31).
    """
    return _out(np.asarray(sphere_entropy, dtype=np.float64)
                + gas_constant(d) * np.log(check_positive("V", V) * 2))


def maxwell_rhs(protocol: str, d: int, V: float | None = None) -> float:
    """Right-hand side of the protocol's Maxwell relation (Appendix D.3).

    fixed sphere: ``(∂S/∂V)_T = (d − 1) / (2V)``;
    fixed ELR: ``(∂S/∂ log λ)_{η_eff} = −(d − 1)/2`` (Eq. 85);
    fixed LR: ``(∂S/∂ log η)_λ − (∂S/∂ log λ)_η = (d − 1)/2`` (Eq. 23).
    """
    protocol = check_protocol(protocol)
    R = gas_constant(d)
    if protocol == "fixed_sphere":
        return float(R / _require("V", V, protocol))
    return -R if protocol == "fixed_elr" else R
