"""One load, one version: the rows of every file a command loads into a table, upserted into the
next version together, so each partition is written once however many files there are.

>>> batch = UpsertBatch(spec, previous, scratch)                 # doctest: +SKIP
>>> for path in paths:                                           # doctest: +SKIP
...     batch.add(read(path), source=str(path))
>>> cv = batch.commit(dest, max_rows=1_000_000, max_order=19, margin_arcsec=10.0)  # doctest: +SKIP

Up to :data:`MEMORY_BUDGET` the rows stay in memory. Beyond, inputs with positions and the same
columns are spilled to sorted runs (:class:`~warehouse.store.spill.Spill`: in memory up to its
own budget, then on disk), each sorted while the next input is read, and each
partition that changes is written by a :class:`~warehouse.store.tasks.PartitionTask` that reads
its rows back: memory holds an input or two and a partition or two, not the load, and two
partitions are compressed at once. A mapper given to :meth:`UpsertBatch.commit` runs the tasks
elsewhere (e.g. on Dask workers), byte for byte the same.
Anything else (an export without ra/dec, whose rows take their stored positions, or inputs with
different columns for the same keys) is combined in memory exactly as loading the files one
after the other would (:func:`~warehouse.store.merge.merge_version`).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse.damage import read_stored
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.store.margins import MarginBuilder
from warehouse.store.merge import _checked_rows, merge_version
from warehouse.store.spill import Spill
from warehouse.store.tasks import (
    MARGIN_TARGET,
    Mapper,
    PartitionResult,
    PartitionTask,
    local_map,
    write_partition_task,
)
from warehouse.store.versions import (
    CatalogVersion,
    Partition,
    TableSpec,
    _unify_schema,
    compute_partitions,
    conform,
    key_values,
    link_or_copy,
)
from warehouse.store.write import finish_version

__all__ = ["MEMORY_BUDGET", "UpsertBatch"]

MEMORY_BUDGET = 1 << 26
"""Bytes of new rows (Arrow) a load keeps as they are (64 MiB) before it spills them to sorted
runs: larger loads are faster spilled (sorted while the next input is read, partitions written
two at a time), and the first runs stay in memory anyway."""


class UpsertBatch:
    """New rows for one table from one or more inputs, committed as one version."""

    def __init__(self, spec: TableSpec, previous: CatalogVersion | None, scratch: Path):
        self.spec = spec
        self.previous = previous
        self.scratch = Path(scratch)
        self.sources: list[str] = []
        self.rows = 0  # rows added (before upserts across inputs)
        self._spill: Spill | None = None
        self._names: list[str] | None = None
        self._schema: pa.Schema | None = None  # of the new rows, over all inputs
        self._memory: list[pa.Table] = []
        self._memory_sources: list[str] = []
        self._memory_bytes = 0
        self._spilled_sources: list[str] = []

    def check(self, table: pa.Table, source: str) -> pa.Table:
        """``table`` ready to add: NULL keys and empty inputs refused (naming ``source``), columns
        without values dropped or typed as stored. Adds nothing."""
        old_schema = self.previous.schema if self.previous else None
        return _checked_rows(table, old_schema, self.spec, source)

    def add(self, table: pa.Table, source: str, checked: bool = False, part: bool = False) -> None:
        """Add one input's rows (later inputs win for a key in several); ``checked``: it came
        from :meth:`check` already. Inputs stay in memory up to :data:`MEMORY_BUDGET` bytes,
        then go to sorted runs on disk. ``part``: a part of a file read in chunks (more of it
        follows or came before): spilled at once, so it is sorted while the next is read."""
        if not checked:
            table = self.check(table, source)
        self.sources.append(source)
        self.rows += table.num_rows
        self._memory.append(table)
        self._memory_sources.append(source)
        self._memory_bytes += table.nbytes
        if (
            self._spill is None
            and self._memory_bytes <= MEMORY_BUDGET
            and not (part or self._in_parts())
        ):
            return
        if self._spillable(self._memory):
            self._spill_memory()
        elif self._spill is not None:  # this input cannot be spilled: all of it in memory
            self._memory = self._spill.read_inputs() + self._memory
            self._memory_sources = self._spilled_sources + self._memory_sources
            self._spilled_sources = []
            self._spill.close()
            self._spill = None

    def _in_parts(self) -> bool:
        """The last two inputs are parts of one file: a file read in chunks is large, so its
        rows are spilled (sorted while the next chunk is read) from its second chunk on (from
        its first when the caller says it is a part), not once the memory budget is full."""
        sources = self._memory_sources
        return len(sources) > 1 and sources[-1] == sources[-2]

    def checkpoint(self) -> int:
        """Where the batch stands: :meth:`rollback` to it drops every input added since (e.g.
        the first parts of a file whose later part is refused)."""
        return len(self.sources)

    def rollback(self, mark: int) -> None:
        dropped = set(self.sources[mark:])
        if not dropped:
            return
        self.sources = self.sources[:mark]
        kept = [
            (t, s)
            for t, s in zip(self._memory, self._memory_sources, strict=True)
            if s not in dropped
        ]
        self._memory = [t for t, _ in kept]
        self._memory_sources = [s for _, s in kept]
        self._memory_bytes = sum(t.nbytes for t in self._memory)
        self.rows = sum(t.num_rows for t in self._memory)
        if self._spill is not None:
            self._spill.drop(dropped)
            self._spilled_sources = [s for s in self._spilled_sources if s not in dropped]
            self.rows += sum(r.h29.size for r in self._spill.runs)

    def _spillable(self, tables: list[pa.Table]) -> bool:
        """Inputs with positions and the same columns as those spilled already."""
        names = self._names or sorted(tables[0].column_names)
        return all(
            self.spec.ra in t.column_names
            and self.spec.dec in t.column_names
            and sorted(t.column_names) == names
            for t in tables
        )

    def _spill_memory(self) -> None:
        if self._spill is None:
            stored = self.previous is not None and self.previous.nrows > 0
            self._spill = Spill(
                self.scratch, self.spec.key, self.spec.ra, self.spec.dec, eager_keys=stored
            )
        self._names = sorted(self._memory[0].column_names)
        while self._memory:  # each input leaves memory as soon as it is on disk
            table, source = self._memory.pop(0), self._memory_sources.pop(0)
            self._schema = _unify_schema(self._schema, table.schema)
            self._spill.add(conform(table, self._schema, source), self._schema, source)
            self._spilled_sources.append(source)
            del table
        self._memory_bytes = 0

    def commit(
        self,
        dest: Path,
        *,
        max_rows: int,
        max_order: int,
        margin_arcsec: float | None,
        mapper: Mapper | None = None,
    ) -> CatalogVersion:
        """Write the next version into ``dest``.

        ``mapper(write_partition_task, tasks)`` runs the partition tasks and returns their
        results in task order (default :func:`~warehouse.store.tasks.local_map`, here). With a
        mapper, every input that can be is spilled first, so the tasks find their rows on disk
        (another process may run them); inputs that cannot (no positions, other columns) are
        combined here in memory."""
        try:
            if mapper is not None and self._spill is None and self._memory:
                if self._spillable(self._memory):
                    self._spill_memory()
            if mapper is not None and self._spill is not None:
                self._spill.flush()  # the tasks run elsewhere: every run on disk
            if self._spill is None:
                return self._merge_in_memory(
                    dest, max_rows=max_rows, max_order=max_order, margin_arcsec=margin_arcsec
                )
            return _merge_spilled(
                self.previous,
                self._spill,
                self.spec,
                dest,
                self._label(),
                max_rows=max_rows,
                max_order=max_order,
                margin_arcsec=margin_arcsec,
                mapper=mapper or local_map,
            )
        finally:
            self.close()

    def _merge_in_memory(
        self, dest: Path, *, max_rows: int, max_order: int, margin_arcsec: float | None
    ) -> CatalogVersion:
        """Consecutive inputs with the same columns are combined (the latest row of a key wins);
        groups with other columns are upserted one after the other through versions in the
        scratch folder, as loading them one by one would (a row keeps what it does not carry)."""
        groups: list[tuple[list[pa.Table], list[str]]] = []
        for table, source in zip(self._memory, self._memory_sources, strict=True):
            if groups and sorted(groups[-1][0][0].column_names) == sorted(table.column_names):
                groups[-1][0].append(table)
                groups[-1][1].append(source)
            else:
                groups.append(([table], [source]))
        previous = self.previous
        for i, (tables, sources) in enumerate(groups):
            last = i == len(groups) - 1
            previous = merge_version(
                previous,
                tables,
                self.spec,
                dest if last else self.scratch / f"step-{i}",
                max_rows=max_rows,
                max_order=max_order,
                source=sources,
                margin_arcsec=margin_arcsec if last else None,
            )
        assert previous is not None
        return previous

    def close(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        self._memory, self._memory_sources = [], []
        shutil.rmtree(self.scratch, ignore_errors=True)

    def _label(self) -> str:
        n = len(self.sources)
        return self.sources[0] if n == 1 else f"{self.sources[0]} (and {n - 1} more)"


def _stored_index(previous: CatalogVersion | None, key: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """(keys, _healpix_29) of every stored row, read from two columns of each partition."""
    if previous is None or not previous.nrows:
        return None, np.zeros(0, np.int64)
    tables = [read_stored(f, columns=list(key) + [SPATIAL_INDEX_COLUMN]) for f in previous.files()]
    stored = pa.concat_tables(tables)
    return key_values(stored, key), stored.column(SPATIAL_INDEX_COLUMN).to_numpy()


def _merge_spilled(
    previous: CatalogVersion | None,
    spill: Spill,
    spec: TableSpec,
    dest: Path,
    source: str,
    *,
    max_rows: int,
    max_order: int,
    margin_arcsec: float | None,
    mapper: Mapper,
) -> CatalogVersion:
    """The next version from spilled runs: one :class:`PartitionTask` per partition that
    changes, run by ``mapper``; unchanged partitions are linked."""
    new_keys = spill.finish()  # None: nothing stored to replace (no eager keys)
    assert spill.schema is not None and spill.new_h29 is not None
    old_schema = previous.schema if previous else None
    schema = _unify_schema(old_schema, spill.schema)
    schema_changed = old_schema is None or not old_schema.equals(schema)
    stored_keys, stored_h29 = _stored_index(previous, spec.key)
    if stored_keys is not None:
        assert new_keys is not None  # a spill onto stored rows computes its keys
        touched = pc.is_in(stored_keys, value_set=new_keys).to_numpy(zero_copy_only=False)
    else:
        touched = np.zeros(0, bool)
    order = np.argsort(stored_h29[touched], kind="stable")
    replaced_h29 = stored_h29[touched][order]
    replaced_keys = (
        stored_keys.filter(pa.array(touched)).take(pa.array(order)) if touched.any() else None
    )
    kept = stored_h29[~touched]
    all_h29 = spill.new_h29  # sorted (a first load: 1.89 M rows, 15 ms, not sorted again)
    if kept.size:
        all_h29 = np.sort(np.concatenate([kept, all_h29]), kind="stable")
    del stored_keys, stored_h29
    missing = [
        f.name
        for f in (old_schema or [])
        if f.name not in spill.schema.names and f.name != SPATIAL_INDEX_COLUMN
    ]
    folder = spill.folder
    fill = None
    if missing and replaced_keys is not None:
        assert previous is not None
        index = folder / "replaced.arrow"
        _write_ipc(pa.table({"k": replaced_keys, "h29": replaced_h29}), index)
        fill = (str(previous.path), str(index), tuple(missing))
    layout = compute_partitions(all_h29, max_rows, max_order)
    catalog = dest / spec.name if margin_arcsec is not None else dest
    catalog.mkdir(parents=True, exist_ok=True)
    old_parts = set(previous.partitions) if previous else set()
    serialized = schema.serialize().to_pybytes()
    every = tuple((p.order, p.pixel) for p, _ in layout)
    written: list[tuple[Partition, Path]] = []
    linked: list[Partition] = []
    tasks: list[PartitionTask] = []
    for i, (part, count) in enumerate(layout):
        lo, hi = part.h29_range()
        target = catalog / part.relpath
        written.append((part, target))
        a = int(np.searchsorted(replaced_h29, lo, "left"))
        b = int(np.searchsorted(replaced_h29, hi, "left"))
        new = spill.slices(lo, hi)
        if not (schema_changed or part not in old_parts or new or b > a):
            assert previous is not None
            target.parent.mkdir(parents=True, exist_ok=True)
            link_or_copy(previous.path / part.relpath, target)
            linked.append(part)
            continue
        drop = None
        if b > a and replaced_keys is not None:
            drop = folder / f"drop-{i:06d}.arrow"
            _write_ipc(pa.table({"k": replaced_keys.slice(a, b - a)}), drop)
        olds: tuple[str, ...] = ()
        if previous is not None:
            olds = tuple(
                str(previous.path / op.relpath)
                for op in previous.partitions
                if op.h29_range()[0] < hi and lo < op.h29_range()[1]
            )
        tasks.append(
            PartitionTask(
                part.order,
                part.pixel,
                count,
                str(target),
                serialized,
                spec.key,
                source,
                tuple(new),
                olds,
                str(drop) if drop else None,
                fill,
                margin_arcsec,
                every if margin_arcsec else (),
                str(folder / f"margin-{i:06d}.arrow") if margin_arcsec else None,
                parquet=spec.layout,
            )
        )
    margins = MarginBuilder([p for p, _ in layout], margin_arcsec) if margin_arcsec else None
    # the largest partitions first: two workers finish together, not one with the largest last
    by_size = sorted(range(len(tasks)), key=lambda i: -tasks[i].rows)
    results: list[PartitionResult | None] = [None] * len(tasks)
    ran = mapper(write_partition_task, [tasks[i] for i in by_size])
    for i, done in zip(by_size, ran, strict=True):
        results[i] = done
    for result in results:  # margins collected in layout order, however the tasks ran
        assert result is not None
        if margins is not None and result.margin is not None:
            rows = _read_ipc(result.margin)
            targets = rows.column(MARGIN_TARGET).to_numpy()
            margins.add_routed(rows.drop_columns([MARGIN_TARGET]), targets)
    return finish_version(
        previous, spec, dest, catalog, schema, written, linked, margins,
        nrows=int(all_h29.size), max_rows=max_rows, margin_arcsec=margin_arcsec,
    )  # fmt: skip


def _write_ipc(table: pa.Table, path: Path) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)


def _read_ipc(path: str) -> pa.Table:
    with pa.OSFile(path, "rb") as source:
        return pa.ipc.open_file(source).read_all()
