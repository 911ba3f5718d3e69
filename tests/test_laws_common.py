"""What every law shares: verdicts on the theory's own states, input handling, stationarity
filtering, JSON round trips, and the self-explaining assertion."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from thermocheck import laws
from thermocheck.errors import GridError, InvalidParameterError
from thermocheck.laws._common import (
    ENERGY_REASON,
    Check,
    Run,
    noise_kurtosis,
    propagate,
    stencil,
)
from thermocheck.laws._fit import UnidentifiableFit
from thermocheck.results import LawFailure, LawResult
from thermocheck.states import Estimate, StateGrid
from thermocheck.strategies import state_grids
from thermocheck.synthetic import synthetic_grid
from thermocheck.theory import AXES

pytestmark = pytest.mark.fast

SETTINGS = settings(derandomize=True, deadline=None, max_examples=50,
                    suppress_health_check=[HealthCheck.too_slow])

#: (law, protocol) pairs that are documented as not applicable on the synthetic substrate.
NOT_APPLICABLE = {("adiabatic", "fixed_sphere"), ("norm_balance", "fixed_sphere")}


def expected_verdict(name: str, protocol: str) -> str:
    return "not_applicable" if (name, protocol) in NOT_APPLICABLE else "passed"


def grid(protocol: str = "fixed_lr", n: int = 4, **kw: object) -> StateGrid:
    ranges = {"lr": (1e-3, 1e-1), "wd": (1e-3, 2e-2), "elr": (1e-3, 4e-2), "radius": (0.3, 3.0)}
    x, y = AXES[protocol]
    return synthetic_grid(protocol, 3, grid={x: np.geomspace(*ranges[x], n),
                                             y: np.geomspace(*ranges[y], n)},
                          **kw)  # type: ignore[arg-type]


# -- the theory's own states pass ------------------------------------------------------------------
@SETTINGS
@given(st.sampled_from([0.0, 1e-4]).flatmap(lambda noise: state_grids(noise=noise)))
def test_every_law_passes_on_exact_and_precise_states(g: StateGrid) -> None:
    for name, law in laws.ALL.items():
        result = law(g)
        assert result.verdict == expected_verdict(name, g.protocol), result.explain()


@SETTINGS
@given(state_grids(noise=1e-2))
def test_no_law_fails_on_noisy_states(g: StateGrid) -> None:
    """With 1% noise a fine grid may be too noisy to decide, but a correct theory never fails."""
    for name, law in laws.ALL.items():
        result = law(g)
        if result.verdict == "inconclusive":
            assert result.reason.startswith("too noisy to decide"), result.explain()
        else:
            assert result.verdict == expected_verdict(name, g.protocol), result.explain()


# -- inputs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(laws.ALL))
def test_empty_grid_is_an_error(name: str) -> None:
    with pytest.raises(GridError, match="at least one state"):
        laws.ALL[name]([])


@pytest.mark.parametrize("bad", ["grid", 3.0, {"lr": 1.0}])
def test_a_grid_must_hold_states(bad: object) -> None:
    with pytest.raises(GridError, match="must be a StateGrid"):
        laws.ideal_gas(bad)


def test_mixed_protocols_are_an_error() -> None:
    with pytest.raises(GridError, match="one protocol and one d"):
        laws.ideal_gas([*grid("fixed_lr"), *grid("fixed_elr")])


@pytest.mark.parametrize("alpha", [0.0, 1.0, -0.1, float("nan")])
def test_alpha_must_lie_in_the_open_unit_interval(alpha: float) -> None:
    with pytest.raises(InvalidParameterError, match="alpha"):
        laws.ideal_gas(grid(), alpha=alpha)


@pytest.mark.parametrize("name", ["ideal_gas", "first_law", "vmf_closed_form", "maxwell"])
def test_negative_model_tol_is_an_error(name: str) -> None:
    with pytest.raises(InvalidParameterError, match="model_tol"):
        laws.ALL[name](grid(), model_tol=-1.0)


def test_mismatched_axis_shapes_are_an_error() -> None:
    with pytest.raises(InvalidParameterError, match="1-d array"):
        synthetic_grid("fixed_lr", 3, grid={"lr": np.ones((2, 2)) * 0.01, "wd": [0.01]})
    with pytest.raises(InvalidParameterError, match="every column must be 1-d of length"):
        StateGrid.from_arrays("fixed_lr", 3, 1.0, lr=[0.01, 0.02], wd=[0.01, 0.02, 0.03])


def test_a_single_state_is_a_grid_for_the_per_point_laws() -> None:
    state = grid()[5]
    for name in ("ideal_gas", "vmf_closed_form", "norm_balance"):
        assert laws.ALL[name](state).passed, name


# -- stationarity ---------------------------------------------------------------------------------
def test_non_stationary_states_are_left_out_and_listed() -> None:
    states = list(grid())
    states[0] = states[0].replace(stationary=False, reason="drifting loss")
    result = laws.ideal_gas(states)
    assert result.passed
    excluded = [p for p in result.details if "excluded" in p]
    assert len(excluded) == 1 and "drifting loss" in excluded[0]["excluded"]
    assert any("non-stationary" in n for n in result.notes)


def test_no_stationary_state_is_inconclusive() -> None:
    states = [s.replace(stationary=False, reason="interpolates") for s in grid()]
    for name, law in laws.ALL.items():
        result = law(states)
        if (name, "fixed_lr") not in NOT_APPLICABLE:
            assert result.verdict in ("inconclusive", "not_applicable"), name


def test_too_few_stationary_states_for_a_surface_is_inconclusive() -> None:
    states = [s if s.lr < 0.05 else s.replace(stationary=False, reason="diverged")
              for s in grid(n=3)]
    result = laws.maxwell(states)
    assert result.verdict == "inconclusive" and "3×3" in result.reason


# -- decided and undecided checks -----------------------------------------------------------------
def test_a_few_undecided_points_leave_the_verdict_to_the_others() -> None:
    states = list(grid())
    vague = states[0].sq_norm.value
    states[0] = states[0].replace(sq_norm=Estimate(vague, vague))  # 100% error: undecided
    result = laws.ideal_gas(states)
    assert result.passed
    assert any(n.startswith("1 of 16 checks too noisy to decide") for n in result.notes)
    assert [p["decided"] for p in result.details].count(False) == 1


def test_mostly_undecided_points_are_inconclusive() -> None:
    states = [s.replace(sq_norm=Estimate(s.sq_norm.value, s.sq_norm.value)) if k < 9 else s
              for k, s in enumerate(grid())]
    result = laws.ideal_gas(states)
    assert result.verdict == "inconclusive"
    assert result.reason.startswith("too noisy to decide at 9 of 16 checks")
    assert "cannot exclude a deviation" in result.reason


def test_a_one_sided_check_is_decided_by_its_upper_bound() -> None:
    """Equivalence logic: a point far below its rival excludes a violation the band alone
    would not."""
    below = Check(at="*", quantity="G", observed=-3.0, expected=0.0, stderr=1.0, effect=2.0,
                  one_sided=True)
    assert below.ok(3.0) and below.decided(3.0)  # upper bound −3 + 3 = 0 < 2
    two_sided = Check(at="*", quantity="G", observed=-1.0, expected=0.0, stderr=1.0, effect=2.0)
    assert two_sided.ok(3.0) and not two_sided.decided(3.0)  # |−1| + 3 = 4 ≥ 2


# -- networks: U is not the energy ---------------------------------------------------------------
@pytest.mark.parametrize("name", ["potential_minimum", "first_law", "heat_capacity", "adiabatic",
                                  "vmf_closed_form"])
def test_energy_laws_do_not_apply_to_networks(name: str) -> None:
    net = StateGrid([s.replace(energy_is_loss=False, substrate="net") for s in grid()])
    result = laws.ALL[name](net)
    assert result.verdict == "not_applicable" and result.reason == ENERGY_REASON


@pytest.mark.parametrize("name", ["ideal_gas", "maxwell", "norm_balance"])
def test_the_other_laws_apply_to_networks(name: str) -> None:
    net = StateGrid([s.replace(energy_is_loss=False, substrate="net") for s in grid()])
    assert laws.ALL[name](net).passed


# -- results --------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(laws.ALL))
def test_results_round_trip_through_json(name: str) -> None:
    result = laws.ALL[name](grid("fixed_elr", noise=1e-3))
    data = json.loads(json.dumps(result.to_dict()))
    assert LawResult.from_dict(data).to_dict() == result.to_dict()
    assert data["options"]["alpha"] == 1e-3


@pytest.mark.parametrize("name", list(laws.ALL))
def test_every_result_has_headline_numbers_and_point_details(name: str) -> None:
    result = laws.ALL[name](grid("fixed_elr"))
    assert result.passed
    assert None not in (result.observed, result.expected, result.tolerance, result.residual)
    for point in result.details:
        assert {"observed", "expected", "stderr", "residual", "ok", "tolerance"} <= set(point)
    assert any(n.startswith("significance") for n in result.notes)


def test_assert_passed_explains_the_failure() -> None:
    result = laws.ideal_gas(grid(mutation="wrong_R"))
    with pytest.raises(LawFailure) as info:
        result.assert_passed()
    message = str(info.value)
    assert message.startswith("ideal_gas [fixed_lr, synthetic]: failed")
    worst = max((p for p in result.details if p["ok"] is False),
                key=lambda p: abs(p["residual"]) / p["tolerance"])
    assert f"at {worst['at']}: E‖w‖² = " in message
    assert "but the law says" in message
    assert "reproduce: thermocheck.laws.ideal_gas(grid, corrected=True, alpha=0.001" in message


@pytest.mark.parametrize(("name", "mutation"), [
    ("ideal_gas", "wrong_R"), ("potential_minimum", "hot"), ("maxwell", "no_log_r"),
    ("first_law", "hot"), ("heat_capacity", "wrong_R"), ("adiabatic", "hot"),
    ("vmf_closed_form", "hot"), ("norm_balance", "radial_noise"),
])
def test_every_failure_lists_its_failing_points(name: str, mutation: str) -> None:
    result = laws.ALL[name](grid("fixed_elr", mutation=mutation, noise=1e-3))
    assert result.verdict == "failed"
    message = result.explain()
    n_bad = sum(p["ok"] is False for p in result.details)
    assert f"{n_bad} of {len(result.details)} points fail (worst first):" in message
    assert "but the law says" in message and f"[{name}]" in message


def test_assert_passed_accepts_inconclusive_only_when_asked() -> None:
    result = laws.maxwell(grid(n=2))
    assert result.verdict == "inconclusive"
    result.assert_passed(allow_inconclusive=True)
    with pytest.raises(LawFailure, match="inconclusive"):
        result.assert_passed()


@given(st.sampled_from(list(laws.ALL)))
@SETTINGS
def test_laws_record_their_options(name: str) -> None:
    result = laws.ALL[name](grid(), alpha=0.01)
    assert result.options["alpha"] == 0.01
    assert result.reproduction().startswith(f"thermocheck.laws.{name}(grid, ")


# -- propagation that stays finite, and undefined bands -------------------------------------------
def test_propagate_is_exact_for_linear_functions() -> None:
    value, se = propagate(lambda v: float(2 * v[0] - 3 * v[1]), [1.0, 2.0], [0.1, 0.2])
    assert value == pytest.approx(-4.0) and se == pytest.approx(np.hypot(0.2, 0.6))


@pytest.mark.parametrize("log", [np.log, math.log])
def test_propagate_steps_a_positive_input_in_log_space_when_the_linear_step_leaves_the_domain(
        log: Callable[[float], float]) -> None:
    """v = 1 ± 1.2: v − se < 0 is outside log's domain; the log step gives d log v = se/v."""
    value, se = propagate(lambda v: float(log(v[0])), [1.0], [1.2])
    assert value == 0.0 and se == pytest.approx(1.2)


