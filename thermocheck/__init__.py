"""thermocheck: the ideal-gas thermodynamics of SGD on scale-invariant networks, as checks.

Sadrtdinov et al., "Can Training Dynamics of Scale-Invariant Neural Networks Be Explained by the
Thermodynamics of an Ideal Gas?" (arXiv:2511.07308, 2025).

The front door: measured states (:class:`State`, :class:`StateGrid`, :class:`Estimate`), the laws
(:mod:`thermocheck.laws`, each ``laws.name(grid, *, options) -> LawResult``), their result
(:class:`LawResult`), the :class:`Recorder` for your own training loop, and the exception family
(every error thermocheck raises derives from :class:`ThermocheckError`)::

    import thermocheck

    grid = thermocheck.StateGrid.load("states.json")
    thermocheck.laws.ideal_gas(grid).assert_passed()

The names are imported on first use (PEP 562), so ``import thermocheck`` stays light: it imports
neither numpy nor torch, and only :class:`Recorder` needs torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from thermocheck._version import __version__

if TYPE_CHECKING:
    from thermocheck import laws
    from thermocheck.errors import (
        ConvergenceError,
        DatasetUnavailableError,
        GridError,
        InvalidParameterError,
        LawFailure,
        MissingDependencyError,
        ParameterTypeError,
        RunError,
        ScaleInvarianceError,
        StateNotFoundError,
        ThermocheckError,
        UnidentifiableFit,
    )
    from thermocheck.record import Recorder
    from thermocheck.results import LawResult
    from thermocheck.states import Estimate, State, StateGrid


#: Each public name and the module it comes from (a module itself where the two are the same).
_EXPORTS: dict[str, str] = {
    "State": "thermocheck.states",
    "StateGrid": "thermocheck.states",
    "Estimate": "thermocheck.states",
    "LawResult": "thermocheck.results",
    "laws": "thermocheck.laws",
    "Recorder": "thermocheck.record",
    **{name: "thermocheck.errors" for name in (
        "ThermocheckError", "InvalidParameterError", "GridError", "ParameterTypeError",
        "StateNotFoundError", "LawFailure", "ScaleInvarianceError", "DatasetUnavailableError",
        "MissingDependencyError", "ConvergenceError", "RunError", "UnidentifiableFit",
    )},
}

__all__ = [
    "ConvergenceError",
    "DatasetUnavailableError",
    "Estimate",
    "GridError",
    "InvalidParameterError",
    "LawFailure",
    "LawResult",
    "MissingDependencyError",
    "ParameterTypeError",
    "Recorder",
    "RunError",
    "ScaleInvarianceError",
    "State",
    "StateGrid",
    "StateNotFoundError",
    "ThermocheckError",
    "UnidentifiableFit",
    "__version__",
    "laws",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use and keep it in the module (PEP 562)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'thermocheck' has no attribute {name!r}")
    module = importlib.import_module(_EXPORTS[name])
    value = module if module.__name__ == f"{__name__}.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
