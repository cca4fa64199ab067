"""The partition reader gives every view row of a partition exactly as the global views do,
including a spec-z group that straddles a partition border; groups wider than the margin are
refused. On a real LocalCluster of two worker processes too."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from tests.warehouse.compute.conftest import STRADDLE, load_field, straddling_field
from warehouse.compute import (
    check_groups,
    dask_client,
    partition_files,
    plan_partitions,
    view_rows,
)
from warehouse.core import Warehouse
from warehouse.errors import ComputeError
from warehouse.marts.build import materialise
from warehouse.store import Partition


def _partition_of(plan, object_id: int, wh) -> Partition:
    h29 = wh.query("select _healpix_29 from hsc_forced where object_id = ?", [object_id])
    value = h29.column(0)[0].as_py()
    for p in plan.partitions:
        lo, hi = p.h29_range()
        if lo <= value < hi:
            return p
    raise AssertionError(f"{object_id} is in no partition")


def _all_rows(plan, client=None) -> pa.Table:
    return pa.concat_tables([rows for _, rows in view_rows(plan, "ml_objects", client)])


def test_straddling_group_resolved_per_partition_as_globally(straddling):
    wh, ids = straddling
    with wh.reading():
        plan = plan_partitions(wh)
        part_a, part_b = _partition_of(plan, ids["A"], wh), _partition_of(plan, ids["B"], wh)
        assert part_a != part_b  # the group straddles a partition border
        dedup = wh.query(
            "select object_id, kept from deduplicated where specz_name = ? order by object_id",
            [STRADDLE],
        ).to_pylist()
        assert dedup == [
            {"object_id": ids["A"], "kept": True},
            {"object_id": ids["B"], "kept": False},
        ]
        per_partition = dict(view_rows(plan, "ml_objects", None))
        a_rows = per_partition[part_a].column("object_id").to_pylist()
        b_rows = per_partition[part_b].column("object_id").to_pylist()
        assert ids["A"] in a_rows and ids["B"] not in b_rows
        got = _all_rows(plan).sort_by("object_id")
        want = wh.query("select * from ml_objects order by object_id")
    assert got.num_rows == want.num_rows > 500
    assert got.equals(want)


def test_without_margins_the_neighbouring_files_give_the_same_rows(straddling):
    wh, _ = straddling
    with wh.reading():
        plan = plan_partitions(wh)
        bare = dataclasses.replace(
            plan,
            versions={k: dataclasses.replace(v, margin=None) for k, v in plan.versions.items()},
        )
        forced = bare.versions["hsc_forced"]
        # the fallback reads neighbouring partitions, never a margin file
        files = partition_files(forced, plan.partitions[1], plan.threshold_arcsec)
        assert forced.path / plan.partitions[1].relpath in files and len(files) > 1
        assert all("arcs" not in str(f) for f in files)
        got = _all_rows(bare).sort_by("object_id")
        want = wh.query("select * from ml_objects order by object_id")
    assert got.equals(want)


def test_margin_path_reads_the_partition_file_and_its_margin(straddling):
    wh, _ = straddling
    with wh.reading():
        plan = plan_partitions(wh)
        cv = plan.versions["hsc_forced"]
        part = plan.partitions[1]
        files = partition_files(cv, part, plan.threshold_arcsec)
    assert files == [cv.path / part.relpath, cv.margin / part.relpath]


def test_local_cluster_of_two_processes_gives_the_single_machine_rows(straddling):
    wh, ids = straddling
    with wh.reading(), dask_client("local:2") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        plan = plan_partitions(wh)
        got = _all_rows(plan, client).sort_by("object_id")
        want = wh.query("select * from ml_objects order by object_id")
    assert got.equals(want)
    assert ids["A"] in got.column("object_id").to_pylist()
    assert ids["B"] not in got.column("object_id").to_pylist()


def test_a_group_wider_than_the_margin_is_refused(tmp_path, straddling):
    planted = straddling_field(tmp_path)
    wh = load_field(tmp_path / "wh", planted["paths"], margin_arcsec=0.5)
    with wh.reading(), pytest.raises(ComputeError, match=r"spec-z group .+ spans") as err:
        plan_partitions(wh)
    assert "wider than the 0.5 arcsec margin" in str(err.value)
    assert "margin_arcsec" in str(err.value)
    # the default 10" margin holds the same group
    wide, _ = straddling
    with wide.connect() as con:
        check_groups(con, 10.0)


def test_plan_needs_the_spine_table(tmp_path):
    wh = Warehouse.init(tmp_path / "empty")
    with pytest.raises(ComputeError, match="hsc_forced has not been loaded"):
        plan_partitions(wh)


def test_a_materialised_view_is_computed_again_per_partition(tmp_path):
    planted = straddling_field(tmp_path)
    wh = load_field(tmp_path / "wh", planted["paths"])
    assert materialise(wh, force=True) is not None  # ml_objects now reads its copy
    with wh.reading():
        plan = plan_partitions(wh)
        assert "ml_objects" not in {t.name for t in plan.tables}
        assert "ml_objects" not in plan.versions
        got = _all_rows(plan).sort_by("object_id")
        want = wh.query("select * from ml_objects order by object_id")
    assert got.num_rows == want.num_rows > 500
    assert got.equals(want)
