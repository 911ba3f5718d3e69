"""Calibration of the k-NN sphere-entropy bias across temperature grids, on VMF samples.

The Maxwell relation V3 is checked on networks of d ≈ 2·10⁴–10⁵ parameters from N ≤ 4000 direction
snapshots, where every k-NN estimator is off by hundreds to thousands of nats. This script measures
that bias, and how it changes with the temperature, on samples whose entropy is known exactly:
VMF(κ) on S^{d−1} (:func:`thermocheck.vmf.sample`, :func:`thermocheck.vmf.entropy`) about a
mean direction drawn uniformly at random for each sample (network snapshots have an arbitrary
mean; every method is rotation-invariant, so the draw around e₁ is only reflected onto it), for
every method of :func:`thermocheck.entropy.sphere_entropy` (k = 1, digamma constant), with

* κ = c·d for c = 10^(q/4) log-spaced (a quarter decade apart): c ∈ [0.03, 1000] for d ≤ 1000
  (for d = 3 this holds the paper's isotropic grids, κ = 1/T = 2/(η_eff σ²) ∈ [20, 2000]) and
  c ∈ [0.03, 100] above (the networks' κ/d is of order 0.1–10);
* d ∈ {2, 3, 10, 30, 100, 1000, 10⁴, 24408 (the CIFAR-10 ConvNet)} and, for geodesic and chord
  only, 10⁵ (close to the CIFAR-100 ConvNet's 97200) on five values of c;
* N ∈ {250, 1000, 4000}, and N ∈ {50, 100} for d ≤ 100 (the simulator's slowest grid points keep
  50 snapshots per estimate), each estimated on the first N rows of one sample of independent
  rows.
  N = 4000 is computed at every c for d ≤ 1000, at five (geodesic) or three (angles, chord)
  values of c for d = 10⁴, and at three values (geodesic, chord) for d = 24408. ``angles`` holds
  an N × (d − 1) float64 matrix, so it is skipped at N = 4000 above d = 10⁴ and at d = 10⁵.

Outputs (``--out``, default this folder): ``entropy_calibration.csv`` (one row per estimate,
written as it goes; a rerun resumes from it), ``entropy_calibration.json`` (per method, d, N and
c: the bias, its standard error over seeds, the scatter of one estimate, and the slope
∂bias/∂log κ with its standard error), ``entropy_calibration.png`` and, on standard output, the
tables of the report: bias and slope per unit of the gas constant R = (d − 1)/2, and the error
that the bias causes on the Maxwell coefficients of the paper's network grids (Table 3). With
``--package-table PATH`` it also writes the table that :mod:`thermocheck.calibration` ships
(``thermocheck/data/entropy_bias_v2.json``).

Run: ``OMP_NUM_THREADS=1 python benchmarks/entropy_calibration.py --package-table
thermocheck/data/entropy_bias_v2.json`` (about 20 CPU-minutes on one core from scratch; a rerun
resumes from the CSV); ``--quick`` runs a small subset in well under a minute (outputs named
``entropy_calibration_quick.*``).
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck import calibration, vmf
from thermocheck.entropy import sphere_entropy

METHODS = ("geodesic", "angles", "chord")
HERE = Path(__file__).resolve().parent
FIELDS = ("method", "d", "n", "q", "c", "kappa", "seed", "estimate", "exact", "bias", "seconds")


@dataclass(frozen=True)
class Block:
    """Estimates of ``methods`` at every ``(q, seed)`` for dimension ``d`` and sizes ``sizes``;
    the concentration is ``κ = d·10^(q/4)``."""

    d: int
    quarters: tuple[int, ...]
    seeds: int
    sizes: tuple[int, ...]
    methods: tuple[str, ...] = METHODS


_WIDE = tuple(range(-6, 13))  # c = 0.032 … 1000
_NARROW = tuple(range(-6, 9))  # c = 0.032 … 100
_TEN = (-4, 0, 4)  # c = 0.1, 1, 10
_FIVE = (-4, -2, 0, 2, 4)  # c = 0.1 … 10, half a decade apart
_ALL_N = (250, 1000, 4000)

_SMALL_N = (50, 100)  # the simulator's slowest points keep 50 snapshots per estimate

FULL_PLAN = (
    Block(2, _WIDE, 8, _SMALL_N + _ALL_N),
    Block(3, _WIDE, 8, _SMALL_N),
    Block(10, _WIDE, 8, _SMALL_N),
    Block(30, _WIDE, 8, _SMALL_N),
    Block(100, _WIDE, 8, _SMALL_N),
    Block(3, _WIDE, 8, _ALL_N),
    Block(10, _WIDE, 8, _ALL_N),
    Block(30, _WIDE, 8, _ALL_N),
    Block(100, _WIDE, 8, _ALL_N),
    Block(1000, _WIDE, 4, _ALL_N),
    Block(10_000, _NARROW, 3, (250, 1000)),
    Block(10_000, _FIVE, 1, (4000,), ("geodesic",)),
    Block(10_000, _TEN, 1, (4000,), ("angles", "chord")),
    Block(24_408, _NARROW, 3, (250, 1000)),
    Block(24_408, _TEN, 1, (4000,), ("geodesic", "chord")),
    Block(100_000, _FIVE, 2, (250, 1000), ("geodesic", "chord")),
)
QUICK_PLAN = tuple(Block(d, tuple(range(-4, 5)), 2, (1000,)) for d in (3, 100, 1000))


# ---------------------------------------------------------------------------------------------
# Collection
# ---------------------------------------------------------------------------------------------


def _jobs(plan: Iterable[Block]) -> dict[tuple[int, int, int], list[tuple[int, str]]]:
    """``(d, q, seed) -> [(N, method), …]``: one sample per key, of the largest N it needs."""
    jobs: dict[tuple[int, int, int], list[tuple[int, str]]] = defaultdict(list)
    for b in plan:
        for q in b.quarters:
            for seed in range(b.seeds):
                jobs[b.d, q, seed].extend((n, m) for n in b.sizes for m in b.methods)
    return jobs


def collect(plan: Sequence[Block], path: Path) -> list[dict[str, Any]]:
    """Run every estimate of ``plan`` not yet in the CSV at ``path``; return all rows."""
    rows = read_rows(path) if path.exists() else []
    done = {(r["method"], r["d"], r["n"], r["q"], r["seed"]) for r in rows}
    new = not path.exists()
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        if new:
            writer.writeheader()
        for (d, q, seed), todo in sorted(_jobs(plan).items()):
            todo = [(n, m) for n, m in todo if (m, d, n, q, seed) not in done]
            if not todo:
                continue
            c = 10.0 ** (q / 4)
            kappa = c * d
            rng = np.random.default_rng(np.random.SeedSequence([d, q + 100, seed]))
            mean = np.random.default_rng(np.random.SeedSequence([d, q + 100, seed, 1]))
            w = vmf.sample(d, kappa, max(n for n, _ in todo), rng=rng,
                           mean_direction=mean.standard_normal(d))
            exact = float(vmf.entropy(d, kappa))
            for n, method in todo:
                start = time.perf_counter()
                estimate = sphere_entropy(w[:n], method=method)
                row = {"method": method, "d": d, "n": n, "q": q, "c": c, "kappa": kappa,
                       "seed": seed, "estimate": estimate, "exact": exact,
                       "bias": estimate - exact, "seconds": time.perf_counter() - start}
                writer.writerow(row)
                rows.append(row)
            fh.flush()
            print(f"d={d} c={c:.3g} seed={seed}: {len(todo)} estimates", flush=True)
    return rows


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a calibration CSV, typed."""
    ints, floats = ("d", "n", "q", "seed"), ("c", "kappa", "estimate", "exact", "bias", "seconds")
    with path.open(newline="") as fh:
        return [{**r, **{k: int(r[k]) for k in ints}, **{k: float(r[k]) for k in floats}}
                for r in csv.DictReader(fh)]


