"""Measured states: stationarity per series, "nothing measured is not a pass", strict typed input
and the JSON format (thermocheck.states, and how Run in thermocheck.laws uses them)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from thermocheck import laws
from thermocheck.errors import InvalidParameterError, ParameterTypeError, ThermocheckError
from thermocheck.laws._common import STABLE_STEP_DECAY, predicts_stationary
from thermocheck.report import summary_line, write_report
from thermocheck.results import LawFailure, LawResult
from thermocheck.simulator import simulate
from thermocheck.states import SERIES, State, StateGrid
from thermocheck.synthetic import synthetic_grid

pytestmark = pytest.mark.fast

#: Series each law needs stationary (fixed LR): a state unstable in any other is still used.
NEEDS = {"ideal_gas": {"radius", "noise"}, "norm_balance": {"radius", "noise"},
         "maxwell": {"radius", "directions"}}


def lr_grid(n: int = 4) -> StateGrid:
    lr, wd = np.geomspace(1e-3, 1e-1, n), np.geomspace(1e-3, 2e-2, n)
    return synthetic_grid("fixed_lr", 3, grid={"lr": lr, "wd": wd})


def unstable_in(state: State, *series: str) -> State:
    reason = f"drift: the {series[0]} series changes by -5% of its mean over the kept window"
    return state.replace(stationary=False, reason=f"not stationary: {reason}",
                         stationary_series=dict.fromkeys(series, False))


def diverged(state: State) -> State:
    return State(protocol=state.protocol, d=state.d, sigma2=state.sigma2, substrate="isotropic",
                 energy_is_loss=True, **state.hyperparameters, stationary=False, diverged=True,
                 reason="diverged at iteration 12: ‖w‖ left [1e-100, 1e100] or became NaN")


def record(**changes: Any) -> dict[str, Any]:
    rec = lr_grid(2)[0].to_dict()
    rec.update(changes)
    return rec


def write_grid(tmp_path: Path, records: list[dict[str, Any]], version: int = 2) -> Path:
    path = tmp_path / "states.json"
    path.write_text(json.dumps({"schema_version": version, "kind": "thermocheck.StateGrid",
                                "states": records}))
    return path


# -- stationarity per series ----------------------------------------------------------------------
def test_a_series_not_judged_follows_the_overall_flag() -> None:
    s = unstable_in(lr_grid(2)[0], "loss")
    assert s.is_stationary_in(["radius", "noise"]) is False  # not judged: follows stationary=False
    s = s.replace(stationary_series={"loss": False, "radius": True, "noise": True})
    assert s.is_stationary_in(["radius", "noise"]) and not s.is_stationary_in(["loss"])
    assert s.not_stationary_in(SERIES) == ("loss", "directions")


def test_a_diverged_state_is_stationary_in_nothing() -> None:
    s = diverged(lr_grid(2)[0]).replace(stationary_series=dict.fromkeys(SERIES, True) | {
        "loss": False})
    assert s.not_stationary_in(SERIES) == SERIES


@pytest.mark.parametrize("changes, match", [
    ({"stationary_series": {"loss": False}}, "stationary=True contradicts stationary_series"),
    ({"diverged": True}, "a diverged state is never stationary"),
    ({"stationary_series": {"entropy": True}}, "unknown series 'entropy'"),
    ({"stationary_series": {"loss": "false"}}, r"stationary_series\['loss'\]='false'"),
])
def test_contradictory_stationarity_is_refused(changes: dict[str, Any], match: str) -> None:
    with pytest.raises(ThermocheckError, match=match):
        lr_grid(2)[0].replace(**changes)


def test_a_drifting_loss_does_not_block_the_radius_laws() -> None:
    """A net memorising noisy labels: radius and noise stationary, the loss still creeping down.
    V1 and the norm balance decide on it; the laws that need the loss leave it out, once."""
    states = list(lr_grid())
    states[5] = states[5].replace(stationary=False, stationary_series={
        "radius": True, "noise": True, "loss": False, "directions": False},
        reason="not stationary: drift: the loss series changes by -3% of its mean")
    for name in ("ideal_gas", "norm_balance"):
        result = laws.ALL[name](states)
        assert result.passed and not any("excluded" in p for p in result.details), name
        assert result.usable_states == len(states)
    result = laws.first_law(states)
    (left_out,) = [p for p in result.details if "excluded" in p]
    assert left_out["series"] == ["loss", "directions"]
    assert left_out["excluded"].startswith("not stationary in loss, directions: drift")
    text = json.dumps(result.to_dict(), ensure_ascii=False)
    assert "not stationary: not stationary" not in text and text.count("not stationary") >= 1
    assert result.usable_states == len(states) - 1


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_each_law_leaves_out_exactly_the_states_unstable_in_what_it_needs(name: str) -> None:
    for series in SERIES:
        states = list(lr_grid())
        states[6] = unstable_in(states[6], series).replace(
            stationary_series={q: q != series for q in SERIES})
        result = laws.ALL[name](states)
        excluded = [p for p in result.details if "excluded" in p]
        assert len(excluded) == (series in NEEDS[name]), (name, series)


# -- nothing measured is not a pass ---------------------------------------------------------------
def test_nothing_measured_does_not_pass_as_inconclusive() -> None:
    """A grid where every point diverged at ηλ beyond the stable range, or where no state is
    stationary in what the law needs: inconclusive with "nothing measured", and
    ``assert_passed(allow_inconclusive=True)`` refuses it."""
    base = lr_grid(3)
    hot = [diverged(s).replace(lr=s.lr * 1e3, wd=s.wd * 1e3) for s in base]
    assert not any(predicts_stationary(s) for s in hot)
    unstable = [unstable_in(s, "radius") for s in base]
    for states in (hot, unstable):
        for name, law in laws.ALL.items():
            result = law(states)
            if result.verdict == "not_applicable":
                continue
            assert result.verdict == "inconclusive" and not result.measured, name
            assert result.reason.startswith("nothing measured"), result.reason
            with pytest.raises(LawFailure, match="nothing measured"):
                result.assert_passed(allow_inconclusive=True)
            assert result.to_dict()["usable_states"] == 0


def test_too_noisy_stays_acceptable_as_inconclusive() -> None:
    result = LawResult(law="ideal_gas", protocol="fixed_lr", substrate="user",
                       verdict="inconclusive", reason="too noisy to decide", usable_states=4)
    result.assert_passed(allow_inconclusive=True)
    with pytest.raises(LawFailure, match="nothing measured"):
        replace(result, usable_states=0, reason="nothing measured: 4 diverged").assert_passed(
            allow_inconclusive=True)


def test_divergence_where_the_theory_predicts_a_stationary_state_fails() -> None:
    states = list(synthetic_grid("fixed_lr", 3,
                                 grid={"lr": [1e-2, 2e-2, 4e-2], "wd": [1e-2, 2e-2, 4e-2]}))
    states[4] = diverged(states[4])
    assert states[4].lr * states[4].wd <= STABLE_STEP_DECAY["fixed_lr"]
    for name, law in laws.ALL.items():
        result = law(states)
        assert result.verdict in ("failed", "not_applicable"), name
        if result.verdict == "failed":
            assert "diverged at 1 of 9 points where the theory predicts" in result.reason


def test_the_stability_prediction() -> None:
    s = lr_grid(2)[0]
    assert not predicts_stationary(s.replace(energy_is_loss=False))  # no claimed noise: no claim
    elr = State(protocol="fixed_elr", d=3, sigma2=1.0, elr=0.1, wd=0.01, energy_is_loss=True,
                extra={"loss": "linear", "mu": [1.0, 0.0, 0.0]})
    # c/2 = η_eff² (σ²(d − 1) + ‖μ‖²)/2 = 0.015 at the paper's largest η_eff
    assert predicts_stationary(elr)
    assert not predicts_stationary(elr.replace(elr=0.2))  # c/2 = 0.06
    assert not predicts_stationary(elr.replace(extra={"loss": "custom"}))  # no gradient bound
    sphere = State(protocol="fixed_sphere", d=3, sigma2=1.0, elr=50.0, radius=1.0,
                   energy_is_loss=True)
    assert predicts_stationary(sphere)


def test_the_simulator_marks_divergence_and_judges_each_series() -> None:
    res = simulate("fixed_lr", d=3, grid={"lr": [0.05, 50.0], "wd": [0.05]}, iterations=20_000,
                   log_every=100, entropy_logs=2, entropy_every=2000, queue_size=100,
                   queue_every=20)
    ok, bad = res.grid
    assert bad.diverged and not bad.stationary and not predicts_stationary(bad)
    assert set(ok.stationary_series) == set(SERIES)
    assert ok.stationary == all(ok.stationary_series.values())
    assert not laws.ideal_gas(StateGrid([bad])).measured


# -- strict typed input ---------------------------------------------------------------------------
@pytest.mark.parametrize("field, value", [
    ("stationary", "false"), ("energy_is_loss", "no"), ("stationary", 0), ("diverged", "1"),
    ("energy_is_loss", 1),
])
def test_flags_must_be_booleans(tmp_path: Path, field: str, value: Any) -> None:
    with pytest.raises(ParameterTypeError, match=f"{field}={value!r} must be a boolean"):
        State.from_dict(record(**{field: value}))
    path = write_grid(tmp_path, [record(), record(**{field: value, "lr": 0.5})])
    with pytest.raises(ParameterTypeError, match=rf"states\.json: states\[1\]: {field}="):
        StateGrid.load(path)


@pytest.mark.parametrize("field, value", [
    ("mean_radius", -1.0), ("sq_norm", {"value": -0.5, "stderr": 0.1, "n": 3}),
    ("grad_sq", -1e-3), ("sq_norm", 0.0),
])
def test_negative_radii_and_squared_norms_are_refused(field: str, value: Any) -> None:
    with pytest.raises(InvalidParameterError, match=rf"{field}=.* is invalid: {field}"):
        State.from_dict(record(**{field: value}))


def test_a_negative_sphere_radius_is_refused() -> None:
    with pytest.raises(InvalidParameterError, match=r"radius=-1\.0 is invalid"):
        State(protocol="fixed_sphere", d=3, sigma2=1.0, elr=0.1, radius=-1.0)


@pytest.mark.parametrize("field, value", [("lr", "0.1"), ("d", "3"), ("loss", "0.5"),
                                          ("substrate", 3)])
def test_numbers_are_not_parsed_from_strings(field: str, value: Any) -> None:
    with pytest.raises(ParameterTypeError, match=field):
        State.from_dict(record(**{field: value}))


def test_loading_a_report_says_where_the_states_are(tmp_path: Path) -> None:
    grid = lr_grid(3)
    write_report([laws.ideal_gas(grid)], tmp_path, grids={"fixed_lr": grid})
    with pytest.raises(InvalidParameterError, match=r"report\.json: this is a thermocheck report.*"
                                                    "load_report"):
        StateGrid.load(tmp_path / "report.json")


@pytest.mark.parametrize("text, match", [
    ("{not json", "not a JSON state grid"), ("[1, 2]", "JSON object"),
    ('{"schema_version": 7, "states": []}', "schema_version=7"),
    ('{"schema_version": 2, "states": {}}', "'states' must be a list"),
    ('{"schema_version": 2, "states": [{"d": 3}]}', r"states\[0\]: protocol is required"),
])
def test_load_errors_name_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "states.json"
    path.write_text(text)
    with pytest.raises(ThermocheckError, match=match) as info:
        StateGrid.load(path)
    assert str(path) in str(info.value)
    with pytest.raises(InvalidParameterError, match="cannot read the state grid file"):
        StateGrid.load(tmp_path / "missing.json")


def test_the_new_fields_round_trip_and_version_1_still_loads(tmp_path: Path) -> None:
    states = list(lr_grid(2))
    states[0] = unstable_in(states[0], "loss")
    states[1] = diverged(states[1])
    grid = StateGrid(states)
    assert list(StateGrid.from_json(grid.to_json())) == states
    old = [{k: v for k, v in s.to_dict().items() if k not in ("stationary_series", "diverged")}
           for s in lr_grid(2)]
    loaded = StateGrid.load(write_grid(tmp_path, old, version=1))
    assert all(s.stationary_series == {} and not s.diverged for s in loaded)
    assert list(loaded) == list(lr_grid(2))


def test_a_law_result_without_the_count_still_reads() -> None:
    data = laws.ideal_gas(lr_grid(2)).to_dict()
    del data["usable_states"]
    result = LawResult.from_dict(data)
    assert result.usable_states is None and result.measured


def test_the_summary_line_says_when_nothing_was_measured() -> None:
    states = [diverged(s).replace(lr=s.lr * 1e3, wd=s.wd * 1e3) for s in lr_grid(2)]
    line = summary_line([laws.ideal_gas(states), laws.ideal_gas(lr_grid(2))])
    assert "1 with nothing measured (not a pass)" in line
