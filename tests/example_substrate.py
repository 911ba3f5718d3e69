"""A minimal substrate, as a newcomer adds one (docs/architecture.md, "Adding a substrate").

``toy`` draws the stationary states of the ideal isotropic substrate
(:func:`thermocheck.synthetic.synthetic_grid`) with a chosen relative noise: a substrate whose
states obey the theory, so the laws it declares pass on it. One module holds its runner, its plan,
its laws and its declaration; :func:`thermocheck.substrates.register` (or an entry point in the
group ``thermocheck.substrates``) makes ``thermocheck verify --substrate toy`` run it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.deviations import KnownDeviation
from thermocheck.errors import check_in_range, check_positive
from thermocheck.states import Estimate, State
from thermocheck.substrates import Plan, Substrate
from thermocheck.sweep.shards import SweepSpec, register_substrate
from thermocheck.synthetic import synthetic_grid

#: Each preset: (d, points per axis, relative noise of every measured value).
PRESETS = {"small": (3, 3, 0.0), "noisy": (4, 4, 0.002)}
#: The laws the toy declares, with their options: V1 in both forms (the SDE form is a declared
#: deviation, as on networks), V3 and the norm balance.
LAWS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("ideal_gas", {"corrected": False}), ("ideal_gas", {}), ("maxwell", {}), ("norm_balance", {}))


def measure(spec: SweepSpec, xs: np.ndarray, ys: np.ndarray) -> Iterable[State]:
    """The runner: the ``xs × ys`` rectangle's states, tagged with this substrate's name, each
    claiming σ² times ``sigma2_scale`` (1: the σ² that generated it)."""
    axes = theory.axes_grid(spec.protocol, xs, ys)
    grid = synthetic_grid(spec.protocol, spec.d, grid=axes, noise=spec.options["noise"],
                          seed=spec.seed)
    claimed = Estimate(spec.options["sigma2_scale"])
    return [replace(state, substrate="toy", sigma2=claimed) for state in grid]


def plan(preset: str, protocols: Sequence[str] | None, *, seed: int, dim: int | None,
         noise: float | None = None, sigma2_scale: float = 1.0) -> Plan:
    """One sweep per protocol (default: all three) on the preset's log-spaced grid."""
    d, n, preset_noise = PRESETS[preset]
    noise = preset_noise if noise is None else float(check_in_range("noise", noise, 0.0, 0.25))
    options = {"noise": noise, "sigma2_scale": float(check_positive("sigma2_scale",
                                                                    sigma2_scale))}
    axis = np.geomspace(1e-2, 1e-1, n).tolist()
    specs = [SweepSpec(p, dim or d, dict.fromkeys(theory.AXES[p], axis), 1, seed, substrate="toy",
                       options=options)
             for p in (theory.PROTOCOLS if protocols is None else protocols)]
    return Plan(specs, options)


def law_checks(spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """The laws the toy declares (:data:`LAWS`)."""
    return [(name, dict(options)) for name, options in LAWS]


#: The deviation the toy declares: V1's SDE form, shown with its cause and never counted.
SDE_FORM = KnownDeviation(
    substrates=("toy",), law="ideal_gas", options={"corrected": False}, form="SDE form",
    cause="declared by the example substrate, as networks declare theirs", reference="Eq. 12, 19")

TOY = Substrate(name="toy", summary="synthetic ideal states (a test substrate)",
                presets={name: f"d={d}, {n}×{n} points" for name, (d, n, _) in PRESETS.items()},
                plan=plan, laws=law_checks, options=("noise", "sigma2_scale"),
                deviations=(SDE_FORM,))

register_substrate("toy", measure)
