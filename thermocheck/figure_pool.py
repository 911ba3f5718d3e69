"""Draw a report's figures on two processes: this one and a helper started for the purpose.

Matplotlib draws on one core: a quick ``thermocheck verify`` has 31 figures, about 4 s of one
core's time on a 2-core Xeon. When the process may use two or more CPUs and there are at least
:data:`MIN_FIGURES_FOR_HELPER` figures, a helper process (a fresh interpreter started as
multiprocessing would start it, given this process's ``sys.path``; nothing of the caller's
``__main__`` is imported again) reads the grids and results from a JSON file and draws from the
end of the list while this process draws from the start. Each figure is claimed first by
creating its claim file (``O_EXCL``), so no figure is drawn twice and neither process waits for
the other until the last one.

Both processes draw with the same functions from the same data (this process, too, draws from the
JSON round trip the helper reads), in matplotlib's default style and with warnings silenced, so a
figure is the same whichever process drew it. A helper that cannot start, fails or goes silent
costs nothing but time: every figure it did not report is drawn here. Its reports (a line per
figure) are read once this process has drawn its share; past about 150 figures the pipe fills and
the helper waits for that read, so it then draws less than half. Starting the helper earlier (at
the start of ``verify``, or before its law checks) was measured and gained nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from thermocheck.figures import FIGURES, FigureFile, draw_one
from thermocheck.figures_law import draw_law_figure
from thermocheck.machine import cpu_budget
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

__all__ = ["MIN_FIGURES_FOR_HELPER", "DrawnFigures", "draw_report_figures"]

#: Fewer figures than this are drawn here alone: starting the helper (a Python interpreter,
#: numpy and matplotlib) costs about 0.7 s of CPU, the time of 6 figures.
MIN_FIGURES_FOR_HELPER = 12

#: Seconds the helper may take beyond this process's own share before it is stopped and the
#: figures it did not report are drawn here (a figure takes 0.1–0.3 s).
_HELPER_GRACE_S = 120.0


@dataclass(frozen=True)
class _Task:
    """One figure: a grid's figure of a kind, or a law result's figure."""

    grid: str | None  # the key in ``grids``; None for a law result's figure
    kind: str  # a kind of :data:`FIGURES`, or the law result's index
    name: str  # a grid's file stem (``-<kind>.png`` follows), or a law figure's file name


@dataclass(frozen=True)
class DrawnFigures:
    """What :func:`draw_report_figures` drew: each grid's figures (in :data:`FIGURES` order),
    each result's figure (None where none applies or drawing failed), and a message per figure
    that raised."""

    grids: dict[str, list[FigureFile]]
    results: list[FigureFile | None]
    errors: list[str]


def _stems(keys: Sequence[str], names: Mapping[str, str]) -> dict[str, str]:
    """Each grid's file stem: its name, with ``-2``, ``-3``, … after a name already taken (two
    grids must never write one file, least of all from two processes at once)."""
    stems: dict[str, str] = {}
    for key in keys:
        stem, n = names[key], 1
        while stem in stems.values():
            n += 1
            stem = f"{names[key]}-{n}"
        stems[key] = stem
    return stems


def _tasks(grids: Mapping[str, StateGrid], names: Mapping[str, str],
           results: Sequence[LawResult]) -> list[_Task]:
    stems = _stems(list(grids), names)
    grid_tasks = [_Task(key, kind, stems[key]) for key in grids for kind in FIGURES]
    law_tasks = [_Task(None, str(n), f"law-{n:02d}-{r.law}-{r.protocol}.png")
                 for n, r in enumerate(results)]
    return grid_tasks + law_tasks


def _draw(task: _Task, folder: Path, grids: Mapping[str, StateGrid],
          results: Sequence[LawResult]) -> tuple[FigureFile | None, str | None]:
    """Draw one task → (the figure or None, an error message or None); never raises. Both
    processes draw in matplotlib's default style with warnings silenced, so that neither a
    caller's style nor its warning filters (``-W error``) make a figure depend on which process
    drew it."""
    from matplotlib import style

    try:
        with warnings.catch_warnings(), style.context("default"):
            warnings.simplefilter("ignore")
            if task.grid is not None:
                return draw_one(grids[task.grid], task.kind, folder, name=task.name), None
            return draw_law_figure(results[int(task.kind)], folder / task.name), None
    except Exception as err:  # a figure is never worth losing a report over
        if task.grid is not None:
            return None, f"{task.grid}: {task.kind}: {type(err).__name__}: {err}"
        r = results[int(task.kind)]
        return None, f"{r.law} ({r.protocol}): {type(err).__name__}: {err}"


def _claim(claims: Path, i: int) -> bool:
    """Claim figure ``i``: True for the one process that creates its claim file."""
    try:
        os.close(os.open(claims / str(i), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def _draw_claimed(order: Sequence[int], tasks: Sequence[_Task], claims: Path, folder: Path,
                  grids: Mapping[str, StateGrid], results: Sequence[LawResult]
                  ) -> dict[int, tuple[FigureFile | None, str | None]]:
    """Draw, in ``order``, every task this process claims."""
    return {i: _draw(tasks[i], folder, grids, results) for i in order if _claim(claims, i)}


#: What the helper runs: this process's ``sys.path`` (as multiprocessing's spawn hands it over:
#: the same thermocheck, whatever the working folder holds), then :func:`_helper_main`.
_HELPER_CODE = ("import json, sys; sys.path[:] = json.loads(sys.argv[2]); "
                "from thermocheck.figure_pool import _helper_main; _helper_main()")


def _helper_argv(payload: Path) -> list[str]:
    """The helper's command line: this interpreter (as multiprocessing would start it) running
    :data:`_HELPER_CODE` on ``payload``."""
    from multiprocessing import spawn

    return [spawn.get_executable(), "-c", _HELPER_CODE, str(payload), json.dumps(sys.path)]


def _start_helper(payload: Path) -> subprocess.Popen[bytes] | None:
    """The helper process, reading its work from the JSON file ``payload``; None when it cannot
    start."""
    argv = _helper_argv(payload)
    if not argv[0]:  # an embedded interpreter may not know its executable
        return None
    try:
        return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
    except OSError:
        return None


def _helper_results(helper: subprocess.Popen[bytes], folder: Path
                    ) -> dict[int, tuple[FigureFile | None, str | None]]:
    """What the helper reported drawing: one JSON line per figure on its standard output."""
    try:
        out, _ = helper.communicate(timeout=_HELPER_GRACE_S)
    except subprocess.TimeoutExpired:
        helper.kill()
        out, _ = helper.communicate()
    done: dict[int, tuple[FigureFile | None, str | None]] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        try:
            record = json.loads(line)
            i, fig = int(record["task"]), record["figure"]
            figure = (FigureFile(fig["kind"], folder / fig["file"], fig["title"], fig["caption"])
                      if fig is not None else None)
            done[i] = (figure, record["error"])
        except (ValueError, KeyError, TypeError, IndexError):
            continue  # a torn last line of a helper that died: its figure is drawn here
    return done


def draw_report_figures(grids: Mapping[str, StateGrid], names: Mapping[str, str],
                        results: Sequence[LawResult], folder: str | Path) -> DrawnFigures:
    """Draw every grid's figures (``<names[key]>-<kind>.png``, :func:`thermocheck.figures.draw`)
    and every result's figure (``law-<n>-<law>-<protocol>.png``,
    :func:`thermocheck.figures_law.draw_law_figure`) into ``folder``, on two processes where
    that pays (see the module's docstring)."""
    folder = Path(folder)
    # both processes draw from the JSON round trip (numpy scalars become numbers, NaN None)
    grid_texts = {key: grid.to_json() for key, grid in grids.items()}
    grids = {key: StateGrid.from_json(text) for key, text in grid_texts.items()}
    records = [r.to_dict() for r in results]
    results = [LawResult.from_dict(r) for r in records]
    tasks = _tasks(grids, names, results)
    with tempfile.TemporaryDirectory(prefix="thermocheck-figures-") as scratch:
        claims = Path(scratch)
        helper = None
        if cpu_budget() >= 2 and len(tasks) >= MIN_FIGURES_FOR_HELPER:
            payload = claims / "payload.json"
            payload.write_text(json.dumps({
                "claims": str(claims), "folder": str(folder), "grids": grid_texts,
                "names": dict(names), "results": records,
            }), encoding="utf-8")
            helper = _start_helper(payload)
        try:
            done = _draw_claimed(range(len(tasks)), tasks, claims, folder, grids, results)
            if helper is not None:
                done.update(_helper_results(helper, folder))
        finally:  # this process failed (or was interrupted): the helper must not draw on
            if helper is not None and helper.poll() is None:
                helper.kill()
                helper.communicate()
    for i in range(len(tasks)):  # what the helper claimed but did not report
        if i not in done:
            done[i] = _draw(tasks[i], folder, grids, results)
    drawn = DrawnFigures({key: [] for key in grids}, [], [])
    for i, task in enumerate(tasks):
        figure, error = done[i]
        if error is not None:
            drawn.errors.append(error)
        if task.grid is not None:
            if figure is not None:
                drawn.grids[task.grid].append(figure)
        else:
            drawn.results.append(figure)
    return drawn


def _helper_main() -> None:
    """The helper: read the payload (the file named by the first argument), draw from the end of
    the list, report each figure."""
    payload = json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))
    grids = {key: StateGrid.from_json(text) for key, text in payload["grids"].items()}
    results = [LawResult.from_dict(r) for r in payload["results"]]
    tasks = _tasks(grids, payload["names"], results)
    for i in reversed(range(len(tasks))):
        if not _claim(Path(payload["claims"]), i):
            continue
        figure, error = _draw(tasks[i], Path(payload["folder"]), grids, results)
        record = {"task": i, "error": error, "figure": None if figure is None else {
            "kind": figure.kind, "file": figure.path.name, "title": figure.title,
            "caption": figure.caption}}
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()
