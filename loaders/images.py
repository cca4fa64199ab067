"""Image tables: cutouts of any survey as rows of a HATS table, and integer labels with mappings.

The tables here (``kids_cutouts``, ``sdss_cutouts``, ``hst_cutouts``) follow the conventions of the
HSC ``cutouts`` table (:mod:`warehouse.cutouts`), so one export reads them all:

* one row per object, ``ra``/``dec`` in degrees, a ``bands`` column (comma-separated, in the
  survey's band order) naming the bands the row holds;
* a key ``object_id`` (int64) and a ``simulated`` column (true when the pixels are synthetic);
* per band ``b``: ``{b}_image`` (float32, little-endian, C order bytes, exactly the survey's pixel
  values, row = y), ``{b}_height``, ``{b}_width``, ``{b}_zeropoint``, ``{b}_pixel_scale``
  (arcsec/px), ``{b}_filter``, ``{b}_variance_present``, ``{b}_mask_present``,
  ``{b}_simulated`` and ``{b}_source``, as :func:`band_fields` writes them; the ``{b}_image``
  field's Arrow metadata also says ``shape``, ``dtype``, ``band``, ``unit`` and
  ``pixel_scale_arcsec``. Stacking the bands in band order gives a channels-first (B, H, W)
  array;
* a class label as a string column and an int16 column (``spectype``/``spectype_label``,
  ``gz2_task1_class``/``gz2_label``); the integer field carries ``label_mapping`` (JSON such as
  ``{"GALAXY": 0, "QSO": 1, "STAR": 2}``) in its Arrow metadata. Mappings are fixed in code, never
  inferred from the data;
* the object sits on pixel index ``size // 2`` in both axes (as in :mod:`warehouse.cutout_fits`).

The warehouse hides ``*_image`` columns from the SQL views (they stay in the Parquet files).
"""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from warehouse.db import quote_ident
from warehouse.errors import CutoutError, LoadError
from warehouse.files import atomic_write_bytes
from warehouse.images.columns import BAND_FIELDS, band_column
from warehouse.loading import Prepared
from warehouse.store import TableSpec
from warehouse.store.contracts import base_tables

__all__ = [
    "IMAGE_SUFFIX",
    "PartStore",
    "decode_image",
    "encode_image",
    "image_field",
    "label_field",
    "label_mapping",
    "objects_of",
    "wcs_cutout",
]

IMAGE_SUFFIX = band_column("", "image")
_TYPES = dict(BAND_FIELDS)  # per-band columns are named and typed once, in warehouse.images
IMAGE_DTYPE = "<f4"
_PART_NAME = re.compile(r"^[A-Za-z0-9_.=+-]+$")


def encode_image(image: np.ndarray) -> bytes:
    """The bytes of a 2-D image as little-endian float32, C order.

    Values are never changed: a float64 or integer image whose values float32 cannot hold
    exactly is refused (:class:`ValueError`), not rounded.
    """
    a = np.asarray(image)
    if a.ndim != 2:
        raise ValueError(f"an image must be 2-D, got shape {a.shape}")
    if a.dtype == np.dtype("<f4"):
        return np.ascontiguousarray(a).tobytes()
    if a.dtype.kind not in "fiub":
        raise ValueError(f"image values must be numbers, got dtype {a.dtype}")
    f32 = a.astype("<f4")
    back = f32.astype(np.float64)
    same = (back == a.astype(np.float64)) | (np.isnan(back) & np.isnan(a.astype(np.float64)))
    if not same.all():
        raise ValueError(
            f"{a.dtype} pixel values are not exactly representable as float32 "
            f"({int((~same).sum())} of {a.size} would change)"
        )
    return np.ascontiguousarray(f32).tobytes()


def decode_image(data: bytes, shape: Sequence[int]) -> np.ndarray:
    """The float32 array stored by :func:`encode_image`."""
    arr = np.frombuffer(data, dtype=IMAGE_DTYPE)
    if arr.size != int(np.prod(shape)):
        raise CutoutError(f"image holds {arr.size} values, expected shape {tuple(shape)}")
    return arr.reshape(tuple(shape))


