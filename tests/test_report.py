"""Reports: report.json schema, report.md, figures, atomic writes, exit codes."""

from __future__ import annotations

import json
import math
import os
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
from pytest import MonkeyPatch

from thermocheck import figures, report, theory
from thermocheck.errors import InvalidParameterError
from thermocheck.report import exit_code, load_report, overall_verdict, write_report
from thermocheck.results import LawResult
from thermocheck.states import State, StateGrid

pytestmark = pytest.mark.fast

TOP_LEVEL = {"schema_version", "kind", "summary", "results", "states", "figures", "meta"}
RESULT_FIELDS = {"law", "protocol", "substrate", "d", "verdict", "passed", "observed", "expected",
                 "tolerance", "residual", "reason", "details", "notes"}
META_FIELDS = {"thermocheck_version", "git_commit", "python", "packages", "machine", "seed",
               "preset", "command", "created_utc", "float", "extra"}


def result(verdict: str = "passed", law: str = "ideal_gas", protocol: str = "fixed_lr",
           **kw: object) -> LawResult:
    reason = "" if verdict == "passed" else f"synthetic {verdict}"
    return LawResult(law=law, protocol=protocol, substrate="isotropic", verdict=verdict,  # type: ignore[arg-type]
                     reason=reason, d=3, **kw)  # type: ignore[arg-type]


def mixed_results() -> list[LawResult]:
    return [
        result("passed", observed=1.01, expected=1.0, tolerance=0.02, residual=0.01,
               details=[{"lr": 0.01, "wd": 0.1, "residual": 0.3, "tolerance": 1.0, "ok": True}]),
        result("failed", law="gibbs_minimum", observed=float("nan"), expected=float("inf"),
               residual=float("-inf"), notes=["a note"],
               details=[{"lr": 0.1, "residual": float("nan"), "tolerance": 1.0, "ok": True},
                        {"lr": 0.01, "residual": 5.0, "tolerance": 1.0, "ok": False}]),
        result("inconclusive", law="maxwell", protocol="fixed_elr"),
        result("not_applicable", law="first_law", protocol="fixed_sphere"),
    ]


def vmf_like_grid(protocol: str = "fixed_lr", n: int = 4, d: int = 3) -> StateGrid:
    """Noise-free states at the low-temperature VMF values (no loss tag: no vmf import)."""
    x_name, y_name = theory.AXES[protocol]
    states = []
    for x in np.geomspace(1e-2, 1e-1, n):
        for y in np.geomspace(1e-2, 1e-1, n):
            hp = {x_name: float(x), y_name: float(y)}
            T = State(protocol=protocol, d=d, sigma2=1.0, **hp).temperature
            r = float(theory.stationary_radius(protocol, d, 1.0, **hp))
            measured: dict[str, object] = {
                "loss": ((d - 1) * T / 2, 1e-4, 10),
                "sphere_entropy": ((d - 1) / 2 * math.log(2 * math.pi * math.e * T), 1e-3, 10),
                "grad_sq": (0.05, 0.001, 10),
            }
            if protocol == "fixed_sphere":
                measured["lambda_eff"] = (float(theory.effective_wd(d, 1.0, **hp)), 1e-3, 10)
            else:
                measured.update(sq_norm=(r * r, 1e-3, 10), mean_radius=(r, 1e-3, 10))
            states.append(State(protocol=protocol, d=d, sigma2=1.0, substrate="isotropic",
                                energy_is_loss=True, **hp, **measured))  # type: ignore[arg-type]
    return StateGrid(states)


# -- exit codes -----------------------------------------------------------------------------------
@pytest.mark.parametrize(("verdicts", "code"), [
    (["passed", "passed"], 0),
    (["passed", "not_applicable"], 0),
    (["passed", "failed", "inconclusive"], 1),
    (["failed", "not_applicable"], 1),
    (["passed", "inconclusive"], 3),
    (["inconclusive", "not_applicable"], 3),
    (["not_applicable"], 3),
    ([], 3),
])
def test_exit_code(verdicts: list[str], code: int) -> None:
    results = [result(v) for v in verdicts]
    assert exit_code(results) == code, f"exit_code({verdicts}) = {exit_code(results)}, want {code}"
    assert report.EXIT_CODES[overall_verdict(results)] == code


