"""The pytest plugin, exercised through pytester in subprocesses (a real pytest, as users run it).

Subprocesses keep the inner sessions from touching this session's global state (the Hypothesis
profile) and let xdist start real workers.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import settings

from thermocheck.errors import InvalidParameterError, ParameterTypeError
from thermocheck.plugin import MARKERS, PROFILES, LawReport, load_profile
from thermocheck.report import grid_id, load_report

pytestmark = pytest.mark.fast

SUITE = '''
import pytest
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

CASES = [("ideal_gas", "fixed_lr", "passed"), ("ideal_gas", "fixed_elr", "failed"),
         ("maxwell", "fixed_lr", "inconclusive"), ("maxwell", "fixed_sphere", "not_applicable"),
         ("first_law", "fixed_elr", "passed"), ("gibbs_minimum", "fixed_lr", "passed")]


def make(law, protocol, verdict, observed=1.0):
    reason = "" if verdict == "passed" else "synthetic " + verdict
    return LawResult(law=law, protocol=protocol, substrate="isotropic", verdict=verdict,
                     reason=reason, observed=observed, expected=1.0, d=3)


@pytest.mark.fast
@pytest.mark.parametrize("case", CASES)
def test_each(law_report, case):
    assert law_report.record(make(*case)).verdict == case[2]


@pytest.mark.fast
def test_two_and_a_grid(law_report):
    grid = StateGrid.from_arrays("fixed_lr", 3, 1.0, lr=[0.01, 0.1], wd=[0.1, 0.1])
    law_report.record(make("heat_capacity", "fixed_lr", "passed", observed=float("nan")),
                      grid=grid)
    law_report.record(make("adiabatic", "fixed_lr", "passed"))


@pytest.mark.fast
def test_without_the_fixture():
    pass
'''

EXPECTED = sorted([
    ("ideal_gas", "fixed_lr", "passed"), ("ideal_gas", "fixed_elr", "failed"),
    ("maxwell", "fixed_lr", "inconclusive"), ("maxwell", "fixed_sphere", "not_applicable"),
    ("first_law", "fixed_elr", "passed"), ("gibbs_minimum", "fixed_lr", "passed"),
    ("heat_capacity", "fixed_lr", "passed"), ("adiabatic", "fixed_lr", "passed"),
])


def run(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def check_report(pytester: pytest.Pytester, outcome: pytest.RunResult, folder: str) -> dict:
    outcome.assert_outcomes(passed=8)
    outcome.stdout.fnmatch_lines(["*thermocheck law results*",
                                  "8 law results: 5 passed, 1 failed, 1 inconclusive, "
                                  "1 not applicable; overall failed",
                                  f"law report written to *{folder}"])
    report = load_report(pytester.path / folder)
    got = sorted((r.law, r.protocol, r.verdict) for r in report.results)
    assert got == EXPECTED
    assert report.summary["counts"] == {"passed": 5, "failed": 1, "inconclusive": 1,
                                        "not_applicable": 1}
    assert report.exit_code == 1
    assert list(report.grids) == ["user-fixed_lr-d3"]
    tests = report.meta["extra"]["pytest"]["tests"]
    assert len(tests) == 8 and all(t.startswith("test_suite.py::") for t in tests)
    text = (pytester.path / folder / "report.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    markdown = (pytester.path / folder / "report.md").read_text()
    assert "| ideal_gas | ✓ passed | ✗ FAILED |" in markdown
    data = json.loads(text)
    by_law = {r["law"]: r for r in data["results"]}
    assert [r["test"] for r in data["results"]] == tests
    assert by_law["heat_capacity"]["test"] == "test_suite.py::test_two_and_a_grid"
    assert by_law["heat_capacity"]["grid"] == "user-fixed_lr-d3"
    assert by_law["heat_capacity"]["grid_id"] == grid_id(report.grids["user-fixed_lr-d3"])
    assert by_law["adiabatic"]["grid"] is None  # recorded without its grid: no link
    return data


def test_one_report_serial_and_under_xdist(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    serial = check_report(pytester, run(pytester, "--thermocheck-report", "serial"), "serial")
    xdist = check_report(pytester, run(pytester, "-n", "2", "--thermocheck-report", "xdist"),
                         "xdist")
    reports = sorted(p.relative_to(pytester.path) for p in pytester.path.rglob("report.json"))
    assert reports == [Path("serial/report.json"), Path("xdist/report.json")], (
        f"want one report per run, found {reports}")
    assert not list(pytester.path.rglob("*.tmp")), "no temporary file may stay behind"
    assert serial["results"] == xdist["results"], "same results in the same order"
    assert serial["summary"] == xdist["summary"]
    assert xdist["meta"]["extra"]["pytest"]["xdist_workers"] == 2


def test_no_file_without_the_option(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    outcome = run(pytester)
    outcome.assert_outcomes(passed=8)
    outcome.stdout.fnmatch_lines(["no report file written (use --thermocheck-report=DIR)"])
    assert not list(pytester.path.rglob("report.json"))


def test_auto_report_folder(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_suite=SUITE)
    pytester.makeini("[pytest]\n")
    run(pytester, "--thermocheck-report=auto").assert_outcomes(passed=8)
    found = list((pytester.path / "reports").glob("pytest-*/report.json"))
    assert len(found) == 1, found


def test_markers_are_registered(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_marked="""
        import pytest

        @pytest.mark.fast
        def test_fast(): pass

        @pytest.mark.slow
        def test_slow(): pass
    """)
    run(pytester, "--strict-markers").assert_outcomes(passed=2)
    listing = run(pytester, "--markers")
    for name in MARKERS:
        listing.stdout.fnmatch_lines([f"@pytest.mark.{name}:*"])


def test_gpu_tests_skip_with_reason(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_gpu="""
        import pytest

        @pytest.mark.gpu
        def test_on_gpu():
            import torch
            assert torch.cuda.is_available()
    """)
    outcome = run(pytester, "-rs", "--strict-markers")
    if outcome.parseoutcomes().get("passed") == 1:  # a CUDA device is here: the test ran
        return
    outcome.assert_outcomes(skipped=1)
    outcome.stdout.fnmatch_lines([
        "SKIPPED [[]1[]] test_gpu.py:*: gpu test skipped: *; run `pytest -m gpu` on a machine "
        "with a CUDA GPU*"])


def test_deselected_gpu_tests_do_not_import_torch(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        import sys

        def pytest_sessionfinish(session):
            print("TORCH LOADED:", "torch" in sys.modules)
    """)
    pytester.makepyfile(test_mixed="""
        import pytest

        @pytest.mark.gpu
        def test_on_gpu(): pass

        @pytest.mark.fast
        def test_fast(): pass
    """)
    outcome = run(pytester, "-s", "-m", "fast")
    outcome.assert_outcomes(passed=1, deselected=1)
    outcome.stdout.fnmatch_lines(["*TORCH LOADED: False*"])


