"""Which DuckDB connection an export reads through: the stored views of warehouse.duckdb (no
view built) unless the catalog sort is large, then a private one limited in memory."""

from __future__ import annotations

import hashlib

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse import db
from warehouse.core import Warehouse
from warehouse.export import ExportOptions, export_hdf5, export_hf
from warehouse.export import hdf5 as hdf5_module


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("export-connections"))
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


def _recording(monkeypatch) -> tuple[list, list]:
    """Record every view build (db.reader) and the settings of every Warehouse.connect."""
    built, settings = [], []
    reader, connect = db.reader, Warehouse.connect

    def counting_reader(*args, **kwargs):
        built.append(kwargs.get("settings"))
        return reader(*args, **kwargs)

    def recording_connect(self, *args, **kwargs):
        settings.append(kwargs.get("settings"))
        return connect(self, *args, **kwargs)

    monkeypatch.setattr(db, "reader", counting_reader)
    monkeypatch.setattr(Warehouse, "connect", recording_connect)
    return built, settings


def test_a_small_export_builds_no_views(populated, tmp_path, monkeypatch):
    opts = ExportOptions(size=8)
    Warehouse.open(populated.root).views()  # this process holds the committed file open
    built, _ = _recording(monkeypatch)
    r = export_hdf5(populated, tmp_path / "a.h5", split="train", options=opts, progress=False)
    h = export_hf(populated, tmp_path / "hf", options=opts, progress=False)
    assert r.rows > 0 and sum(h.rows.values()) > 0
    assert built == []  # every check, count and sort read the views stored in the file


def test_a_large_sort_gets_a_memory_limited_connection_and_the_same_bytes(
    populated, tmp_path, monkeypatch
):
    opts = ExportOptions(size=8)
    small = export_hdf5(populated, tmp_path / "a.h5", split="train", options=opts, progress=False)
    monkeypatch.setattr(hdf5_module, "SHARED_SORT_BYTES", 0)  # every sort counts as large
    _, settings = _recording(monkeypatch)
    large = export_hdf5(populated, tmp_path / "b.h5", split="train", options=opts, progress=False)
    limited = [s for s in settings if s]
    assert len(limited) == 1 and limited[0]["memory_limit"] == hdf5_module.DUCKDB_MEMORY_LIMIT
    assert str(limited[0]["temp_directory"]).startswith(str(tmp_path / ".b.h5"))  # beside it
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (small.path, large.path)]
    assert digest[0] == digest[1]


def test_rows_fetched_by_the_plan_and_streamed_rows_give_the_same_file(
    populated, tmp_path, monkeypatch
):
    """A small export's plan fetches its sorted rows once and counts NULLs and ranges on them
    (plan.py); a large one counts in DuckDB and streams the rows: the same datasets, types and
    bytes, NULLs included (no split: the nullability is read from the fetched rows)."""
    sql = (
        "SELECT object_id, CASE WHEN object_id % 2 = 0 THEN tract END AS tract_or_null, "
        "CASE WHEN object_id % 3 = 0 THEN NULL ELSE patch_s END AS patch_or_null, "
        "CASE WHEN object_id % 2 = 0 THEN object_id + 9007199254740993 END AS big_or_null, "
        "isprimary, ra FROM ml_objects"
    )
    opts = ExportOptions(size=8)
    fetched = export_hdf5(populated, tmp_path / "a.h5", sql=sql, options=opts, progress=False)
    monkeypatch.setattr(hdf5_module, "SHARED_SORT_BYTES", 0)  # nothing fetched: streamed
    streamed = export_hdf5(populated, tmp_path / "b.h5", sql=sql, options=opts, progress=False)
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (fetched.path, streamed.path)]
    assert digest[0] == digest[1]
    with h5py.File(fetched.path) as h5:
        assert h5["tract_or_null"].dtype == np.float64 and "tract_or_null_isnull" in h5
        assert h5["big_or_null"].dtype == np.int64 and "isprimary_isnull" not in h5
