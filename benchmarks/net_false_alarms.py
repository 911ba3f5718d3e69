"""False-alarm rate of the network laws over many seeds (a correct trainer: a ``failed`` verdict
is a false alarm, an ``inconclusive`` one a missed decision).

Trains, for each seed, either a network preset's grids (default ``cpu-tiny``, both default
protocols; initial weights from ``init_seed = 1 + seed``) or, with ``--user-mlp``, the wide 5 × 5
grids of the user's MLP from ``examples/user_model`` on the grid trainer (``WIDE``, as the mutant
tests train them; initial weights from seed ``seed``), and counts the verdicts of the
network laws (:func:`thermocheck.nets.run.network_laws`) and the stationary points. Usage::

    python benchmarks/net_false_alarms.py --seeds 10 [--preset cpu-tiny] [--device cpu]
    python benchmarks/net_false_alarms.py --seeds 10 --user-mlp
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import sys
import time
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from thermocheck.nets import PRESETS, preset_config, run_grid
from thermocheck.nets.run import check_laws
from thermocheck.states import StateGrid


def _example() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / "user_model" / "train.py"
    spec = importlib.util.spec_from_file_location("user_model_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _mlp_grid(example: ModuleType, protocol: str, seed: int) -> tuple[StateGrid, int]:
    trainer = example.grid_trainer(replace(example.WIDE, seed=seed), protocol,
                                   example.WIDE_AXES[protocol], noise_samples=4)
    trainer.run()
    return trainer.grid(), trainer.config.queue_size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--preset", default="cpu-tiny", choices=tuple(PRESETS))
    parser.add_argument("--user-mlp", action="store_true",
                        help="the user MLP's 5 × 5 grids instead of a preset")
    parser.add_argument("--device", default=None)
    args = parser.parse_args()
    example = _example() if args.user_mlp else None
    protocols = tuple(example.WIDE_AXES) if example else PRESETS[args.preset].default_protocols
    verdicts: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    stationary: dict[str, list[int]] = collections.defaultdict(list)
    start = time.perf_counter()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for protocol in protocols:
            if example is not None:
                grid, queue = _mlp_grid(example, protocol, seed)
            else:
                config = preset_config(args.preset, protocol, seed=seed, init_seed=1 + seed,
                                       device=args.device)
                grid, queue = run_grid(config), config.queue_size
            stationary[protocol].append(sum(s.stationary for s in grid))
            for r in check_laws(grid, entropy_samples=queue):
                form = "" if r.law != "ideal_gas" else (
                    " (corrected)" if any("corrected" in n for n in r.notes) else " (SDE)")
                verdicts[f"{r.law}{form} {protocol}"][r.verdict] += 1
        print(f"seed {seed} done, {time.perf_counter() - start:.0f} s", flush=True)
    print(json.dumps({"substrate": "user MLP" if example else args.preset, "seeds": args.seeds,
                      "seconds": round(time.perf_counter() - start),
                      "stationary_points": stationary,
                      "verdicts": {k: dict(v) for k, v in sorted(verdicts.items())}}, indent=1))


if __name__ == "__main__":
    main()
