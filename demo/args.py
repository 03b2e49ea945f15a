"""What the main job (``python -m demo``) and ``./dev serve`` (``python -m demo.serve``) parse and
handle alike: the ``--clock-start`` argument and SIGTERM."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from types import FrameType

from localclock.clock import ClockError, parse_clock_start


def clock_start_argument(text: str) -> datetime:
    """``--clock-start``: an ISO instant with its offset, or ``now`` (the wall clock, to the second)."""
    if text.strip().lower() == "now":
        return datetime.now(timezone.utc).replace(microsecond=0)
    try:
        return parse_clock_start(text)
    except ClockError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def interrupt(signum: int, frame: FrameType | None) -> None:
    """SIGTERM handler: stop as Ctrl-C does, so the stack is cleaned up."""
    raise KeyboardInterrupt


@contextmanager
def signals_held() -> Iterator[None]:
    """Clean-up runs to its end: a second Ctrl-C or SIGTERM while the stack stops is ignored, not
    raised in the middle of it (which would leave the services after it running)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers (a test starting a stack in a thread)
        return
    before = {signum: signal.signal(signum, signal.SIG_IGN) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)


def stop_cleanly_on_signals() -> None:
    """SIGTERM and Ctrl-C both raise KeyboardInterrupt, so the ``finally`` that stops the stack's
    processes runs. A process started in the background by a shell (or by any parent that ignores
    SIGINT) inherits SIGINT ignored, and Python then installs no Ctrl-C handler; and Python's
    default SIGTERM ends the process at once, leaving devhost and the emulators running."""
    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGINT, signal.default_int_handler)
