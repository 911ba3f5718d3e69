"""Reports: report.json schema, report.md, figures, atomic writes, exit codes."""

from __future__ import annotations

import json
import math
import os
import re
import sys
import warnings
from multiprocessing import spawn
from pathlib import Path

import numpy as np
import pytest
from pytest import MonkeyPatch

from thermocheck import figure_pool, figures, laws, report, theory
from thermocheck.deviations import KNOWN_DEVIATIONS, known_deviation
from thermocheck.errors import InvalidParameterError
from thermocheck.report import exit_code, load_report, overall_verdict, write_report
from thermocheck.results import LawResult
from thermocheck.states import State, StateGrid

pytestmark = pytest.mark.fast

TOP_LEVEL = {"schema_version", "kind", "summary", "results", "states", "figures", "meta"}
RESULT_FIELDS = {"law", "protocol", "substrate", "d", "verdict", "passed", "observed", "expected",
                 "tolerance", "residual", "reason", "details", "notes"}
META_FIELDS = {"thermocheck_version", "git_commit", "python", "packages", "machine", "device",
               "seed", "preset", "command", "created_utc", "float", "extra"}


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


def v1(form: str, verdict: str, substrate: str = "net") -> LawResult:
    """V1 in its SDE (``form="sde"``) or corrected form, as a network run reports it."""
    reason = "" if verdict == "passed" else f"synthetic {verdict}"
    return LawResult(law="ideal_gas", protocol="fixed_lr", substrate=substrate,
                     verdict=verdict, reason=reason, d=1530,  # type: ignore[arg-type]
                     options={"corrected": form != "sde", "alpha": 1e-3},
                     details=[{"at": "lr=0.1, wd=0.1", "relative_residual": 0.2,
                               "grad_ratio": 0.44, "ok": verdict != "failed"}])


@pytest.mark.parametrize(("results", "code"), [
    ([v1("sde", "failed"), v1("corrected", "passed")], 0),
    ([v1("sde", "inconclusive"), v1("corrected", "passed")], 0),
    ([v1("sde", "failed"), v1("corrected", "inconclusive")], 3),
    ([v1("sde", "failed"), v1("corrected", "failed")], 1),
    ([v1("sde", "failed", "user"), v1("corrected", "passed", "user")], 0),
    # on the isotropic simulator the SDE form is no known deviation: its failure counts
    ([v1("sde", "failed", "isotropic"), v1("corrected", "passed", "isotropic")], 1),
    ([v1("sde", "failed")], 3),  # nothing counted was verified
])
def test_known_deviations_are_not_counted(results: list[LawResult], code: int) -> None:
    assert exit_code(results) == code
    summary = report.summarize(results)
    known = sum(known_deviation(r) is not None for r in results)
    assert summary["known_deviations"] == known
    assert sum(summary["counts"].values()) + known == summary["total"] == len(results)


def test_known_deviation_is_shown_with_its_cause_and_size(tmp_path: Path) -> None:
    results = [v1("sde", "failed"), v1("corrected", "passed")]
    table = report.format_table(results)
    assert "ideal_gas (SDE form)  ≈ known deviation" in table and "FAILED" not in table
    assert report.summary_line(results) == (
        "2 law results: 1 passed, 1 known deviation(s) (not counted); overall passed")
    md = (write_report(results, tmp_path) / "report.md").read_text()
    section = md.split("## Known deviations")[1].split("## Laws")[0]
    assert "| ideal_gas (SDE form) | fixed_lr | net | ≈ known deviation |" in section
    assert "gap from this form's prediction median +20.0%" in section
    assert "E‖∇L(w̄)‖²/Tr Σ_w̄ median 44.0%" in section and "Appendix G" in section
    loaded = load_report(tmp_path)  # the options survive JSON, so does the classification
    assert loaded.exit_code == loaded.summary["exit_code"] == 0


