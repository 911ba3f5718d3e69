"""The optimizers the laws model, and their closed-form predictions (docs/optimizers.md).

A state records its optimizer as a mapping (:func:`check_optimizer`):

* ``{"name": "sgd", "momentum": β, "nesterov": bool}``: ``torch.optim.SGD`` with dampening 0 and
  coupled weight decay, ``v ← βv + g + λw``, then ``w ← w − ηv`` (heavy ball) or
  ``w ← w − η(g + λw + βv)`` (Nesterov). β = 0 is the plain SGD of Eq. 8 and 15 of Sadrtdinov et
  al. (arXiv:2511.07308).
* ``{"name": "adamw", "betas": (β1, β2), "eps": ε}``: ``torch.optim.AdamW`` (decoupled decay
  ``w ← w − ηλw``, then the Adam step).

**Momentum, to leading order.** A gradient kick ``g_k`` enters the velocity once and then moves
the weights by ``η Σ_j β^j g_k = η g_k/(1 − β)``: on time scales much longer than ``1/(1 − β)``
steps, the drift and the noise covariance of heavy ball and Nesterov are those of plain SGD with
the learning rate ``η/(1 − β)`` (:func:`momentum_factor`). Every state equation of the paper then
holds with η replaced by ``η/(1 − β)`` (η_eff by ``η_eff/(1 − β)``): ``T``, ``r*⁴ = η Tr Σ_w̄ /
(2λ(1 − β))`` under fixed LR (Eq. 19), ``r*² = η_eff Tr Σ_w̄ / (2λ(1 − β))`` under fixed ELR
(Eq. 12), ``λ_eff`` on the sphere (Eq. 84), and the Maxwell relations, whose derivatives in
``log η`` do not see a constant factor. It reproduces the equilibrium angular update of SGD with
momentum, ``√(2ηλ/(1 + β))``, of Wan et al. (2021, arXiv:2006.08419) and Kosson et al. (2024).

**AdamW** (Kosson et al., 2024, "Rotational Equilibrium: How Weight Decay Balances Learning Across
Neural Networks", ICML 2024, arXiv:2305.17212; not a result of the ideal-gas paper): when the
normalised update ``u = m̂/(√v̂ + ε)`` behaves as a random walk with
``E u_i² ≈ (1 − β1)/(1 + β1)`` per coordinate, the decoupled decay balances the walk at
``E‖w‖² = η C/(2λ)`` with ``C`` the number of coordinates, and the expected angular update per
step is ``√(2ηλ (1 − β1)/(1 + β1))`` (:func:`adamw_equilibrium`; the law is
:func:`thermocheck.laws.norm_equilibrium`). The norm does not depend on the gradient's scale or on
β2. Whether a temperature exists for AdamW is measured, not assumed (docs/optimizers.md: the
direction's concentration temperature and the one pV = RT needs differ).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermocheck.errors import InvalidParameterError, ParameterTypeError, check_positive

__all__ = [
    "OPTIMIZERS",
    "PLAIN_SGD",
    "AdamWEquilibrium",
    "adamw_equilibrium",
    "check_optimizer",
    "momentum_factor",
]

#: Optimizer names a state may record.
OPTIMIZERS = ("sgd", "adamw")
#: The optimizer of the paper, and the default of every state.
PLAIN_SGD: dict[str, Any] = {"name": "sgd", "momentum": 0.0, "nesterov": False}
_ADAMW_DEFAULTS: dict[str, Any] = {"name": "adamw", "betas": (0.9, 0.999), "eps": 1e-8}


def _unit_interval(name: str, value: Any) -> float:
    """``value`` as a float in [0, 1); booleans and strings are refused."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer,
                                                                        np.floating)):
        raise ParameterTypeError(f"{name}={value!r} must be a real number in [0, 1)")
    if not 0.0 <= float(value) < 1.0:
        raise InvalidParameterError(f"{name}={value!r} is invalid: {name} must be in [0, 1)")
    return float(value)


def momentum_factor(momentum: float) -> float:
    """``1/(1 − β)``: heavy-ball and Nesterov SGD with momentum β ∈ [0, 1) have, to leading order,
    the stationary state of plain SGD with learning rate ``η/(1 − β)`` (module docstring)."""
    return 1.0 / (1.0 - _unit_interval("momentum", momentum))


