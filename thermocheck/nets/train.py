"""Train a whole hyperparameter grid at once and measure its stationary states
(docs/architecture.md).

The grid's ``M`` models are one :class:`StackedNet` with weights ``W[M, P]``; each step draws an
independent minibatch per model from a counter-based stream keyed by the seed and the grid point,
takes one backward pass of the summed per-model losses, lets the
:class:`~thermocheck.record.Recorder` account the step on device, and applies the protocol's
update (:func:`sgd_step_`). Nothing in the step loop synchronises with the host except the noise
measurements (:meth:`Trainer.measure_noise`, every ``noise_every`` steps after burn-in), which are
log points; the host reads everything else only when asked (:meth:`Recorder.sync`, states).
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from thermocheck import theory
from thermocheck.atomic import atomic_write
from thermocheck.errors import InvalidParameterError, check_choice
from thermocheck.nets.data import Dataset, batch_indices, load_dataset, point_key
from thermocheck.nets.functional import FunctionalStack
from thermocheck.nets.models import (
    ARCHITECTURES,
    check_scale_invariance,
    make_model,
    rescaled_copy,
)
from thermocheck.nets.stacked import StackedNet, per_model_loss, sgd_step_
from thermocheck.noise import noise_from_gradients
from thermocheck.record import GridSpec, Recorder
from thermocheck.states import State, StateGrid

__all__ = ["COMPILE_MODES", "GridConfig", "Trainer", "intra_op_threads", "set_precision"]

#: ``torch.compile`` modes for ``GridConfig.compile`` (None: eager). ``reduce-overhead`` adds CUDA
#: graphs on a GPU.
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")

_NOISE_SALT = 0x5DEECE66D


@dataclass
class GridConfig:
    """One protocol's grid and how to train and measure it.

    ``x`` and ``y`` are the values of the protocol's two axes (``theory.AXES``: (lr, wd),
    (elr, wd) or (elr, radius)); the grid is their product. Steps and intervals are in iterations.
    They are the stored form (reports, checkpoints); build a config in the package's one spelling
    of a grid, ``grid={axis: values}`` as :func:`thermocheck.simulator.simulate` takes it, with
    :meth:`from_grid`, and read it back with :attr:`grid`.
    """

    protocol: str = "fixed_lr"
    x: tuple[float, ...] = (0.1, 0.3)
    y: tuple[float, ...] = (0.01, 0.03)
    model: str = "convnet"
    width: int = 4
    dataset: str = "digits"
    data_dir: str | None = None
    iters: int = 4000
    batch_size: int = 128
    every: int = 25  # steps per logged block (batch-means unit)
    burn_in: float = 0.5  # fraction of the run discarded before stationary averages
    queue_size: int = 200  # direction snapshots kept for the entropy
    queue_every: int = 25
    noise_every: int = 10  # steps between gradient-noise measurements (in the tail)
    noise_samples: int = 2  # minibatch gradients per noise measurement (the step's own + 1)
    rank_samples: int = 16  # at most this many deviations feed the effective rank
    noise_full_batch: bool = False  # centre at the full-batch gradient (the paper's measurement)
    chunk: int = 1024  # full-batch gradient: chunks in train-mode BN, as the paper
    log_every: int = 500  # host log points (progress bar)
    seed: int = 0
    init_seed: int = 1
    head_seed: int = 4
    init_radius: float = 1.0  # ‖w₀‖ (the sphere's radius under fixed_sphere)
    head_norm: float = 10.0
    device: str = "cpu"
    threads: int | None = None  # CPU intra-op threads while training (None: torch's setting)
    dtype: str = "float32"  # or "float64"
    tf32: bool = False
    deterministic: bool = False
    compile: str | None = None  # a torch.compile mode for the training step's forward and backward
    checkpoint: str | None = None
    checkpoint_every: int = 0
    progress: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        theory.check_protocol(self.protocol)
        check_choice("model", self.model, ARCHITECTURES)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        if self.compile is not None:
            check_choice("compile", self.compile, COMPILE_MODES)
        if self.iters < 4 * self.every:
            raise InvalidParameterError(f"iters={self.iters} must be >= 4 * every={4 * self.every}")

    @classmethod
    def from_grid(cls, protocol: str, grid: Mapping[str, Any], **options: Any) -> GridConfig:
        """``GridConfig(protocol, x, y, **options)`` from ``grid = {axis: values}`` naming exactly
        the protocol's two axes, e.g. ``{"lr": [0.1, 0.3], "wd": [0.01, 0.03]}`` (fixed LR)."""
        x, y = theory.grid_axes(protocol, grid)
        return cls(protocol=protocol, x=tuple(map(float, x)), y=tuple(map(float, y)), **options)

    @property
    def grid(self) -> dict[str, tuple[float, ...]]:
        """The grid as ``{axis: values}`` (:meth:`from_grid`)."""
        return theory.axes_grid(self.protocol, self.x, self.y)

    def points(self) -> list[dict[str, float]]:
        """The grid points as hyperparameter dicts, x-major."""
        xn, yn = theory.AXES[self.protocol]
        return [{xn: float(a), yn: float(b)} for a, b in itertools.product(self.x, self.y)]


