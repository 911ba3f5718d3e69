"""A results cache: one measured state per grid point, keyed by a hash of its configuration.

A point's configuration names everything its measurement depends on: the substrate (and, for
networks, model and dataset), protocol, ``d``, the two hyperparameters, seed, iterations, the
substrate's further options, :data:`MEASUREMENT_VERSION`, and the measurement code itself: a hash
of the source of the substrate's modules and of the estimators they call
(:func:`source_fingerprint`), so a change to that code cannot serve stale states because nobody
bumped a version. Its key is the SHA-256 of the
configuration's canonical JSON (:func:`config_key`), so the key does not depend on dict order, on
how a number was written (``1e-2``, ``0.01``, ``np.float64(0.01)``) or on numpy versus Python types.

Each entry is one JSON file, ``<root>/points/<key[:2]>/<key>.json``, written atomically (a temporary
file, then ``os.replace``), so a reader sees a whole entry or none, and concurrent writers of the
same point (two jobs, a requeue) cannot corrupt it. Entries carry a ``schema_version`` and a
``checksum`` of their content (:func:`entry_checksum`): an entry edited by hand no longer matches
it and is ignored, with a warning, as if absent.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import math
import os
import socket
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck.atomic import atomic_write_text
from thermocheck.errors import InvalidParameterError, check_writable_folder
from thermocheck.states import State

__all__ = [
    "MEASUREMENT_VERSION",
    "SCHEMA_VERSION",
    "ResultsCache",
    "canonical_config",
    "config_key",
    "default_cache_dir",
    "entry_checksum",
    "source_fingerprint",
]

#: Version of thermocheck's measurement conventions. The code is keyed by its own source
#: (:func:`source_fingerprint`); bump this only for a change outside the fingerprinted modules
#: that alters the numbers a configuration measures.
MEASUREMENT_VERSION = 2

#: Version of the cache entry format (2: entries carry a content checksum).
SCHEMA_VERSION = 2

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


def _module_files(name: str) -> list[Path]:
    """The source files of module ``name``, every ``.py`` file of it if it is a package; found
    without importing it (only its parent packages)."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise InvalidParameterError(f"module {name!r} is not importable: its source cannot key "
                                    "the cache")
    if spec.submodule_search_locations:
        return sorted(f for folder in spec.submodule_search_locations
                      for f in Path(folder).rglob("*.py"))
    return [Path(spec.origin)]


@functools.cache
def _fingerprint(modules: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in modules:
        for path in _module_files(name):
            digest.update(f"{name}:{path.name}\0".encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def source_fingerprint(modules: Iterable[str]) -> str:
    """The first 16 hex digits of the SHA-256 of ``modules``' source (each package's ``.py``
    files), in sorted order: what keys a point to the code that measured it. Read once per
    process, as the code that runs is the code imported."""
    return _fingerprint(tuple(sorted(set(modules))))


def entry_checksum(entry: Mapping[str, Any]) -> str:
    """SHA-256 of an entry's ``key``, ``config`` and ``state`` as canonical JSON: what a stored
    entry's ``checksum`` must equal (its ``meta``, where and when it was measured, is left out)."""
    content = {k: entry.get(k) for k in ("key", "config", "state")}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
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

    def check_writable(self) -> None:
        """Raise :class:`~thermocheck.errors.InvalidParameterError` unless the cache folder exists
        or can be created and takes files; called before any work, since every measured point
        goes there."""
        check_writable_folder("cache", self.root)

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
        if not isinstance(entry, dict) or entry.get("schema_version") != SCHEMA_VERSION:
            version = entry.get("schema_version") if isinstance(entry, dict) else None
            warnings.warn(f"ignoring cache entry {path}: schema_version={version!r}, this "
                          f"thermocheck reads {SCHEMA_VERSION}", stacklevel=2)
            return None
        if entry.get("key") != key or entry.get("checksum") != entry_checksum(entry):
            warnings.warn(f"ignoring cache entry {path}: its content does not match its checksum "
                          "(edited by hand?); the point is measured again", stacklevel=2)
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
        entry: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "kind": _KIND,
            "key": key,
            "config": canonical_config(config),
            "state": state.to_dict(),
        }
        entry["checksum"] = entry_checksum(entry)
        entry["meta"] = {
            "host": socket.gethostname(),
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "seconds": seconds,
            "slurm_job_id": os.environ.get("SLURM_JOB_ID"),
        }
        return atomic_write_text(self.path(key), json.dumps(entry, indent=1))

    def keys(self) -> Iterator[str]:
        """The keys of all entries, in no particular order."""
        for path in self.root.glob("points/??/*.json"):
            yield path.stem

    def __len__(self) -> int:
        return sum(1 for _ in self.keys())
