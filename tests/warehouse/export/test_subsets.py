"""Stable subsets: --limit N per split by the split hash order; --subset presets."""

from __future__ import annotations

import h5py
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse.config import SPLIT_NAMES
from warehouse.errors import ExportError
from warehouse.export import ExportOptions, export_all_splits, export_hdf5
from warehouse.export.subsets import SUBSETS, subset_limit


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("subsets"), n=150)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


def _ids(path) -> list[int]:
    with h5py.File(path) as h5:
        return h5["object_id"][:].tolist()


def test_limits_are_nested_and_follow_the_split_hash_order(populated, tmp_path):
    opts = {"size": 12}
    small = export_all_splits(
        populated, tmp_path / "small", options=ExportOptions(limit=3, **opts), progress=False
    )
    large = export_all_splits(
        populated, tmp_path / "large", options=ExportOptions(limit=6, **opts), progress=False
    )
    salt = populated.config.splits.salt
    for s, a, b in zip(SPLIT_NAMES, small, large, strict=True):
        assert a.rows == 3 and b.rows == 6
        first, more = set(_ids(a.path)), set(_ids(b.path))
        assert first < more, s
        expected = (
            populated.query(
                "SELECT object_id FROM ml_objects WHERE split = ? "
                "ORDER BY split_unit(?, 'object:' || object_id::VARCHAR), object_id LIMIT 6",
                [s, salt],
            )
            .column("object_id")
            .to_pylist()
        )
        assert more == set(expected) and first == set(expected[:3])
        with h5py.File(a.path) as h5:
            assert h5.attrs["subset_limit"] == 3 and set(h5["split"].asstr()[:]) == {s}


def test_the_same_subset_in_every_rebuild(populated, tmp_path):
    rebuilt = build_warehouse(tmp_path / "again", n=150)
    ingest_coded(rebuilt, [r[0] for r in objects(rebuilt)])
    opts = ExportOptions(size=12, limit=7)
    a = export_hdf5(populated, tmp_path / "a.h5", split="test", options=opts, progress=False)
    b = export_hdf5(rebuilt, tmp_path / "b.h5", split="test", options=opts, progress=False)
    assert _ids(a.path) == _ids(b.path) and a.rows == 7


def test_a_limit_beyond_the_split_keeps_every_object(populated, tmp_path):
    n = populated.query("SELECT count(*) AS n FROM ml_objects WHERE split = 'test'")
    result = export_hdf5(
        populated,
        tmp_path / "t.h5",
        split="test",
        options=ExportOptions(size=12, limit=10_000),
        progress=False,
    )
    assert result.rows == n.column("n")[0].as_py()


def test_named_subsets_are_limits():
    assert SUBSETS == {"tiny": 1_000, "small": 10_000, "medium": 100_000}
    assert ExportOptions(subset="tiny").limit == 1_000 == subset_limit("tiny")
    with pytest.raises(ExportError, match="--subset must be one of tiny"):
        ExportOptions(subset="huge")
    with pytest.raises(ExportError, match="give one of --subset and --limit"):
        ExportOptions(subset="tiny", limit=5)
    with pytest.raises(ExportError, match="--limit must be a positive"):
        ExportOptions(limit=0)
