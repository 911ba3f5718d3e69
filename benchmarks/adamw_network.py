"""AdamW's norm equilibrium on a CPU network (the README's AdamW network table).

Trains the scale-invariant ResNet of ``examples/momentum_resnet/train.py`` (every convolution
followed by ``BatchNorm2d(affine=False)``, frozen head; ``C`` trainable coordinates) with
``torch.optim.AdamW`` (decoupled weight decay, β2 = 0.999, ε = 1e-8) at a fixed learning rate on
the offline digits, with thermocheck's Recorder attached. Per (η, λ, β1) point it prints the
measured E‖w‖² and angular update per step against the rotational equilibrium of Kosson et al.
(2024, arXiv:2305.17212; ``thermocheck.optimizers.adamw_equilibrium``):

    E‖w‖² = η C/(2λ),        ∠(w_k, w_{k+1}) = √(2ηλ (1 − β1)/(1 + β1)),

and runs ``laws.norm_equilibrium`` on the states. The angle between successive weight vectors,
``2 atan2(‖ŵ_k − ŵ_{k+1}‖, ‖ŵ_k + ŵ_{k+1}‖)`` for the whole trainable vector, is computed beside
the loop and averaged over the Recorder's stationary window (batch means of ``every``-step
blocks); it goes to ``State.extra["angular_update"]``, which the law checks.

Two diagnostics split a deviation of E‖w‖². With the normalised update ``u_k`` read off
``w_{k+1} = (1 − ηλ) w_k − η u_k``, the exact stationary balance of ‖w‖² is
``λ(2 − ηλ) E‖w‖² = η E‖u‖² − 2(1 − ηλ) E⟨w, u⟩``. The random-walk model has
``E‖u‖² = C(1 − β1)/(1 + β1)`` (column ``E‖u‖²/(C(1−β1)/(1+β1))``) and, through the first
moment's memory of past kicks, ``−2E⟨w, u⟩/(ηE‖u‖²) = (1 + β1)/(1 − β1) − 1`` (column
``memory = (1 − 2E⟨w,u⟩/(ηE‖u‖²))(1 − β1)/(1 + β1)``, 1 in the model). To first order in ηλ,
E‖w‖²/(ηC/2λ) is their product.

    python benchmarks/adamw_network.py [--steps N] [--beta1 B]     # 12000 steps: about 3 min
"""

from __future__ import annotations

import argparse
import importlib.util
import itertools
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
import torch.nn.functional as F

from thermocheck import laws
from thermocheck.measurement import window_estimate
from thermocheck.nets.train import intra_op_threads
from thermocheck.optimizers import adamw_equilibrium
from thermocheck.record import Recorder
from thermocheck.states import State, StateGrid

LRS = (3e-3, 1e-2)  # η
WDS = (0.1, 0.3)  # λ: 1/(2ηλ) ≤ 1700 steps, the radius relaxes within the run
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "momentum_resnet" / "train.py"


def example() -> ModuleType:
    """``examples/momentum_resnet/train.py`` as a module (its model and data)."""
    spec = importlib.util.spec_from_file_location("momentum_resnet_train", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def step_angle(before: torch.Tensor, after: torch.Tensor) -> float:
    """``∠(w_k, w_{k+1}) = 2 atan2(‖ŵ_k − ŵ_{k+1}‖, ‖ŵ_k + ŵ_{k+1}‖)`` (no cancellation at
    small angles)."""
    a, b = before / before.norm(), after / after.norm()
    return 2 * math.atan2(float((a - b).norm()), float((a + b).norm()))


def train_point(ex: ModuleType, lr: float, wd: float, beta1: float, steps: int,
                data: tuple[torch.Tensor, torch.Tensor]) -> State:
    """One AdamW run with the Recorder attached; its state with the measured angular update."""
    cfg = ex.Config(steps=steps)
    x, y = data
    model = ex.scale_invariant_resnet(cfg.width, cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, betas=(beta1, 0.999), weight_decay=wd)
    recorder = Recorder(model, "fixed_lr", data=data, batch_size=cfg.batch_size,
                        every=cfg.every, noise_every=cfg.noise_every)
    recorder.attach(optimizer)
    gen = torch.Generator().manual_seed(cfg.seed)
    series = np.empty((3, steps))  # angle, ‖u_k‖², ⟨w_k, u_k⟩ per step
    w = torch.cat([p.detach().flatten() for p in params])
    for k in range(steps):
        idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        recorder.log_loss(loss)
        optimizer.step()
        nxt = torch.cat([p.detach().flatten() for p in params])
        update = ((1 - lr * wd) * w - nxt) / lr  # u_k of w_{k+1} = (1 − ηλ) w_k − η u_k
        series[:, k] = step_angle(w, nxt), float(update @ update), float(w @ update)
        w = nxt
    state = recorder.state(entropy=False)
    first = state.extra["window_start_iteration"] // cfg.every
    blocks = series[:, : steps - steps % cfg.every].reshape(3, -1, cfg.every).mean(2)
    angle, update_sq, radial = (window_estimate(b[first:]) for b in blocks)
    return state.replace(extra={
        **state.extra, "angular_update": asdict(angle), "update_sq": asdict(update_sq),
        "update_radial": asdict(radial)})


def report(s: State, beta1: float, seconds: float) -> str:
    """One table row: measured / predicted for E‖w‖² and the angular update."""
    assert s.sq_norm is not None and s.lr is not None and s.wd is not None
    eq = adamw_equilibrium(lr=s.lr, wd=s.wd, coordinates=s.d, beta1=beta1)
    angle, update_sq = s.extra["angular_update"], s.extra["update_sq"]["value"]
    walk = update_sq / (s.d * (1 - beta1) / (1 + beta1))
    memory = (1 - 2 * s.extra["update_radial"]["value"] / (s.lr * update_sq)) \
        * (1 - beta1) / (1 + beta1)
    return (f"| {s.lr:g} | {s.wd:g} | {beta1:g} | {s.sq_norm.value / eq.sq_norm:.3f} ± "
            f"{s.sq_norm.stderr / eq.sq_norm:.3f} | {angle['value'] / eq.angular_update:.3f} ± "
            f"{angle['stderr'] / eq.angular_update:.3f} | {walk:.3f} | {memory:.3f} | "
            f"{s.stationary_series['radius']} | {s.extra['window_start_iteration']} | "
            f"{seconds:.0f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=12_000)
    parser.add_argument("--beta1", type=float, default=0.9)
    args = parser.parse_args()
    ex = example()
    data = ex.digits()
    states = []
    print("| η | λ | β1 | E‖w‖²/(ηC/2λ) | angle/√(2ηλ(1−β1)/(1+β1)) | E‖u‖²/(C(1−β1)/(1+β1)) | "
          "memory | radius stationary | window from | time |\n"
          "|---|---|---|---|---|---|---|---|---|---|", flush=True)
    with intra_op_threads(1):
        for lr, wd in itertools.product(LRS, WDS):
            t0 = time.perf_counter()
            states.append(train_point(ex, lr, wd, args.beta1, args.steps, data))
            print(report(states[-1], args.beta1, time.perf_counter() - t0), flush=True)
    print(f"C = d = {states[0].d} trainable coordinates, {args.steps} steps per point")
    print(laws.norm_equilibrium(StateGrid.combine(states)).summary())


if __name__ == "__main__":
    main()
