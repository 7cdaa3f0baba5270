"""A process-wide progress hook: the flow reports products done; a front end (the CLI) may listen."""

from __future__ import annotations

from typing import Callable

Listener = Callable[[int, int], None]
_listener: Listener | None = None


def set_listener(listener: Listener | None) -> None:
    global _listener
    _listener = listener


def report(done: int, total: int) -> None:
    if _listener is not None:
        _listener(done, total)
