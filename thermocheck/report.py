"""Reports: law results to ``report.json``, a human ``report.md``, ``report.html`` and figures.

``write_report(results, out_dir, grids=...)`` writes, in this order, ``figures/*.png`` (one set per
grid, :mod:`thermocheck.figures`, and one per result, :mod:`thermocheck.figures_law`),
``report.md``, its self-contained ``report.html`` (:mod:`thermocheck.report_html`) and
``report.json``, into a new sibling folder that then replaces ``out_dir`` as a whole, so no file of
an earlier report stays and a reader never sees a mix; ``report.json`` comes last, so its presence
marks a complete report. Each result is headed by the quantity its law compares
(:mod:`thermocheck.headline`). The format is documented field by field in ``reports/README.md``;
:data:`SCHEMA_VERSION` changes whenever a field changes meaning or disappears.

Exit codes (:data:`EXIT_CODES`): 0 every applicable law passed, 1 a law failed (a deviation from
what the theory predicts for that substrate), 3 none failed but some were inconclusive, 4 an
internal or environment error during the run (a crashed worker, a write that failed), and 2 a
usage error found before any work (:data:`EXIT_USAGE`). The known deviations of
:mod:`thermocheck.deviations` are shown with their cause and measured size but never counted.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import uuid
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from thermocheck._version import __version__
from thermocheck.atomic import atomic_write_text
from thermocheck.deviations import counted, known_deviation
from thermocheck.diagnostics import diagnostics, has_diagnostics
from thermocheck.errors import InvalidParameterError
from thermocheck.headline import Headline, headline, point_units
from thermocheck.machine import describe as describe_device
from thermocheck.machine import device_info
from thermocheck.report_html import to_html
from thermocheck.results import VERDICTS, LawResult, _clean, _excess

if TYPE_CHECKING:
    from thermocheck.figure_pool import DrawnFigures
    from thermocheck.figures import FigureFile
    from thermocheck.states import StateGrid

__all__ = [
    "EXIT_CODES",
    "EXIT_USAGE",
    "MEANINGS",
    "REPORT_ENTRIES",
    "SCHEMA_VERSION",
    "SYMBOLS",
    "Report",
    "atomic_write_text",
    "diagnostics_markdown",
    "exit_code",
    "format_table",
    "grid_id",
    "load_report",
    "overall_verdict",
    "print_outcome",
    "quiet_line",
    "summarize",
    "summary_line",
    "write_error_report",
    "write_report",
]

SCHEMA_VERSION = 1

#: Exit code of each overall verdict; ``error``: the run hit an internal or environment error.
EXIT_CODES: dict[str, int] = {"passed": 0, "failed": 1, "inconclusive": 3, "error": 4}

#: Exit code of a usage error (argparse's own): an invalid option, an unusable path, a missing
#: optional dependency, all found before any work.
EXIT_USAGE = 2

#: How a verdict is shown in tables (terminal and markdown).
SYMBOLS: dict[str, str] = {
    "passed": "✓ passed",
    "failed": "✗ FAILED",
    "inconclusive": "? inconclusive",
    "not_applicable": "– n/a",
    "known_deviation": "≈ known deviation",
    "error": "✗ ERROR",
}

#: Worst first: the status a table cell shows when several results share it.
_SEVERITY: tuple[str, ...] = ("failed", "inconclusive", "known_deviation", "passed",
                              "not_applicable")

_MISSING = "—"


# -- verdicts and exit codes ----------------------------------------------------------------------
def overall_verdict(results: Sequence[LawResult], errors: Sequence[str] = ()) -> str:
    """``error`` if the run reported ``errors``; else, over the results that are not known
    deviations (:func:`thermocheck.deviations.counted`): ``failed`` if any failed; ``inconclusive``
    if any was inconclusive or nothing applicable was checked at all (no result, or all
    ``not_applicable``); else ``passed``."""
    if errors:
        return "error"
    verdicts = {r.verdict for r in counted(results)}
    if "failed" in verdicts:
        return "failed"
    if "inconclusive" in verdicts or "passed" not in verdicts:
        return "inconclusive"
    return "passed"


def exit_code(results: Sequence[LawResult], errors: Sequence[str] = ()) -> int:
    """4 when the run reported ``errors``; else 0 when every applicable law passed, 1 when any
    failed, 3 when none failed but some were inconclusive. ``not_applicable`` results and known
    deviations do not count; a run with no applicable result gives 3 (nothing was verified)."""
    return EXIT_CODES[overall_verdict(results, errors)]


def summarize(results: Sequence[LawResult], errors: Sequence[str] = ()) -> dict[str, Any]:
    """The ``summary`` block of ``report.json``: overall verdict, exit code, counts per verdict of
    the counted results, the number of known deviations (shown, not counted) and the run's
    errors."""
    kept = counted(results)
    verdict = overall_verdict(results, errors)
    return {"verdict": verdict, "exit_code": EXIT_CODES[verdict], "total": len(results),
            "counts": {v: sum(r.verdict == v for r in kept) for v in VERDICTS},
            "known_deviations": len(results) - len(kept), "errors": list(errors)}


def summary_line(results: Sequence[LawResult], errors: Sequence[str] = ()) -> str:
    """One line: ``8 law results: 4 passed, 2 inconclusive, 2 known deviations (not counted);
    overall inconclusive``."""
    summary = summarize(results, errors)
    parts = [f"{n} {v.replace('_', ' ')}" for v, n in summary["counts"].items() if n]
    if summary["known_deviations"]:
        parts.append(f"{summary['known_deviations']} known deviation(s) (not counted)")
    unmeasured = sum(not r.measured for r in counted(results))
    if unmeasured:
        parts.append(f"{unmeasured} with nothing measured (not a pass)")
    if errors:
        parts.append(f"{len(errors)} error(s) during the run")
    return (f"{summary['total']} law results: {', '.join(parts) or 'none'}; "
            f"overall {summary['verdict']}")


def _status(r: LawResult) -> str:
    """How a result is shown: its verdict, or ``known_deviation`` for a known deviation that
    deviated (:mod:`thermocheck.deviations`)."""
    return "known_deviation" if r.verdict == "failed" and known_deviation(r) else r.verdict


def _row(r: LawResult, several_substrates: bool) -> str:
    """A result's table row: its law, the form when it is a known deviation, its substrate when
    the results span several."""
    deviation = known_deviation(r)
    label = f"{r.law} ({deviation.form})" if deviation else r.law
    return f"{label} [{r.substrate}]" if several_substrates else label


# -- the law × protocol table ---------------------------------------------------------------------
def _table_cells(
    results: Sequence[LawResult],
) -> tuple[list[str], list[str], dict[tuple[str, str], str]]:
    """Row labels, protocol columns and cell texts. A row is a law (a known deviation's form gets
    its own row, see :func:`_row`); a cell shows the worst status, with a count when several
    results share the cell (e.g. several dimensions)."""
    several_substrates = len({r.substrate for r in results}) > 1
    rows: list[str] = []
    cols: list[str] = []
    groups: dict[tuple[str, str], list[str]] = {}
    for r in results:
        row = _row(r, several_substrates)
        if row not in rows:
            rows.append(row)
        if r.protocol not in cols:
            cols.append(r.protocol)
        groups.setdefault((row, r.protocol), []).append(_status(r))
    cells = {}
    for key, verdicts in groups.items():
        worst = min(verdicts, key=_SEVERITY.index)
        count = f" ({verdicts.count(worst)}/{len(verdicts)})" if len(verdicts) > 1 else ""
        cells[key] = SYMBOLS[worst] + count
    return rows, cols, cells


def _deviation_lines(results: Sequence[LawResult]) -> list[str]:
    """One line per known deviation among ``results``: what it measured, and where the paper
    predicts it."""
    lines = []
    for r in results:
        deviation = known_deviation(r)
        if deviation is not None:
            lines.append(f"{r.law} ({deviation.form}), {r.protocol}: {r.verdict}, not counted; "
                         f"{deviation.measured(r)}; predicted ({deviation.reference})")
    return lines


#: What each overall verdict (hence exit code) means, in one phrase.
MEANINGS: dict[str, str] = {
    "passed": "every applicable law passed",
    "failed": "a law failed",
    "inconclusive": "no law failed, but some were inconclusive",
    "error": "error during the run",
}


def quiet_line(results: Sequence[LawResult], folder: Path, errors: Sequence[str] = ()) -> str:
    """One line: the exit status and its meaning, the counts, the report, e.g. ``exit 1 (a law
    failed): 24 law results: 20 passed, 1 failed, 3 not applicable; report: r/report.md``."""
    summary = summarize(results, errors)
    counts = summary_line(results, errors).split("; overall ")[0]
    return (f"exit {summary['exit_code']} ({MEANINGS[summary['verdict']]}): {counts}; "
            f"report: {folder / 'report.md'}")


def print_outcome(results: Sequence[LawResult], folder: Path, *, table: bool = True,
                  errors: Sequence[str] = ()) -> int:
    """Print the law × protocol table, the known deviations, the summary line and the report's
    path, or, without ``table``, only :func:`quiet_line`; the run's ``errors`` go to standard error
    either way. Return the exit code (what ``thermocheck verify`` ends with)."""
    code = exit_code(results, errors)
    for err in errors:
        last = err.strip().splitlines()[-1:] or ["(no message)"]
        print(f"thermocheck: error during the run: {last[0]}", file=sys.stderr)
    if not table:
        print(quiet_line(results, folder, errors))
        return code
    print(format_table(results), end="\n\n")
    for line in _deviation_lines(results):
        print(f"known deviation: {line}")
    print(f"{summary_line(results, errors)} (exit code {code})")
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
    return {
        "thermocheck_version": __version__,
        "git_commit": _git_commit(),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "packages": {name: _version(name) for name in ("numpy", "scipy", "torch", "matplotlib",
                                                       "hypothesis")},
        "machine": {"platform": platform.platform(), "machine": platform.machine(),
                    "cpu_count": os.cpu_count()},
        "device": device_info(),
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


#: How a point's ``ok`` shows in the worst-point tables.
_INSIDE = {True: "yes", False: "**no**", None: "undefined"}


def _point_row(p: Mapping[str, Any], law: str) -> list[str]:
    """A worst-point table row: where, what, measured ± s.e., predicted, and the deviation and
    band in the units of the law's headline (:func:`thermocheck.headline.point_units`)."""
    divisor, units = point_units(p, law)

    def scaled(key: str) -> str:
        value = p.get(key)
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return _MISSING
        text = f"{100 * value / divisor:.3g}%" if units == "relative" else f"{value / divisor:.3g}"
        return text + (" steps" if units == "grid steps" else "")

    sided = " (one-sided)" if p.get("one_sided") or p.get("method") == "pointwise" else ""
    return [_cell(p.get("at")), _cell(p.get("quantity")),
            _with_stderr(p.get("observed"), p.get("stderr")), _cell(p.get("expected")),
            scaled("residual"), "±" + scaled("tolerance") + sided, _INSIDE[p.get("ok")]]


