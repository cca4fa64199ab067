"""DuckDB errors explained in the warehouse's terms, and the one-integer query helper."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Sequence

import duckdb

from warehouse import db
from warehouse.damage import explain_damage, read_order
from warehouse.errors import DamagedFileError, QueryError, first_line, one_line
from warehouse.readonly import explain_refusal

__all__ = ["damaged_read", "explain_error", "scalar", "unavailable_in"]


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None) -> int:
    """The single integer a query such as ``SELECT count(*) ...`` returns."""
    try:
        row = con.execute(sql, list(params) if params else []).fetchone()
    except duckdb.Error as exc:
        damaged = damaged_read(exc, con)
        if damaged:  # the data is gone, not a query that cannot run (gwh check, gwh views)
            raise DamagedFileError(damaged) from None
        raise QueryError(explain_error(exc, con, sql)) from None
    if row is None:
        raise QueryError(f"query returned no row: {sql}")
    return int(row[0])


def explain_error(exc: duckdb.Error, con: duckdb.DuckDBPyConnection, sql: str = "") -> str:
    """DuckDB's message in one line (its first), with what to do where the warehouse knows
    better.

    An unknown table or column names the closest existing one (``ml_object`` → ``did you mean
    ml_objects?``); a file outside the warehouse says what read paths may read.
    """
    refusal = explain_refusal(exc) or damaged_read(exc, con)
    if refusal is not None:
        return refusal
    msg, first = str(exc).strip(), first_line(exc)
    if isinstance(exc, duckdb.OutOfMemoryException):  # its advice (SET threads ...) is refused
        return (
            f"the query ran out of memory ({first.removeprefix('Out of Memory Error: ')}); "
            "narrow it (a WHERE, a LIMIT, fewer columns), or run it in parts."
        )
    unavailable = unavailable_in(con, sql)
    if unavailable and not isinstance(exc, duckdb.ParserException):
        return unavailable
    models = con.execute("SELECT name FROM gwh_models ORDER BY name").fetchall()
    if isinstance(exc, duckdb.CatalogException) and "does not exist" in first:
        missing = re.search(r"with name (\S+) does not exist", first)
        known = [name for (name,) in models] + list(db.META_TABLES)
        close = difflib.get_close_matches(missing.group(1), known, n=1) if missing else []
        hint = f" Did you mean {close[0]}?" if close else ""
        return f"{first}{hint} `gwh views` lists every table and view of this warehouse."
    column = re.search(r'Referenced column "?([^"\s]+)"? not found', first)
    if isinstance(exc, duckdb.BinderException) and column:
        candidates = re.findall(r'"([^"]+)"', msg.split("Candidate bindings:", 1)[-1])
        names = [c.rsplit(".", 1)[-1] for c in candidates]
        close = difflib.get_close_matches(column.group(1), names, n=1, cutoff=0.5)
        pick = close[0] if close else (names[0] if names else None)
        hint = f" Did you mean {pick}?" if pick else ""
        return f'{first}{hint} `gwh sql "DESCRIBE <view>"` lists a view\'s columns.'
    return one_line(exc)


def unavailable_in(con: duckdb.DuckDBPyConnection, sql: str) -> str | None:
    """``X is unavailable: why`` for the first unavailable view or table ``sql`` names (its
    view returns one ``unavailable`` column and fails when read), else None."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    models = con.execute("SELECT name, reason FROM gwh_models WHERE NOT available ORDER BY name")
    named = [(name, reason) for name, reason in models.fetchall() if name in words]
    return f"{named[0][0]} is unavailable: {named[0][1]}" if named else None


def damaged_read(exc: BaseException, con: duckdb.DuckDBPyConnection) -> str | None:
    """What to say of an error reading a damaged Parquet file of ``con``'s views: the file the
    error names, or the first damaged one the views read (DuckDB names none when a page fails
    to decode or a rewritten file's types do not bind). None: no damaged file."""
    return explain_damage(exc, _view_files(con))


def _view_files(con: duckdb.DuckDBPyConnection) -> Iterator[list[str]]:
    """The Parquet files each of the connection's views reads (its globs expanded), in order."""
    views = con.execute("SELECT sql FROM duckdb_views() WHERE NOT internal ORDER BY view_name")
    for (text,) in views.fetchall():
        files = [f for p in re.findall(r"'([^']+\.parquet)'", text or "") for f in read_order(p)]
        if files:
            yield files
