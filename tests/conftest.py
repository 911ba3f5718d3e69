"""Fixtures shared by the network and recorder tests (torch is imported only when they are used)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

#: Tensor methods that copy to the host, and so synchronise with the device.
HOST_SYNCS = ("item", "cpu", "tolist", "numpy", "__bool__", "__float__", "__int__")


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Tiny models: torch's thread pool costs more than it gives (see ``intra_op_threads``)."""
    from thermocheck.nets.train import intra_op_threads

    with intra_op_threads(1):
        yield


@pytest.fixture
def spy_host_syncs(monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """Call it to start counting host syncs: it returns the list that each sync appends to."""

    import torch

    def start() -> list[str]:
        calls: list[str] = []
        for name in HOST_SYNCS:
            original = getattr(torch.Tensor, name)

            def spy(self: torch.Tensor, *a: object, _n: str = name, _o: object = original,
                    **k: object) -> object:
                calls.append(_n)
                return _o(self, *a, **k)  # type: ignore[operator]

            monkeypatch.setattr(torch.Tensor, name, spy)
        return calls

    return start