def _worst_points_md(details: Sequence[Mapping[str, Any]], law: str, k: int = 5) -> list[str]:
    """The ``k`` worst points (outside their band first, then by |residual| / band) with a
    legend; points a law left out (not stationary) are counted, not shown."""
    compared = [p for p in details if "excluded" not in p]
    if not compared:
        return []
    worst = sorted(compared, key=_point_score, reverse=True)[:k]
    n_bad = sum(p.get("ok") is False for p in compared)
    head = ["point", "quantity", "measured ± s.e.", "predicted", "deviation", "band",
            "inside band"]
    lines = [f"Worst points ({len(worst)} of {len(compared)} compared; {n_bad} outside their "
             "band):", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_point_row(p, law)) + " |" for p in worst]
    return [*lines, "", _POINT_LEGEND, ""]


_POINT_LEGEND = (
    "*deviation*: measured − predicted, in the headline's units (% of the law's scale, e.g. of "
    "the prediction; grid steps for a fitted minimiser; the ratio itself for a fitted relation). "
    "*band*: the tolerance the verdict used, z·s.e. + model allowance, in the same units; a "
    "one-sided band bounds the excess only. *inside band*: undefined when the inputs leave the "
    "formula's domain.")


def _headline_md(h: Headline) -> list[str]:
    """The section's headline: what is compared, how it came out, what it means."""
    return [f"- **compared:** {h.quantity}",
            f"- **measured:** {h.measured()}; band {h.band()}"
            + (f" (at {h.where})" if h.where else ""),
            f"- **reading:** {h.reading}", ""]


