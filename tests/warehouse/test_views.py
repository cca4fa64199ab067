"""The SQL views: quality rules, deduplication and splits, checked against independent code."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from warehouse.config import Config, SplitConfig
from warehouse.core import Warehouse

BANDS = "grizy"
PHOT_FLAGS = (
    "cmodel_flag",
    "pixelflags_edge",
    "pixelflags_interpolatedcenter",
    "pixelflags_saturatedcenter",
    "pixelflags_crcenter",
    "pixelflags_bad",
    "sdsscentroid_flag",
)


def split_of(salt: str, key: str, train=0.7, validation=0.15) -> str:
    """The split rule re-implemented from its documentation (README, sql/macros/split_unit.sql)."""
    digest = hashlib.md5(f"{salt}:{key}".encode()).digest()
    upper = int.from_bytes(digest[:8], "little")
    u = (upper >> 11) / 2**53
    return "train" if u < train else ("validation" if u < train + validation else "test")


def test_quality_rules_match_numpy(loaded, field):
    forced = field.forced_all().to_pandas().set_index("object_id")
    specz = field.specz.to_pandas()
    phot_ok = np.ones(len(forced), bool)
    for b in BANDS:
        for f in PHOT_FLAGS:
            phot_ok &= ~forced[f"{b}_{f}"].fillna(True).to_numpy(bool)
        mag = forced[f"{b}_cmodel_mag"].to_numpy(np.float64)
        sig = forced[f"{b}_cmodel_magsigma"].to_numpy(np.float64)
        phot_ok &= np.isfinite(mag) & np.isfinite(sig) & (mag > 0) & (mag < 50)
    phot = dict(zip(forced.index, phot_ok, strict=True))
    z, err = specz["specz_redshift"].to_numpy(), specz["specz_redshift_err"].to_numpy()
    spec_ok = (
        specz["specz_flag_homogeneous"].to_numpy(bool)
        & (err > 0)
        & (err < 1)
        & (z < 9.999)
        & (z > 0.01)
        & (z < 4)
        & (err < 0.005 * (1 + z))
    )
    expected = {
        (oid, name)
        for oid, name, ok in zip(specz["object_id"], specz["specz_name"], spec_ok, strict=True)
        if ok and phot.get(oid, False)
    }
    got = loaded.query("SELECT object_id, specz_name FROM quality_passed").to_pylist()
    assert {(r["object_id"], r["specz_name"]) for r in got} == expected
    assert len(expected) > 100


def test_each_rule_is_a_named_column(loaded):
    cols = loaded.query("SELECT * FROM quality_flags LIMIT 0").column_names
    for rule in (
        "no_cmodel_flag",
        "no_pixelflags_edge",
        "no_sdsscentroid_flag",
        "detected_all_bands",
        "cmodel_mag_in_range",
        "specz_secure",
        "specz_err_in_range",
        "specz_not_sentinel",
        "redshift_in_range",
        "specz_err_relative",
        "passes_all",
    ):
        assert rule in cols
    # the sentinel rule catches the planted 9.9999 redshifts, and only them
    n = (
        loaded.query(
            "SELECT count(*) AS n FROM quality_flags q JOIN hsc_specz s "
            "USING (object_id, specz_name) WHERE NOT specz_not_sentinel "
            "AND s.specz_redshift <> 9.9999"
        )
        .column("n")[0]
        .as_py()
    )
    assert n == 0


def _tiny_warehouse(make_warehouse, tmp_path, forced_rows, specz_rows, **config):
    wh = make_warehouse(**config)
    n = len(forced_rows)
    cols = {
        "object_id": pa.array([r[0] for r in forced_rows], pa.int64()),
        "ra": [r[1] for r in forced_rows],
        "dec": [r[2] for r in forced_rows],
    }
    for b in BANDS:
        cols[f"{b}_cmodel_mag"] = pa.array([22.0] * n, pa.float32())
        cols[f"{b}_cmodel_magsigma"] = pa.array([0.01] * n, pa.float32())
        for f in PHOT_FLAGS:
            cols[f"{b}_{f}"] = [False] * n
    pq.write_table(pa.table(cols), tmp_path / "f.parquet")
    spec = {
        k: [r[i] for r in specz_rows]
        for i, k in enumerate(
            [
                "object_id",
                "specz_name",
                "specz_ra",
                "specz_dec",
                "specz_redshift",
                "specz_redshift_err",
            ]
        )
    }
    spec["object_id"] = pa.array(spec["object_id"], pa.int64())
    spec["specz_flag_homogeneous"] = [True] * len(specz_rows)
    pq.write_table(pa.table(spec), tmp_path / "s.parquet")
    wh.load(registry.get("hsc-forced"), [tmp_path / "f.parquet"])
    wh.load(registry.get("hsc-specz"), [tmp_path / "s.parquet"])
    return wh


def test_deduplication_rules_and_tie_break(make_warehouse, tmp_path):
    arcsec = 1 / 3600
    forced = [(1, 10.0, 1.0), (2, 10.0 + 0.8 * arcsec, 1.0), (3, 11.0, 1.0), (4, 12.0, 1.0)]
    specz = [
        # rule 1: "A" matched to objects 1 and 2; object 1 is the closer match
        (1, "A", 10.0 + 0.1 * arcsec, 1.0, 0.5, 0.001),
        (2, "A", 10.0 + 0.1 * arcsec, 1.0, 0.5, 0.001),
        # rule 2: object 3 has two entries; "C" has the smaller error
        (3, "B", 11.0, 1.0, 0.7, 0.003),
        (3, "C", 11.0, 1.0, 0.7, 0.001),
        # an exact tie on error and distance for object 4: the smaller specz_name wins
        (4, "E", 12.0, 1.0, 0.9, 0.002),
        (4, "D", 12.0, 1.0, 0.9, 0.002),
    ]
    wh = _tiny_warehouse(make_warehouse, tmp_path, forced, specz)
    rows = wh.query(
        "SELECT object_id, specz_name, kept, duplicate_rule FROM deduplicated "
        "ORDER BY object_id, specz_name"
    ).to_pylist()
    got = {(r["object_id"], r["specz_name"]): (r["kept"], r["duplicate_rule"]) for r in rows}
    assert got == {
        (1, "A"): (True, None),
        (2, "A"): (False, "same_specz_name"),
        (3, "B"): (False, "same_object_id"),
        (3, "C"): (True, None),
        (4, "D"): (True, None),
        (4, "E"): (False, "same_object_id"),
    }
    ml = wh.query("SELECT object_id, specz_name FROM ml_objects ORDER BY object_id").to_pylist()
    assert [(r["object_id"], r["specz_name"]) for r in ml] == [(1, "A"), (3, "C"), (4, "D")]


def test_splits_are_the_documented_pure_function(loaded):
    rows = loaded.query("SELECT object_id, split FROM ml_objects").to_pylist()
    assert rows
    for r in rows:
        assert r["split"] == split_of("gwh-v1", f"object:{r['object_id']}")


def test_split_fractions_close_to_configuration(make_warehouse, field_files):
    # many objects: the observed fractions approach 0.7/0.15/0.15
    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [field_files["forced"], field_files["forced2"]])
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    counts = {
        r["split"]: r["n"]
        for r in wh.query("SELECT split, count(*) AS n FROM ml_objects GROUP BY 1").to_pylist()
    }
    total = sum(counts.values())
    assert abs(counts["train"] / total - 0.70) < 0.06
    assert abs(counts["test"] / total - 0.15) < 0.05


def test_split_is_stable_when_rows_are_added(make_warehouse, tmp_path, field):
    """Loading in two steps, in another order, or all at once gives every object the same split."""
    half = field.forced.num_rows // 2
    files = {
        "forced_a": field.forced.slice(0, half),
        "forced_b": field.forced.slice(half),
        "forced2": field.forced2,
        "specz": field.specz,
    }
    for name, table in files.items():
        pq.write_table(table, tmp_path / f"{name}.parquet")
    p = {name: tmp_path / f"{name}.parquet" for name in files}

    def splits(wh):
        return {
            r["object_id"]: r["split"]
            for r in wh.query("SELECT object_id, split FROM ml_objects").to_pylist()
        }

    stepwise = make_warehouse("stepwise")
    stepwise.load(registry.get("hsc-forced"), [p["forced_a"]])
    stepwise.load(registry.get("hsc-specz"), [p["specz"]])
    stepwise.load(registry.get("hsc-forced"), [p["forced_b"], p["forced2"]])
    at_once = make_warehouse("at_once")
    at_once.load(registry.get("hsc-specz"), [p["specz"]])
    at_once.load(registry.get("hsc-forced"), [p["forced_b"], p["forced_a"], p["forced2"]])
    assert splits(stepwise) == splits(at_once)
    assert len(splits(at_once)) > 100


def test_changing_salt_or_fractions_follows_config(loaded):
    before = {
        r["object_id"]: r["split"]
        for r in loaded.query("SELECT object_id, split FROM ml_objects").to_pylist()
    }
    text = (loaded.root / "warehouse.toml").read_text()
    (loaded.root / "warehouse.toml").write_text(
        text.replace('salt = "gwh-v1"', 'salt = "other"')
        .replace("train = 0.7", "train = 0.6")
        .replace("validation = 0.15", "validation = 0.2")
        .replace("test = 0.15", "test = 0.2")
    )
    wh = Warehouse.open(loaded.root)
    after = {
        r["object_id"]: r["split"]
        for r in wh.query("SELECT object_id, split FROM ml_objects").to_pylist()
    }
    assert after.keys() == before.keys() and after != before
    for oid, split in after.items():
        assert split == split_of("other", f"object:{oid}", 0.6, 0.2)


def test_healpix_mode_keeps_cells_whole(make_warehouse, field_files):
    wh = make_warehouse(splits=SplitConfig(mode="healpix", healpix_order=10))
    wh.load(registry.get("hsc-forced"), [field_files["forced"], field_files["forced2"]])
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    rows = wh.query(
        "SELECT _healpix_29 >> 38 AS cell, count(DISTINCT split) AS n, "
        "any_value(split) AS split FROM ml_objects GROUP BY 1"
    ).to_pylist()
    assert len(rows) > 20
    assert all(r["n"] == 1 for r in rows)
    for r in rows:
        assert r["split"] == split_of("gwh-v1", f"healpix10:{r['cell']}")


def test_contracts_pass(loaded):
    results = loaded.check()
    assert results and all(n == 0 for _, n, _ in results), results


def test_cone_and_box_macros_wrap_ra(make_warehouse):
    wh = make_warehouse()
    got = wh.query(
        "SELECT cone_search(359.9999, 0.0, 0.0001, 0.0, 1.0) AS across_zero, "
        "cone_search(10.0, 89.99999, 190.0, 89.99999, 0.1) AS across_pole, "
        "box_search(359.5, 0.0, 359.0, 1.0, -1.0, 1.0) AS box_wrap, "
        "box_search(180.0, 0.0, 359.0, 1.0, -1.0, 1.0) AS box_outside, "
        "angular_distance_arcsec(0.0, 0.0, 0.0, 1.0) AS one_degree"
    ).to_pylist()[0]
    assert got["across_zero"] and got["across_pole"] and got["box_wrap"]
    assert not got["box_outside"]
    assert got["one_degree"] == pytest.approx(3600.0, rel=1e-12)


def test_warehouse_db_opens_in_plain_duckdb(loaded):
    import duckdb

    with duckdb.connect(str(loaded.root / "warehouse.duckdb"), read_only=True) as con:
        n = con.execute("SELECT count(*) FROM ml_objects").fetchone()[0]
        ids = con.execute("SELECT object_id FROM hsc_forced ORDER BY object_id LIMIT 1").fetchone()
    assert n > 0 and isinstance(ids[0], int) and ids[0] > 2**53
    columns = loaded.query("SELECT * FROM hsc_forced LIMIT 0").column_names
    assert columns[0] == "_healpix_29"
    assert "Norder" not in columns and "Dir" not in columns  # not read as Hive partitions


def test_config_partition_threshold(make_warehouse, field_files):
    wh = make_warehouse(max_rows_per_partition=100)
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    cv = wh.current_version("hsc_forced")
    counts = [pq.read_metadata(cv.path / p.relpath).num_rows for p in cv.partitions]
    assert max(counts) <= 100 and sum(counts) == 1200
    assert isinstance(Config(max_rows_per_partition=5).max_rows_per_partition, int)