def test_propagate_reports_an_undefined_error_as_nan() -> None:
    """sqrt(1 − v²) at v = 0.5 ± 1 leaves the domain whichever way it is stepped."""
    value, se = propagate(lambda v: float(np.sqrt(1 - v[0] ** 2)), [0.5], [1.0])
    assert value == pytest.approx(np.sqrt(0.75)) and math.isnan(se)


def test_a_check_with_an_undefined_band_is_undecided_not_failed() -> None:
    check = Check(at="*", quantity="ΔU", observed=1.0, expected=0.0, stderr=math.nan, effect=0.5)
    assert not check.defined and check.ok(3.0) and not check.decided(3.0)
    assert check.excess(3.0) == 0.0 and check.upper(3.0) == math.inf
    assert check.record(3.0)["ok"] is None
    assert "standard error is not finite" in check.undecided_reason(3.0, "a 50% error")


def test_undefined_bands_count_against_the_quorum() -> None:
    run = Run("ideal_gas", grid(), alpha=1e-3, resolution=0.5)
    good = Check(at="a", quantity="q", observed=1.0, expected=1.0, stderr=0.01, effect=0.5)
    vague = replace(good, at="b", stderr=math.nan)
    assert run.judge([good, vague], z=3.0).verdict == "passed"
    result = run.judge([vague, vague], z=3.0)
    assert result.verdict == "inconclusive" and "band of q is undefined" in result.reason


