"""gwh export --dask: a LocalCluster of two worker processes writes the single-machine bytes."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from tests.warehouse.compute.conftest import load_field, straddling_field
from warehouse.compute import dask_client
from warehouse.cutouts import ingest_arrays
from warehouse.errors import UsageError
from warehouse.export import ExportOptions, export_all_splits, export_hdf5
from warehouse.export.command import export_command

N_IMAGED = 40


@pytest.fixture(scope="module")
def imaged(tmp_path_factory):
    """The straddling field with SIMULATED g, r, i cutouts for N_IMAGED ml_objects (both
    straddlers among them), in cutouts partitions of at most 8 rows."""
    folder = tmp_path_factory.mktemp("export")
    planted = straddling_field(folder)
    wh = load_field(folder / "wh", planted["paths"], cutouts_max_rows_per_partition=8)
    ids = wh.query(f"SELECT object_id FROM ml_objects ORDER BY ra LIMIT {N_IMAGED}")
    ids = sorted(set(ids.column(0).to_pylist()) | {planted["ids"]["A"]})
    rng = np.random.default_rng(5)
    shape = (len(ids), 24, 24)
    images = {b: rng.normal(0, 1, shape).astype(np.float32) for b in "gri"}
    variance = {b: rng.uniform(0.5, 2, shape).astype(np.float32) for b in "gri"}
    mask = {b: rng.integers(0, 4, shape).astype(np.int32) for b in "gri"}
    ingest_arrays(wh, ids, images, simulated=True, source="test", variance=variance, mask=mask)
    return wh


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_two_worker_processes_write_the_same_bytes(imaged, tmp_path):
    opts = ExportOptions(allow_missing_bands=True, size=24)
    here = export_hdf5(imaged, tmp_path / "here.h5", options=opts, progress=False)
    with dask_client("local:2") as client:
        there = export_hdf5(imaged, tmp_path / "there.h5", options=opts, client=client)
        split = export_hdf5(
            imaged, tmp_path / "train.h5", split="train", options=opts, client=client
        )
    assert there.rows == here.rows > 500
    assert _sha(tmp_path / "there.h5") == _sha(tmp_path / "here.h5")
    local_train = export_hdf5(imaged, tmp_path / "train_here.h5", split="train", options=opts)
    assert split.rows == local_train.rows
    assert _sha(tmp_path / "train.h5") == _sha(tmp_path / "train_here.h5")


def test_all_splits_through_the_command(imaged, tmp_path):
    lines: list[str] = []
    export_command(
        imaged,
        all_splits=True,
        out_dir=tmp_path / "dask",
        allow_missing_bands=True,
        size=24,
        dask="local:2",
        echo=lines.append,
    )
    export_all_splits(
        imaged, tmp_path / "local", options=ExportOptions(allow_missing_bands=True, size=24)
    )
    for name in ("train.h5", "validation.h5", "test.h5"):
        assert _sha(tmp_path / "dask" / name) == _sha(tmp_path / "local" / name)
    assert any("wrote" in line for line in lines)


def test_dask_refuses_what_is_not_split_by_partition(imaged, tmp_path):
    with pytest.raises(UsageError, match="--sql"):
        export_command(
            imaged,
            out=tmp_path / "x.h5",
            sql="select * from ml_objects",
            dask="local:1",
            echo=print,
        )
    with pytest.raises(UsageError, match="--limit"):
        export_command(imaged, out=tmp_path / "x.h5", limit=5, dask="local:1", echo=print)
    with pytest.raises(UsageError, match="--format hf"):
        export_command(imaged, out_dir=tmp_path / "hf", format="hf", dask="local:1", echo=print)
