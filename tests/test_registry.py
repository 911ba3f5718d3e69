"""The substrate registry: built-in declarations, a user's substrate (registered in process or
through an entry point) run by the one ``verify`` and the command line, and declarations refused."""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterator
from pathlib import Path

import example_substrate
import pytest

from thermocheck import cli, presets, substrates, theory
from thermocheck.deviations import KNOWN_DEVIATIONS, known_deviation
from thermocheck.errors import InvalidParameterError
from thermocheck.report import exit_code, load_report
from thermocheck.verify import verify

pytestmark = pytest.mark.fast


@pytest.fixture
def toy() -> Iterator[substrates.Substrate]:
    """The example substrate, registered for one test."""
    yield substrates.register(example_substrate.TOY)
    substrates.unregister("toy")


def test_built_in_presets_are_the_substrates_own() -> None:
    assert list(substrates.get("isotropic").presets) == list(presets.PRESETS)
    assert substrates.get("isotropic").default_preset == "quick"
    assert list(substrates.get("net").deviations) == [
        k for k in KNOWN_DEVIATIONS if "net" in k.substrates]


def test_net_presets_are_the_network_presets() -> None:
    pytest.importorskip("torch")
    from thermocheck.nets.run import PRESETS

    assert set(substrates.get("net").presets) == set(PRESETS)
    assert substrates.get("net").default_preset == "cpu-tiny"


def test_a_registered_substrate_runs_through_the_one_verify(toy: substrates.Substrate,
                                                             tmp_path: Path) -> None:
    results, path = verify(substrate="toy", preset="small", protocols=["fixed_lr", "fixed_elr"],
                           seed=3, out=tmp_path / "r", progress=False,
                           sweep={"cache": str(tmp_path / "cache")})
    assert [(r.law, r.protocol) for r in results] == [
        (law, p) for p in ("fixed_lr", "fixed_elr") for law, _ in example_substrate.LAWS]
    assert {r.substrate for r in results} == {"toy"}
    assert all(r.verdict == "passed" for r in results), [r.explain() for r in results]
    report = load_report(path)
    assert report.meta["extra"]["substrate"] == "toy" and report.meta["preset"] == "small"
    assert report.meta["extra"]["noise"] == 0.0 and len(report.grids["fixed_lr"]) == 9
    assert report.summary["known_deviations"] == 2  # the SDE form of V1, on each protocol


def test_a_substrates_declared_deviation_is_shown_not_counted(toy: substrates.Substrate,
                                                              tmp_path: Path) -> None:
    results, path = verify(substrate="toy", preset="small", protocols=["fixed_elr"], seed=1,
                           out=tmp_path / "r", progress=False, sigma2_scale=2.0,
                           sweep={"cache": str(tmp_path / "cache")})
    sde, corrected = (r for r in results if r.law == "ideal_gas")
    assert sde.verdict == corrected.verdict == "failed"  # the claimed σ² is wrong: V1 sees it
    assert known_deviation(sde) is example_substrate.SDE_FORM
    assert known_deviation(corrected) is None
    report = load_report(path)
    assert report.summary["known_deviations"] == 1
    assert report.summary["counts"]["failed"] == sum(r.verdict == "failed" for r in results) - 1
    assert report.exit_code == exit_code([r for r in results if r is not sde]) == 1


def test_the_command_line_takes_a_registered_substrate(toy: substrates.Substrate, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["verify", "--substrate", "toy", "--preset", "noisy", "--protocol", "fixed_sphere",
            "--out", str(tmp_path / "r"), "--cache", str(tmp_path / "cache"), "-q"]
    assert cli.main(argv) == load_report(tmp_path / "r").exit_code
    with pytest.raises(SystemExit) as exc:
        cli.main(["verify", "--preset", "small"])
    assert exc.value.code == 2
    assert "it is a preset of substrate 'toy': add --substrate toy" in capsys.readouterr().err


def test_an_entry_point_declares_a_substrate(monkeypatch: pytest.MonkeyPatch) -> None:
    points = [importlib.metadata.EntryPoint("toy", "example_substrate:TOY",
                                            substrates.ENTRY_POINT_GROUP),
              importlib.metadata.EntryPoint("broken", "no_such_module_here:X",
                                            substrates.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(substrates.metadata, "entry_points",
                        lambda group: [p for p in points if p.group == group])
    monkeypatch.setattr(substrates, "_entry_points_loaded", False)
    monkeypatch.setattr(substrates, "_REGISTERED", dict(substrates._REGISTERED))
    with pytest.warns(RuntimeWarning, match="'broken'.*is left out"):
        known = substrates.substrates()
    assert known["toy"] is example_substrate.TOY and "broken" not in known
    assert substrates.preset_owners("noisy") == ["toy"]


def test_a_deprecated_preset_name_warns_and_resolves() -> None:
    net = substrates.get("net")
    with pytest.warns(DeprecationWarning, match="'quick' of substrate 'net' is deprecated"):
        assert substrates.resolve_preset(net, "quick") == "cpu-tiny"
    assert substrates.resolve_preset(net, None) == "cpu-tiny"


@pytest.mark.parametrize(("fields", "message"), [
    ({"name": "two words"}, "name='two words' is invalid"),
    ({"presets": {}}, "has no preset"),
    ({"plan": "no_colon"}, "plan='no_colon' is invalid"),
    ({"laws": ":f"}, "laws=':f' is invalid"),
    ({"aliases": {"old": "missing"}}, r"name presets it does not have: \['missing'\]"),
])
def test_a_malformed_declaration_is_refused(fields: dict, message: str) -> None:
    base = {"name": "toy2", "summary": "", "presets": {"p": ""}, "plan": "m:f", "laws": "m:g"}
    with pytest.raises(InvalidParameterError, match=message):
        substrates.Substrate(**{**base, **fields})


def test_an_unknown_substrate_names_the_known_ones() -> None:
    with pytest.raises(InvalidParameterError, match=r"substrate='gas' is invalid: choose one of "
                                                    r"\('isotropic', 'net'"):
        substrates.get("gas")


def test_every_protocol_by_default(toy: substrates.Substrate) -> None:
    plan = toy.planner()("small", None, seed=0, dim=None)
    assert [s.protocol for s in plan.specs] == list(theory.PROTOCOLS)
