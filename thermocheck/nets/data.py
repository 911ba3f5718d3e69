"""Datasets as one normalised device tensor, and per-model counter-based minibatch streams.

CIFAR-10/100 are read from a local copy in the standard python-pickle layout (no download);
scikit-learn's ``load_digits`` (8×8 grayscale, 1797 samples, shipped inside the package) is the
offline default; :func:`synthetic` makes a labelled Gaussian-mixture dataset for tests;
:func:`gratings` generates the CIFAR-sized image set of the GPU presets.

Why ``gratings`` stands in for CIFAR-10 in the nightly tier. The laws of the paper do not
depend on what the images show. They need (i) a fully scale-invariant network, here the
paper's own ConvNet k = 8 on 3 × 32 × 32 inputs, hence the paper's d = 24 408; (ii) a stochastic
gradient whose noise does not vanish at stationarity, ``Tr Σ_w̄ > 0`` (Eq. 11, 12, 19 and the
temperature ``T = η_eff σ²/2`` all scale with it); (iii) no interpolation: a model that fits
every training label drives ``Tr Σ`` to 0 and has no stationary distribution (the paper's k = 32
case). Digits (1797 images) fail (iii) at the paper's batch 128. ``gratings`` has 50 000
images, like CIFAR-10's training split: oriented sinusoidal gratings whose orientation and
colour depend on the class (a ConvNet learns them partly: neighbouring orientations overlap
under the per-image jitter), with random frequency, phase, contrast and pixel noise, and a
fraction ``label_noise`` of the labels redrawn uniformly. The redrawn labels carry no
structure, so a model of 24 408 weights cannot fit 50 000 of them (10 000 of them random), and
the gradient noise stays away from 0 — as on CIFAR-10, where the paper's ConvNet k = 8 stays far
from interpolation. A wide model on few images still interpolates them, as the paper's k = 32
does. ``gratings-small`` (10 000 images of 3 × 16 × 16) is the same generator at CPU scale.
"""

from __future__ import annotations

import hashlib
import math
import os
import pickle
import struct
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from thermocheck.errors import DatasetUnavailableError, InvalidParameterError, check_choice

__all__ = [
    "CIFAR_STATS",
    "DATASETS",
    "DATASET_SHAPES",
    "DATA_DIR_VARIABLE",
    "GENERATED",
    "Dataset",
    "DatasetUnavailableError",
    "batch_indices",
    "check_available",
    "gratings",
    "load_cifar",
    "load_dataset",
    "load_digits",
    "point_key",
    "synthetic",
]

#: The generated image sets: :func:`gratings` with these arguments (seed 0, a fixed dataset).
GENERATED = {"gratings": {"n": 50_000, "size": 32}, "gratings-small": {"n": 10_000, "size": 16}}

DATASETS = ("digits", "synthetic", "cifar10", "cifar100", *GENERATED)

#: (input channels, classes) of each dataset, known without loading it.
DATASET_SHAPES = {"digits": (1, 10), "synthetic": (1, 10), "cifar10": (3, 10), "cifar100": (3, 100),
                  **{name: (3, 10) for name in GENERATED}}

#: Where CIFAR is looked for when no folder is given (then the working directory).
DATA_DIR_VARIABLE = "THERMOCHECK_DATA_DIR"

#: Channel mean and std the paper normalises with (docs/theory.md §7).
CIFAR_STATS = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "cifar100": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
}


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


def _standardise_channels(x: torch.Tensor) -> torch.Tensor:
    """Each channel to mean 0, std 1 over the whole set (channel normalisation only, as the paper
    does for CIFAR)."""
    mean = x.mean(dim=(0, 2, 3), keepdim=True)
    std = x.std(dim=(0, 2, 3), keepdim=True)
    return (x - mean) / std


_CHUNK = 4096  # images generated at once by :func:`gratings`


