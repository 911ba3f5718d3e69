"""SGD with momentum (heavy ball and Nesterov, as ``torch.optim.SGD``) and AdamW states.

The optimizer record of a state, the momentum-aware laws (η → η/(1 − β) to leading order), the
simulator's velocity, and the momentum mutants each caught by a momentum-aware law.
"""

from __future__ import annotations

import json
import math
from statistics import NormalDist
from typing import Any

import numpy as np
import pytest

from thermocheck import cli, laws, theory
from thermocheck import verify as verify_module
from thermocheck.errors import GridError, InvalidParameterError, ParameterTypeError
from thermocheck.laws._common import momentum_lag, step_decay
from thermocheck.optimizers import PLAIN_SGD, adamw_equilibrium, check_optimizer, momentum_factor
from thermocheck.report import write_report
from thermocheck.simulator import simulate
from thermocheck.simulator.mutants import MUTANTS, simulate_mutant
from thermocheck.states import Estimate, State, StateGrid

pytestmark = pytest.mark.fast

BETA = 0.9
#: 2 × 2 grids whose equivalent rates η/(1 − β) span [0.01, 0.1] (fixed ELR, LR), λ ∈ [0.01, 0.1].
GRIDS: dict[str, dict[str, Any]] = {
    "fixed_elr": {"elr": (1 - BETA) * np.array([0.01, 0.1]), "wd": [0.01, 0.1]},
    "fixed_lr": {"lr": (1 - BETA) * np.array([0.01, 0.1]), "wd": [0.01, 0.1]},
}
RUN: dict[str, Any] = {"d": 3, "iterations": 200_000, "log_every": 200, "entropy_logs": 0,
                       "seed": 3}
CHECKED = ("ideal_gas", "norm_balance")


def verdicts(grid: StateGrid) -> dict[str, str]:
    return {name: laws.ALL[name](grid).verdict for name in CHECKED}


# -- the optimizer record --------------------------------------------------------------------------
def test_optimizer_defaults_and_validation() -> None:
    assert check_optimizer(None) == PLAIN_SGD
    assert check_optimizer({"name": "sgd", "momentum": 0.9})["nesterov"] is False
    adamw = check_optimizer({"name": "adamw"})
    assert adamw["betas"] == [0.9, 0.999] and adamw["eps"] == 1e-8
    with pytest.raises(InvalidParameterError, match=r"momentum=1.0 is invalid: .* \[0, 1\)"):
        check_optimizer({"name": "sgd", "momentum": 1.0})
    with pytest.raises(InvalidParameterError, match=r"unknown keys \['dampening'\]"):
        check_optimizer({"name": "sgd", "momentum": 0.9, "dampening": 0.1})
    with pytest.raises(InvalidParameterError, match=r"nesterov=True needs momentum > 0"):
        check_optimizer({"name": "sgd", "nesterov": True})
    with pytest.raises(InvalidParameterError, match=r"name='adam' is invalid"):
        check_optimizer({"name": "adam"})
    with pytest.raises(ParameterTypeError, match=r"momentum='0.9' must be a real number"):
        check_optimizer({"name": "sgd", "momentum": "0.9"})
    with pytest.raises(InvalidParameterError, match=r"betas=.* must be two numbers"):
        check_optimizer({"name": "adamw", "betas": [0.9]})


def _state(**changes: Any) -> State:
    base = {"protocol": "fixed_lr", "d": 3, "sigma2": Estimate(1.0), "lr": 0.01, "wd": 0.01,
            "sq_norm": Estimate(1.0, 0.01, 50)}
    return State(**{**base, **changes})


def test_states_record_the_optimizer_and_round_trip() -> None:
    state = _state(optimizer={"name": "sgd", "momentum": 0.9, "nesterov": True})
    grid = StateGrid([state])
    again = StateGrid.from_json(grid.to_json())
    assert again[0].optimizer == {"name": "sgd", "momentum": 0.9, "nesterov": True}
    assert again[0] == state
    old = json.loads(grid.to_json())
    old["schema_version"] = 2
    del old["states"][0]["optimizer"]
    assert StateGrid.from_json(json.dumps(old))[0].optimizer == PLAIN_SGD
    with pytest.raises(GridError, match="one optimizer"):
        StateGrid([state, _state(lr=0.02)])


