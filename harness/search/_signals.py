"""SIGINT and SIGTERM as a normal way to stop a search.

Inside :func:`stop_on_signals` the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster
scheduler) raises :class:`Stop` in the main thread: the running trial is recorded as
interrupted and queued again, the results table is rebuilt from the storage, and the
command exits 130. Signals after the first are ignored while that bookkeeping runs, so a
second Ctrl-C cannot tear it; kill -9 still ends the process, and the next run recovers.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Stop", "stop_on_signals"]

_NAMES = {signal.SIGINT: "SIGINT, Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Stop(KeyboardInterrupt):
    """A search stopped by a signal; ``reason`` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Turn the first SIGINT or SIGTERM into :class:`Stop` (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def ignore(signum: int, frame: FrameType | None) -> None:
        pass

    def stop(signum: int, frame: FrameType | None) -> None:
        for sig in _NAMES:
            signal.signal(sig, ignore)
        raise Stop(_NAMES.get(signal.Signals(signum), signal.Signals(signum).name))

    previous = {sig: signal.signal(sig, stop) for sig in _NAMES}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