def image_field(band: str, size: int, pixel_scale_arcsec: float, unit: str = "") -> pa.Field:
    """The ``<band>_image`` binary field with its shape, dtype, band, unit and scale."""
    return pa.field(
        band_column(band, "image"),
        _TYPES["image"],
        metadata={
            "shape": f"{size},{size}",
            "dtype": IMAGE_DTYPE,
            "band": band,
            "unit": unit,
            "pixel_scale_arcsec": repr(float(pixel_scale_arcsec)),
        },
    )


def band_fields(
    band: str,
    images: Sequence[bytes | None],
    size: int,
    pixel_scale: float,
    filter_name: str,
    sources: Sequence[str | None],
    unit: str = "",
    *,
    zeropoint: float | None = None,
    simulated: bool | Sequence[bool] = False,
) -> list[tuple[pa.Field, pa.Array]]:
    """The per-band columns of square ``size`` images (None where a row has no image), named
    and typed as the HSC ``cutouts`` table names them (:data:`warehouse.cutouts.BAND_FIELDS`):
    image, height, width, zeropoint (AB; NULL when unknown), pixel_scale, filter,
    variance_present and mask_present (false: these surveys' cutouts carry no such planes),
    simulated and source."""
    has = [b is not None for b in images]
    sims = [bool(simulated)] * len(images) if isinstance(simulated, bool) else list(simulated)

    def where(value):  # type: ignore[no-untyped-def]
        return [value if h else None for h in has]

    def column(what, values, metadata=None):  # type: ignore[no-untyped-def]
        typ = _TYPES[what]
        return pa.field(band_column(band, what), typ, metadata=metadata), pa.array(values, typ)

    return [
        (image_field(band, size, pixel_scale, unit), pa.array(list(images), _TYPES["image"])),
        column("height", where(size)),
        column("width", where(size)),
        column("zeropoint", where(zeropoint)),
        column("pixel_scale", where(float(pixel_scale)), {"unit": "arcsec"}),
        column("filter", where(filter_name)),
        column("variance_present", where(False)),
        column("mask_present", where(False)),
        column("simulated", [s if h else None for s, h in zip(sims, has, strict=True)]),
        column("source", [s if h else None for s, h in zip(sources, has, strict=True)]),
    ]


def stored_bands(wh, table: str, ids: Sequence[int], key: str = "object_id") -> dict:  # type: ignore[no-untyped-def]
    """``{id: [bands]}`` already stored in ``table`` for these ids (empty if not loaded)."""
    if wh.current_version(table) is None or not ids:
        return {}
    rows = wh.query(
        f"SELECT {quote_ident(key)}, bands FROM {quote_ident(table)} "
        f"WHERE {quote_ident(key)} IN (SELECT unnest(?::BIGINT[]))",
        [list(map(int, ids))],
    )
    return {
        k: [b for b in (v or "").split(",") if b]
        for k, v in zip(rows.column(0).to_pylist(), rows.column(1).to_pylist(), strict=True)
    }


@dataclass(frozen=True)
class FetchedTable:
    """A table a ``gwh fetch`` command built and wrote to a file, loaded through
    :meth:`Warehouse.load <warehouse.core.Warehouse.load>` like any file: recorded as loaded by
    ``name`` with the file's SHA-256, skipped when those bytes were loaded before."""

    name: str
    spec: TableSpec
    table: pa.Table
    description: str = "a table written by gwh fetch"

    def prepare(self, path: Path, wh: object = None) -> list[Prepared]:
        return [Prepared(self.spec, self.table)]


def label_field(name: str, mapping: Mapping[str, int], names_column: str) -> pa.Field:
    """An int16 label field carrying its mapping (JSON) in the Arrow field metadata."""
    return pa.field(
        name,
        pa.int16(),
        metadata={
            "label_mapping": json.dumps(dict(mapping), sort_keys=False),
            "label_names_column": names_column,
        },
    )


def label_mapping(field: pa.Field) -> dict[str, int] | None:
    """The mapping stored by :func:`label_field`, or None."""
    meta = field.metadata or {}
    raw = meta.get(b"label_mapping")
    return json.loads(raw) if raw else None


