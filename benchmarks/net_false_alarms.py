"""False-alarm rate of the network laws over many seeds (a correct trainer: a ``failed`` verdict
is a false alarm, an ``inconclusive`` one a missed decision).

Trains a network preset's grids (default ``cpu-tiny``, both default protocols) for each seed, with
the initial weights drawn from ``init_seed = 1 + seed``, and counts the verdicts of the network
laws (:func:`thermocheck.nets.run.network_laws`) and how many points were stationary. Usage::

    python benchmarks/net_false_alarms.py --seeds 10 [--preset cpu-tiny] [--device cpu]
"""

from __future__ import annotations

import argparse
import collections
import json
import time

from thermocheck.nets import PRESETS, preset_config, run_grid
from thermocheck.nets.run import check_laws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--preset", default="cpu-tiny", choices=tuple(PRESETS))
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    verdicts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    stationary: dict[str, list[int]] = collections.defaultdict(list)
    start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for protocol in PRESETS[args.preset].default_protocols:
            config = preset_config(args.preset, protocol, seed=seed, init_seed=1 + seed,
                                   device=args.device)
            grid = run_grid(config)
            stationary[protocol].append(sum(s.stationary for s in grid))
            for r in check_laws(grid, entropy_samples=config.queue_size):
                form = "" if r.law != "ideal_gas" else (
                    " (corrected)" if any("corrected" in n for n in r.notes) else " (SDE)")
                verdicts[f"{r.law}{form} {protocol}"][r.verdict] += 1
        print(f"seed {seed} done, {time.perf_counter() - start:.0f} s", flush=True)
    print(json.dumps({"preset": args.preset, "seeds": args.seeds,
                      "seconds": round(time.perf_counter() - start),
                      "stationary_points": stationary,
                      "verdicts": {k: dict(v) for k, v in sorted(verdicts.items())}}, indent=1))


if __name__ == "__main__":
    main()
