"""The export's rows computed per partition on Dask come back as the single-machine stream:
the same rows, in the same order, in batches of the same sizes."""

from __future__ import annotations

import pyarrow as pa
import pytest

from warehouse.compute import dask_client, plan_partitions
from warehouse.compute.export import keyed_batches, rebatch
from warehouse.errors import ComputeError

KEYED = "SELECT *, _healpix_29 AS gwh_key FROM ml_objects WHERE split <> ?"
ORDER = "gwh_key, object_id"


def _global_batches(wh, rows: int) -> list[pa.RecordBatch]:
    with wh.connect() as con:
        reader = con.sql(
            f"SELECT * FROM ({KEYED}) AS k ORDER BY {ORDER}", params=["test"]
        ).to_arrow_reader(rows)
        return list(reader)


@pytest.mark.parametrize("client_kind", ["none", "local:2"])
def test_partitioned_stream_equals_the_global_stream(straddling, client_kind):
    wh, _ = straddling
    want = _global_batches(wh, 64)
    with wh.reading():
        plan = plan_partitions(wh)
        if client_kind == "none":
            got = list(keyed_batches(None, plan, KEYED, ["test"], "gwh_key", ORDER, 64))
        else:
            with dask_client(client_kind) as client:
                got = list(keyed_batches(client, plan, KEYED, ["test"], "gwh_key", ORDER, 64))
    assert [b.num_rows for b in got] == [b.num_rows for b in want]
    assert len(got) > 3
    assert pa.Table.from_batches(got).equals(pa.Table.from_batches(want))


def test_rebatch_cuts_exact_sizes_across_tables():
    t = pa.table({"x": list(range(10))})
    parts = [t.slice(0, 3), t.slice(3, 0), t.slice(3, 6), t.slice(9, 1)]
    got = list(rebatch(parts, 4))
    assert [b.num_rows for b in got] == [4, 4, 2]
    assert pa.Table.from_batches(got).column("x").to_pylist() == list(range(10))


def test_a_row_placed_outside_its_photometry_partition_is_refused(straddling):
    wh, _ = straddling
    shifted = (
        "SELECT *, _healpix_29 + (1::BIGINT << 40) AS gwh_key FROM ml_objects WHERE split <> ?"
    )
    with wh.reading():
        plan = plan_partitions(wh)
        with pytest.raises(ComputeError, match="Export without --dask"):
            list(keyed_batches(None, plan, shifted, ["test"], "gwh_key", ORDER, 64))
