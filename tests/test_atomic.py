"""Atomic writes: the whole new file or the old one, durable, and no temporary file left behind."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

import pytest

from thermocheck import atomic
from thermocheck.atomic import atomic_write, atomic_write_text

pytestmark = pytest.mark.fast


class Interrupted(Exception):
    pass


def _fail_halfway(fh: BinaryIO) -> None:
    fh.write(b"half of the new conte")
    raise Interrupted


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_writes_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "out.json"
    assert atomic_write_text(target, "first ü\n") == target
    assert target.read_text(encoding="utf-8") == "first ü\n"
    atomic_write(str(target), lambda fh: fh.write(b"second"))
    assert target.read_bytes() == b"second"
    assert _leftovers(target.parent) == []


@pytest.mark.parametrize("error", [Interrupted, KeyboardInterrupt])
def test_error_keeps_the_old_file_and_removes_the_temporary(tmp_path: Path,
                                                            error: type[BaseException]) -> None:
    target = tmp_path / "out.json"
    target.write_text("old")

    def write(fh: BinaryIO) -> None:
        fh.write(b"partial")
        raise error

    with pytest.raises(error):
        atomic_write(target, write)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_failed_replace_removes_the_temporary(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(src: str, dst: str) -> None:
        raise PermissionError(f"cannot replace {dst}")

    monkeypatch.setattr(atomic.os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write_text(tmp_path / "out.json", "new")
    assert list(tmp_path.iterdir()) == []


def test_file_and_folder_are_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The data reach the disk before the rename, and the rename is synced in its folder."""
    synced: list[str] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        mode = os.fstat(fd).st_mode
        synced.append("folder" if stat.S_ISDIR(mode) else "file")
        real_fsync(fd)

    monkeypatch.setattr(atomic.os, "fsync", spy)
    atomic_write_text(tmp_path / "out.json", "data")
    assert synced == ["file", "folder"]


def test_permissions_follow_the_umask(tmp_path: Path) -> None:
    """Like ``open``: 0o666 less the umask (``mkstemp`` alone would give 0o600)."""
    old = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "shared.json", "{}")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def _disk_full(fd: int) -> None:
    raise OSError(28, "No space left on device")


def test_grid_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from thermocheck.states import StateGrid

    grid = StateGrid.from_arrays("fixed_lr", 3, 1.0, lr=[0.01, 0.1], wd=[0.1, 0.1])
    target = tmp_path / "grid.json"
    target.write_text("old")
    monkeypatch.setattr(os, "fsync", _disk_full)
    with pytest.raises(OSError, match="No space"):
        grid.save(target)
    assert target.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_checkpoint_save_leaves_no_temporary_file(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A checkpoint that fails halfway keeps the last good one and leaves nothing behind."""
    torch = pytest.importorskip("torch")
    from thermocheck.nets import GridConfig, Trainer, synthetic

    config = GridConfig(protocol="fixed_lr", x=(0.3,), y=(0.01,), width=2, batch_size=8,
                        iters=20, every=5, dtype="float64")
    trainer = Trainer(config, data=synthetic(64))
    target = tmp_path / "trainer.pt"
    trainer.save(target)
    saved = target.read_bytes()

    def broken_save(obj: object, f: str | os.PathLike[str] | BinaryIO) -> None:
        """torch.save, interrupted halfway through writing a path or a file object."""
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as fh:
                _fail_halfway(fh)
        _fail_halfway(f)  # type: ignore[arg-type]

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(Interrupted):
        trainer.save(target)
    assert target.read_bytes() == saved
    assert _leftovers(tmp_path) == []
