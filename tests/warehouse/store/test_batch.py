"""One version from many inputs (UpsertBatch): the same table as loading them one by one,
each partition written once, spilled runs removed."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.store import TableSpec, merge_version, read_version
from warehouse.store.batch import UpsertBatch
from warehouse.store.spill import Spill

SPEC = TableSpec("things", key=("object_id",), ra="ra", dec="dec")
BIG_ID = 43158172147386355


def _inputs(n_files=4, n=3000, overlap=400, seed=3):
    """Files over the same sky whose keys overlap: a later file moves and changes some rows."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_files):
        ids = BIG_ID + np.concatenate(
            [np.arange(i * n, (i + 1) * n), rng.choice(i * n + n, overlap, replace=False)]
        )
        ids = np.unique(ids)
        out.append(
            pa.table(
                {
                    "object_id": pa.array(ids, pa.int64()),
                    "ra": rng.uniform(149.0, 151.0, ids.size),
                    "dec": rng.uniform(1.0, 3.0, ids.size),
                    "mag": pa.array(rng.normal(22, 1, ids.size), pa.float32()),
                    "file": pa.array(np.full(ids.size, i), pa.int32()),
                }
            )
        )
    return out


def _content(cv) -> pa.Table:
    return pq.read_table(cv.files()).sort_by("object_id")


def _margin(cv) -> pa.Table:
    margin = read_version(cv.margin)
    return pq.read_table([margin.path / p.relpath for p in margin.partitions]).sort_by(
        [("object_id", "ascending"), ("_healpix_29", "ascending")]
    )


def _one_by_one(previous, tables, dest):
    for i, t in enumerate(tables):
        previous = merge_version(
            previous, t, SPEC, dest / f"s{i}", max_rows=800, max_order=10, source=f"f{i}"
        )
    return previous


def _batch(previous, tables, dest, scratch):
    batch = UpsertBatch(SPEC, previous, scratch)
    for i, t in enumerate(tables):
        batch.add(t, f"f{i}")
    return batch.commit(dest, max_rows=800, max_order=10, margin_arcsec=10.0)


@pytest.fixture(params=["runs on disk", "runs in memory", "in memory"])
def budget(request, monkeypatch):
    """Every way to hold a load's rows: sorted runs on disk, sorted runs held in memory (under
    the spill's budget), or the inputs themselves in memory (under the batch's budget)."""
    if request.param.startswith("runs"):
        monkeypatch.setattr("warehouse.store.batch.MEMORY_BUDGET", 0)
    if request.param == "runs on disk":
        monkeypatch.setattr("warehouse.store.spill.RESIDENT_BYTES", 0)
    return request.param


def test_batch_equals_loading_one_by_one_and_spills_nothing_behind(tmp_path, budget):
    tables = _inputs()
    want = _one_by_one(None, tables, tmp_path / "seq")
    got = _batch(None, tables, tmp_path / "b", tmp_path / "scratch")
    assert _content(got).equals(_content(want))
    assert got.partitions == want.partitions
    assert _margin(got).equals(_margin(want))
    assert not (tmp_path / "scratch").exists()
    # a key in several files keeps the last file's row (and its position)
    t = _content(got)
    last = {}
    for i, table in enumerate(tables):
        for oid in table.column("object_id").to_pylist():
            last[oid] = i
    assert t.column("file").to_pylist() == [last[o] for o in t.column("object_id").to_pylist()]


def test_a_file_added_in_parts_is_spilled_from_its_first_or_second_part(tmp_path):
    # well under the memory budget: two files stay in memory, a file's second part starts the
    # spill (its rows are sorted while the next part is read), with the same result
    a, b = _inputs(n_files=2)
    small = UpsertBatch(SPEC, None, tmp_path / "small")
    small.add(a, "a.parquet")
    small.add(b, "b.parquet")
    assert not (tmp_path / "small").exists()
    small.close()
    parts = UpsertBatch(SPEC, None, tmp_path / "parts")
    parts.add(a.slice(0, 1000), "a.parquet")
    assert not (tmp_path / "parts").exists()
    parts.add(a.slice(1000), "a.parquet")
    assert (tmp_path / "parts").exists()
    got = parts.commit(tmp_path / "v", max_rows=800, max_order=10, margin_arcsec=10.0)
    want = merge_version(None, a, SPEC, tmp_path / "w", max_rows=800, max_order=10, source="a")
    assert _content(got).equals(_content(want)) and got.partitions == want.partitions
    assert not (tmp_path / "parts").exists()
    # a part the loader marks as one (a file read in chunks) is spilled from the first part
    marked = UpsertBatch(SPEC, None, tmp_path / "marked")
    marked.add(a.slice(0, 1000), "a.parquet", part=True)
    assert (tmp_path / "marked").exists()
    marked.add(a.slice(1000), "a.parquet", part=True)
    got = marked.commit(tmp_path / "m", max_rows=800, max_order=10, margin_arcsec=10.0)
    assert _content(got).equals(_content(want)) and got.partitions == want.partitions
    assert not (tmp_path / "marked").exists()


