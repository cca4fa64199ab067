"""Partition tasks (warehouse.store.tasks): a version written by tasks run in other processes
is byte for byte the version written here."""

from __future__ import annotations

import filecmp
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.store import TableSpec, merge_version, read_version
from warehouse.store.batch import UpsertBatch
from warehouse.store.tasks import PartitionTask, take_rows, write_partition_task

SPEC = TableSpec("things", key=("object_id",), ra="ra", dec="dec")


def _table(seed: int, first: int, n: int = 3000) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "object_id": pa.array(43158172147386355 + first + np.arange(n), pa.int64()),
            "ra": rng.uniform(149.0, 151.0, n),
            "dec": rng.uniform(1.0, 3.0, n),
            "mag": pa.array(rng.normal(22, 1, n), pa.float32()),
        }
    )


def _commit(previous, tables, dest, scratch, mapper=None):
    batch = UpsertBatch(SPEC, previous, scratch)
    for i, t in enumerate(tables):
        batch.add(t, f"f{i}")
    return batch.commit(dest, max_rows=800, max_order=10, margin_arcsec=10.0, mapper=mapper)


def _files(cv) -> list:
    out = [cv.path / p.relpath for p in cv.partitions]
    margin = read_version(cv.margin)
    return out + [margin.path / p.relpath for p in margin.partitions]


def test_tasks_run_in_other_processes_write_the_same_bytes(tmp_path):
    base = _table(1, 0)
    base = base.append_column("flux", pa.array(np.arange(3000, dtype=np.float64)))
    v1 = merge_version(None, base, SPEC, tmp_path / "v1", max_rows=800, max_order=10, source="a")
    # upserts over v1 (keys 1500..) and new keys, in two files sharing some keys: no flux
    tables = [_table(2, 1500), _table(3, 2500)]
    seen: list[PartitionTask] = []

    def in_processes(function, tasks):
        tasks = list(tasks)
        seen.extend(tasks)
        with ProcessPoolExecutor(2) as pool:
            yield from pool.map(function, tasks)

    here = _commit(v1, tables, tmp_path / "here", tmp_path / "s1")
    there = _commit(v1, tables, tmp_path / "there", tmp_path / "s2", mapper=in_processes)
    assert seen and all(isinstance(t, PartitionTask) for t in seen)
    assert here.partitions == there.partitions
    a, b = _files(here), _files(there)
    assert [p.relative_to(tmp_path / "here") for p in a] == [
        p.relative_to(tmp_path / "there") for p in b
    ]
    assert all(filecmp.cmp(x, y, shallow=False) for x, y in zip(a, b, strict=True))
    # and the content is the upsert: later file wins, v1's mag kept where a file lacks it
    t = pq.read_table(there.files()).sort_by("object_id")
    assert t.num_rows == 5500
    ids = t.column("object_id").to_numpy() - 43158172147386355
    mag = t.column("mag").to_numpy(zero_copy_only=False)
    flux = t.column("flux").to_numpy(zero_copy_only=False)
    assert np.array_equal(mag[ids < 1500], base.column("mag").to_numpy()[:1500])
    assert np.array_equal(mag[ids >= 2500], _table(3, 2500).column("mag").to_numpy())
    assert np.array_equal(flux[ids < 3000], np.arange(3000))  # kept from v1
    assert t.column("flux").null_count == 2500  # new keys: no stored flux
    assert not list((tmp_path / "s2").glob("*"))  # nothing left of the spill


def test_a_task_pickles_to_paths_and_plain_values(tmp_path):
    import pickle

    seen: list[PartitionTask] = []
    again: list[str] = []

    def record(function, tasks):
        assert function is write_partition_task  # module-level: pickles by name
        for task in tasks:
            seen.append(pickle.loads(pickle.dumps(task)))
            other = str(tmp_path / f"again-{len(again)}.parquet")
            twin = PartitionTask(**{**task.__dict__, "target": other, "margin_out": None})
            again.append(function(twin).path)
            yield function(seen[-1])

    _commit(None, [_table(4, 0)], tmp_path / "v", tmp_path / "s", mapper=record)
    assert len(seen) >= 4
    for task in seen:
        assert isinstance(task.target, str) and all(isinstance(s.path, str) for s in task.new)
    assert sum(t.rows for t in seen) == 3000
    # the same task run twice writes the same bytes
    assert all(
        filecmp.cmp(t.target, other, shallow=False) for t, other in zip(seen, again, strict=True)
    )


def test_take_rows_over_several_chunks_is_table_take():
    rng = np.random.default_rng(7)
    pieces = []
    for i in range(6):  # sorted pieces of different sizes, with nulls, strings and booleans
        n = 50 + 37 * i
        pieces.append(
            pa.table(
                {
                    "k": pa.array(np.sort(rng.integers(0, 10**12, n)), pa.int64()),
                    "name": pa.array([f"s{i}-{j}" if j % 5 else None for j in range(n)]),
                    "flag": pa.array(rng.random(n) > 0.5),
                    "x": pa.array(rng.normal(size=n), pa.float32()),
                }
            )
        )
    table = pa.concat_tables(pieces)
    assert table.column(0).num_chunks == 6
    merged = np.argsort(table.column("k").to_numpy(), kind="stable")
    for indices in (
        merged[:100],  # a row group of a merge of sorted pieces
        merged[100:],
        rng.permutation(table.num_rows)[:40],  # anywhere, in any order
        np.array([table.num_rows - 1, 0, 0, 3]),  # repeated rows, first and last
        np.arange(60, 70),  # inside one chunk
    ):
        assert take_rows(table, indices).equals(table.take(pa.array(indices)))
    assert take_rows(table, np.zeros(0, np.int64)).num_rows == 0


def test_take_rows_in_long_runs_copies_slices_and_is_table_take():
    """Rows that come in long runs of consecutive rows (pieces covering their own parts of the
    sky) are sliced and copied once: the same table as a take, one chunk per column."""
    rng = np.random.default_rng(3)
    pieces = []
    for i in range(4):
        n = 3000 + 500 * i
        pieces.append(
            pa.table(
                {
                    "k": pa.array(np.arange(n, dtype=np.int64) + 10_000 * i),
                    "name": pa.array([f"s{i}-{j}" if j % 7 else None for j in range(n)]),
                    "flag": pa.array(rng.random(n) > 0.5),
                }
            )
        )
    table = pa.concat_tables(pieces)
    starts = np.cumsum([0] + [p.num_rows for p in pieces])
    # runs of 100-400 rows, alternating between the pieces, one run crossing into the next
    runs = [
        np.arange(starts[i % 4] + 400 * (i // 4), starts[i % 4] + 400 * (i // 4) + 100 + 3 * i)
        for i in range(24)
    ]
    runs.append(np.arange(starts[1] - 50, starts[1] + 150))  # from the end of one into the next
    indices = np.concatenate(runs)
    taken = take_rows(table, indices)
    assert taken.equals(table.take(pa.array(indices)))
    assert all(c.num_chunks == 1 for c in taken.columns)
    assert taken.column("k").to_pylist()[-200:] == list(range(3000 - 50, 3000)) + list(
        range(10_000, 10_150)
    )
