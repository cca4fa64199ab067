"""Galaxy Zoo 2 loader and position matching, on the real 200-row Stripe 82 sample."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.galaxy_zoo import GZ2_LABELS, GalaxyZooLoader, load_galaxy_zoo, match_to_catalog
from loaders.images import label_mapping
from tests.conftest import tree_snapshot
from warehouse.errors import LoadError

DATA = Path(__file__).resolve().parents[1] / "data"
SAMPLE = DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"


def read_rows() -> list[dict[str, str]]:
    with open(SAMPLE, newline="") as fh:
        return list(csv.DictReader(fh))


def test_the_real_sample_loads_with_exact_ids_and_types(make_warehouse):
    wh = make_warehouse()
    wh.load(registry.get("galaxy-zoo"), [SAMPLE])
    rows = read_rows()
    got = wh.query("SELECT objid FROM galaxy_zoo ORDER BY objid").column(0).to_pylist()
    assert got == sorted(int(r["objid"]) for r in rows)  # int64 straight from the text
    schema = wh.current_version("galaxy_zoo").schema
    assert schema.field("objid").type == pa.int64()
    assert schema.field("t01_smooth_or_features_a01_smooth_count").type == pa.int32()
    assert schema.field("t01_smooth_or_features_a01_smooth_debiased").type == pa.float64()
    assert schema.field("t01_smooth_or_features_a01_smooth_flag").type == pa.bool_()
    assert schema.field("sample").type == pa.string()
    assert len(schema) == 228 + 3  # every column kept, + task-1 class and label, + _healpix_29


def test_the_task1_label_follows_the_gz2_flags(make_warehouse):
    wh = make_warehouse()
    wh.load(registry.get("galaxy-zoo"), [SAMPLE])
    counts = {
        r["gz2_task1_class"]: r["n"]
        for r in wh.query(
            "SELECT gz2_task1_class, count(*) AS n FROM galaxy_zoo GROUP BY 1"
        ).to_pylist()
    }
    assert counts == {"features_or_disk": 40, "smooth": 56, "uncertain": 104}
    names = ("smooth", "features_or_disk", "star_or_artifact")
    by_id = {r["objid"]: r for r in read_rows()}
    for row in wh.query("SELECT objid, gz2_task1_class, gz2_label FROM galaxy_zoo").to_pylist():
        src = by_id[str(row["objid"])]
        flags = [
            src[f"t01_smooth_or_features_a0{k + 1}_{n}_flag"] == "1" for k, n in enumerate(names)
        ]
        expected = names[flags.index(True)] if sum(flags) == 1 else "uncertain"
        assert row["gz2_task1_class"] == expected
        assert row["gz2_label"] == GZ2_LABELS[expected]
    field = wh.current_version("galaxy_zoo").schema.field("gz2_label")
    assert label_mapping(field) == GZ2_LABELS


def write_rows(path: Path, rows: list[dict[str, str]]) -> Path:
    """``rows`` as a CSV with the real sample's header."""
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(read_rows()[0]))
        w.writeheader()
        w.writerows(rows)
    return path


def test_an_objid_in_float_notation_is_refused(tmp_path):
    rows = read_rows()
    bad = write_rows(tmp_path / "bad.csv", [{**rows[0], "objid": "8.647474690312307e+18"}])
    with pytest.raises(LoadError, match="line 2, column objid.*floating-point notation"):
        GalaxyZooLoader().prepare(bad)


def test_missing_task1_flags_is_a_clear_error(tmp_path):
    path = tmp_path / "noflags.csv"
    path.write_text("objid,ra,dec\n1,10.0,1.0\n")
    with pytest.raises(LoadError, match="t01_smooth_or_features_a01_smooth_flag"):
        GalaxyZooLoader().prepare(path)


def test_an_empty_objid_names_its_line(tmp_path):
    rows = read_rows()
    path = write_rows(tmp_path / "empty_id.csv", [rows[0], {**rows[1], "objid": ""}])
    with pytest.raises(LoadError, match=r"empty_id.csv, line 3: objid is empty \(1 row\(s\) in"):
        GalaxyZooLoader().prepare(path)


def test_a_fits_file_without_gz1_morphology_says_what_it_lacks(tmp_path):
    """It was told it lacked a GZ2 vote flag: the wrong catalogue's columns."""
    from astropy.table import Table

    path = tmp_path / "gz1_without_class.fits"
    Table({"OBJID": [1, 2], "RA": [150.0, 150.1], "DEC": [2.0, 2.1]}).write(path)
    with pytest.raises(LoadError, match="a GZ1 catalogue needs its GZ1_MORPHOLOGY column"):
        GalaxyZooLoader().prepare(path)
    other = tmp_path / "votes.json"
    other.write_text("{}")
    with pytest.raises(LoadError, match=r"unknown file type .json; give an export as .*\.parquet"):
        GalaxyZooLoader().prepare(other)


