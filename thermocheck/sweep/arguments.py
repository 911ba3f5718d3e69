"""Command-line options of a sweep, for ``thermocheck verify`` and any other command that sweeps."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from thermocheck._argtypes import int_at_least
from thermocheck.errors import InvalidParameterError
from thermocheck.sweep.cache import default_cache_dir
from thermocheck.sweep.executors import LocalExecutor
from thermocheck.sweep.slurm import SlurmExecutor, SlurmOptions

__all__ = ["add_sweep_arguments", "sweep_options"]

#: ``--slurm-*`` option → SlurmOptions field.
_SLURM = {
    "slurm_partition": "partition",
    "slurm_time": "time_min",
    "slurm_gpus_per_job": "gpus_per_job",
    "slurm_cpus_per_job": "cpus_per_job",
    "slurm_mem_gb": "mem_gb",
    "slurm_array_parallelism": "array_parallelism",
    "slurm_sbatch": "sbatch",
    "slurm_folder": "folder",
}


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"{text!r} is invalid: write KEY=VALUE, e.g. account=proj")
    return key.strip().lstrip("-"), value


def add_sweep_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the sweep options (executor, cache, shards, Slurm resources) to ``parser``.

    Read them back with :func:`sweep_options`.
    """
    opts = SlurmOptions()
    group = parser.add_argument_group("sweep", "where the grid points are measured, and the "
                                               "results cache that makes reruns resume")
    group.add_argument("--executor", choices=("local", "slurm"), default="local",
                       help="local: this machine (default); slurm: one array job per sweep, "
                            "through submitit (pip install 'thermocheck[slurm]')")
    group.add_argument("--cache", metavar="DIR", type=Path, default=None,
                       help=f"results cache (default: {default_cache_dir()}, or "
                            "$THERMOCHECK_CACHE_DIR); on Slurm, a folder the nodes share")
    group.add_argument("--force", action="store_true",
                       help="measure every point again, replacing the cached states")
    group.add_argument("--shard-size", type=int_at_least(1, "shard-size"),
                       metavar="N", default=None,
                       help="most grid points per shard (one job each); default: as many "
                            "shards as run at once")
    group.add_argument("--workers", type=int_at_least(1, "workers"),
                       metavar="N", default=None,
                       help="local worker processes (default: one per visible GPU, else one "
                            "that uses every CPU)")
    slurm = parser.add_argument_group("slurm", "resources of each shard's job (--executor slurm)")
    slurm.add_argument("--slurm-partition", metavar="NAME", default=None,
                       help="partition (default: the cluster's default)")
    slurm.add_argument("--slurm-time", type=int_at_least(1, "slurm-time"),
                       metavar="MINUTES", default=None,
                       help=f"time limit per job (default {opts.time_min}); on timeout or "
                            "preemption the job is checkpointed and requeued")
    slurm.add_argument("--slurm-gpus-per-job", type=int_at_least(0, "slurm-gpus-per-job"),
                       metavar="N", default=None,
                       help=f"GPUs per job (default {opts.gpus_per_job})")
    slurm.add_argument("--slurm-cpus-per-job", type=int_at_least(1, "slurm-cpus-per-job"),
                       metavar="N", default=None,
                       help=f"CPUs per job (default {opts.cpus_per_job})")
    slurm.add_argument("--slurm-mem-gb", type=float, metavar="GB", default=None,
                       help="memory per job (default: the partition's)")
    slurm.add_argument("--slurm-array-parallelism", type=int_at_least(1, "slurm-array-parallelism"),
                       metavar="N", default=None,
                       help=f"jobs running at once (default {opts.array_parallelism})")
    slurm.add_argument("--slurm-sbatch", type=_key_value, action="append", metavar="KEY=VALUE",
                       default=None, help="further #SBATCH flag, e.g. account=proj (repeatable)")
    slurm.add_argument("--slurm-folder", metavar="DIR", default=None,
                       help="submitit's job scripts and logs (default: <cache>/slurm)")


def sweep_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keywords of :func:`~thermocheck.sweep.run_sweeps` from options parsed by
    :func:`add_sweep_arguments`: ``executor``, ``cache``, ``force`` and ``shard_size``.

    Raises
    ------
    InvalidParameterError
        When ``--slurm-*`` options come without ``--executor slurm`` (a usage error).
    """
    given = {field: getattr(args, option) for option, field in _SLURM.items()
             if getattr(args, option) is not None}
    if args.executor == "slurm":
        if "sbatch" in given:
            given["sbatch"] = dict(given["sbatch"])
        executor: LocalExecutor | SlurmExecutor = SlurmExecutor(SlurmOptions(**given))
    else:
        if given:
            flags = ", ".join("--" + o.replace("_", "-") for o in _SLURM
                              if getattr(args, o) is not None)
            raise InvalidParameterError(f"{flags} need --executor slurm")
        executor = LocalExecutor(args.workers)
    return {"executor": executor, "cache": args.cache, "force": args.force,
            "shard_size": args.shard_size}
