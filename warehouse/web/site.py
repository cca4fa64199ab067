"""What one ``gwh serve`` process holds: the warehouse, one read-only DuckDB database per
committed state, the per-state caches, and the query time limit.

Readers only. The server never takes the writer lock: like every gwh reader it builds its views
in a private in-memory DuckDB database (:meth:`Warehouse.connect`) and holds the shared readers'
lock while that database is open, so a ``gwh load`` runs and commits beside it. The database of
a committed state is opened once and shared by every request (each request gets its own DuckDB
cursor on it, so browsers never wait for each other); when a load commits, the next request opens
the new state and the old one is closed as soon as the requests still reading it finish.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from warehouse.config import CONFIG_NAME
from warehouse.core import Warehouse
from warehouse.db import quote_ident, sql_root
from warehouse.errors import QueryError, QueryTimeoutError, ServeError
from warehouse.explain import explain_error
from warehouse.files import DB_NAME
from warehouse.output import format_json
from warehouse.readonly import check_read_only
from warehouse.release import MANIFEST, open_pack, open_release

QUERY_TIMEOUT_S = 30.0
"""A statement running longer is interrupted (``con.interrupt()``) and the page says so."""


class _Held:
    """One committed state held open: a thread enters :meth:`Warehouse.connect` and keeps it
    open until :meth:`close` (the context is entered and left on that one thread, as the
    warehouse's thread-local snapshot pinning needs)."""

    def __init__(self, wh: Warehouse, key: str):
        self.key = key
        self.users = 0
        self.retired = False
        self.tables: set[str] = set()  # kept by Reading.materialized
        self.active: set[duckdb.DuckDBPyConnection] = set()  # cursors in use
        self.building = threading.Lock()
        self._con: duckdb.DuckDBPyConnection | None = None
        self._error: BaseException | None = None
        self._ready = threading.Event()
        self._release = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(
            target=self._hold, args=(wh,), name=f"gwh-serve-snapshot-{key}", daemon=True
        )
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def _hold(self, wh: Warehouse) -> None:
        try:
            with wh.connect() as con:
                self._con = con
                self._ready.set()
                self._release.wait()
        except BaseException as exc:  # handed to the opening thread
            self._error = exc
            self._ready.set()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:  # DuckDB connections are not meant to be shared while making cursors
            assert self._con is not None
            return self._con.cursor()

    def close(self) -> None:
        self._release.set()
        self._thread.join(timeout=30)


@dataclass
class Reading:
    """One cursor on one committed state; every statement passes the read-only guard."""

    site: Site
    cur: duckdb.DuckDBPyConnection
    held: _Held

    @property
    def key(self) -> str:
        return self.held.key

    def materialized(self, name: str, select: str) -> str:
        """``select`` (our own SQL, not a user's) kept as table ``name`` in this state's private
        in-memory database, built once per committed state: e.g. the rows of ml_objects that
        have cutouts, so each gallery page reads those instead of recomputing the view. Nothing
        is written to disk."""
        with self.held.building:
            if name not in self.held.tables:
                sql = f"CREATE TABLE {quote_ident(name)} AS {select}"
                self.site._timed(self.cur, lambda: self.cur.execute(sql), sql)
                self.held.tables.add(name)
        return name

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        statement = check_read_only(sql)
        values = list(params) if params else None
        return self.site._timed(
            self.cur, lambda: self.cur.sql(statement, params=values).to_arrow_table(), statement
        )

    def rows(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        """Rows as plain JSON values (64-bit ids exact, NaN as "nan"): see :func:`plain_rows`."""
        return plain_rows(self.query(sql, params))


def plain_rows(table: pa.Table) -> list[dict[str, Any]]:
    """Rows as the strict JSON of ``gwh sql --format json`` reads back: exact integers, NaN and
    infinities as "nan"/"inf"/"-inf", float32 at its own precision, dates as ISO text."""
    return json.loads(format_json(table))


@dataclass
class Page:
    """One page of a query's rows."""

    table: pa.Table
    offset: int
    more: bool  # rows follow this page
    seconds: float


@dataclass
class Site:
    """The state of one server. ``wh`` is the live warehouse or a release of it (read-only).

    ``base_root`` is the warehouse folder that holds ``releases/`` (None for a packed release).
    """

    wh: Warehouse
    base_root: Path | None
    release: str | None = None
    query_timeout: float = QUERY_TIMEOUT_S
    thumbnail_capacity: int = 4000
    closed: bool = False
    _held: _Held | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _cache: dict[tuple[str, str], Any] = field(default_factory=dict, repr=False)
    _computing: dict[tuple[str, str], threading.Lock] = field(default_factory=dict, repr=False)
    _thumbs: OrderedDict[tuple, bytes] = field(default_factory=OrderedDict, repr=False)

    # ------------------------------------------------------------------ committed state

    def snapshot_key(self) -> str:
        """Names the committed state: a commit renames a new ``warehouse.duckdb`` into place,
        so its inode and time change; so does an edit of ``warehouse.toml`` or of the SQL in
        ``sql/`` (:func:`settings_key`), which changes the views as it does for ``gwh sql``.
        A release never changes."""
        if self.wh.source is not None:
            return f"release-{self.release or 'frozen'}"
        st = (self.wh.root / DB_NAME).stat()
        return f"{st.st_ino:x}-{st.st_mtime_ns:x}-{st.st_size:x}-{settings_key(self.wh.root)}"

    @contextlib.contextmanager
    def cursor(self) -> Iterator[tuple[duckdb.DuckDBPyConnection, _Held]]:
        """A DuckDB cursor on the current committed state, and that state held."""
        key = self.snapshot_key()
        retire: list[_Held] = []
        with self._lock:
            if self.closed:
                raise ServeError("the server is stopping")
            held = self._held
            if held is None or held.key != key:
                settings = key.rpartition("-")[2]
                if held is not None and settings != held.key.rpartition("-")[2]:
                    # warehouse.toml was edited: its configuration (split fractions, salt,
                    # quality cuts) is read when a warehouse is opened
                    self.wh = Warehouse.open(self.wh.root)
                if held is not None:
                    held.retired = True
                    if held.users == 0:
                        retire.append(held)
                held = self._held = _Held(self.wh, key)
                for k in [k for k in self._cache if k[0] != key]:
                    del self._cache[k]
            held.users += 1
        for old in retire:
            old.close()
        cur = held.cursor()
        with self._lock:
            held.active.add(cur)
        try:
            yield cur, held
        finally:
            with self._lock:
                held.active.discard(cur)
                held.users -= 1
                done = held.retired and held.users == 0
            cur.close()
            if done:
                held.close()

    def close(self) -> None:
        """Stop: running statements are interrupted, the state is released when they end."""
        with self._lock:
            self.closed = True
            held, self._held = self._held, None
            if held is None:
                return
            held.retired = True
            running, idle = list(held.active), held.users == 0
        for cur in running:
            cur.interrupt()
        if idle:
            held.close()

    # ------------------------------------------------------------------ queries

    @contextlib.contextmanager
    def reading(self) -> Iterator[Reading]:
        """Several queries on one committed state (an object's page)."""
        with self.cursor() as (cur, held):
            yield Reading(self, cur, held)

    def query(self, sql: str, params: Sequence[Any] | None = None) -> pa.Table:
        """All rows of one statement that passes the read-only guard, as Arrow."""
        with self.reading() as r:
            return r.query(sql, params)

    def page(self, sql: str, offset: int, rows: int, params: Sequence[Any] | None = None) -> Page:
        """Rows ``offset .. offset + rows`` of the user's statement (the read-only guard of
        ``gwh sql``), streamed: the rest of the result is never fetched."""
        statement = check_read_only(sql)
        start = time.perf_counter()
        with self.cursor() as (cur, _held):
            values = list(params) if params else None

            def fetch() -> tuple[pa.Table, bool]:
                reader: Any = cur.sql(statement, params=values).to_arrow_reader(2048)
                batches, seen = [], 0
                for batch in reader:
                    lo, hi = max(offset - seen, 0), min(offset + rows + 1 - seen, batch.num_rows)
                    if hi > lo:
                        batches.append(batch.slice(lo, hi - lo))
                    seen += batch.num_rows
                    if seen > offset + rows:
                        break
                table = pa.Table.from_batches(batches, schema=reader.schema)
                return table.slice(0, rows), table.num_rows > rows

            table, more = self._timed(cur, fetch, statement)
        return Page(table, offset, more, time.perf_counter() - start)

    def _timed(self, cur: duckdb.DuckDBPyConnection, run: Callable[[], Any], sql: str) -> Any:
        """``run()`` (executing, or fetching the rest of a streaming result), interrupted after
        :attr:`query_timeout`; DuckDB's errors explained as ``gwh sql`` explains them."""
        timer = threading.Timer(self.query_timeout, cur.interrupt)
        timer.daemon = True
        timer.start()
        try:
            return run()
        except duckdb.InterruptException:
            raise QueryTimeoutError(
                f"the query ran longer than {self.query_timeout:g} s and was cancelled; "
                "narrow it (a WHERE on split or object_id, a LIMIT) or run it with gwh sql."
            ) from None
        except duckdb.Error as exc:
            raise QueryError(explain_error(exc, cur, sql)) from None
        finally:
            timer.cancel()

    # ------------------------------------------------------------------ caches

    def cached(self, name: str, compute: Callable[[], Any]) -> Any:
        """``compute()`` once per committed state (the overview, units, the views' columns);
        concurrent requests for the same value wait for the one computing it."""
        key = (self.snapshot_key(), name)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            computing = self._computing.setdefault(key, threading.Lock())
        with computing:
            with self._lock:
                if key in self._cache:
                    return self._cache[key]
            value = compute()
            with self._lock:
                self._cache[key] = value
                self._computing.pop(key, None)
        return value

    def thumbnail(self, key: tuple) -> bytes | None:
        with self._lock:
            png = self._thumbs.get(key)
            if png is not None:
                self._thumbs.move_to_end(key)
            return png

    def keep_thumbnail(self, key: tuple, png: bytes) -> None:
        with self._lock:
            self._thumbs[key] = png
            self._thumbs.move_to_end(key)
            while len(self._thumbs) > self.thumbnail_capacity:
                self._thumbs.popitem(last=False)


def _sql_paths() -> tuple[Path, ...]:
    """The files and folders of ``sql/`` as they are now (listed on each call: a file an editor
    or ``git checkout`` adds or removes must neither be missed nor stat'ed after it went)."""
    return tuple(sorted(sql_root().rglob("*")))


def settings_key(root: Path) -> str:
    """What the views are built from besides the committed tables, as it is now:
    ``warehouse.toml`` and every file under ``sql/`` (names, sizes, modification times)."""
    h = hashlib.blake2b(digest_size=8)
    for path in [root / CONFIG_NAME, *_sql_paths()]:
        try:
            st = path.stat()
        except FileNotFoundError:  # gone since it was listed (an editor's save, a checkout)
            h.update(f"{path}:gone\n".encode())
            continue
        h.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def site_for(wh: Warehouse, query_timeout: float = QUERY_TIMEOUT_S) -> Site:
    """The site of an opened warehouse: the live one, a release of it (its releases stay
    browsable) or a packed release (on its own)."""
    frozen = getattr(wh, "release_dir", None)
    if frozen is None:
        return Site(wh, Path(wh.root), None, query_timeout)
    packed = Path(frozen).resolve() == Path(wh.root).resolve()
    return Site(wh, None if packed else Path(wh.root), getattr(wh, "name", None), query_timeout)


def open_site(
    root: Path, release: str | None = None, query_timeout: float = QUERY_TIMEOUT_S
) -> Site:
    """The site of the warehouse at ``root``, or of its release ``release`` (a name of the
    warehouse's releases, or the folder of a packed copy)."""
    if release is None:
        return site_for(Warehouse.open(root), query_timeout)
    if (Path(release) / MANIFEST).exists():
        return site_for(open_pack(Path(release)), query_timeout)
    Warehouse.open(root)  # a missing warehouse says so before the release lookup
    return site_for(open_release(Path(root), release), query_timeout)
