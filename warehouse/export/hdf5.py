"""The export entry points: :func:`export_hdf5` (one file, built in a temporary folder
beside the target and renamed at the end), :func:`export_all_splits` (train,
validation and test, resuming files the same export already finished) and
:func:`export_release_splits` (a release pack)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pyarrow as pa

from warehouse.compute.export import export_batches
from warehouse.config import SPLIT_NAMES
from warehouse.cutouts import CUTOUTS, band_column
from warehouse.errors import ExportError, QueryError
from warehouse.export.attrs import export_digest, provenance, stored_digest
from warehouse.export.columns import _PREFIX, _bands_of, _image_table, label_columns
from warehouse.export.early import EarlyPartition, first_path
from warehouse.export.h5file import _write
from warehouse.export.options import ExportOptions, ExportResult, check_split
from warehouse.export.plan import (
    _Plan,
    _plan,
    base_query,
    keyed_width,
    no_split_column,
    returns_no_split,
)
from warehouse.export.stream import catalog_reader, fetched_batches
from warehouse.export.subsets import SUBSET_ORDER, limited_query
from warehouse.export.targets import check_file_target, written_meanwhile
from warehouse.export.writer import CATALOG_BATCH_ROWS, _progress
from warehouse.files import publish
from warehouse.output import column_metadata
from warehouse.output.saving import _archive_schema
from warehouse.scratch import remove_stale, scratch_dir

if TYPE_CHECKING:
    from warehouse.core import Warehouse

DUCKDB_MEMORY_LIMIT = "1GB"  # the catalog sort spills to disk beyond this
# A sort of at most this many bytes (rows x columns x SORT_BYTES_PER_VALUE, generous for
# strings) runs on the readers' shared connection, whose views are already built.
SHARED_SORT_BYTES = 128 * 2**20
SORT_BYTES_PER_VALUE = 16
_TMP_MARK = ".gwh-tmp-"

Write = Callable[[Any, _Plan, dict, Any, "Iterator[pa.RecordBatch] | None"], dict]
"""``write(con, plan, extra, bar, batches)``: stream the planned rows somewhere (an HDF5 file:
:func:`_write`; hf Parquet shards: :mod:`warehouse.export.hf`) and return the fit-action
counts. ``extra``: file attributes beyond the plan's; ``batches``: rows computed on Dask."""


