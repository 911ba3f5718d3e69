"""Grid throughput: batched trainer vs one model at a time vs a paper-style loop; entropy time.

Three ways to train the same ConvNet grid points, timed in one run (medians of ``--repeats``):

* ``batched``: :class:`thermocheck.nets.Trainer` with all ``M`` models stacked (recorder included),
  eager and, with ``--compile MODE…``, through ``torch.compile`` in those modes;
* ``loop``: the same trainer with ``M = 1``, one model after another (our code, no batching);
* ``paper``: an ``nn.Module`` + ``torch.optim.SGD`` loop that syncs with the host every step as the
  reference code does (CPU ``randint`` indices, ``loss.item()``, an ``.item()`` per parameter norm).

Throughput is model-iterations per second. ``--entropy N D`` also times
``thermocheck.entropy.sphere_entropy`` on ``N`` random directions in ``R^D`` (one model's queue).
Writes JSON (machine, versions, config, results, errors per part) to ``--out``.

Example (GPU goal: batched ≥ 15× the same models trained one at a time, ConvNet k = 8, 95 models)::

    python benchmarks/bench_nets.py --device cuda --width 8 --models 95 --compile default \
        --channels 3 --size 32 --batch 128 --entropy 4000 97200
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F

from thermocheck.nets import GridConfig, Trainer, make_model, synthetic
from thermocheck.nets.train import COMPILE_MODES


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _median_time(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    fn()  # warm-up (cuDNN algorithm choice, allocator)
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _config(args: argparse.Namespace, m: int, compile_mode: str | None = None) -> GridConfig:
    lrs = tuple(float(v) for v in torch.logspace(-1.5, 0, m).tolist())
    return GridConfig(
        protocol="fixed_lr",
        x=lrs,
        y=(1e-2,),
        model="convnet",
        width=args.width,
        dataset="synthetic",
        batch_size=args.batch,
        iters=10**9,
        every=25,
        queue_size=0,
        device=args.device,
        progress=False,
        compile=compile_mode,
    )


def trainer_throughput(trainer: Trainer, steps: int, repeats: int, device: torch.device) -> float:
    """Model-iterations per second of ``trainer.train_step`` (median of ``repeats`` blocks of
    ``steps`` steps, after a warm-up)."""
    for _ in range(3):  # compilation and CUDA-graph recording happen on the first calls
        trainer.train_step()

    def run() -> None:
        for _ in range(steps):
            trainer.train_step()

    return trainer.M * steps / _median_time(run, repeats, device)


def bench_batched(args: argparse.Namespace, data: Any, m: int,
                  compile_mode: str | None = None) -> float:
    trainer = Trainer(_config(args, m, compile_mode), data=data)
    return trainer_throughput(trainer, args.steps, args.repeats, torch.device(args.device))


def bench_loop(args: argparse.Namespace, data: Any) -> float:
    trainers = [Trainer(_config(args, 1), data=data) for _ in range(args.loop_models)]

    def run() -> None:
        for t in trainers:
            for _ in range(args.steps):
                t.train_step()

    return (
        args.loop_models * args.steps / _median_time(run, args.repeats, torch.device(args.device))
    )


def bench_paper(args: argparse.Namespace, data: Any, *, fused: bool = False) -> float:
    """The paper-style loop; ``fused`` uses ``torch.optim.SGD``'s fused update kernel."""
    dev = torch.device(args.device)
    x, y = data.x.to(dev), data.y.to(dev)
    models = [
        make_model("convnet", args.width, in_channels=x.shape[1]).to(dev)
        for _ in range(args.loop_models)
    ]
    opts = [
        torch.optim.SGD([p for p in m.parameters() if p.requires_grad], lr=0.1, weight_decay=1e-2,
                        fused=fused or None)
        for m in models
    ]
    log: list[float] = []

    def run() -> None:
        for model, opt in zip(models, opts, strict=True):
            for _ in range(args.steps):
                idx = torch.randint(0, x.shape[0], (args.batch,)).to(dev)  # CPU indices
                loss = F.cross_entropy(model(x[idx]), y[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                log.append(loss.item())  # host sync
                log.extend(p.norm().item() for p in model.parameters() if p.requires_grad)

    return args.loop_models * args.steps / _median_time(run, args.repeats, dev)


def bench_entropy(args: argparse.Namespace) -> dict[str, float]:
    from thermocheck.entropy import sphere_entropy

    n, d = args.entropy
    gen = torch.Generator(device=args.device).manual_seed(0)
    # a concentrated random walk: small steps around one direction (realistic NN spacing)
    w = (
        torch.randn(d, device=args.device, generator=gen)
        + 0.01 * torch.randn(n, d, device=args.device, generator=gen).cumsum(0) / n**0.5
    )
    sphere_entropy(w[:64])
    _sync(torch.device(args.device))
    t0 = time.perf_counter()
    value = sphere_entropy(w)
    _sync(torch.device(args.device))
    return {"N": n, "d": d, "seconds": time.perf_counter() - t0, "entropy": value}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (1 on a shared CPU: small models thrash with more)")
    p.add_argument("--width", type=int, default=4)
    p.add_argument("--models", type=int, nargs="+", default=[8], help="M values for 'batched'")
    p.add_argument("--compile", nargs="*", default=[], choices=COMPILE_MODES, metavar="MODE",
                   help="also time 'batched' with these torch.compile modes "
                        f"({', '.join(COMPILE_MODES)})")
    p.add_argument("--loop-models", type=int, default=2, help="models timed in 'loop'/'paper'")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", type=int, default=8, help="image side (32 for CIFAR-sized inputs)")
    p.add_argument("--channels", type=int, default=1)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--entropy", type=int, nargs=2, metavar=("N", "D"), default=None)
    p.add_argument("--parts", nargs="+", default=["batched", "loop", "paper", "entropy"])
    p.add_argument("--out", default=None, help="JSON output path")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    data = synthetic(4096, channels=args.channels, size=args.size)
    result: dict[str, Any] = {
        "config": vars(args),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "device_name": torch.cuda.get_device_name() if args.device.startswith("cuda") else "cpu",
        "tf32": False,
        "unit": "model-iterations per second",
        "results": {},
        "errors": {},
    }
    parts: dict[str, Callable[[], Any]] = {
        "loop": lambda: bench_loop(args, data),
        "paper": lambda: bench_paper(args, data),
    }
    for m in args.models:
        parts[f"batched_M{m}"] = lambda m=m: bench_batched(args, data, m)
        for mode in args.compile:
            parts[f"batched_M{m}_{mode}"] = lambda m=m, mode=mode: bench_batched(
                args, data, m, mode)
    if args.entropy:
        parts["entropy"] = lambda: bench_entropy(args)
    for name, fn in parts.items():
        if name.split("_")[0] not in args.parts:
            continue
        try:
            result["results"][name] = fn()
            print(f"{name}: {result['results'][name]}", flush=True)
        except Exception as err:  # one failing part must not stop the others
            result["errors"][name] = f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}"
            print(f"{name}: ERROR {err}", flush=True)
            if args.device.startswith("cuda"):
                torch.cuda.empty_cache()
    r = result["results"]
    for name in [k for k in r if k.startswith("batched_")]:
        for base in ("loop", "paper"):
            if base in r:
                r[f"speedup_{name.removeprefix('batched_')}_vs_{base}"] = r[name] / r[base]
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
    print(json.dumps({k: v for k, v in r.items() if "speedup" in k}, indent=1))
    return result


if __name__ == "__main__":
    main()
