"""Reports: law results to an atomic ``report.json``, a human ``report.md`` and figures.

``write_report(results, out_dir, grids=...)`` writes, in this order, ``figures/*.png`` (one set per
grid, see :mod:`thermocheck.figures`), ``report.md`` and ``report.json``; each file is written
atomically, and ``report.json`` comes last, so its presence marks a complete report. The format is
documented field by field in ``reports/README.md``; :data:`SCHEMA_VERSION` changes whenever a field
changes meaning or disappears. Exit codes follow READINGS.md: 0 every applicable law passed, 1 a
law failed, 3 none failed but some were inconclusive (2 is left to usage errors).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermocheck.diagnostics import diagnostics, has_diagnostics
from thermocheck.errors import InvalidParameterError
from thermocheck.results import VERDICTS, LawResult, Verdict, _clean, _excess

if TYPE_CHECKING:
    from thermocheck.figures import FigureFile
    from thermocheck.states import StateGrid

__all__ = [
    "EXIT_CODES",
    "SCHEMA_VERSION",
    "SYMBOLS",
    "Report",
    "atomic_write_text",
    "diagnostics_markdown",
    "exit_code",
    "format_table",
    "load_report",
    "overall_verdict",
    "print_outcome",
    "summarize",
    "summary_line",
    "write_report",
]

SCHEMA_VERSION = 1

#: Exit code of each overall verdict (READINGS.md); 2 is argparse's usage error.
EXIT_CODES: dict[str, int] = {"passed": 0, "failed": 1, "inconclusive": 3}

#: How a verdict is shown in tables (terminal and markdown).
SYMBOLS: dict[str, str] = {
    "passed": "✓ passed",
    "failed": "✗ FAILED",
    "inconclusive": "? inconclusive",
    "not_applicable": "– n/a",
}

#: Worst first: the verdict a table cell shows when several results share it.
_SEVERITY: tuple[Verdict, ...] = ("failed", "inconclusive", "passed", "not_applicable")

_MISSING = "—"


def atomic_write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically: a temporary file in the same folder, then
    ``os.replace``; on any error the temporary file is removed and ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp's 0600 would hide reports from other users
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# -- verdicts and exit codes ----------------------------------------------------------------------
def overall_verdict(results: Sequence[LawResult]) -> Verdict:
    """``failed`` if any result failed; else ``inconclusive`` if any was inconclusive or nothing
    applicable was checked at all (no result, or all ``not_applicable``); else ``passed``."""
    verdicts = {r.verdict for r in results}
    if "failed" in verdicts:
        return "failed"
    if "inconclusive" in verdicts or "passed" not in verdicts:
        return "inconclusive"
    return "passed"


def exit_code(results: Sequence[LawResult]) -> int:
    """0 when every applicable law passed, 1 when any failed, 3 when none failed but some were
    inconclusive. ``not_applicable`` results do not count; a run with no applicable result gives 3
    (nothing was verified)."""
    return EXIT_CODES[overall_verdict(results)]


def summarize(results: Sequence[LawResult]) -> dict[str, Any]:
    """The ``summary`` block of ``report.json``: counts per verdict, overall verdict, exit code."""
    counts = {v: sum(r.verdict == v for r in results) for v in VERDICTS}
    verdict = overall_verdict(results)
    return {"verdict": verdict, "exit_code": EXIT_CODES[verdict], "total": len(results),
            "counts": counts}


def summary_line(results: Sequence[LawResult]) -> str:
    """One line: ``8 law results: 5 passed, 1 failed, 2 not applicable; overall failed``."""
    summary = summarize(results)
    counts = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in summary["counts"].items() if n)
    return f"{summary['total']} law results: {counts or 'none'}; overall {summary['verdict']}"


# -- the law × protocol table ---------------------------------------------------------------------
def _table_cells(
    results: Sequence[LawResult],
) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Row labels, protocol columns and cell texts. A row is a law (with its substrate when the
    results span several); a cell shows the worst verdict, with a count when several results
    share the cell (e.g. several dimensions)."""
    several_substrates = len({r.substrate for r in results}) > 1
    rows: list[str] = []
    cols: list[str] = []
    groups: dict[tuple[str, str], list[Verdict]] = {}
    for r in results:
        row = f"{r.law} [{r.substrate}]" if several_substrates else r.law
        if row not in rows:
            rows.append(row)
        if r.protocol not in cols:
            cols.append(r.protocol)
        groups.setdefault((row, r.protocol), []).append(r.verdict)
    cells = {}
    for key, verdicts in groups.items():
        worst = min(verdicts, key=_SEVERITY.index)
        count = f" ({verdicts.count(worst)}/{len(verdicts)})" if len(verdicts) > 1 else ""
        cells[key] = SYMBOLS[worst] + count
    return rows, cols, cells


