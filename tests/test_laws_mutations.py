"""Every wrong theory of the mutation table is caught by the laws the table names."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, note, settings, target

from thermocheck import laws
from thermocheck.results import LawResult
from thermocheck.states import StateGrid
from thermocheck.strategies import dimensions, state_grids
from thermocheck.synthetic import MUTATIONS, mutation_table, synthetic_grid

pytestmark = pytest.mark.fast

SETTINGS = settings(derandomize=True, deadline=None, max_examples=12,
                    suppress_health_check=[HealthCheck.too_slow])


def excess(result: LawResult) -> float:
    """The largest |residual| / tolerance over the result's checks."""
    return max(abs(p["residual"]) / p["tolerance"] for p in result.details
               if p.get("tolerance"))


@pytest.mark.parametrize("mutation", list(MUTATIONS))
def test_mutation_is_caught(mutation: str) -> None:
    """Small d keeps wrong_R's relative defect, 1/(d − 1), above the model allowances."""
    caught_by = MUTATIONS[mutation].caught_by

    @SETTINGS
    @given(dimensions(max_value=8).flatmap(
        lambda d: state_grids(d=d, noise=1e-3, mutation=mutation)))
    def caught(grid: StateGrid) -> None:
        for name in caught_by:
            result = laws.ALL[name](grid)
            note(result.explain())
            assert result.verdict == "failed", f"{name} missed {mutation}"
            target(excess(result), label=name)

    caught()


def test_every_mutation_names_a_law_and_a_protocol() -> None:
    for m in MUTATIONS.values():
        assert m.caught_by and set(m.caught_by) <= set(laws.ALL)
        assert m.protocols
    table = mutation_table()
    assert all(f"`{name}`" in table for name in MUTATIONS)


def test_strength_zero_is_the_theory() -> None:
    axis = [1e-3, 3e-3, 1e-2]
    exact = synthetic_grid("fixed_lr", 3, grid={"lr": axis, "wd": axis}, noise=1e-3, seed=7)
    blended = synthetic_grid("fixed_lr", 3, grid={"lr": axis, "wd": axis}, noise=1e-3, seed=7,
                             mutation="hot", strength=0.0)
    assert [s.loss for s in exact] == [s.loss for s in blended]
    assert laws.vmf_closed_form(blended).passed
