"""Hyperparameter presets for the isotropic-noise simulator: ``quick`` and ``paper``.

``paper`` reproduces Section 6 / Appendix E of Sadrtdinov et al. (docs/theory.md §7): d = 3, σ = 1,
17 × 17 log-spaced grids with η, η_eff, λ ∈ [10⁻³, 10⁻¹] and sphere radius r ∈ [10⁻¹, 10],
2·10⁶ iterations, an entropy estimate averaged over the last 10. The paper queues 1000 weights
taken every 50 iterations; here each point spaces its snapshots by two angular relaxation times
(``simulate(decorrelation=2)``; at least 50 iterations) and the 10 estimates, 10⁵ iterations
apart, share no snapshot: at η_eff = 10⁻³ the direction relaxes in about 10³ iterations, so
snapshots 50 apart would be 95 % correlated and read S(ρ) 0.2–0.3 nats low. Such a point keeps
50 snapshots per estimate (the most that fit), a fast one 1000. Logs are block means over 500
iterations, where the
paper samples every 50: each log here averages every iteration of its block, so the means are the
same estimator with less variance, and 289 points × 4000 logs × 8 quantities stay at 74 MB
(every 50 would take 740 MB).

``quick`` (the default of ``thermocheck verify``) keeps d = 3 and σ = 1 but moves every axis where
equilibration is fast (docs/decisions.md), so that all three protocols, entropy and numba
compilation included, finish in well under a minute on 2 cores:

* fixed LR: η, λ ∈ [10⁻², 10⁻¹] — the radius relaxes in ``1/(4ηλ) ≤ 2500`` iterations;
* fixed ELR: η_eff, λ ∈ [10⁻², 10⁻¹] — near r* the radius relaxes at the rate ``η_eff² σ²(d − 1)``,
  at most 5000 iterations, and from r = 1 down to ``r*² = η_eff/λ ≥ 0.1`` in about
  ``1/(2 η_eff λ r*²) ≤ 5000``;
* fixed sphere: η_eff ∈ [10⁻², 10⁻¹], r ∈ [10⁻¹, 10] — the direction mixes in ``1/η_eff ≤ 100``.

5 × 5 points per grid and 3·10⁶ iterations are ≥ 600 radial relaxation times everywhere. The larger
η (and ηλ) make the discretisation visible, so the laws that rest on the SDE are checked in their
discretisation-corrected forms (Appendix G), as the laws do by default. The entropy averages 14
queue estimates, 10⁵ iterations apart, each of at most 1000 snapshots taken at least 100 and at
least two angular relaxation times apart (:func:`thermocheck.simulator.relaxation_steps`; the
relaxation time grows with d under fixed LR, where ``η_eff = η/r*²`` and ``r*² ∝ √(d − 1)``), so
that no two estimates share a snapshot and their spread gives an honest standard error. With 5
such estimates the Gibbs-potential minimum (V2) was too noisy to decide on fixed LR; 14 decide it.

``python -m benchmarks`` times the kernel on the paper grid against the RNG floor and a per-step
torch loop, and the entropy's k-d tree path (d = 3, N = 1000, as in the queues here) against
scipy's ``cKDTree`` (``benchmarks/results/``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import check_choice
from thermocheck.optimizers import check_optimizer, momentum_factor
from thermocheck.simulator import SimulationResult, simulate
from thermocheck.substrates import Plan
from thermocheck.sweep.shards import SweepSpec

__all__ = ["PAPER", "PRESETS", "QUICK", "Preset", "get", "law_checks", "plan"]


@dataclass(frozen=True)
class Preset:
    """Grids (per protocol, the two axes of ``theory.AXES``) and run lengths for ``simulate``."""

    name: str
    d: int
    sigma2: float
    grids: Mapping[str, Mapping[str, np.ndarray]]
    iterations: int
    log_every: int
    queue_size: int
    queue_every: int
    entropy_every: int
    entropy_logs: int
    init_radius: float = 1.0

    def options(self, protocol: str, *, d: int | None = None, momentum: float = 0.0,
                nesterov: bool = False) -> dict[str, Any]:
        """Keyword arguments of :func:`~thermocheck.simulator.simulate` for ``protocol``.

        With SGD momentum β > 0 the rate axis (η or η_eff) is multiplied by ``(1 − β)^{3/2}``:
        the equivalent rates ``η/(1 − β)`` are the preset's times ``√(1 − β)``, so that the
        momentum correction ``ε_β = β (η_eff' + η_k' p)/√(1 − β)``
        (:func:`thermocheck.laws._common.momentum_lag`) stays within β times the preset's
        rates, and equilibration is at most ``1/(1 − β)`` times slower (β = 0.9: 3·10⁶
        iterations are still ≥ 60 radial relaxation times)."""
        protocol = theory.check_protocol(protocol)
        grid = dict(self.grids[protocol])
        extra: dict[str, Any] = {}
        if momentum:
            rate = theory.AXES[protocol][0]
            grid[rate] = grid[rate] * momentum_factor(momentum) ** -1.5
            extra = {"momentum": float(momentum), "nesterov": bool(nesterov)}
        return {"d": self.d if d is None else d, "grid": grid,
                "iterations": self.iterations, "sigma2": self.sigma2, "log_every": self.log_every,
                "queue_size": self.queue_size, "queue_every": self.queue_every,
                "entropy_every": self.entropy_every, "entropy_logs": self.entropy_logs,
                "init_radius": self.init_radius, **extra}

    def run(self, protocol: str, *, seed: int = 0, d: int | None = None,
            progress: Any = None) -> SimulationResult:
        """Simulate ``protocol``'s grid with this preset."""
        return simulate(protocol, seed=seed, progress=progress, **self.options(protocol, d=d))