def _law_section(r: LawResult, figure_anchor: str | None,
                 figure: FigureFile | None = None) -> list[str]:
    dim = f", d = {r.d}" if r.d is not None else ""
    lines = [f"### {r.law} — {r.protocol} ({r.substrate}{dim}): {SYMBOLS[_status(r)]}", "",
             *_headline_md(headline(r))]
    deviation = known_deviation(r)
    if deviation is not None:
        lines += [f"**Known deviation ({deviation.form}), not counted:** {deviation.cause} "
                  f"({deviation.reference}).", ""]
    if r.reason:
        lines += [f"**Reason:** {r.reason}", ""]
    lines += [f"- note: {n}" for n in r.notes]
    if r.notes:
        lines.append("")
    lines += _worst_points_md(r.details, r.law)
    if figure is not None:
        lines += [f"![{figure.title}]({figure.path.parent.name}/{figure.path.name})", "",
                  figure.caption.replace("*", "\\*"), ""]
    if figure_anchor:
        lines += [f"Figures: [{figure_anchor}](#figures-{_slug(figure_anchor)})", ""]
    return lines


def _glance_md(results: Sequence[LawResult], order: Sequence[int]) -> list[str]:
    """One row per result: the verdict and its headline (:mod:`thermocheck.headline`)."""
    head = ["law", "protocol", "verdict", "compared (paper's terms)", "measured ± s.e.", "band",
            "reading"]
    lines = ["## At a glance", "",
             "Per law and protocol: the quantity the law compares, its measured value with one "
             "standard error, and the band the verdict allowed (z·s.e. + model allowance), all "
             "in the same units.", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i in order:
        r, h = results[i], headline(results[i])
        lines.append("| " + " | ".join(_cell(v) for v in (
            r.law, r.protocol, SYMBOLS[_status(r)], h.quantity, h.measured(), h.band(),
            h.reading)) + " |")
    return [*lines, ""]


def _deviations_md(results: Sequence[LawResult]) -> list[str]:
    """The known deviations among ``results``: what each measured, then each cause once."""
    found = [(r, d) for r in results if (d := known_deviation(r)) is not None]
    if not found:
        return []
    lines = ["## Known deviations", "",
             "Forms of a law that the paper predicts to deviate on this substrate: measured and "
             "shown here, never counted in the verdict or the exit code.", "",
             "| law | protocol | substrate | verdict | measured |", "|---|---|---|---|---|"]
    lines += [f"| {r.law} ({d.form}) | {r.protocol} | {r.substrate} | {SYMBOLS[_status(r)]} | "
              f"{_cell(d.measured(r))} |" for r, d in found]
    causes = list({id(d): d for _, d in found}.values())
    lines += [""] + [f"- **{d.law} ({d.form})** on {', '.join(d.substrates)}: {d.cause} "
                     f"({d.reference})." for d in causes]
    return [*lines, ""]


def _errors_md(errors: Sequence[str]) -> list[str]:
    """The run's errors, each in full (a traceback, say), under a ``## Errors`` heading."""
    if not errors:
        return []
    lines = ["## Errors", "", f"The run did not finish as planned ({len(errors)} failure(s), exit "
             f"code {EXIT_CODES['error']}); any results above rest on what finished.", ""]
    for err in errors:
        lines += ["```text", err.strip(), "```", ""]
    return lines


def grid_id(grid: StateGrid) -> str:
    """A grid's content hash: the first 16 hex digits of the SHA-256 of its JSON."""
    return hashlib.sha256(grid.to_json().encode("utf-8")).hexdigest()[:16]


def _grid_matches(grid: StateGrid, r: LawResult) -> bool:
    return (grid.protocol, grid.substrate) == (r.protocol, r.substrate) and r.d in (None, grid.d)


def _result_grids(results: Sequence[LawResult], grids: Mapping[str, StateGrid],
                  given: Sequence[str | None] | None) -> list[str | None]:
    """The name of the grid each result was checked on: ``given`` where the writer knows it, else
    the one grid of the result's protocol, substrate and ``d``; None when none or several match
    (a result is never linked to a grid it may not come from)."""
    if given is not None and (len(given) != len(results)
                              or any(g is not None and g not in grids for g in given)):
        raise InvalidParameterError("result_grids must name one grid of grids (or None) per "
                                    "result")
    names = []
    for i, r in enumerate(results):
        found = [key for key, grid in grids.items() if _grid_matches(grid, r)]
        known = given[i] if given is not None else None
        names.append(known or (found[0] if len(found) == 1 else None))
    return names


def _markdown(results: Sequence[LawResult], summary: Mapping[str, Any], meta: Mapping[str, Any],
              grids: Mapping[str, StateGrid], figures: Mapping[str, Sequence[FigureFile]],
              figure_errors: Sequence[str], result_grids: Sequence[str | None],
              law_figures: Sequence[FigureFile | None]) -> str:
    counts = summary["counts"]
    verdict = summary["verdict"]
    lines = [f"# thermocheck report: {SYMBOLS[verdict].split()[0]} {verdict.upper()}", "",
             f"**Verdict: {verdict}** (exit code {summary['exit_code']}) — "
             + ", ".join(f"{counts[v]} {v.replace('_', ' ')}" for v in VERDICTS)
             + f", {summary['known_deviations']} known deviation(s) (not counted)"
             + f", of {summary['total']} law results.", "", *_errors_md(summary["errors"])]
    run = [f"{k} `{meta[k]}`" for k in ("preset", "seed", "command") if meta.get(k) is not None]
    lines += ["Run: " + " · ".join([*run, f"created {meta['created_utc']}",
                                    f"thermocheck {meta['thermocheck_version']}"]), ""]
    order = sorted(range(len(results)), key=lambda i: _SEVERITY.index(_status(results[i])))
    if results:
        rows, cols, cells = _table_cells(results)
        lines += [*_glance_md(results, order), "## Summary", "",
                  "| law | " + " | ".join(cols) + " |",
                  "|---|" + "---|" * len(cols)]
        lines += [f"| {row} | " + " | ".join(cells.get((row, c), "") for c in cols) + " |"
                  for row in rows]
        lines += ["", "Symbols: " + ", ".join(SYMBOLS.values()) + f"; {_MISSING} = not measured.",
                  "", *_deviations_md(results), "## Laws", ""]
    for i in order:
        key = result_grids[i]
        lines += _law_section(results[i], key if key in figures else None, law_figures[i])
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
              + (f"; commit `{meta['git_commit']}`" if meta.get("git_commit") else "") + ".",
              "", f"Device: {describe_device(meta['device'])}.", ""]
    return "\n".join(lines)


