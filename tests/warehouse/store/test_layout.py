"""A table's Parquet layout (its contract's row-group size and per-column compression) in every
file a writer makes: partitions written in memory (merge_version) and by partition tasks
(UpsertBatch), their margins; older layouts still read, and hats/lsdb open the result."""

from __future__ import annotations

import io
import logging

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.store import ParquetLayout, TableSpec, merge_version, read_version
from warehouse.store.batch import UpsertBatch
from warehouse.store.layout import DEFAULT_ROW_GROUP_ROWS
from warehouse.store.tasks import local_map

BIG_ID = 43158172147386355
LAYOUT = ParquetLayout(row_group_rows=64, column_compression=(("*_image", "none"),))
PLAIN = TableSpec("things", key=("object_id",), ra="ra", dec="dec")
SMALL = TableSpec("things", key=("object_id",), ra="ra", dec="dec", layout=LAYOUT)


def _table(n: int, seed: int, first_id: int = BIG_ID) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "object_id": pa.array(first_id + np.arange(n), pa.int64()),
            "ra": rng.uniform(149.0, 151.0, n),
            "dec": rng.uniform(1.0, 3.0, n),
            "mag": pa.array(rng.normal(22, 1, n), pa.float32()),
            "g_image": pa.array([rng.bytes(64) for _ in range(n)], pa.binary()),
        }
    )


def _files(cv) -> list:
    files = list(cv.files())
    if cv.margin is not None:
        margin = read_version(cv.margin)
        files += [margin.path / p.relpath for p in margin.partitions]
    return files


def _write(how: str, spec: TableSpec, previous, table: pa.Table, dest, scratch):
    if how == "merge_version":
        return merge_version(
            previous, table, spec, dest, max_rows=1500, max_order=10, margin_arcsec=10.0,
            source="f",
        )  # fmt: skip
    batch = UpsertBatch(spec, previous, scratch)
    batch.add(table, "f")
    # with a mapper, the rows are spilled and every partition is a PartitionTask
    return batch.commit(dest, max_rows=1500, max_order=10, margin_arcsec=10.0, mapper=local_map)


def _codecs(path) -> dict[str, set[str]]:
    md = pq.read_metadata(path)
    out: dict[str, set[str]] = {}
    for g in range(md.num_row_groups):
        for c in range(md.num_columns):
            col = md.row_group(g).column(c)
            out.setdefault(col.path_in_schema, set()).add(col.compression)
    return out


