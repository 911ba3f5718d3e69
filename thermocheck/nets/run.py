"""Presets, :func:`run_grid`, and the ``net`` substrate's plan and laws (:func:`plan`,
:func:`law_checks`, run by ``thermocheck verify --substrate net``).

Presets (``PRESETS``):

``cpu-tiny``
    ``pytest -m slow`` tier: ConvNet width 2 (d = 1530) on digits, 3 × 3 grids at high ηλ (fast
    equilibration), 3000 steps on one CPU thread, about 20 s of CPU per protocol. Fixed ELR uses
    η_eff ∈ [0.01, 0.02]: at 0.007 the networks still learn after 3000 steps (loss and radius
    drift), at 0.025 they stay near chance (loss 2.2). Asserts V1 and norm balance; V3 is reported
    and may be inconclusive at this scale.
``gpu-nightly`` (``pytest -m gpu``, ``benchmarks/gpu_check.sh``) and ``gpu-short``
    The paper's ConvNet k = 8 (d = 24 408) on ``gratings`` (3 × 32 × 32, 50 000 generated images
    with 20 % label noise, :func:`thermocheck.nets.data.gratings`) at the paper's batch 128, 5 × 5
    grids (``_GPU_GRIDS``), fixed LR and fixed ELR, 12 000 / 6000 steps, entropy from a
    240 / 120 snapshot queue; sized for ≤ 10 min on one H100/H200 (``_NIGHTLY_ITERS``; estimated
    from measured throughput, not yet run on a GPU). Checked on the CPU on ``gratings-small``
    (3 × 16 × 16, same ConvNet, batch 128, fixed ELR, λ = 0.1): after 2400 steps at η_eff = 0.003,
    0.006, 0.012 the loss is 1.01, 1.17, 1.26 and σ² = 0.020, 0.0073, 0.0025 (Tr Σ_w̄ ≈ 60–500):
    far from interpolation; η_eff = 0.03 diverges in the first steps.
``gpu-interpolation``
    The paper's k = 32 case: ConvNet k = 32 on the 1797 digits at η_eff = 0.001, 0.003 (fixed
    ELR, λ = 0.001). It interpolates (training loss ≤ 1e-3 within 400 steps on the CPU), so every
    point is reported as "no stationary distribution: interpolation" and the laws as
    inconclusive, never as failures.

Every preset measures the noise the same way (:mod:`thermocheck.record`): the per-step
unit-radius gradient norm for the trace, and small noise measurements (the step's own gradient
and three more, every 15–20 steps) for ``E‖∇L(w̄)‖²`` and the effective rank of the noise
covariance (two independent deviations per measurement at least), except that ``paper`` takes the
paper's measurement (1000 minibatches around the full-batch gradient every 20 000 steps).
``paper``
    The paper's ConvNet k = 8 on CIFAR-10 (Table 3 grids, 10⁶ iterations, queue 4000). Not meant
    to be run here: the reference code needs 2–9 GPU-hours per grid point (≈ 200–850 GPU-hours per
    95-point grid); batched at M = 95 it is expected to take 5–15 GPU-hours per grid (an
    estimate from the measured throughput, not yet run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck.errors import check_choice
from thermocheck.nets.train import GridConfig, Trainer, with_overrides
from thermocheck.results import LawResult
from thermocheck.states import StateGrid
from thermocheck.substrates import Plan
from thermocheck.sweep.shards import SweepSpec

__all__ = ["PRESETS", "Preset", "law_checks", "plan", "preset_config", "run_grid"]


def _logs(lo: float, hi: float, n: int) -> tuple[float, ...]:
    return tuple(float(f"{v:.6g}") for v in np.logspace(math.log10(lo), math.log10(hi), n))


@dataclass(frozen=True)
class Preset:
    """Shared settings and each protocol's (x, y) axis values."""

    settings: Mapping[str, Any]
    axes: Mapping[str, tuple[tuple[float, ...], tuple[float, ...]]]
    note: str = ""
    default_protocols: tuple[str, ...] = field(default=("fixed_lr", "fixed_elr"))


_TINY = dict(
    model="convnet",
    width=2,
    dataset="digits",
    batch_size=32,
    iters=3000,
    every=30,
    burn_in=0.5,
    queue_size=150,
    queue_every=10,
    noise_every=15,
    noise_samples=4,
    log_every=500,
    threads=1,
)
_GPU = dict(
    model="convnet",
    width=8,
    dataset="gratings",
    batch_size=128,
    every=25,
    burn_in=0.5,
    queue_every=25,
    noise_every=20,
    noise_samples=4,
    log_every=2000,
    device="cuda",
)

