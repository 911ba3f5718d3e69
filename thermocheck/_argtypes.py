"""argparse value types shared by the command-line options."""

from __future__ import annotations

import argparse

__all__ = ["int_at_least"]


def int_at_least(low: int, name: str) -> type[int]:
    """An argparse type: an integer >= ``low``, with a message that says so."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}={text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{name}={value} is invalid: it must be >= {low}")
        return value

    parse.__name__ = name
    return parse  # type: ignore[return-value]
