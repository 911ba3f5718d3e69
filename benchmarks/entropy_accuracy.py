"""Bias of the k-NN sphere-entropy estimators against exact VMF and uniform entropies, and timing.

Prints markdown tables: for each sample law and N, the bias (mean over seeds ± standard error, in
nats) of ``sphere_entropy`` with each method (k = 1, digamma constant), and the largest error of
any single estimate with the default method. Then the wall time of one default call on N
snapshots of dimension d = 97200 (the CIFAR-100 ConvNet of the paper), float32 rows.

Run: ``python benchmarks/entropy_accuracy.py`` (about 5 minutes on 2 CPU cores, 1.6 GB for the
timing input); ``--device cuda`` times the torch path on a GPU instead.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from thermocheck import vmf
from thermocheck.entropy import sphere_entropy

METHODS = ("geodesic", "angles", "chord")
# (label, d, kappa); kappa None is the uniform law.
CASES = [
    ("VMF d=3 κ=1", 3, 1.0),
    ("VMF d=3 κ=10", 3, 10.0),
    ("VMF d=3 κ=100", 3, 100.0),
    ("VMF d=5 κ=1", 5, 1.0),
    ("VMF d=5 κ=10", 5, 10.0),
    ("VMF d=5 κ=100", 5, 100.0),
    ("VMF d=10 κ=50", 10, 50.0),
    ("uniform d=3", 3, None),
    ("uniform d=10", 10, None),
    ("uniform d=100", 100, None),
]


def sample(d: int, kappa: float | None, n: int, seed: int) -> np.ndarray:
    if kappa is None:
        return np.random.default_rng(seed).standard_normal((n, d))
    return vmf.sample(d, kappa, n, rng=seed)


def exact_entropy(d: int, kappa: float | None) -> float:
    return float(vmf.entropy_uniform(d) if kappa is None else vmf.entropy(d, kappa))


def accuracy_table(n: int, seeds: int) -> str:
    lines = [
        f"N = {n}, k = 1, {seeds} seeds: bias in nats (mean ± standard error)",
        "",
        "| sample | exact S | " + " | ".join(METHODS) + " | geodesic max abs error |",
        "|---|---|" + "---|" * len(METHODS) + "---|",
    ]
    for label, d, kappa in CASES:
        exact = exact_entropy(d, kappa)
        errors = {m: [] for m in METHODS}
        for seed in range(seeds):
            w = sample(d, kappa, n, seed)
            for method in METHODS:
                errors[method].append(sphere_entropy(w, method=method) - exact)
        cells = []
        for method in METHODS:
            e = np.asarray(errors[method])
            cells.append(f"{e.mean():+.3f} ± {e.std(ddof=1) / math.sqrt(seeds):.3f}")
        worst = np.abs(errors["geodesic"]).max()
        lines.append(f"| {label} | {exact:.3f} | " + " | ".join(cells) + f" | {worst:.3f} |")
    return "\n".join(lines)


def timing(n: int, d: int, device: str) -> str:
    w = np.random.default_rng(0).standard_normal((n, d), dtype=np.float32)
    if device != "cpu":
        import torch

        w = torch.from_numpy(w).to(device)
        sphere_entropy(w[:64])  # warm-up: CUDA context and kernels
        torch.cuda.synchronize()
    start = time.perf_counter()
    sphere_entropy(w)
    if device != "cpu":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    return (
        f"One default call (geodesic, k = 1), N = {n}, d = {d}, float32 on {device}: "
        f"{seconds:.1f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10, help="seeds per case (>= 5)")
    parser.add_argument("--n", type=int, nargs="+", default=[4000, 1000], help="sample sizes")
    parser.add_argument("--timing-n", type=int, default=4000, help="rows of the timing input")
    parser.add_argument("--timing-d", type=int, default=97200, help="columns of the timing input")
    parser.add_argument("--device", default="cpu", help="cpu, or a torch device for the timing")
    parser.add_argument("--skip-accuracy", action="store_true", help="only the timing")
    args = parser.parse_args()
    if not args.skip_accuracy:
        for n in args.n:
            print(accuracy_table(n, args.seeds), end="\n\n", flush=True)
    print(timing(args.timing_n, args.timing_d, args.device))


if __name__ == "__main__":
    main()
