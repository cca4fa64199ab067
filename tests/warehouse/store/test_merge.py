"""The HATS store: adaptive partitions, keyed upserts, shared files, validity for hats and lsdb
(merge_version)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.errors import LoadError
from warehouse.healpix import spatial_index
from warehouse.store import TableSpec, compute_partitions, merge_version, read_version

SPEC = TableSpec("things", key=("object_id",), ra="ra", dec="dec")
BIG_ID = 43158172147386355  # an HSC-size id: float64 would turn it into ...352 or ...360


def _table(ids, ra, dec, **extra):
    cols = {"object_id": pa.array(ids, pa.int64()), "ra": ra, "dec": dec}
    cols.update(extra)
    return pa.table(cols)


def test_partitions_split_until_under_threshold():
    rng = np.random.default_rng(1)
    h = np.sort(spatial_index(rng.uniform(150, 151, 5000), rng.uniform(2, 3, 5000)))
    parts = compute_partitions(h, max_rows=400, max_order=19)
    assert sum(n for _, n in parts) == 5000
    assert all(n <= 400 for _, n in parts)
    assert len({p.order for p, _ in parts}) >= 1
    # siblings whose parent would have fit are never split
    for p, _ in parts:
        if p.order > 0:
            lo, hi = (
                (p.pixel >> 2) << (2 * (29 - p.order + 1)),
                ((p.pixel >> 2) + 1) << (2 * (29 - p.order + 1)),
            )
            assert ((h >= lo) & (h < hi)).sum() > 400


def test_partitions_respect_max_order():
    h = np.sort(spatial_index(np.full(50, 10.0), np.full(50, 10.0)))  # all at one spot
    parts = compute_partitions(h, max_rows=10, max_order=8)
    assert [(p.order, n) for p, n in parts] == [(8, 50)]


def test_merge_upsert_keeps_other_columns_and_new_wins(tmp_path):
    ids = [BIG_ID, BIG_ID + 1, BIG_ID + 2]
    first = _table(ids, [10.0, 10.1, 10.2], [1.0, 1.1, 1.2], a=[1.0, 2.0, 3.0])
    v1 = merge_version(None, first, SPEC, tmp_path / "v1", max_rows=10, max_order=10, source="f1")
    second = pa.table({"object_id": pa.array(ids[1:], pa.int64()), "b": [True, False]})
    v2 = merge_version(v1, second, SPEC, tmp_path / "v2", max_rows=10, max_order=10, source="f2")
    got = pq.read_table(v2.files()).sort_by("object_id").to_pydict()
    assert got["object_id"] == ids
    assert got["a"] == [1.0, 2.0, 3.0]
    assert got["b"] == [None, True, False]
    third = _table([BIG_ID], [10.0], [1.0], a=[9.0])
    v3 = merge_version(v2, third, SPEC, tmp_path / "v3", max_rows=10, max_order=10, source="f3")
    got = pq.read_table(v3.files()).sort_by("object_id").to_pydict()
    assert got["a"] == [9.0, 2.0, 3.0] and got["b"] == [None, True, False]
    assert v3.nrows == 3


def test_merge_same_rows_twice_changes_nothing(tmp_path):
    rng = np.random.default_rng(2)
    t = _table(
        BIG_ID + np.arange(300),
        rng.uniform(0, 360, 300),
        rng.uniform(-80, 80, 300),
        x=rng.normal(size=300),
    )
    v1 = merge_version(None, t, SPEC, tmp_path / "v1", max_rows=50, max_order=12, source="f")
    v2 = merge_version(v1, t, SPEC, tmp_path / "v2", max_rows=50, max_order=12, source="f")
    a = pq.read_table(v1.files())
    b = pq.read_table(v2.files())
    assert a.equals(b)
    assert v1.partitions == v2.partitions


def test_untouched_partitions_are_hard_links(tmp_path):
    rng = np.random.default_rng(3)
    ra = np.concatenate([rng.uniform(10, 11, 300), rng.uniform(200, 201, 300)])
    dec = np.concatenate([rng.uniform(0, 1, 300), rng.uniform(30, 31, 300)])
    v1 = merge_version(
        None,
        _table(BIG_ID + np.arange(600), ra, dec),
        SPEC,
        tmp_path / "v1",
        max_rows=1000,
        max_order=10,
        source="f",
    )
    more = _table(BIG_ID + 10_000 + np.arange(5), rng.uniform(10, 11, 5), rng.uniform(0, 1, 5))
    v2 = merge_version(v1, more, SPEC, tmp_path / "v2", max_rows=1000, max_order=10, source="g")
    shared = [
        p
        for p in v2.partitions
        if p in v1.partitions
        and (v2.path / p.relpath).stat().st_ino == (v1.path / p.relpath).stat().st_ino
    ]
    changed = [p for p in v2.partitions if p not in shared]
    assert shared and changed
    assert v2.nrows == 605


def test_rows_without_position_must_exist(tmp_path):
    v1 = merge_version(
        None,
        _table([BIG_ID], [1.0], [1.0]),
        SPEC,
        tmp_path / "v1",
        max_rows=10,
        max_order=5,
        source="f",
    )
    orphan = pa.table({"object_id": pa.array([BIG_ID, BIG_ID + 7], pa.int64()), "b": [1, 2]})
    with pytest.raises(
        LoadError, match=r"1 of its object_id values are not in things.*43158172147386362"
    ):
        merge_version(v1, orphan, SPEC, tmp_path / "v2", max_rows=10, max_order=5, source="f2")


def test_catalog_is_valid_hats_and_opens_in_lsdb(tmp_path):
    import lsdb
    from hats.io.validation import is_valid_catalog

    rng = np.random.default_rng(4)
    n = 3000
    # includes RA wrap at 0/360 and both poles
    ra = np.concatenate([rng.uniform(0, 360, n - 6), [0.0, 359.99999, 0.00001, 180.0, 12.0, 300.0]])
    dec = np.concatenate([rng.uniform(-90, 90, n - 6), [0.0, 0.0, 0.0, 90.0, -90.0, 89.9999]])
    ids = BIG_ID + np.arange(n)
    v = merge_version(
        None,
        _table(ids, ra, dec, mag=rng.normal(22, 1, n).astype(np.float32)),
        SPEC,
        tmp_path / "cat",
        max_rows=250,
        max_order=10,
        source="f",
    )
    assert len(v.partitions) > 10
    assert is_valid_catalog(str(v.path), strict=True)
    cat = lsdb.open_catalog(str(v.path))
    df = cat.compute()
    assert len(df) == n
    assert sorted(df["object_id"].tolist()) == ids.tolist()
    props = read_version(v.path).properties
    assert props["hats_nrows"] == str(n) and props["hats_col_healpix"] == "_healpix_29"
    for part in v.partitions:
        t = pq.read_table(v.path / part.relpath)
        h = t.column("_healpix_29").to_numpy()
        lo, hi = part.h29_range()
        assert ((h >= lo) & (h < hi)).all() and (np.diff(h) >= 0).all()


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(-(2**63), 2**63 - 1),
            st.floats(0, 360, exclude_max=True),
            st.floats(-90, 90),
            st.floats(allow_nan=True, allow_infinity=True, width=32),
            st.booleans() | st.none(),
            st.text(max_size=8) | st.none(),
        ),
        min_size=1,
        max_size=40,
        unique_by=lambda r: r[0],
    )
)
def test_round_trip_parquet_duckdb(tmp_path_factory, rows):
    """Values (64-bit ids, NaN, NULL, booleans, strings) come back from DuckDB unchanged."""
    import duckdb

    ids, ra, dec, mag, flag, name = zip(*rows, strict=True)
    t = pa.table(
        {
            "object_id": pa.array(ids, pa.int64()),
            "ra": pa.array(ra, pa.float64()),
            "dec": pa.array(dec, pa.float64()),
            "mag": pa.array(mag, pa.float32()),
            "flag": pa.array(flag, pa.bool_()),
            "name": pa.array(name, pa.string()),
        }
    )
    d = tmp_path_factory.mktemp("rt")
    v = merge_version(None, t, SPEC, d / "v", max_rows=7, max_order=12, source="f")
    got = duckdb.sql(
        f"SELECT * EXCLUDE (_healpix_29) FROM read_parquet('{v.glob}') ORDER BY object_id"
    ).to_arrow_table()
    want = t.sort_by("object_id")
    assert got.column("object_id").to_pylist() == want.column("object_id").to_pylist()
    for col in ("ra", "dec", "flag", "name"):
        assert got.column(col).to_pylist() == want.column(col).to_pylist()
    np.testing.assert_array_equal(
        got.column("mag").to_numpy(zero_copy_only=False),
        want.column("mag").to_numpy(zero_copy_only=False),
    )


# --------------------------------------------------------------------------- issue 13 guards

SPECZ_LIKE = TableSpec("pairs", key=("object_id", "name"), ra="ra", dec="dec")


def _merge(previous, rows, dest, spec=SPEC):
    return merge_version(previous, rows, spec, dest, max_rows=10, max_order=8, source="f")


@pytest.mark.parametrize("spec", [SPEC, SPECZ_LIKE])
def test_a_null_in_any_key_column_is_refused(tmp_path, spec):
    base = _table([1, 2, 3], [10.0, 10.1, 10.2], [1.0, 1.1, 1.2], name=["a", "b", "c"])
    v1 = _merge(None, base, tmp_path / "v1", spec)
    for column in spec.key:
        values = base.column(column).to_pylist()
        values[1] = None
        i = base.column_names.index(column)
        bad = base.set_column(i, column, pa.array(values, base.schema.field(i).type))
        with pytest.raises(LoadError, match=f"NULL {column}"):
            _merge(v1, bad, tmp_path / f"v2-{column}", spec)
        assert not (tmp_path / f"v2-{column}").exists()


def test_a_null_typed_column_never_reaches_the_stored_schema(tmp_path):
    rows = _table([1, 2], [10.0, 10.1], [1.0, 1.1], note=pa.nulls(2))
    v1 = _merge(None, rows, tmp_path / "v1")
    assert "note" not in v1.schema.names  # nothing to type it by: left out, not stored as null
    typed = _table([1, 2], [10.0, 10.1], [1.0, 1.1], note=pa.array(["x", "y"]))
    v2 = _merge(v1, typed, tmp_path / "v2")
    assert v2.schema.field("note").type == pa.string()
    # a later all-NULL column takes the stored type, and its NULLs still replace the values
    v3 = _merge(v2, _table([2], [10.1], [1.1], note=pa.nulls(1)), tmp_path / "v3")
    assert v3.schema.field("note").type == pa.string()
    stored = pa.concat_tables([pq.read_table(f) for f in v3.files()]).sort_by("object_id")
    assert stored.column("note").to_pylist() == ["x", None]
    assert not any(pa.types.is_null(pq.read_schema(f).field("note").type) for f in v3.files())


def test_zero_rows_are_refused_by_the_store(tmp_path):
    with pytest.raises(LoadError, match="no rows"):
        _merge(
            None, _table([], pa.array([], pa.float64()), pa.array([], pa.float64())), tmp_path / "v"
        )
    assert not (tmp_path / "v").exists()
