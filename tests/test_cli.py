"""`thermocheck verify`: argument parsing, error paths and exit codes with the pipeline stubbed,
then end to end with the real simulator and laws (a tiny preset, fast; the default run, slow)."""

from __future__ import annotations

import subprocess
import sys
import types
from dataclasses import replace
from pathlib import Path

import pytest

from thermocheck import cli, figures, laws, presets, verify
from thermocheck.errors import InvalidParameterError
from thermocheck.presets import Preset
from thermocheck.report import load_report, write_report
from thermocheck.results import LawResult


def result(verdict: str, law: str = "ideal_gas", protocol: str = "fixed_lr") -> LawResult:
    return LawResult(law=law, protocol=protocol, substrate="isotropic", verdict=verdict,  # type: ignore[arg-type]
                     reason="" if verdict == "passed" else f"synthetic {verdict}")


@pytest.fixture
def stub_verify(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """Replace the pipeline by one that writes a report of chosen verdicts; record its call."""
    call: dict = {"verdicts": ["passed"]}

    def fake(substrate, protocols, preset, out, seed, dim, progress, *, command=None, sweep=None):  # type: ignore[no-untyped-def]
        call.update(substrate=substrate, protocols=tuple(protocols), preset=preset, out=out,
                    seed=seed, dim=dim, progress=progress, command=command)
        call["executor"] = type(sweep["executor"]).__name__
        results = [result(v, protocol=p) for p in protocols for v in call["verdicts"]]
        return results, write_report(results, out or tmp_path / "default", command=command)

    monkeypatch.setattr(verify, "verify", fake)
    return call


@pytest.mark.fast
def test_defaults(stub_verify: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify"]) == 0
    assert stub_verify == {
        "verdicts": ["passed"], "substrate": "isotropic",
        "protocols": ("fixed_sphere", "fixed_elr", "fixed_lr"), "preset": "quick", "out": None,
        "seed": 0, "dim": None, "progress": True, "command": "thermocheck verify",
        "executor": "LocalExecutor",
    }
    out = capsys.readouterr().out
    assert "law        fixed_sphere  fixed_elr  fixed_lr" in out
    assert "3 law results: 3 passed; overall passed (exit code 0)" in out
    assert f"report: {tmp_path / 'default' / 'report.md'}" in out


@pytest.mark.fast
def test_all_options(stub_verify: dict, tmp_path: Path) -> None:
    argv = ["verify", "--protocol", "fixed_elr", "--preset", "paper", "--out", str(tmp_path / "r"),
            "--seed", "7", "--dim", "5", "--no-progress"]
    assert cli.main(argv) == 0
    assert stub_verify["protocols"] == ("fixed_elr",)
    assert (stub_verify["preset"], stub_verify["seed"], stub_verify["dim"]) == ("paper", 7, 5)
    assert stub_verify["progress"] is False
    assert load_report(tmp_path / "r").meta["command"] == "thermocheck " + " ".join(argv)


@pytest.mark.fast
def test_quiet_prints_only_the_path(stub_verify: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify", "-q"]) == 0
    assert stub_verify["progress"] is False
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("report: ")


@pytest.mark.fast
@pytest.mark.parametrize(("verdicts", "code"), [
    (["passed", "not_applicable"], 0),
    (["passed", "failed", "inconclusive"], 1),
    (["passed", "inconclusive"], 3),
])
def test_exit_codes(stub_verify: dict, verdicts: list[str], code: int) -> None:
    stub_verify["verdicts"] = verdicts
    assert cli.main(["verify", "--protocol", "fixed_lr"]) == code


@pytest.mark.fast
@pytest.mark.parametrize(("argv", "message"), [
    ([], "the following arguments are required: COMMAND"),
    (["check"], "invalid choice: 'check'"),
    (["verify", "--protocol", "fixed_volume"], "invalid choice: 'fixed_volume'"),
    (["verify", "--preset", "huge"], "invalid choice: 'huge'"),
    (["verify", "--seed", "-1"], "seed=-1 is invalid: it must be >= 0"),
    (["verify", "--seed", "one"], "seed='one' is not an integer"),
    (["verify", "--dim", "1"], "dim=1 is invalid: it must be >= 2"),
    (["verify", "--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2(argv: list[str], message: str,
                             capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.fast
def test_invalid_values_from_the_pipeline_exit_2(monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise InvalidParameterError("d=3 is invalid for preset 'paper'")

    monkeypatch.setattr(verify, "verify", refuse)
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--preset", "paper"])
    assert exc.value.code == 2
    assert "thermocheck verify: error: d=3 is invalid for preset 'paper'" in capsys.readouterr().err


@pytest.mark.fast
def test_net_substrate_without_cli_verify_exits_2(monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "thermocheck.nets", types.ModuleType("thermocheck.nets"))
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--substrate", "net"])
    assert exc.value.code == 2
    assert "thermocheck.nets has no cli_verify" in capsys.readouterr().err


@pytest.mark.fast
def test_net_substrate_dispatches_to_nets(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def cli_verify(args: object) -> int:
        seen["args"] = args
        return 3

    nets = types.ModuleType("thermocheck.nets")
    nets.cli_verify = cli_verify  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "thermocheck.nets", nets)
    assert cli.main(["verify", "--substrate", "net", "--seed", "4"]) == 3
    assert (seen["args"].substrate, seen["args"].seed) == ("net", 4)


@pytest.mark.fast
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"substrate": "net"}, "substrate='net' is invalid"),
    ({"protocols": ["fixed_volume"]}, "protocol='fixed_volume' is invalid"),
    ({"protocols": []}, "protocols is empty"),
    ({"seed": -1}, "seed=-1 is invalid"),
    ({"dim": 1}, r"dim=1(\.0)? is invalid"),
])
def test_verify_validates_before_running(kwargs: dict, message: str) -> None:
    with pytest.raises(InvalidParameterError, match=message):
        verify.verify(**kwargs)


@pytest.mark.fast
def test_default_out_dir_is_new(tmp_path: Path) -> None:
    first = verify.default_out_dir("quick", root=tmp_path)
    assert first.parent == tmp_path and first.name.startswith("verify-quick-")
    first.mkdir()
    second = verify.default_out_dir("quick", root=tmp_path)
    assert second != first and not second.exists()


@pytest.mark.fast
def test_console_entry_point_help() -> None:
    out = subprocess.run([sys.executable, "-m", "thermocheck.cli", "verify", "--help"],
                         capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    for option in ("--substrate", "--protocol", "--preset", "--out", "--seed", "--dim",
                   "--no-progress", "--quiet"):
        assert option in out.stdout


# -- end to end, with the real simulator and laws -----------------------------------------------
def tiny_preset() -> Preset:
    """3 × 3 points per grid in the quick preset's fast-equilibrating ranges, short runs."""
    quick = presets.get("quick")
    return replace(quick, name="quick",
                   grids={p: {a: v[::2] for a, v in g.items()} for p, g in quick.grids.items()},
                   iterations=40_000, log_every=200, queue_size=200, queue_every=20,
                   entropy_every=5_000, entropy_logs=2)


@pytest.mark.fast
def test_verify_end_to_end_on_a_tiny_preset(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(presets.PRESETS, "quick", tiny_preset())
    code = cli.main(["verify", "--protocol", "fixed_lr", "--out", str(tmp_path), "--seed", "1",
                     "--no-progress"])
    report = load_report(tmp_path)
    assert code == report.exit_code == report.summary["exit_code"]
    assert [(r.law, r.protocol) for r in report.results] == [(law, "fixed_lr") for law in laws.ALL]
    assert all(r.reason for r in report.results if not r.passed)
    assert len(report.grids["fixed_lr"]) == 9
    assert report.meta["seed"] == 1 and report.meta["preset"] == "quick"
    assert report.meta["extra"]["simulation"]["iterations"] == 40_000
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == [
        f"fixed_lr-{kind}.png" for kind in sorted(figures.FIGURES) if kind != "noise"]  # nets only
    out = capsys.readouterr().out
    assert "law                fixed_lr" in out and f"report: {tmp_path / 'report.md'}" in out


@pytest.mark.slow
def test_default_run_passes_every_law_somewhere(tmp_path: Path) -> None:
    """READINGS: in the default run (quick preset, every protocol) every law passes on at least
    one protocol, and no law fails."""
    results, path = verify.verify(out=tmp_path, progress=False)
    report = load_report(path)
    passed = {r.law for r in results if r.passed}
    assert passed == set(laws.ALL), (
        f"laws that pass on no protocol: {sorted(set(laws.ALL) - passed)}; see {path}/report.md")
    assert report.exit_code == 0, "\n".join(r.explain() for r in results if r.verdict == "failed")


def test_compile_modes_match_the_trainers() -> None:
    from thermocheck.nets.train import COMPILE_MODES

    assert cli.COMPILE_MODES == COMPILE_MODES
