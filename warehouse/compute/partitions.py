"""The partition reader: the ``sql/`` views of one HEALPix partition, for one Dask worker.

A *spine* table (``hsc_forced``: one row of ``ml_objects`` per row of it) fixes the partitions.
For spine partition P a worker opens a private read-only DuckDB database whose base-table views
read only what P needs, then the same ``sql/`` views over them (:func:`warehouse.db.reader`):

* a table whose partition Q holds P (Q at P's order or coarser): Q's file plus Q's margin file,
  the HATS margin catalog's rows within the threshold of Q, hence of P;
* a table partitioned more finely than P there (or without a margin): its files that overlap P
  or the ring of margin-order pixels around P that the store's margins are built from
  (:func:`warehouse.store.margins.candidate_pixels`).

Either way every row within the margin threshold of P is read, and no row twice. The worker
keeps the rows whose spine ``_healpix_29`` lies in P (:func:`partition_rows`).

A worker thread builds the views once per plan (:func:`partition_reader`): for each further
partition only the base-table views are pointed at that partition's files (the ``sql/`` views
above them are bound when queried), which halves the cost of a small partition.

Exactness. A view row of an object in P is exact when every row it depends on is read. The
deduplication (``sql/intermediate/deduplicated.sql``) ranks the candidates sharing a
``specz_name``, and ranks each object's spec-z entries, so an object's row depends on every
member of every spec-z group it belongs to: their photometry and their spec-z rows. Hence
:func:`check_groups`: every group must fit within the margin threshold (all its photometric and
spec-z positions within the threshold of each other), or the plan is refused with a clear
error, since an incorrect result at a partition edge is worse than an error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa

from warehouse import db
from warehouse.compute.mapping import map_in_order
from warehouse.config import Config
from warehouse.damage import explain_damage
from warehouse.errors import ComputeError, DamagedFileError, QueryError, one_line
from warehouse.healpix import SPATIAL_INDEX_COLUMN, shift
from warehouse.store import CatalogVersion, Partition
from warehouse.store.margins import candidate_pixels, margin_order, ring_count

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "PartitionPlan",
    "check_groups",
    "open_partition",
    "partition_files",
    "partition_reader",
    "partition_rows",
    "plan_partitions",
    "view_rows",
]

SPINE = "hsc_forced"
WORKER_THREADS = 1
"""DuckDB threads of a partition reader: a Dask worker runs one task per thread it has
(``local:N`` gives each one thread), so the cluster's parallelism is its workers'."""

# Every spec-z group the deduplication forms (candidates sharing a specz_name), with its width:
# the largest distance between any two of its photometric and spec-z positions.
_GROUP_WIDTH_SQL = """
WITH members AS (
    SELECT quality_passed.specz_name, hsc_forced.ra, hsc_forced.dec,
        hsc_specz.specz_ra, hsc_specz.specz_dec
    FROM quality_passed
    INNER JOIN hsc_specz
        ON quality_passed.object_id = hsc_specz.object_id
        AND quality_passed.specz_name = hsc_specz.specz_name
    INNER JOIN hsc_forced ON quality_passed.object_id = hsc_forced.object_id
),
points AS (
    SELECT specz_name, ra, dec FROM members
    UNION ALL
    SELECT specz_name, specz_ra, specz_dec FROM members
)
SELECT a.specz_name, max(angular_distance_arcsec(a.ra, a.dec, b.ra, b.dec)) AS width
FROM points AS a INNER JOIN points AS b ON a.specz_name = b.specz_name
GROUP BY a.specz_name
HAVING max(angular_distance_arcsec(a.ra, a.dec, b.ra, b.dec)) > ?
ORDER BY width DESC, a.specz_name
LIMIT 1
"""


@dataclass(frozen=True)
class PartitionPlan:
    """One committed state, split by the spine's partitions: everything a worker needs to open
    any partition's views (it pickles; paths are absolute, on the shared filesystem)."""

    config: Config
    tables: tuple[db.BaseTable, ...]
    versions: dict[str, CatalogVersion]
    models: tuple[db.Model, ...]
    allowed: tuple[Path, ...]
    partitions: tuple[Partition, ...]
    threshold_arcsec: float
    spine: str = SPINE
    # Names this plan in a worker's reader cache (:func:`partition_reader`): pickled copies keep
    # it, a new or replaced plan gets a new one.
    token: str = dataclasses.field(
        default_factory=lambda: uuid.uuid4().hex, init=False, compare=False
    )


def _threshold(versions: dict[str, CatalogVersion], config: Config) -> float:
    found = [t for t in (cv.margin_threshold for cv in versions.values()) if t is not None]
    return min(found) if found else float(config.margin_arcsec)


