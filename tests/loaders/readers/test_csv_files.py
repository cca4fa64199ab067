"""CSV exports stream: parsed a chunk at a time (a load holds one chunk, not the file), with
the same table, the same checks and the same line numbers in messages as a whole-file read."""

from __future__ import annotations

import gzip

import numpy as np
import pyarrow as pa
import pytest

from loaders import registry
from loaders.readers import read_table, read_table_chunks, table_shape, to_csv_bytes
from loaders.readers.csv_files import read_csv_chunks
from warehouse.errors import LoadError
from warehouse.store.hsc_columns import declared_type


def _csv(tmp_path, table, name="forced.csv"):
    """An archive-like CSV export: a comment line with the job, then the header."""
    data = b"# job 42: select * from pdr2_wide.forced\n" + to_csv_bytes(table)
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    return path


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of 4 KiB of text: a small file streams in many batches, as a large one does."""
    monkeypatch.setattr("loaders.readers.csv_files.BLOCK_BYTES", 4096)


def _forced(field, n=None):
    t = field.forced
    return t if n is None else t.slice(0, n)


@pytest.mark.parametrize("name", ["forced.csv", "forced.csv.gz"])
def test_chunks_of_a_csv_equal_the_whole_file_with_their_first_lines(tmp_path, field, name):
    path = _csv(tmp_path, _forced(field), name)
    whole = read_table(path, declared_type)
    parts = list(read_table_chunks(path, declared_type, rows=100))
    assert len(parts) > 3
    assert all(p.table.num_rows <= 100 + 1024 for p in parts)  # a chunk, not the file
    streamed = pa.concat_tables([p.table for p in parts])
    assert streamed.schema.equals(whole.table.schema)
    assert streamed.to_pandas().equals(whole.table.to_pandas())  # NaN equals NaN here
    # rows are numbered as lines of the file (line 1 the comment, line 2 the header)
    assert parts[0].first_row == 3 == whole.first_row
    assert [p.first_row for p in parts[1:]] == list(
        3 + np.cumsum([p.table.num_rows for p in parts[:-1]])
    )
    rows, names = table_shape(path)
    assert rows == field.forced.num_rows and "object_id" in names


def test_streamed_csv_names_a_bad_value_by_its_line(tmp_path, field):
    t = _forced(field)
    mags = t.column("i_cmodel_mag").to_pylist()
    mags[700] = "abc"
    i = t.schema.get_field_index("i_cmodel_mag")
    bad = t.set_column(i, "i_cmodel_mag", pa.array([str(m) for m in mags]))
    path = _csv(tmp_path, bad)
    with pytest.raises(LoadError, match=r"line 703, column i_cmodel_mag: 'abc' is not a valid"):
        list(read_csv_chunks(path, declared_type, rows=100))


def test_a_large_csv_loads_a_chunk_at_a_time_like_the_whole_file(
    make_warehouse, field, tmp_path, monkeypatch
):
    path = _csv(tmp_path, _forced(field))
    whole = make_warehouse("whole", max_rows_per_partition=300)
    whole.load(registry.get("hsc-forced"), [path])
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 200)
    parts = list(registry.get("hsc-forced").prepare_chunks(path))
    assert len(parts) > 4 and max(p[0].table.num_rows for p in parts) <= 200 + 1024
    chunked = make_warehouse("chunked", max_rows_per_partition=300)
    chunked.load(registry.get("hsc-forced"), [path])
    q = "SELECT * FROM hsc_forced ORDER BY object_id"
    assert chunked.query(q).to_pandas().equals(whole.query(q).to_pandas())


def test_a_key_repeated_across_csv_chunks_is_refused_with_its_lines(
    make_warehouse, field, tmp_path, monkeypatch
):
    t = _forced(field)
    ids = t.column("object_id").to_numpy().copy()
    ids[900] = ids[10]  # lines 13 and 903 (a comment and the header first)
    path = _csv(tmp_path, t.set_column(t.schema.get_field_index("object_id"), "object_id",
                                       pa.array(ids)))  # fmt: skip
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 200)
    wh = make_warehouse()
    with pytest.raises(LoadError, match=r"appears more than once \(line 13, line 903"):
        wh.load(registry.get("hsc-forced"), [path])
    assert wh.current_version("hsc_forced") is None
