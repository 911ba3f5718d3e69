"""False-alarm rate of the network laws over many seeds (a correct trainer: a ``failed`` verdict
is a false alarm, an ``inconclusive`` one a missed decision).

Trains, for each seed, either a network preset's grids (default ``cpu-tiny``, both default
protocols; initial weights from ``init_seed = 1 + seed``) or, with ``--user-mlp``, the 5 × 5 grids
of the user's MLP from ``examples/user_model`` on the grid trainer (the grids of
``tests/test_nets_mutants.py``; initial weights from seed ``seed``), and counts the verdicts of the
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
from pathlib import Path
from types import ModuleType

import numpy as np

from thermocheck.nets import PRESETS, Dataset, GridConfig, Trainer, preset_config, run_grid
from thermocheck.nets.run import check_laws
from thermocheck.states import StateGrid

#: The user MLP's grids (as in tests/test_nets_mutants.py).
MLP_AXES = {
    "fixed_lr": (tuple(np.geomspace(0.05, 0.4, 5)), tuple(np.geomspace(0.0125, 0.1, 5))),
    "fixed_elr": (tuple(np.geomspace(0.005, 0.04, 5)), tuple(np.geomspace(0.0125, 0.1, 5))),
}


def _example() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "examples" / "user_model" / "train.py"
    spec = importlib.util.spec_from_file_location("user_model_train", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _mlp_grid(example: ModuleType, protocol: str, seed: int) -> tuple[StateGrid, int]:
    x, y = example.digits()
    config = GridConfig(protocol=protocol, x=MLP_AXES[protocol][0], y=MLP_AXES[protocol][1],
                        batch_size=32, iters=8000, queue_size=200, queue_every=10,
                        noise_every=20, noise_samples=4, seed=seed, threads=1)
    trainer = Trainer(config, data=Dataset("digits", x, y, 10),
                      model=example.scale_invariant_mlp(32, seed))
    trainer.run()
    return trainer.states(), config.queue_size


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
    protocols = tuple(MLP_AXES) if example else PRESETS[args.preset].default_protocols
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