#: The 5 × 5 grids of the GPU presets: the paper's ConvNet k = 8 on ``gratings`` (3 × 32 × 32,
#: 50 000 images with 20 % label noise, :mod:`thermocheck.nets.data`) at the paper's batch 128.
#: Under fixed ELR the angular dynamics depend on η_eff alone: the first steps' unit-sphere
#: gradient is large, so from η_eff ≈ 0.03 the norm explodes until η_eff λ‖w‖² > 2, where Eq. 8
#: has no fixed point (measured on ``gratings-small``: 0.03 diverges, 0.003–0.012 do not).
_GPU_GRIDS = {
    "fixed_lr": (_logs(0.05, 0.8, 5), _logs(0.01, 0.16, 5)),
    "fixed_elr": (_logs(0.003, 0.012, 5), _logs(0.01, 0.16, 5)),
    "fixed_sphere": (_logs(0.003, 0.03, 5), _logs(0.5, 2.0, 5)),
}

#: Sizing of the GPU presets for ≤ 10 min on one H100/H200. Measured on an H200 (eager, batch 128,
#: 3 × 32 × 32): 1529 model-iterations/s at M = 8 and 2274 at M = 32, so about 2000 at a grid's
#: M = 25; the noise measurements (3 extra backward passes every 20 steps) cost 15 % more. Two
#: protocols of 25 models at 12 000 steps are then 1.2·10⁶ model-iterations, about 5.5 min, plus
#: data generation, entropies and the report (estimated, to be confirmed by a GPU run).
_NIGHTLY_ITERS = 12_000