def test_known_deviations_name_real_laws_and_options() -> None:
    """A renamed law or option must break this test, not silently empty the map."""
    import inspect

    for deviation in KNOWN_DEVIATIONS:
        assert deviation.law in laws.ALL, deviation
        parameters = inspect.signature(laws.ALL[deviation.law]).parameters
        assert set(deviation.options) <= set(parameters), deviation
        assert deviation.cause and deviation.reference and deviation.substrates


def test_errors_during_the_run_give_exit_code_4(tmp_path: Path) -> None:
    results = [result("passed"), result("failed")]
    errors = ["Traceback ...\nRuntimeError: worker killed by signal 9"]
    assert exit_code(results, errors) == 4 and overall_verdict(results, errors) == "error"
    out = write_report(results, tmp_path, errors=errors)
    loaded = load_report(out)
    assert loaded.exit_code == loaded.summary["exit_code"] == 4
    assert loaded.summary["errors"] == errors and loaded.summary["verdict"] == "error"
    md = (out / "report.md").read_text()
    assert md.startswith("# thermocheck report: ✗ ERROR")
    assert "## Errors" in md and "worker killed by signal 9" in md


# -- report.json ----------------------------------------------------------------------------------
def test_report_json_schema(tmp_path: Path) -> None:
    out = write_report(mixed_results(), tmp_path / "r", seed=7, preset="quick",
                       command="thermocheck verify", extra_meta={"who": "test"})
    data = json.loads((out / "report.json").read_text())
    assert set(data) == TOP_LEVEL
    assert data["schema_version"] == report.SCHEMA_VERSION
    assert data["summary"] == {"verdict": "failed", "exit_code": 1, "total": 4,
                               "counts": {"passed": 1, "failed": 1, "inconclusive": 1,
                                          "not_applicable": 1},
                               "known_deviations": 0, "errors": []}
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
    assert meta["device"]["accelerator"] in ("cpu", "cuda") and meta["device"]["cpu_count"]
    assert set(meta["packages"]) >= {"numpy", "scipy", "torch"}
    assert meta["created_utc"].endswith("Z")
    assert meta["float"]["dtype"] == "float64"


def test_no_nan_anywhere(tmp_path: Path) -> None:
    out = write_report(mixed_results(), tmp_path, extra_meta={"bad": float("nan")})
    text = (out / "report.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"report.json contains {c}"))
    md = (out / "report.md").read_text()
    assert re.search(r"\b(nan|NaN|inf|None|null)\b", md) is None
    assert "- **measured:** —; band —" in md  # a result with nothing comparable


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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.json",
                                                          "report.md"]


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
    assert list(tmp_path.iterdir()) == [], "no report folder, no staging folder left"


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
    assert "Worst points (2 of 2 compared; 1 outside their band)" in md
    worst = md.split("Worst points (2 of 2")[1]
    assert worst.index("| 5 | ±1 | **no** |") < worst.index("| — | ±1 | yes |")
    # failing laws come first
    assert md.index("### gibbs_minimum") < md.index("### maxwell") < md.index("### ideal_gas")


def test_table_counts_several_results_per_cell() -> None:
    text = report.format_table([result("passed"), result("failed"), result("passed")])
    assert "✗ FAILED (1/3)" in text
    assert text.splitlines()[0].split() == ["law", "fixed_lr"]


def test_markdown_escapes_table_cells(tmp_path: Path) -> None:
    r = result("failed", details=[{"at": "a|b", "ok": False}])
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
    kinds = ["thermo", "state_equation", "entropy"]
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


# -- figures on two processes --------------------------------------------------------------------
def _figure_work() -> tuple[dict[str, StateGrid], dict[str, str], list[LawResult]]:
    """A grid and the results of every law on it: 12 figures to draw, 10 that apply."""
    grids = {"fixed_lr": vmf_like_grid("fixed_lr", n=3)}
    results = [law(grid) for grid in grids.values() for law in laws.ALL.values()]
    return grids, {key: key for key in grids}, results