def encode_labels(values: Sequence[str | None], mapping: Mapping[str, int], what: str) -> pa.Array:
    """Integer labels of class names; an unknown name is an error naming it and its row."""
    out = np.empty(len(values), dtype=np.int16)
    for i, value in enumerate(values):
        if value is None or value not in mapping:
            raise LoadError(
                f"{what}, row {i + 1}: {value!r} is not one of {', '.join(map(str, mapping))}. "
                "Fix the value (labels are never guessed)."
            )
        out[i] = mapping[value]
    return pa.array(out, pa.int16())


# -- WCS cutouts -----------------------------------------------------------------------------------


def wcs_cutout(data: np.ndarray, wcs, ra: float, dec: float, size: int) -> tuple[np.ndarray, float]:
    """A ``size`` x ``size`` float32 cutout of ``data`` centred on (ra, dec) by its WCS.

    The pixel nearest to the position lands on index ``size // 2`` in both axes; pixels outside
    ``data`` are NaN. Returns the cutout and the fraction of it inside ``data``. Pixel values
    are copied, never resampled.
    """
    if size < 1:
        raise ValueError(f"cutout size must be positive, got {size}")
    from astropy.coordinates import SkyCoord

    x, y = wcs.world_to_pixel(SkyCoord(ra, dec, unit="deg", frame="icrs"))
    x, y = float(x), float(y)
    if not (np.isfinite(x) and np.isfinite(y)):
        raise CutoutError(f"({ra}, {dec}) does not project onto the image")
    xc, yc = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
    x0, y0 = xc - size // 2, yc - size // 2
    ny, nx = data.shape
    out = np.full((size, size), np.nan, dtype=np.float32)
    sx0, sy0 = max(x0, 0), max(y0, 0)
    sx1, sy1 = min(x0 + size, nx), min(y0 + size, ny)
    if sx1 <= sx0 or sy1 <= sy0:
        return out, 0.0
    patch = np.asarray(data[sy0:sy1, sx0:sx1])
    if patch.dtype != np.float32:
        patch = patch.astype(np.float32)
    out[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = patch
    return out, (sy1 - sy0) * (sx1 - sx0) / float(size * size)


# -- resumable parts -----------------------------------------------------------------------------


class PartStore:
    """Finished pieces of a long fetch, one Parquet file each, written atomically.

    A rerun reads which keys are done and fetches only the rest; :meth:`combined` concatenates
    every part in name order (deterministic).
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def parts(self) -> list[Path]:
        return sorted(self.folder.glob("part-*.parquet"))

    def has(self, name: str) -> bool:
        return (self.folder / f"part-{name}.parquet").is_file()

    def write(self, name: str, table: pa.Table) -> Path:
        if not _PART_NAME.match(name):
            raise ValueError(f"part name {name!r} has characters outside [A-Za-z0-9_.=+-]")
        buffer = io.BytesIO()
        pq.write_table(table, buffer, compression="snappy")
        return atomic_write_bytes(self.folder / f"part-{name}.parquet", buffer.getvalue())

    def done(self, key: str) -> set:
        out: set = set()
        for part in self.parts():
            out.update(pq.read_table(part, columns=[key]).column(key).to_pylist())
        return out

    def combined(self, schema: pa.Schema | None = None) -> pa.Table | None:
        tables = [pq.read_table(p) for p in self.parts()]
        tables = [t for t in tables if t.num_rows]
        if not tables:
            return None
        if schema is not None:
            tables = [t.select(schema.names).cast(schema) for t in tables]
        return pa.concat_tables(tables)


# -- objects from the warehouse --------------------------------------------------------------------


def objects_of(wh, table: str, limit: int | None = None) -> tuple[str, pa.Table]:  # type: ignore[no-untyped-def]
    """Key column name and ``(key, ra, dec, label columns...)`` rows of a warehouse table.

    Label columns are the fields carrying a ``label_mapping`` and their names columns. Rows
    come sorted by key (deterministic).
    """
    defs = base_tables()
    if table not in defs:
        raise CutoutError(
            f"--labels/--table must name a loaded table with positions ({', '.join(defs)}); "
            f"got {table!r}."
        )
    spec = defs[table].spec
    if len(spec.key) != 1:
        raise CutoutError(f"{table} has a composite key {spec.key}; choose another table.")
    cv = wh.current_version(table)
    if cv is None:
        raise CutoutError(f"{table} has not been loaded yet. {defs[table].load_hint}")
    labels: list[str] = []
    for f in cv.schema:
        meta = f.metadata or {}
        if b"label_mapping" in meta:
            partner = meta.get(b"label_names_column", b"").decode()
            labels += [c for c in (partner, f.name) if c and c in cv.schema.names]
    labels = list(dict.fromkeys(labels))
    key = spec.key[0]
    cols = [
        f"{quote_ident(key)}",
        f"{quote_ident(spec.ra)} AS ra",
        f"{quote_ident(spec.dec)} AS dec",
    ]
    cols += [quote_ident(c) for c in labels]
    sql = f"SELECT {', '.join(cols)} FROM {quote_ident(table)} ORDER BY {quote_ident(key)}"
    if limit is not None:
        sql += f" LIMIT {int(limit)}"
    rows = wh.query(sql)
    # keep the label mapping metadata the view dropped
    fields = []
    for f in rows.schema:
        if f.name in labels:
            fields.append(cv.schema.field(f.name).with_type(f.type))
        else:
            fields.append(f)
    rows = rows.cast(pa.schema(fields))
    if rows.num_rows and pc.any(pc.is_null(rows.column("ra"))).as_py():
        raise CutoutError(f"{table} has rows without positions; cutouts need ra and dec.")
    return key, rows


def work_rows(objects: pa.Table, key: str, columns: Mapping[str, pa.Array]) -> pa.Table:
    """A batch of finished work of a labelled-cutout fetch: ``object_id`` (from ``key``), ``ra``,
    ``dec``, then ``columns`` (what the archive gave, or why nothing), then every other column of
    ``objects`` (the labels), with their own types."""
    arrays: dict[str, pa.Array] = {
        "object_id": pa.array(objects.column(key).to_pylist(), pa.int64()),
        "ra": objects.column("ra"),
        "dec": objects.column("dec"),
        **columns,
    }
    fields = [pa.field(name, arr.type) for name, arr in arrays.items()]
    for name in objects.column_names:
        if name not in (key, "ra", "dec"):
            arrays[name] = objects.column(name)
            fields.append(objects.schema.field(name))
    schema = pa.schema(fields)
    return pa.Table.from_arrays([arrays[f.name] for f in schema], schema=schema)


def image_rows(
    good: pa.Table,
    *,
    bands: Sequence[str],
    labels: str,
    band: str,
    columns: Sequence[tuple[pa.Field, pa.Array]],
    internal: set[str],
) -> pa.Table:
    """The rows of a labelled image table: ``object_id``, ``ra``, ``dec`` (deg), ``bands``,
    ``simulated``, ``labels_table``; then ``columns`` (the survey's own and the band's, from
    :func:`band_fields`), ``{band}_coverage``; then the label columns (every column of ``good``
    that is not ``internal`` work)."""
    ids = good.column("object_id").to_pylist()
    pairs: list[tuple[pa.Field, pa.Array]] = [
        (pa.field("object_id", pa.int64()), good.column("object_id")),
        (pa.field("ra", pa.float64(), metadata={"unit": "deg"}), good.column("ra")),
        (pa.field("dec", pa.float64(), metadata={"unit": "deg"}), good.column("dec")),
        (pa.field("bands", pa.string()), pa.array(list(bands), pa.string())),
        (pa.field("simulated", pa.bool_()), good.column("simulated")),
        (pa.field("labels_table", pa.string()), pa.array([labels] * len(ids), pa.string())),
        *columns,
        (pa.field(f"{band}_coverage", pa.float64()), good.column("coverage").combine_chunks()),
    ]
    internal = internal | {"object_id", "ra", "dec", "image", "coverage", "unit", "source"}
    internal |= {"status", "simulated"}
    pairs += [
        (good.schema.field(n), good.column(n)) for n in good.column_names if n not in internal
    ]
    schema = pa.schema([f for f, _ in pairs])
    return pa.Table.from_arrays([a for _, a in pairs], schema=schema)
