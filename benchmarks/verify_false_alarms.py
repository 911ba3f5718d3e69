"""False-alarm rate of ``thermocheck verify`` (quick preset) over many seeds.

Every seed is a correct simulator, so any ``failed`` verdict is a false alarm and any
``inconclusive`` one a missed decision. Prints the exit-code counts and, per law and protocol,
how often each verdict came up. Usage::

    python benchmarks/verify_false_alarms.py --seeds 50 [--preset quick]

Each seed's grid is cached under a temporary folder, so a rerun only re-checks the laws.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time

from thermocheck.report import exit_code
from thermocheck.verify import verify


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=50)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--preset", default="quick")
    args = parser.parse_args()
    codes: collections.Counter[int] = collections.Counter()
    verdicts: dict[tuple[str, str], collections.Counter[str]] = collections.defaultdict(
        collections.Counter)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            results, _ = verify(preset=args.preset, seed=seed, out=f"{tmp}/{seed}",
                                progress=False, sweep={"cache": f"{tmp}/cache"})
            codes[exit_code(results)] += 1
            for r in results:
                verdicts[(r.law, r.protocol)][r.verdict] += 1
    n = args.seeds
    print(f"{n} seeds of `thermocheck verify --preset {args.preset}` in "
          f"{time.perf_counter() - start:.0f} s")
    print("exit codes: " + ", ".join(f"{c}: {k}" for c, k in sorted(codes.items())))
    print("\n| law | protocol | passed | failed | inconclusive | not applicable |")
    print("|---|---|---|---|---|---|")
    for (law, protocol), count in sorted(verdicts.items()):
        print(f"| {law} | {protocol} | {count['passed']} | {count['failed']} | "
              f"{count['inconclusive']} | {count['not_applicable']} |")


if __name__ == "__main__":
    main()
