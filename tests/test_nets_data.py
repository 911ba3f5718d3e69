"""Dataset loaders (CIFAR pickles written here, digits, synthetic) and per-model batch streams."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cifar_files import write_cifar

from thermocheck.nets import DatasetUnavailableError, load_cifar, load_digits, synthetic
from thermocheck.nets.data import CIFAR_STATS, batch_indices, point_key

pytestmark = pytest.mark.fast


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickles(tmp_path: Path, name: str) -> None:
    raw = write_cifar(tmp_path, name)
    ds = load_cifar(name, tmp_path)
    copies = 5 if name == "cifar10" else 1
    assert ds.x.shape == (6 * copies, 3, 32, 32) and ds.y.tolist() == list(range(6)) * copies
    mean, std = CIFAR_STATS[name]
    want = (raw[0].reshape(3, 32, 32)[1, 0, 0] / 255.0 - mean[1]) / std[1]
    assert abs(float(ds.x[0, 1, 0, 0]) - want) < 1e-6
    assert ds.num_classes == (10 if name == "cifar10" else 100)
    assert load_cifar(name, tmp_path, train=False).x.shape[0] == 6


def test_missing_cifar_says_where_to_put_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailableError, match=r"cifar-10-batches-py.*--data-dir"):
        load_cifar("cifar10", tmp_path)


def test_digits_offline() -> None:
    pytest.importorskip("sklearn")
    ds = load_digits()
    assert ds.x.shape == (1797, 1, 8, 8) and ds.num_classes == 10
    assert abs(float(ds.x.mean())) < 1e-5 and abs(float(ds.x.std()) - 1) < 1e-3


def test_synthetic_is_deterministic() -> None:
    a, b = synthetic(100, seed=3), synthetic(100, seed=3)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)


def test_streams_are_per_point() -> None:
    """A point's batches depend on its key only, not on which other points run beside it."""
    keys = torch.tensor([point_key(0, "fixed_lr", {"lr": lr, "wd": 0.1}) for lr in (0.1, 0.2, 0.3)])
    alone = batch_indices(keys[1:2], 7, 64, 1000)
    together = batch_indices(keys, 7, 64, 1000)
    assert torch.equal(alone[:, 0], together[:, 1])
    assert not torch.equal(together[:, 0], together[:, 1])
    assert not torch.equal(batch_indices(keys, 8, 64, 1000), together)
    big = batch_indices(keys[:1], 0, 100_000, 10)
    counts = torch.bincount(big[:, 0], minlength=10).double()
    assert float((counts / 1e4 - 1).abs().max()) < 0.05
