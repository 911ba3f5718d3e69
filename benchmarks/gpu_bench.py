"""Throughput options of the batched network trainer, each against one model at a time, in one run.

For the paper's ConvNet k = 8 (3 × 32 × 32 inputs, batch 128, ``M`` ≥ 32 models) it times, in
model-iterations per second (medians of ``--repeats`` blocks of ``--steps`` steps, recorder
included, after a warm-up):

* ``loop``: :class:`thermocheck.nets.Trainer` with ``M = 1``, one model after another: the
  baseline every ratio is taken against;
* ``paper`` / ``paper_fused``: an ``nn.Module`` + ``torch.optim.SGD`` loop that syncs with the host
  every step as the reference code does (:func:`benchmarks.bench_nets.bench_paper`), with the
  foreach and with the fused optimizer update;
* ``batched``: all ``M`` models stacked as grouped convolutions (cuDNN autotuner on, the
  trainer's default), and the variants ``no_autotune`` (``cudnn.benchmark`` off),
  ``channels_last`` (inputs in NHWC), ``vmap`` (the ``torch.func`` stack of
  :class:`~thermocheck.nets.functional.FunctionalStack` instead of the hand-fused grouped
  convolutions), ``compile_default`` and ``compile_reduce-overhead`` (``torch.compile``, the latter
  with CUDA graphs), and ``tf32`` (an option only: the default keeps TF32 off);
* ``update``: the batched update (:func:`~thermocheck.nets.stacked.sgd_step_` on ``W[M, P]``) alone,
  eager and through ``torch.compile`` (one fused kernel), in milliseconds per step;
* the same ``loop``/``batched``/``compile_default`` for the pre-activation ResNet-18 k = 4.

Capturing whole blocks of steps between log points is not implemented by the trainer (the
training step's forward and backward are captured by ``reduce-overhead`` one step at a time); the
JSON says so under ``not_implemented``.

The work per model-iteration is counted with ``torch.utils.flop_counter`` (forward and backward of
one model on one batch; the update is ``O(d)``, negligible), so each throughput also gives the
achieved FLOP rate and its fraction of the device's FP32 peak (``--peak-tflops``, else a datasheet
value for known GPUs, else none). Every part runs under its own time limit (``--part-limit``);
a part that fails or runs out of time is recorded under ``errors`` and the others still run.

``--tiny`` (with ``--device cpu``) runs every part at toy sizes in about a minute, to check the
script before it meets a GPU. Writes ``bench.json`` (machine, versions, config, results, ratios,
errors) under ``--out``.

    python -m benchmarks.gpu_bench --device cuda --out "$OUT"
    python -m benchmarks.gpu_bench --device cpu --tiny --out /tmp/bench
"""

from __future__ import annotations

import argparse
import json
import signal
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from benchmarks.bench_nets import _median_time, bench_paper, trainer_throughput
from thermocheck.machine import device_info
from thermocheck.nets import Dataset, GridConfig, Trainer, make_model, synthetic
from thermocheck.nets.stacked import sgd_step_
from thermocheck.record import GridSpec

SCHEMA_VERSION = 1

#: FP32 peak (CUDA cores, no tensor cores: TF32 stays off) in TFLOP/s from the vendors'
#: datasheets, matched as a substring of the device name; the first match wins.
FP32_PEAK_TFLOPS = (("H100 PCIe", 51.2), ("H100", 66.9), ("H200", 66.9), ("A100", 19.5),
                    ("L40S", 91.6), ("A10", 31.2))

#: The speedup over one model at a time the GPU tier aims for (ConvNet k = 8, M ≥ 32).
GOAL_RATIO = 15.0

NOT_IMPLEMENTED = {
    "block_capture": "the trainer does not capture blocks of steps between log points; "
                     "compile_reduce-overhead captures each step's forward and backward as a "
                     "CUDA graph",
}


# -- sizes ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Sizes:
    """What is timed: widths, models per stack, batch, image side (pixels), steps per timed
    block, blocks (the median is reported), models in the one-at-a-time loop."""

    width: int = 8
    resnet_width: int = 4
    models: int = 32
    batch: int = 128
    size: int = 32
    steps: int = 20
    repeats: int = 3
    loop_models: int = 3


