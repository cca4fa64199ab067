"""Who may touch a warehouse at the same time.

Two lock files in the warehouse root, both ``flock`` locks (released by the kernel when a process
dies, even by ``kill -9``):

* ``.lock``, the writer lock: exclusive, taken without waiting by every command that changes the
  warehouse (``gwh load``, ``cutouts ingest``, ``morphology measure``, ``release create``,
  ``refresh``). The file holds the holder's command line and PID, so a second writer is told
  who to wait for.
* ``.readers``, the readers' lock: shared, held by every gwh reader for the whole time it reads
  (one query, an export). A writer removes superseded table versions only when it gets this
  lock exclusively *without waiting*; otherwise it leaves them for the next writer. No reader
  ever waits for a writer, and no writer waits for (or fails because of) a reader.

Readers never open ``.lock`` and never write anything: ``.readers`` is opened read-only.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import os
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path

from warehouse.errors import NotWritableError, WarehouseBusyError

__all__ = ["WarehouseBusyError", "no_readers", "readers_lock", "writer_lock"]

WRITER_LOCK = ".lock"
READERS_LOCK = ".readers"


def command_line() -> str:
    """This process's command, as a user would type it (``gwh load hsc-forced x.fits``)."""
    argv = list(sys.argv) or ["python"]
    return shlex.join([Path(argv[0]).name, *argv[1:]])


@contextlib.contextmanager
def writer_lock(root: Path, command: str | None = None) -> Iterator[None]:
    """Hold the writer lock of ``root``, or fail at once naming the process that holds it.

    Raises
    ------
    WarehouseBusyError
        Another writer holds it.
    NotWritableError
        The folder cannot be written (a read-only disk or share, no permission).
    """
    path = Path(root) / WRITER_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise NotWritableError(
            f"{root} cannot be written ({exc.strerror}): `{command or command_line()}` changes "
            "the warehouse and needs write access to its folder; readers (gwh sql, views, "
            "cone, export, serve) work on a read-only one."
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
            who = holder or "another gwh process"
            raise WarehouseBusyError(
                f"{root} is held by {who}; wait for it to finish, then retry."
            ) from None
        since = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        text = f"`{command or command_line()}` (PID {os.getpid()}, since {since})"
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode("utf-8"), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def ensure_readers_lock(root: Path) -> None:
    """Create ``.readers`` (writers do, so that readers never have to)."""
    (Path(root) / READERS_LOCK).touch(exist_ok=True)


@contextlib.contextmanager
def readers_lock(root: Path) -> Iterator[None]:
    """Hold the shared readers' lock of ``root`` while reading.

    Waits only while a writer renames superseded versions away (milliseconds). ``gwh init`` and
    every writer create ``.readers``; a warehouse made before it existed gets the empty file
    from its first reader. On a read-only file system nothing can remove versions, so reading
    goes on unlocked.
    """
    path = Path(root) / READERS_LOCK
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)
        except OSError:
            fd = -1
    except OSError:
        fd = -1
    if fd < 0:
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextlib.contextmanager
def no_readers(root: Path) -> Iterator[bool]:
    """Yield True while holding the readers' lock exclusively, or False at once when any reader
    holds it (then the caller must leave what readers may use)."""
    ensure_readers_lock(root)
    fd = os.open(Path(root) / READERS_LOCK, os.O_RDONLY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)
