"""The stacked grid trainer against one-model-at-a-time training, syncs, checkpoints."""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from thermocheck.errors import InvalidParameterError
from thermocheck.nets import (
    Dataset,
    FunctionalStack,
    GridConfig,
    ScaleInvarianceError,
    StackedNet,
    Trainer,
    make_model,
    synthetic,
)
from thermocheck.nets.data import batch_indices
from thermocheck.nets.models import rescaled_copy, trainable_vector
from thermocheck.states import StateGrid

pytestmark = [pytest.mark.fast, pytest.mark.usefixtures("one_thread")]



AXES = {
    "fixed_lr": ((0.3, 1.0), (0.01, 0.1)),
    "fixed_elr": ((0.01, 0.05), (0.01, 0.1)),
    "fixed_sphere": ((0.1, 0.5), (0.5, 2.0)),
}


def _config(protocol: str, **kw: object) -> GridConfig:
    x, y = AXES[protocol]
    base = dict(
        protocol=protocol,
        x=x,
        y=y,
        width=2,
        batch_size=8,
        iters=100,
        every=5,
        queue_size=20,
        queue_every=5,
        noise_every=50,
        noise_samples=4,
        rank_samples=3,
        dtype="float64",
    )
    return GridConfig(**{**base, **kw})  # type: ignore[arg-type]


def _loop(
    trainer: Trainer, steps: int, user_model: nn.Module | None = None
) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
    """The same grid trained one nn.Module at a time (the oracle): per-model batches from the same
    counter-based streams, autograd on the module, the protocol update written out per protocol.
    The modules are the config's model, or copies of ``user_model``."""
    c = trainer.config
    sphere = c.protocol == "fixed_sphere"
    rows, bufs = [], []
    for m, hp in enumerate(trainer.hp):
        radius = hp["radius"] if sphere else 1.0
        model = (
            make_model(c.model, c.width, in_channels=1, dtype=torch.float64, init_radius=radius)
            if user_model is None
            else rescaled_copy(user_model, radius)
        )
        params = [p for p in model.parameters() if p.requires_grad]
        for step in range(steps):
            idx = batch_indices(trainer.keys, step, c.batch_size, trainer.data.x.shape[0])[:, m]
            loss = F.cross_entropy(model(trainer.data.x[idx]), trainer.data.y[idx])
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                w = trainable_vector(model)
                g = torch.cat([q.reshape(-1) for q in grads])
                if c.protocol == "fixed_lr":  # Eq. 15
                    w = w - hp["lr"] * (g + hp["wd"] * w)
                elif c.protocol == "fixed_elr":  # Eq. 8
                    w = w - hp["elr"] * w.dot(w) * (g + hp["wd"] * w)
                else:  # projected SGD on the sphere
                    w = w - hp["elr"] * hp["radius"] ** 2 * g
                    w = w * (hp["radius"] / w.norm())
                torch.nn.utils.vector_to_parameters(w, params)
        rows.append(trainable_vector(model))
        bufs.append([b for b in model.buffers() if b.dtype == torch.float64])
    return torch.stack(rows), bufs


@pytest.mark.parametrize("protocol", list(AXES))
def test_stacked_equals_loop_float64(protocol: str) -> None:
    trainer = Trainer(_config(protocol), data=synthetic(64, seed=1))
    for _ in range(6):
        trainer.train_step()
    W_loop, bufs = _loop(trainer, 6)
    err = float(((trainer.W - W_loop).norm(dim=1) / W_loop.norm(dim=1)).max())
    assert err <= 1e-12, f"stacked vs loop relative error {err:.3g} after 6 steps [{protocol}]"
    for m in range(trainer.M):
        means = bufs[m][0::2]
        variances = bufs[m][1::2]
        mine = trainer.net.model_buffers(m)
        k = len(means)
        for a, b in zip(mine, [*means, *variances], strict=True):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
        assert len(mine) == 2 * k


def test_stacked_resnet_equals_loop() -> None:
    trainer = Trainer(_config("fixed_lr", model="resnet18", width=1), data=synthetic(64, seed=2))
    for _ in range(3):
        trainer.train_step()
    W_loop, _ = _loop(trainer, 3)
    assert float((trainer.W - W_loop).abs().max() / W_loop.abs().max()) <= 1e-12


@pytest.mark.skipif(shutil.which("c++") is None and shutil.which("g++") is None,
                    reason="torch.compile on the CPU needs a C++ compiler")
