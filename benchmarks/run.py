"""Hot paths of thermocheck against the library a user would reach for, measured in one run.

``python -m benchmarks [--quick] [--out-dir benchmarks/results]`` times each path and its peers
*interleaved*: every repeat runs each contender once, in an order that rotates between repeats, so
load from other jobs on shared cores falls on all of them alike. Each contender is warmed up once;
the reported numbers are the median and the range (min, max) over the repeats. The best peer is
the one with the smallest median, and the ratio is the median over the repeats of thermocheck's time
over that peer's time in the same repeat (< 1: thermocheck is faster): two runs a few seconds apart
see nearly the same load, which a ratio of medians taken at different moments does not. Compare
ratios, not absolute times, across machines or load.

Paths and peers:

* ``vmf_scalar``: one call of :func:`thermocheck.vmf.entropy` against the textbook formula with
  scipy's ``ive`` and against mpmath (20 digits);
* ``vmf_vector``: 10⁴ values at once against the same scipy formula (where scipy is finite);
* ``entropy``: :func:`thermocheck.entropy.sphere_entropy` (k = 1, geodesic) against the same
  estimate from scikit-learn's brute-force ``NearestNeighbors`` and from scipy's ``cKDTree`` (only
  up to d = 10: a k-d tree degenerates to a slow brute force beyond), on uniform directions; a
  sample of a call under half a second is the median of three in a row (:func:`_steady`);
* ``simulator``: the numba kernel on the paper's 17 × 17 grid (d = 3) against the RNG floor (the
  same number of normals from numpy's SFC64 generator, split over the kernel's threads) and the
  per-step torch loop of ``benchmarks/bench_simulator.py`` (timed over fewer iterations and
  scaled to the kernel's);
* ``nets``: the batched CPU trainer with ``M`` models against the same models trained one at a time
  (``benchmarks/bench_nets.py``), in model-iterations per second turned into seconds per
  model-iteration;
* ``imports``: ``import thermocheck.laws`` in a fresh interpreter against
  ``import numpy, scipy.special`` (what it cannot avoid);
* ``verify``: the main job, ``thermocheck verify`` on the quick preset (every point simulated
  again, numba's cache warm), against the same run with every figure drawn by the main process
  (:mod:`thermocheck.figure_pool` without its helper).

Writes ``benchmark.json`` (machine, versions, configuration, every sample) and ``benchmark.md`` (the
table the README quotes) to ``--out-dir``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_VERSION = 1
DEFAULT_OUT = Path(__file__).with_name("results")

# Contender: a callable that runs the work once and returns its seconds (or None: wall time).
Contender = Callable[[], float | None]


@dataclass(frozen=True)
class Sizes:
    """Problem sizes of one benchmark mode."""

    repeats: int
    vmf_calls: int  # scalar calls per timed sample
    entropy_dims: tuple[int, ...]
    entropy_sizes: tuple[int, ...]
    kernel_iterations: int
    torch_iterations: int
    net_models: int
    net_steps: int
    verify_protocol: str  # ``--protocol`` of the timed ``thermocheck verify``


FULL = Sizes(repeats=5, vmf_calls=2000, entropy_dims=(3, 10, 100, 1000, 10_000),
             entropy_sizes=(1000, 4000), kernel_iterations=200_000, torch_iterations=1000,
             net_models=8, net_steps=10, verify_protocol="all")
QUICK = Sizes(repeats=3, vmf_calls=200, entropy_dims=(3, 100), entropy_sizes=(300,),
              kernel_iterations=50_000, torch_iterations=50, net_models=2, net_steps=2,
              verify_protocol="fixed_sphere")


@dataclass
class Comparison:
    """One path at one size: thermocheck's samples and each peer's, in seconds."""

    path: str
    size: str
    ours: list[float]
    peers: dict[str, list[float]]
    notes: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        stats = {name: _stats(s) for name, s in {"thermocheck": self.ours, **self.peers}.items()}
        best = min(self.peers, key=lambda name: stats[name]["median"])
        return {**asdict(self), "stats": stats, "best_peer": best,
                "ratio": statistics.median(o / p for o, p in zip(self.ours, self.peers[best],
                                                                  strict=True))}


def _stats(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}


def interleaved(contenders: dict[str, Contender], repeats: int) -> dict[str, list[float]]:
    """Seconds of each contender over ``repeats`` rounds, each round running every contender once
    in an order rotated by one from the previous round; one untimed warm-up run each first."""
    for run in contenders.values():
        run()
    names = list(contenders)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            own = contenders[name]()
            samples[name].append(time.perf_counter() - start if own is None else own)
    return samples


def _compare(path: str, size: str, contenders: dict[str, Contender], repeats: int,
             **notes: Any) -> Comparison:
    samples = interleaved(contenders, repeats)
    ours = samples.pop("thermocheck")
    return Comparison(path, size, ours, samples, notes)


def _wall(fn: Callable[[], Any]) -> Contender:
    """A contender timed by its wall time (its result is discarded)."""

    def run() -> None:
        fn()

    return run


#: A call shorter than this is timed as the median of :data:`STEADY_CALLS` back-to-back calls.
STEADY_BELOW_S = 0.5
STEADY_CALLS = 3


def _steady(fn: Callable[[], Any]) -> Contender:
    """A contender timed in its steady state: when a call (the untimed warm-up's) takes less than
    :data:`STEADY_BELOW_S`, each sample is the median of :data:`STEADY_CALLS` back-to-back calls.
    The first call after another contender's shares the cores with the threads that one left
    spinning (scikit-learn's OpenMP pool, an OpenBLAS pool): measured at d = 100, N = 1000,
    thermocheck's single calls took 6–8 ms right after scikit-learn's, 4.9 ms in a row."""
    calls = 0  # until the warm-up: a first call (compiling, say) and a timed one decide

    def run() -> float:
        nonlocal calls
        if calls == 0:
            fn()
        seconds = []
        for _ in range(max(calls, 1)):
            start = time.perf_counter()
            fn()
            seconds.append(time.perf_counter() - start)
        if calls == 0:
            calls = STEADY_CALLS if seconds[0] < STEADY_BELOW_S else 1
        return statistics.median(seconds)

    return run


def _per_call(fn: Callable[[], Any], calls: int) -> Contender:
    def run() -> float:
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        return (time.perf_counter() - start) / calls

    return run


# ---------------------------------------------------------------------------------------------
# VMF
# ---------------------------------------------------------------------------------------------


def scipy_vmf_entropy(d: int, kappa: Any) -> Any:
    """``S = (d/2) log 2π − ν log κ + log ive(ν, κ) + κ(1 − A)`` from scipy's ``ive`` (App. E)."""
    from scipy.special import ive

    nu = 0.5 * d - 1.0
    i_nu = ive(nu, kappa)
    return (0.5 * d * math.log(2 * math.pi) - nu * np.log(kappa) + np.log(i_nu)
            + kappa * (1.0 - ive(nu + 1.0, kappa) / i_nu))


def mpmath_vmf_entropy(d: int, kappa: float) -> float:
    """The same entropy with mpmath's Bessel function at 20 digits."""
    import mpmath as mp

    with mp.workdps(20):
        nu, k = mp.mpf(d) / 2 - 1, mp.mpf(kappa)
        i_nu = mp.besseli(nu, k)
        a = mp.besseli(nu + 1, k) / i_nu
        return float(d / 2 * mp.log(2 * mp.pi) - nu * mp.log(k) + mp.log(i_nu) - k + k * (1 - a))


def bench_vmf(sizes: Sizes) -> list[Comparison]:
    from thermocheck import vmf

    out = []
    for d, kappa in ((3, 5.0), (100, 50.0)):
        out.append(_compare("vmf_scalar", f"d={d}, κ={kappa:g}", {
            "thermocheck": _per_call(partial(vmf.entropy, d, kappa), sizes.vmf_calls),
            "scipy_ive": _per_call(partial(scipy_vmf_entropy, d, kappa), sizes.vmf_calls),
            "mpmath": _per_call(partial(mpmath_vmf_entropy, d, kappa),
                                max(1, sizes.vmf_calls // 20)),
        }, sizes.repeats, unit="seconds per call",
            difference_to_scipy=abs(vmf.entropy(d, kappa) - float(scipy_vmf_entropy(d, kappa)))))
    kappas = np.logspace(-3, 3, 10_000)
    for d in (3, 100):
        assert np.all(np.isfinite(scipy_vmf_entropy(d, kappas)))  # scipy is finite here
        out.append(_compare("vmf_vector", f"d={d}, 10⁴ κ ∈ [1e-3, 1e3]", {
            "thermocheck": _wall(partial(vmf.entropy, d, kappas)),
            "scipy_ive": _wall(partial(scipy_vmf_entropy, d, kappas)),
        }, sizes.repeats, unit="seconds per 10⁴ values"))
    return out


# ---------------------------------------------------------------------------------------------
# Entropy
# ---------------------------------------------------------------------------------------------


def _estimate_from_chords(chords: np.ndarray, d: int) -> float:
    """The geodesic KL estimate (k = 1) from nearest chord lengths: θ = 2 asin(c/2)."""
    from scipy.special import digamma

    from thermocheck.entropy import log_cap_volume

    theta = 2.0 * np.arcsin(np.minimum(chords, 2.0) / 2.0)
    return float(np.mean(log_cap_volume(theta, d - 1)) + digamma(chords.size) - digamma(1))


def sklearn_entropy(x: np.ndarray) -> float:
    """Nearest neighbours of the unit rows by scikit-learn's brute force, then the estimate."""
    from sklearn.neighbors import NearestNeighbors

    dist, _ = NearestNeighbors(n_neighbors=2, algorithm="brute").fit(x).kneighbors(x)
    return _estimate_from_chords(dist[:, 1], x.shape[1])


def kdtree_entropy(x: np.ndarray) -> float:
    """Nearest neighbours of the unit rows by scipy's cKDTree, then the estimate."""
    from scipy.spatial import cKDTree

    dist, _ = cKDTree(x).query(x, k=2)
    return _estimate_from_chords(dist[:, 1], x.shape[1])


def bench_entropy(sizes: Sizes) -> list[Comparison]:
    from thermocheck.entropy import sphere_entropy

    out = []
    for d in sizes.entropy_dims:
        for n in sizes.entropy_sizes:
            w = np.random.default_rng(d * n).standard_normal((n, d))
            unit = w / np.linalg.norm(w, axis=1, keepdims=True)  # peers get unit rows for free
            contenders: dict[str, Contender] = {
                "thermocheck": _steady(partial(sphere_entropy, w)),
                "sklearn_brute": _steady(partial(sklearn_entropy, unit)),
            }
            if d <= 10:
                contenders["scipy_ckdtree"] = _steady(partial(kdtree_entropy, unit))
            ours = sphere_entropy(w)
            out.append(_compare("sphere_entropy", f"d={d}, N={n}", contenders, sizes.repeats,
                                unit="seconds per estimate",
                                difference_to_sklearn=abs(ours - sklearn_entropy(unit))))
    return out


# ---------------------------------------------------------------------------------------------
# Simulator
# ---------------------------------------------------------------------------------------------


def rng_floor(count: int, threads: int, seed: int = 0) -> None:
    """Draw ``count`` standard normals with numpy's SFC64, split over ``threads`` threads."""
    gens = [np.random.Generator(np.random.SFC64(s))
            for s in np.random.SeedSequence(seed).spawn(threads)]
    chunk = 1 << 18

    def work(i: int) -> None:
        buf = np.empty(chunk)
        left = count // threads + (i < count % threads)
        while left > 0:
            m = min(left, chunk)
            gens[i].standard_normal(out=buf[:m])
            left -= m

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(work, range(threads)))


def bench_simulator(sizes: Sizes) -> list[Comparison]:
    import numba

    from benchmarks.bench_simulator import baseline_seconds_per_iteration
    from thermocheck import presets
    from thermocheck.simulator import simulate

    protocol, iters = "fixed_lr", sizes.kernel_iterations
    options = presets.PAPER.options(protocol)
    options.update(iterations=iters, entropy_logs=0)
    points = int(np.prod([len(v) for v in options["grid"].values()]))
    normals = points * options["d"] * iters
    threads = numba.get_num_threads()

    def kernel() -> float:
        return float(simulate(protocol, **options).timings["kernel_s"])

    def torch_loop() -> float:
        return baseline_seconds_per_iteration(protocol, sizes.torch_iterations) * iters

    return [_compare("simulator", f"{points} points, d={options['d']}, {iters} iterations", {
        "thermocheck": kernel,
        "rng_floor_sfc64": lambda: rng_floor(normals, threads),
        "torch_per_step": torch_loop,
    }, sizes.repeats, unit="seconds (torch loop scaled from "
                          f"{sizes.torch_iterations} iterations)",
        threads=threads, normals=normals)]


# ---------------------------------------------------------------------------------------------
# Networks
# ---------------------------------------------------------------------------------------------


def bench_nets(sizes: Sizes) -> list[Comparison]:
    import torch

    from benchmarks.bench_nets import _config
    from thermocheck.nets import Trainer, synthetic

    args = argparse.Namespace(width=4, batch=32, device="cpu")
    data = synthetic(1024, channels=1, size=8)
    m, steps = sizes.net_models, sizes.net_steps
    batched = Trainer(_config(args, m), data=data)
    singles = [Trainer(_config(args, 1), data=data) for _ in range(m)]

    def run_batched() -> float:
        start = time.perf_counter()
        for _ in range(steps):
            batched.train_step()
        return (time.perf_counter() - start) / (m * steps)

    def run_singles() -> float:
        start = time.perf_counter()
        for trainer in singles:
            for _ in range(steps):
                trainer.train_step()
        return (time.perf_counter() - start) / (m * steps)

    return [_compare("nets_cpu", f"ConvNet k=4, M={m}, batch 32, 8×8", {
        "thermocheck": run_batched, "one_model_at_a_time": run_singles,
    }, sizes.repeats, unit="seconds per model-iteration", torch_threads=torch.get_num_threads())]


# ---------------------------------------------------------------------------------------------
# Imports
# ---------------------------------------------------------------------------------------------


def _import_seconds(statement: str) -> Contender:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"

    def run() -> float:
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                             text=True)
        return float(out.stdout.split()[-1])

    return run


def bench_imports(sizes: Sizes) -> list[Comparison]:
    return [_compare("import", "import thermocheck.laws", {
        "thermocheck": _import_seconds("import thermocheck.laws"),
        "numpy_scipy_special": _import_seconds("import numpy, scipy.special"),
    }, sizes.repeats, unit="seconds in a fresh interpreter")]


# ---------------------------------------------------------------------------------------------
# The main job
# ---------------------------------------------------------------------------------------------


def _verify_run(protocol: str, folder: Path, *, one_process: bool) -> Contender:
    """``thermocheck verify`` (quick preset) in a fresh interpreter, every point simulated again
    (``--force``, its own cache); ``one_process``: every figure drawn by the main process."""
    code = ("import sys, thermocheck.figure_pool as pool; "
            + ("pool.MIN_FIGURES_FOR_HELPER = 10**9; " if one_process else "")
            + "from thermocheck.cli import main; sys.exit(main(sys.argv[1:]))")
    argv = [sys.executable, "-c", code, "verify", "--protocol", protocol, "--force", "--quiet",
            "--out", str(folder / "report"), "--cache", str(folder / "cache")]

    def run() -> None:
        subprocess.run(argv, check=True, capture_output=True)

    return run


def bench_verify(sizes: Sizes) -> list[Comparison]:
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        return [_compare("verify", f"quick preset, --protocol {sizes.verify_protocol}", {
            "thermocheck": _verify_run(sizes.verify_protocol, Path(scratch), one_process=False),
            "figures_on_one_process": _verify_run(sizes.verify_protocol, Path(scratch),
                                                  one_process=True),
        }, sizes.repeats, unit="seconds of wall time, warm numba cache, results recomputed")]


SECTIONS: dict[str, Callable[[Sizes], list[Comparison]]] = {
    "vmf": bench_vmf, "entropy": bench_entropy, "simulator": bench_simulator,
    "nets": bench_nets, "imports": bench_imports, "verify": bench_verify,
}


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def _seconds(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-9:.3g} ns"


def _cell(stats: dict[str, float]) -> str:
    return f"{_seconds(stats['median'])} ({_seconds(stats['min'])}–{_seconds(stats['max'])})"


def markdown(report: dict[str, Any]) -> str:
    """The comparison table: medians with (min–max) over the interleaved repeats."""
    lines = ["| path | size | thermocheck | best peer | peer time | ratio |",
             "|---|---|---|---|---|---|"]
    for row in report["comparisons"]:
        best = row["best_peer"]
        lines.append(f"| {row['path']} | {row['size']} | {_cell(row['stats']['thermocheck'])} | "
                     f"{best} | {_cell(row['stats'][best])} | {row['ratio']:.2f} |")
    machine = report["machine"]
    lines.append("")
    lines.append(f"{machine['cpus']} CPUs, load average {machine['load_average'][0]:.1f} at the "
                 f"start; medians (min–max) of {report['config']['repeats']} interleaved repeats; "
                 "ratio = thermocheck / best peer (< 1: faster).")
    return "\n".join(lines) + "\n"


def _machine() -> dict[str, Any]:
    return {"platform": platform.platform(), "processor": platform.processor(),
            "cpus": os.cpu_count(), "load_average": os.getloadavg()}


def _versions() -> dict[str, str]:
    import scipy
    import sklearn
    import torch

    import thermocheck

    return {"python": platform.python_version(), "numpy": np.__version__,
            "scipy": scipy.__version__, "sklearn": sklearn.__version__,
            "torch": torch.__version__, "thermocheck": thermocheck.__version__}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m benchmarks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (a couple of minutes)")
    parser.add_argument("--repeats", type=int, default=None, help="interleaved repeats")
    parser.add_argument("--sections", nargs="+", choices=list(SECTIONS), default=list(SECTIONS))
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    if args.repeats is not None:
        if args.repeats < 1:
            parser.error(f"--repeats={args.repeats} is invalid: it must be an integer >= 1")
        sizes = Sizes(**{**asdict(sizes), "repeats": args.repeats})
    report: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION, "machine": _machine(), "versions": _versions(),
        "config": {"mode": "quick" if args.quick else "full", **asdict(sizes),
                   "sections": args.sections},
        "comparisons": [],
    }
    for name in args.sections:
        for comparison in SECTIONS[name](sizes):
            row = comparison.summary()
            report["comparisons"].append(row)
            print(f"{row['path']:15s} {row['size']:38s} {_cell(row['stats']['thermocheck'])} vs "
                  f"{row['best_peer']} {_cell(row['stats'][row['best_peer']])}: "
                  f"ratio {row['ratio']:.2f}", flush=True)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "benchmark.json").write_text(json.dumps(report, indent=1), encoding="utf-8")
    (args.out_dir / "benchmark.md").write_text(markdown(report), encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
