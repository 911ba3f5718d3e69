"""What the Recorder costs a user's loop, and noise() with torch.func against a plain loop.

``steps``: a ConvNet trained by a plain ``torch.optim.SGD`` loop, timed without and with
``recorder.step(loss)`` after each optimizer step, for each Recorder setting in :data:`SETTINGS`:
``bare`` (block means every 25 steps, nothing else), ``example`` (the README's example: training
data, noise measured every 10 steps, a queue of 1000 directions every 25) and ``recommended``
(2 minibatch gradients every 50 steps, the same queue). The loops alternate in blocks of
``--steps`` steps, ``--repeats`` times, so that a change in the machine's load hits all; the
result is the median time per step of each, in wall-clock and in CPU time of this process (the
second is immune to other processes on a shared machine). A noise measurement costs
``noise_samples`` minibatch gradients of ``batch_size`` samples, so its share of the overhead is
about ``noise_samples / noise_every`` training steps per step. Goal: at most 10 %.

``noise``: :func:`thermocheck.noise.noise` (``n = 64`` minibatches of 32, full batch) with
``method="vmap"`` and ``method="loop"`` on the examples' BatchNorm MLP and on a ConvNet, medians.

Writes JSON (machine, versions, config, results) to ``--out``. Example::

    python benchmarks/bench_recorder.py --threads 1 --batch 128 --out bench_recorder.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.nets import make_model, synthetic
from thermocheck.noise import noise
from thermocheck.record import Recorder

Timer = Callable[[], float]
CLOCKS: dict[str, Timer] = {"wall": time.perf_counter, "cpu": time.process_time}
#: Recorder options per setting; ``data`` and ``batch_size`` are added where noise is measured.
SETTINGS: dict[str, dict[str, Any]] = {
    "bare": {},
    "example": {"noise_every": 10, "queue_size": 1000},
    "recommended": {"noise_every": 50, "noise_samples": 2, "queue_size": 1000},
}
MODELS = {"convnet4_digits": (4, 1, 8), "convnet8_cifar": (8, 3, 32)}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], None], device: torch.device) -> dict[str, float]:
    _sync(device)
    start = {k: clock() for k, clock in CLOCKS.items()}
    fn()
    _sync(device)
    return {k: clock() - start[k] for k, clock in CLOCKS.items()}


def _loop(
    model: nn.Module, opt: torch.optim.Optimizer, data: Any, batch: int, steps: int,
    recorder: Recorder | None, gen: torch.Generator,
) -> Callable[[], None]:
    x, y = data.x, data.y

    def run() -> None:
        for _ in range(steps):
            idx = torch.randint(0, x.shape[0], (batch,), generator=gen).to(x.device)
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            if recorder is not None:
                recorder.step(loss)

    return run


def bench_steps(args: argparse.Namespace, width: int, channels: int, size: int) -> dict[str, Any]:
    """Median seconds per step without and with the recorder (each of ``args.settings``), and
    the overheads."""
    dev = torch.device(args.device)
    data = synthetic(4096, channels=channels, size=size).to(dev, torch.float32)
    gen = torch.Generator().manual_seed(0)
    loops = {}
    for name in ("plain", *args.settings):
        model = make_model("convnet", width, in_channels=channels).to(dev)
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=0.1, weight_decay=1e-3)
        rec = None
        if name != "plain":
            options = dict(SETTINGS[name])
            if "noise_every" in options:
                options.update(data=(data.x, data.y), batch_size=args.batch)
            rec = Recorder(model, "fixed_lr", lr=0.1, wd=1e-3, **options)
        loops[name] = _loop(model, opt, data, args.batch, args.steps, rec, gen)
    for run in loops.values():
        run()  # warm-up
    times: dict[str, dict[str, list[float]]] = {n: {c: [] for c in CLOCKS} for n in loops}
    for _ in range(args.repeats):
        for name, run in loops.items():
            for clock, seconds in _timed(run, dev).items():
                times[name][clock].append(seconds / args.steps)
    d = sum(p.numel() for p in make_model("convnet", width, in_channels=channels).parameters()
            if p.requires_grad)
    out: dict[str, Any] = {"width": width, "input": [channels, size, size], "d": d}
    for clock in CLOCKS:
        plain = statistics.median(times["plain"][clock])
        out[clock] = {"plain_ms": 1e3 * plain}
        for name in args.settings:
            recorded = statistics.median(times[name][clock])
            out[clock][name] = {"recorded_ms": 1e3 * recorded, "overhead": recorded / plain - 1}
    return out


def _mlp(width: int) -> nn.Module:
    """The examples' model: 64 → width → width → 10, bias-free linear + BatchNorm1d(affine=False),
    frozen head."""
    model = nn.Sequential(
        nn.Linear(64, width, bias=False), nn.BatchNorm1d(width, affine=False), nn.ReLU(),
        nn.Linear(width, width, bias=False), nn.BatchNorm1d(width, affine=False), nn.ReLU(),
        nn.Linear(width, 10),
    )
    model[-1].requires_grad_(False)
    return model


def bench_noise(args: argparse.Namespace) -> dict[str, Any]:
    """Median seconds of noise() per method, for the MLP (flat inputs) and a ConvNet."""
    dev = torch.device(args.device)
    data = synthetic(1797, channels=1, size=8).to(dev, torch.float32)
    cases = {
        "mlp32": (_mlp(32).to(dev), (data.x.flatten(1), data.y)),
        "mlp128": (_mlp(128).to(dev), (data.x.flatten(1), data.y)),
        "convnet4": (make_model("convnet", 4, in_channels=1).to(dev), (data.x, data.y)),
    }
    out: dict[str, Any] = {}
    for name, (model, xy) in cases.items():
        d = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out[name] = {"d": d}
        for method in ("vmap", "loop"):

            def run(model: nn.Module = model, xy: Any = xy, method: str = method) -> None:
                noise(model, xy, batch_size=32, n=64, method=method)

            run()
            out[name][f"{method}_ms"] = 1e3 * statistics.median(
                _timed(run, dev)["wall"] for _ in range(args.repeats)
            )
        print(f"noise {name}: {out[name]}", flush=True)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=100, help="steps per timed block")
    p.add_argument("--repeats", type=int, default=15)
    p.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    p.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--parts", nargs="+", default=["steps", "noise"], choices=["steps", "noise"])
    p.add_argument("--out", default=None, help="JSON output path")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, Any] = {
        "config": vars(args),
        "torch": torch.__version__,
        "python": sys.version.split()[0],
        "machine": platform.machine(),
        "threads": torch.get_num_threads(),
        "results": {},
    }
    if "steps" in args.parts:
        for name in args.models:
            r = bench_steps(args, *MODELS[name])
            result["results"][name] = r
            for c in CLOCKS:
                print(f"steps {name} (d={r['d']}, {c}): plain {r[c]['plain_ms']:.3f} ms/step; "
                      + "; ".join(f"{s} {r[c][s]['recorded_ms']:.3f} "
                                  f"({100 * r[c][s]['overhead']:+.1f} %)" for s in args.settings),
                      flush=True)
    if "noise" in args.parts:
        result["results"]["noise"] = bench_noise(args)
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1, default=str)
    return result


if __name__ == "__main__":
    main()
