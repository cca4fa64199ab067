""":class:`GalaxyDataset`: a map-style PyTorch ``Dataset`` over a ``gwh export``, HDF5 (a
``<split>.h5`` file or a folder of them) or an ``hf`` folder (Parquet shards), read directly.

Item ``i`` is row ``i`` of the split (rows in ``_healpix_29``, ``object_id`` order): a dict with
``image`` (bands, S, S) float32 and the chosen ``columns``, numbers as tensors (64-bit ids as
int64, exactly; a nullable integer or boolean column as float64 with NaN for NULL, or, beyond
2**53, int64 with 0 at NULL, in both formats) and text as ``str`` ("" at NULL); ``<column>_isnull``
gives the NULLs in both formats. ``transform`` is applied to that dict.

The object holds paths and sizes only: it pickles small, and each process (the main one, or a
``DataLoader`` worker, forked or spawned) opens its own file handles on first use. Every row is
an index, so a sampler that yields each index once (the default ones, or
:class:`~warehouse.ml.sampler.SeededSampler`) shows every object exactly once per epoch.
"""

from __future__ import annotations

import bisect
import operator
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.config import SPLIT_NAMES
from warehouse.errors import DatasetError

try:  # optional: pip install -e '.[ml]'
    import torch
    from torch.utils.data import Dataset
except ImportError:  # pragma: no cover - exercised without torch installed
    torch = None  # type: ignore[assignment]
    Dataset = object  # type: ignore[assignment,misc]

__all__ = ["GalaxyDataset", "require_torch"]

INSTALL_HINT = "PyTorch is not installed: pip install -e '.[ml]' (the CPU wheel torch==2.13.0)"
_PLANES = ("image", "mask", "variance")


def require_torch() -> None:
    if torch is None:
        raise DatasetError(INSTALL_HINT)


def _locate(path: Path, split: str) -> tuple[str, list[Path]]:
    """("hdf5" | "hf", files) of ``split`` under ``path``."""
    if path.is_file():
        if not h5py.is_hdf5(path):
            shard = path.parent.name == "data" and path.suffix == ".parquet"
            hint = f"give the folder {path.parent.parent} of" if shard else "give"
            raise DatasetError(
                f"{path} is not an HDF5 export: {hint} an hf export, or a .h5 file or folder."
            )
        return "hdf5", [path]
    if not path.is_dir():
        raise DatasetError(f"{path} does not exist; give an export file or folder.")
    if (path / f"{split}.h5").is_file():
        return "hdf5", [path / f"{split}.h5"]
    shards = sorted((path / "data").glob(f"{split}-*.parquet"))
    if shards:
        return "hf", shards
    raise DatasetError(
        f"{path} holds no {split} split: neither {split}.h5 nor data/{split}-*.parquet "
        "(write one with gwh export --all-splits --out-dir DIR [--format hf])."
    )


