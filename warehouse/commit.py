"""Committing loads: the one load path, versions renamed into place, and the clean-up of what
superseded versions and killed writers leave.

Every ``gwh load`` verb, the cutout ingest and the morphology measurement commit here. A commit
writes each table's next version beside the current one (``catalogs/<table>/.tmp-*`` renamed to
``v000NNN``), then a new ``warehouse.duckdb`` naming it, renamed over the old file: that rename is
the commit. Old versions go only when no reader may still be reading them.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from warehouse import db, locks, progress
from warehouse.errors import LoadError
from warehouse.files import DB_NAME, file_sha256
from warehouse.loading import Loader, LoadResult, PreparedBatch
from warehouse.store import CatalogVersion, merge_version, read_version
from warehouse.store.contracts import base_tables

if TYPE_CHECKING:
    from warehouse.core import Warehouse


def _max_rows(wh: Warehouse, prepared: Sequence) -> int | None:
    """Image tables (the contract says so) use the small partitions of ``[cutouts]``."""
    defs = base_tables()
    if any(d.image_table for p in prepared if (d := defs.get(p.spec.name)) is not None):
        return wh.config.cutouts_max_rows_per_partition
    return None


def load(
    wh: Warehouse,
    loader: Loader,
    paths: Sequence[str | os.PathLike],
    echo: Callable[[str], None] = lambda _msg: None,
) -> list[LoadResult]:
    """Load files one by one with ``loader``; each file commits on its own, so a rerun resumes.

    The one load path: every ``gwh load`` verb comes here (``loaders.registry.get(name)``
    gives the loader). A file already loaded (same SHA-256, same loader name) is skipped:
    loading twice changes nothing. ``loader.prepare(path, wh)`` gets this warehouse.
    """
    if isinstance(loader, str):
        raise LoadError(
            f"Warehouse.load takes a loader, not its name {loader!r}: pass "
            f"registry.get({loader!r}) (from loaders import registry)."
        )
    loader_name = loader.name
    results = []
    with wh.writing():
        for raw in paths:
            path = Path(raw)
            if not path.is_file():
                raise LoadError(f"{path}: no such file. Check the path.")
            # a bar (on a terminal): bytes hashed, then the step a large file is in
            with progress.bar(
                path.stat().st_size, desc=path.name, unit="B", unit_scale=True
            ) as bar:
                bar.set_postfix_str("checksum")
                sha = file_sha256(path, on_bytes=bar.update)
                when = loaded_at(wh, sha, loader_name)
                if when is None:
                    bar.set_postfix_str("reading")
                    prepared = loader.prepare(path, wh)
                    rows = sum(item.table.num_rows for item in prepared)
                    bar.set_postfix_str(f"writing {rows:,} rows")
                    results.append(
                        commit_load(
                            wh, path, sha, loader_name, prepared, max_rows=_max_rows(wh, prepared)
                        )
                    )
            if when is not None:
                echo(f"{path}: already loaded ({when:%Y-%m-%d %H:%M} UTC); nothing to do.")
                results.append(LoadResult(str(path), loader_name, True, {}))
                continue
            describe = getattr(loader, "describe", None)
            if describe is not None:  # a loader may say more (e.g. the labels it loaded)
                echo(describe(path, prepared, results[-1]))
                continue
            summary = ", ".join(
                f"{t}: +{n:,} rows → {total:,}" for t, (n, total) in results[-1].tables.items()
            )
            echo(f"{path}: loaded ({summary})")
    return results


def ingest_prepared(
    wh: Warehouse,
    loader_name: str,
    batches: Iterable[PreparedBatch],
    *,
    max_rows: int | None = None,
) -> list[LoadResult]:
    """Commit tables prepared outside the registered loaders (e.g. cutout images).

    Each batch commits on its own as the next version of its tables, so a failure keeps the
    batches already committed. ``batches`` may be a generator: it runs under the writer lock.
    ``max_rows`` overrides ``max_rows_per_partition`` (the cutouts table has its own).
    """
    results = []
    with wh.writing():
        for batch in batches:
            results.append(
                commit_load(
                    wh,
                    Path(batch.label),
                    "",
                    loader_name,
                    list(batch.prepared),
                    sources=batch.sources,
                    max_rows=max_rows,
                )
            )
    return results


def loaded_at(wh: Warehouse, sha256: str, loader_name: str) -> dt.datetime | None:
    """When a file with this SHA-256 was first loaded by this loader (UTC), or None."""
    with db.connect(wh.db_path) as con:
        row = con.execute(
            "SELECT min(loaded_at) FROM gwh_loads WHERE sha256 = ? AND loader = ?",
            [sha256, loader_name],
        ).fetchone()
    return row[0] if row else None


def commit_load(
    wh: Warehouse,
    path: Path,
    sha: str,
    loader_name: str,
    prepared: list,
    *,
    sources: Sequence[tuple[str, str, int]] | None = None,
    max_rows: int | None = None,
) -> LoadResult:
    """``sources``: (file, sha256, rows) for gwh_loads, instead of ``path`` and ``sha``."""
    created: list[tuple[str, int, Path, CatalogVersion]] = []
    tmp_dirs: list[Path] = []
    try:
        with db.connect(wh.db_path) as con:
            registry = wh._registry(con)
        for item in prepared:
            name = item.spec.name
            previous = read_version(wh.root / registry[name][1]) if name in registry else None
            version = registry[name][0] + 1 if name in registry else 1
            table_dir = wh.catalogs_dir / name
            table_dir.mkdir(parents=True, exist_ok=True)
            tmp = table_dir / f".tmp-{uuid.uuid4().hex}"
            tmp_dirs.append(tmp)
            cv = merge_version(
                previous,
                item.table,
                item.spec,
                tmp,
                max_rows=max_rows or wh.config.max_rows_per_partition,
                max_order=wh.config.max_order,
                source=str(path),
                margin_arcsec=wh.config.margin_arcsec,
            )
            final = table_dir / f"v{version:06d}"
            if final.exists():  # left by a run killed before it committed: no reader saw it
                shutil.rmtree(final)
            os.rename(tmp, final)
            cv = read_version(final)
            created.append((name, version, final, cv))
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # stored as UTC

        def record(con: duckdb.DuckDBPyConnection) -> None:
            for (name, version, final, cv), item in zip(created, prepared, strict=True):
                con.execute(
                    "INSERT OR REPLACE INTO gwh_tables VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        name,
                        version,
                        final.relative_to(wh.root).as_posix(),
                        cv.nrows,
                        len(cv.schema),
                        item.spec.description,
                        now,
                    ],
                )
                rows = sources or [(str(path.resolve()), sha, item.table.num_rows)]
                for file, file_sha, nrows in rows:
                    con.execute(
                        "INSERT INTO gwh_loads VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [file_sha, loader_name, file, name, nrows, version, now],
                    )

        wh._write_file(record)  # the commit: one rename
    except BaseException:
        for tmp in tmp_dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        for _name, _version, final, _cv in created:
            shutil.rmtree(final, ignore_errors=True)
        raise
    for _name, _version, final, _cv in created:
        point_current(final)
    collect_garbage(wh)
    return LoadResult(
        str(path),
        loader_name,
        False,
        {
            name: (item.table.num_rows, cv.nrows)
            for (name, _v, _f, cv), item in zip(created, prepared, strict=True)
        },
    )


def point_current(final: Path) -> None:
    """``catalogs/<table>/current`` → the current version, for lsdb and people."""
    link = final.parent / "current"
    tmp = final.parent / f".current-{uuid.uuid4().hex}"
    os.symlink(final.name, tmp)
    os.replace(tmp, link)


def protected_versions(wh: Warehouse) -> set[Path]:
    """Version folders a release still holds (never removed)."""
    keep: set[Path] = set()
    releases = wh.layout.releases
    for manifest in releases.glob("*/manifest.json") if releases.exists() else []:
        data = json.loads(manifest.read_text(encoding="utf-8"))
        for table in data.get("tables", {}).values():
            if "path" in table:
                keep.add((wh.root / table["path"]).resolve())
    return keep


def collect_garbage(wh: Warehouse) -> None:
    """Remove table versions neither current nor held by a release, when no reader may be
    reading them: only if the readers' lock is free right now, else they wait for the next
    writer. A reader never finds a version gone under it, and a writer never waits."""
    if not wh.catalogs_dir.exists():
        return
    root = wh.root.resolve()
    current = {(root / p).resolve() for _v, p in wh._committed_registry().values()}
    keep = current | wh.protected_versions()
    stale = [
        child
        for table_dir in sorted(wh.catalogs_dir.iterdir())
        if table_dir.is_dir()
        for child in sorted(table_dir.glob("v*"))
        if child.is_dir() and child.resolve() not in keep
    ]
    if not stale:
        return
    trash = []
    with locks.no_readers(wh.root) as free:
        if not free:
            return
        for old in stale:  # renames only, while readers wait: milliseconds
            moved = old.parent / f".trash-{uuid.uuid4().hex}"
            os.rename(old, moved)
            trash.append(moved)
    for moved in trash:
        shutil.rmtree(moved, ignore_errors=True)


def remove_orphans(wh: Warehouse) -> None:
    """What killed writers left: temporary folders, files and links no reader ever used."""
    for leftover in wh.root.glob(f".{DB_NAME}.tmp-*"):
        leftover.unlink(missing_ok=True)
    if not wh.catalogs_dir.exists():
        return
    registry = wh._committed_registry()
    for table_dir in wh.catalogs_dir.iterdir():
        if not table_dir.is_dir():
            continue
        for child in table_dir.iterdir():
            if child.name.startswith((".tmp-", ".trash-", ".current-")):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        if table_dir.name in registry:
            point_current(wh.root / registry[table_dir.name][1])