def test_first_law_with_volume_errors_above_the_volume_is_not_failed() -> None:
    """V ± 1.2 V: the ±1-stderr step of V took the log of a negative number (ΔU = … ± nan)."""
    states = [s.replace(sq_norm=Estimate(s.sq_norm.value, 2.4 * s.volume.value))
              for s in grid(noise=0.0)]
    result = laws.first_law(states)
    assert result.verdict == "inconclusive", result.explain()
    assert all(math.isfinite(p["stderr"]) and math.isfinite(p["tolerance"])
               for p in result.details)


def test_heat_capacity_with_lambda_eff_errors_above_lambda_eff_is_not_failed() -> None:
    states = [s.replace(lambda_eff=Estimate(s.lambda_eff.value, 1.2 * s.lambda_eff.value))
              for s in grid("fixed_sphere")]
    result = laws.heat_capacity(states)
    assert result.verdict == "inconclusive", result.explain()
    assert all(math.isfinite(p["tolerance"]) for p in result.details)


# -- derivatives the nodes cannot determine ------------------------------------------------------
def test_stencil_needs_distinct_increasing_nodes() -> None:
    with pytest.raises(UnidentifiableFit, match="distinct nodes"):
        stencil(np.array([0.1, 0.2, 0.2]), 0)
    with pytest.raises(UnidentifiableFit, match="at least two nodes"):
        stencil(np.array([0.1]), 0)


