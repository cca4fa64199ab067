"""The catalog datasets of an export (:func:`create_catalog`), and in an HDF5 file their values
written a block of rows at a time (:class:`CatalogBlocks`).

The catalog rows reach the writer in batches: 2,048 rows at a time from DuckDB's stream or from
Dask, or the whole of a small export that the plan fetched. An h5py write costs about the same
for 2,000 values as for 50,000, and it holds the GIL while it runs, which the writer thread
needs between two image chunks. So the values are gathered into blocks of rows and each dataset
is written once per block.

The blocks are fixed by the export (:func:`block_rows`: rows per block from the datasets' widths),
not by how the rows arrive. Every path makes the same writes in the same order, so the file has
the same bytes: variable-length strings land in HDF5's global heap in write order.
"""

from __future__ import annotations

import json
from typing import Any

import h5py
import numpy as np

from warehouse.errors import ExportError
from warehouse.export.attrs import OWN_DATASETS

BLOCK_BYTES = 32 << 20
"""Catalog values held before they are written (32 MiB): 5,000 rows of ~120 columns are one
block; a wide, long export writes a block every few tens of thousands of rows."""
STRING_BYTES = 64  # a variable-length string's estimated bytes (its object and text)


def create_catalog(h5, plan, allow_missing_bands: bool) -> tuple[dict, Any, Any, Any, dict]:
    """The catalog datasets of ``plan`` in ``h5`` (an h5py File or an hf export's row groups):
    one per query column (and ``<column>_isnull`` for a nullable one), with its description,
    unit, NULL note and label mapping; ``fit_action``, ``zeropoint``, ``image_simulated``, and
    ``missing_<band>`` with ``allow_missing_bands``. Returns (columns' datasets, fit, zeropoint,
    simulated, missing bands' datasets)."""
    n, nb = plan.rows, len(plan.bands)
    datasets: dict[str, Any] = {}
    for c in plan.columns:
        dset = datasets[c.name] = h5.create_dataset(
            c.name, shape=(n,), dtype=c.dtype, track_times=False
        )
        info = plan.column_info.get(c.name, {})
        for key in ("description", "unit"):
            if info.get(key):
                dset.attrs[key] = info[key]
        if c.nullable or c.kind == "float":
            dset.attrs["null"] = c.null_note()
        if c.as_float:
            dset.attrs["sql_type"] = c.sql_type
        label = plan.labels.get(c.name)
        if label is not None:
            dset.attrs["label_mapping"] = json.dumps(label.mapping)
            dset.attrs["label_table"] = label.table
            if label.names_column:
                dset.attrs["label_names_column"] = label.names_column
        if c.nullable:
            isnull = datasets[c.name + "_isnull"] = h5.create_dataset(
                c.name + "_isnull", shape=(n,), dtype=bool, track_times=False
            )
            isnull.attrs["description"] = f"true where {c.name} is NULL"
    strings = h5py.string_dtype("utf-8")
    fit = h5.create_dataset("fit_action", shape=(n,), dtype=strings, track_times=False)
    zp = h5.create_dataset("zeropoint", shape=(n, nb), dtype="f8", track_times=False)
    for name, text in OWN_DATASETS.items():
        if name in h5:
            h5[name].attrs["description"] = text
    zp.attrs["unit"] = "mag"
    sim = h5.create_dataset("image_simulated", shape=(n,), dtype=bool, track_times=False)
    sim.attrs["description"] = OWN_DATASETS["image_simulated"]
    missing: dict[str, Any] = {}
    if allow_missing_bands:
        for b in plan.bands:
            missing[b] = h5.create_dataset(
                f"missing_{b}", shape=(n,), dtype=bool, track_times=False
            )
            missing[b].attrs["description"] = f"true where band {b} has no image (NaN)"
    return datasets, fit, zp, sim, missing


def block_rows(datasets: list[Any], step: int) -> int:
    """Rows per block for ``datasets`` (h5py datasets of one row per export row): as many as
    fit in :data:`BLOCK_BYTES`, a multiple of ``step`` (a batch), at least one ``step``."""
    width = 0
    for dset in datasets:
        per = STRING_BYTES if dset.dtype.kind == "O" else dset.dtype.itemsize
        width += per * int(np.prod(dset.shape[1:], dtype=np.int64))
    rows = BLOCK_BYTES // max(width, 1)
    return max(step, rows // step * step)


class CatalogBlocks:
    """Values put dataset by dataset and batch by batch (rows in order, every dataset's rows of
    one batch put before the next batch's), written a block at a time (:meth:`rows_done`,
    :meth:`finish`)."""

    def __init__(self, rows: int) -> None:
        self.rows = rows
        self.first = 0  # the first row not written yet
        self.stop = 0  # rows put, of every dataset
        self.parts: dict[str, tuple[Any, list[np.ndarray]]] = {}  # in the order first put

    def put(self, dset: Any, values: np.ndarray) -> None:
        """The next rows of ``dset``."""
        self.parts.setdefault(dset.name, (dset, []))[1].append(values)

    def rows_done(self, stop: int) -> None:
        """Every dataset's rows up to ``stop`` put: write the blocks they complete."""
        self.stop = stop
        while stop >= self.first + self.rows:
            self._write(self.first + self.rows)

    def finish(self) -> None:
        """Write the rows put and not written yet."""
        if self.stop > self.first:
            self._write(self.stop)

    def _write(self, stop: int) -> None:
        k = stop - self.first
        for dset, parts in self.parts.values():
            values = parts[0] if len(parts) == 1 else np.concatenate(parts)
            try:
                dset[self.first : stop] = values[:k]
            except ValueError as exc:
                if "NULL" not in str(exc):
                    raise
                name = dset.name.lstrip("/")  # h5py: "VLEN strings do not support embedded NULLs"
                raise ExportError(
                    f"column {name} holds a string with a NUL character (chr(0)), which HDF5 "
                    f"strings cannot store: select replace({name}, chr(0), '') instead, or "
                    "export --format hf"
                ) from None
            parts[:] = [values[k:]] if len(values) > k else []
        self.first = stop