def test_compiled_step_equals_eager_float64() -> None:
    data = synthetic(64, seed=3)
    eager = Trainer(_config("fixed_elr"), data=data)
    compiled = Trainer(_config("fixed_elr", compile="default"), data=data)
    for _ in range(4):
        eager.train_step()
        compiled.train_step()
    err = float(((compiled.W - eager.W).norm(dim=1) / eager.W.norm(dim=1)).max())
    assert err <= 1e-12, f"compiled vs eager relative error {err:.3g} after 4 steps"
    for a, b in zip(compiled.net.buffers(), eager.net.buffers(), strict=True):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-12)


class _ScaleInvariantMLP(nn.Module):
    """A user's model: bias-free linear layers, each followed by BatchNorm1d(affine=False), and a
    frozen head; optionally an affine last BatchNorm, which breaks scale invariance."""

    def __init__(self, features: int = 64, hidden: int = 6, affine: bool = False) -> None:
        super().__init__()
        torch.manual_seed(5)
        self.body = nn.Sequential(
            nn.Linear(features, hidden, bias=False), nn.BatchNorm1d(hidden, affine=False),
            nn.ReLU(), nn.Linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden, affine=affine),
            nn.ReLU(),
        )
        self.head = nn.Linear(hidden, 10)
        self.head.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(x))


def _flat(n: int = 64) -> Dataset:
    data = synthetic(n, seed=4)
    return Dataset("flat", data.x.flatten(1), data.y, data.num_classes)


@pytest.mark.parametrize("protocol", list(AXES))
def test_users_model_stacked_equals_loop_float64(protocol: str) -> None:
    mlp = _ScaleInvariantMLP().double()
    trainer = Trainer(_config(protocol), data=_flat(), model=mlp)
    assert isinstance(trainer.net, FunctionalStack)
    for _ in range(10):
        trainer.train_step()
    W_loop, bufs = _loop(trainer, 10, user_model=mlp)
    err = float(((trainer.W - W_loop).norm(dim=1) / W_loop.norm(dim=1)).max())
    assert err <= 1e-12, f"users' model stacked vs loop relative error {err:.3g} [{protocol}]"
    for m in range(trainer.M):
        float_buffers = [b for b in trainer.net.model_buffers(m) if b.is_floating_point()]
        for a, b in zip(float_buffers, bufs[m], strict=True):
            assert torch.allclose(a, b, rtol=1e-12, atol=1e-14)
    assert trainer.grid(entropy=False)[0].extra["model"] == "_ScaleInvariantMLP"


def test_trainer_states_is_a_deprecated_spelling_of_grid() -> None:
    """``grid()`` gives the StateGrid; ``states()`` still does, with a DeprecationWarning, until it
    returns a list of State as ``Recorder.states()`` does."""
    trainer = Trainer(_config("fixed_lr"), data=_flat(), model=_ScaleInvariantMLP().double())
    for _ in range(10):
        trainer.train_step()
    with pytest.warns(DeprecationWarning, match=r"call Trainer\.grid\(\)"):
        old = trainer.states(entropy=False)
    new = trainer.grid(entropy=False)
    assert isinstance(new, StateGrid) and isinstance(old, StateGrid)
    assert [json.dumps(s.to_dict()) for s in old] == [json.dumps(s.to_dict()) for s in new]


def test_functional_stack_equals_the_grouped_convnet_float64() -> None:
    modules = [make_model("convnet", 2, in_channels=1, dtype=torch.float64, init_radius=r)
               for r in (0.5, 1.0, 2.0)]
    grouped, functional = StackedNet(modules), FunctionalStack(modules)
    W = grouped.initial_weights().requires_grad_(True)
    x = synthetic(16, seed=6).x.double().repeat(1, 3, 1, 1)
    a, b = grouped.forward(W, x), functional.forward(W, x)
    assert torch.allclose(a, b, rtol=1e-12, atol=1e-13)
    (ga,) = torch.autograd.grad(a.square().sum(), W)
    (gb,) = torch.autograd.grad(b.square().sum(), W)
    assert torch.allclose(ga, gb, rtol=1e-11, atol=1e-13)
    for i, (mean, var) in enumerate(zip(grouped.bn_mean, grouped.bn_var, strict=True)):
        for mine, name in ((mean, "running_mean"), (var, "running_var")):
            theirs = functional.stacked_buffers[f"bns.{i}.{name}"].reshape(-1)
            assert torch.allclose(mine, theirs, rtol=1e-12, atol=1e-14)


