"""What a warehouse holds and whether it is sound: the views with their row counts (``gwh
views``) and the contract assertions over files checked first (``gwh check``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from warehouse import db
from warehouse.errors import DamagedFileError, QueryError
from warehouse.explain import scalar

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["ViewInfo", "check", "views"]


@dataclass(frozen=True)
class ViewInfo:
    name: str
    layer: str
    kind: str
    rows: int | None
    description: str
    reason: str | None


def views(wh: Warehouse, count_rows: bool = True) -> list[ViewInfo]:
    """Every table and view of ``wh`` (row counts unless ``count_rows`` is false)."""
    with wh.connect(shared=True) as con:
        rows = con.execute(
            "SELECT name, layer, kind, description, available, reason FROM gwh_models "
            "WHERE kind <> 'macro'"
        ).fetchall()
        out = []
        for name, layer, kind, description, available, reason in rows:
            n = None
            if available and count_rows:
                n = scalar(con, f"SELECT count(*) FROM {db.quote_ident(name)}")
            out.append(ViewInfo(name, layer, kind, n, description, None if available else reason))
    return out


def check(wh: Warehouse) -> list[tuple[str, int, str | None]]:
    """Run every contract assertion; (name, failing rows, error or None). A file of a table
    (partition or margin) deleted or cut short raises :class:`DamagedFileError` first."""
    out: list[tuple[str, int, str | None]] = []
    for name in sorted(wh._committed_registry()):
        cv = wh.current_version(name)
        if cv is not None:
            cv.check_files(name)
            cv.check_footers(name, cv.files() + cv.margin_files())
    with wh.connect(shared=True) as con:
        for name, sql in db.assertion_queries(wh.assertion_texts()):
            try:
                out.append((name, scalar(con, f"SELECT count(*) FROM ({sql})"), None))
            except DamagedFileError:  # not an assertion that cannot run: the data is gone
                raise
            except (duckdb.Error, QueryError) as exc:
                out.append((name, -1, str(exc).splitlines()[0]))
    return out


def check_report(results: list[tuple[str, int, str | None]], strict: bool) -> tuple[str, bool]:
    """What ``gwh check`` prints for :func:`check`'s results: a line per contract and a count
    line; and whether it fails (a contract returned rows, or, ``strict``, one could not run
    because its view is unavailable: a CI step then never goes green unchecked)."""
    lines, failed, unavailable = [], 0, 0
    for name, n, error in results:
        status = "ok" if n == 0 else ("unavailable" if error else f"FAILED ({n} rows)")
        lines.append(f"{status:<16} {name}" + (f"  ({error})" if error else ""))
        failed += n > 0
        unavailable += bool(error)
    count = f"{len(results) - unavailable} of {len(results)} contracts checked, {failed} failed"
    if unavailable:
        count += f"; {unavailable} unavailable, not checked"
        count += "" if strict else " (--strict fails on them)"
    return "\n".join([*lines, count]), bool(failed or (strict and unavailable))
