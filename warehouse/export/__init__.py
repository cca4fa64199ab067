"""``gwh export``: ML-ready HDF5 files in the GalaxiesML layout, streamed partition by partition.

Layout of one file (every dataset has N rows; row i of each describes the galaxy of image i)::

    image          (N, B, S, S) float32  pixels as stored (flux units kept, never rescaled);
                                         a centred crop or zero padding reaches S x S
    mask           (N, B, S, S) int32    HSC mask bits; padding and missing bands: NO_DATA (bit 8)
    variance       (N, B, S, S) float32  padding: inf (no information); missing bands: NaN
    <column>       (N,)                  every column of the query, under its own name; a
                                         nullable integer (exact in float64) or boolean
                                         column is float64 with NaN for NULL
    <column>_isnull (N,) bool            for integer, boolean and string columns holding NULLs
                                         anywhere in the unsplit query (so every split of one
                                         query has the same datasets and types)
    fit_action     (N,) string           none, cropped, padded or cropped+padded
    zeropoint      (N, B) float64        AB zeropoint per band; NaN when unknown or missing
    image_simulated (N,) bool            the pixels are synthetic
    missing_<b>    (N,) bool             with --allow-missing-bands: band b has no cutout (NaN)

File attributes: ``gwh_version``, ``sql`` (the full SQL text that chose the rows) and
``sql_params``, ``split``, ``image_table``, ``bands``, ``size``, ``pixel_scale``, ``row_count``,
``row_order``, ``data`` (real, simulated or mixed), ``release``, ``data_release``, ``rerun``,
``split_fractions``, ``split_salt``, ``split_mode``, ``citation``, ``acknowledgement``,
``export_sha256``, ``image_units`` (calibrated flux only where the zeropoints are known) and
notes on padding (:mod:`warehouse.export.attrs`). Each query column's dataset has the ``unit`` and
``description`` the warehouse knows (:func:`warehouse.output.column_metadata`). Rows are
ordered by ``_healpix_29`` then ``object_id``. Images are chunked one object per chunk;
compression (lzf or gzip + shuffle) is optional and off by default (it does not pay on noisy
float images).

Images of any survey: ``images`` names the image table (default ``cutouts``, the HSC cutouts;
also ``kids_cutouts`` u,g,r,i 36x36, ``sdss_cutouts``, ``hst_cutouts``), any registered table
with per-band ``{b}_image`` columns (:mod:`loaders.image_table`). Its bands are the ones it holds
(``--bands`` chooses some, in the order given; for ``cutouts`` the configured bands), its pixel
scale is the ``pixel_scale`` attribute, and a plane (mask, variance) the table does not hold is
left out. Rows are placed by the image table's ``_healpix_29`` (for ``cutouts``, rows without a
cutout by ``hsc_forced``; for the other tables, by the query's own ``_healpix_29`` if it has one).

Labels: a query column named like an integer label column of a loaded table (``spectype_label``
of ``kids_cutouts``: GALAXY=0, QSO=1, STAR=2; ``gz2_label`` of ``galaxy_zoo``) carries that
table's mapping: the file attribute ``label_mapping/<column>`` (JSON) and, on the column's
dataset, the attributes ``label_mapping``, ``label_table`` and ``label_names_column``. A value
outside the mapping stops the export (the column is then not that label: rename it).

The same query on the same warehouse writes the same bytes: no timestamps (``track_times``
off, HDF5 1.8 file format pinned), no wall-clock values, a fixed row order.

Memory is bounded by one partition of the ``cutouts`` table, never by N: catalog rows stream from
DuckDB in order, and when they leave a cutouts partition its band columns are read with pyarrow,
one plane (image, variance, mask) at a time, and written to pre-sized HDF5 datasets. The file is
built in a hidden folder beside the target, named with this host and PID, and renamed at the end;
an exception or Ctrl-C removes it, and after a kill the next export removes it
(:func:`clean_stale_temporaries`). ``export_all_splits`` resumes: it keeps the split files the
same export already finished (same ``export_sha256``).

Examples
--------
>>> export_hdf5(wh, "train.h5", split="train")  # doctest: +SKIP
>>> export_all_splits(wh, "dataset/", options=ExportOptions(size=64))  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse import __version__, db, progress
from warehouse.config import SPLIT_NAMES
from warehouse.core import Warehouse, explain_error
from warehouse.cutouts import CUTOUTS, band_column, combine_fit_actions
from warehouse.errors import ExportError, QueryError
from warehouse.export.attrs import (
    OWN_DATASETS,
    export_digest,
    image_units,
    provenance,
    stored_digest,
)
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.images.fit import fit_to_size
from warehouse.images.masks import HSC_MASK_BITS
from warehouse.output import column_metadata
from warehouse.readonly import check_read_only
from warehouse.scratch import remove_stale, scratch_dir
from warehouse.store import CatalogVersion
from warehouse.store.contracts import BaseTableDef, base_tables

COMPRESSIONS = ("lzf", "gzip")
NO_DATA = np.int32(1 << HSC_MASK_BITS["NO_DATA"])
ROW_ORDER = "_healpix_29, object_id"
CATALOG_BATCH_ROWS = 2048  # catalog rows per streamed batch
WRITE_BLOCK_ROWS = 64  # images assembled per HDF5 write
DUCKDB_MEMORY_LIMIT = "1GB"  # the catalog sort spills to disk beyond this
_PREFIX = "__gwh_"
EXACT_IN_FLOAT64 = 2**53  # integers up to this magnitude are exact in a float64
_TMP_MARK = ".gwh-tmp-"
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# plane -> (dtype, value of a missing band, value of padding)
PLANES: dict[str, tuple[type, float | int, float | int]] = {
    "image": (np.float32, np.nan, 0.0),
    "variance": (np.float32, np.nan, np.inf),
    "mask": (np.int32, int(NO_DATA), int(NO_DATA)),
}


@dataclass(frozen=True)
class ExportOptions:
    """How images are written. Validated on creation; messages name the option."""

    size: int = 127
    bands: tuple[str, ...] | None = None  # None: the configured bands, in their order
    allow_missing_bands: bool = False
    mask: bool = True
    variance: bool = True
    compression: str | None = None
    overwrite: bool = False
    images: str = "cutouts"  # the image table: cutouts, kids_cutouts, sdss_cutouts, ...

    def __post_init__(self) -> None:
        if not isinstance(self.images, str) or not _TABLE_NAME.match(self.images):
            raise ExportError(
                f"--images must name an image table such as cutouts or kids_cutouts, "
                f"got {self.images!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 1 <= self.size:
            raise ExportError(f"--size must be a positive number of pixels, got {self.size!r}")
        if self.size > 4096:
            raise ExportError(f"--size {self.size} is larger than 4096 pixels; choose 127 or 64.")
        if self.compression not in (None, *COMPRESSIONS):
            raise ExportError(
                f"--compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}"
            )
        if self.bands is not None:
            if not self.bands:
                raise ExportError("--bands must name at least one band")
            if len(set(self.bands)) != len(self.bands):
                raise ExportError(f"--bands names a band twice: {','.join(self.bands)}")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    split: str | None
    bands: tuple[str, ...]
    size: int
    data: str
    bytes: int
    seconds: float
    fit_actions: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    kept: bool = False  # an earlier, complete file of the same export was kept (resume)


def parse_bands(text: str, configured: Sequence[str], table: str | None = None) -> tuple[str, ...]:
    """``"grizy"``, ``"g,r,i"`` or ``"f160w"`` -> bands, each one of ``configured`` (the
    configured bands, or those the image table ``table`` holds), in the order given.

    >>> parse_bands("irg", "grizy")
    ('i', 'r', 'g')
    >>> parse_bands("f160w,f814w", ["f814w", "f160w"], table="hst_cutouts")
    ('f160w', 'f814w')
    """
    text = text.strip()
    bands = (
        tuple(b.strip() for b in text.split(",")) if "," in text else _split_bands(text, configured)
    )
    unknown = [b for b in bands if b not in configured]
    if unknown or not bands:
        if table is None or table == CUTOUTS.name:
            raise ExportError(
                f"--bands {text!r}: {', '.join(unknown) or 'nothing'} is not a configured band; "
                f"the warehouse has {', '.join(configured)} (warehouse.toml)."
            )
        raise ExportError(
            f"--bands {text!r}: {', '.join(unknown) or 'nothing'} is not a band of {table}; "
            f"it holds {', '.join(configured)}."
        )
    return bands


def _split_bands(text: str, known: Sequence[str]) -> tuple[str, ...]:
    """Band names written together (``"ugri"``): longest known name first; characters no known
    name starts with are kept together, as one unknown name."""
    names = sorted((b for b in known if b), key=len, reverse=True)
    out: list[str] = []
    unknown = ""
    i = 0
    while i < len(text):
        match = next((n for n in names if text.startswith(n, i)), None)
        if match is None:
            unknown += text[i]
            i += 1
            continue
        if unknown:
            out.append(unknown)
            unknown = ""
        out.append(match)
        i += len(match)
    if unknown:
        out.append(unknown)
    return tuple(out)


# --------------------------------------------------------------------------- image tables


def image_tables() -> dict[str, BaseTableDef]:
    """Every registered table that holds pixels (``{b}_image`` columns), by name."""
    return {n: d for n, d in base_tables().items() if "_image" in d.hidden_suffixes}


def _image_table(wh: Warehouse, images: str) -> CatalogVersion:
    """The current version of the image table ``images``; a clear error when there is none."""
    tables = image_tables()
    if images not in tables:
        what = "is a table without images" if images in base_tables() else "is not a table"
        raise ExportError(
            f"--images {images!r} {what}; choose an image table: {', '.join(tables)}."
        )
    if tuple(tables[images].spec.key) != ("object_id",):  # pragma: no cover - all are keyed so
        raise ExportError(f"{images} is not keyed by object_id, so it cannot be joined.")
    cv = wh.current_version(images)
    if cv is None:
        if images == CUTOUTS.name:
            raise ExportError(
                "no cutouts have been ingested yet: an export needs images. Run "
                "`gwh cutouts request` and `gwh cutouts ingest FILE...` first."
            )
        raise ExportError(
            f"{images} has not been loaded yet: an export needs images. {tables[images].load_hint}"
        )
    return cv


def _bands_of(schema: pa.Schema) -> tuple[str, ...]:
    """The bands whose pixels a table holds, in its column order."""
    names = set(schema.names)
    suffix = band_column("", "image")
    return tuple(
        n[: -len(suffix)]
        for n in schema.names
        if n.endswith(suffix) and n != suffix and band_column(n[: -len(suffix)], "height") in names
    )


def available_bands(wh: Warehouse, images: str = "cutouts") -> tuple[str, ...]:
    """The bands ``--bands`` may name: the configured bands for ``cutouts`` (missing ones can be
    allowed), else those the image table holds, in its order."""
    if images == CUTOUTS.name:
        return tuple(wh.config.bands)
    return _bands_of(_image_table(wh, images).schema)


@dataclass(frozen=True)
class _Label:
    table: str
    mapping: dict[str, int]
    names_column: str | None


def label_columns(wh: Warehouse) -> dict[str, list[_Label]]:
    """Integer label columns of the loaded tables (fields with a ``label_mapping``), by name:
    every table holding one, in registration order."""
    found: dict[str, list[_Label]] = {}
    for name in base_tables():
        cv = wh.current_version(name)
        if cv is None:
            continue
        for f in cv.schema:
            meta = f.metadata or {}
            if b"label_mapping" not in meta:
                continue
            mapping = json.loads(meta[b"label_mapping"])
            partner = meta.get(b"label_names_column", b"").decode() or None
            found.setdefault(f.name, []).append(_Label(name, mapping, partner))
    return found


def _label_of(column: str, labels: list[_Label], images: str) -> _Label:
    """The label a query column named ``column`` is: the image table's when it holds one, else
    the first table's. Tables that disagree on the mapping are an error: no guessing."""
    if any(lb.mapping != labels[0].mapping for lb in labels):
        tables = ", ".join(f"{lb.table} ({json.dumps(lb.mapping)})" for lb in labels)
        raise ExportError(
            f"label column {column} has different mappings in {tables}, so the export cannot "
            f"tell which one its values follow; select it under another name (... AS "
            f"{column}_value) to export it without a mapping."
        )
    return next((lb for lb in labels if lb.table == images), labels[0])