def test_equivalent_rates_and_temperature() -> None:
    state = _state(optimizer={"name": "sgd", "momentum": 0.75})
    assert state.equivalent_lr == pytest.approx(0.04)
    plain = _state(lr=0.04)
    assert state.temperature == pytest.approx(plain.temperature, rel=1e-12)
    assert momentum_factor(0.75) == 4.0
    assert momentum_lag(plain) == 0.0 and momentum_lag(state) > 0


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9, 0.99])
@pytest.mark.parametrize("protocol", ["fixed_lr", "fixed_elr"])
def test_ideal_gas_uses_the_equivalent_rate(beta: float, protocol: str) -> None:
    """Noise-free states at the momentum state equation pass; claiming no momentum fails."""
    rate = 1e-3 * (1 - beta)  # the equivalent rate is 1e-3 at every β
    hp = {"lr": rate, "wd": 1e-2} if protocol == "fixed_lr" else {"elr": rate, "wd": 1e-2}
    rates = {k: v / (1 - beta) for k, v in hp.items() if k != "wd"}
    r = theory.stationary_radius(protocol, 3, 1.0, wd=hp["wd"], **rates)
    optimizer = {"name": "sgd", "momentum": beta}
    state = State(protocol=protocol, d=3, sigma2=Estimate(1.0), sq_norm=Estimate(r**2, 1e-4, 50),
                  optimizer=optimizer, **hp)
    assert laws.ideal_gas(state, corrected=False).verdict == "passed"
    if beta >= 0.5:
        plain = state.replace(optimizer=PLAIN_SGD)
        assert laws.ideal_gas(plain, corrected=False).verdict == "failed"


#: Equivalent rate 0.1 under fixed ELR, where the velocity's memory term matters (measured, seed 1,
#: 3·10⁵ iterations: heavy ball β = 0.5 lies −3.2 % from the trace without it and −0.1 % with it,
#: standard error 0.3 %; Nesterov β = 0.9: −9 % and +0.8 %, standard error 0.8 %).
MEMORY_CASES = [(0.5, False), (0.9, True)]


@pytest.mark.parametrize(("beta", "nesterov"), MEMORY_CASES)
def test_the_velocitys_memory_closes_the_momentum_state_equation(beta: float,
                                                                 nesterov: bool) -> None:
    """V1's corrected momentum trace ``Tr Σ_w̄ + E‖∇L(w̄)‖² + 2c E[‖w‖²⟨v, g⟩]`` (c = β heavy
    ball, β² Nesterov) meets the measured E‖w‖² within the Bonferroni statistics and the derived
    O(η'λ) terms (:func:`step_decay`: the Jensen gap and the ``ηλ²/(1 + β)`` term), without the
    momentum allowance ε_β."""
    grid = {"elr": (1 - beta) * np.array([0.1]), "wd": [0.01, 0.1]}
    result = simulate("fixed_elr", grid=grid, momentum=beta, nesterov=nesterov, d=3,
                      iterations=300_000, log_every=500, entropy_logs=0, seed=1)
    assert all("velocity_grad" in s.extra for s in result.grid)
    checks = laws.ideal_gas(result.grid).details
    z = NormalDist().inv_cdf(1 - 1e-3 / (2 * len(checks)))
    for state, check in zip(result.grid, checks, strict=True):
        bound = z * check["stderr"] + step_decay(state) * check["expected"]
        assert abs(check["observed"] - check["expected"]) <= bound, check


def test_sgd_laws_are_not_applicable_to_adamw() -> None:
    state = _state(optimizer={"name": "adamw"}, norm_balance=Estimate(0.0, 1e-3, 50))
    for name, law in laws.ALL.items():
        result = law(state)
        assert result.verdict == "not_applicable", name
        assert "AdamW" in result.reason


def test_adamw_equilibrium_formula() -> None:
    eq = adamw_equilibrium(lr=1e-3, wd=0.1, coordinates=1000, beta1=0.9)
    assert eq.sq_norm == pytest.approx(1e-3 * 1000 / 0.2)
    assert eq.angular_update == pytest.approx(math.sqrt(2e-4 * 0.1 / 1.9))
    with pytest.raises(InvalidParameterError, match="coordinates=0 must be an integer >= 1"):
        adamw_equilibrium(lr=1e-3, wd=0.1, coordinates=0)


