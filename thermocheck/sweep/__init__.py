"""Sweeps beyond one machine: grids in shards on local workers or Slurm, with a results cache.

A sweep measures a substrate (the batched simulator or the stacked network trainer) on a grid of two
hyperparameters. The grid is cut into shards, rectangles that one device trains together, and each
shard runs as one job of an executor: ``local`` (this machine; no extra dependency) or ``slurm`` (an
array job through submitit, the ``slurm`` extra). Every measured point goes to a results cache under
a hash of its configuration, so a rerun measures only what is missing (a cancelled or failed sweep
resumes by running the same command again), ``force`` measures everything again, and results are
always assembled from the cache. Each point has its own random stream keyed by the seed and the
point, so the same grid gives the same numbers whichever executor, shard size or resume ran it.

Example::

    from thermocheck import laws
    from thermocheck.sweep import run_sweep

    res = run_sweep("fixed_lr", d=3, grid={"lr": lrs, "wd": wds}, iterations=1_000_000, seed=0,
                    executor="slurm", shard_size=16, cache="/shared/thermocheck-cache")
    res.check(laws.ideal_gas).verdict, res.missing    # the law on the finished points
"""

from thermocheck.sweep.arguments import add_sweep_arguments, sweep_options
from thermocheck.sweep.assembly import SweepResult, assemble
from thermocheck.sweep.cache import MEASUREMENT_VERSION, ResultsCache, config_key, default_cache_dir
from thermocheck.sweep.executors import LocalExecutor
from thermocheck.sweep.run import run_sweep, run_sweeps
from thermocheck.sweep.shards import SweepSpec, split
from thermocheck.sweep.slurm import SlurmExecutor, SlurmOptions

__all__ = [
    "MEASUREMENT_VERSION",
    "LocalExecutor",
    "ResultsCache",
    "SlurmExecutor",
    "SlurmOptions",
    "SweepResult",
    "SweepSpec",
    "add_sweep_arguments",
    "assemble",
    "config_key",
    "default_cache_dir",
    "run_sweep",
    "run_sweeps",
    "split",
    "sweep_options",
]