def print_outcome(results: Sequence[LawResult], folder: Path, *, table: bool = True) -> int:
    """Print the law × protocol table and the summary line (unless not ``table``), then the
    report's path; return the exit code (what ``thermocheck verify`` ends with)."""
    code = exit_code(results)
    if table:
        print(format_table(results))
        print(f"\n{summary_line(results)} (exit code {code})")
    print(f"report: {folder / 'report.md'}")
    return code


def format_table(results: Sequence[LawResult]) -> str:
    """A plain-text table, law × protocol, with verdict symbols (for terminals)."""
    rows, cols, cells = _table_cells(results)
    grid = [["law", *cols]] + [[row, *(cells.get((row, c), "") for c in cols)] for row in rows]
    widths = [max(len(line[i]) for line in grid) for i in range(len(grid[0]))]
    lines = ["  ".join(text.ljust(w) for text, w in zip(line, widths, strict=True)).rstrip()
             for line in grid]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


# -- metadata -------------------------------------------------------------------------------------
def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit() -> str | None:
    """The commit of the thermocheck checkout, or None outside a git checkout."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                             capture_output=True, text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _float_settings() -> dict[str, Any]:
    """Floating-point settings that change results: numpy's error handling and, only when torch is
    already imported (this module never imports it), torch's default dtype and TF32 switches."""
    import numpy as np

    out: dict[str, Any] = {"dtype": "float64", "epsilon": float(np.finfo(np.float64).eps),
                           "numpy_errstate": dict(np.geterr())}
    torch = sys.modules.get("torch")
    if torch is not None:
        out["torch"] = {
            "default_dtype": str(torch.get_default_dtype()),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
            "cuda_matmul_allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
        }
    return out


def _meta(seed: Any, preset: str | None, command: str | None,
          extra_meta: Mapping[str, Any] | None) -> dict[str, Any]:
    from thermocheck import __version__

    return {
        "thermocheck_version": __version__,
        "git_commit": _git_commit(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "packages": {name: _version(name) for name in ("numpy", "scipy", "torch", "matplotlib",
                                                       "hypothesis")},
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count()},
        "seed": seed,
        "preset": preset,
        "command": command,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "float": _float_settings(),
        "extra": dict(extra_meta or {}),
    }


# -- markdown -------------------------------------------------------------------------------------
def _fmt(value: Any) -> str:
    """A number for humans; missing or non-finite values show as an em dash, never NaN."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return _MISSING
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (Mapping, list, tuple)):
        return json.dumps(_clean(value), ensure_ascii=False)
    return str(value)


def _slug(name: str) -> str:
    """A file- and anchor-safe form of a grid name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "grid"


def _cell(value: Any) -> str:
    return _fmt(value).replace("|", "\\|").replace("\n", " ")


def _with_stderr(value: Any, stderr: Any) -> str:
    text = _cell(value)
    return text if text == _MISSING or _fmt(stderr) == _MISSING else f"{text} ± {stderr:.2g}"