def test_a_users_model_that_is_not_scale_invariant_is_refused() -> None:
    with pytest.raises(ScaleInvarianceError, match=r"body\.4\.weight"):
        Trainer(_config("fixed_lr"), data=_flat(), model=_ScaleInvariantMLP(affine=True).double())


@pytest.mark.parametrize(("layer", "message"), [
    (nn.Dropout(0.1), "dropout"), (nn.BatchNorm1d(6, affine=False, momentum=None), "momentum=None"),
])
def test_layers_the_stack_cannot_run_are_refused_by_name(layer: nn.Module, message: str) -> None:
    mlp = _ScaleInvariantMLP().double()
    mlp.body.append(layer.double())
    with pytest.raises(InvalidParameterError, match=rf"body\.6 .*{message}"):
        FunctionalStack([mlp])


def test_sphere_keeps_the_radius() -> None:
    trainer = Trainer(_config("fixed_sphere"), data=synthetic(64))
    for _ in range(20):
        trainer.train_step()
    want = torch.tensor([hp["radius"] for hp in trainer.hp], dtype=torch.float64)
    assert torch.allclose(trainer.W.norm(dim=1), want, rtol=1e-14, atol=0)


def test_no_host_sync_between_log_points(
    spy_host_syncs: Callable[[], list[str]],
) -> None:
    trainer = Trainer(_config("fixed_elr", dtype="float32"), data=synthetic(64))
    calls = spy_host_syncs()
    for _ in range(30):
        trainer.train_step()
    assert calls == [], f"host syncs inside the step loop: {sorted(set(calls))}"
    trainer.recorder.sync()
    assert calls.count("cpu") == 1


def test_checkpoint_resume_equals_uninterrupted(tmp_path) -> None:  # type: ignore[no-untyped-def]
    data = synthetic(64)
    whole = Trainer(_config("fixed_lr"), data=data)
    whole.run()
    ckpt = tmp_path / "grid.pt"
    first = Trainer(_config("fixed_lr", checkpoint=str(ckpt), checkpoint_every=20), data=data)
    first.run(iters=60)
    resumed = Trainer(_config("fixed_lr", checkpoint=str(ckpt), checkpoint_every=20), data=data)
    assert resumed.step == 60
    resumed.run()
    assert torch.equal(whole.W, resumed.W)
    a = [s.to_dict() for s in whole.grid(entropy=False)]
    b = [s.to_dict() for s in resumed.grid(entropy=False)]
    assert a == b


def test_checkpoint_of_another_config_is_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    ckpt = tmp_path / "grid.pt"
    t = Trainer(_config("fixed_lr", checkpoint=str(ckpt)), data=synthetic(64))
    t.save(ckpt)
    with pytest.raises(ValueError, match="another config"):
        Trainer(_config("fixed_lr", checkpoint=str(ckpt), seed=5), data=synthetic(64))


def test_run_gives_states_with_diagnostics() -> None:
    trainer = Trainer(_config("fixed_lr", iters=200), data=synthetic(64))
    trainer.run()
    grid = trainer.grid()
    assert len(grid) == 4 and grid.substrate == "net"
    s = grid[0]
    assert not s.energy_is_loss and s.sigma2.value > 0 and s.sphere_entropy is not None
    for key in ("eff_rank", "compressibility", "tf32", "dtype", "radial_cosine"):
        assert key in s.extra
    assert abs(s.extra["radial_cosine"]) < 1e-5  # BN eps only
    assert copy.deepcopy(s.to_dict())["extra"]["tf32"] is False


def test_a_config_is_built_from_the_packages_grid_spelling() -> None:
    from thermocheck.errors import InvalidParameterError
    from thermocheck.nets.train import GridConfig

    cfg = GridConfig.from_grid("fixed_elr", {"wd": [0.01, 0.1], "elr": [0.003, 0.006]}, iters=400)
    assert (cfg.x, cfg.y, cfg.iters) == ((0.003, 0.006), (0.01, 0.1), 400)
    assert cfg.grid == {"elr": (0.003, 0.006), "wd": (0.01, 0.1)}
    assert GridConfig.from_grid("fixed_elr", cfg.grid, iters=400) == cfg
    with pytest.raises(InvalidParameterError, match="needs exactly the axes"):
        GridConfig.from_grid("fixed_elr", {"lr": [0.1], "wd": [0.01]})
