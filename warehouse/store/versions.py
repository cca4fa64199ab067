"""Tables on disk as HATS catalogs, written as immutable versions: the on-disk format.

Each table lives in ``catalogs/<name>/v<NNNNNN>/``, a HATS collection (``collection.properties``)
of the table's catalog ``<name>/`` (``hats.properties``, ``partition_info.csv``,
``dataset/_common_metadata``, ``dataset/_metadata`` and ``dataset/Norder=k/Dir=d/Npix=n.parquet``)
and its margin catalog ``<name>_<N>arcs/`` (:mod:`warehouse.store.margins`), so that
``lsdb.open_catalog(catalogs/<name>/current)`` opens the table with its margin. Versions written
before margins existed are a bare catalog; :func:`read_version` opens both.

A load never modifies a version: :func:`warehouse.store.merge.merge_version` builds the next one
in a temporary folder, which is renamed into place; only then does the DuckDB catalog point at
it. Partitions the load does not touch are hard links to the previous version's files, so a
version costs only what changed (and releases can keep old versions for free).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import __version__
from warehouse.damage import damaged_file
from warehouse.errors import DamagedFileError, LoadError
from warehouse.healpix import SPATIAL_INDEX_COLUMN, directory_of, pixel_range
from warehouse.store.layout import DEFAULT_LAYOUT, DEFAULT_ROW_GROUP_ROWS, ParquetLayout

ROW_GROUP_SIZE = DEFAULT_ROW_GROUP_ROWS
"""Rows per row group of a table whose contract (``TableSpec.layout``) names no other size."""


@dataclass(frozen=True)
class TableSpec:
    """What the store needs to know of a table: its key, its position columns and how its
    partition files are laid out (:class:`~warehouse.store.layout.ParquetLayout`)."""

    name: str
    key: tuple[str, ...] = ("object_id",)
    ra: str = "ra"
    dec: str = "dec"
    description: str = ""
    layout: ParquetLayout = DEFAULT_LAYOUT

    def __post_init__(self) -> None:
        if not self.key:
            raise ValueError(f"TableSpec {self.name}: key must name at least one column")


@dataclass(frozen=True)
class Partition:
    order: int
    pixel: int

    @property
    def relpath(self) -> str:
        return (
            f"dataset/Norder={self.order}/Dir={directory_of(self.pixel)}/Npix={self.pixel}.parquet"
        )

    def h29_range(self) -> tuple[int, int]:
        return pixel_range(self.order, self.pixel)


COLLECTION_PROPERTIES = "collection.properties"


@dataclass
class CatalogVersion:
    """A finished catalog version on disk: ``path`` is the table's catalog (inside the version's
    collection folder, ``collection``, when it has one), ``margin`` its margin catalog."""

    path: Path
    partitions: list[Partition]
    schema: pa.Schema
    nrows: int
    properties: dict[str, str] = field(default_factory=dict)
    collection: Path | None = None
    margin: Path | None = None

    @property
    def margin_threshold(self) -> float | None:
        """The margin's threshold in arcsec (None: no margin)."""
        if self.margin is None:
            return None
        return float(read_properties(self.margin / "hats.properties")["hats_margin_threshold"])

    def files(self) -> list[Path]:
        return [self.path / p.relpath for p in self.partitions]

    def margin_partitions(self) -> list[Partition]:
        """The partitions the margin catalog's ``partition_info.csv`` lists (none: no margin)."""
        if self.margin is None:
            return []
        try:
            return read_partition_info(self.margin)
        except OSError as exc:
            raise DamagedFileError(
                f"{self.margin}/partition_info.csv cannot be read ({exc.strerror}): a file of the "
                "warehouse was deleted outside gwh. Restore the warehouse folder from a backup."
            ) from None

    def margin_files(self) -> list[Path]:
        """The margin catalog's partition files."""
        return [self.margin / p.relpath for p in self.margin_partitions()] if self.margin else []

    def check_files(self, table: str) -> None:
        """Refuse a version whose partition or margin files are not all on disk: views read a
        glob and margin readers skip a partition without one, so a file deleted outside gwh would
        drop its rows from answers without a word."""
        for kind, base, parts in (
            ("partition", self.path, self.partitions),
            ("margin", self.margin, self.margin_partitions()),
        ):
            if base is None:
                continue
            wanted: dict[str, list[str]] = {}  # one listing per Dir= folder, not a stat per file
            for p in parts:
                folder, name = p.relpath.rsplit("/", 1)
                wanted.setdefault(folder, []).append(name)
            missing = []
            for folder, names in wanted.items():
                try:
                    present = set(os.listdir(base / folder))
                except OSError:
                    present = set()
                missing += [base / folder / n for n in names if n not in present]
            if missing:
                raise DamagedFileError(
                    f"{missing[0]} is missing ({len(missing)} of the {len(parts)} {kind} "
                    f"files of table {table}): a file of the warehouse was deleted outside gwh. "
                    "Restore the warehouse folder from a backup."
                )

    def check_whole(self, table: str) -> None:
        """:meth:`check_files`, then :meth:`check_footers` of every partition and margin file."""
        self.check_files(table)
        self.check_footers(table, self.files() + self.margin_files())

    def check_footers(self, table: str, files: list[Path]) -> None:
        """Refuse ``files`` (of this version) unless each begins and ends with the Parquet magic:
        a file cut short outside gwh loses its footer. Two small reads per file."""
        for f in files:
            try:
                with open(f, "rb") as fh:
                    head = fh.read(4)
                    fh.seek(-4, os.SEEK_END)
                    tail = fh.read(4)
            except FileNotFoundError:
                self.check_files(table)  # says which file is missing, and how many
                raise
            except OSError:
                head = tail = b""
            if head != b"PAR1" or tail != b"PAR1":
                raise DamagedFileError(
                    damaged_file(f, f"no Parquet footer; a file of table {table}")
                )

    @property
    def glob(self) -> str:
        return str(self.path / "dataset" / "Norder=*" / "Dir=*" / "*.parquet")


