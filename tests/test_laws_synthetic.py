"""The synthetic substrate the laws are tested on: the theory's states, per-point noise streams,
mutations."""

from __future__ import annotations

import numpy as np
import pytest

from thermocheck import theory, vmf
from thermocheck.errors import InvalidParameterError
from thermocheck.synthetic import MUTATIONS, synthetic_grid

pytestmark = pytest.mark.fast

AXIS = np.geomspace(1e-3, 3e-2, 4)


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_noise_free_states_are_the_theory(protocol: str) -> None:
    y = [0.5, 1.0, 2.0] if protocol == "fixed_sphere" else AXIS
    for s in synthetic_grid(protocol, 4, grid=theory.axes_grid(protocol, AXIS, y)):
        kappa = 1 / s.temperature
        assert s.loss.value == pytest.approx(float(vmf.mean_loss(4, kappa)), rel=1e-12)
        assert s.sphere_entropy.value == pytest.approx(float(vmf.entropy(4, kappa)), rel=1e-12)
        r = float(theory.stationary_radius(protocol, 4, 1.0, lr=s.lr, wd=s.wd, elr=s.elr,
                                           radius=s.radius))
        assert s.sq_norm.value == pytest.approx(r * r) and s.mean_radius.value == pytest.approx(r)
        assert s.extra["loss"] == "linear" and s.energy_is_loss
        if protocol == "fixed_sphere":
            assert s.lambda_eff.value == pytest.approx(s.pressure)
        else:
            assert s.norm_balance.value == 0.0


def test_a_points_noise_does_not_depend_on_the_other_points() -> None:
    full = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": AXIS}, noise=1e-2, seed=5)
    part = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS[1:3], "wd": AXIS[::-1][:2]}, noise=1e-2,
                          seed=5)
    for s in part:
        assert full.at(elr=s.elr, wd=s.wd) == s
    other = synthetic_grid("fixed_elr", 3, grid={"elr": AXIS, "wd": AXIS}, noise=1e-2, seed=6)
    assert [s.loss for s in other] != [s.loss for s in full]


def test_noise_is_attached_as_standard_errors() -> None:
    grid = synthetic_grid("fixed_lr", 5, grid={"lr": AXIS, "wd": AXIS}, noise=1e-2)
    for s in grid:
        assert s.loss.stderr == pytest.approx(1e-2 * float(vmf.mean_loss(5, 1 / s.temperature)))
        assert s.sphere_entropy.stderr == pytest.approx(1e-2 * 2.0)  # relative to R
        sq_norm = float(theory.stationary_radius("fixed_lr", 5, 1.0, lr=s.lr, wd=s.wd)) ** 2
        # relative to the balanced terms 2 η_k λ E‖w‖²
        assert s.norm_balance.stderr == pytest.approx(1e-2 * 2 * s.lr * s.wd * sq_norm)


@pytest.mark.parametrize(("kw", "match"), [
    ({"noise": 0.5}, "noise"),
    ({"seed": -1}, "seed"),
    ({"mutation": "T_linear", "protocol": "fixed_elr"}, "does not apply"),
    ({"mutation": "cold"}, "mutation"),
    ({"loss": "bingham"}, "loss"),
    ({"strength": 2.0}, "strength"),
])
def test_invalid_arguments_are_refused(kw: dict[str, object], match: str) -> None:
    protocol = kw.pop("protocol", "fixed_lr")
    with pytest.raises(InvalidParameterError, match=match):
        synthetic_grid(protocol, 3, grid=theory.axes_grid(protocol, AXIS, AXIS), **kw)  # type: ignore[arg-type]


def test_repeated_axis_values_are_refused() -> None:
    with pytest.raises(InvalidParameterError, match="repeated"):
        synthetic_grid("fixed_lr", 3, grid={"lr": [1e-2, 1e-2], "wd": AXIS})


@pytest.mark.parametrize("name", list(MUTATIONS))
def test_every_mutation_changes_the_states(name: str) -> None:
    protocol = MUTATIONS[name].protocols[0]
    y = [0.5, 1.0, 2.0] if protocol == "fixed_sphere" else AXIS
    exact = synthetic_grid(protocol, 3, grid=theory.axes_grid(protocol, AXIS, y))
    mutant = synthetic_grid(protocol, 3, grid=theory.axes_grid(protocol, AXIS, y), mutation=name)
    assert [s.to_dict() for s in exact] != [s.to_dict() for s in mutant]
    half = synthetic_grid(protocol, 3, grid=theory.axes_grid(protocol, AXIS, y), mutation=name,
                          strength=0.5)
    a, b, c = exact[0].sq_norm.value, half[0].sq_norm.value, mutant[0].sq_norm.value
    assert b == pytest.approx((a + c) / 2)


@pytest.mark.parametrize("protocol", theory.PROTOCOLS)
def test_the_grid_is_spelled_by_its_axes_and_positional_values_are_deprecated(
        protocol: str) -> None:
    """``grid={name: values}`` as in ``simulate``; the old ``x_values, y_values`` give the same
    states with a DeprecationWarning."""
    x, y = theory.AXES[protocol]
    new = synthetic_grid(protocol, 3, grid={y: AXIS[:2], x: AXIS}, noise=1e-2, seed=2)
    hint = rf"pass grid=\{{'{x}': x_values, '{y}': y_values\}}"
    with pytest.warns(DeprecationWarning, match=hint):
        old = synthetic_grid(protocol, 3, AXIS, AXIS[:2], noise=1e-2, seed=2)
    assert [s.to_dict() for s in old] == [s.to_dict() for s in new] and len(new) == 8
    with pytest.raises(InvalidParameterError, match=rf"needs exactly the axes \('{x}', '{y}'\)"):
        synthetic_grid(protocol, 3, grid={x: AXIS, "sigma2": AXIS})
    with pytest.raises(InvalidParameterError, match="no y_values"):
        synthetic_grid(protocol, 3, {x: AXIS, y: AXIS}, AXIS)
    with pytest.raises(InvalidParameterError, match="grid must be"):
        synthetic_grid(protocol, 3, AXIS)
