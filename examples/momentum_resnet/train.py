"""SGD with momentum 0.9 on a scale-invariant ResNet, recorded by thermocheck: a worked example.

The model is a small ResNet whose residual blocks follow every convolution, the shortcut's 1×1
convolution included, with ``BatchNorm2d(affine=False)``; its linear head is frozen. Scaling all
trainable weights then leaves the loss unchanged. The loop is the standard recipe,
``torch.optim.SGD(momentum=0.9, weight_decay=λ)`` at a fixed learning rate (fixed LR, Eq. 15), on
scikit-learn's 8×8 digits (shipped, no download). Thermocheck's
:class:`~thermocheck.record.Recorder` is attached to the optimizer: the lines marked
``# thermocheck`` are all a user adds. It reads η, β, Nesterov and λ from the optimizer, keeps the
velocity the optimizer claims, and returns a state whose laws use the momentum-aware forms
(docs/optimizers.md): to leading order SGD with momentum β is plain SGD at ``η/(1 − β)``.

The recipe's usual ``weight_decay=5e-4`` equilibrates in about ``(1 − β)/(2ηλ)`` steps, 1000 at
η = 0.1: longer than a CPU test can afford. The grid here therefore takes λ = 0.01 with
η ∈ {0.02, 0.04} (``η/(1 − β)·λ`` of 2e-3 and 4e-3: the radius relaxes within 250 steps; at
λ = 0.005 the radius was not yet stationary after 2500 steps); :data:`RECIPE` is the recipe's own
point for a longer run (``--recipe``).

What it shows (``test_momentum_resnet.py``): the momentum norm balance holds, and a recorder
told plain SGD while the loop runs β = 0.9 fails V1 and the norm balance. V1 holds in its
discretisation-corrected momentum form,
``r*⁴ = η(Tr Σ_w̄ + E‖∇L(w̄)‖² + 2β E[‖w‖²⟨v, g⟩])/(2λ(1 − β))``, with the velocity's measured
memory of the gradient (docs/optimizers.md): E‖w‖² is 1.000–1.010 times it at every point tried
(η ∈ {0.01, 0.02, 0.04}, λ ∈ {0.01, 0.02}). The memory term, −0.37 to −0.50 times Tr Σ_w̄, nearly
cancels E‖∇L(w̄)‖² (0.46 to 0.58 times Tr Σ_w̄): without it E‖w‖² is 0.83–0.87 times the
prediction, which fails.

Run ``python examples/momentum_resnet/train.py [--steps N] [--recipe]``.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.nets.data import load_digits
from thermocheck.nets.train import intra_op_threads
from thermocheck.record import Recorder
from thermocheck.states import State, StateGrid


# -- configuration ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Config:
    lrs: tuple[float, ...] = (0.02, 0.04)  # η
    wds: tuple[float, ...] = (0.01,)  # λ: larger than the recipe's 5e-4, to equilibrate fast
    momentum: float = 0.9
    width: int = 4  # channels of the first stage (the second has 2 × width)
    batch_size: int = 32
    steps: int = 2500
    every: int = 10  # steps per logged block
    noise_every: int = 50  # steps between noise measurements (8 minibatch gradients each; V1
    # corrected uses the per-step trace, the measurements only split off E‖∇L(w̄)‖²)
    seed: int = 0


#: The standard recipe's point (η = 0.1, λ = 5e-4); it needs about ten times the steps.
RECIPE = Config(lrs=(0.1,), wds=(5e-4,), steps=25_000)


# -- the model -------------------------------------------------------------------------------------
def conv_bn(c_in: int, c_out: int, kernel: int = 3, stride: int = 1) -> nn.Sequential:
    """A bias-free convolution followed by ``BatchNorm2d(affine=False)``: invariant to the scale
    of its weights."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
                         nn.BatchNorm2d(c_out, affine=False))


