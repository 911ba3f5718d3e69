"""Synthetic stationary states drawn from the theory, exact or with a named defect.

:func:`synthetic_grid` builds the states an ideal isotropic substrate with the linear loss
``L(w̄) = 1 + μᵀw̄`` (``‖μ‖ = 1``) would measure in the SDE limit, on a grid of two hyperparameters:

- T from the state equations (``theory.temperature``), κ = 1/T;
- ``U = vmf.mean_loss(d, κ)``, ``S(ρ_w̄) = vmf.entropy(d, κ)`` (Appendix E);
- ``E‖w‖² = r*²`` from ``theory.stationary_radius`` with ``grad_sq = 0`` (the SDE prediction,
  Eq. 12, 19), ``E‖w‖ = sqrt(E‖w‖²)`` (the radius does not fluctuate in the SDE limit);
- on the sphere ``λ_eff = theory.effective_wd`` (Eq. 84); elsewhere the norm-balance residual 0;
- ``grad_sq = 0`` and σ² exact: the model's parameters, known without error.

With ``noise > 0`` every measured value gets a standard error ``noise × scale`` (its ``Estimate``
carries it) and a Gaussian deviation of that size. The scales are the value itself for U, E‖w‖²,
E‖w‖ and λ_eff; the gas constant R for the entropy (whose change per e-fold of T is C_V ≈ R); and
``2 η_k p E‖w‖²`` for the norm balance (the size of the terms it balances). Each point draws from
its own generator, keyed by ``(seed, protocol, d, x, y)``: a point's noise does not depend on the
other points of the grid, nor on the mutation.

A ``mutation`` replaces the theory by a wrong one, to show that some law catches it;
:data:`MUTATIONS` is the table of names, defects, protocols and the laws that must catch each
(render it with :func:`mutation_table`). ``strength`` blends every measured value linearly between
the correct theory (0) and the mutant (1), to measure the smallest defect a law catches.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from thermocheck import theory, vmf
from thermocheck.errors import (
    InvalidParameterError,
    check_choice,
    check_dimension,
    check_in_range,
    check_positive,
)
from thermocheck.states import Estimate, State, StateGrid

__all__ = ["LOSSES", "MUTATIONS", "Mutation", "mutation_table", "synthetic_grid"]

#: Losses with a closed-form stationary law (Appendix E).
LOSSES = ("linear",)

_NOISE_MAX = 0.25


@dataclass(frozen=True)
class Mutation:
    """A wrong theory: its ``name``, the ``defect``, the ``protocols`` it applies to, and the laws
    that must catch it (``caught_by``, names in ``thermocheck.laws.ALL``)."""

    name: str
    defect: str
    protocols: tuple[str, ...]
    caught_by: tuple[str, ...]


_ALL = theory.PROTOCOLS
_WD = ("fixed_elr", "fixed_lr")

#: The mutation table: name → what is wrong → where it applies → which laws must catch it.
MUTATIONS: dict[str, Mutation] = {m.name: m for m in (
    Mutation("wrong_R", "gas constant d/2 instead of (d − 1)/2 in the state equation pV = RT: "
             "E‖w‖² (fixed ELR/LR) or λ_eff (sphere) from R' = d/2", _ALL,
             ("ideal_gas", "heat_capacity")),
    Mutation("T_linear", "fixed LR temperature ησ²/2 ∝ η instead of sqrt(ηλσ²/(2(d − 1))): U and "
             "S(ρ) drawn at the wrong temperature", ("fixed_lr",),
             ("vmf_closed_form", "maxwell", "first_law")),
    Mutation("r_sqrt", "fixed LR radius r*² = ησ²(d − 1)/(2λ), i.e. r ∝ (η/λ)^{1/2} instead of "
             "(η/λ)^{1/4}", ("fixed_lr",), ("ideal_gas", "maxwell", "heat_capacity")),
    Mutation("no_log_r", "entropy without the radial term: S(ρ) shifted by −(d − 1) log E‖w‖, so "
             "the total S lacks (d − 1) log r", _ALL, ("vmf_closed_form", "first_law")),
    Mutation("wd_twice", "weight decay applied twice: the state is that of 2λ while λ is claimed; "
             "the norm-balance residual is (2η_kλ − 3η_k²λ²) E‖w‖²", _WD,
             ("ideal_gas", "norm_balance")),
    Mutation("radial_noise", "noise with a mean radial component (λ/2) w: the radius is that of "
             "1.5λ and the norm-balance residual, computed as if g ⊥ w, is η_kλ(1 − η_kλ) E‖w‖²",
             _WD, ("norm_balance",)),
    Mutation("hot", "U and S(ρ) from κ = 1/(2T): the direction law is twice as hot as the state "
             "equation says", _ALL, ("vmf_closed_form", "first_law")),
)}

#: Measured fields in the order of each point's normal draws.
_FIELDS = ("loss", "sphere_entropy", "sq_norm", "mean_radius", "lambda_eff", "norm_balance")


def mutation_table() -> str:
    """:data:`MUTATIONS` as a Markdown table (for the README)."""
    rows = ["| mutation | what is wrong | protocols | caught by |", "|---|---|---|---|"]
    rows += [f"| `{m.name}` | {m.defect} | {', '.join(m.protocols)} | {', '.join(m.caught_by)} |"
             for m in MUTATIONS.values()]
    return "\n".join(rows)


def _axis(name: str, values: ArrayLike) -> np.ndarray:
    arr = check_positive(name, values)
    if arr.ndim != 1 or arr.size == 0:
        raise InvalidParameterError(f"{name} must be a non-empty 1-d array of values, got shape "
                                    f"{arr.shape}")
    if np.unique(arr).size != arr.size:
        raise InvalidParameterError(f"{name}={arr.tolist()} has repeated values")
    return arr


def _grid_values(protocol: str, grid: Mapping[str, ArrayLike] | ArrayLike,
                 y_values: ArrayLike | None) -> tuple[Any, Any]:
    """The two axes' values from ``grid = {name: values}``, or from the deprecated positional
    ``x_values, y_values`` (with a ``DeprecationWarning``)."""
    if isinstance(grid, Mapping):
        if y_values is not None:
            raise InvalidParameterError("grid={...} names both axes: pass no y_values beside it")
        return theory.grid_axes(protocol, grid)
    if y_values is None:
        raise InvalidParameterError(
            f"grid must be {{name: values}} for the axes {theory.AXES[protocol]} of "
            f"protocol={protocol!r}")
    x_name, y_name = theory.AXES[protocol]
    warnings.warn("synthetic_grid(protocol, d, x_values, y_values) is deprecated: pass "
                  f"grid={{{x_name!r}: x_values, {y_name!r}: y_values}} (or "
                  "grid=theory.axes_grid(protocol, x_values, y_values))", DeprecationWarning,
                  stacklevel=3)
    return grid, y_values


def _decay(protocol: str, hp: Mapping[str, Any], sq_norm: np.ndarray) -> np.ndarray:
    """``η_k λ`` with the claimed λ: ``η λ`` (fixed LR), ``η_eff E‖w‖² λ`` (fixed ELR)."""
    step = hp["lr"] if protocol == "fixed_lr" else hp["elr"] * sq_norm
    return np.asarray(step * hp["wd"])


def _theory(protocol: str, d: int, sigma2: float, hp: Mapping[str, Any],
            mutation: str | None) -> dict[str, np.ndarray]:
    """The measured fields of the (possibly mutated) theory at the points ``hp`` (arrays)."""
    name = mutation or ""
    given: list[Any] = [hp.get(k) for k in ("lr", "wd", "elr", "radius")]  # arrays, or None
    lr, wd, elr, radius = given
    true_wd = None if wd is None else wd * {"wd_twice": 2.0, "radial_noise": 1.5}.get(name, 1.0)
    # wrong_R: the state equation with R' = d/2, i.e. theory's formulas at d + 1.
    d_state = d + 1 if mutation == "wrong_R" else d
    T = np.asarray(theory.temperature(protocol, d, sigma2, lr=lr, wd=true_wd, elr=elr))
    if mutation == "T_linear":
        T = lr * sigma2 / 2
    kappa = 1 / (2 * T) if mutation == "hot" else 1 / T
    if protocol == "fixed_sphere":
        sq_norm = radius**2
    elif mutation == "r_sqrt":
        sq_norm = lr * sigma2 * (d - 1) / (2 * wd)
    else:
        sq_norm = np.asarray(theory.stationary_radius(protocol, d_state, sigma2, lr=lr, wd=true_wd,
                                                      elr=elr)) ** 2
    out = {"loss": vmf.mean_loss(d, kappa), "sphere_entropy": vmf.entropy(d, kappa),
           "sq_norm": sq_norm, "mean_radius": np.sqrt(sq_norm)}
    if mutation == "no_log_r":
        out["sphere_entropy"] = out["sphere_entropy"] - (d - 1) * np.log(out["mean_radius"])
    if protocol == "fixed_sphere":
        out["lambda_eff"] = np.asarray(theory.effective_wd(d_state, sigma2, elr=elr, radius=radius))
    else:
        decay = _decay(protocol, hp, sq_norm)
        residual = {"wd_twice": 2 * decay - 3 * decay**2, "radial_noise": decay * (1 - decay)}
        out["norm_balance"] = residual.get(name, 0.0) * sq_norm
    return {k: np.broadcast_to(np.asarray(v, dtype=np.float64), T.shape) for k, v in out.items()}


def _scales(protocol: str, d: int, hp: Mapping[str, Any],
            values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Per-field units of the relative noise (module docstring)."""
    R = theory.gas_constant(d)
    scales = {"loss": np.abs(values["loss"]), "sphere_entropy": np.full_like(values["loss"], R),
              "sq_norm": values["sq_norm"], "mean_radius": values["mean_radius"]}
    if protocol == "fixed_sphere":
        scales["lambda_eff"] = values["lambda_eff"]
    else:
        scales["norm_balance"] = 2 * _decay(protocol, hp, values["sq_norm"]) * values["sq_norm"]
    return scales


