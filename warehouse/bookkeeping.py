"""What writers read of the committed ``warehouse.duckdb``: the table registry and the files
loaded, read once per committed state.

A load asks more than once (the leftovers to remove, the versions it builds on, the files
loaded before, the versions no longer current), and each short look at the file costs a
DuckDB database (:func:`warehouse.db.connect`, tens of milliseconds). The file is never changed
in place: a writer renames a new file over it (:func:`warehouse.db.write_file`), so its identity
(device, inode, size, times) names one state, and what was read of that state stays true while
the path has that identity. Only the last state read of each path is kept; a commit records
the state it wrote (:func:`advance`), so the looks after it need no new read.

>>> state = committed(wh.db_path)                         # doctest: +SKIP
>>> state.registry["hsc_forced"]                          # doctest: +SKIP
(3, 'catalogs/hsc_forced/v000003')
"""

from __future__ import annotations

import datetime as dt
import os
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import duckdb

from warehouse import db

__all__ = ["Committed", "advance", "committed"]

Registry = Mapping[str, tuple[int, str]]  # table -> (version, folder relative to the root)


@dataclass(frozen=True)
class Committed:
    """One committed state of ``warehouse.duckdb``, as writers use it."""

    registry: Registry
    loaded: Mapping[tuple[str, str], dt.datetime]  # (loader, sha256) -> first loaded (UTC)

    def loaded_by(self, loader: str) -> dict[str, dt.datetime]:
        """SHA-256 -> when a file with it was first loaded by ``loader``."""
        return {sha: when for (name, sha), when in self.loaded.items() if name == loader}


EMPTY = Committed(MappingProxyType({}), MappingProxyType({}))

_lock = threading.Lock()
_states: dict[str, tuple[tuple[int, ...], Committed]] = {}


def _identity(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def committed(db_path: Path) -> Committed:
    """The registry and the loaded files of the file at ``db_path`` (:data:`EMPTY` while it does
    not exist: a warehouse being created)."""
    key = str(Path(db_path).resolve())
    ident = _identity(Path(db_path))
    if ident is None:
        return EMPTY
    with _lock:
        held = _states.get(key)
    if held is not None and held[0] == ident:
        return held[1]
    with db.connect(Path(db_path)) as con:
        state = _read(con)
    if _identity(Path(db_path)) == ident:  # else it changed while read: do not keep it
        with _lock:
            _states[key] = (ident, state)
    return state


def foreign_tables(db_path: Path) -> list[str]:
    """Tables in the file at ``db_path`` that gwh did not make (it writes views, macros and
    ``gwh_*`` tables only): a user's own, which the next commit's new file would not hold."""
    if _identity(Path(db_path)) is None:
        return []
    with db.connect(Path(db_path)) as con:
        rows = con.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_type = 'BASE TABLE' AND table_catalog = current_database() "
            "AND NOT (table_schema = 'main' AND table_name LIKE 'gwh\\_%' ESCAPE '\\') "
            "ORDER BY 1, 2"
        ).fetchall()
    return [name if schema == "main" else f"{schema}.{name}" for schema, name in rows]


def _read(con: duckdb.DuckDBPyConnection) -> Committed:
    try:
        tables = con.execute("SELECT name, version, path FROM gwh_tables").fetchall()
        loads = con.execute(
            "SELECT loader, sha256, min(loaded_at) FROM gwh_loads GROUP BY 1, 2"
        ).fetchall()
    except duckdb.CatalogException:  # a file older than the bookkeeping tables
        return EMPTY
    return Committed(
        MappingProxyType({name: (version, path) for name, version, path in tables}),
        MappingProxyType({(loader, sha): when for loader, sha, when in loads}),
    )


def advance(
    db_path: Path,
    before: Committed,
    tables: Mapping[str, tuple[int, str]],
    loads: Iterable[tuple[str, str, dt.datetime]],
) -> None:
    """Record the state a commit has just renamed into place: ``before`` (the state it was
    written from) plus the versions in ``tables`` and the (loader, sha256, time) ``loads``.
    Call it under the writer lock, right after the rename, so the path names that file."""
    ident = _identity(Path(db_path))
    if ident is None:
        return
    loaded = dict(before.loaded)
    for loader, sha, when in loads:
        loaded.setdefault((loader, sha), when)
    state = Committed(MappingProxyType({**before.registry, **tables}), MappingProxyType(loaded))
    with _lock:
        _states[str(Path(db_path).resolve())] = (ident, state)