class Block(nn.Module):
    """``relu(bn(conv(relu(bn(conv(x))))) + shortcut(x))``; the shortcut is the identity, or a
    1×1 convolution with its own BatchNorm when the shape changes."""

    def __init__(self, c_in: int, c_out: int, stride: int) -> None:
        super().__init__()
        self.branch = nn.Sequential(conv_bn(c_in, c_out, 3, stride), nn.ReLU(),
                                    conv_bn(c_out, c_out))
        self.shortcut = (nn.Identity() if stride == 1 and c_in == c_out
                         else conv_bn(c_in, c_out, 1, stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.branch(x) + self.shortcut(x))


def scale_invariant_resnet(width: int, seed: int, classes: int = 10) -> nn.Module:
    """Stem, two stages of one residual block (the second halves the resolution), global average
    pooling and a frozen linear head of weight norm 10 (as the paper's networks)."""
    torch.manual_seed(seed)
    model = nn.Sequential(conv_bn(1, width), nn.ReLU(), Block(width, width, 1),
                          Block(width, 2 * width, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(2 * width, classes))
    head = model[-1]
    assert isinstance(head, nn.Linear)
    head.requires_grad_(False)
    with torch.no_grad():
        head.weight.mul_(10 / head.weight.norm())
    return model


# -- one run per grid point ------------------------------------------------------------------------
def train_point(lr: float, wd: float, data: tuple[torch.Tensor, torch.Tensor], cfg: Config, *,
                claim_plain_sgd: bool = False) -> State:
    """Train one model with ``SGD(lr, momentum, weight_decay=wd)`` and return its state.

    ``claim_plain_sgd`` is the broken setup the example's test uses: the recorder is told plain
    SGD (β = 0) and fed with ``recorder.step`` while the loop runs momentum."""
    x, y = data
    model = scale_invariant_resnet(cfg.width, cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=cfg.momentum, weight_decay=wd)
    claim: dict[str, Any] = (
        {"lr": lr, "wd": wd, "optimizer": {"name": "sgd"}} if claim_plain_sgd else {})
    recorder = Recorder(  # thermocheck: refuses the model if it is not scale-invariant
        model, "fixed_lr", data=data, batch_size=cfg.batch_size, every=cfg.every,
        noise_every=cfg.noise_every, **claim)
    if not claim_plain_sgd:
        recorder.attach(optimizer)  # thermocheck: reads lr, momentum, nesterov, weight_decay
    gen = torch.Generator().manual_seed(cfg.seed)
    for _ in range(cfg.steps):
        idx = torch.randint(0, x.shape[0], (cfg.batch_size,), generator=gen)
        loss = F.cross_entropy(model(x[idx]), y[idx])
        optimizer.zero_grad()
        loss.backward()
        recorder.log_loss(loss)  # thermocheck: on device, no host synchronisation
        optimizer.step()
        if claim_plain_sgd:
            recorder.step(loss)
    return recorder.state(entropy=False)  # thermocheck: a State with standard errors


def digits() -> tuple[torch.Tensor, torch.Tensor]:
    """thermocheck's offline digits: 1797 standardised 1 × 8 × 8 images and their labels."""
    data = load_digits()
    return data.x, data.y


def train_grid(cfg: Config) -> StateGrid:
    """Every (η, λ) of ``cfg``, one line printed per run; the states as one grid."""
    data = digits()
    states = []
    with intra_op_threads(1):  # a model this small runs fastest on one CPU thread
        for lr, wd in itertools.product(cfg.lrs, cfg.wds):
            t0 = time.perf_counter()
            s = train_point(lr, wd, data, cfg)
            states.append(s)
            sq = s.sq_norm
            assert sq is not None
            print(f"lr={lr:<5} wd={wd:<6} E‖w‖²={sq.value:8.3f} ± {sq.stderr:.2g}  "
                  f"{time.perf_counter() - t0:.1f} s  "
                  f"{'stationary' if s.stationary else s.reason}", flush=True)
    return StateGrid.combine(states)


if __name__ == "__main__":
    from thermocheck import laws

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--recipe", action="store_true", help="the recipe's η = 0.1, λ = 5e-4")
    args = parser.parse_args()
    config = RECIPE if args.recipe else Config()
    grid = train_grid(config if args.steps is None else replace(config, steps=args.steps))
    for result in (laws.ideal_gas(grid, corrected=True), laws.norm_balance(grid)):
        print(result.summary())