# --------------------------------------------------------------------------- queries


def base_query(view: str | None, sql: str | None, split: str | None) -> tuple[str, list]:
    """The SQL that chooses the rows, and its parameters."""
    if sql is not None and view is not None:
        raise ExportError("give --view or --sql, not both")
    if sql is not None:
        text = sql.strip().rstrip(";").strip()
        if not text:
            raise ExportError("--sql is empty; give a SELECT returning object_id.")
        text = check_read_only(text)  # the same guard as every read path
    else:
        text = f"SELECT * FROM {db.quote_ident(view or 'ml_objects')}"
    if split is None:
        return text, []
    if split not in SPLIT_NAMES:
        raise ExportError(f"--split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    if sql is None:
        return f"{text} WHERE split = ?", [split]
    return f"SELECT * FROM (\n{text}\n) AS q WHERE split = ?", [split]


def _keyed_sql(
    base: str,
    cutout_columns: set[str],
    bands: Sequence[str],
    images: str = "cutouts",
    query_h29: bool = False,
) -> str:
    """The rows with their order key and the cutout metadata the export needs.

    The key is the image row's ``_healpix_29`` (what places it in a partition); rows without an
    image take ``hsc_forced``'s (``cutouts``) or the query's own (other image tables).
    """
    extra = []
    for b in bands:
        for what, typ in (
            ("height", "INTEGER"),
            ("width", "INTEGER"),
            ("zeropoint", "DOUBLE"),
            ("pixel_scale", "DOUBLE"),
            ("variance_present", "BOOLEAN"),
            ("mask_present", "BOOLEAN"),
        ):
            name = band_column(b, what)
            value = f"c.{db.quote_ident(name)}" if name in cutout_columns else f"NULL::{typ}"
            extra.append(f"{value} AS {db.quote_ident(_PREFIX + name)}")
    rerun = "c.rerun::VARCHAR" if "rerun" in cutout_columns else "NULL::VARCHAR"
    extra.append(f"{rerun} AS {_PREFIX}rerun")
    if images == CUTOUTS.name:
        return (
            f"WITH q AS (\n{base}\n)\n"
            f"SELECT q.*, coalesce(c.{SPATIAL_INDEX_COLUMN}, f.{SPATIAL_INDEX_COLUMN})"
            f" AS {_PREFIX}h29,"
            f" c.object_id IS NOT NULL AS {_PREFIX}has_cutout,"
            f" coalesce(c.simulated, false) AS {_PREFIX}simulated, "
            + ", ".join(extra)
            + " FROM q LEFT JOIN cutouts AS c ON q.object_id = c.object_id"
            f" LEFT JOIN (SELECT object_id, {SPATIAL_INDEX_COLUMN} FROM hsc_forced) AS f"
            " ON q.object_id = f.object_id"
        )
    h29 = f"c.{SPATIAL_INDEX_COLUMN}"
    if query_h29:
        h29 = f"coalesce({h29}, q.{SPATIAL_INDEX_COLUMN})"
    simulated = "coalesce(c.simulated, false)" if "simulated" in cutout_columns else "false"
    return (
        f"WITH q AS (\n{base}\n)\n"
        f"SELECT q.*, {h29} AS {_PREFIX}h29,"
        f" c.object_id IS NOT NULL AS {_PREFIX}has_cutout,"
        f" {simulated} AS {_PREFIX}simulated, "
        + ", ".join(extra)
        + f" FROM q LEFT JOIN {db.quote_ident(images)} AS c ON q.object_id = c.object_id"
    )


@dataclass
class _Column:
    """One query column as an HDF5 dataset.

    ``nullable``: the column holds a NULL somewhere in the unsplit query, so every split of one
    export has a ``<name>_isnull`` dataset. ``as_float``: a nullable integer (values exact in
    float64) or boolean column written as float64 with NaN for NULL, because HDF5 and the readers
    of it (HF ``datasets``, pandas via h5py) have no NULL integer or boolean.
    """

    name: str
    kind: str  # int, float, bool, string
    dtype: object  # numpy dtype or h5py string dtype
    nullable: bool = False
    as_float: bool = False
    sql_type: str = ""

    def null_note(self) -> str:
        """What a NULL of this column is in the file (its dataset's ``null`` attribute)."""
        if self.kind == "float":
            return "NaN"
        if not self.nullable:
            return "none in this export's query"
        if self.as_float:
            return (
                f"NaN (the {self.sql_type} values are stored as float64, exactly); "
                f"see {self.name}_isnull"
            )
        fill = '""' if self.kind == "string" else ("false" if self.kind == "bool" else "0")
        return f"{fill} (not a value: the row is NULL where {self.name}_isnull is true)"


def _columns_of(schema: pa.Schema) -> list[_Column]:
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_boolean(t):
            out.append(_Column(f.name, "bool", np.dtype(bool), sql_type="BOOLEAN"))
        elif pa.types.is_integer(t):
            out.append(_Column(f.name, "int", np.dtype(t.to_pandas_dtype()), sql_type=str(t)))
        elif pa.types.is_floating(t):
            out.append(_Column(f.name, "float", np.dtype(t.to_pandas_dtype())))
        elif pa.types.is_decimal(t) and t.scale == 0:  # HUGEINT, DECIMAL(p, 0): integers
            out.append(_Column(f.name, "int", np.dtype(np.int64), sql_type=str(t)))
        elif pa.types.is_decimal(t):  # the nearest float64, as any reader of it would get
            out.append(_Column(f.name, "float", np.dtype(np.float64)))
        elif (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or pa.types.is_temporal(t)
            or pa.types.is_dictionary(t)
        ):
            out.append(_Column(f.name, "string", h5py.string_dtype("utf-8")))
        else:
            raise ExportError(
                f"column {f.name} has type {t}, which has no 1-D HDF5 form; select scalar "
                "columns (numbers, booleans, text) or cast it in --sql."
            )
    return out


def _values(col: pa.ChunkedArray | pa.Array, c: _Column) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch of one column as HDF5-ready values, and its null mask when it has NULLs."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    nulls = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else None
    if c.kind == "string":
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = pc.cast(arr, pa.string())
        values = np.array(["" if v is None else v for v in arr.to_pylist()], dtype=object)
    elif c.as_float:  # NULL -> NaN; every value exact (checked when planned)
        values = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
    elif c.kind == "bool":
        filled = arr if nulls is None else arr.fill_null(False)
        values = filled.to_numpy(zero_copy_only=False)
    elif c.kind == "int":
        if pa.types.is_decimal(arr.type):  # in int64 range: checked when planned
            arr = pc.cast(arr, pa.int64())
        filled = arr if nulls is None else arr.fill_null(0)
        values = filled.to_numpy(zero_copy_only=False).astype(c.dtype, copy=False)
    else:
        if pa.types.is_decimal(arr.type):
            arr = pc.cast(arr, pa.float64())
        values = arr.to_numpy(zero_copy_only=False).astype(c.dtype, copy=False)  # NULL -> NaN
    return values, nulls


# --------------------------------------------------------------------------- planning


@dataclass
class _Plan:
    base: str
    params: list
    keyed: str
    columns: list[_Column]
    bands: tuple[str, ...]
    rows: int
    data: str
    pixel_scale: float
    missing: dict[str, int]
    images: str = "cutouts"
    planes: tuple[str, ...] = ("image", "mask", "variance")
    labels: dict[str, _Label] = field(default_factory=dict)
    column_info: dict[str, dict[str, str]] = field(default_factory=dict)  # unit, description
    units: dict[str, str] = field(default_factory=dict)  # band -> unit of the image table
    zeropoints: tuple[int, int, float | None, float | None] = (0, 0, None, None)
    reruns: tuple[str, ...] = ()


def _planes(images: str, cutout_columns: set[str], bands: Sequence[str], opts) -> tuple[str, ...]:
    """The planes written: image, and mask/variance unless left out by the options or, for
    tables other than ``cutouts``, held by none of the chosen bands (KiDS, SDSS, HST)."""
    out = ["image"]
    for plane in ("variance", "mask"):
        if not getattr(opts, plane):
            continue
        if images == CUTOUTS.name or any(band_column(b, plane) in cutout_columns for b in bands):
            out.append(plane)
    return tuple(p for p in PLANES if p in out)


def _plan(
    con,
    base: str,
    params: list,
    cutout_columns: set[str],
    bands: tuple[str, ...],
    opts,
    labels: dict[str, list[_Label]] | None = None,
    full: tuple[str, list] | None = None,
) -> _Plan:
    """Check the query and plan the file. ``full`` is the query without the split filter:
    which columns are nullable, and how, is decided on it, so all splits of one query have the
    same datasets with the same types."""
    images = opts.images
    planes = _planes(images, cutout_columns, bands, opts)
    try:
        schema = con.sql(f"SELECT * FROM (\n{base}\n) AS q LIMIT 0", params=params or None)
        schema = schema.to_arrow_table().schema
    except Exception as exc:
        raise ExportError(_explain(exc, con, base)) from None
    if "object_id" not in schema.names or not pa.types.is_integer(schema.field("object_id").type):
        key_of = "the cutouts" if images == CUTOUTS.name else images
        raise ExportError(
            f"the query must return an integer object_id column (the key of {key_of}); "
            f"it returns {', '.join(schema.names[:12])}{', ...' if len(schema) > 12 else ''}."
        )
    columns = _columns_of(schema)
    reserved = {"image", "mask", "variance", "fit_action", "zeropoint", "image_simulated"}
    reserved |= {f"missing_{b}" for b in bands}
    clash = [c.name for c in columns if c.name in reserved or c.name.startswith(_PREFIX)]
    if clash:
        raise ExportError(
            f"column(s) {', '.join(clash)} of the query would overwrite the export's own "
            "dataset(s) of that name; rename them in --sql (e.g. SELECT image AS image_name)."
        )
    keyed = _keyed_sql(
        base, cutout_columns, bands, images, query_h29=SPATIAL_INDEX_COLUMN in schema.names
    )
    known = labels or {}
    found_labels = {
        c.name: _label_of(c.name, known[c.name], images)
        for c in columns
        if c.kind == "int" and c.name in known
    }
    _nullability(con, columns, *(full or (base, params)))
    aggregates = [
        "count(*)",
        "count(DISTINCT object_id)",
        "count(*) FILTER (WHERE object_id IS NULL)",
        f"count(*) FILTER (WHERE {_PREFIX}h29 IS NULL)",
        f"count(*) FILTER (WHERE {_PREFIX}has_cutout AND {_PREFIX}simulated)",
        f"count(*) FILTER (WHERE {_PREFIX}has_cutout AND NOT {_PREFIX}simulated)",
    ]
    for b in bands:
        h = db.quote_ident(_PREFIX + band_column(b, "height"))
        aggregates += [
            f"count(*) FILTER (WHERE {h} IS NULL)",
            f"count(*) FILTER (WHERE {h} IS NOT NULL AND NOT "
            f"{db.quote_ident(_PREFIX + band_column(b, 'variance_present'))})",
            f"count(*) FILTER (WHERE {h} IS NOT NULL AND NOT "
            f"{db.quote_ident(_PREFIX + band_column(b, 'mask_present'))})",
            f"min({db.quote_ident(_PREFIX + band_column(b, 'pixel_scale'))})",
            f"max({db.quote_ident(_PREFIX + band_column(b, 'pixel_scale'))})",
        ]
    zps = [db.quote_ident(_PREFIX + band_column(b, "zeropoint")) for b in bands]
    heights = [db.quote_ident(_PREFIX + band_column(b, "height")) for b in bands]
    aggregates += [  # images, images with a known zeropoint, and the range of those zeropoints
        " + ".join(f"count({h})" for h in heights) or "0",
        " + ".join(f"count(*) FILTER (WHERE {z} IS NOT NULL AND NOT isnan({z}))" for z in zps)
        or "0",
        "least(" + ", ".join(f"min({z}) FILTER (WHERE NOT isnan({z}))" for z in zps) + ")"
        if zps
        else "NULL",
        "greatest(" + ", ".join(f"max({z}) FILTER (WHERE NOT isnan({z}))" for z in zps) + ")"
        if zps
        else "NULL",
        f"list_sort(list_distinct(list({_PREFIX}rerun)))",
    ]
    stats = _one(con, f"WITH k AS ({keyed}) SELECT {', '.join(aggregates)} FROM k", params, base)
    n, n_distinct, n_null_id, n_unplaced, n_sim, n_real = stats[:6]
    per_band = stats[6 : 6 + 5 * len(bands)]
    n_images, n_zp, zp_lo, zp_hi, reruns = stats[6 + 5 * len(bands) :]
    if n == 0:
        raise ExportError(
            "the query returns no rows: nothing to export. Check the split and the query "
            '(gwh sql "select split, count(*) from ml_objects group by 1").'
        )
    if n_null_id:
        raise ExportError(f"{n_null_id} row(s) of the query have a NULL object_id.")
    if n_distinct != n:
        dups = _examples(con, keyed, params, "GROUP BY object_id HAVING count(*) > 1", base)
        raise ExportError(
            f"the query returns {n - n_distinct} duplicated object_id row(s) (e.g. {dups}); an "
            "export holds one row per galaxy: deduplicate it (ml_objects already is)."
        )
    if n_unplaced:
        ex = _examples(con, keyed, params, f"WHERE {_PREFIX}h29 IS NULL", base)
        if images == CUTOUTS.name:
            raise ExportError(
                f"{n_unplaced} object(s) of the query are neither in hsc_forced nor in cutouts "
                f"(e.g. {ex}), so they have no sky position to order them by and no images."
            )
        raise ExportError(
            f"{n_unplaced} object(s) of the query are not in {images} and the query gives them "
            f"no {SPATIAL_INDEX_COLUMN} (e.g. {ex}), so they have no sky position to order them "
            f"by and no images. Select objects of {images} (e.g. WHERE object_id IN (SELECT "
            f"object_id FROM {images}))."
        )
    missing, problems = {}, []
    scales: list[float] = []
    for k, b in enumerate(bands):
        n_missing, n_novar, n_nomask, lo, hi = per_band[5 * k : 5 * k + 5]
        missing[b] = int(n_missing)
        if lo is not None:
            scales += [lo, hi]
        cond = db.quote_ident(_PREFIX + band_column(b, "height"))
        if n_missing and not opts.allow_missing_bands:
            ex = _examples(con, keyed, params, f"WHERE {cond} IS NULL", base)
            problems.append(f"band {b}: {n_missing} object(s) have no cutout (e.g. {ex})")
        if n_novar and "variance" in planes:
            ex = _examples(
                con,
                keyed,
                params,
                f"WHERE {cond} IS NOT NULL AND NOT "
                f"{db.quote_ident(_PREFIX + band_column(b, 'variance_present'))}",
                base,
            )
            problems.append(
                f"band {b}: {n_novar} cutout(s) have no VARIANCE plane (e.g. {ex}); pass "
                "--no-variance, or request the cutouts with variance"
            )
        if n_nomask and "mask" in planes:
            ex = _examples(
                con,
                keyed,
                params,
                f"WHERE {cond} IS NOT NULL AND NOT "
                f"{db.quote_ident(_PREFIX + band_column(b, 'mask_present'))}",
                base,
            )
            problems.append(
                f"band {b}: {n_nomask} cutout(s) have no MASK plane (e.g. {ex}); pass --no-mask, "
                "or request the cutouts with mask"
            )
    if problems:
        load = (
            "Ingest the missing cutouts (gwh cutouts request, then gwh cutouts ingest)"
            if images == CUTOUTS.name
            else f"Load the missing images into {images}"
        )
        hint = (
            f" {load}, or pass --allow-missing-bands to write NaN images and missing_<band> flags."
            if any("no cutout" in p for p in problems)
            else ""
        )
        raise ExportError("cannot export:\n  " + "\n  ".join(problems) + "\n" + hint.strip())
    pixel_scale = float("nan")
    if scales:
        lo, hi = min(scales), max(scales)
        if hi - lo > 1e-6 * hi:
            raise ExportError(
                f"the cutouts have different pixel scales ({lo:.6f} to {hi:.6f} arcsec/px); "
                "an export needs one. Select objects of one survey with --sql."
            )
        pixel_scale = round(lo, 6)
    data = {(True, False): "simulated", (False, True): "real", (True, True): "mixed"}.get(
        (bool(n_sim), bool(n_real)), "none"
    )
    return _Plan(
        base,
        params,
        keyed,
        columns,
        bands,
        int(n),
        data,
        pixel_scale,
        missing,
        images=images,
        planes=planes,
        labels=found_labels,
        zeropoints=(int(n_images), int(n_zp), zp_lo, zp_hi),
        reruns=tuple(r for r in reruns or () if r),
    )


def _nullability(con, columns: list[_Column], full: str, params: list) -> None:
    """Mark the integer, boolean and string columns that hold a NULL anywhere in the unsplit
    query ``full``; a nullable boolean, or integer whose values are all exact in float64, is
    written as float64 with NaN (HF ``datasets`` then reads a NULL as NaN, never a number)."""
    checked = [c for c in columns if c.kind in ("int", "bool", "string")]
    if not checked:
        return
    aggregates = []
    for c in checked:
        q = db.quote_ident(c.name)
        aggregates.append(f"count(*) - count({q})")
        if c.kind == "int":
            aggregates += [f"min({q})::HUGEINT", f"max({q})::HUGEINT"]
    stats = _one(con, f"SELECT {', '.join(aggregates)} FROM (\n{full}\n) AS q", params, full)
    k = 0
    for c in checked:
        c.nullable = bool(stats[k])
        k += 1
        if c.kind == "int":
            lo, hi = stats[k], stats[k + 1]
            k += 2
            if lo is not None and (lo < -(2**63) or hi > 2**63 - 1):
                raise ExportError(
                    f"column {c.name} ({c.sql_type}) holds {lo if lo < -(2**63) else hi}, "
                    "beyond 64-bit integers, which HDF5 readers cannot hold exactly; cast it in "
                    f"--sql (e.g. {c.name}::VARCHAR AS {c.name}_text, or ::DOUBLE if "
                    "approximate is fine)."
                )
            exact = lo is None or (-EXACT_IN_FLOAT64 <= lo and hi <= EXACT_IN_FLOAT64)
            c.as_float = c.nullable and exact
        elif c.kind == "bool":
            c.as_float = c.nullable
        if c.as_float:
            c.dtype = np.dtype(np.float64)


def _one(con, sql: str, params: list, base: str) -> tuple:
    try:
        return con.execute(sql, params or None).fetchall()[0]  # fetch all: DuckDB 2.0
    except Exception as exc:
        raise ExportError(_explain(exc, con, base)) from None


def _examples(con, keyed: str, params: list, tail: str, base: str, limit: int = 5) -> str:
    """Up to ``limit`` object_ids of the rows ``tail`` (a WHERE or GROUP BY clause) selects."""
    sql = f"WITH k AS ({keyed}) SELECT object_id FROM k {tail} ORDER BY object_id LIMIT {limit + 1}"
    try:
        ids = [r[0] for r in con.execute(sql, params or None).fetchall()]
    except Exception as exc:  # pragma: no cover - the same query just ran
        raise ExportError(_explain(exc, con, base)) from None
    return ", ".join(str(i) for i in ids[:limit]) + (", ..." if len(ids) > limit else "")


def _explain(exc: Exception, con, sql: str) -> str:
    import duckdb

    if isinstance(exc, duckdb.Error):
        return explain_error(exc, con, sql)
    return str(exc)  # pragma: no cover


# --------------------------------------------------------------------------- writing


@functools.lru_cache(maxsize=4096)
def _placement(h: int, w: int, size: int) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(source, destination) slices doing what :func:`fit_to_size` does to an (h, w) plane: input
    index j lands on j + offset, the offset fit_to_size reports."""
    dy, dx = fit_to_size(np.zeros((h, w), np.int8), size).offset
    src, dst = [], []
    for n, off in ((h, dy), (w, dx)):
        lo, hi = max(0, -off), min(n, size - off)
        src.append(slice(lo, hi))
        dst.append(slice(lo + off, hi + off))
    return (src[0], src[1]), (dst[0], dst[1])


@functools.lru_cache(maxsize=4096)
def _fit_action(shapes: tuple[tuple[int, int], ...], size: int) -> str:
    return combine_fit_actions([fit_to_size(np.zeros(s, np.int8), size).action for s in shapes])


class _Writer:
    """Streams one export into an open h5py File."""

    def __init__(self, h5, plan: _Plan, cv, opts: ExportOptions, progress) -> None:
        self.h5, self.plan, self.opts, self.progress = h5, plan, opts, progress
        self.size = opts.size
        self.planes = list(plan.planes)
        n, nb, s = plan.rows, len(plan.bands), opts.size
        strings = h5py.string_dtype("utf-8")
        comp: dict = {}
        if opts.compression == "gzip":
            comp = {"compression": "gzip", "compression_opts": 4, "shuffle": True}
        elif opts.compression == "lzf":
            comp = {"compression": "lzf", "shuffle": True}
        self.images = {}
        for plane in self.planes:
            dtype, missing_value, _pad = PLANES[plane]
            self.images[plane] = h5.create_dataset(
                plane,
                shape=(n, nb, s, s),
                dtype=dtype,
                chunks=(1, nb, s, s),
                fillvalue=missing_value,  # rows with no cutout at all are never written
                track_times=False,
                **comp,
            )
        self.datasets = {}
        for c in plan.columns:
            self.datasets[c.name] = h5.create_dataset(
                c.name, shape=(n,), dtype=c.dtype, track_times=False
            )
            info = plan.column_info.get(c.name, {})
            for key in ("description", "unit"):
                if info.get(key):
                    self.datasets[c.name].attrs[key] = info[key]
            if c.nullable or c.kind == "float":
                self.datasets[c.name].attrs["null"] = c.null_note()
            if c.as_float:
                self.datasets[c.name].attrs["sql_type"] = c.sql_type
            label = plan.labels.get(c.name)
            if label is not None:
                dset = self.datasets[c.name]
                dset.attrs["label_mapping"] = json.dumps(label.mapping)
                dset.attrs["label_table"] = label.table
                if label.names_column:
                    dset.attrs["label_names_column"] = label.names_column
            if c.nullable:
                self.datasets[c.name + "_isnull"] = h5.create_dataset(
                    c.name + "_isnull", shape=(n,), dtype=bool, track_times=False
                )
                self.datasets[c.name + "_isnull"].attrs["description"] = (
                    f"true where {c.name} is NULL"
                )
        self.fit = h5.create_dataset("fit_action", shape=(n,), dtype=strings, track_times=False)
        self.zp = h5.create_dataset("zeropoint", shape=(n, nb), dtype="f8", track_times=False)
        for name, text in OWN_DATASETS.items():
            if name in h5:
                h5[name].attrs["description"] = text
        self.zp.attrs["unit"] = "mag"
        self.sim = h5.create_dataset("image_simulated", shape=(n,), dtype=bool, track_times=False)
        self.sim.attrs["description"] = OWN_DATASETS["image_simulated"]
        self.missing = {}
        if opts.allow_missing_bands:
            for b in plan.bands:
                self.missing[b] = h5.create_dataset(
                    f"missing_{b}", shape=(n,), dtype=bool, track_times=False
                )
                self.missing[b].attrs["description"] = f"true where band {b} has no image (NaN)"
        self.fit_counts: dict[str, int] = {}
        self.buffers: dict[str, np.ndarray] = {}
        bounds = sorted((p.h29_range(), p) for p in cv.partitions)
        self.part_lo = np.array([r[0] for r, _ in bounds], dtype=np.int64)
        self.part_hi = np.array([r[1] for r, _ in bounds], dtype=np.int64)
        self.part_paths = [cv.path / p.relpath for _, p in bounds]

    # -- catalog rows

    def write_batch(self, batch: pa.RecordBatch, start: int) -> None:
        n = batch.num_rows
        stop = start + n
        for c in self.plan.columns:
            values, nulls = _values(batch.column(c.name), c)
            if c.name in self.plan.labels:
                _check_labels(c.name, values, nulls, self.plan.labels[c.name])
            self.datasets[c.name][start:stop] = values
            if c.nullable:
                self.datasets[c.name + "_isnull"][start:stop] = (
                    np.zeros(n, bool) if nulls is None else nulls
                )
        bands = self.plan.bands
        cols = [
            (
                batch.column(_PREFIX + band_column(b, "height")),
                batch.column(_PREFIX + band_column(b, "width")),
            )
            for b in bands
        ]
        heights = [h.fill_null(0).to_numpy(zero_copy_only=False) for h, _ in cols]
        widths = [w.fill_null(0).to_numpy(zero_copy_only=False) for _, w in cols]
        valid = [h.is_valid().to_numpy(zero_copy_only=False) for h, _ in cols]
        actions = []
        for i in range(n):
            shapes = tuple(
                (int(h[i]), int(w[i]))
                for h, w, v in zip(heights, widths, valid, strict=True)
                if v[i]
            )
            action = _fit_action(shapes, self.size) if shapes else "missing"
            self.fit_counts[action] = self.fit_counts.get(action, 0) + 1
            actions.append(action)
        self.fit[start:stop] = np.array(actions, dtype=object)
        zp = np.full((n, len(bands)), np.nan)
        for k, b in enumerate(bands):
            col = batch.column(_PREFIX + band_column(b, "zeropoint"))
            zp[:, k] = col.to_numpy(zero_copy_only=False).astype(np.float64)
        self.zp[start:stop] = zp
        self.sim[start:stop] = batch.column(_PREFIX + "simulated").to_numpy(zero_copy_only=False)
        for b, dset in self.missing.items():
            col = batch.column(_PREFIX + band_column(b, "height"))
            dset[start:stop] = col.is_null().to_numpy(zero_copy_only=False)

    def _buffer(self, plane: str, dtype) -> np.ndarray:
        """One reused block per plane: fresh 20 MB arrays would cost a page fault per 4 KB."""
        if plane not in self.buffers:
            shape = (WRITE_BLOCK_ROWS, len(self.plan.bands), self.size, self.size)
            self.buffers[plane] = np.empty(shape, dtype)
        return self.buffers[plane]

    def partition_of(self, h29: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.part_lo, h29, side="right") - 1
        inside = (k >= 0) & (h29 < self.part_hi[np.clip(k, 0, None)])
        return np.where(inside, k, -1)

    # -- images of one cutouts partition

    def write_partition(self, k: int, rows: np.ndarray, ids: np.ndarray) -> None:
        path = self.part_paths[k]
        # Memory-mapped: the pixel bytes are read straight from the page cache (~3x faster).
        pf = pq.ParquetFile(path, memory_map=True, pre_buffer=False)
        names = set(pf.schema_arrow.names)
        bands = self.plan.bands
        shape_cols = [
            band_column(b, w)
            for b in bands
            for w in ("height", "width")
            if band_column(b, w) in names
        ]
        meta = pf.read(columns=["object_id", *shape_cols])
        stored = meta.column("object_id").to_numpy()
        sorter = np.argsort(stored, kind="stable")
        at = np.searchsorted(stored, ids, sorter=sorter)
        pos = sorter[np.clip(at, 0, len(stored) - 1)]
        if len(stored) == 0 or not np.array_equal(stored[pos], ids):  # pragma: no cover
            raise ExportError(f"{path}: does not hold the cutouts the catalog says it does")
        shapes = {}
        for b in bands:
            if band_column(b, "height") in names:
                h = meta.column(band_column(b, "height")).take(pa.array(pos))
                w = meta.column(band_column(b, "width")).take(pa.array(pos))
                shapes[b] = (
                    h.to_numpy(zero_copy_only=False),
                    w.to_numpy(zero_copy_only=False),
                    h.is_valid().to_numpy(zero_copy_only=False),
                )
        del meta
        for plane in self.planes:
            dtype, missing_value, pad = PLANES[plane]
            cols = [band_column(b, plane) for b in bands if band_column(b, plane) in names]
            if not cols:  # no band of this plane here: the fill value stands
                continue
            table = pf.read(columns=cols)  # all rows; those exported are picked by pos, uncopied
            views = {}
            view = "<i4" if plane == "mask" else "<f4"
            for b in bands:
                name = band_column(b, plane)
                if name in names:
                    views[b] = _binary_view(table.column(name).combine_chunks())
            full = all(
                b in views
                and views[b][2][pos].all()
                and (shapes[b][0] == self.size).all()
                and (shapes[b][1] == self.size).all()
                for b in bands
            )
            buffer = self._buffer(plane, dtype)
            for a, b_ in _runs(rows, WRITE_BLOCK_ROWS):
                block = buffer[: b_ - a]
                if not full:  # else every pixel is written below
                    block.fill(missing_value)
                for j in range(a, b_):
                    for bi, b in enumerate(bands):
                        if b not in views or b not in shapes or not shapes[b][2][j]:
                            continue
                        offsets, data, valid = views[b]
                        k = pos[j]  # the row in the partition file
                        if not valid[k]:
                            continue
                        h, w = int(shapes[b][0][j]), int(shapes[b][1][j])
                        px = data[offsets[k] : offsets[k + 1]].view(view).reshape(h, w)
                        src, dst = _placement(h, w, self.size)
                        out = block[j - a, bi]
                        if dst != (slice(0, self.size), slice(0, self.size)):
                            out[...] = pad
                        out[dst] = px[src]  # = fit_to_size(px, size, fill=pad), no temporaries
                self.images[plane][rows[a] : rows[a] + (b_ - a)] = block
            del table, views


def _check_labels(name: str, values: np.ndarray, nulls, label: _Label) -> None:
    known = np.array(sorted(label.mapping.values()), dtype=np.int64)
    if nulls is not None:  # a NULL stored as NaN is no label value, and no value to check
        values = np.where(nulls, known[0], values)
    bad = ~np.isin(values.astype(np.int64), known)
    if nulls is not None:
        bad &= ~nulls
    if bad.any():
        value = int(values[np.flatnonzero(bad)[0]])
        raise ExportError(
            f"column {name} holds {value}, which is not in the label mapping of "
            f"{label.table}.{name} ({json.dumps(label.mapping)}), so it is not that label; "
            f"rename it in --sql (e.g. ... AS {name}_value)."
        )


def _binary_view(arr: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Offsets, bytes and validity of a binary array, without copying the bytes."""
    if not pa.types.is_binary(arr.type):
        arr = arr.cast(pa.binary())
    validity, offsets, data = arr.buffers()
    off = np.frombuffer(offsets, dtype=np.int32)[arr.offset : arr.offset + len(arr) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.zeros(0, np.uint8)
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    del validity
    return off, raw, valid


def _runs(rows: np.ndarray, block: int) -> Iterator[tuple[int, int]]:
    """[a, b) index ranges of ``rows`` that are consecutive integers, at most ``block`` long."""
    if rows.size == 0:
        return
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    starts = np.concatenate([[0], breaks])
    stops = np.concatenate([breaks, [rows.size]])
    for s, e in zip(starts.tolist(), stops.tolist(), strict=True):
        for a in range(s, e, block):
            yield a, min(a + block, e)


def _progress(total: int, desc: str, enabled: bool | None):
    return progress.bar(total, desc=desc, unit="galaxy", progress=enabled)


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
) -> ExportResult:
    """Write the rows of ``view`` (default ``ml_objects``) or of ``sql``, restricted to
    ``split`` when given, with their cutouts, to the HDF5 file ``out``.

    With ``resume``, an existing ``out`` written by the same export (its ``export_sha256``
    attribute matches) is kept and reported with ``kept=True``; one that does not match still
    needs ``overwrite``.

    Raises
    ------
    ExportError
        The target exists (pass ``overwrite``), the query is invalid or returns no, duplicated or
        unplaced objects, a band is missing (pass ``allow_missing_bands``), a requested mask or
        variance plane is absent, or pixel scales differ. Nothing is written then.
    """
    started = time.perf_counter()
    opts = options or ExportOptions()
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out} is a folder; give a file name such as {out / 'train.h5'}.")
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
    base, params = base_query(view if sql is None else None, sql, split)
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
        labels = label_columns(wh)
        with (
            _temporary_beside(out) as tmp,
            wh.connect(
                settings={
                    "memory_limit": DUCKDB_MEMORY_LIMIT,
                    "enable_progress_bar": False,  # ours is on stderr when a terminal
                    "temp_directory": str(tmp / "duckdb"),
                }
            ) as con,
        ):
            digest = export_digest(wh, base, params, bands, dataclasses.asdict(opts))
            if out.exists() and not opts.overwrite:
                if stored_digest(out) == digest:
                    return _kept(out, split, bands, opts, started)
                raise ExportError(
                    f"{out} already exists and was written by a different export (another "
                    "query, options, gwh version or warehouse state). Use --overwrite to "
                    "replace it."
                )
            full = base_query(view if sql is None else None, sql, None)
            plan = _plan(con, base, params, set(cv.schema.names), bands, opts, labels, full)
            plan.column_info = column_metadata(wh)
            extra = provenance(wh, plan.images, plan.base, plan.reruns)
            extra["export_sha256"] = digest
            for b in bands:
                name = band_column(b, "image")
                if name in cv.schema.names:
                    meta = cv.schema.field(name).metadata or {}
                    plan.units[b] = meta.get(b"unit", b"").decode()
            target = tmp / out.name
            bar = _progress(plan.rows, out.name, progress)
            try:
                fit_counts = _write(con, target, plan, cv, opts, split, bar, extra)
            finally:
                bar.close()
            os.replace(target, out)
    return ExportResult(
        path=out,
        rows=plan.rows,
        split=split,
        bands=bands,
        size=opts.size,
        data=plan.data,
        bytes=out.stat().st_size,
        seconds=time.perf_counter() - started,
        fit_actions=fit_counts,
        missing={b: n for b, n in plan.missing.items() if n},
    )


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


