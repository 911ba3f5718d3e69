"""Broken simulators, for showing that each law catches the defect it should.

A mutant changes one thing the substrate really does (a field of
:class:`~thermocheck.simulator.kernel.Dynamics`, or the per-coordinate noise scale) and runs through
the same kernel as the correct simulator. Its states report the *claimed* hyperparameters and σ²,
exactly as the correct simulator's do (plus ``extra["mutant"]``), so only the laws can tell.

``Mutant.caught_by[protocol]`` records which laws fail on it (``"stationarity"``: no point is
stationary, so every law is inconclusive); ``tests/test_simulator_mutants.py`` checks the table
on a 2 × 2 grid, d = 3, 10⁵ iterations, without entropy:

=============================  ======================================  ==========================
mutant                         defect                                  caught by
=============================  ======================================  ==========================
``unprojected_noise``          ``σε/‖w‖``: a radial noise component    LR, ELR: ``ideal_gas``
                               of mean zero (Tr Σ = σ²d)               (not ``norm_balance``:
                                                                       zero mean). Sphere: none —
                                                                       the projection absorbs it
                                                                       (same dynamics to O(η²));
                                                                       only the measured σ²
                                                                       (``extra``) is d/(d−1) off
``unscaled_noise``             ``σP_wε`` without the ``1/‖w‖``         LR, sphere: ``ideal_gas``,
                                                                       ``vmf_closed_form``; ELR:
                                                                       stationarity (‖w‖ runs
                                                                       away or collapses)
``elr_without_norm``           fixed ELR step ``η_eff``, not           ``ideal_gas``,
                               ``η_eff‖w‖²``                           ``norm_balance``,
                                                                       ``vmf_closed_form``
``sphere_without_projection``  no projection back on the sphere        stationarity (‖w‖ grows)
``double_wd``                  weight decay applied twice              ``ideal_gas``,
                                                                       ``norm_balance``
``anisotropic_noise``          noise scales ``s_i² = (2i + 1)/d``      ``ideal_gas``,
                               (mean 1)                                ``vmf_closed_form``
``radial_gradient``            the loss gradient keeps its radial      ``ideal_gas`` (and
                               part ``(μᵀw̄)w̄/‖w‖`` (mean ≠ 0)          ``norm_balance`` under
                                                                       LR, ELR)
``hot_noise``                  noise ``√2 σ`` while σ is claimed       ``ideal_gas``,
                                                                       ``vmf_closed_form``
=============================  ======================================  ==========================

Mutants of SGD's momentum (run with ``momentum=β > 0``; the states claim ``torch.optim.SGD`` with
that β; ``tests/test_momentum.py`` checks them at β = 0.9 under fixed LR and fixed ELR):

=============================  ======================================  ==========================
``undecayed_velocity``         ``v ← v + g + λw``: the velocity is     ``ideal_gas``,
                               never multiplied by β                   ``norm_balance``: ELR
                                                                       diverges where a stable
                                                                       state is predicted; LR
                                                                       oscillates undamped, and
                                                                       the points judged
                                                                       stationary fail (when none
                                                                       is: inconclusive)
``decay_outside_velocity``     ``v ← βv + g``, ``w ← w − η(v + λw)``:  ``ideal_gas``,
                               decay not amplified by ``1/(1 − β)``    ``norm_balance``
``plain_lr_claimed``           momentum β runs, β = 0 is claimed: the  ``ideal_gas``,
                               prediction uses η, not ``η/(1 − β)``    ``norm_balance``
=============================  ======================================  ==========================

A mutant of AdamW (run with ``adamw=...``, fixed LR; the states claim ``torch.optim.AdamW``;
``tests/test_adamw.py``):

=============================  ======================================  ==========================
``coupled_decay``              Adam with L2: ``g ← g + λw`` inside     ``norm_equilibrium``
                               the moments, no decoupled decay
=============================  ======================================  ==========================
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import InvalidParameterError, check_choice
from thermocheck.simulator.api import (
    SimulationResult,
    _claimed_optimizer,
    _correct_dynamics,
    run_simulation,
    simulate,
)
from thermocheck.simulator.kernel import Dynamics

__all__ = ["MUTANTS", "Mutant", "simulate_mutant"]


def _ones(d: int) -> np.ndarray:
    return np.ones(d)


def _anisotropic(d: int) -> np.ndarray:
    """Scales with ``s_i² = (2i + 1)/d``, i = 0 … d − 1: their squares average 1."""
    return np.sqrt((2 * np.arange(d) + 1) / d)


@dataclass(frozen=True)
class Mutant:
    """One defect: ``changes`` to the protocol's correct :class:`Dynamics`, a noise scale, and the
    laws that catch it per protocol it applies to (an empty tuple: a documented blind spot)."""

    name: str
    defect: str
    caught_by: Mapping[str, tuple[str, ...]]
    changes: Mapping[str, Any] = field(default_factory=dict)
    noise_scale: Callable[[int], np.ndarray] = _ones
    needs_momentum: bool = False  # a defect of the velocity: runs only with momentum β > 0
    needs_adamw: bool = False  # a defect of AdamW's step: runs only with adamw=...

    @property
    def protocols(self) -> tuple[str, ...]:
        """The protocols the defect applies to."""
        return tuple(self.caught_by)

    def dynamics(self, protocol: str, *, momentum: float = 0.0, nesterov: bool = False,
                 adamw: Mapping[str, Any] | bool | None = None) -> Dynamics:
        """The mutant's real dynamics under ``protocol`` with SGD momentum β, or with AdamW."""
        optimizer = _claimed_optimizer(protocol, momentum, nesterov, adamw)
        return _correct_dynamics(protocol, optimizer)._replace(**self.changes)


