"""Hyperparameter presets for the isotropic-noise simulator: ``quick`` and ``paper``.

``paper`` reproduces Section 6 / Appendix E of Sadrtdinov et al. (THEORY.md §7): d = 3, σ = 1,
17 × 17 log-spaced grids with η, η_eff, λ ∈ [10⁻³, 10⁻¹] and sphere radius r ∈ [10⁻¹, 10],
2·10⁶ iterations, a queue of 1000 weights taken every 50 iterations, an entropy estimate every
40 000 iterations averaged over the last 10. Logs are block means over 500 iterations, where the
paper samples every 50: each log here averages every iteration of its block, so the means are the
same estimator with less variance, and 289 points × 4000 logs × 8 quantities stay at 74 MB
(every 50 would take 740 MB).

``quick`` (the default of ``thermocheck verify``) keeps d = 3 and σ = 1 but moves every axis where
equilibration is fast (READINGS.md, time budgets), so that all three protocols, entropy and numba
compilation included, finish in well under a minute on 2 cores:

* fixed LR: η, λ ∈ [10⁻², 10⁻¹] — the radius relaxes in ``1/(4ηλ) ≤ 2500`` iterations;
* fixed ELR: η_eff, λ ∈ [10⁻², 10⁻¹] — near r* the radius relaxes at the rate ``η_eff² σ²(d − 1)``,
  at most 5000 iterations, and from r = 1 down to ``r*² = η_eff/λ ≥ 0.1`` in about
  ``1/(2 η_eff λ r*²) ≤ 5000``;
* fixed sphere: η_eff ∈ [10⁻², 10⁻¹], r ∈ [10⁻¹, 10] — the direction mixes in ``1/η_eff ≤ 100``.

5 × 5 points per grid and 3·10⁶ iterations are ≥ 600 radial relaxation times everywhere. The larger
η (and ηλ) make the discretisation visible, so the laws that rest on the SDE are checked in their
discretisation-corrected forms (Appendix G), as the laws do by default. The entropy averages 14
queue estimates of 1000 weights taken every 100 iterations (about the direction's correlation time
``1/η_eff``: closer samples would bias the k-NN estimate down), 10⁵ iterations apart, so that the
queues do not overlap and their spread gives an honest standard error. With 5 such estimates
the Gibbs-potential minimum (V2) was too noisy to decide on fixed LR; 14 decide it.

Measured on 2 cores (AMD EPYC, warm numba cache): ``quick`` takes about 7 s for all three
protocols, entropy included (a cold cache adds about 10 s of compilation); ``paper`` takes 10.5 s
per protocol without the entropy, plus about 1.5 ms per queue estimate (2890 per protocol; the
k-d tree path of :func:`thermocheck.entropy.sphere_entropy`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from thermocheck import theory
from thermocheck.errors import check_choice
from thermocheck.simulator import SimulationResult, simulate

__all__ = ["PAPER", "PRESETS", "QUICK", "Preset", "get"]


@dataclass(frozen=True)
class Preset:
    """Grids (per protocol, the two axes of ``theory.AXES``) and run lengths for ``simulate``."""

    name: str
    d: int
    sigma: float
    grids: Mapping[str, Mapping[str, np.ndarray]]
    iterations: int
    log_every: int
    queue_size: int
    queue_every: int
    entropy_every: int
    entropy_logs: int
    init_radius: float = 1.0

    def options(self, protocol: str, *, d: int | None = None) -> dict[str, Any]:
        """Keyword arguments of :func:`~thermocheck.simulator.simulate` for ``protocol``."""
        protocol = theory.check_protocol(protocol)
        return {"d": self.d if d is None else d, "grid": dict(self.grids[protocol]),
                "iterations": self.iterations, "sigma": self.sigma, "log_every": self.log_every,
                "queue_size": self.queue_size, "queue_every": self.queue_every,
                "entropy_every": self.entropy_every, "entropy_logs": self.entropy_logs,
                "init_radius": self.init_radius}

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
    name="quick", d=3, sigma=1.0,
    grids=_grids(5, rates=(1e-2, 1e-1), wd=(1e-2, 1e-1), radius=(1e-1, 1e1)),
    iterations=3_000_000, log_every=200, queue_size=1000, queue_every=100,
    entropy_every=100_000, entropy_logs=14,
)

PAPER = Preset(
    name="paper", d=3, sigma=1.0,
    grids=_grids(17, rates=(1e-3, 1e-1), wd=(1e-3, 1e-1), radius=(1e-1, 1e1)),
    iterations=2_000_000, log_every=500, queue_size=1000, queue_every=50,
    entropy_every=40_000, entropy_logs=10,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (QUICK, PAPER)}


def get(name: str) -> Preset:
    """The preset called ``name`` (``"quick"`` or ``"paper"``)."""
    return PRESETS[check_choice("preset", name, PRESETS)]
