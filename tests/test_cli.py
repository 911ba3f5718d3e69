"""`thermocheck verify`: argument parsing, error paths and exit codes with the pipeline stubbed,
then end to end with the real simulator and laws (a tiny preset, fast; the default run, slow)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from thermocheck import cli, figures, laws, presets, sweep, verify
from thermocheck import substrates as thermocheck_substrates
from thermocheck.errors import InvalidParameterError
from thermocheck.presets import Preset
from thermocheck.report import load_report, write_report
from thermocheck.results import LawResult
from thermocheck.sweep.shards import ShardTask


def result(verdict: str, law: str = "ideal_gas", protocol: str = "fixed_lr") -> LawResult:
    return LawResult(law=law, protocol=protocol, substrate="isotropic", verdict=verdict,  # type: ignore[arg-type]
                     reason="" if verdict == "passed" else f"synthetic {verdict}")


@pytest.fixture
def stub_verify(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> dict:
    """Replace the pipeline by one that writes a report of chosen verdicts; record its call."""
    call: dict = {"verdicts": ["passed"]}

    def fake(*, substrate, preset, protocols, seed, dim, out, progress, command, sweep,
             **options):
        call.update(substrate=substrate, protocols=protocols, preset=preset, out=out,
                    seed=seed, dim=dim, progress=progress, command=command, options=options)
        call["executor"] = type(sweep["executor"]).__name__
        results = [result(v, protocol=p) for p in protocols or ("fixed_sphere", "fixed_elr",
                                                                  "fixed_lr")
                   for v in call["verdicts"]]
        return results, write_report(results, out or tmp_path / "default", command=command)

    monkeypatch.setattr(verify, "verify", fake)
    return call


@pytest.mark.fast
def test_defaults(stub_verify: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["verify"]) == 0
    assert stub_verify == {
        "verdicts": ["passed"], "substrate": "isotropic", "protocols": None, "preset": "quick",
        "out": None, "seed": 0, "dim": None, "progress": True, "command": "thermocheck verify",
        "executor": "LocalExecutor", "options": {"momentum": 0.0, "nesterov": False},
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
    assert stub_verify["protocols"] == ["fixed_elr"]
    assert (stub_verify["preset"], stub_verify["seed"], stub_verify["dim"]) == ("paper", 7, 5)
    assert stub_verify["progress"] is False
    assert load_report(tmp_path / "r").meta["command"] == "thermocheck " + " ".join(argv)


@pytest.mark.fast
@pytest.mark.parametrize(("verdicts", "line"), [
    (["passed"], "exit 0 (every applicable law passed): 3 law results: 3 passed; report: "),
    (["passed", "failed"],
     "exit 1 (a law failed): 6 law results: 3 passed, 3 failed; report: "),
    (["inconclusive"], "exit 3 (no law failed, but some were inconclusive): 3 law results: "
                       "3 inconclusive; report: "),
])
def test_quiet_prints_one_line_with_the_verdict(
    stub_verify: dict, capsys: pytest.CaptureFixture[str], verdicts: list[str], line: str
) -> None:
    stub_verify["verdicts"] = verdicts
    assert cli.main(["verify", "-q"]) == {"passed": 0, "failed": 1}.get(verdicts[-1], 3)
    assert stub_verify["progress"] is False
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith(line) and out[0].endswith("report.md")


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
    (["verify", "--momentum", "1"], "--momentum=1 is invalid: it must be in [0, 1)"),
    (["verify", "--momentum", "x"], "--momentum='x' must be a number in [0, 1)"),
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
def test_net_substrate_without_nets_exits_2(monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "thermocheck.nets.run", None)  # import raises ImportError
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--substrate", "net", "--out", "unused"])
    assert exc.value.code == 2
    assert "substrate='net' needs thermocheck.nets.run" in capsys.readouterr().err


@pytest.mark.fast
def test_net_substrate_goes_through_the_one_verify(stub_verify: dict) -> None:
    assert cli.main(["verify", "--substrate", "net", "--seed", "4", "--iters", "50",
                     "--protocol", "fixed_lr"]) == 0
    assert (stub_verify["substrate"], stub_verify["preset"], stub_verify["seed"]) == (
        "net", "cpu-tiny", 4)  # the substrate's own default preset
    assert stub_verify["protocols"] == ["fixed_lr"]
    assert stub_verify["options"] == {"model": None, "dataset": None, "data_dir": None,
                                      "device": None, "iters": 50, "compile": None}


@pytest.mark.fast
@pytest.mark.parametrize(("argv", "message"), [
    (["verify", "--preset", "gpu-short"],
     "preset='gpu-short' is invalid for substrate 'isotropic': choose one of ('quick', 'paper'); "
     "it is a preset of substrate 'net': add --substrate net"),
    (["verify", "--substrate", "isotropic", "--preset", "cpu-tiny"], "add --substrate net"),
    (["verify", "--substrate", "net", "--momentum", "0.5"],
     "--momentum is an option of --substrate isotropic, not of --substrate net"),
    (["verify", "--model", "resnet18"],
     "--model is an option of --substrate net, not of --substrate isotropic"),
])
def test_another_substrates_preset_or_option_is_refused_at_parse_time(
        argv: list[str], message: str, no_work: list[str], stub_verify: dict,
        capsys: pytest.CaptureFixture[str]) -> None:
    stub_verify["verdicts"] = ["failed"]
    assert message in _usage_error(argv, capsys)
    assert "substrate" not in stub_verify and not no_work  # refused before verify was called


@pytest.mark.fast
def test_net_quick_is_a_deprecated_alias_of_cpu_tiny(stub_verify: dict,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.warns(DeprecationWarning, match="'quick' of substrate 'net' is deprecated"):
        assert cli.main(["verify", "--substrate", "net", "--preset", "quick"]) == 0
    assert stub_verify["preset"] == "cpu-tiny"
    assert "--preset quick is deprecated for --substrate net: use --preset cpu-tiny" in (
        capsys.readouterr().err)


@pytest.mark.fast
def test_help_lists_every_substrates_presets(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["verify", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name, substrate in thermocheck_substrates.substrates().items():
        assert f"{name}: {' '.join(substrate.summary.split())}" in help_text
        for preset in substrate.presets:
            assert preset in help_text


@pytest.mark.fast
@pytest.mark.parametrize(("kwargs", "message"), [
    ({"substrate": "gas"}, "substrate='gas' is invalid"),
    ({"preset": "gpu-short"}, "it is a preset of substrate 'net'"),
    ({"model": "convnet"}, r"options \['model'\] are not options of substrate='isotropic' "
                           r"\(see substrate 'net'\)"),
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


# -- exit codes 2 (before any work) and 4 (during the run) ----------------------------------------
@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record any sweep that starts: a usage error must be found before one does."""
    started: list[str] = []

    def tripwire(*args: object, **kwargs: object) -> None:
        started.append("run_sweeps")
        raise AssertionError("the sweep started")

    monkeypatch.setattr(sweep, "run_sweeps", tripwire)
    return started