def check_optimizer(record: Mapping[str, Any] | None) -> dict[str, Any]:
    """A validated optimizer record with its defaults filled in (module docstring).

    ``None`` is plain SGD. SGD takes ``momentum`` in [0, 1) and ``nesterov`` (a boolean; Nesterov
    needs ``momentum > 0``, as in ``torch.optim.SGD``); AdamW takes ``betas``, two values in
    [0, 1), and ``eps`` >= 0. Unknown keys are refused: a hyperparameter the laws do not model
    (e.g. SGD's dampening) must not pass unnoticed.
    """
    if record is None:
        return dict(PLAIN_SGD)
    if not isinstance(record, Mapping):
        raise ParameterTypeError(f"optimizer={record!r} must be a mapping with a 'name' in "
                                 f"{OPTIMIZERS}")
    name = record.get("name")
    defaults = {"sgd": PLAIN_SGD, "adamw": _ADAMW_DEFAULTS}.get(name)  # type: ignore[arg-type]
    if defaults is None:
        raise InvalidParameterError(f"optimizer name={name!r} is invalid: choose from "
                                    f"{OPTIMIZERS}")
    unknown = set(record) - set(defaults)
    if unknown:
        raise InvalidParameterError(f"optimizer {name!r} has unknown keys {sorted(unknown)}; "
                                    f"the laws model only {sorted(defaults)}")
    out = {**defaults, **record}
    if name == "sgd":
        out["momentum"] = _unit_interval("momentum", out["momentum"])
        if not isinstance(out["nesterov"], (bool, np.bool_)):
            raise ParameterTypeError(f"nesterov={out['nesterov']!r} must be a boolean")
        out["nesterov"] = bool(out["nesterov"])
        if out["nesterov"] and out["momentum"] == 0:
            raise InvalidParameterError("nesterov=True needs momentum > 0 (as torch.optim.SGD)")
        return out
    betas = out["betas"]
    if not isinstance(betas, Sequence) or isinstance(betas, str) or len(betas) != 2:
        raise InvalidParameterError(f"betas={betas!r} must be two numbers in [0, 1)")
    out["betas"] = [_unit_interval(f"betas[{i}]", b) for i, b in enumerate(betas)]
    eps = out["eps"]
    if isinstance(eps, (bool, str)) or not (isinstance(eps, (int, float)) and
                                            math.isfinite(eps) and eps >= 0):
        raise InvalidParameterError(f"eps={eps!r} is invalid: eps must be finite and >= 0")
    out["eps"] = float(eps)
    return out


@dataclass(frozen=True)
class AdamWEquilibrium:
    """Kosson et al. (2024), AdamW: ``sq_norm = η C/(2λ)`` (the equilibrium E‖w‖²) and
    ``angular_update = √(2ηλ (1 − β1)/(1 + β1))`` (the expected angle between w_k and w_{k+1})."""

    sq_norm: float
    angular_update: float


def adamw_equilibrium(*, lr: float, wd: float, coordinates: int,
                      beta1: float = 0.9) -> AdamWEquilibrium:
    """Rotational equilibrium of AdamW on a scale-invariant weight vector of ``coordinates``
    entries (Kosson et al., 2024): ``E‖w‖² = ηC/(2λ)``, angular update per step
    ``√(2ηλ (1 − β1)/(1 + β1))``. Valid when the normalised update is a random walk (noise
    dominated gradients, ``ε`` negligible against ``√v̂``, ``ηλ ≪ 1``)."""
    eta = float(check_positive("lr", lr))
    lam = float(check_positive("wd", wd))
    if isinstance(coordinates, bool) or not isinstance(coordinates, (int, np.integer)) \
            or coordinates < 1:
        raise InvalidParameterError(f"coordinates={coordinates!r} must be an integer >= 1")
    b1 = _unit_interval("beta1", beta1)
    return AdamWEquilibrium(eta * int(coordinates) / (2 * lam),
                            math.sqrt(2 * eta * lam * (1 - b1) / (1 + b1)))
