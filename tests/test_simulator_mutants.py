"""Each broken simulator is caught by the laws that its registry entry names.

A mutant reports the claimed hyperparameters and σ², like the correct simulator; the laws must
see the difference. The correct simulator passes the same laws on the same grid (control).
"""

from __future__ import annotations

from typing import Any

import pytest

from thermocheck import laws, theory
from thermocheck.errors import InvalidParameterError
from thermocheck.laws._common import predicts_stationary
from thermocheck.simulator import SimulationResult, simulate
from thermocheck.simulator.mutants import MUTANTS, simulate_mutant

pytestmark = pytest.mark.fast

GRIDS: dict[str, dict[str, list[float]]] = {
    "fixed_sphere": {"elr": [0.02, 0.05], "radius": [0.5, 2.0]},
    "fixed_elr": {"elr": [0.02, 0.05], "wd": [0.02, 0.05]},
    "fixed_lr": {"lr": [0.02, 0.05], "wd": [0.02, 0.05]},
}
RUN: dict[str, Any] = {"d": 3, "iterations": 100_000, "log_every": 100, "entropy_logs": 0}
CHECKED = ("ideal_gas", "norm_balance", "vmf_closed_form")
CASES = [(m.name, p) for m in MUTANTS.values() if not (m.needs_momentum or m.needs_adamw)
         for p in m.protocols]


def verdicts(result: SimulationResult) -> dict[str, str]:
    return {name: laws.ALL[name](result.grid).verdict for name in CHECKED}


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_the_correct_simulator_passes(protocol: str) -> None:
    got = verdicts(simulate(protocol, grid=GRIDS[protocol], **RUN))
    expected = {n: "not_applicable" if (n, protocol) == ("norm_balance", "fixed_sphere")
                else "passed" for n in CHECKED}
    assert got == expected


@pytest.mark.parametrize(("name", "protocol"), CASES)
def test_each_mutant_is_caught(name: str, protocol: str) -> None:
    result = simulate_mutant(name, protocol, grid=GRIDS[protocol], **RUN)
    assert all(s.extra["mutant"] == name for s in result.grid)
    caught_by = MUTANTS[name].caught_by[protocol]
    if "stationarity" in caught_by:
        # nothing stationary: "nothing measured", or a failure where the run diverged although
        # the theory predicts a stationary state there
        assert not any(s.stationary for s in result.grid)
        broken = any(s.diverged and predicts_stationary(s) for s in result.grid)
        allowed = {"failed" if broken else "inconclusive", "not_applicable"}
        assert set(verdicts(result).values()) <= allowed, (broken, verdicts(result))
        return
    got = verdicts(result)
    assert {law: got[law] for law in caught_by} == dict.fromkeys(caught_by, "failed"), got


def test_unprojected_noise_on_the_sphere_shows_only_in_the_measured_sigma2() -> None:
    """The projection removes the radial noise (the dynamics agree to O(η²)): no law fails (the
    radial noise only makes λ_eff noisier), and only the measured Tr Σ_w̄/(d − 1) is off, by
    d/(d − 1)."""
    result = simulate_mutant("unprojected_noise", "fixed_sphere", grid=GRIDS["fixed_sphere"],
                             **RUN)
    assert "failed" not in verdicts(result).values()
    for s in result.grid:
        measured = s.extra["sigma2_measured"]
        assert s.sigma2.value == 1.0
        assert abs(measured["value"] - 1.5) < 5 * measured["stderr"]


def test_mutant_options_are_checked() -> None:
    with pytest.raises(InvalidParameterError, match="applies to protocols"):
        simulate_mutant("double_wd", "fixed_sphere", grid=GRIDS["fixed_sphere"], **RUN)
    with pytest.raises(InvalidParameterError, match="name="):
        simulate_mutant("no_such_mutant", "fixed_lr", grid=GRIDS["fixed_lr"], **RUN)
    with pytest.raises(InvalidParameterError, match="unexpected keyword"):
        simulate_mutant("hot_noise", "fixed_lr", grid=GRIDS["fixed_lr"], colour="red", **RUN)
