"""AdamW's norm equilibrium on the simulator (the README's AdamW table), and whether a temperature
fits it.

For d ∈ {3, 10, 30} and β1 ∈ {0.5, 0.9} the simulator runs AdamW (β2 = 0.999, ε = 1e-8) under
fixed LR on the 2 × 2 grid η ∈ {1e-3, 1e-2}, λ ∈ {1e-2, 1e-1}, σ = 1, 4·10⁵ iterations, with the
loss ``1 + μᵀw̄``, μ = (1, …, 1)/√d (``--axis``: μ = e_1, whose minimum lies on a coordinate
axis). Per point it prints the measured E‖w‖² and angular update relative to Kosson et al.
(2024) (``thermocheck.optimizers.adamw_equilibrium``), ``E‖u‖²/d`` against the random-walk value
``(1 − β1)/(1 + β1)``, the model allowance ε_A (``thermocheck.laws._norm_equilibrium``), and two
temperatures: ``T_U`` from the direction's concentration (the VMF law's ``U = 1 − A_d(1/T)``,
inverted at the measured loss) and ``T_V = λ E‖w‖²/(d − 1)``, the temperature V1 (pV = RT) would
need. A temperature in the paper's sense needs ``T_U = T_V``.

    python benchmarks/adamw_table.py [--axis]
"""

from __future__ import annotations

import argparse

import numpy as np
from scipy.optimize import brentq

from thermocheck import vmf
from thermocheck.laws._norm_equilibrium import random_walk_gap
from thermocheck.optimizers import adamw_equilibrium
from thermocheck.simulator import simulate
from thermocheck.simulator.losses import LinearLoss


def concentration_temperature(d: int, loss: float) -> float:
    """T with ``1 − A_d(1/T) = U`` (Appendix E): the VMF temperature of the measured loss."""
    return brentq(lambda t: 1 - float(vmf.mean_resultant_length(d, 1 / t)) - loss, 1e-8, 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--axis", action="store_true", help="μ = e_1 instead of (1, …, 1)/√d")
    args = parser.parse_args()
    print("d  β1   η      λ     stat  E‖w‖²/pred  ±      angle/pred  E‖u‖²/d·(1+β1)/(1−β1)  "
          "ε_A    T_U       T_V")
    for d in (3, 10, 30):
        mu = None if args.axis else np.ones(d) / np.sqrt(d)
        for beta1 in (0.5, 0.9):
            res = simulate("fixed_lr", d=d, grid={"lr": [1e-3, 1e-2], "wd": [1e-2, 1e-1]},
                           iterations=400_000, log_every=2000, entropy_logs=0, seed=1,
                           loss=LinearLoss(mu=mu), adamw={"betas": (beta1, 0.999)})
            for s in res.grid:
                assert s.sq_norm is not None and s.loss is not None
                assert s.lr is not None and s.wd is not None
                eq = adamw_equilibrium(lr=s.lr, wd=s.wd, coordinates=d, beta1=beta1)
                walk = s.extra["update_sq"]["value"] / d * (1 + beta1) / (1 - beta1)
                t_v = s.wd * s.sq_norm.value / (d - 1)
                print(f"{d:<3}{beta1:<5}{s.lr:<7g}{s.wd:<6g}{s.stationary!s:<6}"
                      f"{s.sq_norm.value / eq.sq_norm:<12.4f}{s.sq_norm.stderr / eq.sq_norm:<7.4f}"
                      f"{s.extra['angular_update']['value'] / eq.angular_update:<12.4f}"
                      f"{walk:<23.4f}{random_walk_gap(s):<7.3f}"
                      f"{concentration_temperature(d, s.loss.value):<10.3g}{t_v:<.3g}")


if __name__ == "__main__":
    main()
