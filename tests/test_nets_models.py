"""Scale-invariant models and the numerical scale-invariance check (docs/theory.md §1, §7)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from thermocheck.nets import ScaleInvarianceError, check_scale_invariance, make_model
from thermocheck.nets.models import trainable_vector

pytestmark = pytest.mark.fast


@pytest.mark.parametrize(
    ("arch", "k", "d"), [("convnet", 8, 24408), ("convnet", 16, 97200), ("resnet18", 4, 43692)]
)
def test_paper_sizes_and_init(arch: str, k: int, d: int) -> None:
    model = make_model(arch, k)
    w = trainable_vector(model)
    assert w.numel() == d, f"{arch} k={k}: d={w.numel()}, but the paper's is {d}"
    assert abs(float(w.norm()) - 1.0) < 1e-6
    assert abs(float(model.head.weight.norm()) - 10.0) < 1e-5
    assert not model.head.weight.requires_grad


def _batch(channels: int = 1, size: int = 8, n: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, channels, size, size, generator=g, dtype=torch.float64)
    return x, torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("arch", ["convnet", "resnet18"])
def test_models_are_scale_invariant(arch: str) -> None:
    model = make_model(arch, 2, in_channels=1, bn_eps=1e-30, dtype=torch.float64)
    before = [b.clone() for b in model.buffers()]
    out = check_scale_invariance(model, _batch(), rtol=1e-10)
    assert out["loss_rel_change"] < 1e-10 and out["radial_cosine"] < 1e-10
    assert all(torch.equal(a, b) for a, b in zip(before, model.buffers(), strict=True))


def test_refuses_affine_batchnorm_naming_it() -> None:
    model = make_model("convnet", 2, in_channels=1, bn_eps=1e-30, dtype=torch.float64)
    model.bns[1] = nn.BatchNorm2d(4).double()
    nn.init.normal_(model.bns[1].bias)
    with pytest.raises(ScaleInvarianceError, match=r"bns\.1\.weight") as err:
        check_scale_invariance(model, _batch(), rtol=1e-8)
    assert "bns.1.bias" in str(err.value) and "convs.0.weight (" not in str(err.value)


def test_refuses_unfrozen_head_naming_it() -> None:
    model = make_model("convnet", 2, in_channels=1, bn_eps=1e-30, dtype=torch.float64)
    model.head.requires_grad_(True)
    with pytest.raises(ScaleInvarianceError, match=r"head\.weight"):
        check_scale_invariance(model, _batch(), rtol=1e-8)


def test_refuses_bias_without_batchnorm() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10)).double()
    with pytest.raises(ScaleInvarianceError, match=r"1\.bias"):
        check_scale_invariance(model, _batch(), rtol=1e-8)
