"""Casting to the declared types: a number where the table declares a boolean loads only as
0 or 1, from Parquet and FITS as from CSV, whole or a chunk at a time; any other value is
refused naming the file, the row, the column and the value."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.readers import read_table, read_table_chunks
from loaders.simulated.catalog import write_archive_fits
from warehouse.errors import LoadError
from warehouse.store.hsc_columns import declared_type


def _rows(flags: list, flag_type: pa.DataType) -> pa.Table:
    n = len(flags)
    return pa.table(
        {
            "object_id": pa.array(range(1, n + 1), pa.int64()),
            "ra": [150.0] * n,
            "dec": [2.0] * n,
            "g_cmodel_flag": pa.array(flags, flag_type),
        }
    )


def _write(table: pa.Table, path) -> None:  # type: ignore[no-untyped-def]
    if path.suffix == ".fits":
        write_archive_fits(table, path)
    else:
        pq.write_table(table, path, row_group_size=4)


@pytest.mark.parametrize("suffix", [".parquet", ".fits"])
@pytest.mark.parametrize("flag_type", [pa.int64(), pa.int32(), pa.int16(), pa.float64()])
def test_zero_and_one_load_as_false_and_true(tmp_path, suffix, flag_type):
    path = tmp_path / f"flags{suffix}"
    _write(_rows([0, 1, 1, 0, 0, 1, 0, 1, 1, 0], flag_type), path)
    whole = read_table(path, declared_type).table
    assert whole.column("g_cmodel_flag").type == pa.bool_()
    assert whole.column("g_cmodel_flag").to_pylist() == [
        bool(v) for v in [0, 1, 1, 0, 0, 1, 0, 1, 1, 0]
    ]
    parts = list(read_table_chunks(path, declared_type, rows=4))
    assert len(parts) == 3
    assert pa.concat_tables([p.table for p in parts]).equals(whole)


def test_a_null_flag_stays_null(tmp_path):
    path = tmp_path / "flags.parquet"
    _write(_rows([0, None, 1], pa.int64()), path)
    assert read_table(path, declared_type).table.column("g_cmodel_flag").to_pylist() == [
        False,
        None,
        True,
    ]


@pytest.mark.parametrize("suffix", [".parquet", ".fits"])
@pytest.mark.parametrize(("bad", "shown"), [(2, "2"), (-1, "-1"), (7, "7")])
def test_another_integer_is_refused_naming_row_column_and_value(tmp_path, suffix, bad, shown):
    path = tmp_path / f"flags{suffix}"
    flags = [0, 1, 0, 1, 1, 0, bad, 0, 1, 0]  # the bad value in the second chunk, row 7
    _write(_rows(flags, pa.int64()), path)
    for read in (
        lambda: read_table(path, declared_type),
        lambda: list(read_table_chunks(path, declared_type, rows=4)),
    ):
        with pytest.raises(LoadError) as err:
            read()
        message = str(err.value)
        assert message.startswith(f"{path}, row 7, column g_cmodel_flag: {shown} ")
        assert "only 0 and 1" in message and "\n" not in message


def test_a_nan_or_fraction_in_a_float_flag_is_refused(tmp_path):
    for value, row in ((float("nan"), 2), (0.5, 3)):
        path = tmp_path / f"flags{row}.parquet"
        flags = [1.0, 0.0, 1.0][: row - 1] + [value]
        _write(_rows(flags, pa.float64()), path)
        with pytest.raises(LoadError, match=f"row {row}, column g_cmodel_flag: .*only 0 and 1"):
            read_table(path, declared_type)
