"""False-alarm rate of ``thermocheck verify`` over many seeds: the paper preset, and the quick
preset at several dimensions.

Every seed is a correct simulator, so any ``failed`` verdict is a false alarm and any
``inconclusive`` one a missed decision. For each configuration it prints the exit-code counts, the
false-alarm rate (seeds with at least one failed law) with its 95 % Clopper–Pearson upper bound,
the wall time, and, per law and protocol, how often each verdict came up. Usage::

    python benchmarks/verify_false_alarms.py --seeds 30   # paper, quick at d = 3, 10, 30
    python benchmarks/verify_false_alarms.py --seeds 3 --configs quick:10 paper

A configuration is ``preset`` (its own d) or ``preset:d``. Each seed's grid is cached under a
temporary folder, so a configuration is simulated once per seed.
"""

from __future__ import annotations

import argparse
import collections
import tempfile
import time
from dataclasses import dataclass, field

from scipy import stats

from thermocheck.report import exit_code
from thermocheck.verify import verify

DEFAULT_CONFIGS = ("paper", "quick:3", "quick:10", "quick:30")


@dataclass
class Tally:
    """Verdicts of one configuration over its seeds."""

    name: str
    codes: collections.Counter[int] = field(default_factory=collections.Counter)
    verdicts: dict[tuple[str, str], collections.Counter[str]] = field(
        default_factory=lambda: collections.defaultdict(collections.Counter))
    failed_seeds: list[int] = field(default_factory=list)
    seconds: float = 0.0


def run_config(config: str, seeds: range, tmp: str) -> Tally:
    """``thermocheck verify`` for configuration ``preset[:d]`` at every seed."""
    preset, _, dim = config.partition(":")
    tally = Tally(config)
    start = time.perf_counter()
    for seed in seeds:
        results, _ = verify(preset=preset, seed=seed, dim=int(dim) if dim else None,
                            out=f"{tmp}/{config}-{seed}", progress=False,
                            sweep={"cache": f"{tmp}/cache"})
        tally.codes[exit_code(results)] += 1
        if any(r.verdict == "failed" for r in results):
            tally.failed_seeds.append(seed)
        for r in results:
            tally.verdicts[(r.law, r.protocol)][r.verdict] += 1
    tally.seconds = time.perf_counter() - start
    return tally


def report(tally: Tally, n: int) -> str:
    """Markdown summary of one configuration."""
    k = len(tally.failed_seeds)
    upper = float(stats.beta.ppf(0.95, k + 1, n - k)) if k < n else 1.0
    lines = [f"## `thermocheck verify` {tally.name}: {n} seeds in {tally.seconds:.0f} s "
             f"({tally.seconds / n:.0f} s per seed)",
             "exit codes: " + ", ".join(f"{c}: {m}" for c, m in sorted(tally.codes.items())),
             f"false alarms: {k}/{n} seeds (95 % upper bound {upper:.2f})"
             + (f", seeds {tally.failed_seeds}" if k else ""), "",
             "| law | protocol | passed | failed | inconclusive | not applicable |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {law} | {protocol} | {c['passed']} | {c['failed']} | {c['inconclusive']} | "
              f"{c['not_applicable']} |" for (law, protocol), c in sorted(tally.verdicts.items())]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS),
                        help="preset or preset:d (default: %(default)s)")
    args = parser.parse_args()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    with tempfile.TemporaryDirectory() as tmp:
        for config in args.configs:
            print(report(run_config(config, seeds, tmp), args.seeds), end="\n\n", flush=True)


if __name__ == "__main__":
    main()
