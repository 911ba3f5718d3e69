"""thermocheck's pytest plugin: markers, Hypothesis profiles, and a session report of law results.

Registered through the ``pytest11`` entry point, so it is active wherever thermocheck is installed.
It imports nothing heavy when loaded: numpy and the report writer are imported only when law
results are summarised or written, torch only when ``gpu``-marked tests are selected (to ask for a
CUDA device), Hypothesis at configuration (to load the profile).

Markers
    ``fast`` (seconds, CPU), ``slow`` (minutes, CPU), ``gpu`` (needs a CUDA device; skipped with a
    reason where none is present), ``slurm`` (needs a Slurm cluster that answers ``sinfo``;
    skipped with a reason otherwise).
Options
    ``--thermocheck-report=DIR`` writes ``report.json``, ``report.md`` and ``figures/`` of every
    law result recorded through the ``law_report`` fixture into ``DIR`` at the end of the session
    (``auto``: a new ``reports/pytest-<UTC time>/`` under the rootdir). Without it no file is
    written; the terminal summary still lists the recorded results.
    ``--thermocheck-profile={ci,dev,thorough}`` loads a Hypothesis profile (``ci`` by default when
    the environment variable ``CI`` is true, else ``dev``); ``--hypothesis-profile`` wins over it.
Fixture
    ``law_report.record(result, grid=None)`` adds a :class:`~thermocheck.results.LawResult` (and
    optionally the grid it came from, for the figures) to the session report and returns it.

Under pytest-xdist each recorded result travels as JSON in the test report's ``user_properties``,
which xdist sends from the worker to the controller; only the controller (or a run without xdist)
collects them in ``pytest_runtest_logreport`` and writes the one report at session finish.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from thermocheck.results import LawResult
    from thermocheck.states import StateGrid

__all__ = ["LawReport", "law_report"]

#: ``user_properties`` names under which results and grids travel (JSON strings).
RESULT_PROPERTY = "thermocheck.law_result"
GRID_PROPERTY = "thermocheck.grid"

MARKERS = {
    "fast": "fast: a quick CPU test (seconds); the CI tier `pytest -m fast`",
    "slow": "slow: a long CPU test (minutes), e.g. the CPU network tier",
    "gpu": "gpu: needs a CUDA device; skipped with a reason where torch.cuda.is_available() is "
           "False (run `pytest -m gpu` on a machine with a CUDA GPU)",
    "slurm": "slurm: needs a Slurm cluster that answers `sinfo`; skipped with a reason otherwise "
             "(.ci/slurm-up.sh starts a single-node one)",
}

PROFILES = ("ci", "dev", "thorough")

_SESSION = pytest.StashKey["ReportSession"]()


# -- options, markers, Hypothesis profiles --------------------------------------------------------
def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("thermocheck", "thermocheck law reports and test profiles")
    group.addoption(
        "--thermocheck-report", dest="thermocheck_report", metavar="DIR", default=None,
        help="write the session's law results (law_report fixture) as report.json, report.md "
             "and figures/ into DIR; 'auto' = reports/pytest-<UTC time>/ under the rootdir. "
             "Default: no report file.",
    )
    group.addoption(
        "--thermocheck-profile", dest="thermocheck_profile", choices=PROFILES, default=None,
        help="Hypothesis profile: ci (derandomized, 50 examples, no deadline), dev (25 "
             "examples), thorough (1000 examples). Default: ci when $CI is true, else dev.",
    )


def _ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes", "on")


def _load_hypothesis_profile(config: pytest.Config) -> str | None:
    """Register the thermocheck profiles and load the chosen one (not when --hypothesis-profile
    was given: the more specific option wins). Returns the profile loaded."""
    if config.getoption("hypothesis_profile", default=None):
        return None
    from hypothesis import HealthCheck, settings

    # Every setting that differs between profiles is given explicitly: a profile inherits the
    # defaults in force when it is registered, which Hypothesis itself changes when $CI is set.
    common: dict[str, Any] = {"deadline": None, "print_blob": True}
    # Timing-based health checks are flaky on shared machines; the others stay on.
    quiet: dict[str, Any] = {"suppress_health_check": [HealthCheck.too_slow]}
    settings.register_profile("thermocheck-ci", max_examples=50, derandomize=True, database=None,
                              **common, **quiet)
    settings.register_profile("thermocheck-dev", max_examples=25, derandomize=False,
                              suppress_health_check=[], **common)
    settings.register_profile("thermocheck-thorough", max_examples=1000, derandomize=False,
                              **common, **quiet)
    name = config.getoption("thermocheck_profile") or ("ci" if _ci() else "dev")
    settings.load_profile(f"thermocheck-{name}")
    return f"thermocheck-{name}"


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)
    session = ReportSession(config, _load_hypothesis_profile(config))
    config.stash[_SESSION] = session
    config.pluginmanager.register(session, "thermocheck-report-session")


# -- skips that say how to enable the test -------------------------------------------------------
def _cuda_skip_reason() -> str | None:
    """Why gpu tests cannot run here, or None when a CUDA device is present."""
    how = ("run `pytest -m gpu` on a machine with a CUDA GPU and a CUDA build of torch "
           "(torch.cuda.is_available() must be True)")
    try:
        import torch
    except ImportError:
        return f"gpu test skipped: torch is not installed; {how}"
    if not torch.cuda.is_available():
        return f"gpu test skipped: no CUDA device (torch.cuda.is_available() is False); {how}"
    return None


def _slurm_skip_reason() -> str | None:
    """Why slurm tests cannot run here, or None when a cluster answers with a usable node."""
    how = "start a cluster (as root: .ci/slurm-up.sh) or run on a Slurm login node"
    if shutil.which("sinfo") is None:
        return f"slurm test skipped: `sinfo` not found, no Slurm cluster here; {how}"
    try:
        out = subprocess.run(
            ["sinfo", "--noheader", "--responding", "--states=idle,mixed,allocated", "-o", "%n"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"slurm test skipped: `sinfo` did not answer ({err}); {how}"
    if out.returncode != 0 or not out.stdout.strip():
        detail = out.stderr.strip() or "no responding node"
        return f"slurm test skipped: the cluster does not answer ({detail}); {how}"
    return None


_CHECKS = {"gpu": _cuda_skip_reason, "slurm": _slurm_skip_reason}


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip gpu/slurm tests with a reason. Runs after ``-m``/``-k`` deselection, and each check
    runs only when a selected test carries its marker (no torch import, no sinfo call otherwise)."""
    for marker, check in _CHECKS.items():
        marked = [item for item in items if item.get_closest_marker(marker) is not None]
        reason = check() if marked else None
        if reason is not None:
            for item in marked:
                item.add_marker(pytest.mark.skip(reason=reason))


