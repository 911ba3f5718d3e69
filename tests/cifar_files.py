"""Small CIFAR-10/100 copies in the official python-pickle layout, for the loader tests."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np


def write_cifar(root: Path, name: str, n: int = 6) -> np.ndarray:
    """Write ``n`` random images per file under ``root`` as the official tarball unpacks them;
    return the raw ``[n, 3072]`` uint8 rows (the same in every file, labels ``0 … n − 1``)."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key = [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"], b"labels"
    else:
        folder = root / "cifar-100-python"
        files, key = ["train", "test"], b"fine_labels"
    folder.mkdir(parents=True)
    for f in files:
        with open(folder / f, "wb") as fh:
            pickle.dump({b"data": data, key: list(range(n))}, fh)
    return data