# -- report.json ----------------------------------------------------------------------------------
def test_report_json_schema(tmp_path: Path) -> None:
    out = write_report(mixed_results(), tmp_path / "r", seed=7, preset="quick",
                       command="thermocheck verify", extra_meta={"who": "test"})
    data = json.loads((out / "report.json").read_text())
    assert set(data) == TOP_LEVEL
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert data["summary"] == {"verdict": "failed", "exit_code": 1, "total": 4,
                               "counts": {"passed": 1, "failed": 1, "inconclusive": 1,
                                          "not_applicable": 1}}
    for entry in data["results"]:
        assert set(entry) >= RESULT_FIELDS
    assert data["results"][1]["observed"] is None  # NaN → null
    assert data["results"][1]["expected"] is None  # inf → null
    assert data["states"] is None and data["figures"] == {}
    meta = data["meta"]
    assert set(meta) == META_FIELDS
    assert (meta["seed"], meta["preset"], meta["command"]) == (7, "quick", "thermocheck verify")
    assert meta["extra"] == {"who": "test"}
    assert meta["machine"]["cpu_count"] == os.cpu_count()
    assert set(meta["packages"]) >= {"numpy", "scipy", "torch"}
    assert meta["created_utc"].endswith("Z")
    assert meta["float"]["dtype"] == "float64"