def compute_partitions(
    sorted_h29: np.ndarray, max_rows: int, max_order: int
) -> list[tuple[Partition, int]]:
    """Adaptive HEALPix partitioning of sorted ``_healpix_29`` values.

    A pixel holding more than ``max_rows`` rows is split into its four children (down to
    ``max_order``); empty pixels are dropped. The result depends only on the set of values,
    never on the order in which rows arrived.
    """
    out: list[tuple[Partition, int]] = []
    h = sorted_h29

    def visit(order: int, pixel: int, a: int, b: int) -> None:
        n = b - a
        if n == 0:
            return
        if n > max_rows and order < max_order:
            for child in range(4 * pixel, 4 * pixel + 4):
                lo, hi = pixel_range(order + 1, child)
                ca = int(np.searchsorted(h, lo, "left"))
                cb = int(np.searchsorted(h, hi, "left"))
                visit(order + 1, child, ca, cb)
        else:
            out.append((Partition(order, pixel), n))

    for base in range(12):
        lo, hi = pixel_range(0, base)
        visit(0, base, int(np.searchsorted(h, lo, "left")), int(np.searchsorted(h, hi, "left")))
    return out


def read_version(path: Path) -> CatalogVersion:
    """Open a catalog version: a collection folder (the table's catalog and its margin) or,
    as versions were written before margins, a bare catalog folder."""
    path = Path(path)
    collection = margin = None
    if (path / COLLECTION_PROPERTIES).is_file():
        collection = path
        cprops = read_properties(path / COLLECTION_PROPERTIES)
        path = collection / cprops["hats_primary_table_url"]
        if cprops.get("default_margin"):
            margin = collection / cprops["default_margin"]
    props = read_properties(path / "hats.properties")
    partitions = read_partition_info(path)
    schema = pq.read_schema(path / "dataset" / "_common_metadata")
    return CatalogVersion(
        path, partitions, schema, int(props["hats_nrows"]), props, collection, margin
    )


def read_partition_info(path: Path) -> list[Partition]:
    """The partitions a catalog folder's ``partition_info.csv`` lists."""
    partitions = []
    with open(path / "partition_info.csv", encoding="utf-8") as fh:
        header = fh.readline().strip()
        if header != "Norder,Npix":
            raise LoadError(
                f"{path}/partition_info.csv has header {header!r}, expected Norder,Npix"
            )
        for line in fh:
            if line.strip():
                order, pixel = line.strip().split(",")
                partitions.append(Partition(int(order), int(pixel)))
    return partitions


def read_properties(path: Path) -> dict[str, str]:
    props = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#") and "=" in line:
            k, v = line.split("=", 1)
            props[k.strip()] = v.strip()
    return props


