"""Rows of many input files on their way to one version: sorted runs on disk, read back partition
by partition, so a load holds one input file (not the whole load) in memory and writes every
partition once however many files it loads.

Each input table (one file's rows for one table, with positions) is cut into runs of at most
:data:`RUN_ROWS` rows; each run is sorted by ``_healpix_29`` and key. The first runs, up to
:data:`RESIDENT_BYTES`, stay in memory (a load that fits is never written twice); the others
are written to Arrow IPC files in the load's scratch folder (:meth:`Spill.flush` writes the
resident ones too, for tasks run by other processes). :meth:`Spill.rows_in` reads back the rows
of one HEALPix range from every run. A key in several inputs keeps the row of the latest
(:meth:`Spill.finish` marks the winners): the same result as loading the files one after the
other, each replacing the last.
"""

from __future__ import annotations

import contextlib
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.healpix import SPATIAL_INDEX_COLUMN, spatial_index
from warehouse.store.tasks import RunSlice
from warehouse.store.versions import key_values, sort_order

__all__ = ["RUN_ROWS", "Spill"]

RUN_ROWS = 500_000
"""Rows sorted at once: a run's sorted copy is the only copy a spill makes in memory."""
RESIDENT_BYTES = 256 << 20
"""Bytes of sorted runs a spill keeps in memory (256 MiB): a load of that size writes no run to
disk; a larger one writes only the runs beyond it, so memory stays bounded (at 512 MiB a
20-file load of 10 M rows peaked at 2.8 GiB, at 256 MiB 2.6 GiB, with no loss of speed)."""
BATCH_ROWS = 65_536
"""Rows per IPC record batch: the granularity of reading a HEALPix range back."""


@dataclass
class _Run:
    path: Path
    seq: int  # input order: a later input's row wins
    h29: np.ndarray  # sorted
    keys: pa.Array | None  # in the run's (sorted) order (None: not computed yet)
    source: str = ""  # the input it came from
    keep: np.ndarray | None = None  # rows that win across inputs (None: all)
    table: pa.Table | None = None  # the run, while it is held in memory (else at ``path``)