# ---------------------------------------------------------------------------------------------
# Aggregation: the bias per node and the shipped table
# ---------------------------------------------------------------------------------------------


def aggregate(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (method, d, N, q): mean bias over seeds, its standard error and the scatter (standard
    deviation) of one estimate. A node with one seed borrows the scatter of the same (method, d,
    q) at the nearest N with several seeds, scaled by ``sqrt(N_other/N)`` (the k-NN estimate is a
    mean of N terms), and says so in ``scatter_from``."""
    groups: dict[tuple[str, int, int, int], list[float]] = defaultdict(list)
    for r in rows:
        groups[r["method"], r["d"], r["n"], r["q"]].append(r["bias"])
    nodes = []
    for (method, d, n, q), biases in sorted(groups.items()):
        b = np.asarray(biases)
        node = {"method": method, "d": d, "n": n, "q": q, "c": 10.0 ** (q / 4), "seeds": b.size,
                "bias": float(b.mean()), "scatter": math.nan, "stderr": math.nan,
                "scatter_from": "seeds"}
        if b.size > 1:
            node["scatter"] = float(b.std(ddof=1))
        else:
            others = [(abs(math.log(n2 / n)), n2, v) for (m2, d2, n2, q2), v in groups.items()
                      if (m2, d2, q2) == (method, d, q) and len(v) > 1]
            if others:
                _, n2, v = min(others)
                node["scatter"] = float(np.std(v, ddof=1) * math.sqrt(n2 / n))
                node["scatter_from"] = f"N={n2}, scaled by sqrt({n2}/{n})"
        node["stderr"] = node["scatter"] / math.sqrt(b.size)
        nodes.append(node)
    return nodes


def package_table(nodes: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The versioned table shipped in ``thermocheck/data`` (schema of
    :mod:`thermocheck.calibration`): one curve per (method, d, N) with the bias, its standard error
    and the scatter of one estimate, all per degree of freedom ``d − 1``, against log10(κ/d)."""
    curves: dict[tuple[str, int, int], list[dict[str, Any]]] = defaultdict(list)
    for node in nodes:
        if math.isfinite(node["stderr"]):
            curves[node["method"], node["d"], node["n"]].append(node)
    out = []
    for (method, d, n), pts in sorted(curves.items()):
        if len(pts) < calibration.MIN_NODES:
            continue
        pts = sorted(pts, key=lambda p: p["q"])
        m = d - 1

        def per_dof(values: Iterable[float], digits: int, m: int = m) -> list[float]:
            return [float(f"{v / m:.{digits}g}") for v in values]

        out.append({"method": method, "d": d, "n_samples": n,
                    "seeds": min(p["seeds"] for p in pts),
                    "log10_c": [p["q"] / 4 for p in pts],
                    "bias": per_dof((p["bias"] for p in pts), 5),
                    "stderr": per_dof((p["stderr"] for p in pts), 3),
                    "scatter": per_dof((p["scatter"] for p in pts), 3)})
    return {
        "schema_version": calibration.SCHEMA_VERSION,
        "table_version": calibration.TABLE_VERSION,
        "description": (
            "Bias (estimate minus exact entropy, nats) of thermocheck.entropy.sphere_entropy on "
            "independent von Mises-Fisher samples, per degree of freedom d - 1, against "
            "log10(kappa / d); stderr is the standard error of the mean over seeds, scatter the "
            "standard deviation of one estimate."),
        "estimator": {"function": "thermocheck.entropy.sphere_entropy", "k": 1,
                      "constant": "digamma"},
        "law": "von Mises-Fisher, independent rows (thermocheck.vmf.sample)",
        "generated_by": "benchmarks/entropy_calibration.py",
        "curves": out,
    }


def add_slopes(nodes: list[dict[str, Any]], table: calibration.CalibrationTable) -> None:
    """Add ``slope`` (∂bias/∂ln κ, nats) and ``slope_stderr`` to every node, from the local fit
    of :class:`thermocheck.calibration.CalibrationTable` on its own curve."""
    for node in nodes:
        node["slope"] = node["slope_stderr"] = math.nan
        curve = table.curve(node["method"], node["d"], node["n"])
        if curve is not None:
            fit = curve.at(node["q"] / 4)
            node["slope"], node["slope_stderr"] = fit.slope, fit.slope_stderr


# ---------------------------------------------------------------------------------------------
# Report: tables, the Maxwell coefficients of the paper's grids, the figure
# ---------------------------------------------------------------------------------------------


def summary_table(nodes: Sequence[dict[str, Any]], n: int) -> str:
    """Markdown: bias/R and slope/R at c = 0.1, 1, 10 and the change over c ∈ [0.1, 10], per
    method and d, at sample size n (R = (d − 1)/2)."""
    by = {(p["method"], p["d"], p["n"], p["q"]): p for p in nodes}
    ds = sorted({p["d"] for p in nodes if p["n"] == n})
    lines = [f"N = {n}: bias/R and slope (∂bias/∂ln κ)/R, R = (d − 1)/2; Δ = bias(c=10) − "
             "bias(c=0.1), over seeds (± standard error)", "",
             "| method | d | bias/R c=0.1 | c=1 | c=10 | slope/R c=0.1 | c=1 | c=10 | Δ/R |",
             "|---|---|---|---|---|---|---|---|---|"]
    for method in METHODS:
        for d in ds:
            if any((method, d, n, q) not in by for q in _TEN):
                continue
            pts = [by[method, d, n, q] for q in _TEN]
            R = (d - 1) / 2
            bias = [f"{p['bias'] / R:+.4f} ± {p['stderr'] / R:.4f}" for p in pts]
            slope = [f"{p['slope'] / R:+.4f} ± {p['slope_stderr'] / R:.4f}" for p in pts]
            delta = (pts[2]["bias"] - pts[0]["bias"]) / R
            delta_se = math.hypot(pts[2]["stderr"], pts[0]["stderr"]) / R
            lines.append(f"| {method} | {d} | " + " | ".join(bias + slope)
                         + f" | {delta:+.4f} ± {delta_se:.4f} |")
    return "\n".join(lines)


#: The paper's network grids (Table 3 of arXiv:2511.07308): d, queue N, and the log10 grids.
PAPER_GRIDS = {
    "ResNet-18 CIFAR-10/100": (43_692, 1000, {
        "fixed_elr": (-4 + np.arange(14) / 6, -3 + np.arange(5) / 2),
        "fixed_lr": (-3 + np.arange(19) / 6, -3 + np.arange(5) / 2)}),
    "ConvNet CIFAR-10": (24_408, 4000, {
        "fixed_elr": (-4 + np.arange(13) / 6, -3 + np.arange(9) / 4),
        "fixed_lr": (-3 + np.arange(13) / 6, -3 + np.arange(9) / 4)}),
    "ConvNet CIFAR-100": (97_200, 4000, {
        "fixed_elr": (-4 + np.arange(13) / 6, -2 + np.arange(9) / 4),
        "fixed_lr": (-3 + np.arange(13) / 6, -2 + np.arange(9) / 4)}),
}
#: The Maxwell coefficient combinations of Eq. 34 per protocol (rows over a0..a5), as in V3.
RATIOS = {
    "fixed_lr": {"(a1 − a2)/R": (0, 1, -1, 0, 0, 0), "(2a3 − a5)/R": (0, 0, 0, 2, 0, -1),
                 "(2a4 − a5)/R": (0, 0, 0, 0, 2, -1)},
    "fixed_elr": {"a2/R": (0, 0, 1, 0, 0, 0), "2a4/R": (0, 0, 0, 0, 2, 0),
                  "a5/R": (0, 0, 0, 0, 0, 1)},
}


def grid_kappa(protocol: str, d: int, lx: np.ndarray, ly: np.ndarray, c_centre: float
               ) -> np.ndarray:
    """κ = 1/T on the grid for a σ² that does not vary, scaled so that κ/d = ``c_centre`` at the
    grid's centre: fixed ELR κ = 2/(η_eff σ²) ∝ 1/η_eff; fixed LR κ = sqrt(2(d − 1)/(ηλσ²))
    ∝ (ηλ)^(−1/2)."""
    log_kappa = -lx if protocol == "fixed_elr" else -(lx + ly) / 2
    log_kappa = log_kappa * math.log(10)
    centre = 0.5 * (log_kappa.min() + log_kappa.max())
    return d * c_centre * np.exp(log_kappa - centre)


def maxwell_table(table: calibration.CalibrationTable,
                  c_centres: Sequence[float] = (0.3, 1.0, 3.0), drop_corner: bool = False,
                  methods: Sequence[str] = ("geodesic", "angles")) -> list[dict[str, Any]]:
    """The error each estimator's calibrated bias causes on each V3 ratio of the paper's network
    grids, for a σ² that does not vary and κ/d = ``c_centre`` at the grid's centre (complete grids,
    unweighted fits as in the paper; ``drop_corner`` removes the quarter of the states with the
    smallest ηλ (fixed LR) or η_eff (fixed ELR), i.e. the coldest, to show what an incomplete grid
    does)."""
    out = []
    for (name, (d, n, grids)), method in itertools.product(PAPER_GRIDS.items(), methods):
        for protocol, (gx, gy) in grids.items():
            lx, ly = (a.ravel() for a in np.meshgrid(gx, gy, indexing="ij"))
            for c0 in c_centres:
                kappa = grid_kappa(protocol, d, lx, ly, c0)
                keep = np.ones(lx.size, dtype=bool)
                if drop_corner:
                    s = lx if protocol == "fixed_elr" else lx + ly
                    keep = s >= np.quantile(s, 0.25)
                combos = [np.array(r, dtype=float) / ((d - 1) / 2)
                          for r in RATIOS[protocol].values()]
                drift = calibration.surface_drift(
                    d, n, kappa[keep], lx[keep] * math.log(10), ly[keep] * math.log(10), combos,
                    method=method, table=table)
                out.append({"setting": name, "protocol": protocol, "method": method, "d": d,
                            "n": n,
                            "c_centre": c0, "kappa_over_d": (float(kappa.min() / d),
                                                             float(kappa.max() / d)),
                            "incomplete": drop_corner, "points": int(keep.sum()),
                            "span_change_over_R": drift.span.change / ((d - 1) / 2),
                            "span_change_stderr_over_R": drift.span.change_stderr / ((d - 1) / 2),
                            "extrapolated": drift.span.extrapolated,
                            "ratios": {k: (float(v), float(e)) for k, v, e in
                                       zip(RATIOS[protocol], drift.shifts, drift.stderrs,
                                           strict=True)}})
    return out


def maxwell_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`maxwell_table`."""
    lines = ["| setting | protocol | method | κ/d over the grid | grid | Δbias/R over the span | "
             "error on the three ratios (shift ± calibration error) |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        lo, hi = r["kappa_over_d"]
        ratios = "; ".join(f"{k}: {v:+.4f} ± {e:.4f}" for k, (v, e) in r["ratios"].items())
        grid = f"{r['points']} pts" + (" (coldest quarter dropped)" if r["incomplete"] else "")
        flag = " (extrapolated)" if r["extrapolated"] else ""
        lines.append(f"| {r['setting']} | {r['protocol']} | {r['method']} | {lo:.3g}–{hi:.3g} | "
                     f"{grid} | "
                     f"{r['span_change_over_R']:+.3f} ± {r['span_change_stderr_over_R']:.3f}"
                     f"{flag} | {ratios} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Held-out laws: does a VMF-calibrated correction help on other laws?
# ---------------------------------------------------------------------------------------------


def _mixture(d: int, kappa: float, n: int, rng: np.random.Generator) -> np.ndarray:
    """n rows of the equal mixture of VMF(e₁, κ) and VMF(e₂, κ)."""
    k = int(rng.binomial(n, 0.5))
    e2 = np.zeros(d)
    e2[1] = 1.0
    return np.vstack([vmf.sample(d, kappa, k, rng=rng) if k else np.empty((0, d)),
                      vmf.sample(d, kappa, n - k, mean_direction=e2, rng=rng)])


def _mixture_entropy(d: int, kappa: float, rng: np.random.Generator, m: int = 20_000) -> float:
    """Entropy of :func:`_mixture` by Monte Carlo on its exact log density."""
    w = _mixture(d, kappa, m, rng)
    log_f = (float(vmf.log_normalizer(d, kappa)) + np.logaddexp(kappa * w[:, 0], kappa * w[:, 1])
             - math.log(2))
    return -float(log_f.mean())


def _anisotropic_variances(d: int, kappa: float, ratio: float) -> np.ndarray:
    """Tangent variances: half of the d − 1 directions sqrt(ratio)/κ, half 1/(sqrt(ratio) κ)."""
    m = d - 1
    return np.where(np.arange(m) < m // 2, math.sqrt(ratio), 1 / math.sqrt(ratio)) / kappa


def _anisotropic(d: int, kappa: float, n: int, rng: np.random.Generator, ratio: float
                 ) -> np.ndarray:
    """A Bingham-type law: ``exp_{e₁}(v)`` with ``v ~ N(0, diag(variances))`` in the tangent space
    (a Gaussian with a quadratic-form exponent of unequal eigenvalues, wrapped on the sphere)."""
    v = rng.standard_normal((n, d - 1)) * np.sqrt(_anisotropic_variances(d, kappa, ratio))
    r = np.linalg.norm(v, axis=1)
    return np.column_stack([np.cos(r), (np.sin(r) / r)[:, None] * v])


def _anisotropic_entropy(d: int, kappa: float, rng: np.random.Generator, ratio: float,
                         m: int = 200_000) -> float:
    """Exact entropy of :func:`_anisotropic`: ``S(v) + (d − 2) E log(sin|v|/|v|)`` (the log
    Jacobian of the exponential map of S^{d−1}; |v| < π), the mean by Monte Carlo over |v|."""
    s2 = _anisotropic_variances(d, kappa, ratio)
    half = (d - 1) // 2
    r = np.sqrt(s2[0] * rng.chisquare(half, m) + s2[-1] * rng.chisquare(d - 1 - half, m))
    if r.max() >= math.pi:
        raise ValueError("the tangent law reaches the cut locus: raise kappa")
    return (0.5 * float(np.sum(np.log(2 * math.pi * math.e * s2)))
            + (d - 2) * float(np.mean(np.log(np.sin(r) / r))))


def heldout(table: calibration.CalibrationTable, n: int = 1000, seeds: int = 2,
            ratio: float = 10.0) -> list[dict[str, Any]]:
    """Bias of the geodesic estimate and of :func:`thermocheck.calibration.corrected_entropy` on
    VMF (the calibration law) and two held-out laws: a mixture of two VMFs with orthogonal means
    and the anisotropic Bingham-type law (eigenvalue ratio ``ratio``), d ∈ {100, 1000}."""
    rng = np.random.default_rng(20240611)
    out = []
    for d, c, family in itertools.product((100, 1000), (0.3, 1.0, 3.0),
                                          ("vmf", "mixture", "anisotropic")):
        if family == "anisotropic" and c < 1:
            continue  # its tangent law would reach the cut locus
        kappa = c * d
        if family == "vmf":
            exact = float(vmf.entropy(d, kappa))
        elif family == "mixture":
            exact = _mixture_entropy(d, kappa, rng)
        else:
            exact = _anisotropic_entropy(d, kappa, rng, ratio)
        raw, fixed, fitted = [], [], []
        for _ in range(seeds):
            w = (vmf.sample(d, kappa, n, rng=rng) if family == "vmf" else
                 _mixture(d, kappa, n, rng) if family == "mixture" else
                 _anisotropic(d, kappa, n, rng, ratio))
            estimate = sphere_entropy(w)
            corrected = calibration.corrected_entropy(estimate, d, n, table=table)
            raw.append(estimate - exact)
            fixed.append(corrected.value - exact)
            fitted.append(corrected.kappa_hat / d)
        R = (d - 1) / 2
        out.append({"family": family, "d": d, "c": c, "exact": exact,
                    "uncorrected_over_R": float(np.mean(raw)) / R,
                    "corrected_over_R": float(np.mean(fixed)) / R,
                    "c_hat": float(np.mean(fitted))})
    return out


def heldout_markdown(rows: Sequence[dict[str, Any]]) -> str:
    """Markdown table of :func:`heldout`."""
    lines = ["| law | d | κ/d | exact S | uncorrected bias/R | corrected bias/R | κ̂/d |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['family']} | {r['d']} | {r['c']:g} | {r['exact']:.1f} | "
              f"{r['uncorrected_over_R']:+.4f} | {r['corrected_over_R']:+.4f} | {r['c_hat']:.3g} |"
              for r in rows]
    return "\n".join(lines)


def figure(nodes: Sequence[dict[str, Any]], path: Path) -> None:
    """Bias per degree of freedom (top) and slope per unit of R (bottom) against κ/d."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True)
    ds = sorted({p["d"] for p in nodes})
    colours = dict(zip(ds, plt.cm.viridis(np.linspace(0, 0.9, len(ds))), strict=True))
    styles = {250: ":", 1000: "-", 4000: "--"}
    for col, method in enumerate(METHODS):
        top, bottom = axes[0, col], axes[1, col]
        for d in ds:
            for n, style in styles.items():
                pts = sorted((p for p in nodes if (p["method"], p["d"], p["n"]) == (method, d, n)),
                             key=lambda p: p["q"])
                if not pts:
                    continue
                c = np.array([p["c"] for p in pts])
                m = d - 1
                label = f"d={d}" if n == 1000 else None
                top.errorbar(c, [p["bias"] / m for p in pts], [p["stderr"] / m for p in pts],
                             ls=style, marker="o" if n == 4000 else ".", ms=3, color=colours[d],
                             label=label)
                if n == 1000:
                    bottom.errorbar(c, [2 * p["slope"] / m for p in pts],
                                    [2 * p["slope_stderr"] / m for p in pts], ls=style,
                                    marker=".", ms=3, color=colours[d], label=label)
        for ax in (top, bottom):
            ax.set_xscale("log")
            ax.axvspan(0.1, 10, color="0.9", zorder=0)
            ax.axhline(0, color="0.5", lw=0.5)
        top.set_title(f"{method}  (dotted N=250, solid N=1000, dashed N=4000)", fontsize=9)
        top.set_ylabel("bias / (d − 1)  [nats]")
        bottom.set_ylabel("(∂bias/∂ln κ) / R,  N = 1000")
        bottom.set_xlabel("κ / d   (grey: the networks' range)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("k-NN sphere-entropy bias on VMF samples (k = 1, digamma constant)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small subset (< 1 minute)")
    parser.add_argument("--out", type=Path, default=HERE, help="folder of the outputs")
    parser.add_argument("--package-table", type=Path, default=None,
                        help="also write the shipped table there (full runs only)")
    args = parser.parse_args()
    stem = "entropy_calibration_quick" if args.quick else "entropy_calibration"
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.process_time()
    rows = collect(QUICK_PLAN if args.quick else FULL_PLAN, args.out / f"{stem}.csv")
    nodes = aggregate(rows)
    table_dict = package_table(nodes)
    table = calibration.CalibrationTable(table_dict)
    add_slopes(nodes, table)
    if args.package_table is not None:
        if args.quick:
            parser.error("--package-table needs the full run")
        args.package_table.write_text(json.dumps(table_dict, separators=(",", ":")) + "\n")
    figure(nodes, args.out / f"{stem}.png")
    print(summary_table(nodes, 1000), end="\n\n")
    if not args.quick:
        print(summary_table(nodes, 4000), end="\n\n")
    maxwell: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    if not args.quick:
        maxwell = maxwell_table(table) + maxwell_table(table, (1.0,), drop_corner=True)
        print(maxwell_markdown(maxwell), end="\n\n")
        held = heldout(table)
        print(heldout_markdown(held), end="\n\n")
    seconds = {m: float(np.sum([r["seconds"] for r in rows if r["method"] == m])) for m in METHODS}
    report = {"plan": [b.__dict__ for b in (QUICK_PLAN if args.quick else FULL_PLAN)],
              "estimate_seconds": seconds, "cpu_seconds_this_run": time.process_time() - start,
              "nodes": nodes, "maxwell": maxwell, "heldout": held}
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"estimate time per method (s, all rows): {seconds}")


if __name__ == "__main__":
    main()