def _unify_schema(old: pa.Schema | None, new: pa.Schema) -> pa.Schema:
    """Old columns in their order, then new ones; ``_healpix_29`` first."""
    fields = [pa.field(SPATIAL_INDEX_COLUMN, pa.int64())]
    seen = {SPATIAL_INDEX_COLUMN}
    for schema in (old, new):
        if schema is None:
            continue
        for f in schema:
            if f.name not in seen:
                fields.append(f)
                seen.add(f.name)
    return pa.schema(fields)


def first_not_boolean(col: pa.Array | pa.ChunkedArray) -> int | None:
    """Index of the first value of a numeric column that is neither 0 nor 1 (NULL passes; NaN
    does not): Arrow casts any nonzero number to true, so a flag of 2 or -1 would load as true."""
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)):
        return None
    ok = pc.fill_null(pc.or_(pc.equal(col, 0), pc.equal(col, 1)), True)
    bad = int(pc.index(ok, False).as_py())
    return None if bad < 0 else bad


def conform(table: pa.Table, schema: pa.Schema, source: str) -> pa.Table:
    """Cast ``table`` to ``schema``, adding absent columns as nulls."""
    arrays = []
    names = set(table.column_names)  # a new list per access: once, not once per column
    for f in schema:
        if f.name in names:
            col = table.column(f.name)
            if pa.types.is_boolean(f.type) and (bad := first_not_boolean(col)) is not None:
                raise LoadError(
                    f"{source}: column {f.name} holds {col[bad].as_py()!r}, but the table stores "
                    f"booleans (only 0 and 1 convert; the column is {col.type}). Fix the values."
                )
            if col.type != f.type:
                try:
                    col = col.cast(f.type)
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise LoadError(
                        f"{source}: column {f.name} has type {col.type} but the table stores "
                        f"{f.type}, and the values do not convert ({exc}). Fix the column's values."
                    ) from None
            arrays.append(col)
        else:
            arrays.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def key_values(table: pa.Table, key: tuple[str, ...]) -> pa.Array:
    """One comparable value per row for a (possibly composite) key."""
    if len(key) == 1:
        return table.column(key[0]).combine_chunks()
    parts = [pc.cast(table.column(k), pa.string()) for k in key]
    # one array, as for a single key: a list of chunked arrays (the runs of a spill) would be
    # concatenated value by value (1.3 s for 2 M spec-z keys)
    return pc.binary_join_element_wise(*parts, "\x1f").combine_chunks()


def sort_order(table: pa.Table, key: tuple[str, ...]) -> np.ndarray:
    """Row order by ``_healpix_29`` then key: the order of rows in every partition file."""
    h29 = table.column(SPATIAL_INDEX_COLUMN).to_numpy()
    if len(key) == 1 and pa.types.is_integer(table.schema.field(key[0]).type):
        k = table.column(key[0]).to_numpy(zero_copy_only=False)
        return np.lexsort((k, h29))
    sort_keys = [(SPATIAL_INDEX_COLUMN, "ascending")] + [(k, "ascending") for k in key]
    return pc.sort_indices(table, sort_keys=sort_keys).to_numpy()


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (versions share unchanged files), else a copy (e.g. across file systems)."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def partition_writer(
    path: Path, schema: pa.Schema, layout: ParquetLayout = DEFAULT_LAYOUT
) -> _BufferedWriter:
    """A partition file's writer: the table's ``layout`` (compression, data pages, page index),
    statistics on, dictionary encoding for strings only (write row groups of
    ``layout.row_group_rows`` rows).

    Dictionary encoding of float columns costs about 3x in write speed and gains nothing on
    measured photometry, whose values rarely repeat.
    """
    dict_cols = [
        f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)
    ]
    return _BufferedWriter(
        path,
        schema,
        compression=layout.compression_of(schema),
        use_dictionary=dict_cols or False,
        write_statistics=True,
        data_page_size=layout.page_bytes,
        write_page_index=layout.page_index,
    )


class _BufferedWriter(pq.ParquetWriter):
    """A ParquetWriter writing through a 1 MiB buffer: the same bytes in about one system call
    per MiB, where the file written directly takes two per page (a 1.89 M-row spec-z load made
    14,000 writes and 9,000 seeks for its 32 KiB pages)."""

    def __init__(self, path: Path, schema: pa.Schema, **options: Any):
        self._sink = pa.output_stream(str(path), buffer_size=1 << 20)
        try:
            super().__init__(self._sink, schema, **options)
        except BaseException:
            self._sink.close()
            raise

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.is_open = False  # a close that failed (disk full) is not retried when collected
            self._sink.close()

    def abandon(self, pending: Future | None = None) -> None:
        """Close after a failure without raising a second error (the file goes with the
        uncommitted version), once ``pending``, a write queued in a thread, has ended."""
        if pending is not None:
            wait([pending])
        with contextlib.suppress(Exception):
            self.close()