class Spill:
    """Sorted runs of the new rows of one table, in ``folder`` (removed by :meth:`close`)."""

    def __init__(
        self, folder: Path, key: tuple[str, ...], ra: str, dec: str, eager_keys: bool = True
    ):
        """``eager_keys``: each run's keys are computed as it is sorted (a load onto stored rows
        needs them to find the rows it replaces); False: only when :meth:`finish` needs them
        (several inputs), e.g. a table's first load, whose composite keys (spec-z) cost a
        string per row."""
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.key, self.ra, self.dec = key, ra, dec
        self.eager_keys = eager_keys
        self.runs: list[_Run] = []
        self.schema: pa.Schema | None = None
        self.inputs = 0
        self.new_h29: np.ndarray | None = None  # sorted h29 of the winning rows (finish)
        self.nrows = 0
        self._last_source: str | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-spill")
        self._pending: Future | None = None
        self._resident = 0  # bytes of the runs held in memory

    def add(self, table: pa.Table, schema: pa.Schema, source: str = "") -> None:
        """Spill one input's rows (already checked, with ra/dec), cast to ``schema``.

        Consecutive parts of one ``source`` (a file read in chunks) are one input: a source
        never repeats a key (loaders check that over the whole file)."""
        h29 = spatial_index(  # here, while the thread sorts the input before
            table.column(self.ra).to_numpy(zero_copy_only=False),
            table.column(self.dec).to_numpy(zero_copy_only=False),
        )
        self.wait()
        if self._last_source is None or self._last_source != source or not source:
            self.inputs += 1
        self._last_source = source
        self.schema = schema
        # sorted and written by a thread while the caller reads the next input
        self._pending = self._pool.submit(self._add, table, h29, schema, source, self.inputs - 1)

    def wait(self) -> None:
        """Until the last :meth:`add` is on disk (raises what it raised)."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def _add(
        self, table: pa.Table, h29: np.ndarray, schema: pa.Schema, source: str, seq: int
    ) -> None:
        if SPATIAL_INDEX_COLUMN in table.column_names:
            table = table.drop_columns([SPATIAL_INDEX_COLUMN])
        table = table.append_column(SPATIAL_INDEX_COLUMN, pa.array(h29, pa.int64()))
        for start in range(0, table.num_rows, RUN_ROWS):
            part = table.slice(start, RUN_ROWS)
            order = sort_order(part, self.key)
            part = part.take(pa.array(order)).select(schema.names).cast(schema)
            keys = key_values(part, self.key) if self.eager_keys else None
            h29 = part.column(SPATIAL_INDEX_COLUMN).to_numpy()
            run = _Run(self.folder / f"run-{len(self.runs):05d}.arrow", seq, h29, keys, source)
            if self._resident + part.nbytes <= RESIDENT_BYTES:
                run.table = part  # never written: the tasks take their slices from memory
                self._resident += part.nbytes
            else:
                _write_run(part, run.path)
            self.runs.append(run)
            del part, run

    def flush(self) -> None:
        """Write the runs held in memory to their files (tasks in other processes read them)."""
        self.wait()
        for r in self.runs:
            if r.table is not None:
                _write_run(r.table, r.path)
                r.table = None
        self._resident = 0

    def finish(self) -> pa.Array | None:
        """Mark the rows that win across inputs; returns every new key once (None: one input
        and no ``eager_keys``: nothing to compare them with)."""
        self.wait()
        keys = None
        if self.inputs > 1 or self.eager_keys:
            keys = pa.chunked_array([self._keys(r) for r in self.runs]).combine_chunks()
        if keys is not None and self.inputs > 1:
            keys = self._winners(keys)
        h = [r.h29 if r.keep is None else r.h29[r.keep] for r in self.runs]
        # stable: a merge of the sorted runs, several times faster than sorting anew
        self.new_h29 = np.sort(np.concatenate(h), kind="stable") if h else np.zeros(0, np.int64)
        self.nrows = int(self.new_h29.size)
        return keys

    def _keys(self, run: _Run) -> pa.Array:
        """The run's keys (computed now if they were not as it was sorted)."""
        if run.keys is None:
            if run.table is not None:
                run.keys = key_values(run.table, self.key)
            else:
                with pa.memory_map(str(run.path), "r") as source:
                    stored = pa.ipc.open_file(source).read_all().select(list(self.key))
                    run.keys = key_values(stored, self.key)
        return run.keys

    def _winners(self, keys: pa.Array) -> pa.Array:
        """Mark the rows that win across inputs (``keys``: every run's, in run order); returns
        every key once."""
        if pa.types.is_integer(keys.type):
            return self._winners_by_sorting(keys)
        if pc.count_distinct(keys).as_py() == len(keys):
            return keys
        # unique per row, larger for later inputs (inputs never repeat a key within)
        sizes = [r.h29.size for r in self.runs]
        rank = np.arange(len(keys), dtype=np.int64) + np.repeat(
            np.array([r.seq for r in self.runs], np.int64) << np.int64(40), sizes
        )
        ids = pa.table({"k": keys, "r": pa.array(rank)})
        best = ids.group_by("k", use_threads=False).aggregate([("r", "max")])
        winners = pc.is_in(pa.array(rank), value_set=best.column("r_max")).to_numpy(
            zero_copy_only=False
        )
        self._mark(winners)
        return best.column("k").combine_chunks()

    def _mark(self, winners: np.ndarray) -> None:
        offset = 0
        for r in self.runs:
            r.keep = winners[offset : offset + r.h29.size]
            offset += r.h29.size

    def _winners_by_sorting(self, keys: pa.Array) -> pa.Array:
        """:meth:`finish` for an integer key: a stable sort puts a key's rows in input order,
        the last one wins. Returns every key once."""
        values = keys.to_numpy(zero_copy_only=False)
        order = np.argsort(values, kind="stable")
        ordered = values[order]
        repeated = ordered[1:] == ordered[:-1]  # row i is followed by a later row of its key
        if not repeated.any():
            return keys
        winners = np.ones(values.size, bool)
        winners[order[:-1][repeated]] = False
        self._mark(winners)
        return pa.array(ordered[np.append(~repeated, True)], keys.type)

    def rows_in(self, lo: int, hi: int) -> list[pa.Table]:
        """The winning new rows with ``lo <= _healpix_29 < hi``, one sorted piece per run."""
        out = []
        for r in self.runs:
            a = int(np.searchsorted(r.h29, lo, "left"))
            b = int(np.searchsorted(r.h29, hi, "left"))
            if b <= a:
                continue
            piece = r.table.slice(a, b - a) if r.table is not None else _read_rows(r.path, a, b)
            if r.keep is not None:
                piece = piece.filter(pa.array(r.keep[a:b]))
            if piece.num_rows:
                out.append(piece)
        return out

    def slices(self, lo: int, hi: int) -> list[RunSlice]:
        """Where :meth:`rows_in` finds its rows: a slice of each run (for a partition task,
        which reads them in any process); the winners across inputs saved beside the runs."""
        out = []
        for r in self.runs:
            a = int(np.searchsorted(r.h29, lo, "left"))
            b = int(np.searchsorted(r.h29, hi, "left"))
            if b <= a or (r.keep is not None and not r.keep[a:b].any()):
                continue
            keep = None
            if r.keep is not None and not r.keep[a:b].all():
                keep_file = r.path.with_suffix(".keep.npy")
                if not keep_file.exists():
                    np.save(keep_file, r.keep)
                keep = str(keep_file)
            out.append(RunSlice(str(r.path), a, b, keep, r.table))
        return out

    def read_inputs(self) -> list[pa.Table]:
        """Every input back, in input order (rows sorted by position within each run)."""
        self.wait()
        out: dict[int, list[pa.Table]] = {}
        for r in self.runs:
            if r.table is not None:
                out.setdefault(r.seq, []).append(r.table)
                continue
            with pa.OSFile(str(r.path), "rb") as source:
                out.setdefault(r.seq, []).append(pa.ipc.open_file(source).read_all())
        return [pa.concat_tables(out[k], promote_options="permissive") for k in sorted(out)]

    def drop(self, sources: set[str]) -> None:
        """Forget the runs of these inputs (see UpsertBatch.rollback)."""
        self.wait()
        for r in self.runs:
            if r.source in sources:
                r.path.unlink(missing_ok=True)
                if r.table is not None:
                    self._resident -= r.table.nbytes
                    r.table = None
        self.runs = [r for r in self.runs if r.source not in sources]

    def close(self) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                pending.result()
        self._pool.shutdown(wait=True)
        for r in self.runs:
            r.table = None
        self._resident = 0
        shutil.rmtree(self.folder, ignore_errors=True)


def _write_run(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=BATCH_ROWS)


def _read_rows(path: Path, a: int, b: int) -> pa.Table:
    """Rows ``a:b`` of an IPC file written in batches of :data:`BATCH_ROWS` (read, not mapped:
    a load's memory holds one partition's rows, not the whole spill)."""
    first, last = a // BATCH_ROWS, (b - 1) // BATCH_ROWS
    with pa.OSFile(str(path), "rb") as source:
        reader = pa.ipc.open_file(source)
        batches = [reader.get_batch(i) for i in range(first, last + 1)]
        table = pa.Table.from_batches(batches, reader.schema)
    return table.slice(a - first * BATCH_ROWS, b - a)