# -- writing and loading --------------------------------------------------------------------------
def _draw_all_figures(grids: Mapping[str, StateGrid], results: Sequence[LawResult],
                      folder: Path) -> DrawnFigures:
    """Every grid's and every result's figures (:mod:`thermocheck.figure_pool`); a figure that
    fails is reported, never fatal to the report."""
    from thermocheck.figure_pool import draw_report_figures

    drawn = draw_report_figures(grids, {key: _slug(key) for key in grids}, results, folder)
    for err in drawn.errors:
        warnings.warn(f"thermocheck report: figure not drawn: {err}", RuntimeWarning, stacklevel=3)
    return drawn


def write_report(
    results: Sequence[LawResult],
    out_dir: str | Path,
    *,
    grids: Mapping[str, StateGrid] | None = None,
    seed: Any = None,
    preset: str | None = None,
    command: str | None = None,
    extra_meta: Mapping[str, Any] | None = None,
    errors: Sequence[str] = (),
    result_grids: Sequence[str | None] | None = None,
    result_tests: Sequence[str] | None = None,
) -> Path:
    """Write ``report.json``, ``report.md``, ``report.html`` and ``figures/`` as the folder
    ``out_dir``; return ``out_dir``.

    The report is built in a hidden sibling folder and swapped in for ``out_dir``
    (:func:`_install`): an earlier report there is replaced as a whole, files that are not part of
    a report are kept, and a write that fails leaves the earlier report as it was. An ``out_dir``
    that holds the working directory is refused (``InvalidParameterError``).

    ``grids`` maps a name (e.g. the protocol) to the measured grid the results came from: its states
    go into ``report.json`` and its figures into ``figures/``. ``seed``, ``preset``, ``command`` and
    ``extra_meta`` (any JSON-ready mapping) go into ``meta``. ``errors`` are the run's failures (a
    crashed shard, say): they go into ``summary`` and ``report.md`` and make the verdict ``error``.
    ``result_grids`` names, per result, the grid of ``grids`` it was checked on (default: the one
    grid of its protocol, substrate and ``d``, none when several match); ``result_tests`` the
    test that recorded each result. Each result in ``report.json`` carries its ``grid``, the
    grid's content hash ``grid_id``, its own ``figure`` and, when given, its ``test``; its section
    in ``report.md`` shows its figure and links to that grid's figures.
    No NaN or infinity is ever written: non-finite numbers become ``null`` in JSON and "—" in
    markdown.
    """
    bad = [type(r).__name__ for r in results if not isinstance(r, LawResult)]
    if bad:
        raise InvalidParameterError(f"results must be LawResult objects, got {bad[:3]}")
    out = Path(out_dir)
    grids = dict(grids or {})
    summary = summarize(results, errors)
    meta = _meta(seed, preset, command, extra_meta)
    linked = _result_grids(results, grids, result_grids)
    if result_tests is not None and len(result_tests) != len(results):
        raise InvalidParameterError("result_tests must name one test per result")
    ids = {key: grid_id(grid) for key, grid in grids.items()}
    entries = [{**r.to_dict(), "grid": key, "grid_id": ids.get(key) if key else None,
                **({"test": result_tests[i]} if result_tests is not None else {})}
               for i, (r, key) in enumerate(zip(results, linked, strict=True))]
    with _staged(out) as staged:
        drawn = _draw_all_figures(grids, results, staged / "figures")
        figures, law_figures, figure_errors = drawn.grids, drawn.results, drawn.errors
        for i, fig in enumerate(law_figures):
            entries[i]["figure"] = f"figures/{fig.path.name}" if fig is not None else None
        document = _clean({
            "schema_version": SCHEMA_VERSION,
            "kind": "thermocheck.Report",
            "summary": summary,
            "results": entries,
            "states": {key: json.loads(grid.to_json()) for key, grid in grids.items()} or None,
            "figures": {key: [f"figures/{fig.path.name}" for fig in figs]
                        for key, figs in figures.items()},
            "meta": meta,
        })
        text = json.dumps(document, indent=1, allow_nan=False, ensure_ascii=False)
        markdown = _markdown(results, summary, meta, grids, figures, figure_errors, linked,
                             law_figures)
        _write_pages(staged, markdown, f"thermocheck report: {summary['verdict']}")
        atomic_write_text(staged / "report.json", text + "\n")
    return out


