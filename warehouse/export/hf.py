"""``gwh export --format hf``: a HuggingFace ``datasets`` folder, one Parquet shard set per
split and a dataset card, that ``datasets.load_dataset(folder)`` opens as a ``DatasetDict``.

Layout::

    <folder>/README.md                                  the dataset card (YAML + text; card.py)
    <folder>/data/<split>-00000-of-0000K.parquet        train, validation, test

Each split is first written as the HDF5 export of the same query and options (in the temporary
folder), then copied into Parquet, so the two formats hold the same rows in the same order
(``_healpix_29``, ``object_id``) and exactly the same pixels. Columns:

* ``image`` (and ``variance``, ``mask`` when written): fixed-shape ``Array3D`` (bands, S, S),
  float32 (mask int32), stored uncompressed as nested fixed-size lists;
* every query column with its own Arrow type: an integer, boolean or text NULL is a Parquet NULL
  (the HDF5 file's ``<col>_isnull`` is not needed), 64-bit ids stay int64; a floating-point NULL
  is NaN, as in the HDF5 file;
* ``fit_action``, ``zeropoint`` (fixed-length list of float64 per band), ``image_simulated`` and
  ``missing_<b>`` as in the HDF5 layout.

Row groups hold at most ~32 MiB (about 100 rows of 5 x 127 x 127 float32), small enough for
streaming and for the Hub's viewer; a shard holds at most ~512 MiB. The schema carries the
``huggingface`` features metadata and the card's YAML declares the same features, so both a
plain and a ``streaming=True`` load give ``Array3D`` images. The folder is built beside the
target and renamed into place at the end (atomic); ``overwrite`` replaces an existing one.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.config import SPLIT_NAMES
from warehouse.errors import ExportError
from warehouse.export.card import dataset_card
from warehouse.export.columns import _Column, _columns_of
from warehouse.export.hdf5 import _rows_query, _temporary_beside, export_hdf5
from warehouse.export.options import PLANES, ExportOptions
from warehouse.export.plan import base_query

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["HF_ROW_GROUP_BYTES", "HF_SHARD_BYTES", "HfResult", "export_hf", "hf_features"]

HF_ROW_GROUP_BYTES = 32 * 2**20
HF_SHARD_BYTES = 512 * 2**20


@dataclass(frozen=True)
class HfResult:
    path: Path
    rows: dict[str, int]  # per split
    files: tuple[Path, ...]
    bytes: int
    seconds: float
    bands: tuple[str, ...]
    size: int
    data: str


def export_hf(
    wh: Warehouse,
    out_dir: str | os.PathLike[str],
    *,
    splits: Sequence[str] | None = None,
    view: str | None = None,
    sql: str | None = None,
    options: ExportOptions | None = None,
    progress: bool | None = None,
) -> HfResult:
    """Write ``splits`` (default train, validation and test) of ``view`` (default
    ``ml_objects``) or ``sql`` as a HuggingFace datasets folder ``out_dir``.

    Raises
    ------
    ExportError
        ``out_dir`` exists and is not empty (pass ``overwrite``), a split has no rows, or any
        reason :func:`~warehouse.export.export_hdf5` gives. Nothing is written then.

    Examples
    --------
    >>> export_hf(wh, "galaxies/", options=ExportOptions(size=64))  # doctest: +SKIP
    >>> datasets.load_dataset("galaxies/")  # doctest: +SKIP
    """
    started = time.perf_counter()
    opts = options or ExportOptions()
    out = Path(out_dir)
    names = tuple(splits) if splits else SPLIT_NAMES
    unknown = [s for s in names if s not in SPLIT_NAMES]
    if unknown:
        raise ExportError(f"--split must be one of {', '.join(SPLIT_NAMES)}, got {unknown[0]!r}")
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; --format hf writes a folder (--out-dir DIR).")
    if out.is_dir() and any(out.iterdir()) and not opts.overwrite:
        raise ExportError(f"{out} already exists. Use --overwrite to replace it.")
    h5opts = dataclasses.replace(opts, overwrite=True)
    with wh.reading():
        schema = _query_schema(wh, view, sql)
        _check_rows(wh, view, sql, names, opts)
        with _temporary_beside(out) as tmp:
            folder = tmp / "dataset"
            (folder / "data").mkdir(parents=True)
            rows: dict[str, int] = {}
            files: list[Path] = []
            attrs: dict = {}
            for s in names:
                h5path = tmp / f"{s}.h5"
                result = export_hdf5(
                    wh, h5path, split=s, view=view, sql=sql, options=h5opts, progress=progress
                )
                written = hdf5_to_parquet(h5path, folder / "data", s, schema)
                files += [out / "data" / p.name for p in written]
                rows[s] = result.rows
                if not attrs:
                    attrs = _file_attrs(h5path)
                h5path.unlink()
            features = hf_features(pq.read_schema(folder / "data" / written[0].name))
            card = dataset_card(wh, attrs, features, rows, opts, _data_bytes(folder))
            (folder / "README.md").write_text(card, encoding="utf-8")
            _swap_into_place(folder, out, tmp)
    return HfResult(
        path=out,
        rows=rows,
        files=tuple(files),
        bytes=sum(f.stat().st_size for f in out.rglob("*") if f.is_file()),
        seconds=time.perf_counter() - started,
        bands=tuple(attrs.get("bands", ())),
        size=opts.size,
        data=str(attrs.get("data", "")),
    )


def _query_schema(wh: Warehouse, view: str | None, sql: str | None) -> pa.Schema:
    base, params = base_query(view if sql is None else None, sql, None)
    with wh.connect() as con:
        try:
            rel = con.sql(f"SELECT * FROM (\n{base}\n) AS q LIMIT 0", params=params or None)
            return rel.to_arrow_table().schema
        except Exception as exc:  # noqa: BLE001 - export_hdf5 explains it; this only needs types
            raise ExportError(str(exc).splitlines()[0]) from None


def _check_rows(wh, view, sql, names: Sequence[str], opts: ExportOptions) -> None:
    """Every split asked for has rows, checked before anything is written."""
    empty = []
    for s in names:
        base, params = _rows_query(wh, view, sql, s, opts)
        try:
            n = wh.query(f"SELECT count(*) AS n FROM (\n{base}\n) AS q", params)
        except Exception:  # noqa: BLE001 - the export itself reports a bad query
            return
        if not n.column("n")[0].as_py():
            empty.append(s)
    if empty:
        raise ExportError(
            f"split(s) {', '.join(empty)} have no rows, so there is nothing to export for them; "
            "export the others with --split."
        )


def _file_attrs(path: Path) -> dict:
    with h5py.File(path, "r") as h5:
        out = {}
        for k, v in h5.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, np.ndarray):
                v = [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        return out


def _data_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "data").iterdir())


def _swap_into_place(folder: Path, out: Path, tmp: Path) -> None:
    """``folder`` becomes ``out``; an existing ``out`` (overwrite) goes into ``tmp`` first, which
    is removed with it."""
    if out.exists():
        os.replace(out, tmp / "replaced")
    os.replace(folder, out)
    shutil.rmtree(tmp / "replaced", ignore_errors=True)


# -- HDF5 -> Parquet


def _arrow_type(c: _Column, field: pa.Field) -> pa.DataType:
    t = field.type
    if c.kind == "int":
        return pa.int64() if pa.types.is_decimal(t) else t
    if c.kind == "float":
        return pa.float64() if pa.types.is_decimal(t) else t
    if c.kind == "bool":
        return pa.bool_()
    return pa.string()  # text, and temporal or dictionary columns (as the HDF5 file has them)


def _cube_type(dtype: np.dtype, bands: int, size: int) -> pa.DataType:
    t = pa.from_numpy_dtype(dtype)
    return pa.list_(pa.list_(pa.list_(t, size), size), bands)


def _cube(values: np.ndarray) -> pa.Array:
    """(n, B, S, S) -> nested fixed-size lists over the same buffer (no copy)."""
    n, nb, s, _ = values.shape
    flat = pa.array(np.ascontiguousarray(values).reshape(-1))
    return pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, s), s), nb
    )


def hf_features(schema: pa.Schema) -> dict:
    """The ``datasets`` features (as its JSON) of an hf export's Parquet schema."""
    meta = (schema.metadata or {}).get(b"huggingface")
    if meta is None:
        raise ExportError("not an hf export: the Parquet schema has no huggingface features")
    return json.loads(meta)["info"]["features"]


