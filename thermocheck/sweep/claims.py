"""A lock per grid point, so that concurrent runs on one results cache measure each point once.

Before a run measures a point it takes that point's lock, ``<cache>/claims/<key[:2]>/<key>.lock``,
with ``flock`` (an exclusive advisory lock on an open file), without waiting: a point locked by
another run is left for later. The operating system releases a lock when its holder exits, however
it exits (``SIGKILL``, a crash, a node that reboots, through the NFS server's lease), so there is no
stale claim to time out: a killed run's points are free at once, and a resumed or concurrent run
takes them over.

A lock file is removed by its holder before the lock is released. A process that opened the old
file meanwhile then holds a lock on a file that no longer has a name; it notices (the inode under
the path differs from its own) and tries again, so two holders of one point cannot coexist.

Where the file system or platform has no ``flock`` (Windows, Lustre mounted without ``flock``) the
locks are skipped with a warning: concurrent runs then may measure a point twice, which wastes work
but changes no result (each point's numbers come from its own random stream, and the cache entry is
replaced atomically).
"""

from __future__ import annotations

import errno
import os
import warnings
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["PointLock", "lock_path"]

_BUSY = (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
_warned = False


def lock_path(root: str | os.PathLike[str], key: str) -> Path:
    """The lock file of the point whose cache key is ``key``."""
    return Path(root) / "claims" / key[:2] / f"{key}.lock"


def _no_locking(reason: str) -> None:
    global _warned
    if not _warned:
        warnings.warn(f"thermocheck sweep: points are not locked ({reason}); concurrent runs on "
                      "this cache may measure a point twice", RuntimeWarning, stacklevel=3)
        _warned = True


class PointLock:
    """The lock of one point: :meth:`acquire` (waiting or not), :meth:`release`.

    Parameters
    ----------
    root
        The results cache folder.
    key
        The point's cache key (:func:`thermocheck.sweep.cache.config_key`).
    """

    def __init__(self, root: str | os.PathLike[str], key: str) -> None:
        self.path = lock_path(root, key)
        self._fd: int | None = None
        self._unlocked = False

    @property
    def held(self) -> bool:
        return self._fd is not None or self._unlocked

    def acquire(self, *, wait: bool = False) -> bool:
        """Take the lock; without ``wait``, return False at once when another process holds it."""
        if self.held:
            return True
        if fcntl is None:
            _no_locking("this platform has no flock")
            self._unlocked = True
            return True
        while True:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except OSError as err:
                os.close(fd)
                if err.errno in _BUSY:
                    return False
                _no_locking(f"flock on {self.path.parent} failed: {err}")
                self._unlocked = True
                return True
            if self._same_file(fd):
                self._fd = fd
                return True
            os.close(fd)  # the holder removed the file we opened: try the current one

    def _same_file(self, fd: int) -> bool:
        try:
            return os.fstat(fd).st_ino == self.path.stat().st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Remove the lock file and release the lock (nothing when not held)."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self._fd)  # closing releases the flock
        self._fd = None
        self._unlocked = False

    def __enter__(self) -> PointLock:
        self.acquire(wait=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
