"""thermocheck's pytest plugin: markers, Hypothesis profiles, and a session report of law results.

Registered through the ``pytest11`` entry point, so it is active in every pytest session wherever
thermocheck is installed. It therefore changes nothing unless asked: it registers markers, options
and the ``law_report`` fixture, and loads a Hypothesis profile only when ``--thermocheck-profile``
is given (as Hypothesis's own plugin does with ``--hypothesis-profile``), so the settings of a
project's own conftest stay as they are. It imports nothing heavy when loaded: numpy and the report
writer are imported only when law results are summarised or written, torch only when
``gpu``-marked tests are selected (to ask for a CUDA device), Hypothesis only to load a profile.

Markers
    ``fast`` (seconds, CPU), ``slow`` (minutes, CPU), ``gpu`` (needs a CUDA device; skipped with a
    reason where none is present), ``slurm`` (needs a Slurm cluster that answers ``sinfo``;
    skipped with a reason otherwise).
Options
    ``--thermocheck-report=DIR`` writes ``report.json``, ``report.md`` and ``figures/`` of every
    law result recorded through the ``law_report`` fixture into ``DIR`` at the end of the session
    (``auto``: a new ``reports/pytest-<UTC time>/`` under the rootdir). Without it no file is
    written; the terminal summary still lists the recorded results.
    ``--thermocheck-profile={ci,dev,thorough}`` loads a Hypothesis profile (:data:`PROFILES`);
    ``--hypothesis-profile`` wins over it. Without either, Hypothesis's settings are left alone.
Fixture
    ``law_report.record(result, grid=None)`` adds a :class:`~thermocheck.results.LawResult` (and
    optionally the grid it came from, for the figures) to the session report and returns it.

Under pytest-xdist each recorded result travels as JSON in the test report's ``user_properties``,
which xdist sends from the worker to the controller; only the controller (or a run without xdist)
collects them in ``pytest_runtest_logreport`` and writes the one report at session finish.
"""

from __future__ import annotations

import hashlib
import json
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

#: The profiles ``--thermocheck-profile`` loads, registered as ``thermocheck-<name>``. Every
#: setting that differs between them is given explicitly: a profile inherits the defaults in force
#: when it is registered, which Hypothesis itself changes when ``$CI`` is set.
PROFILES: dict[str, dict[str, Any]] = {
    "ci": {"max_examples": 50, "derandomize": True, "database": None},
    "dev": {"max_examples": 25, "derandomize": False},
    "thorough": {"max_examples": 1000, "derandomize": False},
}
#: Profiles that suppress Hypothesis's timing-based health check (flaky on shared machines).
_QUIET = ("ci", "thorough")

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
        "--thermocheck-profile", dest="thermocheck_profile", choices=tuple(PROFILES), default=None,
        help="load a Hypothesis profile: ci (derandomized, 50 examples, no deadline), dev (25 "
             "examples), thorough (1000 examples). Default: none (Hypothesis's settings, or "
             "your conftest's profile, stay as they are); --hypothesis-profile wins over it.",
    )


def load_profile(name: str) -> str:
    """Register thermocheck's Hypothesis profiles and load ``thermocheck-<name>``; return that.

    ``name`` is one of :data:`PROFILES`. All profiles have no deadline and print the reproduction
    blob; those in ``_QUIET`` suppress the timing-based health check, the others keep it on.
    """
    from thermocheck.errors import check_choice

    check_choice("name", name, PROFILES)
    from hypothesis import HealthCheck, settings

    for key, options in PROFILES.items():
        suppress = [HealthCheck.too_slow] if key in _QUIET else []
        settings.register_profile(f"thermocheck-{key}", deadline=None, print_blob=True,
                                  suppress_health_check=suppress, **options)
    settings.load_profile(f"thermocheck-{name}")
    return f"thermocheck-{name}"


def _requested_profile(config: pytest.Config) -> str | None:
    """Load the profile ``--thermocheck-profile`` names, unless ``--hypothesis-profile`` was given
    (the more specific option wins) or neither was. Returns the profile loaded, if any."""
    name = config.getoption("thermocheck_profile")
    if name is None or config.getoption("hypothesis_profile", default=None):
        return None
    return load_profile(name)


def pytest_configure(config: pytest.Config) -> None:
    for line in MARKERS.values():
        config.addinivalue_line("markers", line)
    session = ReportSession(config, _requested_profile(config))
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
        from thermocheck.errors import ParameterTypeError
        from thermocheck.results import LawResult

        if not isinstance(result, LawResult):
            raise ParameterTypeError(
                f"result={result!r} is invalid: law_report.record expects a LawResult, got "
                f"{type(result).__name__}"
            )
        payload = {"index": self._count, "result": result.to_dict()}
        if grid is not None:
            key, text = f"{grid.substrate}-{grid.protocol}-d{grid.d}", grid.to_json()
            self._node.user_properties.append(
                (GRID_PROPERTY, json.dumps({"key": key, "grid": text})))
            payload["grid_hash"] = _text_hash(text)
        self._node.user_properties.append((RESULT_PROPERTY, json.dumps(payload)))
        self._count += 1
        return result


def _text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


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
        profile = self.profile or "not set by thermocheck (--thermocheck-profile)"
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
        by_hash = {_text_hash(text): key for key, text in self.grids.items()}
        entries = [self.entries[k] for k in sorted(self.entries)]
        self.written = write_report(
            self.results(), target, grids=grids, command=f"pytest {args}".strip(),
            extra_meta=extra, result_grids=[by_hash.get(e.get("grid_hash", "")) for e in entries],
            result_tests=[e["test"] for e in entries])

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

