"""Dataset loaders (CIFAR pickles written here, digits, synthetic, gratings) and per-model batch
streams."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from cifar_files import write_cifar

from thermocheck.errors import InvalidParameterError
from thermocheck.nets import DatasetUnavailableError, load_cifar, load_digits, synthetic
from thermocheck.nets.data import (
    CIFAR_STATS,
    DATASET_SHAPES,
    batch_indices,
    gratings,
    load_dataset,
    point_key,
)

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


def test_gratings_are_deterministic_and_standardised() -> None:
    a, b = gratings(600, size=8, seed=5), gratings(600, size=8, seed=5)
    assert torch.equal(a.x, b.x) and torch.equal(a.y, b.y)
    assert not torch.equal(a.x, gratings(600, size=8, seed=6).x)
    assert a.x.shape == (600, 3, 8, 8) and a.num_classes == 10 and a.in_channels == 3
    means, stds = a.x.mean(dim=(0, 2, 3)), a.x.std(dim=(0, 2, 3))
    assert float(means.abs().max()) < 1e-5 and float((stds - 1).abs().max()) < 1e-5


def test_gratings_label_noise_redraws_labels_only() -> None:
    """Label noise leaves the images alone and redraws a fraction p of the labels uniformly, so
    p (K − 1)/K of them change (binomial, checked within 4 standard deviations)."""
    n, p, k = 4000, 0.3, 10
    clean, noisy = gratings(n, size=8, label_noise=0.0), gratings(n, size=8, label_noise=p)
    assert torch.equal(clean.x, noisy.x)
    changed = float((clean.y != noisy.y).double().mean())
    expected = p * (k - 1) / k
    assert abs(changed - expected) < 4 * (expected * (1 - expected) / n) ** 0.5


def test_gratings_classes_are_partly_learnable() -> None:
    """The class shows in each image's channel covariance (its colour, ``ρ ρᵀ``): a
    nearest-centroid classifier on it, fitted on half the images, beats chance (10 %) on the
    other half by far, and does not reach the clean labels' ceiling (the jitter overlaps)."""
    ds = gratings(4000, size=16, label_noise=0.0)
    flat = ds.x.flatten(2)
    cov = torch.einsum("ncp,ndp->ncd", flat, flat).flatten(1) / flat.shape[-1]
    fit, test = slice(0, 2000), slice(2000, 4000)
    centroids = torch.stack([cov[fit][ds.y[fit] == c].mean(0) for c in range(10)])
    predicted = torch.cdist(cov[test], centroids).argmin(1)
    accuracy = float((predicted == ds.y[test]).double().mean())
    assert 0.2 < accuracy < 0.95, accuracy


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"n": 5}, "n=5"), ({"size": 2}, "size=2"), ({"label_noise": 1.5}, "label_noise=1.5"),
     ({"jitter": -1.0}, "jitter=-1.0")],
)
def test_gratings_rejects_bad_arguments(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(InvalidParameterError, match=match):
        gratings(**kwargs)  # type: ignore[arg-type]


def test_generated_datasets_are_registered() -> None:
    for name, shape in (("gratings-small", (10_000, 3, 16, 16)),):
        ds = load_dataset(name)
        assert ds.name == name and tuple(ds.x.shape) == shape
        assert DATASET_SHAPES[name] == (ds.in_channels, ds.num_classes)