def clean_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporary folders that exports killed on this machine left in ``folder``.

    An export builds its file in ``.<name>.gwh-tmp-<host>-<pid>-<random>`` beside the target;
    one whose writer is no longer running is stale (:func:`warehouse.scratch.remove_stale`).
    Live exports' folders, other machines' and other files are never touched.
    """
    return remove_stale(folder, _TMP_MARK)


@contextlib.contextmanager
def _temporary_beside(out: Path) -> Iterator[Path]:
    """A temporary folder beside ``out`` (same file system, so the rename is atomic), named with
    this host and PID so that a later export can tell it is stale if this one is killed;
    removed on any other exit, including Ctrl-C. Stale ones of killed exports go first."""
    clean_stale_temporaries(out.parent)
    with scratch_dir(out.parent, f".{out.name}{_TMP_MARK}") as tmp:
        yield tmp


def export_hdf5(
    wh: Warehouse,
    out: str | os.PathLike[str],
    *,
    split: str | None = None,
    view: str | None = None,
    sql: str | None = None,
    options: ExportOptions | None = None,
    progress: bool | None = None,
    resume: bool = False,
    client: Any = None,
) -> ExportResult:
    """Write the rows of ``view`` (default ``ml_objects``) or of ``sql``, restricted to
    ``split`` when given, with their cutouts, to the HDF5 file ``out``.

    With ``resume``, an existing ``out`` written by the same export (its ``export_sha256``
    attribute matches) is kept and reported with ``kept=True``; one that does not match still
    needs ``overwrite``.

    ``client``: a Dask client (:mod:`warehouse.compute`): the catalog rows are computed per
    HEALPix partition on its workers (:func:`warehouse.compute.export.export_batches`) and
    written here in the same order and batches, so the file has the same bytes.

    Raises
    ------
    ExportError
        The target exists (pass ``overwrite``), the query is invalid or returns no, duplicated or
        unplaced objects, a band is missing (pass ``allow_missing_bands``), a requested mask or
        variance plane is absent, or pixel scales differ. Nothing is written then.
    """
    return _export_split(wh, Path(out), split, view, sql, options, progress, resume, client)


@contextlib.contextmanager
def _named(target: Path, out: Path) -> Iterator[None]:
    """An :class:`ExportError` about the temporary file ``target`` names ``out`` instead."""
    try:
        yield
    except ExportError as exc:
        raise ExportError(str(exc).replace(str(target), str(out))) from None


def _export_split(
    wh: Warehouse,
    out: Path,
    split: str | None,
    view: str | None,
    sql: str | None,
    options: ExportOptions | None,
    progress: bool | None,
    resume: bool,
    client: Any,
    sink: Callable[[Any], Write] | None = None,
) -> ExportResult:
    """:func:`export_hdf5`; with ``sink``, the rows go to ``sink(cv)`` (a :data:`Write` for the
    image table version ``cv``) instead of the HDF5 file ``out``, which is not written (the hf
    format), after the same checks."""
    started = time.perf_counter()
    opts = options or ExportOptions()
    check_split(split)  # before the target: a typo is named first, not an --overwrite
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name such as {out / 'train.h5'}.")
    if sink is None:
        check_file_target(wh, out)
    if out.exists() and not opts.overwrite and not resume:
        raise ExportError(f"{out} already exists. Use --overwrite to replace it.")
    if opts.images == CUTOUTS.name:
        bands = opts.bands or tuple(wh.config.bands)
        unknown = [b for b in bands if b not in wh.config.bands]
        if unknown:
            raise ExportError(
                f"band(s) {', '.join(unknown)} are not configured; the warehouse has "
                f"{', '.join(wh.config.bands)}."
            )
    # One committed state for the whole export (catalog views, image table and labels agree),
    # whose versions no load removes until it ends; loads still commit meanwhile.
    with wh.reading():
        cv = _image_table(wh, opts.images)
        if opts.images != CUTOUTS.name:
            held = _bands_of(cv.schema)
            bands = opts.bands or held
            unknown = [b for b in bands if b not in held]
            if unknown:
                raise ExportError(
                    f"band(s) {', '.join(unknown)} are not in {opts.images}; it holds "
                    f"{', '.join(held)}."
                )
        # the first partition's file read while the export is planned (uncompressed HDF5)
        first = first_path(cv) if sink is None and opts.compression is None else None
        early = None if first is None else EarlyPartition(first, bands, opts.size)
        labels = label_columns(wh)
        # The checks and counts read the views stored in warehouse.duckdb (nothing built);
        # the catalog sort gets a connection of its own only when it may need to spill.
        with _temporary_beside(out) as tmp, wh.connect(shared=True) as con:
            base, params = _rows_query(wh, view, sql, split, opts, con)
            digest = export_digest(wh, base, params, bands, dataclasses.asdict(opts))
            if out.exists() and not opts.overwrite:
                if stored_digest(out) == digest:
                    return _kept(out, split, bands, opts, started)
                raise ExportError(
                    f"{out} already exists and was written by a different export (another "
                    "query, options, gwh version or warehouse state). Use --overwrite to "
                    "replace it."
                )
            target = tmp / out.name

            def write(con, plan: _Plan, extra: dict, bar, batches) -> dict:
                return _write(con, target, plan, cv, opts, split, bar, extra, batches, early)

            # errors name the file the user asked for, not the temporary one being built
            with _named(target, out):
                plan, fit_counts = _export(
                    wh,
                    con,
                    cv,
                    base,
                    params,
                    bands,
                    labels,
                    view,
                    sql,
                    opts,
                    digest,
                    out.name,
                    progress,
                    client,
                    write if sink is None else sink(cv),
                    tmp,
                )
            if sink is None and not publish(target, out, replace=opts.overwrite):
                if stored_digest(out) == digest:  # the same export, finished meanwhile
                    return _kept(out, split, bands, opts, started)
                raise written_meanwhile(out)
    return ExportResult(
        path=out,
        rows=plan.rows,
        split=split,
        bands=bands,
        size=opts.size,
        data=plan.data,
        bytes=out.stat().st_size if sink is None else 0,
        seconds=time.perf_counter() - started,
        fit_actions=fit_counts,
        missing={b: n for b, n in plan.missing.items() if n},
    )


def _export(
    wh: Warehouse,
    con,
    cv,
    base: str,
    params: list,
    bands,
    labels,
    view: str | None,
    sql: str | None,
    opts: ExportOptions,
    digest: str,
    name: str,
    progress: bool | None,
    client: Any,
    write: Write,
    tmp: Path,
) -> tuple[_Plan, dict]:
    """Plan the export of ``base`` (checks every row, band and plane first) and stream it with
    ``write``: the plan and the fit-action counts. ``tmp``: where a large sort spills."""
    full = base_query(view if sql is None else None, sql, None, con)
    # a small export's rows are fetched sorted by the plan, whose checks then read them
    fetch = None if client is not None else SHARED_SORT_BYTES // SORT_BYTES_PER_VALUE
    warm = _warming()  # the archive schema's units, parsed while DuckDB plans
    plan = _plan(con, base, params, set(cv.schema.names), bands, opts, labels, full, fetch)
    warm.result()
    bar = _progress(plan.rows, name, progress)
    try:
        batches = None
        if client is not None:
            key = f"{_PREFIX}h29"
            batches = export_batches(wh, client, plan.keyed, plan.params, key, CATALOG_BATCH_ROWS)
        elif plan.table is not None:
            batches, plan.table = fetched_batches(plan.table), None
        with (
            _sorting(wh, con, plan, tmp, batches is not None) as sort_con,
            _started(sort_con, plan, batches) as rows,
        ):
            extra = _metadata(wh, plan, cv, bands, opts, digest)  # while the rows are sorted
            fit_counts = write(sort_con, plan, extra, bar, rows)
    finally:
        bar.close()
    return plan, fit_counts


def _warming() -> Future:
    """The HSC-SSP archive schema (units and descriptions of ~900 columns, 15 ms of Python)
    parsed in a thread while the plan's queries run in DuckDB without the GIL."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-units")
    try:
        return pool.submit(_archive_schema)
    finally:
        pool.shutdown(wait=False)


