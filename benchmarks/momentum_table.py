"""How far V1 holds with the leading-order map η → η/(1 − β) of SGD momentum (the README's β table).

For each protocol and β ∈ {0, 0.5, 0.9, 0.99} (heavy ball; ``--nesterov`` for Nesterov) the
simulator runs a 2 × 2 grid whose *equivalent* rates η/(1 − β) (η_eff/(1 − β)) are 0.01 and 0.1
(λ ∈ {0.01, 0.1}; sphere radius ∈ {0.1, 10}), d = 3, σ = 1, 10⁶ iterations, and prints per point the
relative deviation of the measured E‖w‖² (λ_eff on the sphere) from the discretisation-corrected
state equation at η/(1 − β), its standard error, the momentum correction
ε_β = β (η_eff' + η_k' p)/√(1 − β) (``thermocheck.laws._common.momentum_lag``) and their ratio.

    python benchmarks/momentum_table.py [--nesterov]
"""

from __future__ import annotations

import argparse

import numpy as np

from thermocheck import laws
from thermocheck.laws._common import momentum_lag
from thermocheck.simulator import simulate

BETAS = (0.0, 0.5, 0.9, 0.99)
SECOND = {"fixed_sphere": ("radius", [0.1, 10.0]), "fixed_elr": ("wd", [0.01, 0.1]),
          "fixed_lr": ("wd", [0.01, 0.1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nesterov", action="store_true")
    parser.add_argument("--iterations", type=int, default=1_000_000)
    args = parser.parse_args()
    print("| protocol | β | point (equivalent rate) | V1 deviation | ± | ε_β | deviation/ε_β |")
    print("|---|---|---|---|---|---|---|")
    for protocol, (name, values) in SECOND.items():
        rate = "lr" if protocol == "fixed_lr" else "elr"
        for beta in BETAS:
            grid = {rate: (1 - beta) * np.array([0.01, 0.1]), name: values}
            result = simulate(protocol, d=3, grid=grid, iterations=args.iterations,
                              log_every=500, entropy_logs=0, seed=1, momentum=beta,
                              nesterov=args.nesterov and beta > 0)
            checks = laws.ideal_gas(result.grid).details
            for state, check in zip(result.grid, checks, strict=True):
                dev = check["relative_residual"]
                eps = momentum_lag(state)
                ratio = f"{dev / eps:+.2f}" if eps else "–"
                where = (f"{rate}'={getattr(state, rate) / (1 - beta):.3g}, "
                         f"{name}={state.hyperparameters[name]:.3g}")
                print(f"| {protocol} | {beta} | {where} | {dev:+.4f} | "
                      f"{check['stderr'] / check['expected']:.4f} | {eps:.4f} | {ratio} |")


if __name__ == "__main__":
    main()