def test_slurm_tests_skip_without_a_cluster(pytester: pytest.Pytester,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(pytester.path / "no-such-bin"))
    pytester.makepyfile(test_cluster="""
        import pytest

        @pytest.mark.slurm
        def test_submit(): pass
    """)
    outcome = run(pytester, "-rs")
    outcome.assert_outcomes(skipped=1)
    outcome.stdout.fnmatch_lines(["*slurm test skipped: `sinfo` not found*slurm-up.sh*"])


PRINT_SETTINGS = """
    from hypothesis import settings

    def test_profile():
        s = settings()
        print("SETTINGS", s.max_examples, s.derandomize, repr(s.deadline), s.database is None)
"""


def _settings(outcome: pytest.RunResult) -> list[str]:
    """The settings the inner test printed: max_examples, derandomize, deadline, no database."""
    outcome.assert_outcomes(passed=1)
    return [m.group(0) for line in outcome.outlines if (m := re.search(r"SETTINGS .*", line))]


def _set_ci(monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    if ci is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", ci)


@pytest.mark.parametrize("ci", [None, "true"])
def test_no_profile_unless_asked(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                                 ci: str | None) -> None:
    """Without --thermocheck-profile, Hypothesis's settings are those of a session without the
    plugin (whatever Hypothesis itself makes of $CI)."""
    _set_ci(monkeypatch, ci)
    pytester.makepyfile(test_profile=PRINT_SETTINGS)
    with_plugin = _settings(run(pytester, "-s"))
    without = _settings(run(pytester, "-s", "-p", "no:thermocheck"))
    assert with_plugin == without and len(with_plugin) == 1


@pytest.mark.parametrize("ci", [None, "true"])
def test_users_conftest_profile_survives(pytester: pytest.Pytester,
                                         monkeypatch: pytest.MonkeyPatch, ci: str | None) -> None:
    """A user's project with its own profile keeps it, with and without $CI; asking for a
    thermocheck profile explicitly still loads it."""
    _set_ci(monkeypatch, ci)
    pytester.makeconftest("""
        from hypothesis import settings

        settings.register_profile("mine", max_examples=7, derandomize=False)
        settings.load_profile("mine")
    """)
    pytester.makepyfile(test_profile=PRINT_SETTINGS)
    mine = _settings(run(pytester, "-s"))
    assert len(mine) == 1 and mine[0].startswith("SETTINGS 7 False "), mine
    assert mine == _settings(run(pytester, "-s", "-p", "no:thermocheck"))
    assert _settings(run(pytester, "-s", "--thermocheck-profile=ci")) == [
        "SETTINGS 50 True None True"]


@pytest.mark.parametrize(("args", "ci", "want"), [
    (["--thermocheck-profile=dev"], "true", (25, False)),
    (["--thermocheck-profile=thorough"], "true", (1000, False)),
    (["--thermocheck-profile=ci"], None, (50, True)),
])
def test_hypothesis_profiles(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch,
                             args: list[str], ci: str | None, want: tuple[int, bool]) -> None:
    _set_ci(monkeypatch, ci)
    pytester.makepyfile(test_profile=f"""
        from hypothesis import settings

        def test_profile():
            assert (settings().max_examples, settings().derandomize) == {want!r}
            assert settings().deadline is None
    """)
    run(pytester, *args).assert_outcomes(passed=1)


def test_explicit_hypothesis_profile_wins(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("""
        from hypothesis import settings
        settings.register_profile("mine", max_examples=7)
    """)
    pytester.makepyfile(test_profile="""
        from hypothesis import settings

        def test_profile():
            assert settings().max_examples == 7
    """)
    run(pytester, "--hypothesis-profile=mine", "--thermocheck-profile=ci").assert_outcomes(
        passed=1)


def test_this_repository_defaults_to_its_profile(request: pytest.FixtureRequest) -> None:
    """The repository's conftest picks ``ci`` under $CI, else ``dev``, for its own suite."""
    if request.config.getoption("hypothesis_profile", default=None):
        pytest.skip("--hypothesis-profile chose the profile")
    name = request.config.getoption("thermocheck_profile")
    args = request.config.invocation_params.args
    if not any(str(a).startswith("--thermocheck-profile") for a in args):
        ci = os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")
        assert name == ("ci" if ci else "dev")
    want = PROFILES[name]
    assert (settings().max_examples, settings().derandomize) == (
        want["max_examples"], want["derandomize"])


def test_load_profile_names_its_choices() -> None:
    with pytest.raises(InvalidParameterError, match=r"name='nightly' is invalid: choose one of"):
        load_profile("nightly")


def test_plugin_import_is_light() -> None:
    code = ("import sys, thermocheck.plugin; "
            "print(sorted(m for m in ('numpy', 'scipy', 'torch', 'matplotlib', 'hypothesis') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]", f"plugin import loaded {out.stdout.strip()}"


def test_record_refuses_other_objects() -> None:
    recorder = LawReport(SimpleNamespace(user_properties=[]))  # type: ignore[arg-type]
    with pytest.raises(ParameterTypeError, match="expects a LawResult, got dict"):
        recorder.record({"law": "ideal_gas"})  # type: ignore[arg-type]


def test_ci_runs_the_readme_test_command() -> None:
    root = Path(__file__).resolve().parents[1]
    match = re.search(r"^TEST_COMMAND='(.+)'$", (root / ".ci" / "run").read_text(), re.M)
    assert match, ".ci/run must define TEST_COMMAND='...' on one line"
    command = match.group(1)
    words = shlex.split(command)
    expression = words[words.index("-m", words.index("pytest")) + 1]
    markers = set(re.findall(r"\w+", expression)) - {"not", "and", "or"}
    assert markers <= set(MARKERS), f"{markers} must be markers the plugin registers"
    readme = root / "README.md"
    assert command in readme.read_text(), f"README.md must give the CI test command: {command}"