def test_no_nan_anywhere(tmp_path: Path) -> None:
    out = write_report(mixed_results(), tmp_path, extra_meta={"bad": float("nan")})
    text = (out / "report.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"report.json contains {c}"))
    md = (out / "report.md").read_text()
    assert re.search(r"\b(nan|NaN|inf|None|null)\b", md) is None
    assert "| — | — | — | — |" in md


def test_report_round_trip(tmp_path: Path) -> None:
    grid = vmf_like_grid()
    results = mixed_results()
    write_report(results, tmp_path, grids={"fixed_lr": grid}, seed=3)
    loaded = load_report(tmp_path)
    assert [r.verdict for r in loaded.results] == [r.verdict for r in results]
    assert loaded.exit_code == 1
    assert loaded.meta["seed"] == 3
    assert loaded.grids["fixed_lr"].to_json() == grid.to_json()
    assert load_report(tmp_path / "report.json").summary == loaded.summary


def test_load_refuses_unknown_schema(tmp_path: Path) -> None:
    write_report([result()], tmp_path)
    data = json.loads((tmp_path / "report.json").read_text())
    data["schema_version"] = 99
    (tmp_path / "report.json").write_text(json.dumps(data))
    with pytest.raises(InvalidParameterError, match="schema_version=99"):
        load_report(tmp_path)


def test_write_report_rejects_non_results(tmp_path: Path) -> None:
    with pytest.raises(InvalidParameterError, match="LawResult"):
        write_report([{"law": "x"}], tmp_path)  # type: ignore[list-item]


# -- atomicity ------------------------------------------------------------------------------------
def test_failed_write_leaves_no_partial_file(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    write_report([result()], tmp_path)
    before = (tmp_path / "report.json").read_text()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(report.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_report(mixed_results(), tmp_path)
    assert (tmp_path / "report.json").read_text() == before, "the old report must survive"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.json", "report.md"]


def test_failed_first_write_creates_nothing(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    real_fdopen = os.fdopen

    class Exploding:
        def __init__(self, fh: object) -> None:
            self.fh = fh

        def __enter__(self) -> Exploding:
            return self

        def __exit__(self, *exc: object) -> None:
            self.fh.close()  # type: ignore[attr-defined]

        def write(self, text: str) -> None:
            self.fh.write(text[: len(text) // 2])  # type: ignore[attr-defined]
            raise OSError("write interrupted")

    monkeypatch.setattr(report.os, "fdopen",
                        lambda fd, *a, **k: Exploding(real_fdopen(fd, *a, **k)))
    with pytest.raises(OSError, match="interrupted"):
        write_report([result()], tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []


# -- report.md ------------------------------------------------------------------------------------
def test_markdown_has_headline_table_and_sections(tmp_path: Path) -> None:
    md = (write_report(mixed_results(), tmp_path, seed=1) / "report.md").read_text()
    assert md.startswith("# thermocheck report: ✗ FAILED")
    assert "**Verdict: failed** (exit code 1)" in md
    assert "| law | fixed_lr | fixed_elr | fixed_sphere |" in md
    assert "| gibbs_minimum | ✗ FAILED |  |  |" in md
    assert "| first_law |  |  | – n/a |" in md
    assert "### gibbs_minimum — fixed_lr (isotropic, d = 3): ✗ FAILED" in md
    assert "**Reason:** synthetic failed" in md
    assert "- note: a note" in md
    assert "Worst points (2 of 2; 1 outside tolerance)" in md
    worst = md.split("Worst points (2 of 2")[1]
    assert worst.index("| 0.01 | 5 | 1 | false |") < worst.index("| 0.1 | — | 1 | true |")
    # failing laws come first
    assert md.index("### gibbs_minimum") < md.index("### maxwell") < md.index("### ideal_gas")


def test_table_counts_several_results_per_cell() -> None:
    text = report.format_table([result("passed"), result("failed"), result("passed")])
    assert "✗ FAILED (1/3)" in text
    assert text.splitlines()[0].split() == ["law", "fixed_lr"]


def test_markdown_escapes_table_cells(tmp_path: Path) -> None:
    r = result("failed", details=[{"note": "a|b", "ok": False}])
    md = (write_report([r], tmp_path) / "report.md").read_text()
    assert "a\\|b" in md


# -- figures --------------------------------------------------------------------------------------
@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_report_embeds_figures(tmp_path: Path, protocol: str) -> None:
    grid = vmf_like_grid(protocol)
    r = result(protocol=protocol)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a figure that fails to draw warns
        out = write_report([r], tmp_path, grids={protocol: grid})
    data = json.loads((out / "report.json").read_text())
    kinds = ["thermo", "state_equation", "potential", "entropy"]
    assert data["figures"] == {protocol: [f"figures/{protocol}-{k}.png" for k in kinds]}
    md = (out / "report.md").read_text()
    for k in kinds:
        png = out / "figures" / f"{protocol}-{k}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"(figures/{protocol}-{k}.png)" in md
    assert f"Figures: [{protocol}](#figures-{protocol})" in md
    assert len(data["states"][protocol]["states"]) == len(grid)


def test_figures_need_their_quantities() -> None:
    grid = StateGrid.from_arrays("fixed_lr", 3, 1.0, lr=[0.01, 0.1], wd=[0.1, 0.1])
    for build in figures.FIGURES.values():
        assert build(grid) is None, build.__name__


def test_potential_map_finds_exact_minimisers() -> None:
    grid = vmf_like_grid("fixed_elr", n=5)
    states = list(grid)
    best = figures._minimisers(states, sphere=False)
    assert best == list(range(len(states))), "noise-free VMF states minimise their own G"


def test_figure_failure_is_reported_not_fatal(tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    def broken(grid: StateGrid) -> None:
        raise RuntimeError("boom")

    monkeypatch.setitem(figures.FIGURES, "thermo", broken)
    with pytest.warns(RuntimeWarning, match="boom"):
        out = write_report([result()], tmp_path, grids={"fixed_lr": vmf_like_grid()})
    md = (out / "report.md").read_text()
    assert "- figure not drawn: fixed_lr: thermo: RuntimeError: boom" in md
    assert (out / "figures" / "fixed_lr-entropy.png").exists()


def test_vmf_curves_on_linear_loss() -> None:
    grid = StateGrid([s.replace(extra={"loss": "linear"}) for s in vmf_like_grid()])
    drawn = figures.thermo_figure(grid)
    assert drawn is not None and "should lie on the VMF curves" in drawn.title
    labels = [line.get_label() for ax in drawn.figure.axes for line in ax.get_lines()]
    assert "VMF exact, κ = ‖μ‖/T" in labels
