"""Datasets as one normalised device tensor, and per-model counter-based minibatch streams.

CIFAR-10/100 are read from a local copy in the standard python-pickle layout (no download);
scikit-learn's ``load_digits`` (8×8 grayscale, 1797 samples, shipped inside the package) is the
offline default; :func:`synthetic` makes a labelled Gaussian-mixture dataset for tests.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from thermocheck.errors import InvalidParameterError, ThermocheckError, check_choice

__all__ = [
    "CIFAR_STATS",
    "DATASETS",
    "DATASET_SHAPES",
    "DATA_DIR_VARIABLE",
    "Dataset",
    "DatasetUnavailableError",
    "batch_indices",
    "check_available",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "point_key",
    "synthetic",
]

DATASETS = ("digits", "synthetic", "cifar10", "cifar100")

#: (input channels, classes) of each dataset, known without loading it.
DATASET_SHAPES = {"digits": (1, 10), "synthetic": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100)}

#: Where CIFAR is looked for when no folder is given (then the working directory).
DATA_DIR_VARIABLE = "THERMOCHECK_DATA_DIR"

#: Channel mean and std the paper normalises with (THEORY §7).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


class DatasetUnavailableError(ThermocheckError, FileNotFoundError):
    """A dataset's files are missing; the message says where to put them."""


