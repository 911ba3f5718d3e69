"""The isotropic-noise simulator of Sadrtdinov et al. (Eq. 24): a whole hyperparameter grid at once.

``simulate(protocol, d=..., grid=..., iterations=...)`` returns a :class:`SimulationResult` whose
``.grid`` is a :class:`~thermocheck.states.StateGrid` for the laws. Losses: :class:`LinearLoss`
(von Mises–Fisher stationary law), :class:`QuadraticLoss` (Bingham) or any callable on the
direction. Broken variants for testing the laws are in :mod:`thermocheck.simulator.mutants`.
"""

from thermocheck.simulator.api import SimulationResult, relaxation_steps, simulate
from thermocheck.simulator.kernel import QUANTITIES
from thermocheck.simulator.losses import CallableLoss, LinearLoss, Loss, QuadraticLoss

__all__ = [
    "QUANTITIES",
    "CallableLoss",
    "LinearLoss",
    "Loss",
    "QuadraticLoss",
    "SimulationResult",
    "relaxation_steps",
    "simulate",
]