def _point_normals(seed: int, protocol: str, d: int, x: float, y: float) -> np.ndarray:
    """The point's own standard normals, one per field of :data:`_FIELDS`."""
    bits = [int(np.float64(v).view(np.uint64)) for v in (x, y)]
    key = np.random.SeedSequence([seed, theory.PROTOCOLS.index(protocol), d, *bits])
    return np.random.default_rng(key).standard_normal(len(_FIELDS))


def synthetic_grid(
    protocol: str,
    d: int,
    grid: Mapping[str, ArrayLike] | ArrayLike,
    y_values: ArrayLike | None = None,
    *,
    sigma2: float = 1.0,
    noise: float = 0.0,
    seed: int = 0,
    mutation: str | None = None,
    strength: float = 1.0,
    loss: str = "linear",
) -> StateGrid:
    """Stationary states of the ideal isotropic substrate on a hyperparameter grid.

    Parameters
    ----------
    protocol : {"fixed_sphere", "fixed_elr", "fixed_lr"}
        The training protocol; the axes are ``theory.AXES[protocol]``, e.g. (``lr``, ``wd``).
    d : int
        Dimension (>= 2).
    grid : dict
        ``{name: values}`` for exactly the protocol's two hyperparameters (``theory.AXES``, e.g.
        ``{"lr": [...], "wd": [...]}``), each a 1-d array of distinct positive values; the grid is
        their outer product, as in :func:`thermocheck.simulator.simulate`.
    y_values : 1-d array, optional
        Deprecated: ``synthetic_grid(protocol, d, x_values, y_values)`` with the two axes'
        values in ``theory.AXES`` order still works and warns (``DeprecationWarning``).
    sigma2 : float
        Gradient-noise variance per direction, ``Tr Σ_w̄ / (d − 1)``.
    noise : float
        Relative standard error of every measured value, in [0, 0.25] (module docstring).
    seed : int
        Noise seed (>= 0); with the point's hyperparameters it keys the point's generator.
    mutation : str, optional
        A name of :data:`MUTATIONS`; it must apply to ``protocol``.
    strength : float
        Blend between the correct theory (0) and the mutant (1), in [0, 1]; needs ``mutation``.
    loss : {"linear"}
        The loss whose stationary law is drawn (recorded in each state's ``extra["loss"]``).

    Returns
    -------
    StateGrid
        ``substrate="synthetic"``, ``energy_is_loss=True``, all states stationary.
    """
    protocol = theory.check_protocol(protocol)
    d = check_dimension(d)
    loss = check_choice("loss", loss, LOSSES)
    sigma2 = float(check_positive("sigma2", sigma2))
    noise = float(check_in_range("noise", noise, 0.0, _NOISE_MAX))
    strength = float(check_in_range("strength", strength, 0.0, 1.0))
    if not (isinstance(seed, (int, np.integer)) and seed >= 0):
        raise InvalidParameterError(f"seed={seed!r} must be an integer >= 0")
    if mutation is not None:
        mutation = check_choice("mutation", mutation, MUTATIONS)
        if protocol not in MUTATIONS[mutation].protocols:
            raise InvalidParameterError(
                f"mutation={mutation!r} does not apply to protocol={protocol!r}: choose one of "
                f"{MUTATIONS[mutation].protocols}")
    x_name, y_name = theory.AXES[protocol]
    x_values, y_values = _grid_values(protocol, grid, y_values)
    X, Y = np.meshgrid(_axis(x_name, x_values), _axis(y_name, y_values), indexing="ij")
    hp = {x_name: X.ravel(), y_name: Y.ravel()}
    values = _theory(protocol, d, sigma2, hp, None)
    scales = _scales(protocol, d, hp, values)
    if mutation is not None:
        mutant = _theory(protocol, d, sigma2, hp, mutation)
        values = {k: v + strength * (mutant[k] - v) for k, v in values.items()}
    extra = {"loss": loss, "seed": int(seed), "noise": noise, "mutation": mutation,
             "strength": strength if mutation else 0.0}
    states = []
    for i in range(X.size):
        draws = _point_normals(int(seed), protocol, d, hp[x_name][i], hp[y_name][i])
        fields: dict[str, Any] = {x_name: float(hp[x_name][i]), y_name: float(hp[y_name][i])}
        for k, z in zip(_FIELDS, draws, strict=True):
            if k in values:
                se = noise * float(scales[k][i])
                fields[k] = Estimate(float(values[k][i]) + se * z, se)
        states.append(State(protocol=protocol, d=d, sigma2=Estimate(sigma2), grad_sq=Estimate(0.0),
                            substrate="synthetic", energy_is_loss=True, extra=extra, **fields))
    return StateGrid(states)