def _write(
    con, target: Path, plan: _Plan, cv, opts: ExportOptions, split, bar, extra: dict
) -> dict:
    # HDF5 1.8 format pinned (readable by any HDF5 >= 1.8, stable bytes); no object timestamps.
    with h5py.File(target, "w", libver=("v108", "v108"), track_order=False) as h5:
        writer = _Writer(h5, plan, cv, opts, bar)
        stream = con.sql(
            f"SELECT * FROM ({plan.keyed}) AS k ORDER BY {_PREFIX}h29, object_id",
            params=plan.params or None,
        ).to_arrow_reader(CATALOG_BATCH_ROWS)
        start = 0
        current = -1
        pending_rows: list[np.ndarray] = []
        pending_ids: list[np.ndarray] = []

        def flush() -> None:
            if current >= 0 and pending_rows:
                writer.write_partition(
                    current, np.concatenate(pending_rows), np.concatenate(pending_ids)
                )
            pending_rows.clear()
            pending_ids.clear()

        for batch in stream:
            n = batch.num_rows
            if n == 0:
                continue
            writer.write_batch(batch, start)
            has = batch.column(_PREFIX + "has_cutout").to_numpy(zero_copy_only=False)
            h29 = batch.column(_PREFIX + "h29").to_numpy(zero_copy_only=False)
            ids = batch.column("object_id").to_numpy(zero_copy_only=False)
            part = writer.partition_of(h29.astype(np.int64))
            rows = np.arange(start, start + n)
            sel = np.flatnonzero(has)
            for k in np.unique(part[sel]).tolist():
                if k < 0:  # pragma: no cover - a cutout row always sits in a partition
                    raise ExportError("a cutout lies outside every partition of its table")
                if k != current:
                    flush()
                    current = k
                in_k = sel[part[sel] == k]
                pending_rows.append(rows[in_k])
                pending_ids.append(ids[in_k])
            start += n
            bar.update(n)
        flush()
        if start != plan.rows:
            raise ExportError(
                f"the query returned {start} rows while writing but {plan.rows} when counted; "
                "did the warehouse change meanwhile? Export again."
            )
        _attributes(h5, plan, opts, split, extra)
    return dict(sorted(writer.fit_counts.items()))