def write_error_report(out_dir: str | Path, cause: str, *, command: str | None = None) -> Path:
    """Write ``report.md`` and ``report.html`` alone for a run that stopped on an error before its
    report existed: the ``cause`` (a traceback, say) and the command; return ``out_dir``. The
    folder is replaced as a whole (:func:`write_report`), so no ``report.json`` or figure of an
    earlier run stays: the absence of ``report.json`` is what marks an incomplete report."""
    out = Path(out_dir)
    created = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# thermocheck report: {SYMBOLS['error']}", "",
             f"**Verdict: error** (exit code {EXIT_CODES['error']}) — the run stopped before its "
             "results were complete.", "",
             "Run: " + " · ".join([*([f"command `{command}`"] if command else []),
                                   f"created {created}"]), "", *_errors_md([cause])]
    with _staged(out) as staged:
        _write_pages(staged, "\n".join(lines), "thermocheck report: error")
    return out


def _write_pages(folder: Path, markdown: str, title: str) -> None:
    """``report.md`` and its self-contained ``report.html`` (:mod:`thermocheck.report_html`)."""
    atomic_write_text(folder / "report.md", markdown)
    atomic_write_text(folder / "report.html", to_html(markdown, folder, title=title))


#: What a report folder holds; anything else found in an ``--out`` folder is carried over.
REPORT_ENTRIES = ("report.json", "report.md", "report.html", "figures")


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A new sibling folder of ``out`` to write a report into; on success it replaces ``out``
    as a whole (:func:`_install`), on any error it is removed and ``out`` stays as it was."""
    target = Path(os.path.abspath(out))
    if target.exists():
        here = Path.cwd().resolve()
        if here == target.resolve() or target.resolve() in here.parents:
            raise InvalidParameterError(
                f"out={str(out)!r} is invalid: it holds the working directory, and a report folder "
                "is replaced as a whole; choose a folder of its own")
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.tmp")
    staged.mkdir()
    try:
        yield staged
        _install(staged, target)
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _install(staged: Path, target: Path) -> None:
    """Swap the finished report folder ``staged`` in for ``target``.

    Entries of ``target`` that are not part of a report (:data:`REPORT_ENTRIES`) move into
    ``staged`` first; then ``target`` is renamed aside, ``staged`` renamed to ``target`` and the
    old folder removed. Both renames are atomic (``os.replace`` within one folder), so a reader
    finds the old report or the new one, never a mix, and no file of the old report stays (a stale
    figure, say); between the two renames ``target`` is briefly absent.
    """
    if target.exists():
        for entry in target.iterdir():
            if entry.name not in REPORT_ENTRIES:
                os.replace(entry, staged / entry.name)
        old = target.with_name(f".{target.name}.{uuid.uuid4().hex[:12]}.old")
        os.replace(target, old)
        os.replace(staged, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staged, target)


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
        return exit_code(self.results, self.summary.get("errors", ()))


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