class GalaxyDataset(Dataset):  # type: ignore[misc]
    """One split of an export as a map-style ``torch.utils.data.Dataset``.

    Parameters
    ----------
    path
        An HDF5 export file, a folder of ``train.h5``/``validation.h5``/``test.h5``, or a folder
        written by ``gwh export --format hf``.
    split
        ``train`` (the default), ``validation`` or ``test``; for a single HDF5 file, the split
        it holds (default), and another one is refused; for a file of several splits (a
        ``--sql`` export with a ``split`` column), that split's rows (default: every row).
    columns
        Catalog columns to return besides ``image`` (default: ``object_id``); ``mask`` and
        ``variance`` may be named too.
    transform
        A function of the item dict returning the item (e.g. normalising ``image``).

    Examples
    --------
    >>> ds = GalaxyDataset("galaxies/", split="train", columns=["specz_redshift"])  # doctest: +SKIP
    >>> sampler = SeededSampler(len(ds), 0, ds.blocks, batch_size=64, workers=2)  # doctest: +SKIP
    >>> loader = DataLoader(ds, batch_size=64, num_workers=2, sampler=sampler)  # doctest: +SKIP
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        split: str | None = None,
        columns: str | Sequence[str] = ("object_id",),
        transform: Callable[[dict[str, Any]], Any] | None = None,
    ) -> None:
        require_torch()
        if split is not None and split not in SPLIT_NAMES:
            raise DatasetError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
        self.path = Path(path)
        self.split = split or "train"
        names = [columns] if isinstance(columns, str) else list(columns)  # "z": one column
        self.columns = tuple(dict.fromkeys(["image", *names]))
        self.transform = transform
        self.format, self.files = _locate(self.path, self.split)
        self.rows: np.ndarray | None = None  # the file's rows of the split (None: every row)
        if self.path.is_file():
            self.split, self.rows = _file_split(self.path, split)
        if self.format == "hdf5":
            self.offsets, self.nullable = self._scan_hdf5()
        else:
            self.offsets, self.nullable = self._scan_parquet()
        self._handles: dict[Any, Any] = {}
        self._pid = -1
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    # -- what the files hold (read once, in the constructing process, then closed)

    def _scan_hdf5(self) -> tuple[list[int], frozenset[str]]:
        with h5py.File(self.files[0], "r") as h5:
            missing = [c for c in self.columns if c not in h5]
            if missing:
                self._unknown(missing, sorted(k for k in h5 if not k.endswith("_isnull")))
            n = int(h5["image"].shape[0]) if self.rows is None else len(self.rows)
        return [0, n], frozenset()

    def _scan_parquet(self) -> tuple[list[int], frozenset[str]]:
        """Row-group offsets of the split, and which columns are nullable: those holding a NULL
        in any split of the folder (as the HDF5 export decides over the whole query), so that a
        column has one type in every split. ``wide`` integer columns hold a value beyond 2**53:
        they stay int64 (0 at NULL, as in HDF5) instead of float64 with NaN."""
        offsets = [0]
        self.groups: list[tuple[int, int]] = []  # (file, row group) of each block
        for k, f in enumerate(self.files):
            meta = pq.ParquetFile(f).metadata
            names = meta.schema.to_arrow_schema().names
            self.stored: dict[str, str] = {
                c: c if c in names else (_isnull_of(c) or c) for c in self.columns
            }
            missing = [c for c, name in self.stored.items() if name not in names]
            if missing:
                self._unknown(missing, names)
            for g in range(meta.num_row_groups):
                self.groups.append((k, g))
                offsets.append(offsets[-1] + meta.row_group(g).num_rows)
        wanted = set(self.stored.values())
        nullable: set[str] = set()
        wide: set[str] = set()
        for f in sorted({*self.files, *(self.path / "data").glob("*.parquet")}):
            meta = pq.ParquetFile(f).metadata
            for g in range(meta.num_row_groups):
                rg = meta.row_group(g)
                for i in range(rg.num_columns):
                    col = rg.column(i)
                    name = col.path_in_schema.split(".")[0]
                    if name not in wanted:
                        continue
                    stats = col.statistics
                    if stats is None or stats.null_count:
                        nullable.add(name)
                    if stats is None or not stats.has_min_max:
                        continue
                    if isinstance(stats.min, int) and not isinstance(stats.min, bool):
                        if max(abs(stats.min), abs(stats.max)) > 2**53:
                            wide.add(name)
        self.wide = frozenset(wide)
        return offsets, frozenset(nullable)

    def _unknown(self, missing: list[str], names: Sequence[str]) -> None:
        raise DatasetError(
            f"{self.files[0]}: no column {', '.join(missing)}; it has "
            f"{', '.join(list(names)[:15])}{', ...' if len(names) > 15 else ''}."
        )

    @property
    def blocks(self) -> tuple[int, ...]:
        """The first row of each block of rows read together, then ``len(self)``: an hf folder's
        row groups, whatever their sizes; each row for HDF5, which reads a row at a time. Give
        it to :class:`~warehouse.ml.sampler.SeededSampler` as ``block``."""
        if self.format == "hdf5":
            return tuple(range(len(self) + 1))
        return tuple(self.offsets)

    @property
    def block_size(self) -> int:
        """Rows of the largest block (an hf row group; 1 for HDF5). Blocks of this many rows
        match the row groups only when each but the last holds that many: give the sampler
        :attr:`blocks` instead."""
        if self.format == "hdf5":
            return 1
        return max(b - a for a, b in zip(self.offsets, self.offsets[1:], strict=False))

    def __len__(self) -> int:
        return self.offsets[-1]

    # -- pickling: paths only; handles are per process

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_handles"], state["_pid"], state["_cache"] = {}, -1, None
        return state

    def _handle(self, k: int) -> Any:
        if self._pid != os.getpid():  # a new worker (fork copies the parent's, never reused)
            self._handles, self._pid, self._cache = {}, os.getpid(), None
        if k not in self._handles:
            f = self.files[k]
            self._handles[k] = h5py.File(f, "r")  # hf shards are mapped per row group
        return self._handles[k]

    # -- items

    def __getitem__(self, index: int) -> Any:
        n = len(self)
        try:
            index = operator.index(index)  # numpy and torch integers too
        except TypeError:
            raise TypeError(f"a GalaxyDataset index is a whole number, got {index!r}") from None
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} rows")
        index %= n
        item = self._hdf5_item(index) if self.format == "hdf5" else self._parquet_item(index)
        return self.transform(item) if self.transform is not None else item

    def _datasets(self) -> dict[str, Any]:
        h5 = self._handle(0)
        if "datasets" not in self._handles:
            self._handles["datasets"] = {c: h5[c] for c in self.columns}
        return self._handles["datasets"]

    def _hdf5_item(self, i: int) -> dict[str, Any]:
        row = i if self.rows is None else int(self.rows[i])
        return {c: _tensor(d[row], d.dtype) for c, d in self._datasets().items()}

    def _parquet_item(self, i: int) -> dict[str, Any]:
        block = bisect.bisect_right(self.offsets, i) - 1
        if self._cache is None or self._cache[0] != block or self._pid != os.getpid():
            k, g = self.groups[block]
            if self._pid != os.getpid():
                self._handles, self._pid = {}, os.getpid()
            # Memory-mapped, a row group decodes straight from the page cache (~1.5x faster than
            # read into buffers first); mapped afresh for each row group, so that the pages of
            # those already read leave the process (its RSS stays a row group or two). One
            # thread: DataLoader workers are the parallelism.
            shard = pq.ParquetFile(self.files[k], memory_map=True)
            stored = list(dict.fromkeys(self.stored.values()))
            table = shard.read_row_group(g, columns=stored, use_threads=False)
            del shard
            self._cache = (block, {c: self._column(table, c) for c in self.columns})
        j = i - self.offsets[block]
        out: dict[str, Any] = {}
        for c, values in self._cache[1].items():
            out[c] = _tensor(values[j], values.dtype)
        return out

    def _column(self, table: pa.Table, name: str) -> np.ndarray:
        """``name`` of a row group; ``<column>_isnull`` (which HDF5 exports store) is derived
        from the column's Parquet NULLs when the shard has no such column."""
        if self.stored[name] != name:
            return table.column(self.stored[name]).is_null().to_numpy(zero_copy_only=False)
        return self._block(table.column(name), name)

    def _block(self, col: pa.ChunkedArray, name: str) -> np.ndarray:
        arr = col.combine_chunks()
        t = arr.type
        if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
            shape = [len(arr)]
            while pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
                arr = arr.flatten()
                t = t.value_type
            values = arr.to_numpy(zero_copy_only=False)
            return values.reshape(*shape, *_inner_shape(col.type))
        if name in self.wide and pa.types.is_integer(t):
            return arr.fill_null(0).to_numpy(zero_copy_only=False)  # exact; NULL -> 0
        if name in self.nullable and (pa.types.is_integer(t) or pa.types.is_boolean(t)):
            return arr.cast(pa.float64()).to_numpy(zero_copy_only=False)  # NULL -> NaN
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return np.array(arr.fill_null("").to_pylist(), dtype=object)  # NULL -> "", as HDF5
        return arr.to_numpy(zero_copy_only=False)


