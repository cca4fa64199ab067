"""Materialising a mart: the rows of a view written as the next version of a HATS table.

``ml_objects`` is written one ``hsc_forced`` partition per file, its rows ordered by
``(_healpix_29, object_id)``. Given a ``mapper(function, tasks)`` (Dask workers on a shared
filesystem: ``functools.partial(warehouse.compute.mapping.map_in_order, client)``), each task runs
:func:`materialise_partition` (module level, its task pickles), which reads that partition's
views with :func:`warehouse.compute.partitions.partition_reader` (the partition plus every row
within the margin threshold; spec-z groups are checked to fit, else nothing is materialised) and
writes the partition's file. Without one, this process runs one query of the whole view, streamed
in ``_healpix_29`` order and cut at the partitions' borders: the same files, byte for byte,
about twice as fast on one machine as a partition reader per partition. The driver then writes
the HATS metadata and the fingerprint (``mart.json``), renames the version into place and
commits it in ``warehouse.duckdb`` like a load.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse import db
from warehouse.compute.partitions import (
    PartitionPlan,
    partition_reader,
    plan_partitions,
    read_error,
)
from warehouse.errors import ComputeError, QueryError
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.marts.key import MART_FILE, MARTS, VIEW_COLUMNS, fingerprint
from warehouse.store import (
    Partition,
    TableSpec,
    write_collection,
    write_metadata_files,
    write_partition,
    write_properties,
)
from warehouse.store.contracts import CATALOG_LAYOUT
from warehouse.store.versions import partition_writer

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "MIN_ROWS",
    "MartPart",
    "MartResult",
    "MartTask",
    "materialise",
    "materialise_partition",
]

MIN_ROWS = 200_000
"""A load materialises the marts only when ``hsc_forced`` has at least this many rows: below,
the views answer in well under a second and a copy would only cost disk and load time.
``gwh materialise`` materialises at any size."""

VIEW = "ml_objects"
SPEC = TableSpec(
    VIEW,
    ("object_id",),
    description="ml_objects, materialised (warehouse.marts)",
    layout=CATALOG_LAYOUT,
)

Mapper = Callable[[Callable[[Any], Any], Iterable[Any]], Iterable[Any]]


@dataclass(frozen=True)
class MartTask:
    """One partition of a mart to write (pickles: paths are absolute, on the shared filesystem)."""

    plan: PartitionPlan
    partition: Partition
    dest: str  # the catalog folder being written
    view: str = VIEW


@dataclass(frozen=True)
class MartPart:
    partition: Partition
    nrows: int  # 0: no file written


@dataclass(frozen=True)
class MartResult:
    view: str
    version: int
    nrows: int
    partitions: int
    seconds: float

    def summary(self) -> str:
        return (
            f"{self.view}: materialised as version {self.version} ({self.nrows:,} rows in "
            f"{self.partitions} partitions, {self.seconds:.1f} s)"
        )


def _with_units(table: pa.Table, plan: PartitionPlan) -> pa.Table:
    """Each column's unit and description from the base table it comes from."""
    meta: dict[str, dict] = {
        name: {k.encode(): v.encode() for k, v in said.items()}
        for name, said in VIEW_COLUMNS.items()
    }
    for name in ("hsc_forced", "hsc_specz", "morphology"):
        cv = plan.versions.get(name)
        for f in cv.schema if cv is not None else ():
            if f.metadata and f.name not in meta:
                meta[f.name] = dict(f.metadata)
    fields = [f.with_metadata(meta[f.name]) if f.name in meta else f for f in table.schema]
    return table.cast(pa.schema(fields, metadata={b"gwh_view": VIEW.encode()}))


def materialise_partition(task: MartTask) -> MartPart:
    """Write the rows of ``task.view`` whose ``_healpix_29`` lies in ``task.partition`` to its
    file under ``task.dest`` (run on a worker; deterministic bytes)."""
    part = task.partition
    lo, hi = part.h29_range()
    col = db.quote_ident(SPATIAL_INDEX_COLUMN)
    try:
        with partition_reader(task.plan, part) as con:  # this thread's reader of the plan
            rows = con.sql(
                f"SELECT * FROM {db.quote_ident(task.view)} WHERE {col} >= ? AND {col} < ? "
                f"ORDER BY {col}, object_id",
                params=[lo, hi],
            ).to_arrow_table()
    except duckdb.Error as exc:
        raise read_error(exc, task.plan, part, f"{task.view} over partition") from None
    return _write(rows, task.plan, part, task.dest)


