"""The DuckDB database file: views over the HATS catalogs and the SQL models in ``sql/``.

The database holds no row data, only views, macros and small bookkeeping tables (``gwh_*``), so
it opens in any DuckDB client, from any folder (the views hold absolute paths). Writers rewrite
it whole and rename it into place (:func:`write_file`); readers never open it for writing but
build the same views in a private in-memory database (:func:`reader`). A model whose inputs
were never loaded becomes a view that raises a message naming what is missing, in this CLI and
in any other DuckDB client alike.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import duckdb
import pyarrow as pa

from warehouse import __version__
from warehouse.config import Config
from warehouse.damage import explain_damage, read_order, unopened_database
from warehouse.errors import QueryError
from warehouse.marts import key as mart_key
from warehouse.readonly import reader_settings, restrict
from warehouse.store.contracts import base_tables
from warehouse.unavailable import why_unavailable

META_TABLES = {
    "gwh_tables": "the current HATS catalog version of each loaded table",
    "gwh_loads": "every input file loaded, by SHA-256 (a file loads once)",
    "gwh_models": "every view and macro built from sql/, with why any is unavailable",
    "gwh_settings": "split settings from warehouse.toml, read by ml_objects",
    "gwh_bands": "the configured bands, in order",
    "gwh_meta": "the fingerprint the views were built from",
}

BOOKKEEPING_DDL = """
CREATE TABLE IF NOT EXISTS gwh_tables (
    name VARCHAR PRIMARY KEY, version INTEGER NOT NULL, path VARCHAR NOT NULL,
    nrows BIGINT NOT NULL, ncolumns INTEGER NOT NULL, description VARCHAR,
    updated_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS gwh_loads (
    sha256 VARCHAR NOT NULL, loader VARCHAR NOT NULL, file VARCHAR NOT NULL,  -- times in UTC
    table_name VARCHAR NOT NULL, nrows BIGINT NOT NULL, version INTEGER NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS gwh_meta (key VARCHAR PRIMARY KEY, value VARCHAR);
"""


@dataclass(frozen=True)
class Model:
    """One SQL file of ``sql/``: a macro or a view."""

    name: str
    layer: str
    kind: str  # "macro" | "view"
    path: str
    text: str
    description: str
    template: bool

    def render(self, bands: tuple[str, ...]) -> str:
        """The SQL with per-band columns expanded for the configured bands.

        Two forms, the only places per-band archive columns are generated (band names are
        validated identifiers, ``[a-z][a-z0-9]*``, never user values):

        * ``-- template: per-band``: the whole SELECT once per band, joined by UNION ALL, with
          ``{band}`` and ``{band_index}`` replaced;
        * ``{{all_bands: EXPR}}`` anywhere: ``(EXPR_g AND EXPR_r AND ...)``, EXPR with ``{band}``
          replaced, so a rule that must hold in every band stays one readable line.
        """
        body = _strip_comments(self.text)
        body = _ALL_BANDS.sub(
            lambda m: (
                "(" + " AND ".join(m.group(1).strip().replace("{band}", b) for b in bands) + ")"
            ),
            body,
        )
        if "template: per-band" not in self.text:
            return body
        return "\nUNION ALL\n".join(
            body.replace("{band_index}", str(i)).replace("{band}", band)
            for i, band in enumerate(bands)
        )


_ALL_BANDS = re.compile(r"\{\{all_bands:(.*?)\}\}", re.S)


def _strip_comments(text: str) -> str:
    lines = [ln for ln in text.splitlines() if not ln.lstrip().startswith("--")]
    return "\n".join(lines).strip().rstrip(";")


def sql_root() -> Path:
    return Path(str(resources.files("sql")))


def load_models() -> list[Model]:
    """The models in the order ``sql/order.txt`` gives."""
    root = sql_root()
    models = []
    for line in (root / "order.txt").read_text(encoding="utf-8").splitlines():
        rel = line.strip()
        if not rel or rel.startswith("#"):
            continue
        models.append(model_from_text(rel, (root / rel).read_text(encoding="utf-8")))
    return models


def model_from_text(rel: str, text: str) -> Model:
    """A model from its path under ``sql/`` and its text (as frozen in a release)."""
    first = text.splitlines()[0] if text else ""
    name = Path(rel).stem
    if not first.startswith(f"-- {name}:"):
        raise QueryError(f"sql/{rel} must start with '-- {name}: <one-line description>'")
    layer = rel.split("/")[0]
    return Model(
        name=name,
        layer=layer,
        kind="macro" if layer == "macros" else "view",
        path=rel,
        text=text,
        description=first.split(":", 1)[1].strip(),
        template="template: per-band" in text or "{{all_bands:" in text,
    )


def assertion_texts() -> dict[str, str]:
    """Path under ``sql/`` → text of every contract assertion in ``sql/tests/``."""
    root = sql_root()
    return {
        f"tests/{p.name}": p.read_text(encoding="utf-8")
        for p in sorted((root / "tests").glob("*.sql"))
    }


def assertion_queries(texts: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(name, SQL) of every contract assertion; each must return no rows."""
    texts = assertion_texts() if texts is None else texts
    return [(Path(rel).stem, _strip_comments(text)) for rel, text in sorted(texts.items())]


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_source(glob: str | Sequence[str]) -> str:
    """``read_parquet`` over a HATS catalog's files (a glob, or a list of files). DuckDB would
    otherwise read the ``Norder=``/``Dir=`` folders as Hive partition columns and add them to
    every row; and, by default, take the files' float statistics to exclude NaN (the Parquet
    spec leaves NaN out of min/max), so ``WHERE isnan(g_cmodel_mag)`` or ``> 50`` skipped every
    row group holding the NaN and answered 0 (duckdb/duckdb#25521). ``can_have_nan`` keeps the
    pruning of bounded ranges and loses only that of filters with no upper bound."""
    options = "hive_partitioning = false, can_have_nan = true"
    if isinstance(glob, str):
        return f"read_parquet({quote_literal(glob)}, {options})"
    files = ", ".join(quote_literal(f) for f in glob)
    return f"read_parquet([{files}], {options})"


def _error_view(name: str, message: str) -> str:
    # The error sits in WHERE: a projection (SELECT error(...)) is pruned by count(*). DESCRIBE
    # runs nothing, so the one column's name says it too (in any DuckDB client).
    column = quote_ident(f"unavailable: {message}")
    return (
        f"CREATE OR REPLACE VIEW {quote_ident(name)} AS SELECT NULL AS {column} "
        f"FROM range(1) WHERE error({quote_literal(message)})"
    )


@dataclass(frozen=True)
class BaseTable:
    """A loaded table: its name, description, and the Parquet glob of its current version."""

    name: str
    description: str
    glob: str | None  # None: never loaded
    columns: tuple[str, ...]
    load_hint: str
    hidden: tuple[str, ...] = ()  # stored, but left out of the view (e.g. pixel blobs)
    # Optional tables: (column, DuckDB type) of the empty placeholder view used while the table
    # was never loaded. None: the registered definition's (a release builds BaseTables itself).
    empty_columns: tuple[tuple[str, str], ...] | None = None
    # Read these Parquet files instead of ``glob`` (a subset of the version's files and of its
    # margin's: a Dask worker's view of one partition, :mod:`warehouse.compute.partitions`).
    files: tuple[str, ...] = ()
    # A materialised copy of the view of the same name (:mod:`warehouse.marts`): the fingerprint
    # it was computed from. The view reads it only while that is the current fingerprint.
    mart: str | None = None


_SQL_TYPE = re.compile(r"^[A-Z][A-Z0-9_]*(\[\])?$")


def _registered_empty_columns(name: str) -> tuple[tuple[str, str], ...]:
    d = base_tables().get(name)
    return d.empty_columns if d is not None else ()


def _placeholder_view(name: str, columns: tuple[tuple[str, str], ...]) -> str:
    """An empty view with typed columns, for an optional table never loaded."""
    parts = []
    for column, typ in columns:
        if not _SQL_TYPE.match(typ):  # types come from code, never from users; check anyway
            raise QueryError(f"{name}: placeholder column {column} has an invalid type {typ!r}")
        parts.append(f"CAST(NULL AS {typ}) AS {quote_ident(column)}")
    return f"CREATE OR REPLACE VIEW {quote_ident(name)} AS SELECT {', '.join(parts)} FROM range(0)"


@functools.cache
def _build_code() -> bytes:
    """The source of the code that turns a state into views (this module, the table contracts,
    the marts' keys, the reasons a view is unavailable): a file built by other code is not what
    this code would build."""
    modules = (sys.modules[__name__], mart_key) + tuple(
        sys.modules[f.__module__] for f in (base_tables, why_unavailable)
    )
    return b"".join(Path(str(m.__file__)).read_bytes() for m in modules)


def fingerprint(config_text: str, root: Path, tables: list[BaseTable]) -> str:
    """What the views depend on: code, root, configuration, SQL and each table's files."""
    h = hashlib.sha256()
    h.update(__version__.encode())
    h.update(_build_code())
    h.update(str(root.resolve()).encode())
    h.update(config_text.encode())
    for model in load_models():
        h.update(model.text.encode())
    for t in tables:  # a mart's fingerprint too: a copy missing a file carries none
        h.update(f"{t.name}={t.glob}|{t.mart}".encode())
    return h.hexdigest()


def build(
    con: duckdb.DuckDBPyConnection,
    config: Config,
    tables: list[BaseTable],
    fp: str,
    models: list[Model] | None = None,
) -> None:
    """(Re)create every base view, setting table, macro and model view.

    Runs inside the caller's transaction, so a load's new table versions and the views over them
    commit together or not at all. ``models`` defaults to the SQL in ``sql/``; a release passes the
    SQL it froze.
    """
    models = load_models() if models is None else models
    model_names = {m.name for m in models if m.kind == "view"}
    marts = {t.name: t for t in tables if t.name in model_names}
    tables = [t for t in tables if t.name not in model_names]
    unavailable: dict[str, str] = {}
    records = []
    con.execute(BOOKKEEPING_DDL)
    s = config.splits
    con.execute(
        "CREATE OR REPLACE TABLE gwh_settings AS SELECT ?::VARCHAR AS salt, ?::VARCHAR AS mode, "
        "?::INTEGER AS healpix_order, ?::DOUBLE AS train_fraction, "
        "?::DOUBLE AS validation_fraction, ?::DOUBLE AS test_fraction",
        [s.salt, s.mode, s.healpix_order, s.train, s.validation, s.test],
    )
    con.execute("CREATE OR REPLACE TABLE gwh_bands (band VARCHAR, band_index INTEGER)")
    con.executemany(
        "INSERT INTO gwh_bands VALUES (?, ?)", [[b, i] for i, b in enumerate(config.bands)]
    )
    columns_of: dict[str, set[str]] = {}
    for t in tables:
        empty = t.empty_columns
        if t.glob is None and empty is None:
            empty = _registered_empty_columns(t.name)
        if t.glob is None and empty:
            con.execute(_placeholder_view(t.name, empty))
            columns_of[t.name] = {c for c, _ in empty}
        elif t.glob is None:
            msg = f"{t.name} has not been loaded yet. {t.load_hint}"
            con.execute(_error_view(t.name, msg))
            unavailable[t.name] = msg
        else:
            exclude = (
                f" EXCLUDE ({', '.join(quote_ident(c) for c in t.hidden)})" if t.hidden else ""
            )
            try:
                con.execute(
                    f"CREATE OR REPLACE VIEW {quote_ident(t.name)} AS "
                    f"SELECT *{exclude} FROM {parquet_source(t.files or t.glob)}"
                )
            except duckdb.Error as exc:  # its first file read for the schema is damaged
                said = explain_damage(exc, [read_order(t.files or t.glob)])
                raise QueryError(said or f"{t.name}: {exc}") from None
            columns_of[t.name] = set(t.columns)
        placeholder = t.glob is None and t.name not in unavailable
        records.append(
            (
                t.name,
                "base",
                "table",
                t.description + (f" (empty: never loaded. {t.load_hint})" if placeholder else ""),
                t.name not in unavailable,
                unavailable.get(t.name),
                "",
            )
        )
    known = model_names | {t.name for t in tables}
    for model in models:
        sql = model.render(config.bands)
        if model.kind == "macro":
            con.execute(sql)
            records.append(
                (model.name, model.layer, "macro", model.description, True, None, model.path)
            )
            continue
        reason = why_unavailable(sql, model, known, unavailable, columns_of, config.bands)
        if reason is not None:
            unavailable[model.name] = reason
            con.execute(_error_view(model.name, reason))
        elif (copy := _valid_mart(marts.get(model.name), config, tables, models)) is not None:
            con.execute(f"CREATE OR REPLACE VIEW {quote_ident(model.name)} AS SELECT * FROM {copy}")
            con.execute(
                "INSERT OR REPLACE INTO gwh_meta VALUES (?, ?)", [f"mart:{model.name}", copy]
            )
        else:
            try:
                con.execute(f"CREATE OR REPLACE VIEW {quote_ident(model.name)} AS {sql}")
            except duckdb.Error as exc:  # a table's file rewritten with other types, or the SQL
                said = explain_damage(
                    exc, (read_order(t.files or t.glob) for t in tables if t.glob)
                )
                raise QueryError(said or f"sql/{model.path} does not build: {exc}") from None
        records.append(
            (
                model.name,
                model.layer,
                "view",
                model.description,
                model.name not in unavailable,
                unavailable.get(model.name),
                model.path,
            )
        )
    con.execute(
        "CREATE OR REPLACE TABLE gwh_models (name VARCHAR, layer VARCHAR, kind VARCHAR, "
        "description VARCHAR, available BOOLEAN, reason VARCHAR, sql_file VARCHAR)"
    )
    con.executemany("INSERT INTO gwh_models VALUES (?, ?, ?, ?, ?, ?, ?)", records)
    con.execute("INSERT OR REPLACE INTO gwh_meta VALUES ('fingerprint', ?)", [fp])


def _valid_mart(
    mart: BaseTable | None, config: Config, tables: list[BaseTable], models: list[Model]
) -> str | None:
    """The Parquet source of a materialised view, if it was computed from the current state."""
    if mart is None or mart.glob is None or mart.mart is None:
        return None
    if mart.mart != mart_key.fingerprint(mart.name, config, tables, models):
        return None
    return parquet_source(mart.files or mart.glob)


STORAGE_COMPATIBILITY = "v1.4.0"
"""DuckDB storage format of ``warehouse.duckdb``: readable by DuckDB 1.4 (the long-term support
line) and every later client, including the newest ``duckdb-cli`` on PyPI (1.5.x, which reads
storage versions 64-68 only; duckdb 2.0's default writes 69). The file holds views and small
bookkeeping tables, so the newer format would buy nothing."""


def connect(path: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """A short read-only look at ``warehouse.duckdb`` (its bookkeeping tables).

    The file is attached to a fresh in-memory database rather than opened directly: DuckDB
    caches open databases by path in each process, and a writer replaces the file under that
    path, so a direct open could return the state of a replaced file still held elsewhere in
    the process.
    """
    if not read_only:
        raise QueryError(
            f"{path} is never written in place: writers build a new file (Warehouse.writing)."
        )
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {quote_literal(str(path))} AS gwh_file (READ_ONLY)")
        con.execute("USE gwh_file")
    except duckdb.Error as exc:
        con.close()
        raise QueryError(unopened_database(path, exc)) from None
    return con


def write_file(path: Path, fill: Callable[[duckdb.DuckDBPyConnection], None]) -> None:
    """Write ``path`` anew and rename it over the old file in one step.

    The new file starts with the old one's bookkeeping rows; ``fill`` adds to it and builds the
    views. DuckDB's file lock belongs to the file (the inode), not the name: clients holding
    the old file open, read-only, keep reading their consistent old state and never block this.
    Only the caller's writer lock keeps two writers apart.
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex}")
    con = duckdb.connect(str(tmp), config={"storage_compatibility_version": STORAGE_COMPATIBILITY})
    try:
        con.execute(BOOKKEEPING_DDL)
        if path.exists():
            con.execute(f"ATTACH {quote_literal(str(path))} AS gwh_old (READ_ONLY)")
            for table in ("gwh_tables", "gwh_loads"):
                con.execute(f"INSERT INTO {table} SELECT * FROM gwh_old.{table}")
            con.execute("DETACH gwh_old")
        con.execute("BEGIN TRANSACTION")
        fill(con)
        con.execute("COMMIT")
        con.execute("CHECKPOINT")
        con.close()
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except duckdb.IOException as exc:
        con.close()
        raise QueryError(unopened_database(path, exc)) from None
    finally:
        con.close()
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            leftover.unlink(missing_ok=True)


def reader(
    tables: list[BaseTable],
    config: Config,
    bookkeeping: Mapping[str, pa.Table],
    allowed_directories: Iterable[Path],
    *,
    models: list[Model] | None = None,
    settings: Mapping[str, object] | None = None,
) -> duckdb.DuckDBPyConnection:
    """A private in-memory DuckDB database holding every view, for one reader.

    ``bookkeeping`` (name → Arrow table) is copied in as tables, so ``gwh_loads`` and the like
    stay queryable. The connection is then locked down (:func:`warehouse.readonly.restrict`):
    it reads the Parquet files under ``allowed_directories`` and nothing else.
    """
    con = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    try:
        for name, table in bookkeeping.items():
            con.register("gwh_incoming", table)
            con.execute(f"CREATE TABLE {quote_ident(name)} AS SELECT * FROM gwh_incoming")
            con.unregister("gwh_incoming")
        con.execute("BEGIN TRANSACTION")
        build(con, config, tables, "reader", models=models)
        con.execute("COMMIT")
        restrict(con, allowed_directories, {**reader_settings(), **(settings or {})})
    except BaseException:
        con.close()
        raise
    return con