def test_a_duplicated_objid_is_refused(tmp_path):
    rows = read_rows()
    path = write_rows(tmp_path / "dup.csv", [rows[0], rows[0]])
    with pytest.raises(LoadError, match="appears more than once"):
        GalaxyZooLoader().prepare(path)


# -- matching --------------------------------------------------------------------------------------


def _forced(tmp_path, objects: list[tuple[int, float, float]]):
    """A SIMULATED hsc_forced export with objects at chosen positions."""
    path = tmp_path / "simulated_forced.parquet"
    ids, ras, decs = zip(*objects, strict=True)
    pq.write_table(
        pa.table(
            {
                "object_id": pa.array(ids, pa.int64()),
                "ra": pa.array(ras),
                "dec": pa.array(decs),
                "i_cmodel_mag": pa.array([20.0] * len(ids), pa.float32()),
            }
        ),
        path,
    )
    return path


def _offset(ra: float, dec: float, east_arcsec: float, north_arcsec: float):
    return (
        (ra + east_arcsec / 3600 / math.cos(math.radians(dec))) % 360,
        dec + north_arcsec / 3600,
    )


def _sep_arcsec(ra1, dec1, ra2, dec2):
    r1, d1, r2, d2 = map(np.radians, (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(s))) * 3600


def test_matching_takes_the_nearest_object_within_the_radius(make_warehouse, tmp_path):
    rows = read_rows()
    rng = np.random.default_rng(5)
    objects = []
    for k, r in enumerate(rows[:40]):
        for j in range(2):
            east, north = rng.uniform(-1.5, 1.5, 2)
            ra, dec = _offset(float(r["ra"]), float(r["dec"]), east, north)
            objects.append((10_000 + 10 * k + j, ra, dec))
    wh = make_warehouse(max_rows_per_partition=25)  # several partitions: borders are crossed
    wh.load(registry.get("hsc-forced"), [_forced(tmp_path, objects)])
    summary = load_galaxy_zoo(wh, [SAMPLE], radius_arcsec=1.0)
    got = {
        r["objid"]: (r["hsc_object_id"], r["hsc_match_arcsec"])
        for r in wh.query(
            "SELECT objid, hsc_object_id, hsc_match_arcsec FROM galaxy_zoo"
        ).to_pylist()
    }
    # brute force, independent of the HEALPix search
    o_id = np.array([o[0] for o in objects])
    o_ra = np.array([o[1] for o in objects])
    o_dec = np.array([o[2] for o in objects])
    matched = 0
    for r in rows:
        d = _sep_arcsec(float(r["ra"]), float(r["dec"]), o_ra, o_dec)
        order = np.lexsort((o_id, d))
        best = order[0]
        expect = (int(o_id[best]), float(d[best])) if d[best] <= 1.0 else (None, None)
        obtained = got[int(r["objid"])]
        assert obtained[0] == expect[0]
        if expect[0] is not None:
            matched += 1
            assert obtained[1] == pytest.approx(expect[1], abs=1e-6)
    assert summary is not None and summary.matched == matched > 10
    assert summary.galaxies == 200


def test_matching_again_changes_nothing_and_needs_hsc_forced(make_warehouse, tmp_path):
    wh = make_warehouse()
    assert load_galaxy_zoo(wh, [SAMPLE]) is None  # no hsc_forced yet: loaded, not matched
    r = read_rows()[0]
    wh.load(registry.get("hsc-forced"), [_forced(tmp_path, [(1, float(r["ra"]), float(r["dec"]))])])
    first = match_to_catalog(wh)
    assert first is not None and first.matched == 1
    before = tree_snapshot(wh.root / "catalogs")
    again = match_to_catalog(wh)
    assert again == first
    assert tree_snapshot(wh.root / "catalogs") == before  # the same match file: nothing to do


def test_match_radius_is_validated(make_warehouse):
    with pytest.raises(LoadError, match="match radius"):
        match_to_catalog(make_warehouse(), radius_arcsec=0)


def test_label_mapping_is_json_in_the_field_metadata():
    field = GalaxyZooLoader().prepare(SAMPLE)[0].table.schema.field("gz2_label")
    assert json.loads(field.metadata[b"label_mapping"]) == GZ2_LABELS
    assert field.metadata[b"label_names_column"] == b"gz2_task1_class"