def plan_partitions(wh: Warehouse, spine: str = SPINE, check: bool = True) -> PartitionPlan:
    """The partition plan of ``wh``'s committed state (call it inside ``wh.reading()`` so the
    workers read the versions it names until the caller is done).

    ``check``: refuse (:class:`ComputeError`) a state whose spec-z groups are wider than the
    margin threshold (:func:`check_groups`).

    A materialised view (a table named like a view, :mod:`warehouse.marts`) is left out: the
    partitions compute every view from ``sql/`` over the base tables, exact at their edges.
    """
    models = tuple(wh.models())
    views = {m.name for m in models if m.kind == "view"}
    with wh.reading() as snapshot:
        versions = {name: wh.current_version(name) for name in snapshot.registry}
        present = {k: v for k, v in versions.items() if v is not None and k not in views}
        for name, cv in present.items():  # only partition readers read margins: checked here
            cv.check_footers(name, cv.margin_files())
        if spine not in present:
            raise ComputeError(
                f"{spine} has not been loaded, so there are no partitions to split the work by. "
                "Load it first (gwh load hsc-forced FILE)."
            )
        plan = PartitionPlan(
            config=wh.config,
            tables=tuple(t for t in wh.reader_tables(snapshot) if t.name not in views),
            versions=present,
            models=models,
            allowed=tuple(Path(p).resolve() for p in wh.allowed_directories()),
            partitions=tuple(present[spine].partitions),
            threshold_arcsec=_threshold(present, wh.config),
            spine=spine,
        )
        if check:
            with wh.connect() as con:
                check_groups(con, plan.threshold_arcsec)
    return plan


def check_groups(con: duckdb.DuckDBPyConnection, threshold_arcsec: float) -> None:
    """Raise :class:`ComputeError` if a spec-z group is wider than ``threshold_arcsec``."""
    available = dict(
        con.execute("SELECT name, available FROM gwh_models WHERE name = 'deduplicated'").fetchall()
    )
    if not available.get("deduplicated"):
        return  # no deduplication to get wrong (its inputs were never loaded)
    try:
        row = con.execute(_GROUP_WIDTH_SQL, [threshold_arcsec]).fetchone()
    except duckdb.Error as exc:
        raise QueryError(f"checking spec-z group widths failed: {exc}") from None
    if row is not None:
        name, width = row
        raise ComputeError(
            f"spec-z group {name!r} spans {width:.2f} arcsec, wider than the {threshold_arcsec:g} "
            "arcsec margin, so a partition could not see all of it and the deduplication would "
            "differ at partition edges. Raise [partitioning] margin_arcsec in warehouse.toml and "
            "reload, or run without --dask."
        )