TINY = Sizes(width=2, resnet_width=1, models=4, batch=8, size=8, steps=2, repeats=1, loop_models=2)


# -- timing helpers --------------------------------------------------------------------------------
@contextmanager
def time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`TimeoutError` in the main thread once ``seconds`` have passed (SIGALRM), so
    that one slow part (a long compilation) cannot eat the others' time."""

    def expire(signum: int, frame: Any) -> None:
        raise TimeoutError(f"the part ran past its limit of {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _config(arch: str, width: int, m: int, sizes: Sizes, device: str,
            **fields: Any) -> GridConfig:
    """A fixed-LR grid of ``m`` models (learning rates spread over 10^-1.5 … 1)."""
    lrs = tuple(float(v) for v in torch.logspace(-1.5, 0, m).tolist())
    return GridConfig(protocol="fixed_lr", x=lrs, y=(1e-2,), model=arch, width=width,
                      dataset="synthetic", batch_size=sizes.batch, iters=10**9, every=25,
                      queue_size=0, device=device, **fields)


def _channels_last(trainer: Trainer) -> Trainer:
    """The trainer with its minibatches in NHWC memory order (the convolutions follow it)."""
    plain = trainer.batch

    def batch(keys: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = plain(keys, step)
        return x.contiguous(memory_format=torch.channels_last), y

    trainer.batch = batch  # type: ignore[method-assign]
    return trainer


def loop_throughput(make: Callable[[], Trainer], sizes: Sizes, device: torch.device) -> float:
    """Model-iterations per second of ``loop_models`` single-model trainers run one after
    another (each warmed up first)."""
    trainers = [make() for _ in range(sizes.loop_models)]
    for t in trainers:
        t.train_step()

    def run() -> None:
        for t in trainers:
            for _ in range(sizes.steps):
                t.train_step()

    return sizes.loop_models * sizes.steps / _median_time(run, sizes.repeats, device)


def _updated(W: torch.Tensor, G: torch.Tensor, spec: GridSpec) -> torch.Tensor:
    """``sgd_step_`` out of place: inductor (torch 2.13, CPU) fails on its two in-place
    mutations of an input (``KeyError: 'buf1'``), and compiles this form."""
    V = W.clone()
    sgd_step_(V, G, spec)
    return V


def update_ms(trainer: Trainer, sizes: Sizes, device: torch.device,
              compiled: bool) -> float:
    """Milliseconds per batched update ``sgd_step_`` on the trainer's ``W[M, P]`` (eager, or
    through ``torch.compile``: one fused kernel instead of one per operation)."""
    W, G = trainer.W.detach().clone(), torch.randn_like(trainer.W)
    fused = torch.compile(_updated)

    def run() -> None:
        for _ in range(sizes.steps):
            if compiled:
                W.copy_(fused(W, G, trainer.spec))
            else:
                sgd_step_(W, G, trainer.spec)

    return 1e3 * _median_time(run, sizes.repeats, device) / sizes.steps


def flops_per_model_iteration(arch: str, width: int, sizes: Sizes, device: str) -> float:
    """Forward and backward FLOPs of one model on one minibatch (``torch.utils.flop_counter``:
    convolutions and matrix products; BatchNorm, ReLU, pooling and the ``O(d)`` update are not
    counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = make_model(arch, width, in_channels=3).to(device)
    x = torch.randn(sizes.batch, 3, sizes.size, sizes.size, device=device)
    y = torch.randint(10, (sizes.batch,), device=device)
    with FlopCounterMode(display=False) as counter:
        F.cross_entropy(model(x), y).backward()
    return float(counter.get_total_flops())


def peak_tflops(device: str, given: float | None) -> tuple[float | None, str]:
    """The FP32 peak the achieved rate is compared with, and where it comes from."""
    if given is not None:
        return given, "--peak-tflops"
    if not device.startswith("cuda"):
        return None, "no peak known for a CPU: pass --peak-tflops"
    name = torch.cuda.get_device_name()
    for key, value in FP32_PEAK_TFLOPS:
        if key in name:
            return value, f"datasheet FP32 peak of {key}"
    return None, f"no datasheet value for {name}: pass --peak-tflops"


# -- the parts -----------------------------------------------------------------------------------
def parts(sizes: Sizes, device: str, data: Dataset,
          args: argparse.Namespace) -> dict[str, tuple[str, Callable[[], Any]]]:
    """Each part's name, its architecture (for the FLOP count) and what it measures."""
    dev = torch.device(device)
    m = sizes.models

    def stacked(arch: str = "convnet", **fields: Any) -> Trainer:
        width = sizes.width if arch == "convnet" else sizes.resnet_width
        return Trainer(_config(arch, width, m, sizes, device, **fields), data=data)

    def no_autotune() -> float:
        trainer = stacked()
        torch.backends.cudnn.benchmark = False  # the next trainer switches it back on
        return trainer_throughput(trainer, sizes.steps, sizes.repeats, dev)

    def vmap() -> float:
        module = make_model("convnet", sizes.width, in_channels=3)
        trainer = Trainer(_config("convnet", sizes.width, m, sizes, device), data=data,
                          model=module)
        return trainer_throughput(trainer, sizes.steps, sizes.repeats, dev)

    def one_model(arch: str) -> Callable[[], Trainer]:
        width = sizes.width if arch == "convnet" else sizes.resnet_width
        return lambda: Trainer(_config(arch, width, 1, sizes, device), data=data)

    def timed(make: Callable[[], Trainer]) -> Callable[[], float]:
        return lambda: trainer_throughput(make(), sizes.steps, sizes.repeats, dev)

    paper_args = argparse.Namespace(width=sizes.width, loop_models=sizes.loop_models,
                                    batch=sizes.batch, steps=sizes.steps,
                                    repeats=sizes.repeats, device=device)
    table: dict[str, tuple[str, Callable[[], Any]]] = {
        "loop": ("convnet", lambda: loop_throughput(one_model("convnet"), sizes, dev)),
        "paper": ("convnet", lambda: bench_paper(paper_args, data)),
        "paper_fused": ("convnet", lambda: bench_paper(paper_args, data, fused=True)),
        "batched": ("convnet", timed(stacked)),
        "batched_no_autotune": ("convnet", no_autotune),
        "batched_channels_last": ("convnet", timed(lambda: _channels_last(stacked()))),
        "batched_vmap": ("convnet", vmap),
        "update_eager_ms": ("", lambda: update_ms(stacked(), sizes, dev, compiled=False)),
        "update_compiled_ms": ("", lambda: update_ms(stacked(), sizes, dev, compiled=True)),
    }
    for mode in args.compile:
        table[f"batched_compile_{mode}"] = ("convnet", timed(partial(stacked, compile=mode)))
    if args.tf32:
        table["batched_tf32"] = ("convnet", timed(lambda: stacked(tf32=True)))
    table["resnet18_loop"] = ("resnet18",
                              lambda: loop_throughput(one_model("resnet18"), sizes, dev))
    table["resnet18_batched"] = ("resnet18", timed(lambda: stacked("resnet18")))
    for mode in args.compile[:1]:
        table[f"resnet18_batched_compile_{mode}"] = (
            "resnet18", timed(partial(stacked, "resnet18", compile=mode)))
    return table


def summarise(raw: dict[str, float], archs: dict[str, str], flops: dict[str, float],
              peak: float | None) -> dict[str, dict[str, float | None]]:
    """Each throughput with its ratio to the same architecture's one-at-a-time loop, its
    achieved TFLOP/s and the fraction of the peak."""
    out: dict[str, dict[str, float | None]] = {}
    for name, value in raw.items():
        arch = archs[name]
        if not arch:
            continue
        base = raw.get("loop" if arch == "convnet" else "resnet18_loop")
        tflops = value * flops[arch] / 1e12 if arch in flops else None
        out[name] = {
            "model_iterations_per_s": value,
            "ratio_vs_loop": None if base is None else value / base,
            "tflops": tflops,
            "peak_fraction": None if tflops is None or peak is None else tflops / peak,
        }
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true",
                   help="toy sizes (width 2, M = 4, 8 × 8 inputs) to check the script on a CPU")
    p.add_argument("--models", type=int, default=None, help="M, the stacked models (default 32)")
    p.add_argument("--compile", nargs="*", default=["default", "reduce-overhead"],
                   choices=("default", "reduce-overhead"), metavar="MODE",
                   help="torch.compile modes to time (default: both; none: pass --compile)")
    p.add_argument("--tf32", action="store_true", help="also time the batched step with TF32 on")
    p.add_argument("--only", nargs="+", default=None, metavar="PART",
                   help="run only these parts (the baselines loop and resnet18_loop are always "
                        "run first, since every ratio needs them)")
    p.add_argument("--part-limit", type=int, default=120, help="seconds allowed to each part")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the device's FP32 peak (default: a datasheet value for known GPUs)")
    p.add_argument("--threads", type=int, default=None, help="CPU intra-op threads")
    p.add_argument("--out", default=None, help="folder for bench.json")
    args = p.parse_args(argv)
    for name, value in (("--models", args.models), ("--part-limit", args.part_limit),
                        ("--threads", args.threads)):
        if value is not None and value < 1:
            p.error(f"{name}={value} must be an integer >= 1")
    if args.peak_tflops is not None and args.peak_tflops <= 0:
        p.error(f"--peak-tflops={args.peak_tflops} must be > 0")
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = TINY if args.tiny else Sizes()
    if args.models:
        sizes = Sizes(**{**asdict(sizes), "models": args.models})
    data = synthetic(4096, channels=3, size=sizes.size)
    table = parts(sizes, args.device, data, args)
    unknown = sorted(set(args.only or ()) - set(table))
    if unknown:
        p.error(f"--only: unknown parts {unknown}; choose from {sorted(table)}")
    chosen = [n for n in table if args.only is None or n in args.only
              or n in ("loop", "resnet18_loop")]
    peak, peak_source = peak_tflops(args.device, args.peak_tflops)
    result: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "unit": "model-iterations per second (update parts: milliseconds per update)",
        "machine": device_info(),
        "config": {**asdict(sizes), "device": args.device, "compile": args.compile,
                   "tf32_default": False, "part_limit_s": args.part_limit},
        "peak_tflops": peak,
        "peak_source": peak_source,
        "flops_per_model_iteration": {},
        "raw": {},
        "errors": {},
        "not_implemented": NOT_IMPLEMENTED,
    }
    for arch, width in (("convnet", sizes.width), ("resnet18", sizes.resnet_width)):
        result["flops_per_model_iteration"][arch] = flops_per_model_iteration(
            arch, width, sizes, args.device)
    for name in chosen:
        try:
            with time_limit(args.part_limit):
                result["raw"][name] = table[name][1]()
            print(f"{name}: {result['raw'][name]:.4g}", flush=True)
        except Exception as err:  # one failing part must not stop the others
            result["errors"][name] = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
            print(f"{name}: ERROR {type(err).__name__}: {err}", flush=True)
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    torch.backends.cudnn.benchmark = True
    result["results"] = summarise(result["raw"], {n: a for n, (a, _) in table.items()},
                                  result["flops_per_model_iteration"], peak)
    ratios = {n: r["ratio_vs_loop"] for n, r in result["results"].items()
              if n.startswith("batched") and r["ratio_vs_loop"] is not None}
    result["goal"] = {"ratio": GOAL_RATIO, "models": sizes.models,
                      "best": max(ratios.items(), key=lambda kv: kv[1], default=None),
                      "met": sizes.models >= 32 and any(r >= GOAL_RATIO for r in ratios.values())}
    if args.out:
        Path(args.out).mkdir(parents=True, exist_ok=True)
        with open(Path(args.out) / "bench.json", "w") as fh:
            json.dump(result, fh, indent=1, default=str)
    print(json.dumps({n: r["ratio_vs_loop"] for n, r in result["results"].items()}, indent=1))
    return result


if __name__ == "__main__":
    main()