def _write(rows: pa.Table, plan: PartitionPlan, part: Partition, dest: str) -> MartPart:
    """One partition's file (none when it has no rows). One chunk per column, so the bytes do
    not depend on how the rows arrived."""
    if rows.num_rows:
        path = Path(dest) / part.relpath
        path.parent.mkdir(parents=True, exist_ok=True)
        write_partition(_with_units(rows, plan).combine_chunks(), path, SPEC.layout)
    return MartPart(part, rows.num_rows)


def _current(wh: Warehouse, view: str) -> tuple[str, db.BaseTable | None, bool, int]:
    """(fingerprint now, the committed mart or None, view available, spine rows)."""
    with wh.reading() as snapshot:
        tables = wh.reader_tables(snapshot)
        key = fingerprint(view, wh.config, tables, wh.models())
        mart = next((t for t in tables if t.name == view), None)
        with wh.connect() as con:
            row = con.execute("SELECT available FROM gwh_models WHERE name = ?", [view]).fetchone()
        spine = wh.current_version("hsc_forced")
    return key, mart, bool(row and row[0]), spine.nrows if spine is not None else 0


def materialise(
    wh: Warehouse,
    mapper: Mapper | None = None,
    *,
    force: bool = False,
    echo: Callable[[str], None] = lambda _m: None,
) -> MartResult | None:
    """Materialise ``ml_objects`` for the committed state, unless its copy is up to date.

    None when nothing was written: the copy is current, the view is unavailable (its tables
    were never loaded), ``hsc_forced`` is smaller than :data:`MIN_ROWS` (unless ``force``), or,
    per partition on a ``mapper(function, tasks)``, a spec-z group is wider than the margin (the
    view stays the SQL view, exact; said on ``echo``). No mapper: one query here.
    """
    started = time.perf_counter()
    with wh.writing():
        key, mart, available, spine_rows = _current(wh, VIEW)
        if not available or (mart is not None and mart.mart == key):
            return None
        if spine_rows < MIN_ROWS and not force:
            return None
        with wh.reading():
            try:
                # per partition (a mapper) spec-z groups must fit in the margin; one query: no need
                plan = plan_partitions(wh, check=mapper is not None)
            except ComputeError as exc:
                echo(f"{VIEW} not materialised (queries use the SQL view): {exc}")
                return None
            # the partitions compute the SQL view, never an older copy
            plan = dataclasses.replace(
                plan, tables=tuple(t for t in plan.tables if t.name not in MARTS)
            )
            version = wh._committed_registry().get(VIEW, (0, ""))[0] + 1
            inputs = {
                n: os.path.relpath(v.path, wh.root.resolve())
                for n, v in sorted(plan.versions.items())
                if n not in MARTS
            }
            table_dir = wh.catalogs_dir / VIEW
            table_dir.mkdir(parents=True, exist_ok=True)
            tmp = table_dir / f".tmp-{uuid.uuid4().hex}"
            try:
                parts = _run(mapper, plan, tmp / VIEW) if mapper else _run_here(plan, tmp / VIEW)
                if not any(p.nrows for p in parts):
                    shutil.rmtree(tmp, ignore_errors=True)
                    return None
                nrows = _finish(wh, tmp, parts, key, inputs)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        final = _commit(
            wh,
            tmp,
            version,
            nrows,
            len(pq.read_schema(tmp / VIEW / "dataset" / "_common_metadata")),
        )
    result = MartResult(
        VIEW, version, nrows, sum(1 for p in parts if p.nrows), time.perf_counter() - started
    )
    echo(result.summary() + f" at {final.relative_to(wh.root)}")
    return result


def _run(mapper: Mapper, plan: PartitionPlan, dest: Path) -> list[MartPart]:
    tasks = [MartTask(plan, p, str(dest)) for p in plan.partitions]
    return list(mapper(materialise_partition, tasks))