def _ranges(order: int, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    s = np.int64(shift(order))
    return pixels.astype(np.int64) << s, (pixels.astype(np.int64) + 1) << s


def _overlapping(parts: list[Partition], lo: np.ndarray, hi: np.ndarray) -> list[Partition]:
    """The partitions overlapping any of the sorted, disjoint ranges [lo, hi)."""
    out = []
    for q in parts:
        qlo, qhi = q.h29_range()
        i = int(np.searchsorted(lo, qhi, "left"))  # ranges starting before qhi
        if i > 0 and hi[i - 1] > qlo:
            out.append(q)
    return out


def partition_files(cv: CatalogVersion, part: Partition, threshold_arcsec: float) -> list[Path]:
    """The files of table version ``cv`` that hold every row within ``threshold_arcsec`` of
    spine partition ``part`` (and more), each row once; see the module doc."""
    plo, phi = part.h29_range()
    inside = _overlapping(cv.partitions, np.array([plo]), np.array([phi]))
    holder = [q for q in inside if q.order <= part.order]
    threshold = cv.margin_threshold
    if holder and cv.margin is not None and threshold is not None and threshold >= threshold_arcsec:
        q = holder[0]
        files = [cv.path / q.relpath]
        margin_file = cv.margin / q.relpath
        if margin_file.exists():  # a partition with no neighbours near its edge has none
            files.append(margin_file)
        return files
    order = margin_order(threshold_arcsec)
    ring = candidate_pixels(part, order, ring_count(order, threshold_arcsec))
    lo, hi = _ranges(order, ring)
    lo, hi = np.append(lo, plo), np.append(hi, phi)
    keep = np.argsort(lo)
    lo, hi = lo[keep], hi[keep]
    # Merge overlaps (P itself lies inside the ring's range when P is finer than the order).
    mlo, mhi = [int(lo[0])], [int(hi[0])]
    for a, b in zip(lo[1:].tolist(), hi[1:].tolist(), strict=True):
        if a <= mhi[-1]:
            mhi[-1] = max(mhi[-1], b)
        else:
            mlo.append(a)
            mhi.append(b)
    near = _overlapping(cv.partitions, np.array(mlo), np.array(mhi))
    return [cv.path / q.relpath for q in near]


def _partition_tables(plan: PartitionPlan, part: Partition) -> list[db.BaseTable]:
    out = []
    for t in plan.tables:
        cv = plan.versions.get(t.name)
        if t.glob is None or cv is None or not cv.partitions:
            out.append(t)
            continue
        files = partition_files(cv, part, plan.threshold_arcsec)
        if not files:  # nothing near P: one file, for the view's columns (rows never in P)
            files = [cv.path / cv.partitions[0].relpath]
        out.append(dataclasses.replace(t, files=tuple(str(f) for f in files)))
    return out


def open_partition(plan: PartitionPlan, part: Partition) -> duckdb.DuckDBPyConnection:
    """A private, read-only DuckDB connection holding every view over ``part``'s files (the
    caller closes it). Rows of views outside ``part`` may be incomplete: filter them
    (:func:`partition_rows`)."""
    return db.reader(
        _partition_tables(plan, part),
        plan.config,
        {},
        plan.allowed,
        models=list(plan.models),
        settings={"threads": WORKER_THREADS},
    )


_CACHE = threading.local()  # per worker thread: (plan token, connection, files of each view)


def _base_view(t: db.BaseTable) -> str:
    """The statement :func:`warehouse.db.build` creates a loaded table's view with."""
    exclude = f" EXCLUDE ({', '.join(db.quote_ident(c) for c in t.hidden)})" if t.hidden else ""
    return (
        f"CREATE OR REPLACE VIEW {db.quote_ident(t.name)} AS "
        f"SELECT *{exclude} FROM {db.parquet_source(t.files)}"
    )


@contextlib.contextmanager
def partition_reader(plan: PartitionPlan, part: Partition) -> Iterator[duckdb.DuckDBPyConnection]:
    """What :func:`open_partition` gives, reusing this thread's reader of the same plan: its
    base-table views are pointed at ``part``'s files, the other views stay (do not close it).

    A thread keeps the reader of one plan (the previous plan's is closed when another comes);
    a failed query drops it, so the next partition starts from a fresh one.
    """
    tables = _partition_tables(plan, part)
    models = {m.name for m in plan.models}
    pointed = {t.name: t.files for t in tables if t.files and t.name not in models}
    cached = getattr(_CACHE, "reader", None)
    if cached is not None and cached[0] != plan.token:
        cached[1].close()
        cached = _CACHE.reader = None
    if cached is None:
        con = db.reader(
            tables,
            plan.config,
            {},
            plan.allowed,
            models=list(plan.models),
            settings={"threads": WORKER_THREADS},
        )
        cached = _CACHE.reader = (plan.token, con, dict(pointed))
    token, con, current = cached
    try:
        for t in tables:
            if t.name in pointed and current.get(t.name) != t.files:
                con.execute(_base_view(t))
                current[t.name] = t.files
        yield con
    except BaseException:
        _CACHE.reader = None
        con.close()
        raise


def partition_rows(plan: PartitionPlan, view: str, part: Partition) -> pa.Table:
    """The rows of ``view`` whose spine ``_healpix_29`` lies in ``part`` (run on a worker)."""
    lo, hi = part.h29_range()
    col = db.quote_ident(SPATIAL_INDEX_COLUMN)
    try:
        with partition_reader(plan, part) as con:
            return con.sql(
                f"SELECT * FROM {db.quote_ident(view)} WHERE {col} >= ? AND {col} < ?",
                params=[lo, hi],
            ).to_arrow_table()
    except duckdb.Error as exc:
        raise read_error(exc, plan, part, f"{view} over partition") from None


def read_error(exc: Exception, plan: PartitionPlan, part: Partition, what: str) -> Exception:
    """What a failed read of ``part``'s views raises: the damaged file named (DuckDB's error
    may name none: then the partition's files are looked at), else a :class:`QueryError`."""
    damaged = explain_damage(exc, (t.files for t in _partition_tables(plan, part)))
    if damaged is not None:
        return DamagedFileError(damaged)
    return QueryError(f"{what} {part.order}/{part.pixel}: {one_line(exc)}")


def view_rows(plan: PartitionPlan, view: str, client: Any) -> Iterator[tuple[Partition, pa.Table]]:
    """(partition, rows of ``view`` in it) for every spine partition, in partition order, computed
    on ``client``'s workers (None: in this process)."""
    rows = map_in_order(client, functools.partial(partition_rows, plan, view), plan.partitions)
    yield from zip(plan.partitions, rows, strict=True)