PRESETS: dict[str, Preset] = {
    "cpu-tiny": Preset(
        _TINY,
        {
            "fixed_lr": ((0.1, 0.2, 0.4), (0.025, 0.05, 0.1)),
            "fixed_elr": ((0.01, 0.014, 0.02), (0.025, 0.05, 0.1)),
            "fixed_sphere": ((0.007, 0.013, 0.025), (0.5, 1.0, 2.0)),
        },
        "2 CPU cores, ≤ 5 min for fixed LR + fixed ELR",
    ),
    "gpu-short": Preset(
        {**_GPU, "iters": _NIGHTLY_ITERS // 2, "queue_size": 120},
        _GPU_GRIDS,
        "gpu-nightly at half length: one H100/H200, about 3 min (estimated), fixed LR + fixed ELR",
    ),
    "gpu-nightly": Preset(
        {**_GPU, "iters": _NIGHTLY_ITERS, "queue_size": 240},
        _GPU_GRIDS,
        "one H100/H200, ≤ 10 min for fixed LR + fixed ELR (about 6 min estimated)",
    ),
    "gpu-interpolation": Preset(
        {**_GPU, "width": 32, "dataset": "digits", "iters": 3000, "queue_size": 60},
        {"fixed_elr": ((1e-3, 3e-3), (1e-3,))},
        "the interpolation regime: ConvNet k = 32 on the 1797 digits at small η_eff, no "
        "stationary distribution (about 1 min on one GPU, estimated)",
        ("fixed_elr",),
    ),
    "paper": Preset(
        {
            "model": "convnet",
            "width": 8,
            "dataset": "cifar10",
            "batch_size": 128,
            "iters": 1_000_000,
            "every": 50,
            "burn_in": 0.8,
            "queue_size": 4000,
            "queue_every": 25,
            "noise_every": 20_000,
            "noise_samples": 1000,
            "rank_samples": 64,
            "noise_full_batch": True,
            "log_every": 10_000,
            "device": "cuda",
        },
        {
            "fixed_lr": (
                tuple(10 ** (-3 + n / 4) for n in range(13)),
                tuple(10 ** (-2 + n / 4) for n in range(9)),
            ),
            "fixed_elr": (
                tuple(10 ** (-4 + n / 6) for n in range(19)),
                tuple(10 ** (-3 + n / 4) for n in range(9)),
            ),
            "fixed_sphere": (
                tuple(10 ** (-4 + n / 6) for n in range(19)),
                tuple(2.0 ** (-2 + n) for n in range(5)),
            ),
        },
        "CIFAR-10, ≈ 5–15 GPU-hours per grid batched (estimate), 200–850 with the reference code",
        ("fixed_lr", "fixed_elr", "fixed_sphere"),
    ),
}


def preset_config(preset: str, protocol: str, **overrides: Any) -> GridConfig:
    """The :class:`GridConfig` of ``preset`` for ``protocol``, with fields overridden."""
    check_choice("preset", preset, tuple(PRESETS))
    p = PRESETS[preset]
    check_choice("protocol", protocol, tuple(p.axes))
    x, y = p.axes[protocol]
    return with_overrides(GridConfig(protocol=protocol, x=x, y=y, **p.settings), **overrides)


def run_grid(config: GridConfig | str, protocol: str = "fixed_lr", **overrides: Any) -> StateGrid:
    """Train a grid and return its measured states.

    ``config`` is a :class:`GridConfig` or a preset name (then ``protocol`` picks the grid);
    ``overrides`` change config fields (e.g. ``device="cpu"``, ``iters=2000``).
    """
    cfg = (
        preset_config(config, protocol, **overrides)
        if isinstance(config, str)
        else with_overrides(config, **overrides)
    )
    trainer = Trainer(cfg)
    trainer.run()
    return trainer.grid()


def network_laws(*, entropy_samples: int | None = None) -> list[tuple[str, dict[str, Any]]]:
    """The laws checked on a network grid, by name (:data:`thermocheck.laws.ALL`), each with its
    options: V1 (plain and discretization-corrected), V3 and the norm balance. V1 is decided by
    its corrected form; the plain SDE form is run to measure the gap Appendix G predicts, a known
    deviation on networks (:data:`thermocheck.deviations.KNOWN_DEVIATIONS`) that never fails a run.

    The other laws need the loss to be the thermodynamic energy, which it is not for a network
    (docs/decisions.md), so they are not run here. ``entropy_samples`` (the queue length behind each
    entropy) lets V3 include the calibrated drift of the k-NN estimator
    (:mod:`thermocheck.calibration`) and answer ``inconclusive`` when that drift alone could explain
    a violation.
    """
    return [
        ("ideal_gas", {"corrected": False}),
        ("ideal_gas", {"corrected": True}),
        ("maxwell", {"entropy_samples": entropy_samples}),
        ("norm_balance", {}),
    ]


def check_laws(grid: StateGrid, *, entropy_samples: int | None = None) -> list[LawResult]:
    """:func:`network_laws` on ``grid``."""
    from thermocheck import laws

    return [laws.ALL[name](grid, **kw)
            for name, kw in network_laws(entropy_samples=entropy_samples)]


def law_checks(spec: SweepSpec) -> list[tuple[str, dict[str, Any]]]:
    """The ``net`` substrate's laws (:mod:`thermocheck.substrates`): :func:`network_laws`, with
    V3 told the length of the queue behind each entropy (the spec's ``queue_size``)."""
    return network_laws(entropy_samples=spec.options.get("queue_size") or None)


def plan(preset: str, protocols: Sequence[str] | None, *, seed: int, dim: int | None,
         model: str | None = None, dataset: str | None = None, data_dir: str | None = None,
         device: str | None = None, iters: int | None = None,
         compile: str | None = None) -> Plan:
    """The ``net`` substrate's sweeps (:mod:`thermocheck.substrates`): ``preset``'s grid of each
    protocol (default: the preset's ``default_protocols``) on the stacked trainer
    (:mod:`thermocheck.nets.substrate`), so points are cached, a rerun reads them back, and
    ``executor="slurm"`` trains the shards as jobs. The options override the preset's config
    (None: the preset's); ``dim`` does not apply, a network's d being fixed by its architecture.

    Raises :class:`~thermocheck.errors.DatasetUnavailableError` before any training when the
    dataset's files are missing, saying where they go.
    """
    from thermocheck.nets.data import check_available
    from thermocheck.nets.substrate import sweep_spec

    check_choice("preset", preset, tuple(PRESETS))
    chosen = PRESETS[preset].default_protocols if protocols is None else tuple(protocols)
    overrides = {"model": model, "dataset": dataset, "device": device, "seed": seed,
                 "iters": iters, "compile": compile,
                 "data_dir": str(Path(data_dir).resolve()) if data_dir else None}
    configs = {p: preset_config(preset, p, **overrides) for p in chosen}
    for c in configs.values():
        check_available(c.dataset, c.data_dir)  # before any job starts: say where files go
    notes = ["--dim ignored: a network's d is set by its architecture"] if dim else []
    return Plan([sweep_spec(c) for c in configs.values()],
                {"configs": {p: asdict(c) for p, c in configs.items()}, "notes": notes})
