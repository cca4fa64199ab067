"""What the export reads: the image tables and their bands, the integer label columns of
the loaded tables, and each query column as a 1-D HDF5 dataset (type, nullability,
values)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.cutouts import CUTOUTS, band_column
from warehouse.errors import ExportError
from warehouse.store import CatalogVersion
from warehouse.store.contracts import BaseTableDef, base_tables

if TYPE_CHECKING:
    from warehouse.core import Warehouse

_PREFIX = "__gwh_"


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


NULL_FLAG_SUFFIX = "_isnull"  # <column>_isnull: where a nullable column of an HDF5 export is NULL


def _check_names(names: list[str]) -> None:
    seen = set(names)  # unique: the query is read as a subquery, whose names DuckDB makes so
    for name in names:
        if "/" in name or name in ("", "."):
            raise ExportError(
                f"column {name!r} cannot name an HDF5 dataset ('/' separates groups; '.' and '' "
                "are no names): rename it in --sql (AS ...)."
            )
    for name in names:
        if name.endswith(NULL_FLAG_SUFFIX) and name.removesuffix(NULL_FLAG_SUFFIX) in seen:
            raise ExportError(
                f"column {name} would clash with the flag the export writes for the NULLs of "
                f"{name.removesuffix(NULL_FLAG_SUFFIX)}: rename it in --sql (AS ...)."
            )


def _numpy_dtype(t: pa.DataType) -> np.dtype:
    """The NumPy dtype of an Arrow integer or float type (``to_pandas_dtype`` would import
    pandas, a third of a second, for the same answer)."""
    size = t.bit_width // 8
    if pa.types.is_floating(t):
        return np.dtype(f"<f{size}")
    return np.dtype(f"<{'i' if pa.types.is_signed_integer(t) else 'u'}{size}")


def _columns_of(schema: pa.Schema) -> list[_Column]:
    """The export's column of each field of the query's ``schema``, refusing names no HDF5
    dataset can take and types with no 1-D form."""
    _check_names(schema.names)
    out = []
    for f in schema:
        t = f.type
        if pa.types.is_boolean(t):
            out.append(_Column(f.name, "bool", np.dtype(bool), sql_type="BOOLEAN"))
        elif pa.types.is_integer(t):
            out.append(_Column(f.name, "int", _numpy_dtype(t), sql_type=str(t)))
        elif pa.types.is_floating(t):
            out.append(_Column(f.name, "float", _numpy_dtype(t)))
        elif pa.types.is_decimal(t) and t.scale == 0:  # HUGEINT, DECIMAL(p, 0): integers
            out.append(_Column(f.name, "int", np.dtype(np.int64), sql_type=str(t)))
        elif pa.types.is_decimal(t):  # the nearest float64, as any reader of it would get
            out.append(_Column(f.name, "float", np.dtype(np.float64)))
        elif (
            pa.types.is_string(t)
            or pa.types.is_large_string(t)
            or (pa.types.is_temporal(t) and not pa.types.is_interval(t))
            or pa.types.is_dictionary(t)
        ):
            out.append(_Column(f.name, "string", h5py.string_dtype("utf-8")))
        else:
            raise ExportError(
                f"column {f.name} has type {t}, which has no 1-D HDF5 form; select scalar "
                "columns (numbers, booleans, text) or cast it in --sql."
            )
    return out


def to_numpy(arr: pa.Array | pa.ChunkedArray) -> Any:
    """``arr.to_numpy(zero_copy_only=False)``, without pyarrow's pandas-based conversion (and
    its import, a third of a second) for the usual cases: numbers without NULLs are viewed in
    place, floating-point NULLs become NaN, booleans without NULLs are unpacked."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.chunk(0) if arr.num_chunks == 1 else arr.combine_chunks()
    t = arr.type
    if pa.types.is_floating(t) and arr.null_count:  # (fill_null with a scalar imports pandas)
        return np.where(_view(arr.is_valid().cast(pa.uint8())).astype(bool), _view(arr), np.nan)
    if pa.types.is_boolean(t) and arr.null_count == 0:
        return _view(pc.cast(arr, pa.uint8())).astype(bool)
    if (pa.types.is_integer(t) or pa.types.is_floating(t)) and arr.null_count == 0:
        return _view(arr)
    return arr.to_numpy(zero_copy_only=False)


def _view(arr: pa.Array) -> np.ndarray:
    dtype = _numpy_dtype(arr.type)
    data = arr.buffers()[1]
    if data is None or len(arr) == 0:
        return np.zeros(0, dtype)
    return np.frombuffer(data, dtype=dtype, count=len(arr), offset=arr.offset * dtype.itemsize)


def to_numpy_dtype(values: np.ndarray, dtype: Any) -> np.ndarray:
    """``values`` as ``dtype`` (no copy when it already is)."""
    return values.astype(dtype, copy=False)


def _values(col: pa.ChunkedArray | pa.Array, c: _Column) -> tuple[np.ndarray, np.ndarray | None]:
    """A batch of one column as HDF5-ready values, and its null mask when it has NULLs."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    nulls = to_numpy(arr.is_null()) if arr.null_count else None
    if c.kind == "string":
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = pc.cast(arr, pa.string())
        values = np.array(["" if v is None else v for v in arr.to_pylist()], dtype=object)
    elif c.as_float:  # NULL -> NaN; every value exact (checked when planned)
        values = to_numpy(pc.cast(arr, pa.float64()))
    elif c.kind == "bool":  # False at NULL (numpy: a pyarrow scalar would import pandas)
        if nulls is None:
            values = to_numpy(arr)
        else:
            values = np.where(nulls, False, _view(pc.cast(arr, pa.uint8())).astype(bool))
    elif c.kind == "int":
        if pa.types.is_decimal(arr.type):  # in int64 range: checked when planned
            arr = pc.cast(arr, pa.int64())
        ints = _view(arr) if nulls is None else np.where(nulls, 0, _view(arr))
        values = to_numpy_dtype(ints, c.dtype)
    else:
        if pa.types.is_decimal(arr.type):
            arr = pc.cast(arr, pa.float64())
        values = to_numpy_dtype(to_numpy(arr), c.dtype)  # NULL -> NaN
    return values, nulls


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