def _attributes(h5, plan: _Plan, opts: ExportOptions, split: str | None, extra: dict) -> None:
    strings = h5py.string_dtype("utf-8")
    attrs = {
        "gwh_version": __version__,
        "sql": plan.base,
        "sql_params": json.dumps(plan.params),
        "split": split or "all",
        "bands": np.array(list(plan.bands), dtype=strings),
        "size": np.int64(opts.size),
        "pixel_scale": np.float64(plan.pixel_scale),
        "row_count": np.int64(plan.rows),
        "row_order": ROW_ORDER,
        "data": plan.data,
        "image_table": plan.images,
        "image_units": image_units(plan.images, plan.bands, plan.units, plan.zeropoints),
        "fit": f"centred crop or zero padding to {opts.size}x{opts.size} (fit_action per row); "
        "padded variance is inf and padded mask pixels have NO_DATA set",
        "missing_bands": "NaN image and variance, NO_DATA mask; missing_<band> datasets"
        if opts.allow_missing_bands
        else "none allowed",
        "planes": np.array(list(plan.planes), dtype=strings),
    }
    if plan.images == CUTOUTS.name or "mask" in plan.planes:
        attrs["mask_planes"] = json.dumps(HSC_MASK_BITS)
    if plan.labels:
        attrs["label_columns"] = np.array(sorted(plan.labels), dtype=strings)
    for name, label in plan.labels.items():
        attrs[f"label_mapping/{name}"] = json.dumps(label.mapping)
    attrs.update(extra)
    for key in sorted(attrs):
        h5.attrs[key] = attrs[key]