def diagnostics_markdown(grid: StateGrid, title: str) -> list[str]:
    """The rows of :func:`thermocheck.diagnostics.diagnostics` as a markdown table under a ``###``
    heading (no lines when the grid has no noise measurements)."""
    if not has_diagnostics(grid):
        return []
    x, y = grid.axes
    sphere = grid.protocol == "fixed_sphere"
    head = [x, y, "stationary", "loss", "σ² = TrΣ/(d−1)", "E‖∇L(w̄)‖²", "eff. rank / (d−1)",
            "Z = pV/(RT)", *(["λ_eff"] if sphere else [])]
    lines = [f"### {title}", "",
             "Noise scale, full-gradient term, isotropy of the gradient noise (1: isotropic) and "
             "compressibility (1: ideal gas; with the SDE temperature, so Z − 1 is what the SDE "
             "form of V1 misses) per point; σ² and Z only where stationary.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in diagnostics(grid):
        cells = [_cell(row[x]), _cell(row[y]),
                 "yes" if row["stationary"] else _cell(f"no: {row['reason']}"),
                 _cell(row["loss"]), _with_stderr(row["sigma2"], row["sigma2_stderr"]),
                 _with_stderr(row["grad_sq"], row["grad_sq_stderr"]),
                 _cell(row["eff_rank_over_d"]), _cell(row["compressibility"]),
                 *([_cell(row["lambda_eff"])] if sphere else [])]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def _point_score(point: Mapping[str, Any]) -> tuple[bool, float]:
    """Failing points first, then by |residual| / tolerance (as :meth:`LawResult.explain`)."""
    excess = _excess(point)
    return point.get("ok") is False, 0.0 if math.isnan(excess) else excess


def _worst_points_md(details: Sequence[Mapping[str, Any]], k: int = 5) -> list[str]:
    if not details:
        return []
    worst = sorted(details, key=_point_score, reverse=True)[:k]
    n_bad = sum(p.get("ok") is False for p in details)
    keys: list[str] = []
    for p in worst:
        keys.extend(key for key in p if key not in keys)
    lines = [f"Worst points ({len(worst)} of {len(details)}; {n_bad} outside tolerance):", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_cell(p.get(key)) for key in keys) + " |" for p in worst]
    return [*lines, ""]


def _law_section(r: LawResult, figure_anchor: str | None) -> list[str]:
    dim = f", d = {r.d}" if r.d is not None else ""
    lines = [f"### {r.law} — {r.protocol} ({r.substrate}{dim}): {SYMBOLS[r.verdict]}", "",
             "| observed | expected | tolerance | residual |", "|---|---|---|---|",
             f"| {_cell(r.observed)} | {_cell(r.expected)} | {_cell(r.tolerance)} | "
             f"{_cell(r.residual)} |", ""]
    if r.reason:
        lines += [f"**Reason:** {r.reason}", ""]
    lines += [f"- note: {n}" for n in r.notes]
    if r.notes:
        lines.append("")
    lines += _worst_points_md(r.details)
    if figure_anchor:
        lines += [f"Figures: [{figure_anchor}](#figures-{_slug(figure_anchor)})", ""]
    return lines


def _grid_matches(grid: StateGrid, r: LawResult) -> bool:
    return (grid.protocol, grid.substrate) == (r.protocol, r.substrate) and r.d in (None, grid.d)


def _markdown(results: Sequence[LawResult], summary: Mapping[str, Any], meta: Mapping[str, Any],
              grids: Mapping[str, StateGrid], figures: Mapping[str, Sequence[FigureFile]],
              figure_errors: Sequence[str]) -> str:
    counts = summary["counts"]
    verdict = summary["verdict"]
    lines = [f"# thermocheck report: {SYMBOLS[verdict].split()[0]} {verdict.upper()}", "",
             f"**Verdict: {verdict}** (exit code {summary['exit_code']}) — "
             + ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICTS)
             + f", of {summary['total']} law results.", ""]
    run = [f"{k} `{meta[k]}`" for k in ("preset", "seed", "command") if meta.get(k) is not None]
    lines += ["Run: " + " · ".join([*run, f"created {meta['created_utc']}",
                                    f"thermocheck {meta['thermocheck_version']}"]), ""]
    if results:
        rows, cols, cells = _table_cells(results)
        lines += ["## Summary", "", "| law | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        lines += [f"| {row} | " + " | ".join(cells.get((row, c), "") for c in cols) + " |"
                  for row in rows]
        lines += ["", "Symbols: " + ", ".join(SYMBOLS.values()) + f"; {_MISSING} = not measured.",
                  "", "## Laws", ""]
    for r in sorted(results, key=lambda r: _SEVERITY.index(r.verdict)):
        lines += _law_section(r, next((key for key, grid in grids.items()
                                       if key in figures and _grid_matches(grid, r)), None))
    tables = [line for key, grid in grids.items() for line in diagnostics_markdown(grid, key)]
    if tables:
        lines += ["## Diagnostics", "", *tables]
    if figures or figure_errors:
        lines += ["## Figures", ""]
    for key, figs in figures.items():
        lines += [f'<a id="figures-{_slug(key)}"></a>', "", f"### {key}", ""]
        for fig in figs:
            lines += [f"![{fig.title}]({fig.path.parent.name}/{fig.path.name})", "",
                      fig.caption.replace("*", "\\*"), ""]
    lines += [f"- figure not drawn: {err}" for err in figure_errors]
    machine = meta["machine"]
    lines += ["", "## Environment", "",
              f"Python {meta['python']}; "
              + ", ".join(f"{k} {v}" for k, v in meta["packages"].items() if v is not None)
              + f"; {machine['platform']}, {machine['cpu_count']} CPUs"
              + (f"; commit `{meta['git_commit']}`" if meta.get("git_commit") else "") + ".", ""]
    return "\n".join(lines)


