"""A sweep's progress: a tqdm bar of points stored, with the shards' states beside it.

On a terminal the bar shows the points measured so far, their rate and the time left, and the
shards' counts (``running``, ``done``, ``failed``). Elsewhere (a log file, CI) it stays quiet and
one line sums the run up when it ends. Points advance as each batch reaches the cache (local
executors); where only whole shards report back (Slurm), a finished shard advances all its points.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TextIO

__all__ = ["STATUSES", "Progress", "Status"]

Status = Literal["pending", "running", "done", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "running", "done", "failed")


@dataclass
class Progress:
    """Points stored and the status of each shard an executor runs.

    Parameters
    ----------
    points
        Points to measure, per shard.
    label
        What the bar is about (the executor, say).
    stream
        Where the bar (on a terminal) or the closing line (elsewhere) goes; standard error by
        default; None keeps quiet.
    """

    points: Sequence[int]
    label: str = "sweep"
    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    _status: dict[int, Status] = field(default_factory=dict, init=False, repr=False)
    _stored: Counter[int] = field(default_factory=Counter, init=False, repr=False)
    _bar: Any = field(default=None, init=False, repr=False)
    _start: float = field(default_factory=time.perf_counter, init=False, repr=False)

    def __post_init__(self) -> None:
        self.points = [int(n) for n in self.points]
        if self.stream is not None and self.stream.isatty():
            from tqdm.auto import tqdm

            self._bar = tqdm(total=sum(self.points), desc=self.label, unit="pt",
                             file=self.stream, dynamic_ncols=True)

    @property
    def total(self) -> int:
        """Number of shards."""
        return len(self.points)

    def set(self, index: int, status: Status) -> None:
        """Record the status of shard ``index``; a shard ``done`` has stored all its points."""
        self._status[index] = status
        if status == "done":
            self.advance(index, self.points[index] - self._stored[index])
        self._show()

    def advance(self, index: int, n: int) -> None:
        """Count ``n`` more points of shard ``index`` as stored."""
        n = max(0, min(n, self.points[index] - self._stored[index]))
        self._stored[index] += n
        if self._bar is not None and n:
            self._bar.update(n)

    @property
    def stored(self) -> int:
        """Points stored so far."""
        return sum(self._stored.values())

    def counts(self) -> dict[Status, int]:
        """Shards per status; shards never set count as pending."""
        seen = Counter(self._status.values())
        seen["pending"] += self.total - len(self._status)
        return {s: seen[s] for s in STATUSES}

    def line(self) -> str:
        """E.g. ``local: 20 of 25 points in 12.3 s; shards 0 pending · 0 running · 3 done ·
        1 failed (of 4)``."""
        counts = self.counts()
        parts = " · ".join(f"{counts[s]} {s}" for s in STATUSES)
        return (f"{self.label}: {self.stored} of {sum(self.points)} points in "
                f"{time.perf_counter() - self._start:.1f} s; shards {parts} (of {self.total})")

    def _show(self) -> None:
        if self._bar is not None:
            counts = self.counts()
            self._bar.set_postfix_str(" · ".join(f"{counts[s]} {s}" for s in STATUSES[1:])
                                      + " shards", refresh=True)

    def close(self) -> None:
        """End the bar, or (not on a terminal) write the closing line."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        elif self.stream is not None:
            print(self.line(), file=self.stream, flush=True)
        self.stream = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
