"""Committing loads: the one load path and versions renamed into place (the clean-up of what
superseded versions and killed writers leave is :mod:`warehouse.cleanup`).

Every ``gwh load`` verb, the cutout ingest and the morphology measurement commit here. A commit
writes each table's next version beside the current one (``catalogs/<table>/.tmp-*`` renamed to
``v000NNN``), then a new ``warehouse.duckdb`` naming it, renamed over the old file: that rename is
the commit. Old versions go only when no reader may still be reading them.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb

from warehouse import bookkeeping, progress
from warehouse.cleanup import collect_garbage, committed_registry, point_current
from warehouse.compute.cluster import check_address, resolve_address
from warehouse.compute.mapping import ClusterMapper, cluster_mapper
from warehouse.errors import LoadError
from warehouse.files import background_sha256
from warehouse.load_once import LoadOnce, hashed_first, loaded_at
from warehouse.loading import Loader, LoadResult, PreparedBatch, input_files
from warehouse.marts.build import materialise
from warehouse.store import CatalogVersion, TableSpec, read_version
from warehouse.store.batch import UpsertBatch
from warehouse.store.contracts import base_tables

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "commit_load",
    "ingest_prepared",
    "load",
    "loaded_at",
]


def _max_rows(wh: Warehouse, spec: TableSpec) -> int:
    """Image tables (the contract says so) use the small partitions of ``[cutouts]``."""
    d = base_tables().get(spec.name)
    if d is not None and d.image_table:
        return wh.config.cutouts_max_rows_per_partition
    return wh.config.max_rows_per_partition


def _margin_arcsec(wh: Warehouse, spec: TableSpec) -> float | None:
    """Catalogs get a margin; image tables (pixels in every row, partitions of a thousand rows)
    do not: their margin would copy most images, and cross-matches use the catalogs."""
    d = base_tables().get(spec.name)
    return None if d is not None and d.image_table else wh.config.margin_arcsec


def load(
    wh: Warehouse,
    loader: Loader,
    paths: Sequence[str | os.PathLike],
    echo: Callable[[str], None] = lambda _msg: None,
    dask: str | None = None,
) -> list[LoadResult]:
    """Load files with ``loader``, all of them into one new version of each table they fill.

    The one load path: every ``gwh load`` verb comes here (``loaders.registry.get(name)``
    gives the loader). A file already loaded (same SHA-256, same loader name) is skipped:
    loading twice changes nothing, and a rerun after a failure loads what is missing.
    ``loader.prepare(path, wh)`` gets this warehouse. The files are read one at a time and
    their rows spilled to sorted runs, so each partition is written once whatever the number
    of files; a key in several files keeps the row of the last one, as loading them one after
    the other would. Nothing is committed until every file is read: a killed load leaves the
    warehouse as it was; a file refused as bad input (:class:`LoadError`) stops the load after
    committing the files before it, so a rerun resumes with it. A loader with a ``describe``
    hook commits file by file.

    ``dask``: a Dask scheduler (default ``$GWH_DASK_SCHEDULER``, else ``[compute] dask``; see
    :mod:`warehouse.compute`) whose workers write the partitions of the new versions and of the
    materialised views; the files are read and checked here, and this process commits.
    """
    if isinstance(loader, str):
        raise LoadError(
            f"Warehouse.load takes a loader, not its name {loader!r}: pass "
            f"registry.get({loader!r}) (from loaders import registry)."
        )
    loader_name = loader.name
    results: list[LoadResult] = []
    address = resolve_address(dask, wh.config.dask)
    if address is not None:
        check_address(address)  # before reading any file
    with wh.writing():
        files = input_files(paths, loader_name)
        describe = getattr(loader, "describe", None)
        with cluster_mapper(address, echo) as mapper:
            if describe is not None:  # a loader may say more (e.g. the labels it loaded)
                todo = hashed_first(wh, loader_name, files, results, echo)
                for path, sha in todo:
                    prepared = loader.prepare(path, wh)
                    results.append(commit_load(wh, path, sha, loader_name, prepared, mapper=mapper))
                    echo(describe(path, prepared, results[-1]))
            elif files:
                results.extend(_load_together(wh, loader, files, echo, mapper))
            _materialise(wh, echo, mapper)
            if any(not r.skipped for r in results) and mapper is not None and not mapper.calls:
                echo(
                    f"nothing ran on the Dask cluster {address}: rows without positions, or "
                    "with other columns than the rows loaded with them, are merged here"
                )
    return results


def _materialise(
    wh: Warehouse,
    echo: Callable[[str], None] = lambda _msg: None,
    mapper: ClusterMapper | None = None,
) -> None:
    """Rebuild ml_objects as a table if its inputs changed (:mod:`warehouse.marts`), then
    remove the copy it supersedes."""
    if materialise(wh, mapper, echo=echo) is not None:
        collect_garbage(wh)


def _load_together(
    wh: Warehouse,
    loader: Loader,
    files: list[Path],
    echo: Callable[[str], None],
    mapper: ClusterMapper | None = None,
) -> list[LoadResult]:
    """Prepare every file not loaded yet, spill its rows, then commit one version per table.

    Each file's SHA-256 (load-once) is computed in a thread while the files are read: a file
    whose hash is known before it is read and says it was loaded is not read; one whose hash
    comes later is read meanwhile, and its rows dropped if it was loaded (nothing written)."""
    registry = committed_registry(wh)
    before = {name: v.nrows for name in registry if (v := _previous(wh, registry, name))}
    batches: dict[str, UpsertBatch] = {}
    per_file: list[dict[str, int]] = []
    todo: list[tuple[Path, str]] = []
    skipped: list[LoadResult] = []
    failure: LoadError | None = None
    chunks = getattr(loader, "prepare_chunks", None)  # large files, a part at a time
    check = LoadOnce(wh, loader.name, skipped, echo)

    try:
        with background_sha256(files) as hashes:
            for path, sha_of in zip(files, hashes, strict=True):
                if path.resolve() in check.paths:
                    check.drop(path, "given twice")
                    continue
                known = sha_of.done()  # else read while it is hashed, and asked after
                if known and check.skips(path, sha_of.result()):
                    continue
                marks = {name: b.checkpoint() for name, b in batches.items()}
                counts: dict[str, int] = {}
                try:
                    _read_file(wh, loader, path, chunks, registry, batches, marks, counts)
                except LoadError as exc:  # commit the files before it, then report it
                    _rollback(batches, marks)
                    if not known and check.skips(path, sha_of.result()):
                        continue
                    failure = exc
                    break
                if not known and check.skips(path, sha_of.result()):
                    _rollback(batches, marks)  # read for nothing: its rows are dropped
                    continue
                per_file.append(counts)
                todo.append((path, sha_of.result()))
        records = [
            (str(path.resolve()), sha, name, n)
            for (path, sha), counts in zip(todo, per_file, strict=True)
            for name, n in counts.items()
        ]
        used = {name: b for name, b in batches.items() if b.sources}
        rows = sum(n for *_key, n in records)
        with progress.bar(rows, desc="commit", unit="rows", unit_scale=True) as bar:
            bar.set_postfix_str(f"writing {rows:,} rows")  # every partition written once
            created = (
                _commit_versions(wh, registry, used, loader.name, records, mapper=mapper)
                if used
                else []
            )
            bar.update(rows)
    finally:
        for batch in batches.values():
            batch.close()
    totals = {name: cv.nrows for name, _v, _f, cv in created}
    results = skipped
    for (path, _sha), counts in zip(todo, per_file, strict=True):
        result = LoadResult(
            str(path), loader.name, False, {t: (n, totals[t]) for t, n in counts.items()}
        )
        summary = ", ".join(f"{t}: {n:,} rows" for t, (n, _total) in result.tables.items())
        echo(f"{path}: loaded ({summary})")
        results.append(result)
    for name, _v, _f, cv in created:  # keyed upserts: a file's rows are not all new rows
        echo(_table_summary(name, sum(c.get(name, 0) for c in per_file), before.get(name, 0), cv))
    if failure is not None:
        raise failure
    return results


def _table_summary(name: str, read: int, held: int, cv: CatalogVersion) -> str:
    """What a load did to table ``name``: ``read`` rows from its files, ``held`` before it, the
    new version ``cv``. A row whose key the table held updates it (a forced2 file adds columns
    to the objects of a forced one); rows of one key in several files of the load are one row."""
    new = cv.nrows - held
    updated = min(read - new, held)
    merged = read - new - updated
    said = f"{name}: {new:,} new rows → {cv.nrows:,}"
    if updated:
        said += f"; {updated:,} updated rows whose key it held"
    if merged:
        said += f"; {merged:,} rows merged by key with a row of another file of this load"
    return said


def _read_file(
    wh: Warehouse,
    loader: Loader,
    path: Path,
    chunks: Callable | None,
    registry: bookkeeping.Registry,
    batches: dict[str, UpsertBatch],
    marks: dict[str, int],
    counts: dict[str, int],
) -> None:
    """Prepare one file (a part at a time with ``chunks``) and add its tables to ``batches``,
    counting its rows per table in ``counts``; a batch it creates gets the mark 0."""
    with progress.bar(path.stat().st_size, desc=path.name, unit="B", unit_scale=True) as bar:
        bar.set_postfix_str("reading")
        parts = chunks(path, wh) if chunks else [loader.prepare(path, wh)]
        for prepared in parts:
            for item in prepared:
                name = item.spec.name
                if name not in batches:
                    previous = _previous(wh, registry, name)
                    batches[name] = UpsertBatch(item.spec, previous, _scratch(wh, name))
                    marks[name] = 0
            checked = [batches[i.spec.name].check(i.table, str(path)) for i in prepared]
            for item, table in zip(prepared, checked, strict=True):
                batches[item.spec.name].add(table, str(path), checked=True, part=item.part)
                counts[item.spec.name] = counts.get(item.spec.name, 0) + table.num_rows
            del prepared, checked


def _rollback(batches: dict[str, UpsertBatch], marks: dict[str, int]) -> None:
    for name, mark in marks.items():
        batches[name].rollback(mark)


def _previous(wh: Warehouse, registry: bookkeeping.Registry, name: str) -> CatalogVersion | None:
    return read_version(wh.root / registry[name][1]) if name in registry else None


def _scratch(wh: Warehouse, name: str) -> Path:
    """Spilled runs of a load, beside the table's versions: a killed load's are removed by the
    next writer with the other ``.tmp-*`` leftovers."""
    return wh.catalogs_dir / name / f".tmp-{uuid.uuid4().hex}-spill"


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
        _materialise(wh)
    return results


def commit_load(
    wh: Warehouse,
    path: Path,
    sha: str,
    loader_name: str,
    prepared: list,
    *,
    sources: Sequence[tuple[str, str, int]] | None = None,
    max_rows: int | None = None,
    mapper: ClusterMapper | None = None,
) -> LoadResult:
    """Commit the tables one file (or one prepared batch) gives, as one version each.

    ``sources``: (file, sha256, rows) for gwh_loads, instead of ``path`` and ``sha``.
    ``mapper``: writes the partitions (on Dask), see :func:`load`.
    """
    registry = committed_registry(wh)
    batches: dict[str, UpsertBatch] = {}
    records = []
    try:
        for item in prepared:
            name = item.spec.name
            if name not in batches:
                batches[name] = UpsertBatch(
                    item.spec, _previous(wh, registry, name), _scratch(wh, name)
                )
            batches[name].add(item.table, str(path))
            for file, file_sha, nrows in sources or [
                (str(path.resolve()), sha, item.table.num_rows)
            ]:
                records.append((file, file_sha, name, nrows))
        created = _commit_versions(wh, registry, batches, loader_name, records, max_rows, mapper)
    finally:
        for batch in batches.values():
            batch.close()
    totals = {name: cv.nrows for name, _v, _f, cv in created}
    return LoadResult(
        str(path),
        loader_name,
        False,
        {item.spec.name: (item.table.num_rows, totals[item.spec.name]) for item in prepared},
    )


def _commit_versions(
    wh: Warehouse,
    registry: bookkeeping.Registry,
    batches: dict[str, UpsertBatch],
    loader_name: str,
    records: list[tuple[str, str, str, int]],
    max_rows: int | None = None,
    mapper: ClusterMapper | None = None,
) -> list[tuple[str, int, Path, CatalogVersion]]:
    """Write each batch as its table's next version, then commit them all with one rename.

    ``records``: (file, sha256, table, rows) rows of gwh_loads.
    """
    created: list[tuple[str, int, Path, CatalogVersion]] = []
    tmp_dirs: list[Path] = []
    try:
        for name, batch in batches.items():
            version = registry[name][0] + 1 if name in registry else 1
            table_dir = wh.catalogs_dir / name
            table_dir.mkdir(parents=True, exist_ok=True)
            tmp = table_dir / f".tmp-{uuid.uuid4().hex}"
            tmp_dirs.append(tmp)
            batch.commit(
                tmp,
                max_rows=max_rows or _max_rows(wh, batch.spec),
                max_order=wh.config.max_order,
                margin_arcsec=_margin_arcsec(wh, batch.spec),
                mapper=mapper,
            )
            final = table_dir / f"v{version:06d}"
            if final.exists():  # left by a run killed before it committed: no reader saw it
                shutil.rmtree(final)
            os.rename(tmp, final)
            created.append((name, version, final, read_version(final)))
        now = dt.datetime.now(dt.UTC).replace(tzinfo=None)  # stored as UTC
        versions = {name: version for name, version, _f, _cv in created}

        def record(con: duckdb.DuckDBPyConnection) -> None:
            for name, version, final, cv in created:
                con.execute(
                    "INSERT OR REPLACE INTO gwh_tables VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [
                        name,
                        version,
                        final.relative_to(wh.root).as_posix(),
                        cv.nrows,
                        len(cv.schema),
                        batches[name].spec.description,
                        now,
                    ],
                )
            for file, file_sha, name, nrows in records:
                con.execute(
                    "INSERT INTO gwh_loads VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [file_sha, loader_name, file, name, nrows, versions[name], now],
                )

        before = bookkeeping.committed(wh.db_path)  # the state the new file starts from
        added = {name: _added_columns(batches[name], cv) for name, _v, _f, cv in created}
        wh._write_file(record, lambda con: _refuse_shadowing(con, added))  # the commit: a rename
    except BaseException:
        for tmp in tmp_dirs:
            shutil.rmtree(tmp, ignore_errors=True)
        for _name, _version, final, _cv in created:
            shutil.rmtree(final, ignore_errors=True)
        raise
    bookkeeping.advance(
        wh.db_path,
        before,
        {name: (v, final.relative_to(wh.root).as_posix()) for name, v, final, _cv in created},
        [(loader_name, file_sha, now) for _file, file_sha, _name, _n in records],
    )
    for _name, _version, final, _cv in created:
        point_current(final)
    collect_garbage(wh)
    return created


def _added_columns(batch: UpsertBatch, cv: CatalogVersion) -> set[str]:
    held = set(batch.previous.schema.names) if batch.previous is not None else set()
    return set(cv.schema.names) - held


def _refuse_shadowing(con: duckdb.DuckDBPyConnection, added: dict[str, set[str]]) -> None:
    """Refuse a load whose new columns a view also computes or joins from another table: DuckDB
    gives the view both and renames the second (``ml_objects``: the loaded ``split`` as
    ``split``, its own as ``split_1``), so readers of ``split`` would read the loaded values."""
    columns: dict[str, set[str]] = {}
    for view, column in con.execute(
        "SELECT table_name, column_name FROM duckdb_columns() WHERE NOT internal AND table_name "
        "IN (SELECT view_name FROM duckdb_views() WHERE NOT internal)"
    ).fetchall():
        columns.setdefault(view, set()).add(column)
    stored = set().union(*(columns.get(t, set()) for t in base_tables()))  # X_1 may be real
    for table, names in added.items():
        for view, has in sorted(columns.items()):
            twice = sorted(n for n in names & has if f"{n}_1" in has - stored)
            if twice:
                more = f", ... ({len(twice)} in all)" if len(twice) > 4 else ""
                raise LoadError(
                    f"{table}: the loaded column(s) {', '.join(twice[:4])}{more} would give "
                    f"{view} a second column of a name it has (from another table or its SQL), "
                    f"{twice[0]} and {twice[0]}_1: drop them from the file(s) (a `gwh sql --out` "
                    "of a view holds the views' columns) and load again. Nothing was loaded."
                )
