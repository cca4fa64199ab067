"""Ctrl-C and SIGTERM for a command (:func:`handle_signals`), and for the queries DuckDB runs:
the SIGINT handler records the interrupt here (:func:`request`), and every query open through
:func:`running` is interrupted, again and again until the command ends.

The KeyboardInterrupt alone is not enough. DuckDB's Python client checks for signals while it
starts a query, and a Ctrl-C landing in that check can be taken and dropped: with DuckDB 2.0.1,
`gwh sql` of a ten-minute aggregate on an empty warehouse ran on after a SIGINT sent 1.5-1.8 s
after its start (the handler ran inside ``DuckDBPyConnection._submit``), while one sent 1.2 or
2.1 s after stopped it at once. Interrupting the open queries from a thread of its own stops a
query whatever became of the exception, also one that started after the signal.
"""

from __future__ import annotations

import _thread
import contextlib
import functools
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import duckdb

__all__ = [
    "clear",
    "handle_signals",
    "is_interrupt",
    "request",
    "requested",
    "running",
    "terminated_by",
]

_RUNNING: dict[int, Any] = {}  # id -> a DuckDB connection with a query open
_REQUESTED = threading.Event()
_EVERY = 0.05  # seconds between interrupts once requested
_TERMINATED: list[int] = []  # the signal that ended the command, once _terminated ran


def handle_signals() -> None:
    """SIGTERM and Ctrl-C end the command wherever they land: SIGTERM raises SystemExit(143),
    Ctrl-C a KeyboardInterrupt (and interrupts the open queries); a signal that landed inside a
    finalizer or a weakref callback is sent again (:func:`_swallowed`)."""
    signal.signal(signal.SIGTERM, _terminated)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (nohup &)
        signal.signal(signal.SIGINT, _ctrl_c)
    if getattr(sys.unraisablehook, "func", None) is not _swallowed:  # once
        sys.unraisablehook = functools.partial(_swallowed, sys.unraisablehook)


def terminated_by() -> int | None:
    """The signal that ended the command (SIGTERM), if one did."""
    return _TERMINATED[0] if _TERMINATED else None


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, whatever it became on its way up: DuckDB turns the SIGINT that lands during a
    query into its InterruptException, or a RuntimeError when it stops an Arrow stream."""
    if isinstance(exc, KeyboardInterrupt | duckdb.InterruptException):
        return True
    return isinstance(exc, RuntimeError) and str(exc).startswith("Query interrupted")


def _terminated(signum: int, _frame: object) -> None:
    """SIGTERM (``kill``, a batch system's time limit) ends a command as Ctrl-C does: the
    interpreter unwinds, so temporary files are removed and locks released on the way out;
    the command line then exits 128 + the signal's number, as the shell reports a kill."""
    _TERMINATED.append(signum)
    raise SystemExit(128 + signum)


def _ctrl_c(_signum: int, _frame: object) -> None:
    """Ctrl-C: the KeyboardInterrupt, and the open queries interrupted until the command ends
    (DuckDB can drop the KeyboardInterrupt of a signal landing as a query starts)."""
    request()
    raise KeyboardInterrupt


def _swallowed(previous: Callable[[Any], None], unraisable: Any) -> None:
    """A signal that lands inside a finalizer or a weakref callback raises where Python can only
    print "Exception ignored" with a traceback and go on, the command running to its end (CI saw
    a SIGTERM in WeakValueDictionary's): that signal is sent again, from a thread so that its
    handler does not run inside this hook, and raises in the command's own code."""
    exc = unraisable.exc_value
    if isinstance(exc, SystemExit) and _TERMINATED:
        signum = _TERMINATED[0]
    elif isinstance(exc, KeyboardInterrupt):
        signum = signal.SIGINT
    else:
        previous(unraisable)  # anything else: as Python reports it
        return
    _thread.start_new_thread(os.kill, (os.getpid(), signum))  # threading's start would wait


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
