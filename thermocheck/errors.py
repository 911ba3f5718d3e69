"""One small exception family; every message names the parameter and its valid range."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

__all__ = [
    "GridError",
    "InvalidParameterError",
    "ThermocheckError",
    "check_choice",
    "check_dimension",
    "check_in_range",
    "check_positive",
]


class ThermocheckError(Exception):
    """Base class of every error thermocheck raises on purpose."""


class InvalidParameterError(ThermocheckError, ValueError):
    """A parameter is outside its valid range: the message says which, and what the range is."""


class GridError(ThermocheckError, ValueError):
    """A grid of states is too small, irregular or mixed for the requested law."""


def _as_float_array(name: str, value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidParameterError(f"{name}={value!r} must be a real number or array") from None


def _first_bad(arr: np.ndarray, bad: np.ndarray) -> float:
    return float(arr[bad].flat[0]) if arr.ndim else float(arr)


def check_positive(name: str, value: Any) -> np.ndarray:
    """Return ``value`` as float64 after checking that it is finite and > 0 everywhere."""
    arr = _as_float_array(name, value)
    bad = ~(np.isfinite(arr) & (arr > 0))
    if np.any(bad):
        raise InvalidParameterError(
            f"{name}={_first_bad(arr, bad)!r} is invalid: {name} must be finite and > 0"
        )
    return arr


def check_in_range(
    name: str, value: Any, low: float, high: float, *, closed: str = "both"
) -> np.ndarray:
    """Return ``value`` as float64 after checking ``low <= value <= high``.

    ``closed`` ("both", "left", "right" or "neither") chooses which ends belong to the range.
    """
    arr = _as_float_array(name, value)
    lo_ok = arr >= low if closed in ("both", "left") else arr > low
    hi_ok = arr <= high if closed in ("both", "right") else arr < high
    bad = ~(np.isfinite(arr) & lo_ok & hi_ok)
    if np.any(bad):
        left = "[" if closed in ("both", "left") else "("
        right = "]" if closed in ("both", "right") else ")"
        raise InvalidParameterError(
            f"{name}={_first_bad(arr, bad)!r} is out of range: {name} must lie in "
            f"{left}{low:g}, {high:g}{right}"
        )
    return arr


def check_dimension(d: Any, *, name: str = "d", low: int = 2, high: float = math.inf) -> Any:
    """Check that the dimension (or array of dimensions) is an integer >= ``low`` (default 2)."""
    arr = _as_float_array(name, d)
    bad = ~(np.isfinite(arr) & (arr >= low) & (arr <= high) & (arr == np.round(arr)))
    if np.any(bad):
        hi = "" if math.isinf(high) else f" and <= {high:g}"
        raise InvalidParameterError(
            f"{name}={_first_bad(arr, bad)!r} is invalid: {name} must be an integer >= {low}{hi}"
        )
    return int(arr) if arr.ndim == 0 else arr


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Check that ``value`` is one of ``choices``."""
    options = tuple(choices)
    if value not in options:
        raise InvalidParameterError(f"{name}={value!r} is invalid: choose one of {options}")
    return str(value)