def _axis(low: float, high: float, n: int) -> np.ndarray:
    return np.geomspace(low, high, n)


def _grids(n: int, rates: tuple[float, float], wd: tuple[float, float],
           radius: tuple[float, float]) -> dict[str, dict[str, np.ndarray]]:
    return {
        "fixed_sphere": {"elr": _axis(*rates, n), "radius": _axis(*radius, n)},
        "fixed_elr": {"elr": _axis(*rates, n), "wd": _axis(*wd, n)},
        "fixed_lr": {"lr": _axis(*rates, n), "wd": _axis(*wd, n)},
    }


QUICK = Preset(
    name="quick", d=3, sigma2=1.0,
    grids=_grids(5, rates=(1e-2, 1e-1), wd=(1e-2, 1e-1), radius=(1e-1, 1e1)),
    iterations=3_000_000, log_every=200, queue_size=1000, queue_every=100,
    entropy_every=100_000, entropy_logs=14,
)

PAPER = Preset(
    name="paper", d=3, sigma2=1.0,
    grids=_grids(17, rates=(1e-3, 1e-1), wd=(1e-3, 1e-1), radius=(1e-1, 1e1)),
    iterations=2_000_000, log_every=500, queue_size=1000, queue_every=50,
    entropy_every=100_000, entropy_logs=10,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (QUICK, PAPER)}


def get(name: str) -> Preset:
    """The preset called ``name`` (``"quick"`` or ``"paper"``)."""
    return PRESETS[check_choice("preset", name, PRESETS)]


def plan(preset: str, protocols: Sequence[str] | None, *, seed: int, dim: int | None,
         momentum: float = 0.0, nesterov: bool = False) -> Plan:
    """The ``isotropic`` substrate's sweeps (:mod:`thermocheck.substrates`): ``preset``'s grid
    of each protocol (default: all three) in ``dim`` dimensions (default: the preset's), with SGD
    momentum β = ``momentum`` (:meth:`Preset.options`). The report records the simulator's options
    of the first protocol, less its grid (the report's states hold it)."""
    check_optimizer({"name": "sgd", "momentum": momentum, "nesterov": nesterov})
    chosen = get(preset)
    protocols = tuple(theory.PROTOCOLS if protocols is None else protocols)
    specs = []
    for protocol in protocols:
        kw = chosen.options(protocol, d=dim, momentum=momentum, nesterov=nesterov)
        specs.append(SweepSpec(protocol, kw.pop("d"), kw.pop("grid"), kw.pop("iterations"), seed,
                               options=kw))
    simulation = {k: v for k, v in chosen.options(protocols[0], d=dim, momentum=momentum,
                                                  nesterov=nesterov).items() if k != "grid"}
    return Plan(specs, {"simulation": simulation})


def law_checks(spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """Every law of :data:`thermocheck.laws.ALL`, with its default options: on the simulator the
    loss is the thermodynamic energy, so each applies (or says why not for a protocol)."""
    from thermocheck import laws

    return [(name, {}) for name in laws.ALL]
