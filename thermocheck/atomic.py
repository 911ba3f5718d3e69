"""Atomic file writes: a reader sees the old file or the whole new one, never a part.

Every file thermocheck writes (``report.json`` and ``report.md``, saved grids, results-cache
entries, training checkpoints) goes through :func:`atomic_write`: the content is written to a
temporary file in the target's own folder (so the rename stays on one file system), flushed and
``fsync``-ed, moved over the target with ``os.replace`` (atomic on POSIX and Windows), and the
folder is ``fsync``-ed where the platform allows, so the rename itself survives a crash. On any
error, an interrupt included, the temporary file is removed and the target is left as it was.

This module imports nothing from thermocheck: every layer may use it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_write", "atomic_write_text"]

#: Permission bits of a new file before the umask (``open``'s default; ``mkstemp`` uses 0o600,
#: which would hide reports and caches from the other users of a shared folder).
_FILE_MODE = 0o666


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> Path:
    """Write ``path`` atomically: ``write(fh)`` fills a temporary binary file, which replaces it.

    ``write`` receives an open binary file (``torch.save(obj, fh)`` or ``fh.write(data)``). The
    parent folders are created as needed. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(tmp, _FILE_MODE & ~_umask())
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda fh: fh.write(data))


def _umask() -> int:
    """The process's umask. Read without changing it where the OS reports it (Linux), since
    setting and restoring it races with threads that create files meanwhile."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable. Skipped where folders cannot be opened or synced
    (Windows; some network file systems)."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
