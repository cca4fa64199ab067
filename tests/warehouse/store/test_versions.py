"""Comparable key values: one value per row for a composite key, as one Arrow array (the runs of a
spilled load concatenate them; a chunked array there is converted value by value)."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse.errors import DamagedFileError, QueryError
from warehouse.store.versions import CatalogVersion, Partition, key_values


def test_a_composite_key_gives_one_array_of_one_value_per_row():
    chunks = [
        pa.table({"object_id": pa.array([2**62 + 1, 7], pa.int64()), "specz_name": ["a", "b"]}),
        pa.table({"object_id": pa.array([7], pa.int64()), "specz_name": ["c"]}),
    ]
    table = pa.concat_tables(chunks)  # two chunks per column, as a file read in parts has
    keys = key_values(table, ("object_id", "specz_name"))
    assert isinstance(keys, pa.Array)
    assert keys.to_pylist() == [f"{2**62 + 1}\x1fa", "7\x1fb", "7\x1fc"]  # no float64 detour
    runs = pa.chunked_array([keys, key_values(chunks[1], ("object_id", "specz_name"))])
    assert runs.combine_chunks().to_pylist()[-1] == "7\x1fc"


def test_a_single_key_is_its_column():
    table = pa.concat_tables([pa.table({"object_id": pa.array([3], pa.int64())})] * 2)
    keys = key_values(table, ("object_id",))
    assert isinstance(keys, pa.Array) and keys.to_pylist() == [3, 3]


def test_a_version_missing_a_partition_file_is_refused_naming_it(tmp_path):
    parts = [Partition(3, 427), Partition(6, 27257), Partition(6, 27259)]
    cv = CatalogVersion(tmp_path, parts, pa.schema([]), 0)
    for f in cv.files():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"PAR1")
    cv.check_files("hsc_specz")  # all there: nothing said
    cv.files()[1].unlink()
    with pytest.raises(QueryError, match=r"Npix=27257.parquet is missing \(1 of the 3 partition"):
        cv.check_files("hsc_specz")


def _version_with_margin(tmp_path):
    parts = [Partition(3, 427), Partition(6, 27257)]
    margin = tmp_path / "t_10arcs"
    margin.mkdir()
    (margin / "partition_info.csv").write_text("Norder,Npix\n6,27257\n", encoding="utf-8")
    cv = CatalogVersion(tmp_path / "t", parts, pa.schema([]), 0, margin=margin)
    for f in cv.files() + cv.margin_files():
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"PAR1" + b"\0" * 20 + b"PAR1")
    return cv


def test_a_missing_margin_file_is_refused_naming_it(tmp_path):
    cv = _version_with_margin(tmp_path)
    assert cv.margin_files() == [cv.margin / Partition(6, 27257).relpath]
    cv.check_files("t")
    cv.margin_files()[0].unlink()
    with pytest.raises(DamagedFileError, match=r"27257.parquet is missing \(1 of the 1 margin"):
        cv.check_files("t")
    with pytest.raises(DamagedFileError, match=r"is missing"):  # not "damaged": it is gone
        cv.check_footers("t", cv.margin_files())


def test_a_file_without_its_parquet_footer_is_damaged(tmp_path):
    cv = _version_with_margin(tmp_path)
    cv.check_footers("t", cv.files() + cv.margin_files())
    margin_file = cv.margin_files()[0]
    margin_file.write_bytes(margin_file.read_bytes()[:10])
    with pytest.raises(DamagedFileError, match=r"Npix=27257.parquet is damaged .* table t"):
        cv.check_footers("t", cv.margin_files())