def test_batch_onto_a_previous_version_keeps_columns_the_inputs_lack(tmp_path, budget):
    base = _inputs(n_files=1, seed=5)[0].append_column(
        "extra", pa.array(np.arange(3000 + 0, dtype=np.float64)[: _inputs(1, seed=5)[0].num_rows])
    )
    v1 = merge_version(None, base, SPEC, tmp_path / "v1", max_rows=800, max_order=10, source="b")
    tables = _inputs(seed=9)  # overlaps base's ids: those rows keep their `extra`
    want = _one_by_one(v1, tables, tmp_path / "seq")
    got = _batch(v1, tables, tmp_path / "b", tmp_path / "scratch")
    assert _content(got).equals(_content(want))
    assert _content(got).column("extra").null_count < got.nrows  # some kept their value
    assert _margin(got).equals(_margin(want))


@pytest.mark.parametrize("onto", ["a first load", "stored rows"])
def test_a_composite_key_across_inputs_keeps_the_last_row(tmp_path, budget, onto):
    # spec-z-like keys (object_id, name): an object's spectra differ by name, and a later file
    # repeats some (object_id, name) keys; on a first load the keys are computed only when the
    # second input shows they are needed
    spec = TableSpec("spectra", key=("object_id", "name"), ra="ra", dec="dec")
    tables = [
        t.append_column("name", pa.array([f"s{i % 2}" for i in range(t.num_rows)]))
        for t in _inputs(n_files=3)
    ]
    previous = None
    if onto == "stored rows":
        previous = merge_version(
            None, tables[0], spec, tmp_path / "v1", max_rows=800, max_order=10, source="a"
        )
    want = previous
    for i, t in enumerate(tables):
        want = merge_version(
            want, t, spec, tmp_path / f"s{i}", max_rows=800, max_order=10, source=f"f{i}"
        )
    batch = UpsertBatch(spec, previous, tmp_path / "scratch")
    for i, t in enumerate(tables):
        batch.add(t, f"f{i}")
    got = batch.commit(tmp_path / "b", max_rows=800, max_order=10, margin_arcsec=10.0)
    order = [("object_id", "ascending"), ("name", "ascending")]
    rows = pq.read_table(got.files()).sort_by(order)
    assert rows.equals(pq.read_table(want.files()).sort_by(order))
    assert not (tmp_path / "scratch").exists()


def test_inputs_without_positions_or_other_columns_are_combined_in_memory(tmp_path, budget):
    tables = _inputs(n_files=2)
    v1 = merge_version(
        None, tables[0], SPEC, tmp_path / "v1", max_rows=800, max_order=10, source="a"
    )
    no_pos = pa.table(
        {
            "object_id": tables[0].column("object_id").slice(0, 50),
            "flag": pa.array([True] * 50),
        }
    )
    more = [tables[1], no_pos, tables[1].select(["object_id", "ra", "dec"]).slice(0, 20)]
    want = _one_by_one(v1, more, tmp_path / "seq")
    got = _batch(v1, more, tmp_path / "b", tmp_path / "scratch")
    assert _content(got).equals(_content(want))
    assert _content(got).column("flag").to_pylist().count(True) == 50


@pytest.mark.parametrize("resident", [0, 1 << 30])
def test_spill_reads_back_ranges_across_batches(tmp_path, monkeypatch, resident):
    monkeypatch.setattr("warehouse.store.spill.RESIDENT_BYTES", resident)
    monkeypatch.setattr("warehouse.store.spill.RUN_ROWS", 700)
    monkeypatch.setattr("warehouse.store.spill.BATCH_ROWS", 64)
    t = _inputs(n_files=1)[0]
    spill = Spill(tmp_path / "s", SPEC.key, "ra", "dec")
    schema = t.schema.insert(0, pa.field("_healpix_29", pa.int64()))
    spill.add(t, schema)
    spill.finish()
    assert len(spill.runs) == -(-t.num_rows // 700)
    lo, hi = int(spill.new_h29[100]), int(spill.new_h29[2500])
    rows = pa.concat_tables(spill.rows_in(lo, hi))
    assert rows.num_rows == 2400
    h = rows.column("_healpix_29").to_numpy()
    assert ((h >= lo) & (h < hi)).all()
    on_disk = sorted(p.name for p in (tmp_path / "s").glob("run-*.arrow"))
    assert len(on_disk) == (0 if resident else len(spill.runs))
    spill.flush()  # for tasks in other processes: every run on disk, the same rows
    assert len(list((tmp_path / "s").glob("run-*.arrow"))) == len(spill.runs)
    assert pa.concat_tables(spill.rows_in(lo, hi)).equals(rows)
    spill.close()
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("n_files", [1, 3])
def test_batch_refuses_null_keys_naming_the_input(tmp_path, n_files):
    tables = _inputs(n_files=n_files)
    bad = tables[-1].set_column(0, "object_id", pa.array([None] * tables[-1].num_rows, pa.int64()))
    batch = UpsertBatch(SPEC, None, tmp_path / "scratch")
    for i, t in enumerate(tables[:-1]):
        batch.add(t, f"f{i}")
    with pytest.raises(Exception, match=f"f{n_files - 1}: .* NULL object_id"):
        batch.add(bad, f"f{n_files - 1}")
    batch.close()
    assert not (tmp_path / "scratch").exists()