def _drawn_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _summary(drawn: figure_pool.DrawnFigures) -> tuple[object, ...]:
    def key(f: figures.FigureFile | None) -> object:
        return None if f is None else (f.kind, f.path.name, f.title, f.caption)
    return ({g: [key(f) for f in fs] for g, fs in drawn.grids.items()},
            [key(f) for f in drawn.results], drawn.errors)


@pytest.fixture(scope="module")
def serial_figures(tmp_path_factory: pytest.TempPathFactory) -> tuple[object, dict[str, bytes]]:
    """The figures drawn by this process alone, and what it says of them."""
    folder = tmp_path_factory.mktemp("serial")
    with MonkeyPatch.context() as m:
        m.setattr(figure_pool, "MIN_FIGURES_FOR_HELPER", 10**9)
        drawn = figure_pool.draw_report_figures(*_figure_work(), folder)
    return _summary(drawn), _drawn_files(folder)


def test_the_figure_helper_draws_what_this_process_draws(
        tmp_path: Path, serial_figures: tuple[object, dict[str, bytes]]) -> None:
    """The helper process alone (nothing claimed here) draws every figure, byte for byte the
    same as this process does, and reports each on its own line."""
    grids, names, results = _figure_work()
    claims = tmp_path / "claims"
    claims.mkdir()
    payload = tmp_path / "payload.json"
    payload.write_text(json.dumps({
        "claims": str(claims), "folder": str(tmp_path / "helper"), "names": names,
        "grids": {k: g.to_json() for k, g in grids.items()},
        "results": [r.to_dict() for r in results]}))
    helper = figure_pool._start_helper(payload)
    assert helper is not None
    done = figure_pool._helper_results(helper, tmp_path / "helper")
    tasks = len(grids) * len(figures.FIGURES) + len(results)
    assert helper.returncode == 0
    assert len(done) == len(os.listdir(claims)) == tasks  # every figure claimed and reported
    assert _drawn_files(tmp_path / "helper") == serial_figures[1]
    assert sum(f is not None for f, _ in done.values()) == len(serial_figures[1])


@pytest.mark.parametrize("helper", [
    None,  # the real helper, drawing beside this process
    "import sys; sys.exit(3)",  # fails at once
    # claims every figure, then dies without reporting one
    "import os, sys, json; p = json.load(open(sys.argv[1])); "
    "[open(os.path.join(p['claims'], str(i)), 'x') for i in range(12)]; os._exit(9)",
])
def test_two_processes_draw_what_one_draws_even_if_the_helper_fails(
        tmp_path: Path, monkeypatch: MonkeyPatch, helper: str | None,
        serial_figures: tuple[object, dict[str, bytes]]) -> None:
    monkeypatch.setattr(figure_pool, "cpu_budget", lambda: 2)
    monkeypatch.setattr(figure_pool, "MIN_FIGURES_FOR_HELPER", 1)
    if helper is not None:
        monkeypatch.setattr(figure_pool, "_helper_argv",
                            lambda payload: [sys.executable, "-c", helper, str(payload)])
    drawn = figure_pool.draw_report_figures(*_figure_work(), tmp_path / "pool")
    assert (_summary(drawn), _drawn_files(tmp_path / "pool")) == serial_figures


def test_without_a_known_interpreter_every_figure_is_drawn_here(
        tmp_path: Path, monkeypatch: MonkeyPatch,
        serial_figures: tuple[object, dict[str, bytes]]) -> None:
    monkeypatch.setattr(figure_pool, "cpu_budget", lambda: 2)
    monkeypatch.setattr(figure_pool, "MIN_FIGURES_FOR_HELPER", 1)
    monkeypatch.setattr(spawn, "get_executable", lambda: "")
    assert figure_pool._start_helper(tmp_path / "payload.json") is None
    drawn = figure_pool.draw_report_figures(*_figure_work(), tmp_path / "pool")
    assert (_summary(drawn), _drawn_files(tmp_path / "pool")) == serial_figures