def _metadata(wh: Warehouse, plan: _Plan, cv, bands, opts: ExportOptions, digest: str) -> dict:
    """The plan's column and image units and descriptions; the file attributes beyond the
    plan's (provenance, digest, subset)."""
    plan.column_info = column_metadata(wh)
    extra = provenance(wh, plan.images, plan.base, plan.reruns)
    extra["export_sha256"] = digest
    if opts.limit is not None:
        extra["subset"] = opts.subset or "none (--limit)"
        extra["subset_limit"] = np.int64(opts.limit)
        extra["subset_order"] = f"{SUBSET_ORDER} (salt {wh.config.splits.salt!r})"
    for b in bands:
        column = band_column(b, "image")
        if column in cv.schema.names:
            meta = cv.schema.field(column).metadata or {}
            plan.units[b] = meta.get(b"unit", b"").decode()
    return extra


@contextlib.contextmanager
def _started(con, plan: _Plan, batches) -> Iterator[Iterator[pa.RecordBatch]]:
    """The catalog rows in batches: ``batches`` (computed on Dask), else the sorted query's,
    started now in a thread (DuckDB sorts without the GIL) while the file is set up. Nothing
    else uses ``con`` meanwhile; the query is waited for on exit, so it never outlives it."""
    if batches is not None:
        yield batches
        return
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-export-query")
    reader = pool.submit(catalog_reader, con, plan)

    def rows() -> Iterator[pa.RecordBatch]:
        yield from reader.result()

    try:
        yield rows()
    finally:
        pool.shutdown(wait=True)


@contextlib.contextmanager
def _sorting(wh: Warehouse, con, plan: _Plan, tmp: Path, remote: bool) -> Iterator[Any]:
    """The connection that sorts and streams the catalog rows: ``con`` (the stored views) when
    the sort is small beside :data:`DUCKDB_MEMORY_LIMIT` or runs on Dask (``remote``), else a
    private one limited to it, spilling into ``tmp`` (peak memory flat in the row count)."""
    width = keyed_width(plan.columns, plan.bands)
    if remote or plan.rows * width * SORT_BYTES_PER_VALUE <= SHARED_SORT_BYTES:
        yield con
        return
    settings = {
        "memory_limit": DUCKDB_MEMORY_LIMIT,
        "enable_progress_bar": False,  # ours is on stderr when a terminal
        "temp_directory": str(tmp / "duckdb"),
    }
    with wh.connect(settings=settings) as private:
        yield private


def _rows_query(
    wh: Warehouse,
    view: str | None,
    sql: str | None,
    split: str | None,
    opts: ExportOptions,
    con=None,
) -> tuple[str, list]:
    """The SQL choosing the exported rows: one split of the view or query, cut to the options'
    limit in the split hash order (:mod:`warehouse.export.subsets`); parsed on ``con``."""
    base, params = base_query(view if sql is None else None, sql, split, con)
    if opts.limit is None:
        return base, params
    return limited_query(base, params, wh.config.splits.salt, opts.limit)


