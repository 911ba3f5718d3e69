"""Record your own scale-invariant model with thermocheck: a worked example.

The model is not one of thermocheck's. It is an MLP on scikit-learn's 8×8 digits whose hidden
layers are bias-free linear maps, each followed by ``BatchNorm1d(affine=False)``, so the loss does
not change when all trainable weights are scaled; its linear head is frozen. A plain PyTorch loop
trains it with SGD at a fixed learning rate and weight decay (fixed LR, Eq. 15), once per point of
a 3 × 3 grid. Thermocheck's :class:`~thermocheck.record.Recorder` records each run: the three lines
marked ``# thermocheck`` are all a user adds to a loop. The runs' states combine into one grid,
saved as JSON, which ``test_user_model.py`` beside this file checks against the ideal gas law (V1)
and the Maxwell relation (V3). :func:`train_grid_at_once` hands the same model and grid to
thermocheck's own trainer instead, which trains the 9 copies as one stacked model.

Run ``python examples/user_model/train.py [--out states.json] [--steps 5000]``. On 2 CPU cores
(one torch thread) the 9 runs take about 20 s. All 9 states are stationary in the radius and the
noise, the series V1 needs; the loss of two (λ = 0.1 at η = 0.2 and 0.4) has not settled at 5000
steps, which leaves them out of V3 (stationarity is judged per series, ``State.stationary_series``).
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

from thermocheck.nets import Dataset, GridConfig, Trainer
from thermocheck.nets.train import intra_op_threads
from thermocheck.record import Recorder
from thermocheck.states import State, StateGrid

HERE = Path(__file__).resolve().parent


# -- configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    lrs: tuple[float, ...] = (0.1, 0.2, 0.4)  # η
    wds: tuple[float, ...] = (0.025, 0.05, 0.1)  # λ; ηλ ≥ 2.5e-3: the radius relaxes in ≤ 100 steps
    width: int = 32  # hidden units: d = 64·32 + 32·32 = 3072 trainable weights
    batch_size: int = 32
    steps: int = 5000  # 2500 discarded as burn-in at least; at 3000 slow learning drifts remain
    noise_every: int = 10  # steps between noise measurements (8 minibatch gradients, one vmap pass)
    queue_size: int = 150  # direction snapshots for the entropy
    queue_every: int = 10
    seed: int = 0


# -- data and model --------------------------------------------------------------------------------
def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """1797 standardised 64-pixel images and their labels."""
    bunch = load_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32)
    return (x - x.mean()) / x.std(), torch.tensor(bunch.target)


def scale_invariant_mlp(width: int, seed: int) -> nn.Module:
    """64 → width → width → 10. Each hidden layer is ``Linear(bias=False)`` then
    ``BatchNorm1d(affine=False)``, so it is invariant to the scale of its weights; the head is
    frozen with weight norm 10 (a trained head, or a bias before BatchNorm, would break the
    invariance, and the Recorder would refuse the model)."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Linear(64, width, bias=False),
        nn.BatchNorm1d(width, affine=False),
        nn.ReLU(),
        nn.Linear(width, width, bias=False),
        nn.BatchNorm1d(width, affine=False),
        nn.ReLU(),
        nn.Linear(width, 10),
    )
    head = model[-1]
    head.requires_grad_(False)
    with torch.no_grad():  # as the paper: a fixed head of norm 10 sets the logits' scale
        head.weight.mul_(10 / head.weight.norm())
    return model


# -- one run per grid point ------------------------------------------------------------------------
def train_point(
    lr: float, wd: float, data: tuple[torch.Tensor, torch.Tensor], cfg: Config
) -> State:
    """Train one model with SGD(lr, weight_decay=wd) and return its recorded stationary state."""
    x, y = data
    model = scale_invariant_mlp(cfg.width, cfg.seed)
    optimizer = torch.optim.SGD(
        [p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=wd
    )
    recorder = Recorder(  # thermocheck: refuses the model if it is not scale-invariant
        model, "fixed_lr", lr=lr, wd=wd, data=data, batch_size=cfg.batch_size,
        noise_every=cfg.noise_every, queue_size=cfg.queue_size, queue_every=cfg.queue_every,
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        recorder.step(loss)  # thermocheck: on device, no host synchronisation
    return recorder.state()  # thermocheck: a State with standard errors and a stationarity verdict


# -- or: the whole grid at once on thermocheck's trainer ------------------------------------------
def grid_trainer(cfg: Config, protocol: str = "fixed_lr",
                 axes: tuple[tuple[float, ...], tuple[float, ...]] | None = None,
                 noise_samples: int = 2) -> Trainer:
    """This model on :class:`thermocheck.nets.Trainer`, over ``axes`` of ``protocol`` (default:
    ``cfg``'s learning rates × weight decays) with ``cfg``'s batch, run length, queue, noise
    interval and seed. The trainer checks that the model is scale-invariant, stacks the copies
    with ``torch.func`` and trains them as one (its own minibatch streams and noise measurements;
    the laws see the same kind of states)."""
    x, y = axes or (cfg.lrs, cfg.wds)
    images, labels = digits()
    config = GridConfig(protocol=protocol, x=x, y=y, batch_size=cfg.batch_size, iters=cfg.steps,
                        queue_size=cfg.queue_size, queue_every=cfg.queue_every,
                        noise_every=cfg.noise_every, noise_samples=noise_samples, seed=cfg.seed,
                        threads=1)
    return Trainer(config, data=Dataset("digits", images, labels, 10),
                   model=scale_invariant_mlp(cfg.width, cfg.seed))


def train_grid_at_once(cfg: Config) -> StateGrid:
    """The same model and grid as :func:`main`, trained as one on thermocheck's trainer."""
    trainer = grid_trainer(cfg)
    trainer.run()
    return trainer.grid()


#: Wider 5 × 5 grids of this model, long enough for V3 to decide under fixed LR (about 12 s each
#: on one CPU thread); thermocheck's mutant tests and false-alarm benchmark of the network laws
#: train them with ``grid_trainer(WIDE, protocol, WIDE_AXES[protocol], noise_samples=4)``.
WIDE = Config(steps=8000, noise_every=20, queue_size=200)
WIDE_AXES = {
    "fixed_lr": (tuple(np.geomspace(0.05, 0.4, 5)), tuple(np.geomspace(0.0125, 0.1, 5))),
    "fixed_elr": (tuple(np.geomspace(0.005, 0.04, 5)), tuple(np.geomspace(0.0125, 0.1, 5))),
}


def main(out: str | Path = HERE / "states.json", steps: int | None = None) -> Path:
    """Train the grid, print one line per run, save the grid as JSON; return the path."""
    cfg = Config() if steps is None else Config(steps=steps)
    data = digits()
    states = []
    t0 = time.perf_counter()
    with intra_op_threads(1):  # a model this small runs fastest on one CPU thread
        for lr, wd in itertools.product(cfg.lrs, cfg.wds):
            s = train_point(lr, wd, data, cfg)
            states.append(s)
            print(f"lr={lr:<5} wd={wd:<6} E‖w‖²={s.sq_norm.value:8.3f} ± {s.sq_norm.stderr:.2g}  "
                  f"loss={s.loss.value if s.loss else float('nan'):.3f}  "
                  f"{'stationary' if s.stationary else s.reason}", flush=True)
    path = StateGrid.combine(states).save(out)
    print(f"{len(states)} runs in {time.perf_counter() - t0:.0f} s; states written to {path}")
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE / "states.json"))
    parser.add_argument("--steps", type=int, default=None)
    args = parser.parse_args()
    main(args.out, args.steps)
