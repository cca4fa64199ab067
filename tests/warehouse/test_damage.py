"""Damaged files named: a partition file whose columns differ from its table's."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse.damage import retyped_among

TABLE = pa.table({"object_id": pa.array([1, 2], pa.int64()), "mag": pa.array([1.5, 2.5])})


@pytest.fixture
def dataset(tmp_path):
    """A HATS table's dataset folder: its _common_metadata and one whole partition file."""
    folder = tmp_path / "t" / "dataset"
    (folder / "Norder=0" / "Dir=0").mkdir(parents=True)
    pq.write_metadata(TABLE.schema, folder / "_common_metadata")
    pq.write_table(TABLE, folder / "Norder=0" / "Dir=0" / "Npix=0.parquet")
    return folder


@pytest.mark.parametrize(
    ("table", "said"),
    [
        (
            TABLE.set_column(1, "mag", pa.array(["1.5", "2.5"])),
            "its column mag is string where its table's is double",
        ),
        (
            TABLE.append_column("extra", pa.array([0, 0])),
            "it has a column extra its table does not",
        ),
        (TABLE.select(["object_id"]), "it lacks the column mag of its table"),
        (TABLE.select(["mag", "object_id"]), "its columns are in another order than its table's"),
    ],
)
def test_a_file_whose_columns_differ_from_its_tables_is_named(dataset, table, said):
    whole = dataset / "Norder=0" / "Dir=0" / "Npix=0.parquet"
    changed = dataset / "Norder=0" / "Dir=0" / "Npix=1.parquet"
    pq.write_table(table, changed)
    message = retyped_among([str(whole), str(changed)])
    assert message is not None and message.startswith(f"{changed} is damaged ({said})")


def test_whole_files_and_files_of_no_table_are_not_named(dataset, tmp_path):
    other = tmp_path / "elsewhere.parquet"  # no dataset folder: nothing to compare with
    pq.write_table(TABLE.select(["mag"]), other)
    whole = dataset / "Norder=0" / "Dir=0" / "Npix=0.parquet"
    assert retyped_among([str(whole), str(other), str(dataset / "gone.parquet")]) is None
