"""What a warehouse holds and whether it is sound: the views with their row counts (``gwh
views``), the contract assertions over files checked first (``gwh check``), and what reads do
that a user would not guess, with the command that ends it (:func:`notes`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import duckdb

from warehouse import db
from warehouse.config import Config
from warehouse.errors import DamagedFileError, QueryError, first_line
from warehouse.explain import scalar
from warehouse.marts.key import MARTS
from warehouse.marts.key import fingerprint as mart_fingerprint

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["ViewInfo", "check", "check_report", "notes", "views"]


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
    (partition or margin) deleted or cut short raises :class:`DamagedFileError` first; not one
    of a materialised view's copy, which reads leave for the SQL view (see :func:`notes`)."""
    out: list[tuple[str, int, str | None]] = []
    for name in sorted(wh._committed_registry()):
        cv = wh.current_version(name) if name not in MARTS else None
        if cv is not None:
            cv.check_whole(name)
    with wh.connect(shared=True) as con:
        for name, sql in db.assertion_queries(wh.assertion_texts()):
            try:
                out.append((name, scalar(con, f"SELECT count(*) FROM ({sql})"), None))
            except DamagedFileError:  # not an assertion that cannot run: the data is gone
                raise
            except (duckdb.Error, QueryError) as exc:
                out.append((name, -1, first_line(exc)))
    return out


def notes(wh: Warehouse) -> list[str]:
    """What reads of ``wh`` do that is slower than it should be, each with the command that
    ends it; nothing here changes an answer (none for a release: its files are frozen).

    * a materialised view whose copy is not read (a file of it deleted outside gwh, or computed
      from another state of the tables, ``sql/`` or ``warehouse.toml``): its SQL view answers;
    * quality cuts over other bands than GalaxiesML's five (``[warehouse] bands``);
    * views stored in ``warehouse.duckdb`` that differ from what this code builds for this
      folder (the folder moved, its settings or SQL edited, or the file written by another
      version of gwh): each read builds them in memory first."""
    if wh.source is not None:
        return []
    out = []
    bands, paper = tuple(wh.config.bands), Config.default().bands
    if bands != paper:  # the cuts follow the setting: a band left out is a cut left out
        out.append(
            f"the quality cuts apply to bands {','.join(bands)} ([warehouse] bands in "
            f"warehouse.toml), not the {','.join(paper)} of GalaxiesML: ml_objects keeps objects "
            "that fail only in a band left out."
        )
    with wh.reading() as snapshot:
        tables = wh.reader_tables(snapshot)
        for table in tables:
            if table.name not in MARTS or table.glob is None:
                continue
            if table.mart is None:
                cv = wh.current_version(table.name)
                try:
                    if cv is not None:
                        cv.check_whole(table.name)
                    why = "its copy carries no record of what it was computed from"
                except DamagedFileError as exc:
                    why = str(exc).partition(": a file of the warehouse")[0]
            elif table.mart != mart_fingerprint(table.name, wh.config, tables, wh.models()):
                why = "its copy was computed from another state of the tables, sql/ or settings"
            else:
                continue
            out.append(
                f"{table.name} is answered by its SQL view (exact, slower), not its materialised "
                f"copy: {why}. `gwh materialise` makes the copy anew."
            )
        # a mart's note above explains it already (materialise writes the file anew)
        stale = snapshot.held is not None and wh.stored_views(snapshot) is None
        if stale and not any(n.startswith(MARTS) for n in out):
            out.append(
                "the views stored in warehouse.duckdb were built for another state (the folder "
                "moved or copied, warehouse.toml or sql/ edited, or another version of gwh), so "
                "each read builds them in memory first. `gwh refresh` stores them anew."
            )
    return out


def check_report(
    results: list[tuple[str, int, str | None]], strict: bool, notes: list[str] | None = None
) -> tuple[str, bool]:
    """What ``gwh check`` prints for :func:`check`'s results: a line per contract, a line per
    note (:func:`notes`: never a failure) and a count line; and whether it fails (a contract
    returned rows, or, ``strict``, one could not run because its view is unavailable: a CI step
    then never goes green unchecked)."""
    lines, failed, unavailable = [], 0, 0
    for name, n, error in results:
        status = "ok" if n == 0 else ("unavailable" if error else f"FAILED ({n} rows)")
        lines.append(f"{status:<16} {name}" + (f"  ({error})" if error else ""))
        failed += n > 0
        unavailable += bool(error)
    lines += [f"{'note':<16} {note}" for note in notes or []]
    count = f"{len(results) - unavailable} of {len(results)} contracts checked, {failed} failed"
    if unavailable:
        count += f"; {unavailable} unavailable, not checked"
        count += "" if strict else " (--strict fails on them)"
    return "\n".join([*lines, count]), bool(failed or (strict and unavailable))