def write_partition(table: pa.Table, path: Path, layout: ParquetLayout = DEFAULT_LAYOUT) -> None:
    """One partition file (see :func:`partition_writer`)."""
    with partition_writer(path, table.schema, layout) as writer:
        writer.write_table(table, row_group_size=layout.row_group_rows)


def write_metadata_files(
    dest: Path, schema: pa.Schema, files: list[tuple[Partition, Path]]
) -> None:
    dataset = dest / "dataset"
    dataset.mkdir(parents=True, exist_ok=True)
    pq.write_metadata(schema, dataset / "_common_metadata")
    collected = None
    for part, path in files:
        md = pq.read_metadata(path)
        md.set_file_path(part.relpath[len("dataset/") :])
        if collected is None:
            collected = md
        else:
            collected.append_row_groups(md)
    if collected is None:
        pq.write_metadata(schema, dataset / "_metadata")
    else:
        collected.write_metadata_file(str(dataset / "_metadata"))
    with open(dest / "partition_info.csv", "w", encoding="utf-8") as fh:
        fh.write("Norder,Npix\n")
        for part, _ in files:
            fh.write(f"{part.order},{part.pixel}\n")


def write_properties(
    dest: Path,
    spec: TableSpec,
    nrows: int,
    partitions: list[Partition],
    max_rows: int,
    *,
    name: str | None = None,
    extra: dict[str, str] | None = None,
) -> None:
    """``hats.properties`` of a catalog (``name`` and ``extra`` keys: e.g. a margin's)."""
    size_kb = sum((dest / p.relpath).stat().st_size for p in partitions) // 1024
    sky = sum(1.0 / (12 * 4**p.order) for p in partitions)
    now = dt.datetime.now(dt.UTC)
    props = {
        "obs_collection": name or spec.name,
        "dataproduct_type": "object",
        "hats_nrows": str(nrows),
        "hats_col_ra": spec.ra,
        "hats_col_dec": spec.dec,
        "hats_col_healpix": SPATIAL_INDEX_COLUMN,
        "hats_col_healpix_order": "29",
        "hats_npix_suffix": ".parquet",
        "hats_order": str(max((p.order for p in partitions), default=0)),
        "hats_max_rows": str(max_rows),
        "hats_builder": f"galaxy-warehouse v{__version__}",
        "hats_creation_date": now.strftime("%Y-%m-%dT%H:%MUTC"),
        "hats_estsize": str(size_kb),
        "hats_release_date": now.strftime("%Y-%m-%d"),
        "hats_version": "v1.0",
        "moc_sky_fraction": f"{sky:.5f}",
    }
    props.update(extra or {})
    if spec.description:
        props["obs_title"] = spec.description
    _write_properties_file(dest / "hats.properties", props)


def write_collection(dest: Path, spec: TableSpec, primary: str, margin: str | None) -> None:
    """``collection.properties``: the table's catalog ``primary`` and its default ``margin``
    (folder names inside ``dest``), as lsdb.open_catalog reads a collection."""
    props = {"obs_collection": spec.name, "hats_primary_table_url": primary}
    if margin is not None:
        props["all_margins"] = margin
        props["default_margin"] = margin
    _write_properties_file(dest / COLLECTION_PROPERTIES, props)


TIME_PROPERTIES = ("hats_creation_date", "hats_release_date")
"""The ``hats.properties`` keys that record when a version was written, not what it holds."""


def without_time_properties(data: bytes) -> bytes:
    """``hats.properties`` bytes without the :data:`TIME_PROPERTIES` lines: two writes of the
    same rows compare equal whatever minute (or day) each was made in."""
    keys = tuple(k.encode() + b"=" for k in TIME_PROPERTIES)
    return b"".join(line for line in data.splitlines(keepends=True) if not line.startswith(keys))


def _write_properties_file(path: Path, props: dict[str, str]) -> None:
    text = "".join(f"{k}={v}\n" for k, v in props.items())
    path.write_text(text, encoding="utf-8")
