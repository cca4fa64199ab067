"""What a read path may run, and the sandbox it runs in.

Every read path (``gwh sql``, ``gwh shell``, ``gwh export --sql``, :meth:`Warehouse.query`, the web
app) passes user SQL through :func:`check_read_only` and runs it on a connection prepared by
:func:`restrict`. Two independent walls:

* the statement: exactly one, and a ``SELECT`` (``WITH``, ``FROM``-first, ``VALUES``,
  ``DESCRIBE``, ``SHOW`` and ``SUMMARIZE`` parse as ``SELECT``) or an ``EXPLAIN`` of one;
* the connection: an in-memory DuckDB database (no file to write to), extensions neither
  installed nor loaded, file access limited to the warehouse's own data folders
  (``enable_external_access = false`` with ``allowed_directories``), and the configuration
  locked so no statement can undo it.

>>> check_read_only("select count(*) from ml_objects;")
'select count(*) from ml_objects'
>>> check_read_only("copy ml_objects to 'x.csv'")
Traceback (most recent call last):
...
warehouse.errors.ReadOnlyError: COPY is not allowed: ...
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path

import duckdb

from warehouse.errors import QueryError, ReadOnlyError, first_line, one_line

ALLOWED = (
    "gwh runs one read-only statement: SELECT (also WITH, FROM, VALUES, DESCRIBE, SHOW, "
    "SUMMARIZE) or EXPLAIN SELECT; write results to a file with gwh sql --out FILE"
)

_EXPLAIN = re.compile(r"^\s*explain\s+(?:analy[sz]e\s+)?(.*)$", re.I | re.S)


_LIMITS = ("LIMIT_MODIFIER", "LIMIT_PERCENT_MODIFIER")


def _limiting(modifier: dict) -> bool:
    """Whether a LIMIT/OFFSET modifier drops rows (``LIMIT ALL`` alone does not)."""
    if modifier.get("type") not in _LIMITS:
        return False
    limit, offset = modifier.get("limit"), modifier.get("offset")
    no_limit = limit is None or (limit.get("literal") or {}).get("kind") == "NULL_LITERAL"
    return not (no_limit and offset is None)


def unordered_limit(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> str | None:
    """Why ``sql`` may give other rows on each run, or None: a ``LIMIT``/``OFFSET`` without an
    ``ORDER BY`` beside it (at the top or in any subquery or CTE), or a ``USING SAMPLE`` /
    ``TABLESAMPLE``. DuckDB scans in parallel, so such a query picks whichever rows come first
    (a sample's seed repeats only on one thread): an export of it is not reproducible. Found in
    DuckDB's own parse tree (``json_serialize_sql``), never by matching text; SQL it cannot
    parse gives None (the guard reports it). ``con``: a connection to parse on (else a new one).

    >>> unordered_limit("select * from ml_objects order by object_id limit 10") is None
    True
    >>> unordered_limit("select * from ml_objects limit 10")[:40]
    'LIMIT without ORDER BY picks whichever r'
    """
    try:
        with contextlib.ExitStack() as stack:
            parser = con.cursor() if con is not None else duckdb.connect()
            stack.enter_context(parser)
            row = parser.execute("SELECT json_serialize_sql(?::VARCHAR)", [sql]).fetchone()
        tree = json.loads(row[0]) if row else {}
    except (duckdb.Error, ValueError):  # no json extension, or not parsable: nothing to say
        return None
    if not isinstance(tree, dict) or tree.get("error"):
        return None
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("class") == "SUBQUERY" and node.get("subquery_type") == "EXISTS":
                return  # whether any row exists does not depend on which one comes first
            modifiers = node.get("modifiers")
            if isinstance(modifiers, list):
                limits = [m for m in modifiers if isinstance(m, dict) and _limiting(m)]
                kinds = {m.get("type") for m in modifiers if isinstance(m, dict)}
                if limits and "ORDER_MODIFIER" not in kinds:
                    found.append("limit")
            if isinstance(node.get("sample"), dict):
                found.append("sample")
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree.get("statements"))
    if "sample" in found:
        return (
            "USING SAMPLE / TABLESAMPLE draws other rows on each run (DuckDB scans in "
            "parallel; a seed repeats only on one thread): use --limit N or --subset "
            "tiny|small|medium, which take the same objects every time"
        )
    if found:
        return (
            "LIMIT without ORDER BY picks whichever rows DuckDB's parallel scan gives first, "
            "other rows on another run: use --limit N or --subset tiny|small|medium (the "
            "same objects every time), or add ORDER BY object_id before the LIMIT"
        )
    return None


def _kind(statement: duckdb.Statement) -> str:
    return str(statement.type).rsplit(".", 1)[-1]


def check_read_only(sql: str, con: duckdb.DuckDBPyConnection | None = None) -> str:
    """The single read-only statement in ``sql`` (trailing ``;`` removed), or an error.

    ``con``: a connection to parse with (else DuckDB's default one, whose first use in a
    process costs some 20-30 ms to open).

    Raises
    ------
    ReadOnlyError
        ``sql`` holds no statement, several, or one that is not a SELECT or EXPLAIN SELECT.
    QueryError
        ``sql`` does not parse.
    """
    parser = duckdb if con is None else con
    try:
        statements = parser.extract_statements(sql)
    except duckdb.Error as exc:
        raise QueryError(one_line(exc)) from None
    if not statements:
        raise ReadOnlyError(f"no SQL statement given; {ALLOWED}.")
    if len(statements) > 1:
        raise ReadOnlyError(f"{len(statements)} statements given; {ALLOWED}.")
    statement = statements[0]
    kind = _kind(statement)
    text = statement.query.strip().rstrip(";").strip()
    if kind == "SELECT":
        return text
    if kind == "EXPLAIN":
        inner = _EXPLAIN.match(text)
        try:
            inner_statements = parser.extract_statements(inner.group(1)) if inner else []
        except duckdb.Error:
            inner_statements = []
        if len(inner_statements) == 1 and _kind(inner_statements[0]) == "SELECT":
            return text
        raise ReadOnlyError(f"EXPLAIN of anything but a SELECT is not allowed: {ALLOWED}.")
    if kind == "MULTI" and re.match(r"\s*PIVOT\b", text, re.I):  # DuckDB makes an enum type first
        raise ReadOnlyError(
            "a PIVOT without an IN list runs several statements (it creates a type of the values "
            "first): name the values, e.g. PIVOT t ON c IN ('a', 'b') USING count(*)."
        )
    words = {"LOAD": "INSTALL/LOAD", "SET": "SET/RESET/USE", "CALL": "CALL/CHECKPOINT"}
    raise ReadOnlyError(f"{words.get(kind, kind)} is not allowed: {ALLOWED}.")


def reader_settings() -> dict[str, object]:
    """The DuckDB settings every reader's database starts with (before :func:`restrict`)."""
    return {
        # DuckDB draws its progress bar on stdout, into results piped as CSV or JSON
        "enable_progress_bar": False,
        # spill under the system's temporary folder (created on demand, removed on close),
        # never into the working directory, which may be the warehouse
        "temp_directory": str(
            Path(tempfile.gettempdir()) / f"gwh-duckdb-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        ),
        # table versions never change once written: a footer read once serves every later
        # query of the same database (DuckDB still checks each file's modification time)
        "parquet_metadata_cache": True,
    }


# Settings of the whole database: a plain SET of these stays with the connection that ran it,
# and the cursors readers take of a held database (warehouse/readcache.py) would not see it.
DATABASE_SETTINGS = frozenset({"parquet_metadata_cache"})


def restrict(
    con: duckdb.DuckDBPyConnection,
    allowed_directories: Iterable[Path],
    settings: Mapping[str, object] | None = None,
) -> None:
    """Lock ``con`` down to reading the given folders.

    ``settings`` (e.g. ``memory_limit``, ``temp_directory``) are applied first: nothing can
    change them afterwards. Call it after the views are created and before any user SQL runs.
    """
    for name, value in (settings or {}).items():
        # names come from code, never from users; values are bound
        if not re.fullmatch(r"[a-z_]+", name):
            raise QueryError(f"invalid DuckDB setting name {name!r}")
        scope = "GLOBAL " if name in DATABASE_SETTINGS else ""
        con.execute(f"SET {scope}{name} = ?", [value])
    dirs = [str(Path(d).resolve()).rstrip("/") + "/" for d in allowed_directories]
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allowed_directories = ?", [dirs])
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def explain_refusal(exc: duckdb.Error) -> str | None:
    """A one-line message for DuckDB refusing a sandboxed operation, or None."""
    if not isinstance(exc, duckdb.PermissionException):
        return None
    first = first_line(exc)
    match = re.search(r'Cannot access (?:file|directory) "([^"]*)"', first)
    what = f"{match.group(1)} is outside the warehouse" if match else first
    return (
        f"{what}: read paths may read only the warehouse's own catalogs and releases "
        "(no other files, extensions or network)."
    )
