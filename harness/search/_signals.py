"""SIGINT and SIGTERM as a normal way to stop a search.

Inside :func:`stop_on_signals` the first SIGINT (Ctrl-C) or SIGTERM (``kill``, a cluster
scheduler) raises :class:`Stop` in the main thread: the running trial is recorded as
interrupted and queued again, the results table is rebuilt from the storage, and the
command exits 130. Signals after the first are ignored while that bookkeeping runs, so a
second Ctrl-C cannot tear it; kill -9 still ends the process, and the next run recovers.

Some steps must not be torn by the first signal either: asking the storage for a trial and
claiming it for this worker. Between the two, the trial exists but nobody knows it is ours,
so nobody would queue it again. :func:`held_signals` defers :class:`Stop` to the end of such
a step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

__all__ = ["Stop", "held_signals", "stop_on_signals"]

_NAMES = {signal.SIGINT: "SIGINT, Ctrl-C", signal.SIGTERM: "SIGTERM"}


class Stop(KeyboardInterrupt):
    """A search stopped by a signal; ``reason`` names it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _State:
    """The main thread's holds: how deep, and the stop that waits for them to end."""

    depth = 0
    pending: str | None = None


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
        reason = _NAMES.get(signal.Signals(signum), signal.Signals(signum).name)
        if _State.depth:
            _State.pending = reason  # raised when the held step ends
            return
        raise Stop(reason)

    previous = {sig: signal.signal(sig, stop) for sig in _NAMES}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def held_signals() -> Iterator[None]:
    """Run the block whole: a stop signal that arrives inside it is raised at its end.

    Outside the main thread, or outside :func:`stop_on_signals`, it changes nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _State.depth += 1
    try:
        yield
    finally:
        _State.depth -= 1
        if not _State.depth and _State.pending is not None:
            reason, _State.pending = _State.pending, None
            raise Stop(reason)