_IDEAL_VMF = ("ideal_gas", "vmf_closed_form")


_MOMENTUM_CAUGHT = ("ideal_gas", "norm_balance")


def _every(*laws: str) -> dict[str, tuple[str, ...]]:
    return dict.fromkeys(theory.PROTOCOLS, laws)


MUTANTS: dict[str, Mutant] = {m.name: m for m in (
    Mutant("unprojected_noise", "the noise is not projected on the tangent space",
           {"fixed_sphere": (), "fixed_elr": ("ideal_gas",), "fixed_lr": ("ideal_gas",)},
           {"project_noise": False}),
    Mutant("unscaled_noise", "the noise is not scaled by 1/‖w‖",
           {"fixed_sphere": _IDEAL_VMF, "fixed_elr": ("stationarity",), "fixed_lr": _IDEAL_VMF},
           {"noise_power": 0}),
    Mutant("elr_without_norm", "the fixed-ELR step lacks its ‖w‖² factor",
           {"fixed_elr": ("ideal_gas", "norm_balance", "vmf_closed_form")}, {"step_power": 0}),
    Mutant("sphere_without_projection", "the weights are not projected back on the sphere",
           {"fixed_sphere": ("stationarity",)}, {"project_sphere": False}),
    Mutant("double_wd", "weight decay is applied twice",
           {"fixed_elr": ("ideal_gas", "norm_balance"), "fixed_lr": ("ideal_gas", "norm_balance")},
           {"wd_factor": 2.0}),
    Mutant("anisotropic_noise", "the noise is anisotropic (scales s_i² = (2i + 1)/d)",
           _every(*_IDEAL_VMF), noise_scale=_anisotropic),
    Mutant("radial_gradient", "the loss gradient keeps a radial component",
           {"fixed_sphere": ("ideal_gas",), "fixed_elr": ("ideal_gas", "norm_balance"),
            "fixed_lr": ("ideal_gas", "norm_balance")},
           {"project_grad": False}),
    Mutant("hot_noise", "the noise is √2 σ while σ is claimed", _every(*_IDEAL_VMF),
           noise_scale=lambda d: np.full(d, np.sqrt(2.0))),
    Mutant("undecayed_velocity", "the velocity is not multiplied by β (v ← v + g + λw)",
           {"fixed_elr": _MOMENTUM_CAUGHT, "fixed_lr": _MOMENTUM_CAUGHT},
           {"momentum": 1.0}, needs_momentum=True),
    Mutant("decay_outside_velocity", "weight decay is applied to w, outside the velocity",
           {"fixed_elr": _MOMENTUM_CAUGHT, "fixed_lr": _MOMENTUM_CAUGHT},
           {"decay_in_velocity": False}, needs_momentum=True),
    Mutant("plain_lr_claimed", "momentum runs but β = 0 is claimed (prediction at η, not "
           "η/(1 − β))", {"fixed_elr": _MOMENTUM_CAUGHT, "fixed_lr": _MOMENTUM_CAUGHT},
           {"claimed_momentum": 0.0}, needs_momentum=True),
    Mutant("coupled_decay", "AdamW's weight decay is coupled: λw enters the moments (Adam with "
           "L2) instead of w ← (1 − ηλ)w", {"fixed_lr": ("norm_equilibrium",)},
           {"decoupled": False}, needs_adamw=True),
)}


def simulate_mutant(name: str, protocol: str, **options: Any) -> SimulationResult:
    """:func:`~thermocheck.simulator.simulate` with the defect of mutant ``name``; same options and
    defaults (taken from ``simulate``'s signature)."""
    mutant = MUTANTS[check_choice("name", name, MUTANTS)]
    if protocol not in mutant.protocols:
        raise InvalidParameterError(
            f"mutant {name!r} applies to protocols {mutant.protocols}, not {protocol!r}"
        )
    try:
        bound = inspect.signature(simulate).bind(protocol, **options)
    except TypeError as err:
        raise InvalidParameterError(f"simulate_mutant: {err}") from None
    bound.apply_defaults()
    momentum, nesterov = bound.arguments["momentum"], bound.arguments["nesterov"]
    adamw = bound.arguments["adamw"]
    if mutant.needs_momentum and not momentum:
        raise InvalidParameterError(
            f"mutant {name!r} is a defect of the velocity: pass momentum=β with 0 < β < 1")
    if mutant.needs_adamw and not adamw:
        raise InvalidParameterError(
            f"mutant {name!r} is a defect of AdamW's step: pass adamw=True or adamw={{...}}")
    return run_simulation(
        *bound.args, **bound.kwargs,
        dynamics=mutant.dynamics(protocol, momentum=momentum, nesterov=nesterov, adamw=adamw),
        noise_scale=mutant.noise_scale(bound.arguments["d"]), mutant=name,
    )
