"""A results cache: one measured state per grid point, keyed by a hash of its configuration.

A point's configuration names everything its measurement depends on: the substrate (and, for
networks, model and dataset), protocol, ``d``, the two hyperparameters, seed, iterations, the
substrate's further options, and :data:`MEASUREMENT_VERSION`. Its key is the SHA-256 of the
configuration's canonical JSON (:func:`config_key`), so the key does not depend on dict order, on
how a number was written (``1e-2``, ``0.01``, ``np.float64(0.01)``) or on numpy versus Python types.

Each entry is one JSON file, ``<root>/points/<key[:2]>/<key>.json``, written atomically (a temporary
file, then ``os.replace``), so a reader sees a whole entry or none, and concurrent writers of the
same point (two jobs, a requeue) cannot corrupt it. Entries carry a ``schema_version``.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import socket
import sys
import warnings
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck.errors import InvalidParameterError
from thermocheck.report import atomic_write_text
from thermocheck.states import State

__all__ = [
    "MEASUREMENT_VERSION",
    "SCHEMA_VERSION",
    "ResultsCache",
    "canonical_config",
    "config_key",
    "default_cache_dir",
]

#: Version of thermocheck's measurement code (substrates and the estimators they call). Bump it
#: whenever a change alters the numbers a configuration measures: every cached point is then stale.
MEASUREMENT_VERSION = 1

#: Version of the cache entry format.
SCHEMA_VERSION = 1

_KIND = "thermocheck.CachedState"


def default_cache_dir() -> Path:
    """The per-user cache folder, as platformdirs would place it, without the dependency.

    ``$THERMOCHECK_CACHE_DIR`` when set; else ``%LOCALAPPDATA%\\thermocheck\\Cache`` on Windows,
    ``~/Library/Caches/thermocheck`` on macOS and ``$XDG_CACHE_HOME/thermocheck`` (default
    ``~/.cache/thermocheck``) elsewhere.
    """
    if os.environ.get("THERMOCHECK_CACHE_DIR"):
        return Path(os.environ["THERMOCHECK_CACHE_DIR"])
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
        return base / "thermocheck" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "thermocheck"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "thermocheck"


def _canonical(name: str, value: Any) -> Any:
    """JSON-ready canonical form: sorted mappings, lists, Python scalars; integral floats → int."""
    if isinstance(value, Mapping):
        return {str(k): _canonical(f"{name}.{k}", v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_canonical(f"{name}[]", v) for v in value]
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        x = float(value)
        if not math.isfinite(x):
            raise InvalidParameterError(f"{name}={x!r} is invalid: a configuration holds finite "
                                        "numbers")
        return int(x) if x.is_integer() and abs(x) < 2**53 else x
    raise InvalidParameterError(
        f"{name}={value!r} ({type(value).__name__}) cannot enter a cache key: use numbers, "
        "strings, booleans, None, lists and mappings"
    )


def canonical_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The canonical form of a point's configuration (see :func:`config_key`).

    Mappings are sorted by key, sequences become lists, numpy scalars become Python scalars, and a
    float with an integral value becomes an int, so ``3``, ``3.0`` and ``np.int64(3)`` agree. Other
    floats keep their exact value: ``1e-2``, ``0.01`` and ``np.float64(0.01)`` are one number, while
    two floats that differ in the last bit are two configurations (they are two computations).
    """
    return _canonical("config", dict(config))


def config_key(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the compact, key-sorted JSON of :func:`canonical_config`."""
    text = json.dumps(canonical_config(config), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=True, allow_nan=False)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class ResultsCache:
    """Measured states on disk, one atomic JSON file per configuration.

    Parameters
    ----------
    root
        The cache folder (created on first write); :func:`default_cache_dir` when None. Slurm jobs
        write to it, so on a cluster it must sit on a file system that the nodes share.
    """

    def __init__(self, root: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(root) if root is not None else default_cache_dir()

    def __repr__(self) -> str:
        return f"ResultsCache({str(self.root)!r})"

    def path(self, key: str) -> Path:
        """The file that holds (or will hold) the entry with this key."""
        return self.root / "points" / key[:2] / f"{key}.json"

    def get(self, config: Mapping[str, Any]) -> State | None:
        """The cached state of ``config``, or None when absent, unreadable or of another schema."""
        key = config_key(config)
        path = self.path(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            warnings.warn(f"ignoring unreadable cache entry {path}: {err}", stacklevel=2)
            return None
        if entry.get("schema_version") != SCHEMA_VERSION or entry.get("key") != key:
            warnings.warn(f"ignoring cache entry {path}: schema_version="
                          f"{entry.get('schema_version')!r}, this thermocheck reads "
                          f"{SCHEMA_VERSION}", stacklevel=2)
            return None
        return State.from_dict(entry["state"])

    def __contains__(self, config: Mapping[str, Any]) -> bool:
        return self.path(config_key(config)).is_file()

    def put(self, config: Mapping[str, Any], state: State, *, seconds: float | None = None) -> Path:
        """Store ``state`` as the measurement of ``config`` (atomically, replacing any old entry).

        The entry also records where and when it was measured (``meta``); "the same results"
        compares the ``state`` alone.
        """
        key = config_key(config)
        entry = {
            "schema_version": SCHEMA_VERSION,
            "kind": _KIND,
            "key": key,
            "config": canonical_config(config),
            "state": state.to_dict(),
            "meta": {
                "host": socket.gethostname(),
                "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": seconds,
                "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
            },
        }
        return atomic_write_text(self.path(key), json.dumps(entry, indent=1))

    def keys(self) -> Iterator[str]:
        """The keys of all entries, in no particular order."""
        for path in self.root.glob("points/??/*.json"):
            yield path.stem

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())
