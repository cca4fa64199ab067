"""Margin catalogs: every row near a partition's border is in its margin, incremental versions
give the same margin as a fresh build, and lsdb opens table + margin as one collection."""

from __future__ import annotations

import logging

import healpy as hp
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loaders import registry
from warehouse.store import TableSpec, merge_version, read_version
from warehouse.store.margins import MarginIndex, border_pixels, margin_order
from warehouse.store.versions import Partition

SPEC = TableSpec("things", key=("object_id",), ra="ra", dec="dec")
THRESHOLD = 10.0


def _sky(n: int, seed: int, ra=(44.0, 46.0), dec=(-1.0, 1.0)) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "object_id": pa.array(np.arange(n) + seed * 10**7, pa.int64()),
            "ra": rng.uniform(*ra, n),
            "dec": rng.uniform(*dec, n),
            "x": rng.normal(size=n),
        }
    )


def _read(files) -> pa.Table:
    return pa.concat_tables([pq.ParquetFile(f).read() for f in files])


def _margin_rows(cv) -> pa.Table:
    m = read_version(cv.margin)
    return _read([m.path / p.relpath for p in m.partitions])


def _unit(ra, dec):
    return np.asarray(hp.ang2vec(np.asarray(ra), np.asarray(dec), lonlat=True)).reshape(-1, 3)


def test_border_pixels_are_the_edge_of_the_block():
    inner = border_pixels(2, 5, 5)  # 8x8 block: 28 on its edge
    assert inner.size == 28
    assert np.all(inner >> 6 == 5)
    assert margin_order(THRESHOLD) == 13


def test_rows_in_position_order_route_as_they_would_in_any_order():
    # a partition's rows come sorted (grouped by coarse pixel without sorting again); the
    # same rows shuffled must feed the same margins
    parts = [Partition(1, p) for p in range(8)] + [Partition(2, 32 + p) for p in range(4)]
    index = MarginIndex(parts, 10.0)
    rng = np.random.default_rng(5)
    h29 = np.sort(rng.integers(0, 9 << 56, 50_000))  # the first 9 order-1 pixels
    h29 = np.concatenate([h29, np.repeat(h29[:50], 3)])  # positions held by several rows
    h29.sort()
    rows, targets = index.route(h29)
    assert rows.size  # some rows are near a border
    shuffle = rng.permutation(h29.size)
    srows, stargets = index.route(h29[shuffle])
    assert sorted(zip(rows.tolist(), targets.tolist(), strict=True)) == sorted(
        zip(shuffle[srows].tolist(), stargets.tolist(), strict=True)
    )


