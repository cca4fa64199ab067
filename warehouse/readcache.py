"""The committed ``warehouse.duckdb`` a process reads: opened once, shared by its readers.

A writer never changes ``warehouse.duckdb`` in place; it writes a new file and renames it over
the old one (:func:`warehouse.db.write_file`). The file's identity (device, inode, size, times)
therefore names one committed state, and while this process holds the file open its inode
cannot be reused by another. The first reader of a state attaches the file read-only to a
private in-memory DuckDB database (:func:`warehouse.db.connect`), copies out the registry and
bookkeeping tables, and locks the database down (:func:`warehouse.readonly.restrict`: no other
files, no extensions, no setting changes, no ``ATTACH``). Every later reader of that state in
this process takes a cursor of it (:meth:`Held.cursor`): its own client context (temporary
objects, interrupts) over the views and macros stored in the file and the Parquet footers
already read, with nothing rebuilt.

The views stored in the file are used only while its fingerprint equals the one a reader
computes for the same state, SQL, configuration, root and code (:meth:`Held.matches`);
otherwise the reader builds its own in memory (:func:`warehouse.db.reader`), as after a move or
an edit of ``warehouse.toml``. A new state (a load by any process, a refresh) has a new
identity: the next reader opens it, and the old state is closed when its last cursor is.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from warehouse import db
from warehouse.readonly import reader_settings, restrict

__all__ = ["Held", "held"]

BOOKKEEPING = ("gwh_tables", "gwh_loads")
STORED = "gwh_file"  # the name db.connect attaches the file under

Registry = dict[str, tuple[int, str]]


def identity(path: Path) -> tuple[int, ...]:
    """What names one committed file: it changes whenever the path names another file."""
    st = os.stat(path)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class Held:
    """One committed state of ``warehouse.duckdb``, held open by this process."""

    def __init__(
        self,
        ident: tuple[int, ...],
        con: duckdb.DuckDBPyConnection,
        registry: Registry,
        bookkeeping: dict[str, pa.Table],
        fingerprint: str | None,
    ):
        self.identity = ident
        self.registry = registry
        self.bookkeeping = bookkeeping
        self.fingerprint = fingerprint  # what the stored views were built from
        self._con = con
        self._lock = threading.Lock()
        self._users = 0
        self._retired = False
        self._closed = False
        self._memo: dict[Hashable, Any] = {}

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per state (e.g. a table version: it never changes)."""
        with self._lock:
            if key in self._memo:
                return self._memo[key]
        value = compute()
        with self._lock:
            return self._memo.setdefault(key, value)

    def matches(self, key: Hashable, fingerprint: Callable[[], str]) -> bool:
        """Whether the stored views are what a reader would build: ``fingerprint()`` (for the
        SQL, configuration and root that ``key`` names) equals the file's."""
        return bool(self.memo(("matches", key), lambda: fingerprint() == self.fingerprint))

    def cursor(self) -> duckdb.DuckDBPyConnection | None:
        """A connection over the stored views (give it back with :meth:`release`), or None if
        this state can no longer serve one (closed, or its file detached by a user)."""
        with self._lock:
            if self._closed:
                return None
            cur = self._con.cursor()
            self._users += 1
        try:
            cur.execute(f"USE {STORED}")
        except duckdb.Error:
            self.release(cur)
            self.retire()
            return None
        return cur

    def release(self, cur: duckdb.DuckDBPyConnection) -> None:
        cur.close()
        with self._lock:
            self._users -= 1
            close = self._closing()
        if close:
            self._con.close()

    def retire(self) -> None:
        """No new readers: close now, or when the last cursor is released."""
        with self._lock:
            self._retired = True
            close = self._closing()
        if close:
            self._con.close()

    @property
    def retired(self) -> bool:
        return self._retired

    def _closing(self) -> bool:
        """Under the lock: whether to close now (retired, unused, not yet closed). Marked closed
        in the same step, so no cursor is handed out of a database about to be closed."""
        if self._retired and self._users == 0 and not self._closed:
            self._closed = True
            return True
        return False


_lock = threading.Lock()
_held: dict[tuple[str, tuple[str, ...]], Held] = {}
_abandoned: list[object] = []  # a forked child's copies: never closed there (not its threads)


def _after_fork() -> None:
    global _lock, _held
    _abandoned.append(_held)
    _held = {}
    _lock = threading.Lock()


os.register_at_fork(after_in_child=_after_fork)


def held(
    db_path: Path,
    allowed_directories: Sequence[Path],
    registry_of: Callable[[duckdb.DuckDBPyConnection], Registry],
) -> Held | None:
    """The committed state at ``db_path`` as this process holds it (call it under the readers'
    lock, so the versions it names stay on disk). None: the file kept changing while it was
    being opened; read it the uncached way."""
    path = Path(db_path)
    key = (str(path.resolve()), tuple(str(Path(d).resolve()) for d in allowed_directories))
    with _lock:
        before = identity(path)
        current = _held.get(key)
        if current is not None and current.identity == before and not current.retired:
            return current
        for _attempt in range(3):
            opened = _open(path, before, allowed_directories, registry_of)
            after = identity(path)
            if after == before:  # the file attached is the one named by ``before``
                if current is not None:
                    current.retire()
                _held[key] = opened
                return opened
            opened.retire()
            before = after
    return None


def _open(
    path: Path,
    ident: tuple[int, ...],
    allowed_directories: Sequence[Path],
    registry_of: Callable[[duckdb.DuckDBPyConnection], Registry],
) -> Held:
    con = db.connect(path)
    try:
        registry = registry_of(con)
        bookkeeping = {n: con.sql(f"SELECT * FROM {n}").to_arrow_table() for n in BOOKKEEPING}
        try:
            row = con.execute("SELECT value FROM gwh_meta WHERE key = 'fingerprint'").fetchone()
        except duckdb.CatalogException:
            row = None
        restrict(con, allowed_directories, reader_settings())
    except BaseException:
        con.close()
        raise
    return Held(ident, con, registry, bookkeeping, row[0] if row else None)
