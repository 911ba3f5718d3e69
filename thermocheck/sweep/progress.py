"""A one-line progress view of a sweep's shards: pending, running, done, failed."""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, TextIO

__all__ = ["STATUSES", "Progress", "Status"]

Status = Literal["pending", "running", "done", "failed"]
STATUSES: tuple[Status, ...] = ("pending", "running", "done", "failed")


@dataclass
class Progress:
    """Status of each shard an executor runs, shown as one line whenever a count changes.

    On a terminal the line is rewritten in place; elsewhere (a log file, CI) each change is a new
    line.

    Parameters
    ----------
    total
        Number of shards to run.
    label
        What the line is about (the executor, say).
    stream
        Where lines go (standard error by default); None keeps quiet.
    """

    total: int
    label: str = "sweep"
    stream: TextIO | None = field(default_factory=lambda: sys.stderr)
    _status: dict[int, Status] = field(default_factory=dict, init=False, repr=False)
    _shown: tuple[int, ...] = field(default=(), init=False, repr=False)

    def set(self, index: int, status: Status) -> None:
        """Record the status of shard ``index`` and show the line if a count changed."""
        self._status[index] = status
        self.show()

    def counts(self) -> dict[Status, int]:
        """Shards per status; shards never set count as pending."""
        seen = Counter(self._status.values())
        seen["pending"] += self.total - len(self._status)
        return {s: seen[s] for s in STATUSES}

    def line(self) -> str:
        """E.g. ``slurm: shards 2 pending · 1 running · 3 done · 0 failed (of 6)``."""
        counts = self.counts()
        parts = " · ".join(f"{counts[s]} {s}" for s in STATUSES)
        return f"{self.label}: shards {parts} (of {self.total})"

    def show(self) -> None:
        """Write the line if a count changed since the last one shown."""
        counts = tuple(self.counts().values())
        if self.stream is not None and counts != self._shown:
            if self.stream.isatty():
                finished = counts[2] + counts[3] == self.total
                self.stream.write(f"\r{self.line()}" + ("\n" if finished else ""))
                self.stream.flush()
            else:
                print(self.line(), file=self.stream, flush=True)
        self._shown = counts