# -- the simulator with momentum -------------------------------------------------------------------
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("protocol", sorted(GRIDS))
def test_simulator_with_momentum_passes(protocol: str, nesterov: bool) -> None:
    result = simulate(protocol, grid=GRIDS[protocol], momentum=BETA, nesterov=nesterov, **RUN)
    assert result.grid.optimizer == {"name": "sgd", "momentum": BETA, "nesterov": nesterov}
    assert verdicts(result.grid) == dict.fromkeys(CHECKED, "passed")


def test_sphere_lambda_eff_with_momentum() -> None:
    grid = {"elr": (1 - BETA) * np.array([0.01, 0.03]), "radius": [0.5, 2.0]}
    result = simulate("fixed_sphere", grid=grid, momentum=BETA, **RUN)
    assert laws.ideal_gas(result.grid).verdict == "passed"
    plain = StateGrid(s.replace(optimizer=PLAIN_SGD) for s in result.grid)
    assert laws.ideal_gas(plain).verdict == "failed"


MOMENTUM_CASES = [(m.name, p) for m in MUTANTS.values() if m.needs_momentum for p in m.protocols]


@pytest.mark.parametrize(("name", "protocol"), MOMENTUM_CASES)
def test_each_momentum_mutant_is_caught(name: str, protocol: str) -> None:
    result = simulate_mutant(name, protocol, grid=GRIDS[protocol], momentum=BETA, **RUN)
    caught_by = MUTANTS[name].caught_by[protocol]
    got = verdicts(result.grid)
    # an undamped velocity may leave no point stationary: then "nothing measured", never passed
    allowed = {"failed"} if any(s.stationary for s in result.grid) else {"failed",
                                                                          "inconclusive"}
    assert {got[law] for law in caught_by} <= allowed, got


def test_momentum_mutants_need_momentum() -> None:
    with pytest.raises(InvalidParameterError, match="pass momentum=β"):
        simulate_mutant("plain_lr_claimed", "fixed_lr", grid=GRIDS["fixed_lr"], **RUN)


def test_cli_passes_momentum_to_verify(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    seen: dict[str, Any] = {}

    def fake(*args: Any, momentum: float = 0.0, nesterov: bool = False, **kw: Any) -> Any:
        seen.update(momentum=momentum, nesterov=nesterov)
        results = [laws.ideal_gas(_state())]
        return results, write_report(results, tmp_path / "r")

    monkeypatch.setattr(verify_module, "verify", fake)
    cli.main(["verify", "--momentum", "0.9", "--nesterov", "--quiet"])
    assert seen == {"momentum": 0.9, "nesterov": True}


def test_verify_refuses_nesterov_without_momentum(tmp_path: Any) -> None:
    with pytest.raises(InvalidParameterError, match="nesterov=True needs momentum > 0"):
        verify_module.verify(out=tmp_path / "r", nesterov=True)
    assert not (tmp_path / "r").exists()


def test_every_law_passes_with_momentum_and_fails_on_a_momentum_mutant() -> None:
    """Fixed ELR, β = 0.9, a 3 × 3 grid of the quick preset's ranges at the equivalent rates:
    the correct simulator passes every law, and a velocity that is never decayed (v ← v + g + λw)
    fails every one of them, V3 and the adiabat included (measured: every law failed; the other
    momentum mutants leave V3 passing, as a constant factor on the step leaves its slopes)."""
    from thermocheck import presets
    from thermocheck.simulator import simulate

    axes = presets.get("quick").options("fixed_elr")["grid"]
    grid = {"elr": np.asarray(axes["elr"])[::2] * (1 - BETA) ** 1.5,
            "wd": np.asarray(axes["wd"])[::2]}
    run = {"d": 3, "iterations": 1_000_000, "log_every": 200, "queue_size": 1000,
           "queue_every": 100, "entropy_every": 50_000, "entropy_logs": 8, "seed": 1,
           "momentum": BETA}
    correct = simulate("fixed_elr", grid=grid, **run).grid
    broken = simulate_mutant("undecayed_velocity", "fixed_elr", grid=grid, **run).grid
    for name, law in laws.ALL.items():
        assert law(correct).verdict == "passed", name
        assert law(broken).verdict == "failed", name