def _run_here(plan: PartitionPlan, dest: Path, view: str = VIEW) -> list[MartPart]:
    """Every partition from one query of the whole view, streamed in ``_healpix_29`` order and
    cut at the partitions' borders: the files :func:`materialise_partition` writes, byte for byte,
    with no partition reader per partition and no margin to re-read (about twice as fast here).
    Each file is written a row group at a time as its rows arrive (:class:`_Streamed`)."""
    order = sorted(plan.partitions, key=lambda p: p.h29_range()[0])
    starts = np.array([p.h29_range()[0] for p in order[1:]], dtype=np.int64)
    col = db.quote_ident(SPATIAL_INDEX_COLUMN)
    con = db.reader(list(plan.tables), plan.config, {}, plan.allowed, models=list(plan.models))
    done: dict[Partition, MartPart] = {}
    at = 0  # index in ``order`` of the partition being written
    current = _Streamed(plan, order[at], dest)
    try:
        batches = con.sql(
            f"SELECT * FROM {db.quote_ident(view)} ORDER BY {col}, object_id"
        ).to_arrow_reader(SPEC.layout.row_group_rows)
        for batch in batches:
            which = np.searchsorted(starts, batch.column(SPATIAL_INDEX_COLUMN).to_numpy(), "right")
            cuts = np.flatnonzero(np.diff(which)) + 1
            for lo, hi in zip([0, *cuts.tolist()], [*cuts.tolist(), batch.num_rows], strict=True):
                while at < which[lo]:
                    done[order[at]] = current.close()
                    at += 1
                    current = _Streamed(plan, order[at], dest)
                current.add(batch.slice(lo, hi - lo))
        while True:
            done[order[at]] = current.close()
            at += 1
            if at == len(order):
                break
            current = _Streamed(plan, order[at], dest)
    except duckdb.Error as exc:
        raise QueryError(f"{view}: {exc}") from None
    finally:
        current.abandon()
        con.close()
    return [done[p] for p in plan.partitions]


class _Streamed:
    """One partition's file written as its rows stream in, a row group at a time: the bytes
    :func:`_write` gives the whole partition (combined, then cut into row groups of the
    layout's size), holding one row group instead of the partition and its combined copy."""

    def __init__(self, plan: PartitionPlan, part: Partition, dest: Path):
        self.plan, self.part, self.path = plan, part, dest / part.relpath
        self.rows = 0
        self._pending: list[pa.RecordBatch] = []
        self._held = 0
        self._writer: pq.ParquetWriter | None = None

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._held += batch.num_rows
        step = SPEC.layout.row_group_rows
        while self._held >= step:
            rows = pa.Table.from_batches(self._pending)
            self._write(rows.slice(0, step))
            rest = rows.slice(step)
            self._pending, self._held = rest.to_batches(), rest.num_rows

    def _write(self, rows: pa.Table) -> None:
        group = _with_units(rows, self.plan).combine_chunks()
        if self._writer is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = partition_writer(self.path, group.schema, SPEC.layout)
        self._writer.write_table(group, row_group_size=SPEC.layout.row_group_rows)
        self.rows += group.num_rows

    def close(self) -> MartPart:
        if self._held:
            self._write(pa.Table.from_batches(self._pending))
            self._pending, self._held = [], 0
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return MartPart(self.part, self.rows)

    def abandon(self) -> None:
        """Close the file of a failed run (the caller removes the folder)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _finish(wh: Warehouse, tmp: Path, parts: list[MartPart], key: str, inputs: dict) -> int:
    """The HATS metadata, properties and ``mart.json`` of a written mart; its row count."""
    dest = tmp / VIEW
    written = [(p.partition, dest / p.partition.relpath) for p in parts if p.nrows]
    schema = pq.read_schema(written[0][1])
    write_metadata_files(dest, schema, written)
    nrows = sum(p.nrows for p in parts)
    write_properties(dest, SPEC, nrows, [p for p, _ in written], wh.config.max_rows_per_partition)
    write_collection(tmp, SPEC, VIEW, None)
    record = {"view": VIEW, "fingerprint": key, "inputs": inputs, "rows": nrows}
    (tmp / MART_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return nrows


def _commit(wh: Warehouse, tmp: Path, version: int, nrows: int, ncolumns: int) -> Path:
    """Rename the version into place and record it in ``warehouse.duckdb`` (the commit)."""
    final = tmp.parent / f"v{version:06d}"
    if final.exists():  # left by a run killed before it committed: no reader saw it
        shutil.rmtree(final)
    os.rename(tmp, final)
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)

    def record(con: duckdb.DuckDBPyConnection) -> None:
        con.execute(
            "INSERT OR REPLACE INTO gwh_tables VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                VIEW,
                version,
                final.relative_to(wh.root).as_posix(),
                nrows,
                ncolumns,
                SPEC.description,
                now,
            ],
        )

    try:
        wh._write_file(record)
    except BaseException:
        shutil.rmtree(final, ignore_errors=True)
        raise
    link = final.parent / "current"
    tmp_link = final.parent / f".current-{uuid.uuid4().hex}"
    os.symlink(final.name, tmp_link)
    os.replace(tmp_link, link)
    return final