def test_every_row_within_the_threshold_of_a_partition_is_in_its_margin(tmp_path):
    t = _sky(20_000, seed=1)
    v = merge_version(None, t, SPEC, tmp_path / "v", max_rows=2500, max_order=12, source="f")
    assert len(v.partitions) > 6
    stored = _read(v.files())
    spix = stored.column("_healpix_29").to_numpy()
    ids = stored.column("object_id").to_numpy()
    xyz = _unit(stored.column("ra").to_numpy(), stored.column("dec").to_numpy())
    fine = 16  # the partition's edge as the centres of its order-16 border pixels (< 2.5")
    slack = np.degrees(hp.max_pixrad(2**fine)) * 3600
    checked = 0
    for p in v.partitions:
        lo, hi = p.h29_range()
        border = border_pixels(p.order, p.pixel, fine)
        edge = np.asarray(hp.pix2vec(2**fine, border, nest=True)).T
        outside = np.flatnonzero((spix < lo) | (spix >= hi))
        # rows surely closer than the threshold to the partition (and outside it)
        near = []
        for chunk in np.array_split(outside, max(1, outside.size // 2000)):
            cos = (xyz[chunk] @ edge.T).max(axis=1)
            d = np.degrees(np.arccos(np.clip(cos, -1, 1))) * 3600
            near.append(chunk[d < THRESHOLD - slack])
        near_ids = set(ids[np.concatenate(near)].tolist())
        mfile = v.margin / p.relpath
        got = _read([mfile]) if mfile.exists() else None
        assert near_ids <= (set(got.column("object_id").to_pylist()) if got else set())
        checked += len(near_ids)
        if got is not None:  # the margin never repeats a row of the partition itself
            mh = got.column("_healpix_29").to_numpy()
            assert not np.any((mh >= lo) & (mh < hi))
    assert checked > 100
    assert _margin_rows(v).num_rows < 0.25 * t.num_rows


def test_incremental_margin_equals_a_fresh_build(tmp_path):
    first, second = _sky(20_000, seed=2), _sky(3_000, seed=3, ra=(44.5, 45.0), dec=(0.0, 0.4))
    corner = pc.and_(pc.less(first["ra"], 44.3), pc.less(first["dec"], -0.7))
    moved = first.filter(corner)  # rows of one corner move a little (some change partition)
    moved = moved.set_column(1, "ra", pc.add(moved["ra"], 0.05))
    kw = {"max_rows": 2000, "max_order": 12}
    v1 = merge_version(None, first, SPEC, tmp_path / "v1", source="a", **kw)
    v2 = merge_version(v1, second, SPEC, tmp_path / "v2", source="b", **kw)
    v3 = merge_version(v2, moved, SPEC, tmp_path / "v3", source="c", **kw)
    everything = _read(v3.files()).drop_columns(["_healpix_29"])
    fresh = merge_version(None, everything, SPEC, tmp_path / "fresh", source="all", **kw)
    order = [("object_id", "ascending"), ("_healpix_29", "ascending")]
    assert v3.partitions == fresh.partitions
    assert _margin_rows(v3).sort_by(order).equals(_margin_rows(fresh).sort_by(order))
    # unchanged margin files are shared with the version before
    shared = [
        p
        for p in read_version(v2.margin).partitions
        if (v3.margin / p.relpath).exists()
        and (v3.margin / p.relpath).stat().st_ino == (v2.margin / p.relpath).stat().st_ino
    ]
    assert shared


def test_lsdb_opens_the_collection_with_its_margin_and_crossmatches_completely(
    make_warehouse, tmp_path, caplog
):
    lsdb = pytest.importorskip("lsdb")
    from hats.io.validation import is_valid_catalog

    wh = make_warehouse(max_rows_per_partition=1500)
    t = _sky(20_000, seed=4)
    path = tmp_path / "forced.parquet"
    pq.write_table(t.rename_columns(["object_id", "ra", "dec", "g_cmodel_flux"]), path)
    wh.load(registry.get("hsc-forced"), [path])
    current = wh.root / "catalogs" / "hsc_forced" / "current"
    cv = read_version(current)
    assert len(cv.partitions) > 8 and cv.margin is not None
    with caplog.at_level(logging.WARNING):
        assert is_valid_catalog(str(current), strict=True)
        assert is_valid_catalog(str(cv.path), strict=True)
        assert is_valid_catalog(str(cv.margin), strict=True)
    cat = lsdb.open_catalog(str(current))
    assert cat.margin is not None
    assert cat.margin.hc_structure.catalog_info.margin_threshold == THRESHOLD
    # sources 1" from random rows: each must find its own row, also across partition borders
    rng = np.random.default_rng(5)
    idx = rng.integers(0, t.num_rows, 3000)
    ra = t.column("ra").to_numpy()[idx] + rng.normal(0, 0.6 / 3600, idx.size)
    dec = t.column("dec").to_numpy()[idx] + rng.normal(0, 0.6 / 3600, idx.size)
    near = pa.table({"src": np.arange(idx.size), "ra": ra, "dec": dec}).to_pandas()
    left = lsdb.from_dataframe(near, ra_column="ra", dec_column="dec", partition_rows=300)
    # pytest turns warnings into errors: no "does not have a margin cache" warning
    res = left.crossmatch(
        cat, radius_arcsec=5, n_neighbors=1, suffix_method="overlapping_columns"
    ).compute()
    want = np.array([])
    xyz_t = _unit(t.column("ra").to_numpy(), t.column("dec").to_numpy())
    nearest = np.argmax(_unit(ra, dec) @ xyz_t.T, axis=1)
    want = t.column("object_id").to_numpy()[nearest]
    got = dict(zip(res["src"], res["object_id"], strict=True))
    assert len(got) == idx.size
    assert all(got[i] == want[i] for i in range(idx.size))