def gratings(
    n: int = 50_000,
    *,
    size: int = 32,
    num_classes: int = 10,
    label_noise: float = 0.2,
    jitter: float = 0.5,
    pixel_noise: float = 1.0,
    seed: int = 0,
) -> Dataset:
    """Oriented colour gratings, ``n × 3 × size × size``, with label noise; deterministic in
    ``seed`` (no download). Why this is a fair stand-in for CIFAR: the module docstring.

    Image ``i`` of class ``c`` is, at pixel coordinates ``(u, v) ∈ [0, 1)²`` and channel ``ch``,
    ``a_i ρ_i[ch] cos(2π f_i (u cos θ_i + v sin θ_i) + φ_i) + pixel_noise · ε``, with orientation
    ``θ_i = π c / num_classes + jitter · (π / num_classes) · N(0, 1)`` (so neighbouring classes
    overlap), colour ``ρ_i = ρ_c + jitter · N(0, I₃)`` around a class colour ``ρ_c`` drawn once,
    frequency ``f_i ~ U(2, 6)`` cycles per image, phase ``φ_i ~ U(0, 2π)``, contrast
    ``a_i ~ U(0.5, 1.5)`` and white noise ``ε``; channels are then standardised. A fraction
    ``label_noise`` of the images gets a label drawn uniformly from all classes.
    """
    if n < num_classes:
        raise InvalidParameterError(f"n={n} must be >= num_classes={num_classes}")
    if size < 4:
        raise InvalidParameterError(f"size={size} must be >= 4 pixels")
    if not 0.0 <= label_noise <= 1.0:
        raise InvalidParameterError(f"label_noise={label_noise} must lie in [0, 1]")
    if jitter < 0 or pixel_noise < 0:
        raise InvalidParameterError(
            f"jitter={jitter} and pixel_noise={pixel_noise} must be >= 0")
    gen = torch.Generator().manual_seed(seed)
    colours = torch.randn(num_classes, 3, generator=gen)
    y = torch.arange(n) % num_classes
    theta = math.pi / num_classes * (y + jitter * torch.randn(n, generator=gen))
    rho = colours[y] + jitter * torch.randn(n, 3, generator=gen)
    freq = 2 + 4 * torch.rand(n, generator=gen)
    phase = 2 * math.pi * torch.rand(n, generator=gen)
    contrast = 0.5 + torch.rand(n, generator=gen)
    redraw = torch.rand(n, generator=gen) < label_noise
    labels = torch.where(redraw, torch.randint(num_classes, (n,), generator=gen), y)
    u = torch.arange(size, dtype=torch.float32) / size
    x = torch.empty(n, 3, size, size)
    for lo in range(0, n, _CHUNK):  # bounded memory; the noise is drawn in the same order always
        s = slice(lo, min(lo + _CHUNK, n))
        along = (u[None, :, None] * torch.cos(theta[s])[:, None, None]
                 + u[None, None, :] * torch.sin(theta[s])[:, None, None])
        wave = torch.cos(2 * math.pi * freq[s, None, None] * along + phase[s, None, None])
        x[s] = (contrast[s, None, None, None] * rho[s, :, None, None] * wave[:, None]
                + pixel_noise * torch.randn(x[s].shape, generator=gen))
    return Dataset("gratings", _standardise_channels(x), labels, num_classes)


def load_dataset(name: str, data_dir: str | Path | None = None, *, seed: int = 0) -> Dataset:
    """Dispatch on ``name`` in :data:`DATASETS` (training split).

    CIFAR is read from ``data_dir``; when None, from ``$THERMOCHECK_DATA_DIR`` or else the working
    directory (the variable reaches worker processes and Slurm jobs, and is no part of a cached
    point's configuration: the data are the same wherever they lie). The generated sets
    (:data:`GENERATED`) are fixed datasets, seed 0 whatever the training seed, as CIFAR is.
    """
    check_choice("dataset", name, DATASETS)
    if name == "digits":
        return load_digits()
    if name == "synthetic":
        return synthetic(seed=seed)
    if name in GENERATED:
        return replace(gratings(**GENERATED[name]), name=name)
    return load_cifar(name, _data_dir(data_dir))


# -- counter-based batch streams -------------------------------------------------------------------
_MASK63 = (1 << 63) - 1


def point_key(seed: int, protocol: str, hyperparameters: Mapping[str, float | None]) -> int:
    """A 63-bit stream key from the seed and the grid point's identity, so a point's batches do
    not depend on which other points run beside it (docs/architecture.md, randomness)."""
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
