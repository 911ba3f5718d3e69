"""False-alarm rate and power of every law on synthetic states (docs/decisions.md).

Usage: ``python benchmarks/false_alarms.py [--seeds 1000] [--power-seeds 50] [--noise 0.01]
[--d 3] [--workers 2]``. CPU only; about 10 minutes on 2 cores with the defaults.

1. False alarms: every law on ``--seeds`` noisy grids of the correct theory per protocol (5×5, the
   largest admissible grid of :func:`thermocheck.strategies.grid_ranges`, relative noise
   ``--noise``), once with the default options (α = 1e-3) and once as a calibration of the
   significance rule alone: α = 0.05 with the model allowances off (``model_tol=0``, and
   ``roundoff_tol=0`` for the norm balance, whose allowance is absolute; the synthetic
   states are exact, so only the noise is left). A false alarm is a ``failed`` verdict; the
   inconclusive rate is printed beside it.
2. Power: for every mutation of :data:`thermocheck.synthetic.MUTATIONS` and every law, the
   smallest ``strength`` (the fraction of the named defect blended into the correct theory) that
   the law catches in at least 90% of ``--power-seeds`` noisy grids, scanning a geometric ladder
   of strengths. For ``wrong_R`` a strength s is a relative error ``s/(d − 1)`` of R.
"""

from __future__ import annotations

import argparse
import inspect
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from thermocheck import laws, theory
from thermocheck.strategies import grid_ranges
from thermocheck.synthetic import MUTATIONS, synthetic_grid

STRENGTHS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
DETECTION = 0.9
#: The calibration run's options; a law takes those its signature names (the norm balance has an
#: absolute ``roundoff_tol`` instead of the coefficient ``model_tol``, which it only takes as a
#: deprecated spelling).
CALIBRATION = {"alpha": 0.05, "model_tol": 0.0, "roundoff_tol": 0.0}


# -- one task: every law on one grid ---------------------------------------------------------------
def _options(name: str, calibrate: bool) -> dict[str, float]:
    """The law's options: defaults, or the calibration run's (an allowance a law does not take
    stays at its default; ``roundoff_tol``, where a law takes it, replaces ``model_tol``)."""
    if not calibrate:
        return {}
    accepted = set(inspect.signature(laws.ALL[name]).parameters)
    if "roundoff_tol" in accepted:
        accepted.discard("model_tol")
    return {k: v for k, v in CALIBRATION.items() if k in accepted}


def verdicts(task: tuple[str, int, float, int, str | None, float, bool]) -> dict[str, str]:
    """Verdict of every law on one synthetic grid."""
    protocol, d, noise, seed, mutation, strength, calibrate = task
    x_name, y_name = theory.AXES[protocol]
    ranges = grid_ranges(protocol, d)
    grid = synthetic_grid(protocol, d, grid={x_name: np.geomspace(*ranges[x_name], 5),
                                             y_name: np.geomspace(*ranges[y_name], 5)},
                          noise=noise, seed=seed, mutation=mutation, strength=strength)
    return {name: law(grid, **_options(name, calibrate)).verdict
            for name, law in laws.ALL.items()}


def run(tasks: Iterable[tuple[Any, ...]], workers: int) -> list[dict[str, str]]:
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(verdicts, tasks, chunksize=16))


# -- the two measurements ------------------------------------------------------------------------
def false_alarms(args: argparse.Namespace) -> None:
    for calibrate in (False, True):
        label = ("calibration: alpha = 0.05, model_tol = roundoff_tol = 0" if calibrate
                 else "defaults: alpha = 1e-3")
        print(f"\n## False alarms over {args.seeds} seeds, noise {args.noise}, d = {args.d} "
              f"({label})\n")
        print("| law | " + " | ".join(theory.PROTOCOLS) + " |")
        print("|---|" + "---|" * len(theory.PROTOCOLS))
        table: dict[str, list[str]] = {name: [] for name in laws.ALL}
        for protocol in theory.PROTOCOLS:
            results = run([(protocol, args.d, args.noise, seed, None, 1.0, calibrate)
                           for seed in range(args.seeds)], args.workers)
            for name in laws.ALL:
                counts = Counter(r[name] for r in results)
                if counts["not_applicable"] == len(results):
                    table[name].append("n/a")
                    continue
                table[name].append(f"{counts['failed'] / len(results):.4f} "
                                   f"(inconcl. {counts['inconclusive'] / len(results):.3f})")
        for name, cells in table.items():
            print(f"| {name} | " + " | ".join(cells) + " |")


def power(args: argparse.Namespace) -> None:
    print(f"\n## Power: smallest strength caught in >= {DETECTION:.0%} of {args.power_seeds} "
          f"seeds (noise {args.noise}, d = {args.d}, defaults)\n")
    print("| mutation | protocol | law | smallest strength | detection there |")
    print("|---|---|---|---|---|")
    for mutation in MUTATIONS.values():
        for protocol in mutation.protocols:
            caught: dict[str, tuple[float, float]] = {}
            for strength in STRENGTHS:
                results = run([(protocol, args.d, args.noise, 10**6 + seed, mutation.name,
                                strength, False) for seed in range(args.power_seeds)],
                              args.workers)
                for name in laws.ALL:
                    rate = sum(r[name] == "failed" for r in results) / len(results)
                    if name not in caught and rate >= DETECTION:
                        caught[name] = (strength, rate)
            for name, (strength, rate) in sorted(caught.items(), key=lambda kv: kv[1][0]):
                extra = (f" (R off by {strength / (args.d - 1):.2%})"
                         if mutation.name == "wrong_R" else "")
                print(f"| {mutation.name} | {protocol} | {name} | {strength:g}{extra} | "
                      f"{rate:.2f} |")
            missing = [n for n in mutation.caught_by if n not in caught]
            if missing:
                print(f"| {mutation.name} | {protocol} | {', '.join(missing)} | "
                      f"not caught at strength 1 | — |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1000)
    parser.add_argument("--power-seeds", type=int, default=50)
    parser.add_argument("--noise", type=float, default=0.01)
    parser.add_argument("--d", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    start = time.perf_counter()
    false_alarms(args)
    power(args)
    print(f"\n({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