@pytest.mark.parametrize("how", ["merge_version", "tasks"])
def test_every_partition_and_margin_file_has_the_table_layout(tmp_path, how):
    table = _table(5000, seed=1)
    cv = _write(how, SMALL, None, table, tmp_path / "v1", tmp_path / "s")
    files = _files(cv)
    assert cv.margin is not None and len(files) > len(cv.partitions) > 2
    for path in files:
        md = pq.read_metadata(path)
        sizes = [md.row_group(g).num_rows for g in range(md.num_row_groups)]
        assert sizes[:-1] == [64] * (len(sizes) - 1) and 0 < sizes[-1] <= 64, path
        codecs = _codecs(path)
        assert codecs.pop("g_image") == {"UNCOMPRESSED"}
        assert set().union(*codecs.values()) == {"SNAPPY"}
    plain = _write(how, PLAIN, None, table, tmp_path / "p1", tmp_path / "ps")
    for path in plain.files():
        md = pq.read_metadata(path)
        assert md.num_row_groups == -(-md.num_rows // DEFAULT_ROW_GROUP_ROWS)
        assert set().union(*_codecs(path).values()) == {"SNAPPY"}
    assert pq.read_table(cv.files()).equals(pq.read_table(plain.files()))


@pytest.mark.parametrize("how", ["merge_version", "tasks"])
def test_a_version_written_with_the_old_layout_reads_and_takes_the_new_one_where_rewritten(
    tmp_path, how
):
    old = _table(5000, seed=2)
    v1 = _write(how, PLAIN, None, old, tmp_path / "v1", tmp_path / "s1")
    moved = _table(200, seed=3)  # the same first ids, now elsewhere in the box: upserts
    v2 = _write(how, SMALL, v1, moved, tmp_path / "v2", tmp_path / "s2")
    got = pq.read_table(v2.files()).sort_by("object_id")
    want = pa.concat_tables([moved, old.slice(200)]).sort_by("object_id")
    assert got.select(want.column_names).equals(want)
    linked = [
        p
        for p in v2.partitions
        if (v1.path / p.relpath).exists()
        and (v2.path / p.relpath).stat().st_ino == (v1.path / p.relpath).stat().st_ino
    ]
    rewritten = [p for p in v2.partitions if p not in linked]
    assert rewritten
    for p in rewritten:
        assert pq.read_metadata(v2.path / p.relpath).row_group(0).num_rows <= 64
        assert _codecs(v2.path / p.relpath)["g_image"] == {"UNCOMPRESSED"}


def test_lsdb_and_hats_open_a_table_of_small_row_groups_pages_and_a_page_index(tmp_path, caplog):
    lsdb = pytest.importorskip("lsdb")
    from hats.io.validation import is_valid_catalog

    table = _table(5000, seed=4)
    paged = ParquetLayout(
        64, column_compression=LAYOUT.column_compression, page_bytes=512, page_index=True
    )
    spec = TableSpec("things", ra="ra", dec="dec", layout=paged)
    cv = _write("tasks", spec, None, table, tmp_path / "v1", tmp_path / "s")
    with caplog.at_level(logging.WARNING):
        assert is_valid_catalog(str(tmp_path / "v1"), strict=True)
        assert is_valid_catalog(str(cv.margin), strict=True)
    cat = lsdb.open_catalog(str(tmp_path / "v1"))
    assert cat.margin is not None
    got = cat.cone_search(150.0, 2.0, 600.0).compute()
    ra, dec = table.column("ra").to_numpy(), table.column("dec").to_numpy()
    near = (
        np.degrees(
            np.arccos(
                np.clip(
                    np.sin(np.radians(dec)) * np.sin(np.radians(2.0))
                    + np.cos(np.radians(dec))
                    * np.cos(np.radians(2.0))
                    * np.cos(np.radians(ra - 150.0)),
                    -1,
                    1,
                )
            )
        )
        * 3600
        < 600.0
    )
    assert sorted(got["object_id"]) == sorted(table.column("object_id").to_numpy()[near])


def test_nested_columns_get_their_codec_on_every_leaf():
    layout = ParquetLayout(compression="zstd", column_compression=(("pix*", "none"),))
    schema = pa.schema([("a", pa.float64()), ("pixels", pa.list_(pa.float32()))])
    codec = layout.compression_of(schema)
    assert codec == {"a": "zstd", "pixels.list.element": "none"}
    buffer = io.BytesIO()
    table = pa.table({"a": [1.0], "pixels": [[1.0, 2.0]]}, schema=schema)
    pq.write_table(table, buffer, compression=codec)
    codecs = _codecs(pa.BufferReader(buffer.getvalue()))
    assert codecs == {"a": {"ZSTD"}, "pixels.list.element": {"UNCOMPRESSED"}}


@pytest.mark.parametrize("how", ["merge_version", "tasks"])
def test_small_pages_with_a_page_index_where_the_layout_asks(tmp_path, how):
    paged = TableSpec(
        "things", ra="ra", dec="dec", layout=ParquetLayout(page_bytes=1024, page_index=True)
    )
    table = _table(5000, seed=5)
    cv = _write(how, paged, None, table, tmp_path / "v1", tmp_path / "s")
    plain = _write(how, PLAIN, None, table, tmp_path / "p1", tmp_path / "ps")
    for path in _files(cv):
        chunk = pq.read_metadata(path).row_group(0).column(3)  # mag: float32
        assert chunk.has_column_index and chunk.has_offset_index
    for path in plain.files():
        assert not pq.read_metadata(path).row_group(0).column(3).has_column_index
    assert pq.read_table(cv.files()).equals(pq.read_table(plain.files()))


def test_a_layout_refuses_what_parquet_cannot_write():
    with pytest.raises(ValueError, match="row_group_rows"):
        ParquetLayout(row_group_rows=0)
    with pytest.raises(ValueError, match="page_bytes"):
        ParquetLayout(page_bytes=0)
    with pytest.raises(ValueError, match="'lzo' is not one of"):
        ParquetLayout(column_compression=(("*", "lzo"),))