def _file_split(path: Path, split: str | None) -> tuple[str, np.ndarray | None]:
    """The split an HDF5 export file holds (its ``split`` attribute), and None: ``split``, when
    given, must be that one. A file of several splits (``--sql`` over ``ml_objects``, attribute
    ``all``, with a ``split`` column) gives ``split``'s rows: every row would put the other
    splits' objects in this one without a word."""
    with h5py.File(path, "r") as h5:
        held = h5.attrs.get("split")
        held = held.decode() if isinstance(held, bytes) else held
        if held in SPLIT_NAMES:
            if split is not None and split != held:
                raise DatasetError(
                    f"{path} holds the {held} split, not {split}: give split={held!r}, or the "
                    f"folder holding {split}.h5"
                )
            return held, None
        column = h5.get("split")
        if split is None or not isinstance(column, h5py.Dataset) or column.ndim != 1:
            return split or (held if isinstance(held, str) and held else "train"), None
        values = column.asstr()[:]  # str per row; compared below in one step
    rows = np.flatnonzero(values == split)
    if rows.size == 0:
        held_splits = ", ".join(sorted(set(values.tolist()))) or "none"
        raise DatasetError(
            f"{path} has no {split} rows in its split column (it holds {held_splits}); give "
            "one of those, or export the split with gwh export --split."
        )
    return split, rows


def _isnull_of(name: str) -> str | None:
    """The column whose NULLs ``name`` (``<column>_isnull``) flags, else None."""
    return name[: -len("_isnull")] if name.endswith("_isnull") else None


def _inner_shape(t: pa.DataType) -> list[int]:
    shape = []
    while pa.types.is_fixed_size_list(t):
        shape.append(t.list_size)
        t = t.value_type
    return shape


def _tensor(value: Any, dtype: np.dtype) -> Any:
    if dtype.kind in ("O", "S", "U"):
        return value.decode() if isinstance(value, bytes) else value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.array(value))  # a copy the tensor owns
    return torch.tensor(value)