def test_grids_of_one_file_name_get_files_of_their_own(tmp_path: Path,
                                                      monkeypatch: MonkeyPatch) -> None:
    monkeypatch.setattr(figure_pool, "MIN_FIGURES_FOR_HELPER", 10**9)
    grid = vmf_like_grid("fixed_lr", n=3)
    drawn = figure_pool.draw_report_figures({"a b": grid, "a-b": grid},
                                            {"a b": "a-b", "a-b": "a-b"}, [], tmp_path)
    assert drawn.grids["a b"][0].path.name == "a-b-thermo.png"
    assert drawn.grids["a-b"][0].path.name == "a-b-2-thermo.png"


def test_a_figure_that_warns_is_drawn_under_warnings_as_errors(
        tmp_path: Path, monkeypatch: MonkeyPatch) -> None:
    """Drawing runs with warnings silenced in either process, so a caller's ``-W error`` does
    not make a figure's fate depend on which process drew it."""
    thermo = figures.FIGURES["thermo"]

    def warns(grid: StateGrid) -> object:
        warnings.warn("cosmetic", UserWarning, stacklevel=1)
        return thermo(grid)

    monkeypatch.setitem(figures.FIGURES, "thermo", warns)
    monkeypatch.setattr(figure_pool, "MIN_FIGURES_FOR_HELPER", 10**9)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn = figure_pool.draw_report_figures({"g": vmf_like_grid("fixed_lr", n=3)}, {"g": "g"},
                                                [], tmp_path)
    assert drawn.errors == [] and drawn.grids["g"][0].kind == "thermo"


# -- results that know their grid -----------------------------------------------------------------
def test_each_result_links_to_its_own_grid_not_the_first_of_its_kind(tmp_path: Path) -> None:
    """Two grids of one protocol, substrate and d: each result names its grid (and the grid's
    content hash) and its section links to that grid's figures."""
    first, second = vmf_like_grid(n=3), vmf_like_grid(n=4)
    grids = {"small": first, "large": second}
    results = [result(law="ideal_gas"), result(law="maxwell")]
    write_report(results, tmp_path, grids=grids, result_grids=["small", "large"],
                 result_tests=["t.py::test_a", "t.py::test_b"])
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [(r["grid"], r["grid_id"], r["test"]) for r in data["results"]] == [
        ("small", report.grid_id(first), "t.py::test_a"),
        ("large", report.grid_id(second), "t.py::test_b")]
    assert report.grid_id(first) != report.grid_id(second)
    md = (tmp_path / "report.md").read_text(encoding="utf-8")
    sections = md.split("\n### ")
    maxwell = next(s for s in sections if s.startswith("maxwell"))
    assert "Figures: [large](#figures-large)" in maxwell


def test_a_result_of_an_ambiguous_grid_links_to_none(tmp_path: Path) -> None:
    grids = {"a": vmf_like_grid(n=3), "b": vmf_like_grid(n=4), "elr": vmf_like_grid("fixed_elr")}
    results = [result(law="ideal_gas"), result(law="maxwell", protocol="fixed_elr")]
    write_report(results, tmp_path, grids=grids)
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert [r["grid"] for r in data["results"]] == [None, "elr"]
    assert "Figures: [a]" not in (tmp_path / "report.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("kwargs", [{"result_grids": ["nope"]}, {"result_grids": []},
                                    {"result_tests": []}])
def test_result_links_are_validated(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(InvalidParameterError, match="result_"):
        write_report([result()], tmp_path, grids={"a": vmf_like_grid(n=3)}, **kwargs)


def test_quiet_line_says_the_exit_status_and_counts() -> None:
    line = report.quiet_line([result(), result("failed", law="maxwell")], Path("r"))
    assert line == ("exit 1 (a law failed): 2 law results: 1 passed, 1 failed; "
                    f"report: {Path('r') / 'report.md'}")