def _value_dtype(t: pa.DataType) -> str:
    if pa.types.is_floating(t):
        return {16: "float16", 32: "float32", 64: "float64"}[t.bit_width]
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    return str(t)  # int8 ... uint64


def _feature(t: pa.DataType) -> dict:
    if pa.types.is_fixed_size_list(t) and pa.types.is_fixed_size_list(t.value_type):
        shape = [t.list_size, t.value_type.list_size, t.value_type.value_type.list_size]
        inner = t.value_type.value_type.value_type
        return {"shape": shape, "dtype": _value_dtype(inner), "_type": "Array3D"}
    if pa.types.is_fixed_size_list(t):
        return {
            "feature": {"dtype": _value_dtype(t.value_type), "_type": "Value"},
            "length": t.list_size,
            "_type": "List",
        }
    return {"dtype": _value_dtype(t), "_type": "Value"}


def hdf5_to_parquet(h5path: Path, data_dir: Path, split: str, schema: pa.Schema) -> list[Path]:
    """Copy one HDF5 export (its query's Arrow ``schema``) into Parquet shards of ``split``."""
    columns = _columns_of(schema)
    with h5py.File(h5path, "r") as h5:
        for c in columns:  # as the export planned them (on the unsplit query)
            c.nullable = c.name + "_isnull" in h5
            c.as_float = c.kind in ("int", "bool") and h5[c.name].dtype.kind == "f"
        n = int(h5.attrs["row_count"])
        nb, s = len(h5.attrs["bands"]), int(h5.attrs["size"])
        planes = [p for p in PLANES if p in h5]
        fields = [pa.field(p, _cube_type(np.dtype(PLANES[p][0]), nb, s)) for p in planes]
        for c in columns:
            fields.append(pa.field(c.name, _arrow_type(c, schema.field(c.name))))
        fields += [
            pa.field("fit_action", pa.string()),
            pa.field("zeropoint", pa.list_(pa.float64(), nb)),
            pa.field("image_simulated", pa.bool_()),
        ]
        missing = sorted(k for k in h5 if k.startswith("missing_"))
        fields += [pa.field(k, pa.bool_()) for k in missing]
        features = {f.name: _feature(f.type) for f in fields}
        target = pa.schema(
            fields, metadata={"huggingface": json.dumps({"info": {"features": features}})}
        )
        row_bytes = sum(np.dtype(PLANES[p][0]).itemsize * nb * s * s for p in planes)
        group = max(1, min(1000, HF_ROW_GROUP_BYTES // max(row_bytes, 1)))
        per_shard = group * max(1, HF_SHARD_BYTES // (group * max(row_bytes, 1)))
        shards = max(1, math.ceil(n / per_shard))
        scalar = [f.name for f in fields if f.name not in planes]
        strings = [c.name for c in columns if c.kind == "string"] + ["fit_action"]
        written = []
        for k in range(shards):
            path = data_dir / f"{split}-{k:05d}-of-{shards:05d}.parquet"
            with pq.ParquetWriter(
                path,
                target,
                compression={f.name: "none" if f.name in planes else "snappy" for f in fields},
                use_dictionary=strings,
                write_statistics=scalar,
            ) as writer:
                for a in range(k * per_shard, min(n, (k + 1) * per_shard), group):
                    b = min(a + group, n, (k + 1) * per_shard)
                    writer.write_table(_rows(h5, a, b, target, planes, columns, missing), group)
            written.append(path)
    return written


def _rows(h5, a: int, b: int, target: pa.Schema, planes, columns, missing) -> pa.Table:
    arrays = [_cube(h5[p][a:b]) for p in planes]
    for c in columns:
        arrays.append(_column(h5, c, a, b, target.field(c.name).type))
    arrays.append(pa.array(h5["fit_action"].asstr()[a:b], pa.string()))
    zp = np.ascontiguousarray(h5["zeropoint"][a:b], dtype=np.float64)
    arrays.append(pa.FixedSizeListArray.from_arrays(pa.array(zp.reshape(-1)), zp.shape[1]))
    arrays.append(pa.array(h5["image_simulated"][a:b]))
    arrays += [pa.array(h5[k][a:b]) for k in missing]
    return pa.Table.from_arrays(arrays, schema=target)


def _column(h5, c: _Column, a: int, b: int, t: pa.DataType) -> pa.Array:
    nulls = h5[c.name + "_isnull"][a:b] if c.nullable else None
    if c.kind == "string":
        values = h5[c.name].asstr()[a:b]
        return pa.array(values, pa.string(), mask=nulls)
    values = h5[c.name][a:b]
    if c.as_float and nulls is not None:  # NaN stands for NULL; every other value is exact
        filled = np.where(nulls, 0, values)
        kind = np.bool_ if c.kind == "bool" else np.int64
        return pa.array(filled.astype(kind), mask=nulls).cast(t)
    return pa.array(values, mask=nulls).cast(t)