@dataclass
class Dataset:
    """Normalised images ``x[N, C, H, W]`` and labels ``y[N]`` (int64), on one device."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    num_classes: int

    @property
    def in_channels(self) -> int:
        return int(self.x.shape[1])

    def to(self, device: torch.device | str, dtype: torch.dtype) -> Dataset:
        return Dataset(self.name, self.x.to(device, dtype), self.y.to(device), self.num_classes)


def _normalise(x: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return (t - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def _cifar_files(name: str, data_dir: str | Path, train: bool) -> tuple[Path, list[str], bytes]:
    """The CIFAR folder, its files and label key; raises :class:`DatasetUnavailableError` saying
    where to put them when any is missing."""
    check_choice("dataset", name, tuple(CIFAR_STATS))
    folder = Path(data_dir) / ("cifar-10-batches-py" if name == "cifar10" else "cifar-100-python")
    if name == "cifar10":
        files = [f"data_batch_{i}" for i in range(1, 6)] if train else ["test_batch"]
        label_key = b"labels"
    else:
        files = ["train" if train else "test"]
        label_key = b"fine_labels"
    missing = [f for f in files if not (folder / f).is_file()]
    if missing:
        url = "https://www.cs.toronto.edu/~kriz/" + (
            "cifar-10-python.tar.gz" if name == "cifar10" else "cifar-100-python.tar.gz"
        )
        raise DatasetUnavailableError(
            f"{name}: missing {', '.join(missing)} in {folder}. thermocheck does not download: "
            f"fetch {url}, extract it into {Path(data_dir).resolve()} (so that {folder.name}/ "
            f"appears there) "
            f"and pass --data-dir {data_dir} (or set {DATA_DIR_VARIABLE})"
        )
    return folder, files, label_key


def check_available(name: str, data_dir: str | Path | None = None) -> None:
    """Raise :class:`DatasetUnavailableError` (saying what to do) when :func:`load_dataset` could
    not load ``name``: missing CIFAR files, or digits without scikit-learn. Cheap: reads nothing."""
    check_choice("dataset", name, DATASETS)
    if name == "digits":
        try:
            import sklearn  # noqa: F401
        except ImportError:
            raise DatasetUnavailableError(_NO_SKLEARN) from None
    elif name in CIFAR_STATS:
        _cifar_files(name, _data_dir(data_dir), train=True)


def _data_dir(data_dir: str | Path | None) -> str | Path:
    return data_dir if data_dir is not None else os.environ.get(DATA_DIR_VARIABLE) or "."


def load_cifar(name: str = "cifar10", data_dir: str | Path = ".", *, train: bool = True) -> Dataset:
    """CIFAR-10/100 from the python-pickle files, normalised with :data:`CIFAR_STATS` (no
    augmentation).

    Looks for ``data_dir/cifar-10-batches-py/data_batch_1..5, test_batch`` or
    ``data_dir/cifar-100-python/train, test`` (the layout of the official tarballs).
    """
    folder, files, label_key = _cifar_files(name, data_dir, train)
    xs, ys = [], []
    for f in files:
        with open(folder / f, "rb") as fh:
            batch = pickle.load(fh, encoding="bytes")
        xs.append(np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.append(np.asarray(batch[label_key], dtype=np.int64))
    mean, std = CIFAR_STATS[name]
    x = _normalise(np.concatenate(xs) / 255.0, mean, std)
    return Dataset(name, x, torch.from_numpy(np.concatenate(ys)), 10 if name == "cifar10" else 100)


_NO_SKLEARN = ("the digits dataset needs scikit-learn: pip install 'thermocheck[nets]' (or "
               "scikit-learn), or use dataset='synthetic'")


def load_digits() -> Dataset:
    """scikit-learn's handwritten digits (1797 × 1 × 8 × 8, values 0–16), standardised to mean 0,
    std 1 over all pixels. Offline: the data ship inside scikit-learn."""
    try:
        from sklearn.datasets import load_digits as _load
    except ImportError:
        raise DatasetUnavailableError(_NO_SKLEARN) from None
    bunch = _load()
    x = bunch.images.astype(np.float32)[:, None]
    x = (x - x.mean()) / x.std()
    return Dataset(
        "digits", torch.from_numpy(x), torch.from_numpy(bunch.target.astype(np.int64)), 10
    )


def synthetic(
    n: int = 1024,
    *,
    num_classes: int = 10,
    channels: int = 1,
    size: int = 8,
    seed: int = 0,
    noise: float = 1.0,
) -> Dataset:
    """A Gaussian mixture of images: class means drawn once, each sample = its class mean plus
    ``noise`` × standard normal pixels. Deterministic in ``seed``."""
    if n < num_classes:
        raise InvalidParameterError(f"n={n} must be >= num_classes={num_classes}")
    gen = torch.Generator().manual_seed(seed)
    means = torch.randn(num_classes, channels, size, size, generator=gen)
    y = torch.arange(n) % num_classes
    x = means[y] + noise * torch.randn(n, channels, size, size, generator=gen)
    return Dataset("synthetic", x, y, num_classes)


def load_dataset(name: str, data_dir: str | Path | None = None, *, seed: int = 0) -> Dataset:
    """Dispatch on ``name`` in :data:`DATASETS` (training split).

    CIFAR is read from ``data_dir``; when None, from ``$THERMOCHECK_DATA_DIR`` or else the working
    directory (the variable reaches worker processes and Slurm jobs, and is no part of a cached
    point's configuration: the data are the same wherever they lie).
    """
    check_choice("dataset", name, DATASETS)
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return synthetic(seed=seed)
    return load_cifar(name, _data_dir(data_dir))


# -- counter-based batch streams -------------------------------------------------------------------
_MASK63 = (1 << 63) - 1


def point_key(seed: int, protocol: str, hyperparameters: Mapping[str, float | None]) -> int:
    """A 63-bit stream key from the seed and the grid point's identity, so a point's batches do
    not depend on which other points run beside it (READINGS.md, randomness)."""
    text = f"{seed}|{protocol}|" + "|".join(
        f"{k}={v!r}" for k, v in sorted(hyperparameters.items())
    )
    return struct.unpack("<q", hashlib.blake2b(text.encode(), digest_size=8).digest())[0] & _MASK63


def _signed(c: int) -> int:
    return c - (1 << 64) if c >= 1 << 63 else c


_C1, _C2, _GOLD = (
    _signed(0xBF58476D1CE4E5B9),
    _signed(0x94D049BB133111EB),
    _signed(0x9E3779B97F4A7C15),
)


def _srl(x: torch.Tensor, s: int) -> torch.Tensor:
    """Logical right shift of int64 (torch's ``>>`` is arithmetic)."""
    return (x >> s) & ((1 << (64 - s)) - 1)


def _mix(x: torch.Tensor) -> torch.Tensor:
    """splitmix64's finaliser on int64 with wrap-around arithmetic."""
    x = (x ^ _srl(x, 30)) * _C1
    x = (x ^ _srl(x, 27)) * _C2
    return x ^ _srl(x, 31)


def batch_indices(keys: torch.Tensor, step: int, batch_size: int, n: int) -> torch.Tensor:
    """Indices ``[B, M]`` drawn with replacement: ``hash(key_m, step, j) mod n`` (a counter-based
    stream per model; independent batches per model and per step, no generator state)."""
    j = torch.arange(batch_size, device=keys.device, dtype=torch.int64)[:, None]
    x = _mix(keys[None, :] * _GOLD + _mix(j + (step << 20) + 1))
    return (x & _MASK63) % n
