"""Morphology measured on a LocalCluster of two worker processes equals the local measurement."""

from __future__ import annotations

import pytest

from loaders import registry
from tests.warehouse.morphology.test_morphology_store import galaxies
from warehouse.compute import dask_client
from warehouse.compute.morphology import measure_on_dask
from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.cutouts import ingest_arrays
from warehouse.images.masks import DEFAULT_BAD_MASK_BITS, mask_bits_value
from warehouse.morphology import MORPHOLOGY_FIELDS, DetectionConfig, measure_morphology
from warehouse.morphology.worker import Job

SIZE = 40
N = 10


def _imaged(root, field_files) -> Warehouse:
    """SIMULATED g, r cutouts of N objects, in cutouts partitions of at most 3 rows."""
    wh = Warehouse.init(root, Config(max_rows_per_partition=200, cutouts_max_rows_per_partition=3))
    wh.load(registry.get("hsc-forced"), [field_files["forced"], field_files["forced2"]])
    ids = wh.query(f"SELECT object_id FROM hsc_forced ORDER BY ra LIMIT {N}").column(0)
    images = {b: galaxies(N, seed=k, size=SIZE) for k, b in enumerate("gr")}
    ingest_arrays(wh, ids.to_pylist(), images, simulated=True, source="test")
    return wh


@pytest.fixture
def imaged(tmp_path, field_files):
    return _imaged(tmp_path / "wh", field_files)


def _plan(wh):
    cv = wh.current_version("cutouts")
    assert len(cv.partitions) > 1
    rows = wh.query("select object_id, _healpix_29 from cutouts").to_pydict()
    plan = []
    for part in cv.partitions:
        lo, hi = part.h29_range()
        inside = {
            i for i, h in zip(rows["object_id"], rows["_healpix_29"], strict=True) if lo <= h < hi
        }
        plan.append((str(cv.path / part.relpath), inside))
    return plan


def test_two_worker_processes_measure_the_local_values(imaged):
    wh = imaged
    measure_morphology(wh, workers=1, bands="gr")
    local = {r["object_id"]: r for r in wh.query("select * from morphology").to_pylist()}
    job = Job(("g", "r"), DetectionConfig(), mask_bits_value(DEFAULT_BAD_MASK_BITS))
    plan = _plan(wh)
    with dask_client("local:2") as client:
        batches = list(measure_on_dask(client, plan, job, per_task=2))
    got = [row for rows in batches for row in rows]
    # every object once, in partition order
    where = {i: k for k, (_, ids) in enumerate(plan) for i in ids}
    assert sorted(r["object_id"] for r in got) == sorted(where)
    assert len(got) == N
    order = [where[r["object_id"]] for r in got]
    assert order == sorted(order) and len(set(order)) > 1
    for row in got:
        stored = local[row["object_id"]]
        for b in "gr":
            for name in MORPHOLOGY_FIELDS:
                assert row[f"{b}_{name}"] == stored[f"{b}_{name}"], (row["object_id"], b, name)
            assert row[f"{b}_morph_reason"] == stored[f"{b}_morph_reason"]


def test_measure_morphology_on_dask_commits_the_local_rows(tmp_path, field_files):
    here = _imaged(tmp_path / "here", field_files)
    there = _imaged(tmp_path / "there", field_files)
    local = measure_morphology(here, workers=1, bands="gr", chunk_size=4)
    lines = []
    remote = measure_morphology(there, bands="gr", chunk_size=4, dask="local:2", echo=lines.append)
    assert remote.measured == local.measured == N
    assert remote.workers == 2 and any("local:2" in line for line in lines)
    sql = "select * from morphology order by object_id"
    assert there.query(sql).equals(here.query(sql))
    again = measure_morphology(there, bands="gr", dask="local:1")  # a rerun: nothing to do
    assert again.up_to_date == N and again.measured == 0
