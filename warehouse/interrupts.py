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
from pathlib import Path
from typing import Any

__all__ = [
    "CTRL_C_SAID",
    "reader_gone",
    "clear",
    "handle_signals",
    "handle_start",
    "is_interrupt",
    "request",
    "requested",
    "running",
    "terminated_by",
    "terminated_said",
]

_RUNNING: dict[int, Any] = {}  # id -> a DuckDB connection with a query open
_REQUESTED = threading.Event()
_EVERY = 0.05  # seconds between interrupts once requested
_TERMINATED: list[int] = []  # the signal that ended the command, once _terminated ran


CTRL_C_SAID = (
    "interrupted (Ctrl-C): nothing half-done was kept; the warehouse holds what was committed "
    "before."
)


def handle_start(main: bool) -> None:
    """While ``gwh`` is still importing its libraries (a third of a second), Ctrl-C or SIGTERM
    ends it at once with the line a command would print, not Python's traceback of the import
    it landed in: nothing has started. ``main``: this process is ``gwh`` (``python cli.py``, or
    the ``gwh`` script), not a program that imports the command line (tests)."""
    if not (main or Path(sys.argv[0]).stem == "gwh"):
        return
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:  # not ignored (nohup &)
        signal.signal(signal.SIGINT, _before_start)
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _before_start)


def _before_start(signum: int, _frame: object) -> None:
    said = CTRL_C_SAID if signum == signal.SIGINT else terminated_said(signum)
    os.write(2, f"{said}\n".encode())
    os._exit(128 + signum)


def handle_signals() -> None:
    """SIGTERM and Ctrl-C end the command wherever they land: SIGTERM raises SystemExit(143),
    Ctrl-C a KeyboardInterrupt (and interrupts the open queries); a signal that landed inside a
    finalizer or a weakref callback is sent again (:func:`_swallowed`)."""
    signal.signal(signal.SIGTERM, _terminated)
    unignored = (signal.default_int_handler, _before_start)  # not ignored (nohup &)
    if signal.getsignal(signal.SIGINT) in unignored:
        signal.signal(signal.SIGINT, _ctrl_c)
    if getattr(sys.unraisablehook, "func", None) is not _swallowed:  # once
        sys.unraisablehook = functools.partial(_swallowed, sys.unraisablehook)


def terminated_said(signum: int) -> str:
    """The line a command ended by ``signum`` (SIGTERM) prints."""
    return f"terminated ({signal.Signals(signum).name})"


def terminated_by() -> int | None:
    """The signal that ended the command (SIGTERM), if one did."""
    return _TERMINATED[0] if _TERMINATED else None


def is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C, whatever it became on its way up: DuckDB turns the SIGINT that lands during a
    query into its InterruptException, or a RuntimeError when it stops an Arrow stream."""
    import duckdb  # not at import: handle_start runs before gwh's libraries are imported

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


def reader_gone(out: Any = None) -> None:
    """The reader of standard output (or ``out``) stopped reading (``gwh views | head -1``):
    it has what it asked for. Later writes, and the flush at exit, go to /dev/null, so the
    command ends quietly instead of with a BrokenPipeError."""
    out = sys.stdout if out is None else out
    with contextlib.suppress(OSError, ValueError):  # nothing more to say at exit either
        os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
