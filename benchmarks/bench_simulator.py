"""Isotropic-noise simulator: the fused numba kernel against a straightforward torch loop.

Measures, in one run (medians of ``--repeats``):

* ``kernel``: :func:`thermocheck.simulator.simulate` on the paper preset's grid for one protocol
  (289 points, d = 3) for the paper's full 2·10⁶ iterations, without entropy, warm (compiled);
  also reported per point and step;
* ``baseline``: the same grid as one torch tensor, autograd for the loss gradient each step and a
  Python loop over iterations (the paper notebook's structure), timed over ``--baseline-iters``
  iterations and extrapolated to 2·10⁶;
* ``paper``: the paper preset end to end for that protocol (entropy included) — ``--paper``;
* ``quick``: the quick preset end to end, all three protocols (entropy included);
* ``compile``: numba compilation of the kernels into an empty cache (``--compile``).

Writes JSON (machine, versions, load average, config, results) to ``--out``. Example::

    python benchmarks/bench_simulator.py --protocol fixed_lr --repeats 3 --paper --compile

For the same-run comparison of the kernel with the RNG floor and this torch loop (interleaved
repeats), run ``python -m benchmarks``; its numbers are in ``benchmarks/results/``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numba
import numpy as np
import torch

from thermocheck import presets, theory
from thermocheck.simulator import simulate


def baseline_seconds_per_iteration(protocol: str, iterations: int, seed: int = 0) -> float:
    """The straightforward loop: one [289, 3] tensor, autograd each step, Python over iterations."""
    xs, ys = presets.PAPER.grids[protocol].values()
    x = torch.tensor(np.repeat(xs, ys.size))
    y = torch.tensor(np.tile(ys, xs.size))
    gen = torch.Generator().manual_seed(seed)
    mu = torch.zeros(3, dtype=torch.float64)
    mu[0] = 1.0
    if protocol == "fixed_sphere":
        coef, wd, radius = x * y**2, torch.zeros_like(x), y
    else:
        coef, wd, radius = x, y, torch.ones_like(x)
    w = torch.randn(x.numel(), 3, dtype=torch.float64, generator=gen)
    w = (w / w.norm(dim=1, keepdim=True) * radius[:, None]).requires_grad_(True)
    losses, radii = [], []
    start = time.perf_counter()
    for k in range(iterations):
        w.grad = None
        loss = 1 + (w * mu).sum(1) / w.norm(dim=1)
        loss.sum().backward()
        with torch.no_grad():
            r = w.norm(dim=1, keepdim=True)
            eps = torch.randn(w.shape, dtype=torch.float64, generator=gen) / r
            eps -= (eps * w).sum(1, keepdim=True) / r**2 * w
            eta = coef[:, None] * (r**2 if protocol == "fixed_elr" else 1.0)
            w -= eta * (w.grad + eps + wd[:, None] * w)
            if protocol == "fixed_sphere":
                w *= radius[:, None] / w.norm(dim=1, keepdim=True)
            if (k + 1) % 50 == 0:
                losses.append(loss.detach().clone())
                radii.append(r.squeeze(1).clone())
    return (time.perf_counter() - start) / iterations


def kernel_seconds(protocol: str, iterations: int) -> dict[str, float]:
    options = presets.PAPER.options(protocol)
    options.update(iterations=iterations, entropy_logs=0)
    res = simulate(protocol, **options)
    return dict(res.timings)


def cold_compile_seconds() -> float:
    """Seconds to import and compile the kernels into an empty numba cache (a fresh process)."""
    code = ("import time, numpy as np; t = time.perf_counter();"
            "from thermocheck.simulator import simulate;"
            "simulate('fixed_lr', d=3, grid={'lr': [0.01], 'wd': [0.01]}, iterations=1000,"
            " log_every=10, entropy_logs=0); print(time.perf_counter() - t)")
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        out = subprocess.run([sys.executable, "-c", code], env=env, check=True,
                             capture_output=True, text=True)
    return float(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--protocol", default="fixed_lr", choices=theory.PROTOCOLS)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline-iters", type=int, default=2000)
    parser.add_argument("--paper", action="store_true",
                        help="also run the paper preset with entropy")
    parser.add_argument("--compile", action="store_true", help="also time a cold numba compile")
    parser.add_argument("--out", default=None, help="JSON output path (default: none)")
    args = parser.parse_args(argv)
    paper_iters = presets.PAPER.iterations
    points = presets.PAPER.grids[args.protocol]
    m = int(np.prod([len(v) for v in points.values()]))
    results: dict[str, Any] = {}

    kernel_seconds(args.protocol, 50_000)  # warm: compile or load the cache
    runs = [kernel_seconds(args.protocol, paper_iters) for _ in range(args.repeats)]
    kernel = statistics.median(r["kernel_s"] for r in runs)
    results["kernel"] = {"seconds": kernel, "all": [r["kernel_s"] for r in runs],
                         "ns_per_point_step": 1e9 * kernel / (m * paper_iters),
                         "total_seconds": statistics.median(r["total_s"] for r in runs)}
    print(f"kernel: {kernel:.2f} s for {m} points × {paper_iters} iterations "
          f"({results['kernel']['ns_per_point_step']:.1f} ns per point-step, wall)", flush=True)

    baseline_seconds_per_iteration(args.protocol, 50)  # warm-up
    per_it = [baseline_seconds_per_iteration(args.protocol, args.baseline_iters)
              for _ in range(args.repeats)]
    base = statistics.median(per_it)
    results["baseline"] = {"seconds_per_iteration": base, "all": per_it,
                           "extrapolated_seconds": base * paper_iters}
    results["speedup"] = base * paper_iters / kernel
    print(f"baseline: {1e6 * base:.1f} µs/iteration → {base * paper_iters:.0f} s extrapolated; "
          f"speed-up {results['speedup']:.1f}×", flush=True)

    if args.paper:
        t = time.perf_counter()
        res = presets.PAPER.run(args.protocol)
        results["paper"] = {"seconds": time.perf_counter() - t, **res.timings,
                            "stationary": sum(s.stationary for s in res.grid)}
        print(f"paper preset ({args.protocol}, with entropy): {results['paper']['seconds']:.1f} s "
              f"(kernel {res.timings['kernel_s']:.1f} s, entropy {res.timings['entropy_s']:.1f} s)",
              flush=True)

    quick = {}
    t = time.perf_counter()
    for protocol in theory.PROTOCOLS:
        t0 = time.perf_counter()
        res = presets.QUICK.run(protocol)
        quick[protocol] = {"seconds": time.perf_counter() - t0, **res.timings}
    results["quick"] = {"seconds": time.perf_counter() - t, "protocols": quick}
    print(f"quick preset (3 protocols, warm cache): {results['quick']['seconds']:.1f} s",
          flush=True)

    if args.compile:
        results["cold_compile_seconds"] = cold_compile_seconds()
        print(f"cold numba compile: {results['cold_compile_seconds']:.1f} s", flush=True)

    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "cpus": os.cpu_count(), "numba_threads": numba.get_num_threads(),
                    "load_average": os.getloadavg()},
        "versions": {"python": platform.python_version(), "numpy": np.__version__,
                     "numba": numba.__version__, "torch": torch.__version__},
        "config": vars(args), "results": results,
    }
    if args.out:
        with open(args.out, "w", encoding="utf-8") as fh:
            json.dump(report, fh, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