# -- the fixture ----------------------------------------------------------------------------------
class LawReport:
    """Records law results of one test into the session report (see :func:`law_report`)."""

    def __init__(self, node: pytest.Item) -> None:
        self._node = node
        self._count = 0

    def record(self, result: LawResult, *, grid: StateGrid | None = None) -> LawResult:
        """Add ``result`` (and the grid it was checked on, for figures) to the session report.

        Returns ``result``, so ``law_report.record(laws.ideal_gas(grid)).assert_passed()`` reads
        as one line. Recording does not fail the test: assert on the result for that.
        """
        from thermocheck.results import LawResult

        if not isinstance(result, LawResult):
            raise TypeError(f"law_report.record expects a LawResult, got {type(result).__name__}")
        if grid is not None:
            key = f"{grid.substrate}-{grid.protocol}-d{grid.d}"
            self._node.user_properties.append(
                (GRID_PROPERTY, json.dumps({"key": key, "grid": grid.to_json()})))
        payload = {"index": self._count, "result": result.to_dict()}
        self._node.user_properties.append((RESULT_PROPERTY, json.dumps(payload)))
        self._count += 1
        return result


@pytest.fixture
def law_report(request: pytest.FixtureRequest) -> LawReport:
    """Record :class:`~thermocheck.results.LawResult` objects into the session's law report:
    ``law_report.record(result)``. Written with ``--thermocheck-report=DIR``; works under xdist."""
    return LawReport(request.node)


# -- the session: collect on the controller, write once -------------------------------------------
class ReportSession:
    """Plugin state of one pytest session (held in ``config.stash``, registered as a plugin)."""

    def __init__(self, config: pytest.Config, profile: str | None) -> None:
        self.config = config
        self.profile = profile
        self.is_worker = hasattr(config, "workerinput")
        self.entries: dict[tuple[str, int], dict[str, Any]] = {}
        self.grids: dict[str, str] = {}
        self.written: Path | None = None

    def pytest_report_header(self) -> str:
        target = self.config.getoption("thermocheck_report") or "none (--thermocheck-report=DIR)"
        profile = self.profile or "from --hypothesis-profile"
        return f"thermocheck: hypothesis profile {profile}; law report: {target}"

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Collect recorded results from every phase's report; (test, index) de-duplicates the
        phases. Workers skip this: their reports reach the controller, which collects."""
        if self.is_worker:
            return
        for name, value in report.user_properties:
            if name == RESULT_PROPERTY:
                payload = json.loads(str(value))
                payload["test"] = report.nodeid
                self.entries[(report.nodeid, payload["index"])] = payload
            elif name == GRID_PROPERTY:
                payload = json.loads(str(value))
                key, text, n = payload["key"], payload["grid"], 1
                while self.grids.get(key, text) != text:  # another grid of the same kind
                    n += 1
                    key = f"{payload['key']}-{n}"
                self.grids[key] = text

    def results(self) -> list[LawResult]:
        """The recorded results, ordered by test id and recording order (stable under xdist)."""
        from thermocheck.results import LawResult

        return [LawResult.from_dict(self.entries[k]["result"]) for k in sorted(self.entries)]

    def _target(self) -> Path | None:
        option = self.config.getoption("thermocheck_report")
        if not option:
            return None
        if option == "auto":
            stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
            return self.config.rootpath / "reports" / f"pytest-{stamp}"
        return self.config.invocation_params.dir / option

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        target = self._target()
        if self.is_worker or target is None or not self.entries:
            return
        from thermocheck.report import write_report
        from thermocheck.states import StateGrid

        grids = {key: StateGrid.from_json(text) for key, text in sorted(self.grids.items())}
        args = " ".join(self.config.invocation_params.args)
        workers = getattr(self.config.option, "numprocesses", None)
        extra = {"pytest": {"args": list(self.config.invocation_params.args),
                            "xdist_workers": workers, "hypothesis_profile": self.profile,
                            "tests": [self.entries[k]["test"] for k in sorted(self.entries)]}}
        self.written = write_report(self.results(), target, grids=grids,
                                    command=f"pytest {args}".strip(), extra_meta=extra)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.is_worker or not self.entries:
            return
        from thermocheck.report import format_table, summary_line

        results = self.results()
        terminalreporter.write_sep("=", "thermocheck law results")
        terminalreporter.write_line(format_table(results))
        terminalreporter.write_line(summary_line(results))
        if self.written is not None:
            terminalreporter.write_line(f"law report written to {self.written}")
        else:
            terminalreporter.write_line("no report file written (use --thermocheck-report=DIR)")

