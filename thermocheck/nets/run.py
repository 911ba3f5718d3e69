"""Presets, :func:`run_grid` and the ``thermocheck verify --substrate net`` entry point.

Presets (``PRESETS``):

``cpu-tiny``
    ``pytest -m slow`` tier: ConvNet width 2 (d = 1530) on digits, 3 × 3 grids at high ηλ (fast
    equilibration), 3000 steps on one CPU thread, about 20 s of CPU per protocol. Fixed ELR uses
    η_eff ∈ [0.01, 0.02]: at 0.007 the networks still learn after 3000 steps (loss and radius
    drift), at 0.025 they stay near chance (loss 2.2). Asserts V1 and norm balance; V3 is reported
    and may be inconclusive at this scale.
``gpu-short`` (``benchmarks/gpu_check.sh``) and ``gpu-nightly`` (``pytest -m gpu``)
    ConvNet width 8 (d = 24 264 on 1 × 8 × 8 digits) on 5 × 5 grids, fixed LR and fixed ELR at
    batch 16 (more gradient noise than batch 128: the networks do not interpolate, see
    ``_GPU_GRIDS``), 12 000 / 24 000 steps, entropy from a 240 / 480 snapshot queue. ``gpu-short``
    on the CPU (one thread, ``--device cpu``) takes about 4 min per protocol: fixed LR 25 of 25
    points stationary, fixed ELR 24 of 25 (one interpolates); the corrected V1, V3 and the norm
    balance pass on both ((a1 − a2)/R = 1.005, a2/R = −1.011), and the SDE form of V1 fails, as
    Appendix G predicts at these step sizes.

Every preset measures the noise the same way (:mod:`thermocheck.record`): the per-step
unit-radius gradient norm for the trace, and small noise measurements (the step's own gradient
and three more, every 15–20 steps) for ``E‖∇L(w̄)‖²`` and the effective rank of the noise
covariance (two independent deviations per measurement at least), except that ``paper`` takes the
paper's measurement (1000 minibatches around the full-batch gradient every 20 000 steps).
``paper``
    The paper's ConvNet k = 8 on CIFAR-10 (Table 3 grids, 10⁶ iterations, queue 4000). Not meant
    to be run here: the reference code needs 2–9 GPU-hours per grid point (≈ 200–850 GPU-hours per
    95-point grid); batched at M = 95 NETS_DESIGN §7 estimates 5–15 GPU-hours per grid (unverified).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from thermocheck.errors import check_choice
from thermocheck.nets.train import GridConfig, Trainer, with_overrides
from thermocheck.results import LawResult
from thermocheck.states import StateGrid

__all__ = ["PRESETS", "Preset", "cli_verify", "preset_config", "run_grid"]


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
    dataset="digits",
    batch_size=16,
    every=25,
    burn_in=0.5,
    queue_every=25,
    noise_every=20,
    noise_samples=4,
    log_every=2500,
    device="cuda",
)

#: The 5 × 5 grids of the GPU presets (ConvNet k = 8 on digits, batch 16). Under fixed ELR the
#: angular dynamics depend on η_eff alone, and the stationary window is narrow: below it the
#: network interpolates the 1797 digits (Tr Σ → 0), above it the first steps' unit-sphere gradient
#: (‖∇L‖·‖w‖ ≈ 165 at initialisation) makes η_eff‖∇L‖‖w‖ > 1, the norm explodes and
#: η_eff λ‖w‖² > 2 diverges (Eq. 8 has no fixed point there). Measured on the CPU: at batch 128
#: no η_eff is stationary (interpolation up to 0.020, divergence from 0.023); at batch 16 the
#: window is about 0.005–0.015 (divergence from 0.018).
_GPU_GRIDS = {
    "fixed_lr": (_logs(0.05, 0.8, 5), _logs(0.01, 0.16, 5)),
    "fixed_elr": (_logs(0.005, 0.012, 5), _logs(0.01, 0.16, 5)),
    "fixed_sphere": (_logs(0.005, 0.05, 5), _logs(0.5, 2.0, 5)),
}

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
        {**_GPU, "iters": 12000, "queue_size": 240},
        _GPU_GRIDS,
        "one GPU (not yet timed at batch 16); 8 min on one CPU thread, fixed LR + fixed ELR",
    ),
    "gpu-nightly": Preset(
        {**_GPU, "iters": 24000, "queue_size": 480},
        _GPU_GRIDS,
        "one H100, ≤ 10 min for fixed LR + fixed ELR (to confirm at batch 16)",
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
    return trainer.states()


def network_laws(
    *, entropy_samples: int | None = None
) -> list[tuple[Callable[..., LawResult], dict[str, Any]]]:
    """The laws checked on a network grid, each with its options: V1 (plain and
    discretization-corrected), V3 and the norm balance.

    The other laws need the loss to be the thermodynamic energy, which it is not for a network
    (READINGS.md), so they are not run here. ``entropy_samples`` (the queue length behind each
    entropy) lets V3 include the calibrated drift of the k-NN estimator
    (:mod:`thermocheck.calibration`) and answer ``inconclusive`` when that drift alone could explain
    a violation.
    """
    from thermocheck import laws

    return [
        (laws.ideal_gas, {"corrected": False}),
        (laws.ideal_gas, {"corrected": True}),
        (laws.maxwell, {"entropy_samples": entropy_samples}),
        (laws.norm_balance, {}),
    ]


def check_laws(grid: StateGrid, *, entropy_samples: int | None = None) -> list[LawResult]:
    """:func:`network_laws` on ``grid``."""
    return [law(grid, **kw) for law, kw in network_laws(entropy_samples=entropy_samples)]


#: The CLI's generic preset names, mapped to network presets.
_PRESET_ALIASES = {"quick": "cpu-tiny"}


def cli_verify(args: Any) -> int:
    """``thermocheck verify --substrate net``: train the preset's grids, check the laws and write
    the report (``report.json``, ``report.md``, figures, as for the simulator) under ``args.out``;
    return the exit code (0 all passed, 1 a law failed, 3 inconclusive; READINGS.md).

    Reads ``args.protocol`` (a protocol or ``"all"``), ``args.preset`` (``quick``, the default,
    means ``cpu-tiny``), ``args.out``, ``args.seed``, the optional ``args.model``,
    ``args.dataset``, ``args.data_dir``, ``args.device``, ``args.iters``, ``args.compile``, and the
    sweep options (:func:`thermocheck.sweep.add_sweep_arguments`): the grids run as sweeps on the
    ``net`` substrate (:mod:`thermocheck.nets.substrate`), so their points are cached, a rerun
    reads them back, and ``--executor slurm`` trains the shards as jobs. ``args.dim`` does not
    apply: a network's d is fixed by its architecture.
    """
    from thermocheck.nets.data import check_available
    from thermocheck.nets.substrate import sweep_spec
    from thermocheck.report import print_outcome, write_report
    from thermocheck.sweep import run_sweeps, sweep_options
    from thermocheck.verify import default_out_dir

    name = getattr(args, "preset", None) or "quick"
    preset = _PRESET_ALIASES.get(name, name)
    check_choice("preset", preset, tuple(PRESETS))
    protocol = getattr(args, "protocol", None)
    protocols = PRESETS[preset].default_protocols if protocol in (None, "all") else (protocol,)
    overrides = {
        k: getattr(args, k, None)
        for k in ("model", "dataset", "device", "seed", "iters", "compile")
    }
    if getattr(args, "data_dir", None):
        overrides["data_dir"] = str(Path(args.data_dir).resolve())
    out = Path(getattr(args, "out", None) or default_out_dir(f"net-{preset}"))
    notes = ["--dim ignored: a network's d is set by its architecture"] if getattr(
        args, "dim", None) else []
    configs = {p: preset_config(preset, p, **overrides) for p in protocols}
    for c in configs.values():
        check_available(c.dataset, c.data_dir)  # before any job starts: say where files go
    quiet = getattr(args, "quiet", False)
    sweeps = run_sweeps([sweep_spec(c) for c in configs.values()],
                        progress=getattr(args, "progress", True) and not quiet,
                        **sweep_options(args))
    results = [
        done.check(law, **kw)
        for done in sweeps
        for law, kw in network_laws(entropy_samples=configs[done.spec.protocol].queue_size or None)
    ]
    grids = {done.spec.protocol: done.grid for done in sweeps if done.grid is not None}
    path = write_report(results, out, grids=grids, seed=overrides["seed"], preset=preset,
                        command=getattr(args, "command_line", None),
                        extra_meta={"substrate": "net",
                                    "configs": {p: asdict(c) for p, c in configs.items()},
                                    "sweep": [done.to_dict() for done in sweeps],
                                    "notes": notes})
    return print_outcome(results, path, table=not quiet)
