"""Exact stationary states of the discrete steps under pure isotropic noise (a flat loss).

With ``∇L = 0`` the step's squared norm is ``σ² χ²_{d−1}/‖w‖²`` and orthogonal to w, so the radius
follows a scalar chain that needs no SDE limit:

* fixed sphere: Eq. 83's per-step ratio has the mean
  ``λ_eff = E[√(1 + η_eff² σ² χ²_{d−1}) − 1] / (η_eff r²)``, computed by quadrature;
* fixed ELR: ``x' = x (1 − η_eff λ x)² + η_eff² σ² x χ²_{d−1}`` with ``x = ‖w‖²`` (Eq. 8, 111),
  whose stationary mean is estimated over independent chains.

The states report these values as measured, so a law must hold on them with the model allowances it
derives for discrete steps.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy import stats

from thermocheck.states import Estimate, State

SIGMA2 = 1.0


def _flat(protocol: str, d: int, **fields: Any) -> State:
    return State(protocol=protocol, d=d, sigma2=Estimate(SIGMA2), grad_sq=Estimate(0.0),
                 loss=Estimate(1.0, 0.0), energy_is_loss=True, substrate="synthetic",
                 **fields)


def sphere_state(d: int, elr: float, radius: float) -> State:
    """The fixed-sphere state with the exact mean of Eq. 83's ratio (quadrature error ~1e-12)."""
    mean = stats.chi2(d - 1).expect(lambda q: math.sqrt(1 + elr**2 * SIGMA2 * q) - 1,
                                    epsabs=1e-14, epsrel=1e-12)
    return _flat("fixed_sphere", d, elr=elr, radius=radius,
                 lambda_eff=Estimate(mean / (elr * radius**2), 1e-12 * mean))


def elr_state(d: int, elr: float, wd: float, *, chains: int = 4000, steps: int = 2000,
              seed: int = 0) -> State:
    """The fixed-ELR state with ``E‖w‖²`` the mean of ``chains`` independent radius chains, each
    averaged over ``steps`` steps after 20 relaxation times (``1/(η_eff² σ² (d − 1))`` steps),
    and its standard error from the spread of the chains' means."""
    rng = np.random.default_rng(seed)
    start = elr * SIGMA2 * (d - 1) / (2 * wd)
    x = np.full(chains, start)
    burn = math.ceil(20 / (elr**2 * SIGMA2 * (d - 1)))
    total = np.zeros(chains)
    for k in range(burn + steps):
        x = x * (1 - elr * wd * x) ** 2 + elr**2 * SIGMA2 * x * rng.chisquare(d - 1, chains)
        if k >= burn:
            total += x
    means = total / steps
    return _flat("fixed_elr", d, elr=elr, wd=wd,
                 sq_norm=Estimate(float(means.mean()),
                                  float(means.std(ddof=1) / math.sqrt(chains))))