def _usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run the command, expect exit code 2, return its one line on stderr."""
    with pytest.raises(SystemExit) as exc:
        cli.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


@pytest.mark.fast
def test_out_an_existing_file_exits_2_before_any_simulation(
        tmp_path: Path, no_work: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "taken").write_text("not a folder")
    line = _usage_error(["verify", "--out", str(tmp_path / "taken"), "--cache",
                         str(tmp_path / "cache")], capsys)
    assert "out=" in line and "is a file" in line
    assert not no_work and (tmp_path / "taken").read_text() == "not a folder"


@pytest.mark.fast
def test_unwritable_cache_exits_2_before_any_simulation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    started: list[str] = []
    monkeypatch.setattr(ShardTask, "__call__", lambda self: started.append("shard"))
    (tmp_path / "file").write_text("")
    line = _usage_error(["verify", "--out", str(tmp_path / "r"), "--cache",
                         str(tmp_path / "file" / "cache")], capsys)
    assert "cache=" in line and "cannot be created" in line
    assert not started and not (tmp_path / "r").exists()


@pytest.mark.fast
def test_slurm_without_submitit_exits_2_before_any_work(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "submitit", None)  # import submitit raises ImportError
    line = _usage_error(["verify", "--executor", "slurm", "--out", str(tmp_path / "r"),
                         "--cache", str(tmp_path / "cache")], capsys)
    assert "--executor slurm needs submitit" in line and "thermocheck[slurm]" in line
    assert not (tmp_path / "cache").exists() and not (tmp_path / "r").exists()


@pytest.mark.fast
def test_internal_error_mid_run_exits_4_with_the_cause_in_report_md(
        stub_verify: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ZeroDivisionError("simulated internal error")

    write_report([result("passed")], tmp_path / "r")  # an earlier run's report, now stale
    monkeypatch.setattr(verify, "verify", broken)
    assert cli.main(["verify", "--out", str(tmp_path / "r")]) == 4
    captured = capsys.readouterr()
    assert "ZeroDivisionError: simulated internal error" in captured.err
    assert f"report: {tmp_path / 'r' / 'report.md'}" in captured.out
    md = (tmp_path / "r" / "report.md").read_text()
    assert "ERROR" in md and "exit code 4" in md and "ZeroDivisionError" in md
    assert "Traceback" in md and "thermocheck verify --out" in md
    assert not (tmp_path / "r" / "report.json").exists()  # no stale complete report


@pytest.mark.fast
def test_internal_error_without_out_writes_a_new_report_folder(
        stub_verify: dict, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(verify, "verify", broken)
    monkeypatch.chdir(tmp_path)
    assert cli.main(["verify", "-q"]) == 4
    folder, = (tmp_path / "reports").iterdir()
    assert folder.name.startswith("verify-quick-")
    assert "No space left on device" in (folder / "report.md").read_text()


@pytest.mark.fast
def test_a_crashed_shard_exits_4_and_the_report_says_why(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def crash(self: ShardTask) -> None:
        raise RuntimeError("worker killed by signal 9")

    monkeypatch.setitem(presets.PRESETS, "quick", tiny_preset())
    monkeypatch.setattr(ShardTask, "__call__", crash)
    code = cli.main(["verify", "--protocol", "fixed_lr", "--out", str(tmp_path / "r"),
                     "--cache", str(tmp_path / "cache"), "--no-progress"])
    assert code == 4
    assert "worker killed by signal 9" in capsys.readouterr().err
    report = load_report(tmp_path / "r")
    assert report.exit_code == report.summary["exit_code"] == 4
    assert report.summary["verdict"] == "error"
    assert any("worker killed by signal 9" in e for e in report.summary["errors"])
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Errors" in md and "worker killed by signal 9" in md


def net_results(sde_verdict: str) -> list[LawResult]:
    """What a network run reports: V1 in both forms, the norm balance."""
    def net(law: str, verdict: str, **options: object) -> LawResult:
        return LawResult(law=law, protocol="fixed_lr", substrate="net", verdict=verdict,  # type: ignore[arg-type]
                         reason="" if verdict == "passed" else f"synthetic {verdict}",
                         options=options)
    return [net("ideal_gas", sde_verdict, corrected=False),
            net("ideal_gas", "passed", corrected=True), net("norm_balance", "passed")]


@pytest.mark.fast
def test_net_known_deviation_is_not_counted_as_failed(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    def fake(**kwargs: object) -> tuple[list[LawResult], Path]:
        results = net_results("failed")
        return results, write_report(results, tmp_path)

    monkeypatch.setattr(verify, "verify", fake)
    assert cli.main(["verify", "--substrate", "net", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "ideal_gas (SDE form)  ≈ known deviation" in out
    assert "0 failed" not in out and "1 known deviation(s) (not counted)" in out
    assert "overall passed (exit code 0)" in out
    report = load_report(tmp_path)
    assert report.exit_code == 0
    assert report.summary["counts"]["failed"] == 0 and report.summary["known_deviations"] == 1


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
    grid_figures = sorted(p.name for p in (tmp_path / "figures").iterdir()
                          if not p.name.startswith("law-"))  # law-*: one per result
    assert grid_figures == [
        f"fixed_lr-{kind}.png" for kind in sorted(figures.FIGURES) if kind != "noise"]  # nets only
    out = capsys.readouterr().out
    assert "law                fixed_lr" in out and f"report: {tmp_path / 'report.md'}" in out


@pytest.mark.slow
def test_default_run_passes_every_law_somewhere(tmp_path: Path) -> None:
    """in the default run (quick preset, every protocol) every law passes on at least
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