def test_heat_capacity_leaves_out_points_at_a_repeated_temperature() -> None:
    """Measured σ² that differs between states can put two of them at one T = η_eff σ²/2."""
    states = list(grid("fixed_elr"))
    lo, hi = states[0], next(s for s in states if s.wd == states[0].wd and s.elr > states[0].elr)
    states[states.index(hi)] = hi.replace(sigma2=Estimate(lo.elr / hi.elr))  # T(hi) = T(lo)
    result = laws.heat_capacity(states)
    assert result.verdict != "failed", result.explain()
    assert any("left out, their derivatives are not determined" in n and "distinct nodes" in n
               for n in result.notes)


def test_student_z_keeps_the_tail_probability_of_the_normal_z() -> None:
    from scipy import stats as st

    from thermocheck.laws._common import student_z, z_two_sided

    z = z_two_sided(1e-3, 272)
    assert student_z(z, None) == z
    for dof in (3, 9, 29, 1000):
        t = student_z(z, dof)
        assert t > z and st.t.sf(t, dof) == pytest.approx(st.norm.sf(z), rel=1e-6)
    assert student_z(z, 1e6) == pytest.approx(z, rel=1e-4)


def test_welch_dof_of_a_sum_of_variances() -> None:
    from thermocheck.laws._common import welch_dof

    assert welch_dof([(1.0, 9.0)]) == pytest.approx(9.0)
    assert welch_dof([(1.0, 9.0), (1.0, 9.0)]) == pytest.approx(18.0)
    assert welch_dof([(1.0, 9.0), (1.0, None)]) == pytest.approx(36.0)  # exact part: more dof
    assert welch_dof([(1.0, None), (0.0, 4.0)]) is None


def test_an_error_from_ten_batches_is_not_a_normal_one() -> None:
    """The paper preset's fixed-ELR point (η_eff = 0.0024, λ = 0.032): E‖w‖² from 10 batch means
    sits 4.66 standard errors off, just outside the normal band of 272 checks (4.63); with the 9
    degrees of freedom of its error the band is 2.15 times wider (a z of 4.66 is not rare there)."""
    from thermocheck.laws._common import Check, z_two_sided

    z = z_two_sided(1e-3, 272)
    normal = Check(at="p", quantity="E‖w‖²", observed=1 + 4.66e-3, expected=1.0, stderr=1e-3)
    student = Check(at="p", quantity="E‖w‖²", observed=1 + 4.66e-3, expected=1.0, stderr=1e-3,
                    dof=9)
    assert not normal.ok(z) and student.ok(z)
    assert student.tolerance(z) / normal.tolerance(z) == pytest.approx(2.153, rel=1e-3)


@pytest.mark.parametrize("d", [2, 3, 10, 1000])
def test_noise_kurtosis_is_the_chi2_moment_ratio(d: int) -> None:
    """``E‖ξ‖⁴/(E‖ξ‖²)²`` of isotropic noise on the (d − 1)-dimensional tangent space."""
    chi2 = stats.chi2(d - 1)
    assert noise_kurtosis(d) == pytest.approx(chi2.moment(2) / chi2.mean() ** 2, rel=1e-12)
