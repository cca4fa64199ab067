"""``gwh export --format hf``: a HuggingFace ``datasets`` folder, one Parquet shard set per
split and a dataset card, that ``datasets.load_dataset(folder)`` opens as a ``DatasetDict``.

Layout::

    <folder>/README.md                                  the dataset card (YAML + text; card.py)
    <folder>/data/<split>-00000-of-0000K.parquet        train, validation, test

Each split is streamed by the HDF5 export's own planner and writer (same checks, same rows in
the same order, ``_healpix_29`` then ``object_id``, exactly the same pixels), which write into
row groups held in memory (:mod:`warehouse.export.rowgroups`) instead of an HDF5 file; each row
group goes to its Parquet shard once all its rows are complete. Columns:

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
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.config import SPLIT_NAMES
from warehouse.errors import ExportError, first_line
from warehouse.export.assemble import AssembledFile, Assembler
from warehouse.export.card import dataset_card
from warehouse.export.columns import _Column
from warehouse.export.h5file import _attributes
from warehouse.export.hdf5 import (
    Write,
    _export_split,
    _rows_query,
    _temporary_beside,
)
from warehouse.export.options import PLANES, ExportOptions, check_split
from warehouse.export.plan import _Plan, base_query
from warehouse.export.rowgroups import RowGroupFile
from warehouse.export.stream import _stream
from warehouse.export.targets import check_folder_target, written_meanwhile
from warehouse.export.writer import _Writer
from warehouse.files import publish_folder
from warehouse.memory import export_pool

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["HF_ROW_GROUP_BYTES", "HF_SHARD_BYTES", "HfResult", "export_hf", "hf_features"]

HF_ROW_GROUP_BYTES = 32 * 2**20
HF_SHARD_BYTES = 512 * 2**20
ENCODERS = max(1, min(4, os.cpu_count() or 1))  # row groups encoded at once: one per core


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
    for s in names:
        check_split(s)
    if out.exists() and not out.is_dir():
        raise ExportError(f"{out} is a file; --format hf writes a folder (--out-dir DIR).")
    check_folder_target(wh, out)
    if out.is_dir() and any(out.iterdir()) and not opts.overwrite:
        raise ExportError(f"{out} already exists. Use --overwrite to replace it.")
    h5opts = dataclasses.replace(opts, overwrite=True)
    with wh.reading(), export_pool():  # jemalloc: freed buffers are not faulted in again
        schema = _query_schema(wh, view, sql, names, opts)
        with _temporary_beside(out) as tmp:
            folder = tmp / "dataset"
            (folder / "data").mkdir(parents=True)
            rows: dict[str, int] = {}
            files: list[Path] = []
            attrs: dict = {}
            for s in names:
                shards = _Shards(folder / "data", s, schema, h5opts)
                result = _export_split(
                    wh, tmp / f"{s}.h5", s, view, sql, h5opts, progress, False, None, shards.sink
                )
                written = shards.written
                files += [out / "data" / p.name for p in written]
                rows[s] = result.rows
                if not attrs:
                    attrs = shards.attrs
            features = hf_features(pq.read_schema(folder / "data" / written[0].name))
            card = dataset_card(wh, attrs, features, rows, opts, _data_bytes(folder))
            (folder / "README.md").write_text(card, encoding="utf-8")
            _swap_into_place(folder, out, tmp, opts.overwrite)
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


def _query_schema(
    wh: Warehouse, view: str | None, sql: str | None, names: Sequence[str], opts: ExportOptions
) -> pa.Schema:
    """The query's Arrow schema; and every split asked for has rows, checked before anything is
    written (one connection for both)."""
    base, params = base_query(view if sql is None else None, sql, None)
    with wh.connect(shared=True) as con:
        try:
            rel = con.sql(f"SELECT * FROM (\n{base}\n) AS q LIMIT 0", params=params or None)
            schema = rel.to_arrow_table().schema
        except Exception as exc:  # noqa: BLE001 - export_hdf5 explains it; this only needs types
            raise ExportError(first_line(exc)) from None
        empty = []
        for s in names:
            b, p = _rows_query(wh, view, sql, s, opts)
            try:
                n = con.execute(f"SELECT count(*) FROM (\n{b}\n) AS q", p or None).fetchone()
            except Exception:  # noqa: BLE001 - the export itself reports a bad query
                return schema
            if not (n and n[0]):
                empty.append(s)
    if empty:
        raise ExportError(
            f"split(s) {', '.join(empty)} have no rows, so there is nothing to export for them; "
            "export the others with --split."
        )
    return schema


def _data_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in (folder / "data").iterdir())


def _swap_into_place(folder: Path, out: Path, tmp: Path, overwrite: bool) -> None:
    """``folder`` becomes ``out``; with ``overwrite`` an existing ``out`` goes into ``tmp``
    first, which is removed with it. Without, only an empty folder is replaced: one that another
    export filled meanwhile is kept, and this export fails."""
    if overwrite and out.exists():
        os.replace(out, tmp / "replaced")
    if not publish_folder(folder, out):
        raise written_meanwhile(out)
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
    """(n, B, S, S) -> nested fixed-size lists over the same buffer (no copy; ``pa.array``
    would also import pandas)."""
    n, nb, s, _ = values.shape
    flat = np.ascontiguousarray(values).reshape(-1)
    flat = pa.Array.from_buffers(
        pa.from_numpy_dtype(flat.dtype), flat.size, [None, pa.py_buffer(flat)]
    )
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


class _Shards:
    """The Parquet shards of one split, written straight from the export's stream: the writer
    fills a :class:`~warehouse.export.rowgroups.RowGroupFile` as it would an HDF5 file, and each
    row group is encoded as soon as all its rows are complete (catalog and pixels), so the
    values are those the HDF5 export holds and memory is a few row groups. Row groups are
    encoded :data:`ENCODERS` at a time (pyarrow encodes without the GIL) and appended to their
    shard in order (:mod:`warehouse.export.assemble`): the shard is the file one
    ``pq.ParquetWriter`` would write, made on several cores."""

    def __init__(self, data_dir: Path, split: str, schema: pa.Schema, opts: ExportOptions):
        self.data_dir, self.split, self.schema, self.opts = data_dir, split, schema, opts
        self.written: list[Path] = []
        self.attrs: dict = {}
        self.next = 0  # first row not yet encoded
        self.shard: AssembledFile | None = None  # the one the next row group goes to
        self.opened: list[AssembledFile] = []
        self.pending: deque[tuple[Future, int]] = deque()  # row groups encoding, first rows

    def sink(self, cv) -> Write:
        """The export's ``write`` for the image table version ``cv``."""

        def write(con, plan: _Plan, extra: dict, bar, batches) -> dict:
            nb, s = len(plan.bands), self.opts.size
            row_bytes = sum(np.dtype(PLANES[p][0]).itemsize * nb * s * s for p in plan.planes)
            self.group = max(1, min(1000, HF_ROW_GROUP_BYTES // max(row_bytes, 1)))
            self.per_shard = self.group * max(1, HF_SHARD_BYTES // (self.group * max(row_bytes, 1)))
            self.rows, self.shards = plan.rows, max(1, math.ceil(plan.rows / self.per_shard))
            self.file = RowGroupFile(self.group)
            writer = _Writer(self.file, plan, cv, self.opts, bar)
            self._layout(plan)
            self.assembler = Assembler(self.target, self.writer_options, ENCODERS)
            try:
                _stream(con, writer, plan, bar, batches, on_rows=self.advance)
                self.advance(plan.rows)
                self._collect(0)
                if not self.written:  # no rows at all: one empty shard
                    self._open(0)
                    pq.ParquetWriter(self.written[0], self.target, **self.writer_options).close()
            finally:
                writer.close()
                self._abandon()
                self.assembler.close()
            _attributes(self.file, plan, self.opts, self.split, extra)
            self.attrs = self.file.plain_attrs()
            return dict(sorted(writer.fit_counts.items()))

        return write

    def _layout(self, plan: _Plan) -> None:
        """The Arrow schema of the shards (with the ``datasets`` features) and writer options."""
        nb, s = len(plan.bands), self.opts.size
        self.planes = list(plan.planes)
        self.columns = plan.columns
        fields = [pa.field(p, _cube_type(np.dtype(PLANES[p][0]), nb, s)) for p in self.planes]
        for c in self.columns:  # each with its unit and description, as in the HDF5 file
            info = plan.column_info.get(c.name, {})
            said = {k: str(info[k]) for k in ("unit", "description") if info.get(k)}
            fields.append(
                pa.field(c.name, _arrow_type(c, self.schema.field(c.name)), metadata=said or None)
            )
        fields += [
            pa.field("fit_action", pa.string()),
            pa.field("zeropoint", pa.list_(pa.float64(), nb), metadata={"unit": "mag"}),
            pa.field("image_simulated", pa.bool_()),
        ]
        self.missing = [f"missing_{b}" for b in plan.bands if f"missing_{b}" in self.file]
        fields += [pa.field(k, pa.bool_()) for k in self.missing]
        features = {f.name: _feature(f.type) for f in fields}
        self.target = pa.schema(
            fields, metadata={"huggingface": json.dumps({"info": {"features": features}})}
        )
        scalar = [f.name for f in fields if f.name not in self.planes]
        strings = [c.name for c in self.columns if c.kind == "string"] + ["fit_action"]
        # planes go uncompressed (noise does not compress), but rows with no image hold NaN
        # planes that zstd reduces ~1000x: with missing bands allowed, 1 MB per such row -> 1 kB
        raw = "zstd" if self.missing else "none"
        compression = {f.name: "snappy" for f in fields if f.name not in self.planes}
        # a plane's Parquet column is its leaf, (bands, S, S) deep
        compression |= {f"{p}{'.list.element' * 3}": raw for p in self.planes}
        self.writer_options = {
            "compression": compression,
            "use_dictionary": strings,
            "write_statistics": scalar,
        }

    def advance(self, done: int) -> None:
        """Rows 0 .. done-1 are complete: encode every row group they fill."""
        while self.next < self.rows:
            k = self.next // self.per_shard
            end = min(self.rows, (k + 1) * self.per_shard)
            b = min(self.next + self.group, end)
            if b > done:
                return
            if self.shard is None:
                self._open(k)
            assert self.shard is not None
            table = _rows(
                self.file, self.next, b, self.target, self.planes, self.columns, self.missing
            )
            self._collect(ENCODERS - 1)
            self.pending.append((self.assembler.submit(table, self.shard, b == end), self.next))
            del table
            self.next = b
            if b == end:
                self.shard = None

    def _collect(self, keep: int) -> None:
        """Wait for the oldest row groups until ``keep`` are left encoding; one appended to its
        shard frees its arrays."""
        while len(self.pending) > keep:
            encoding, row = self.pending.popleft()
            encoding.result()
            self.file.release(row // self.group)

    def _abandon(self) -> None:
        """After a failure: the encodings stopped and every shard closed (the folder is
        discarded). Nothing is left to do after a success."""
        self.assembler.stop()
        wait([e for e, _ in self.pending])
        self.pending.clear()
        for shard in self.opened:
            shard.discard()

    def _open(self, k: int) -> None:
        path = self.data_dir / f"{self.split}-{k:05d}-of-{self.shards:05d}.parquet"
        self.written.append(path)
        if self.rows:
            self.shard = AssembledFile(path)
            self.opened.append(self.shard)


def _rows(h5, a: int, b: int, target: pa.Schema, planes, columns, missing) -> pa.Table:
    """Rows ``a:b`` of the export ``h5`` (a :class:`RowGroupFile`) as a table of ``target``."""
    arrays = [_cube(h5[p][a:b]) for p in planes]
    for c in columns:
        arrays.append(_column(h5, c, a, b, target.field(c.name).type))
    arrays.append(_arrow(h5["fit_action"].asstr()[a:b]))
    zp = np.ascontiguousarray(h5["zeropoint"][a:b], dtype=np.float64)
    arrays.append(pa.FixedSizeListArray.from_arrays(_arrow(zp.reshape(-1)), zp.shape[1]))
    arrays.append(_arrow(h5["image_simulated"][a:b]))
    arrays += [_arrow(h5[k][a:b]) for k in missing]
    return pa.Table.from_arrays(arrays, schema=target)


def _column(h5, c: _Column, a: int, b: int, t: pa.DataType) -> pa.Array:
    nulls = h5[c.name + "_isnull"][a:b] if c.nullable else None
    if c.kind == "string":
        return _arrow(h5[c.name].asstr()[a:b], nulls)
    values = h5[c.name][a:b]
    if c.as_float and nulls is not None:  # NaN stands for NULL; every other value is exact
        filled = np.where(nulls, 0, values)
        kind = np.bool_ if c.kind == "bool" else np.int64
        return _arrow(filled.astype(kind), nulls).cast(t)
    return _arrow(values, nulls).cast(t)


def _arrow(values: np.ndarray, nulls: np.ndarray | None = None) -> pa.Array:
    """``pa.array(values, mask=nulls)`` for 1-D numbers, booleans and ``str`` objects, built
    from buffers: ``pa.array`` imports pandas (a third of a second) on its first call."""
    n = len(values)
    validity = None
    if nulls is not None and nulls.any():
        validity = pa.py_buffer(np.packbits(~np.asarray(nulls, bool), bitorder="little"))
    if values.dtype == object:  # text
        encoded = [v.encode("utf-8") for v in values]
        offsets = np.zeros(n + 1, np.int32)
        np.cumsum([len(e) for e in encoded], out=offsets[1:])
        data = pa.py_buffer(b"".join(encoded))
        return pa.Array.from_buffers(pa.string(), n, [validity, pa.py_buffer(offsets), data])
    if values.dtype == bool:
        bits = pa.py_buffer(np.packbits(values, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), n, [validity, bits])
    values = np.ascontiguousarray(values)
    typ = pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(typ, n, [validity, pa.py_buffer(values)])