def export_all_splits(
    wh: Warehouse,
    out_dir: str | os.PathLike[str],
    *,
    view: str | None = None,
    sql: str | None = None,
    options: ExportOptions | None = None,
    progress: bool | None = None,
) -> list[ExportResult]:
    """``train.h5``, ``validation.h5`` and ``test.h5`` in ``out_dir``, one export per split.

    A rerun resumes: a split file already written by the same export (same query, options,
    gwh version and warehouse state: its ``export_sha256`` attribute) is kept, and only the
    missing ones are written. A file that does not match needs ``overwrite``; that is checked
    for all three before anything is written. The three come from one committed state.
    """
    with wh.reading():
        return _all_splits(wh, Path(out_dir), view, sql, options or ExportOptions(), progress)


def _all_splits(
    wh: Warehouse,
    out_dir: Path,
    view: str | None,
    sql: str | None,
    opts: ExportOptions,
    progress: bool | None,
) -> list[ExportResult]:
    targets = [out_dir / f"{s}.h5" for s in SPLIT_NAMES]
    if not opts.overwrite:
        bands = _bands_for_digest(wh, opts)
        stale = []
        for s, t in zip(SPLIT_NAMES, targets, strict=True):
            if t.exists():
                b, p = base_query(view if sql is None else None, sql, s)
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
        counts = wh.query(f"SELECT split, count(*) AS n FROM (\n{base}\n) AS q GROUP BY 1", params)
    except QueryError as exc:
        raise ExportError(f"--all-splits needs a split column in the query: {exc}") from None
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
            wh, t, split=s, view=view, sql=sql, options=opts, progress=progress, resume=True
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
