"""The hf export encodes its row groups two at a time, each as a small Parquet file, and
assembles the shard from them (``warehouse.export.assemble``): the shard must be byte for byte
the file one ``pq.ParquetWriter`` writes, and a failed encoding must stop the rest."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.export.assemble import AssembledFile, Assembler
from warehouse.export.thrift import Raw, decode, encode

S, BANDS, ROWS, GROUP = 7, 5, 1000, 97


def _table() -> pa.Table:
    """Images as the hf export's nested fixed-size lists, 64-bit ids, text with NULLs (a
    dictionary), floats, booleans and a fixed-size list of zeropoints."""
    rng = np.random.default_rng(7)
    flat = pa.array(rng.standard_normal(ROWS * BANDS * S * S).astype(np.float32))
    image = pa.FixedSizeListArray.from_arrays(
        pa.FixedSizeListArray.from_arrays(pa.FixedSizeListArray.from_arrays(flat, S), S), BANDS
    )
    zp = pa.FixedSizeListArray.from_arrays(pa.array(np.full(ROWS * BANDS, 27.0)), BANDS)
    table = pa.table(
        {
            "image": image,
            "object_id": pa.array(2**62 + rng.integers(0, 2**40, ROWS)),
            "survey": pa.array([f"s{i % 13}" if i % 7 else None for i in range(ROWS)]),
            "z": pa.array(rng.standard_normal(ROWS)),
            "flag": pa.array(rng.integers(0, 2, ROWS).astype(bool)),
            "zeropoint": zp,
        }
    )
    return table.replace_schema_metadata({"huggingface": '{"info": {}}'})


OPTIONS = {
    "compression": {
        "image.list.element.list.element.list.element": "none",
        "object_id": "snappy",
        "survey": "snappy",
        "z": "zstd",
        "flag": "snappy",
        "zeropoint.list.element": "snappy",
    },
    "use_dictionary": ["survey"],
    "write_statistics": ["object_id", "survey", "z", "flag"],
}


def test_an_assembled_file_is_byte_for_byte_pyarrows(tmp_path):
    table = _table()
    with pq.ParquetWriter(tmp_path / "one.parquet", table.schema, **OPTIONS) as writer:
        for a in range(0, ROWS, GROUP):
            writer.write_table(table.slice(a, GROUP), GROUP)
    assembler = Assembler(table.schema, OPTIONS, workers=2)
    out = AssembledFile(tmp_path / "assembled.parquet")
    futures = [
        assembler.submit(table.slice(a, GROUP), out, last=a + GROUP >= ROWS)
        for a in range(0, ROWS, GROUP)
    ]
    for future in futures:
        future.result()
    assembler.close()
    made = (tmp_path / "assembled.parquet").read_bytes()
    assert made == (tmp_path / "one.parquet").read_bytes()
    meta = pq.ParquetFile(tmp_path / "assembled.parquet").metadata
    assert meta.num_row_groups == 11 and meta.num_rows == ROWS
    assert pq.read_table(tmp_path / "assembled.parquet").equals(table)


def test_a_footer_decodes_and_encodes_back_to_its_bytes(tmp_path):
    table = _table()
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=GROUP, **OPTIONS)
    data = (tmp_path / "t.parquet").read_bytes()
    start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
    footer, end = decode(data, start)
    assert end == len(data) - 8 and encode(footer) == data[start:end]
    partial, _ = decode(data, start, {4: {}})  # row groups decoded, their columns kept raw
    assert encode(partial) == data[start:end]
    group = next(v for f, _, v in partial if f == 4)[1][0]
    assert isinstance(next(v for f, _, v in group if f == 1), Raw)


def test_every_compact_type_round_trips():
    struct = [
        [1, 5, -5],  # i32
        [2, 1, None],  # bool true, in the field header
        [3, 2, None],  # bool false
        [20, 8, b"text"],  # a field id 17 past the last: the long header
        [21, 9, (6, list(range(-3, 17)))],  # a list of 20 i64: its size after the header
        [22, 9, (1, [1, 2, 1])],  # bools in a list: a byte each
        [23, 11, (8 << 4 | 5, [(b"a", 1), (b"b", -2)])],  # map binary -> i32
        [24, 11, (0, [])],  # an empty map
        [25, 12, [[1, 7, b"\x00" * 7 + b"\x40"], [2, 3, 200]]],  # struct: double, byte
        [26, 4, -(2**15)],  # i16
        [27, 6, 2**63 - 1],  # i64
    ]
    data = encode(struct)
    assert decode(data) == (struct, len(data))


def test_a_failed_encoding_stops_the_row_groups_after_it(tmp_path):
    table = _table()
    assembler = Assembler(table.schema, OPTIONS, workers=2)
    out = AssembledFile(tmp_path / "broken.parquet")
    bad = table.slice(GROUP, GROUP).drop_columns(["z"])  # not the file's schema
    futures = [
        assembler.submit(table.slice(0, GROUP), out, last=False),
        assembler.submit(bad, out, last=False),
        assembler.submit(table.slice(2 * GROUP, GROUP), out, last=True),
    ]
    futures[0].result()
    with pytest.raises(ValueError):
        futures[1].result()
    futures[2].result(timeout=30)  # returns (nothing appended after the failure): no hang
    assembler.close()
    out.discard()
    with pytest.raises(pa.ArrowInvalid):  # no footer was written: not a Parquet file
        pq.ParquetFile(tmp_path / "broken.parquet")
