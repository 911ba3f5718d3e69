"""One small exception family; every message names the parameter and its valid range."""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ConvergenceError",
    "DatasetUnavailableError",
    "GridError",
    "InvalidParameterError",
    "LawFailure",
    "MissingDependencyError",
    "ParameterTypeError",
    "RunError",
    "ScaleInvarianceError",
    "StateNotFoundError",
    "ThermocheckError",
    "UnidentifiableFit",
    "check_choice",
    "check_dimension",
    "check_in_range",
    "check_positive",
    "check_writable_folder",
]


class ThermocheckError(Exception):
    """Base class of every error thermocheck raises on purpose."""


class InvalidParameterError(ThermocheckError, ValueError):
    """A parameter is outside its valid range: the message says which, and what the range is."""


class GridError(ThermocheckError, ValueError):
    """A grid of states is too small, irregular or mixed for the requested law."""


class UnidentifiableFit(GridError):
    """The points cannot determine a fit's coefficients; the message says which and why."""


class ParameterTypeError(ThermocheckError, TypeError):
    """An argument has the wrong type: the message says which type is expected."""


class StateNotFoundError(ThermocheckError, KeyError):
    """A grid holds no state at the requested hyperparameters."""


class LawFailure(ThermocheckError, AssertionError):
    """Raised by :meth:`thermocheck.results.LawResult.assert_passed`; the message explains the
    failure."""


class ScaleInvarianceError(ThermocheckError, ValueError):
    """The loss is not invariant to scaling the trainable parameters; the message names them."""


class DatasetUnavailableError(ThermocheckError, FileNotFoundError):
    """A dataset's files (or the package that provides it) are missing; the message says where
    to put them or what to install."""


class MissingDependencyError(ThermocheckError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""


class ConvergenceError(ThermocheckError, RuntimeError):
    """A numerical method did not converge within its iteration budget."""


class RunError(ThermocheckError, RuntimeError):
    """The environment failed during a run (a shard or worker crashed, a job vanished): what was
    measured is reported, but the run is incomplete (``thermocheck verify`` exits with 4).

    ``errors`` says what failed; ``results`` holds the law results of the points that finished
    and ``report`` the folder their report went to (None when none was written).
    """

    def __init__(self, errors: Sequence[str], *, results: Sequence[Any] = (),
                 report: Path | None = None) -> None:
        self.errors = tuple(errors)
        self.results = tuple(results)
        self.report = report
        first = self.errors[0].strip().splitlines()[-1:] if self.errors else []
        super().__init__(f"{len(self.errors)} failure(s) during the run"
                         + (f"; first: {first[0]}" if first else ""))


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


def check_writable_folder(name: str, path: str | Path) -> Path:
    """Check, before any work, that ``path`` is a folder that exists or can be created, and that
    a file can be written there; return it. Creates nothing: the check writes (and removes) a
    temporary file in the nearest folder that exists.
    """
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise InvalidParameterError(f"{name}={str(folder)!r} is invalid: it is a file; {name} "
                                    "must be a folder that exists or can be created")
    existing = next(p for p in (folder, *folder.parents) if p.exists() or p == p.parent)
    if not existing.is_dir():
        raise InvalidParameterError(f"{name}={str(folder)!r} is invalid: {str(existing)!r} is a "
                                    f"file, so the folder cannot be created")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise InvalidParameterError(f"{name}={str(folder)!r} is invalid: cannot write in "
                                    f"{str(existing)!r} ({err.strerror or err})") from None
    return folder
