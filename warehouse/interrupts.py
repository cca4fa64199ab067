"""Ctrl-C for the queries DuckDB runs: the command line's SIGINT handler records the interrupt
here (:func:`request`), and every query open through :func:`running` is interrupted, again and
again until the command ends.

The KeyboardInterrupt alone is not enough. DuckDB's Python client checks for signals while it
starts a query, and a Ctrl-C landing in that check can be taken and dropped: with DuckDB 2.0.1,
`gwh sql` of a ten-minute aggregate on an empty warehouse ran on after a SIGINT sent 1.5-1.8 s
after its start (the handler ran inside ``DuckDBPyConnection._submit``), while one sent 1.2 or
2.1 s after stopped it at once. Interrupting the open queries from a thread of its own stops a
query whatever became of the exception, also one that started after the signal.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

__all__ = ["clear", "request", "requested", "running"]

_RUNNING: dict[int, Any] = {}  # id -> a DuckDB connection with a query open
_REQUESTED = threading.Event()
_EVERY = 0.05  # seconds between interrupts once requested


@contextlib.contextmanager
def running(con: Any) -> Iterator[None]:
    """``con`` runs a query while the context is open: a Ctrl-C interrupts it."""
    _RUNNING[id(con)] = con
    try:
        if _REQUESTED.is_set():
            con.interrupt()
        yield
    finally:
        _RUNNING.pop(id(con), None)


def request() -> None:
    """A Ctrl-C: interrupt the open queries now and every 50 ms after, until :func:`clear`."""
    if _REQUESTED.is_set():
        return
    _REQUESTED.set()
    threading.Thread(target=_interrupting, name="gwh-interrupt", daemon=True).start()


def requested() -> bool:
    return _REQUESTED.is_set()


def clear() -> None:
    """Stop interrupting (the command that was interrupted has ended; tests)."""
    _REQUESTED.clear()


def _interrupting() -> None:
    while _REQUESTED.is_set():
        for con in list(_RUNNING.values()):
            with contextlib.suppress(Exception):  # closed meanwhile: nothing to interrupt
                con.interrupt()
        time.sleep(_EVERY)