@contextmanager
def intra_op_threads(threads: int | None) -> Iterator[None]:
    """Run with ``threads`` CPU intra-op threads (None: unchanged), restoring torch's setting.

    Small models are dominated by per-operation overhead, and torch's OpenMP pool makes each op
    wait for all its threads: measured on the 2-core CI machine under load, 300 steps of the
    ``cpu-tiny`` grid (9 stacked ConvNets of width 2) took 42 s of wall time with 2 threads and
    2.3 s with 1. Two test processes with one thread each use the two cores instead.
    """
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def set_precision(*, tf32: bool, deterministic: bool) -> dict[str, Any]:
    """Set TF32 and determinism flags (TF32 off by default: docs/architecture.md); return them.

    cuDNN's autotuner (``cudnn.benchmark``) is on unless ``deterministic``: the step's shapes
    never change, and cuDNN's heuristics are known to pick slow kernels for grouped convolutions
    (docs/architecture.md), which the autotuner avoids by timing the candidates once per shape.
    """
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.benchmark = not deterministic
    torch.use_deterministic_algorithms(deterministic)
    return {"tf32": tf32, "deterministic": deterministic, "cudnn_benchmark": not deterministic}


class Trainer:
    """Stacked training of one :class:`GridConfig`; :meth:`run` then :meth:`states`."""

    def __init__(
        self,
        config: GridConfig,
        data: Dataset | None = None,
        *,
        model: nn.Module | None = None,
        invariance_rtol: float = 1e-3,
    ) -> None:
        self.config = c = config
        self.flags = set_precision(tf32=c.tf32, deterministic=c.deterministic)
        self.dtype = torch.float64 if c.dtype == "float64" else torch.float32
        self.device = torch.device(c.device)
        data = data if data is not None else load_dataset(c.dataset, c.data_dir, seed=c.seed)
        self.data = data.to(self.device, self.dtype)
        self.hp = c.points()
        self.M = len(self.hp)
        radii = [h["radius"] if c.protocol == "fixed_sphere" else c.init_radius for h in self.hp]
        self.model_name = c.model if model is None else type(model).__name__
        self.net: StackedNet | FunctionalStack
        if model is None:
            self.net = StackedNet([
                make_model(c.model, c.width, num_classes=data.num_classes,
                           in_channels=data.in_channels, init_seed=c.init_seed,
                           head_seed=c.head_seed, head_norm=c.head_norm, dtype=self.dtype,
                           init_radius=r)
                for r in radii
            ])
        else:
            model = model.to(self.dtype)
            sample = (data.x[: c.batch_size].to(self.dtype), data.y[: c.batch_size])
            check_scale_invariance(model, sample, rtol=invariance_rtol, option="invariance_rtol")
            self.net = FunctionalStack([rescaled_copy(model, r) for r in radii])
        self.net.to(self.device, self.dtype)
        self._train_loss = self._losses if c.compile is None else torch.compile(
            self._losses, mode=c.compile, fullgraph=True, dynamic=False)
        self.W = self.net.initial_weights().to(self.device, self.dtype)
        self.P = self.net.P
        names = ("lr", "wd", "elr", "radius")
        cols: dict[str, Any] = {k: [h.get(k) for h in self.hp] for k in names}
        self.spec = GridSpec.build(
            [c.protocol] * self.M, **cols, device=self.device, dtype=self.dtype
        )
        keys = [point_key(c.seed, c.protocol, h) for h in self.hp]
        self.keys = torch.tensor(keys, dtype=torch.int64, device=self.device)
        self.noise_keys = self.keys ^ _NOISE_SALT
        self.recorder = Recorder(
            None,
            c.protocol,
            d=self.P,
            **{k: v for k, v in cols.items() if v[0] is not None},
            every=c.every,
            burn_in=c.burn_in,
            queue_size=c.queue_size,
            queue_every=c.queue_every,
            device=self.device,
            substrate="net",
        )
        self.step = 0
        if c.checkpoint and Path(c.checkpoint).is_file():
            self.load(c.checkpoint)

    # -- one step ----------------------------------------------------------------------------------
    def batch(self, keys: torch.Tensor, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``x[B, M·C, H, W]``, ``y[B, M]``: model m's own minibatch at ``step``."""
        idx = batch_indices(keys, step, self.config.batch_size, self.data.x.shape[0])
        x = self.data.x[idx]
        return x.reshape(x.shape[0], -1, *x.shape[3:]), self.data.y[idx]

    def _losses(self, W: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
                update_stats: bool) -> torch.Tensor:
        return per_model_loss(self.net.forward(W, x, update_stats=update_stats), y)

    def loss_grad(
        self, x: torch.Tensor, y: torch.Tensor, *, update_stats: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-model losses ``[M]`` and gradients ``[M, P]`` at the current ``W``.

        Training steps (``update_stats``) go through the compiled function when
        ``config.compile`` is set; measurement passes, whose batch shapes vary, stay eager.
        """
        W = self.W.detach().requires_grad_(True)
        losses = self._train_loss if update_stats else self._losses
        loss = losses(W, x, y, update_stats)
        (G,) = torch.autograd.grad(loss.sum(), W)
        return loss.detach(), G

    def train_step(self) -> None:
        """One step of every model: minibatch gradient, noise measurement when due, recorder,
        update. No host synchronisation outside noise measurements."""
        x, y = self.batch(self.keys, self.step)
        loss, G = self.loss_grad(x, y)
        if self._noise_due():
            self.measure_noise(G)
        self.recorder.begin(self.W, G)
        with torch.no_grad():
            sgd_step_(self.W, G, self.spec)
        self.recorder.end(loss)
        self.step += 1

    # -- measurements ------------------------------------------------------------------------------
    def full_grad(self) -> torch.Tensor:
        """Full-batch gradient ``[M, P]``: chunks of ``config.chunk`` samples shared by all models,
        BatchNorm in train mode (as the paper), running statistics untouched."""
        n = self.data.x.shape[0]
        G = torch.zeros_like(self.W)
        for lo in range(0, n, self.config.chunk):
            xb = self.data.x[lo : lo + self.config.chunk]
            yb = self.data.y[lo : lo + self.config.chunk]
            x = xb.repeat(1, self.M, *[1] * (xb.dim() - 2))
            _, g = self.loss_grad(x, yb[:, None].expand(-1, self.M), update_stats=False)
            G += g * (xb.shape[0] / n)
        return G

    def measure_noise(self, G: torch.Tensor | None = None) -> None:
        """Gradient noise now (a log point): :func:`~thermocheck.noise.noise_from_gradients` of
        ``noise_samples`` independent minibatch gradients at ``W``, centred at :meth:`full_grad`
        when ``noise_full_batch`` (else at their mean), attached to the recorder.

        ``G``, the training step's own gradient at ``W`` (its minibatch is independent of ``W``),
        serves as the first of them, so a pair costs one extra backward pass. Frequent small
        measurements sample the stationary law; see :mod:`thermocheck.record` for why.
        """
        c = self.config

        def minibatch(i: int) -> torch.Tensor:
            if i == 0 and G is not None:
                return G
            x, y = self.batch(self.noise_keys, self.step * 4096 + i)
            return self.loss_grad(x, y, update_stats=False)[1]

        self.recorder.add_noise(
            noise_from_gradients(
                minibatch,
                self.W.detach(),
                full_grad=self.full_grad() if c.noise_full_batch else None,
                n=c.noise_samples,
                rank_samples=c.rank_samples,
            )
        )

    # -- the loop ----------------------------------------------------------------------------------
    def _noise_due(self) -> bool:
        c = self.config
        start = int(c.burn_in * c.iters)
        return self.step >= start and (self.step - start) % c.noise_every == 0

    def run(
        self, iters: int | None = None, *, callback: Callable[[Trainer], None] | None = None
    ) -> None:
        """Train until step ``iters`` (default ``config.iters``) with ``config.threads`` CPU
        threads, measuring noise in the tail, checkpointing every ``checkpoint_every`` steps;
        ``callback`` runs at each log point."""
        c = self.config
        stop = c.iters if iters is None else iters
        bar = None
        if c.progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop, initial=self.step, unit="it", desc=f"{c.protocol} M={self.M}",
                       disable=None)  # None: quiet when standard error is not a terminal
        with intra_op_threads(c.threads):
            while self.step < stop:
                self.train_step()
                if self.step % c.log_every == 0 or self.step == stop:
                    if bar is not None:
                        h = self.recorder.sync()
                        shown = ("loss", "mean_radius") if len(h["loss"]) else ()
                        bar.set_postfix({q: f"{np.median(h[q][-1]):.3g}" for q in shown})
                        bar.update(self.step - bar.n)
                    if callback is not None:
                        callback(self)
                if c.checkpoint and c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self.save(c.checkpoint)
        if bar is not None:
            bar.close()

    def grid(self, *, entropy: bool = True) -> StateGrid:
        """The grid's measured states (``substrate="net"``, ``energy_is_loss=False``) as a
        :class:`~thermocheck.states.StateGrid`: one protocol and one ``d``."""
        return StateGrid(self._states(entropy))

    def states(self, *, entropy: bool = True) -> StateGrid:
        """Deprecated: the :class:`~thermocheck.states.StateGrid` of :meth:`grid`, with a
        ``DeprecationWarning``. ``states()`` will return a list of :class:`State`, as
        :meth:`thermocheck.record.Recorder.states` does; call :meth:`grid` for the grid."""
        warnings.warn("Trainer.states() returning a StateGrid is deprecated: call Trainer.grid() "
                      "(states() will return a list of State, as Recorder.states() does)",
                      DeprecationWarning, stacklevel=2)
        return self.grid(entropy=entropy)

    def _states(self, entropy: bool) -> list[State]:
        """One :class:`State` per grid point, in the recorder's order of the models."""
        c = self.config
        extra = {
            "model": self.model_name,
            "width": c.width if self.model_name == c.model else None,
            "dataset": self.data.name,
            "iters": self.step,
            "batch_size": c.batch_size,
            "dtype": c.dtype,
            "device": str(self.device),
            "seed": c.seed,
            **self.flags,
            **c.extra,
        }
        return self.recorder.states(extra=extra, entropy=entropy)

    # -- checkpoints -------------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Atomic ``torch.save`` of W, BN buffers, the step counter and the recorder (the batch
        streams are counter-based, so the step is all the random state there is)."""
        checkpoint = {
            "W": self.W,
            "buffers": self.net.buffers(),
            "step": self.step,
            "recorder": self.recorder.state_dict(),
            "config": asdict(self.config),
        }
        return atomic_write(path, lambda fh: torch.save(checkpoint, fh))

    def load(self, path: str | Path) -> None:
        sd = torch.load(path, map_location=self.device, weights_only=False)
        saved = {k: v for k, v in sd["config"].items() if k not in _RESUMABLE}
        mine = {k: v for k, v in asdict(self.config).items() if k not in _RESUMABLE}
        if saved != mine:
            diff = sorted(k for k in mine if saved.get(k) != mine[k])
            raise InvalidParameterError(f"checkpoint {path} was written by another config ({diff})")
        self.W.copy_(sd["W"])
        for mine_t, theirs in zip(self.net.buffers(), sd["buffers"], strict=True):
            mine_t.copy_(theirs)
        self.step = sd["step"]
        self.recorder.load_state_dict(sd["recorder"])


#: Config fields that may change between a checkpoint and its resumption.
_RESUMABLE = {"iters", "checkpoint", "checkpoint_every", "progress", "log_every", "device"}


def with_overrides(config: GridConfig, **overrides: Any) -> GridConfig:
    """A copy of ``config`` with fields changed (``None`` values ignored)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
