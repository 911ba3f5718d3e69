"""AdamW on the simulator and its norm-equilibrium law (Kosson et al., 2024, not the ideal-gas
paper): the per-point moments, the measured angular update, the law on correct and coupled-decay
substrates, and the other laws' not_applicable verdicts."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from thermocheck import laws
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._common import ADAMW_REASON
from thermocheck.simulator import simulate
from thermocheck.simulator.losses import LinearLoss
from thermocheck.simulator.mutants import MUTANTS, simulate_mutant
from thermocheck.states import Estimate, State

pytestmark = pytest.mark.fast

D = 10
#: μ off the coordinate axes: the random-walk model assumes an update orthogonal to w, which
#: AdamW's per-coordinate scaling breaks when w̄ lies on an axis (docs/optimizers.md).
RUN: dict[str, Any] = {"d": D, "grid": {"lr": [1e-3, 1e-2], "wd": [3e-2, 1e-1]},
                       "iterations": 200_000, "log_every": 1000, "entropy_logs": 0, "seed": 5,
                       "loss": LinearLoss(mu=np.ones(D) / np.sqrt(D)), "adamw": True}


@pytest.fixture(scope="module")
def correct() -> Any:
    return simulate("fixed_lr", **RUN)


def test_adamw_states_record_the_optimizer_and_the_angular_update(correct: Any) -> None:
    for state in correct.grid:
        assert state.optimizer == {"name": "adamw", "betas": [0.9, 0.999], "eps": 1e-8}
        assert state.norm_balance is None and state.lambda_eff is None
        angle = Estimate.coerce("angle", state.extra["angular_update"])
        assert 0 < angle.value < 0.1 and angle.stderr > 0
        # the normalised update of a noise-dominated gradient: E u_i² = (1 − β1)/(1 + β1)
        walk = state.extra["update_sq"]["value"] / D
        assert walk == pytest.approx(0.1 / 1.9, rel=0.05)


def test_norm_equilibrium_passes_on_adamw_and_every_sgd_law_is_not_applicable(
        correct: Any) -> None:
    result = laws.norm_equilibrium(correct.grid)
    assert result.verdict == "passed", result.reason
    quantities = {c["quantity"] for c in result.details if c.get("ok") is not None}
    assert quantities == {"E‖w‖²", "angular update per step"}
    assert any("Kosson" in n for n in result.notes)
    for name, law in laws.ALL.items():
        other = law(correct.grid)
        assert other.verdict == "not_applicable" and other.reason == ADAMW_REASON, name


def test_coupled_decay_mutant_is_caught() -> None:
    assert MUTANTS["coupled_decay"].caught_by == {"fixed_lr": ("norm_equilibrium",)}
    result = laws.norm_equilibrium(simulate_mutant("coupled_decay", "fixed_lr", **RUN).grid)
    assert result.verdict == "failed", result.reason
    with pytest.raises(InvalidParameterError, match="defect of AdamW's step"):
        simulate_mutant("coupled_decay", "fixed_lr", **{**RUN, "adamw": None})


def test_norm_equilibrium_is_not_applicable_to_sgd_and_other_protocols() -> None:
    sgd = State(protocol="fixed_lr", d=3, sigma2=Estimate(1.0), lr=0.01, wd=0.1,
                sq_norm=Estimate(1.0, 0.01, 50))
    result = laws.norm_equilibrium(sgd)
    assert result.verdict == "not_applicable" and "trained with SGD" in result.reason
    elr = State(protocol="fixed_elr", d=3, sigma2=Estimate(1.0), elr=0.01, wd=0.1,
                sq_norm=Estimate(1.0, 0.01, 50), optimizer={"name": "adamw"})
    result = laws.norm_equilibrium(elr)
    assert result.verdict == "not_applicable" and "fixed_lr" in result.reason


def test_norm_equilibrium_fails_a_norm_off_the_prediction_and_passes_it() -> None:
    """Noise-free states: exactly at ηd/(2λ) passes, 30% off fails (the allowance at d = 10,
    ηλ = 1e-3, β1 = 0.9 is 0.3·(1/3 + 0.01) ≈ 10%)."""
    def state(factor: float) -> State:
        return State(protocol="fixed_lr", d=D, sigma2=Estimate(1.0), lr=0.01, wd=0.1,
                     sq_norm=Estimate(factor * 0.01 * D / 0.2, 1e-4, 50),
                     optimizer={"name": "adamw"})
    assert laws.norm_equilibrium(state(1.0)).verdict == "passed"
    assert laws.norm_equilibrium(state(1.3)).verdict == "failed"


@pytest.mark.parametrize(("options", "match"), [
    ({"adamw": True, "protocol": "fixed_elr", "grid": {"elr": [0.01], "wd": [0.1]}},
     "only fixed_lr"),
    ({"adamw": True, "momentum": 0.9}, "AdamW takes betas"),
    ({"adamw": "yes"}, "must be True or a mapping"),
    ({"adamw": {"betas": (0.9, 1.0)}}, r"betas\[1\]=1.0 is invalid"),
    ({"adamw": {"amsgrad": True}}, r"unknown keys \['amsgrad'\]"),
])
def test_simulate_refuses_adamw_options_it_does_not_model(options: dict[str, Any],
                                                          match: str) -> None:
    kw = {"protocol": "fixed_lr", "d": 3, "grid": {"lr": [0.01], "wd": [0.1]},
          "iterations": 1000, "log_every": 10, "entropy_logs": 0, **options}
    with pytest.raises(InvalidParameterError, match=match):
        simulate(kw.pop("protocol"), **kw)
