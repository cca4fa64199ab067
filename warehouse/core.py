"""The warehouse: a root folder with ``warehouse.toml``, ``warehouse.duckdb`` and ``catalogs/``.

>>> wh = Warehouse.init(tmp_path / "wh")                       # doctest: +SKIP
>>> wh.load(registry.get("hsc-forced"), ["forced.fits"])                     # doctest: +SKIP
>>> wh.query("select split, count(*) from ml_objects group by 1")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import duckdb
import pyarrow as pa

from warehouse import api, bookkeeping, cleanup, commit, db, health, interrupts, locks, readcache
from warehouse.cone import cone as cone_search
from warehouse.config import CONFIG_NAME, Config, load_config
from warehouse.errors import NotAWarehouseError, QueryError, WarehouseError
from warehouse.explain import explain_error
from warehouse.files import Layout, make_root, room_in
from warehouse.health import ViewInfo
from warehouse.loading import Loader, LoadResult, PreparedBatch
from warehouse.location import (
    is_warehouse,
    new_warehouse_refusal,
    not_a_warehouse,
    settings_only,
)
from warehouse.marts.tables import mart_tables
from warehouse.readonly import check_read_only
from warehouse.store import CatalogVersion, read_version
from warehouse.store.contracts import base_tables

if TYPE_CHECKING:  # return types of query_df, query_table and export
    import astropy.table
    import pandas

    from warehouse.export import ExportResult

DEFAULT_ROOT = "warehouse"


def resolve_root(root: str | os.PathLike | None) -> Path:
    """``--root``, else ``$GWH_ROOT``, else ``./warehouse``."""
    if root is None or str(root) == "":
        root = os.environ.get("GWH_ROOT") or DEFAULT_ROOT
    return Path(root).expanduser()


def _refuse_foreign_tables(db_path: Path) -> None:
    """Every write replaces ``warehouse.duckdb`` by a new file: a table a user made in it with a
    plain client would be lost, so the write does not start."""
    foreign = bookkeeping.foreign_tables(db_path)
    if foreign:
        more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        shown = ", ".join(foreign[:5]) + more
        raise WarehouseError(
            f"{db_path} holds {shown}, which gwh did not make; every load, ingest, release or "
            "refresh writes a new file, which would lose it. Copy it into a database file of "
            "your own, DROP it from warehouse.duckdb, then run the command again."
        )


@dataclass(frozen=True)
class Snapshot:
    """The committed state one reader sees: the table registry (name → (version, path relative
    to the root)) and copies of the bookkeeping tables (``gwh_tables``, ``gwh_loads``)."""

    registry: dict[str, tuple[int, str]]
    bookkeeping: dict[str, pa.Table]
    # the file this process holds open for it (warehouse.readcache), None: not held
    held: readcache.Held | None = field(default=None, compare=False, repr=False)


class ReadSource(Protocol):
    """A committed state that never changes (a release's manifest), read instead of the registry
    in ``warehouse.duckdb``: a warehouse opened on one takes no readers' lock and refuses writes."""

    def snapshot(self) -> Snapshot: ...

    def tables(self, root: Path) -> list[db.BaseTable]: ...

    def models(self) -> list[db.Model]: ...

    def assertion_texts(self) -> dict[str, str] | None: ...

    def refuse_writes(self) -> WarehouseError: ...


class Warehouse:
    """A warehouse folder. Readers and writers never get in each other's way:

    * a reader (:meth:`query`, :meth:`connect`, :meth:`views`, :meth:`cone`, :meth:`check`, an
      export) builds its views in a private in-memory DuckDB database from the committed
      registry, never opens ``warehouse.duckdb`` for writing, and holds the shared readers' lock
      (:meth:`reading`) so the table versions it reads stay on disk until it ends;
    * a writer (:meth:`writing`: loads, ingests, releases, :meth:`refresh`) holds the writer
      lock, writes a new ``warehouse.duckdb`` beside the old one and renames it over it, so DuckDB
      clients holding the old file open keep a consistent old state.
    """

    def __init__(self, root: Path, config: Config, source: ReadSource | None = None):
        self.root = Path(root)
        self.config = config
        self.source = source  # None: the live committed state; else read-only (a release)
        self._local = threading.local()

    # ------------------------------------------------------------------ opening

    @property
    def layout(self) -> Layout:
        """Where things live under the root (catalogs/, releases/, cache/<source>)."""
        return Layout(self.root)

    @property
    def db_path(self) -> Path:
        return self.layout.db

    @property
    def catalogs_dir(self) -> Path:
        return self.layout.catalogs

    @classmethod
    def init(cls, root: str | os.PathLike, config: Config | None = None) -> Warehouse:
        root = Path(root)
        refusal = new_warehouse_refusal(root)
        if refusal is not None:
            raise WarehouseError(refusal)
        make_root(root)
        if config is None and settings_only(root):  # a warehouse.toml written before init
            config = load_config(root)
        else:
            config = config or Config.default()
            tmp = root / f".{CONFIG_NAME}.tmp"
            tmp.write_text(config.to_toml(), encoding="utf-8")
            os.replace(tmp, root / CONFIG_NAME)
        wh = cls(root, config)
        with wh.writing():
            wh._write_file()
        return wh

    @classmethod
    def open(cls, root: str | os.PathLike) -> Warehouse:
        root = Path(root)
        if not is_warehouse(root):
            raise NotAWarehouseError(not_a_warehouse(root))
        return cls(root, load_config(root))

    # ------------------------------------------------------------------ readers

    @contextlib.contextmanager
    def reading(self) -> Iterator[Snapshot]:
        """Hold one committed state for a whole read.

        Inside, :meth:`current_version` and :meth:`connect` answer from the same snapshot, and
        no writer removes the table versions it names. Nested calls share the outer snapshot.

        >>> with wh.reading():                                       # doctest: +SKIP
        ...     cv = wh.current_version("cutouts")
        ...     with wh.connect() as con:
        ...         ...  # con's views read the same versions as cv
        """
        pinned = getattr(self._local, "snapshot", None)
        if pinned is not None:
            yield pinned
            return
        with self._readers_lock():
            self._local.snapshot = self._read_snapshot()
            try:
                yield self._local.snapshot
            finally:
                self._local.snapshot = None

    def _readers_lock(self) -> contextlib.AbstractContextManager:
        if self.source is not None:  # its versions never change and are never removed
            return contextlib.nullcontext()
        return locks.readers_lock(self.root)

    def _read_snapshot(self) -> Snapshot:
        if self.source is not None:
            return self.source.snapshot()
        held = readcache.held(self.db_path, self.allowed_directories(), self._registry)
        if held is not None:
            return Snapshot(dict(held.registry), dict(held.bookkeeping), held)
        with db.connect(self.db_path) as con:
            registry = self._registry(con)
            bookkeeping = {
                name: con.sql(f"SELECT * FROM {name}").to_arrow_table()
                for name in ("gwh_tables", "gwh_loads")
            }
        return Snapshot(registry, bookkeeping)

    def allowed_directories(self) -> list[Path]:
        """The folders a reader's SQL may read: the warehouse's own data."""
        return [self.catalogs_dir, self.layout.releases]

    def models(self) -> list[db.Model]:
        """The SQL models the views are built from: ``sql/`` (a release: the SQL it froze)."""
        return db.load_models() if self.source is None else self.source.models()

    def reader_tables(self, snapshot: Snapshot) -> list[db.BaseTable]:
        """The base tables a reader of ``snapshot`` sees (their files, columns and hints)."""
        if self.source is not None:
            return self.source.tables(self.root.resolve())
        return self._base_tables(snapshot.registry)

    @contextlib.contextmanager
    def connect(
        self,
        read_only: bool = True,
        settings: Mapping[str, object] | None = None,
        *,
        shared: bool = False,
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """A private, read-only DuckDB connection over the committed state.

        An in-memory database holding the views (paths absolute, resolved from the root as it is
        now), the bookkeeping tables and the macros; extensions off, file access limited to
        :meth:`allowed_directories`, configuration locked after ``settings`` (e.g.
        ``{"memory_limit": "2GB"}``) are applied. The readers' lock is held until it closes.
        Run user SQL through :func:`warehouse.readonly.check_read_only` first.

        ``shared=True`` (no ``settings``), for SELECTs only: a cursor of the database this
        process holds open on the committed ``warehouse.duckdb`` (:mod:`warehouse.readcache`),
        reading the views stored in the file while they equal the ones built here; nothing is
        built, so it opens in well under a millisecond. Its default database is the read-only
        file: no tables of one's own, and cursors of it do not see the views.

        >>> with wh.connect() as con:                                # doctest: +SKIP
        ...     con.execute("SELECT count(*) FROM ml_objects").fetchall()
        """
        if not read_only:
            raise WarehouseError(
                "readers get read-only connections; writers go through Warehouse.writing()."
            )
        with self.reading() as snapshot:
            held = self.stored_views(snapshot) if shared and not settings else None
            con = held.cursor() if held is not None else None
            if con is None:  # build the views in a database of its own
                held = None
                con = db.reader(
                    self.reader_tables(snapshot),
                    self.config,
                    snapshot.bookkeeping,
                    self.allowed_directories(),
                    models=self.models(),
                    settings=settings,
                )
            try:
                with interrupts.running(con):  # a Ctrl-C of the command stops its queries
                    yield con
            finally:
                if held is not None:
                    held.release(con)
                else:
                    con.close()

    def stored_views(self, snapshot: Snapshot) -> readcache.Held | None:
        """The state this process holds open, if the views stored in its file are the ones
        :func:`db.reader` would build now (same code, root, configuration, SQL and tables)."""
        held = snapshot.held
        if held is None or self.source is not None:
            return None
        text, models = self._config_text(), self.models()
        key = (str(self.root.resolve()), text, tuple(m.text for m in models))

        def fingerprint() -> str:
            return db.fingerprint(text, self.root, self.reader_tables(snapshot))

        return held if held.matches(key, fingerprint) else None

    # ------------------------------------------------------------------ writers

    @contextlib.contextmanager
    def writing(self, command: str | None = None) -> Iterator[None]:
        """Hold the writer lock: one writer at a time, and a second fails at once naming the
        command and PID holding it. Readers are never blocked. Reentrant in one thread.

        On entry it removes what killed writers left and the superseded versions no reader uses.
        """
        if self.source is not None:
            raise self.source.refuse_writes()
        if getattr(self._local, "writing", 0):
            self._local.writing += 1
            try:
                yield
            finally:
                self._local.writing -= 1
            return
        with locks.writer_lock(self.root, command):
            self._local.writing = 1
            try:
                locks.ensure_readers_lock(self.root)
                _refuse_foreign_tables(self.db_path)
                cleanup.remove_orphans(self)
                cleanup.collect_garbage(self)
                with room_in(self.root):
                    yield
            finally:
                self._local.writing = 0

    def file_points_at(self) -> Path | None:
        """The folder the views stored in ``warehouse.duckdb`` read from (for plain DuckDB
        clients); after a move it differs from the root until :meth:`refresh`. None: unknown."""
        with db.connect(self.db_path) as con:
            try:
                row = con.execute("SELECT value FROM gwh_meta WHERE key = 'root'").fetchone()
            except duckdb.CatalogException:
                return None
        return Path(row[0]) if row else None

    def refresh(self) -> None:
        """Rewrite ``warehouse.duckdb`` for the folder's current location (e.g. after ``mv``),
        so that plain DuckDB clients find the Parquet files again. gwh itself never needs it."""
        with self.writing():
            self._write_file()

    def _write_file(
        self,
        fill: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
        check: Callable[[duckdb.DuckDBPyConnection], None] | None = None,
    ) -> None:
        """Write a new ``warehouse.duckdb``: the old bookkeeping, then ``fill`` (new rows), then
        every view over the resulting registry; renamed over the old file in one step. ``check``
        sees the views built, before the rename: what it raises leaves the old file."""

        def complete(con: duckdb.DuckDBPyConnection) -> None:
            if fill is not None:
                fill(con)
            tables = self._base_tables(self._registry(con))
            db.build(
                con, self.config, tables, db.fingerprint(self._config_text(), self.root, tables)
            )
            con.execute(
                "INSERT OR REPLACE INTO gwh_meta VALUES ('root', ?)", [str(self.root.resolve())]
            )
            if check is not None:
                check(con)

        db.write_file(self.db_path, complete)

    # ------------------------------------------------------------------ tables and views

    def _registry(self, con: duckdb.DuckDBPyConnection) -> dict[str, tuple[int, str]]:
        try:
            rows = con.execute("SELECT name, version, path FROM gwh_tables").fetchall()
        except duckdb.CatalogException:
            return {}
        return {name: (version, path) for name, version, path in rows}

    def _committed_registry(self) -> dict[str, tuple[int, str]]:
        pinned = getattr(self._local, "snapshot", None)
        if pinned is not None:
            return pinned.registry
        if self.source is not None:
            return self.source.snapshot().registry
        if not self.db_path.exists():  # being created by init
            return {}
        with db.connect(self.db_path) as con:
            return self._registry(con)

    def _base_tables(self, registry: dict[str, tuple[int, str]]) -> list[db.BaseTable]:
        root = self.root.resolve()  # views hold absolute paths: they work from any folder
        out = []
        for name, d in base_tables().items():
            if name in registry:
                cv = read_version(root / registry[name][1])
                cv.check_files(name)
                names = cv.schema.names
                hidden = tuple(
                    c for c in names if d.hidden_suffixes and c.endswith(d.hidden_suffixes)
                )
                columns = tuple(c for c in names if c not in hidden)
                out.append(
                    db.BaseTable(name, d.spec.description, cv.glob, columns, d.load_hint, hidden)
                )
            else:
                out.append(
                    db.BaseTable(
                        name, d.spec.description, None, (), d.load_hint, (), d.empty_columns
                    )
                )
        return out + mart_tables(root, registry)  # materialised views (warehouse.marts)

    def _config_text(self) -> str:
        return (self.root / CONFIG_NAME).read_text(encoding="utf-8")

    def current_version(self, name: str) -> CatalogVersion | None:
        """The committed version of table ``name`` (inside :meth:`reading`: the pinned one)."""
        registry = self._committed_registry()
        if name not in registry:
            return None
        return read_version(self.root.resolve() / registry[name][1])

    # ------------------------------------------------------------------ loading

    def load(
        self,
        loader: Loader,
        paths: Sequence[str | os.PathLike],
        echo: Callable[[str], None] = lambda _msg: None,
        dask: str | None = None,
    ) -> list[LoadResult]:
        """Load files with ``loader`` (see :func:`warehouse.commit.load`): the one load path every
        ``gwh load`` verb takes; a file already loaded is skipped, so a rerun resumes. ``dask``:
        write the partitions on that Dask cluster (default ``$GWH_DASK_SCHEDULER``, else
        ``[compute] dask``; see :mod:`warehouse.compute`)."""
        return commit.load(self, loader, paths, echo, dask=dask)

    def ingest_prepared(
        self,
        loader_name: str,
        batches: Iterable[PreparedBatch],
        *,
        max_rows: int | None = None,
    ) -> list[LoadResult]:
        """Commit tables prepared outside the registered loaders (e.g. cutout images); see
        :func:`warehouse.commit.ingest_prepared`."""
        return commit.ingest_prepared(self, loader_name, batches, max_rows=max_rows)

    def loaded_at(self, sha256: str, loader_name: str) -> dt.datetime | None:
        """When a file with this SHA-256 was first loaded by this loader (UTC), or None."""
        return commit.loaded_at(self, sha256, loader_name)

    def protected_versions(self) -> set[Path]:
        """Version folders a release still holds (never removed)."""
        return cleanup.protected_versions(self)

    # ------------------------------------------------------------------ querying

    def query(self, sql: str, params: Sequence | None = None) -> pa.Table:
        """Run one read-only SQL statement and return its result as an Arrow table.

        Raises
        ------
        ReadOnlyError
            ``sql`` is not exactly one SELECT (see :func:`warehouse.readonly.check_read_only`).
        QueryError
            The statement fails (unknown table, a file outside the warehouse, ...).
        """
        return self.run_select(check_read_only(sql), params)

    def run_select(self, statement: str, params: Sequence | None = None) -> pa.Table:
        """:meth:`query` for a SELECT the library built itself (no read-only parse: the
        connection is the locked-down reader all the same); errors explained alike."""
        with self.connect(shared=True) as con:
            try:
                return con.sql(statement, params=list(params) if params else None).to_arrow_table()
            except duckdb.Error as exc:
                raise QueryError(explain_error(exc, con, statement)) from None

    def query_df(self, sql: str, params: Sequence | None = None) -> pandas.DataFrame:
        """:meth:`query` as a pandas DataFrame (see :func:`warehouse.api.query_df`)."""
        return api.query_df(self, sql, params)

    def query_table(self, sql: str, params: Sequence | None = None) -> astropy.table.Table:
        """:meth:`query` as an astropy Table with units (see :func:`warehouse.api.query_table`)."""
        return api.query_table(self, sql, params)

    def export(self, out: str | os.PathLike, **kwargs) -> ExportResult:  # type: ignore[no-untyped-def]
        """Write HDF5 in the GalaxiesML layout (see :func:`warehouse.api.export`)."""
        return api.export(self, out, **kwargs)

    def views(self, count_rows: bool = True) -> list[ViewInfo]:
        """Every table and view with its row count (see :func:`warehouse.health.views`)."""
        return health.views(self, count_rows)

    def assertion_texts(self) -> dict[str, str] | None:
        """The contract assertions to run: None for the live ``sql/tests``."""
        return None if self.source is None else self.source.assertion_texts()

    def check(self) -> list[tuple[str, int, str | None]]:
        """Every contract assertion, files checked first (see :func:`warehouse.health.check`)."""
        return health.check(self)

    def cone(
        self, ra: float, dec: float, radius_arcsec: float, table: str = "hsc_forced"
    ) -> pa.Table:
        """Rows of ``table`` within ``radius_arcsec`` of (ra, dec), nearest first (see
        :func:`warehouse.cone.cone`)."""
        return cone_search(self, ra, dec, radius_arcsec, table)