def _kept(out: Path, split: str | None, bands, opts: ExportOptions, started: float):
    with h5py.File(out, "r") as h5:
        rows = int(h5.attrs["row_count"])
        data = str(h5.attrs.get("data", ""))
        fit = h5["fit_action"].asstr()[:] if "fit_action" in h5 else np.array([], dtype=object)
        missing = {b: int(h5[f"missing_{b}"][:].sum()) for b in bands if f"missing_{b}" in h5}
    actions, counts = np.unique(fit, return_counts=True)
    return ExportResult(
        path=out,
        rows=rows,
        split=split,
        bands=tuple(bands),
        size=opts.size,
        data=data,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - started,
        fit_actions={str(a): int(c) for a, c in zip(actions, counts, strict=True)},
        missing={b: n for b, n in missing.items() if n},
        kept=True,
    )


def export_all_splits(
    wh: Warehouse,
    out_dir: str | os.PathLike[str],
    *,
    view: str | None = None,
    sql: str | None = None,
    options: ExportOptions | None = None,
    progress: bool | None = None,
    client: Any = None,
) -> list[ExportResult]:
    """``train.h5``, ``validation.h5`` and ``test.h5`` in ``out_dir``, one export per split.
    ``client``: rows computed on Dask (see :func:`export_hdf5`).

    A rerun resumes: a split file already written by the same export (same query, options,
    gwh version and warehouse state: its ``export_sha256`` attribute) is kept, and only the
    missing ones are written. A file that does not match needs ``overwrite``; that is checked
    for all three before anything is written. The three come from one committed state.
    """
    with wh.reading():
        opts = options or ExportOptions()
        return _all_splits(wh, Path(out_dir), view, sql, opts, progress, client)


def _all_splits(
    wh: Warehouse,
    out_dir: Path,
    view: str | None,
    sql: str | None,
    opts: ExportOptions,
    progress: bool | None,
    client: Any = None,
) -> list[ExportResult]:
    targets = [out_dir / f"{s}.h5" for s in SPLIT_NAMES]
    if not opts.overwrite:
        bands = _bands_for_digest(wh, opts)
        stale = []
        for s, t in zip(SPLIT_NAMES, targets, strict=True):
            if t.exists():
                b, p = _rows_query(wh, view, sql, s, opts)
                options = dataclasses.asdict(opts)
                digest = None if bands is None else export_digest(wh, b, p, bands, options)
                if digest is None or stored_digest(t) != digest:
                    stale.append(str(t))
        if stale:
            raise ExportError(
                f"{', '.join(stale)} already exist(s) and were not written by this export "
                "(another query, options, gwh version or warehouse state). Use --overwrite "
                "to replace."
            )
    base, params = base_query(view if sql is None else None, sql, None)
    try:
        # base is checked (base_query): the wrapper is ours, no second read-only parse
        sql_counts = f"SELECT split, count(*) AS n FROM (\n{base}\n) AS q GROUP BY 1"
        counts = wh.run_select(sql_counts, params)
    except QueryError as exc:
        with wh.connect(shared=True) as con:  # the check the plan of --split makes
            if returns_no_split(con, base, params):
                raise ExportError(no_split_column("--all-splits")) from None
        raise ExportError(f"--all-splits: {exc}") from None
    found = dict(
        zip(counts.column("split").to_pylist(), counts.column("n").to_pylist(), strict=True)
    )
    empty = [s for s in SPLIT_NAMES if not found.get(s)]
    if empty:  # found before any file is written
        raise ExportError(
            f"split(s) {', '.join(empty)} have no rows, so there is nothing to export for them; "
            "export the others one by one with --split."
        )
    return [
        export_hdf5(
            wh,
            t,
            split=s,
            view=view,
            sql=sql,
            options=opts,
            progress=progress,
            resume=True,
            client=client,
        )
        for s, t in zip(SPLIT_NAMES, targets, strict=True)
    ]


def _bands_for_digest(wh: Warehouse, opts: ExportOptions) -> tuple[str, ...] | None:
    """The bands ``export_hdf5`` will use (None when the image table is not there yet)."""
    if opts.bands is not None:
        return tuple(opts.bands)
    if opts.images == CUTOUTS.name:
        return tuple(wh.config.bands)
    try:
        return _bands_of(_image_table(wh, opts.images).schema)
    except ExportError:
        return None


def export_release_splits(wh: Warehouse, out_dir: str | os.PathLike[str]) -> list[Path]:
    """The HDF5 splits of a release pack (``gwh release pack``): train, validation and test of
    ``ml_objects`` at the default size, bands and planes. Objects without a cutout in some band
    get NaN images and ``missing_<band>`` flags rather than failing the pack; a release with no
    cutouts at all has no images to export and gets no split files."""
    if wh.current_version(CUTOUTS.name) is None:
        return []
    options = ExportOptions(allow_missing_bands=True)
    return [r.path for r in export_all_splits(wh, out_dir, options=options, progress=False)]