# -- writing and loading --------------------------------------------------------------------------
def _draw_figures(grids: Mapping[str, StateGrid], folder: Path
                  ) -> tuple[dict[str, list[FigureFile]], list[str]]:
    """Draw every grid's figures; a figure that fails is reported, never fatal to the report."""
    from thermocheck import figures

    drawn: dict[str, list[FigureFile]] = {}
    errors: list[str] = []
    for key, grid in grids.items():
        made, failed = figures.draw(grid, folder, name=_slug(key))
        drawn[key] = made
        errors += [f"{key}: {msg}" for msg in failed]
    for err in errors:
        warnings.warn(f"thermocheck report: figure not drawn: {err}", RuntimeWarning, stacklevel=3)
    return drawn, errors


def write_report(
    results: Sequence[LawResult],
    out_dir: str | Path,
    *,
    grids: Mapping[str, StateGrid] | None = None,
    seed: Any = None,
    preset: str | None = None,
    command: str | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Write ``report.json``, ``report.md`` and ``figures/`` into ``out_dir``; return ``out_dir``.

    ``grids`` maps a name (e.g. the protocol) to the measured grid the results came from: its states
    go into ``report.json`` and its figures into ``figures/``. ``seed``, ``preset``, ``command`` and
    ``extra_meta`` (any JSON-ready mapping) go into ``meta``. No NaN or infinity is ever written:
    non-finite numbers become ``null`` in JSON and "—" in markdown.
    """
    bad = [type(r).__name__ for r in results if not isinstance(r, LawResult)]
    if bad:
        raise InvalidParameterError(f"results must be LawResult objects, got {bad[:3]}")
    out = Path(out_dir)
    grids = dict(grids or {})
    summary = summarize(results)
    meta = _meta(seed, preset, command, extra_meta)
    figures, figure_errors = _draw_figures(grids, out / "figures") if grids else ({}, [])
    document = _clean({
        "schema_version": SCHEMA_VERSION,
        "kind": "thermocheck.Report",
        "summary": summary,
        "results": [r.to_dict() for r in results],
        "states": {key: json.loads(grid.to_json()) for key, grid in grids.items()} or None,
        "figures": {key: [f"figures/{fig.path.name}" for fig in figs]
                    for key, figs in figures.items()},
        "meta": meta,
    })
    text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
    atomic_write_text(out / "report.md", _markdown(results, summary, meta, grids, figures,
                                                       figure_errors))
    atomic_write_text(out / "report.json", text + "\n")
    return out


@dataclass(frozen=True)
class Report:
    """A report read back by :func:`load_report`."""

    path: Path
    results: tuple[LawResult, ...]
    summary: Mapping[str, Any]
    meta: Mapping[str, Any]
    grids: Mapping[str, StateGrid]

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)


def load_report(path: str | Path) -> Report:
    """Read a report folder (or its ``report.json``); refuses an unknown ``schema_version``."""
    from thermocheck.states import StateGrid

    path = Path(path)
    file = path / "report.json" if path.is_dir() else path
    data = json.loads(file.read_text(encoding="utf-8"))
    version = data.get("schema_version")
    if version != SCHEMA_VERSION:
        raise InvalidParameterError(
            f"schema_version={version!r} in {file} is not supported: this thermocheck reads "
            f"{SCHEMA_VERSION}"
        )
    grids = {key: StateGrid.from_json(json.dumps(g)) for key, g in (data["states"] or {}).items()}
    return Report(path=file.parent, results=tuple(LawResult.from_dict(r) for r in data["results"]),
                  summary=data["summary"], meta=data["meta"], grids=grids)
