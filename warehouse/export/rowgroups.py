"""Rows in flight for ``--format hf``: the export's writer (``writer._Writer``) streams into
a :class:`RowGroupFile` exactly as into an open ``h5py.File`` (``create_dataset``, row-slice
assignment, ``attrs``), but each dataset keeps only the row groups not yet written to Parquet,
as NumPy arrays of ``group`` rows: the hf shards are written straight from the stream (no HDF5
file first), with the same values an HDF5 file would have given back, and memory holds a few
row groups, never N rows."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import h5py
import numpy as np


class RowGroupDataset:
    """One dataset of a :class:`RowGroupFile`: ``shape`` and ``dtype`` as declared, values held
    per row group (``group`` rows) until :meth:`release`; rows never written read as the fill
    value (a row without a cutout keeps the fill of its image planes, as in HDF5)."""

    def __init__(self, shape: tuple[int, ...], dtype: Any, group: int, fillvalue: Any) -> None:
        self.shape = tuple(shape)
        strings = h5py.check_string_dtype(np.dtype(dtype)) is not None
        self.dtype = np.dtype(object) if strings else np.dtype(dtype)
        self.fill = "" if strings else (0 if fillvalue is None else fillvalue)
        self.group = group
        self.attrs: dict[str, Any] = {}
        self._groups: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # values, rows written
        # Released arrays are reused: fresh ones would fault in their pages again. There are
        # never more than the row groups in flight at once (about a cutouts partition).
        self._free: list[np.ndarray] = []

    def _array(self, g: int) -> tuple[np.ndarray, np.ndarray]:
        held = self._groups.get(g)
        if held is None:
            shape = (self.group, *self.shape[1:])
            arr = self._free.pop() if self._free else np.empty(shape, dtype=self.dtype)
            held = self._groups[g] = (arr, np.zeros(self.group, bool))
        return held

    def __setitem__(self, key: slice, values: Any) -> None:
        a, b = _bounds(key, self.shape[0])
        values = np.asarray(values)
        g0 = self.group
        for g in range(a // g0, (b + g0 - 1) // g0):
            lo, hi = max(a, g * g0), min(b, (g + 1) * g0)
            arr, written = self._array(g)
            arr[lo - g * g0 : hi - g * g0] = values[lo - a : hi - a]
            written[lo - g * g0 : hi - g * g0] = True

    def view(self, a: int, b: int) -> np.ndarray:
        """Rows ``a:b`` of one row group, to be filled in place by the caller (every value of
        them: they count as written)."""
        g = a // self.group
        if b > (g + 1) * self.group:
            raise IndexError(f"rows {a}:{b} span row groups of {self.group}")
        arr, written = self._array(g)
        written[a - g * self.group : b - g * self.group] = True
        return arr[a - g * self.group : b - g * self.group]

    def __getitem__(self, key: slice) -> np.ndarray:
        """Rows ``a:b`` of one row group (a view: valid until it is released); rows never
        written hold the fill value."""
        a, b = _bounds(key, self.shape[0])
        g = a // self.group
        if b > (g + 1) * self.group:
            raise IndexError(f"rows {a}:{b} span row groups of {self.group}")
        arr, written = self._array(g)
        rows = slice(a - g * self.group, b - g * self.group)
        if not written[rows].all():
            arr[rows][~written[rows]] = self.fill
            written[rows] = True
        return arr[rows]

    def asstr(self) -> RowGroupDataset:
        return self  # strings are held as Python str already

    def release(self, g: int) -> None:
        held = self._groups.pop(g, None)
        if held is not None:
            self._free.append(held[0])


class RowGroupFile:
    """The ``h5py.File`` calls the export makes, kept in row groups (see the module)."""

    def __init__(self, group: int) -> None:
        self.group = group
        self.attrs: dict[str, Any] = {}
        self._datasets: dict[str, RowGroupDataset] = {}

    def create_dataset(
        self, name: str, shape: tuple[int, ...], dtype: Any, fillvalue: Any = None, **_layout: Any
    ) -> RowGroupDataset:
        """A dataset; ``_layout`` (chunks, compression, track_times) has no meaning here."""
        dset = RowGroupDataset(shape, dtype, self.group, fillvalue)
        self._datasets[name] = dset
        return dset

    def __contains__(self, name: object) -> bool:
        return name in self._datasets

    def __getitem__(self, name: str) -> RowGroupDataset:
        return self._datasets[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._datasets)

    def release(self, g: int) -> None:
        """Row group ``g`` is written: free (and reuse) its arrays."""
        for dset in self._datasets.values():
            dset.release(g)

    def plain_attrs(self) -> dict:
        """The file attributes as Python values, as ``h5py`` would read them back."""
        out = {}
        for k, v in self.attrs.items():
            if isinstance(v, bytes):
                v = v.decode()
            elif isinstance(v, np.ndarray):
                v = [x.decode() if isinstance(x, bytes) else x for x in v.tolist()]
            elif isinstance(v, np.generic):
                v = v.item()
            out[k] = v
        return out


def _bounds(key: slice, n: int) -> tuple[int, int]:
    if not isinstance(key, slice) or key.step not in (None, 1):
        raise TypeError("row groups take row slices only")
    a, b, _ = key.indices(n)
    return a, max(a, b)
