"""The cutout store: ingest of cutout FITS files and batch tars, matching, upserts, previews.

Helpers here (a small SIMULATED catalog warehouse, FITS writers whose pixels encode their
object) are shared with test_export.py and test_cli_cutouts_export.py.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.hsc_ssp.cutouts import ingest_cutouts, request_cutouts
from loaders.simulated.catalog import simulate_field
from warehouse.config import Config, parse_config
from warehouse.core import Warehouse
from warehouse.cutouts import (
    CUTOUTS,
    MATCH_RADIUS_ARCSEC,
    fit_action_of,
    ingest_arrays,
    read_cutout,
)
from warehouse.errors import ConfigError, CutoutError, QueryError
from warehouse.images.fits import read_cutout_fits, write_cutout_fits
from warehouse.plots import show_cutout

BANDS = ("g", "r", "i", "z", "y")
DATA = Path(__file__).resolve().parents[2] / "data" / "cutouts"


# --------------------------------------------------------------------------- shared helpers


def code(object_id: int) -> int:
    """A per-object number small enough that code * 8 + band is exact in float32."""
    return int(object_id) % 1_000_003


def pixel_value(object_id: int, band_index: int) -> float:
    return float(code(object_id) * 8 + band_index)


def build_warehouse(root: Path, n: int = 150, seed: int = 11, cutout_rows: int = 6) -> Warehouse:
    """A SIMULATED field loaded (forced, forced2, specz), small partitions for both tables."""
    field = simulate_field(n, seed=seed)
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    paths = []
    for name, table in (("forced", field.forced), ("forced2", field.forced2)):
        pq.write_table(table, inputs / f"simulated_{name}.parquet")
        paths.append(inputs / f"simulated_{name}.parquet")
    pq.write_table(field.specz, inputs / "simulated_specz.parquet")
    wh = Warehouse.init(
        root / "wh", Config(max_rows_per_partition=40, cutouts_max_rows_per_partition=cutout_rows)
    )
    wh.load(registry.get("hsc-forced"), paths)
    wh.load(registry.get("hsc-specz"), [inputs / "simulated_specz.parquet"])
    return wh


def copy_warehouse(wh: Warehouse, dest: Path) -> Warehouse:
    shutil.copytree(wh.root, dest, symlinks=True)
    return Warehouse.open(dest)


def objects(wh: Warehouse, view: str = "ml_objects", limit: int | None = None) -> list[tuple]:
    sql = f"SELECT object_id, ra, dec FROM {view} ORDER BY object_id"
    rows = wh.query(sql + (f" LIMIT {int(limit)}" if limit else "")).to_pylist()
    return [(r["object_id"], r["ra"], r["dec"]) for r in rows]


def coded_arrays(ids, bands=BANDS, shape=(12, 12)) -> dict[str, np.ndarray]:
    """images[b][k] is constant pixel_value(ids[k], band index): each image names its object."""
    return {
        b: np.stack([np.full(shape, pixel_value(oid, BANDS.index(b)), np.float32) for oid in ids])
        for b in bands
    }


def ingest_coded(wh: Warehouse, ids, bands=BANDS, shape=(12, 12), simulated=True):
    n = len(ids)
    return ingest_arrays(
        wh,
        ids,
        coded_arrays(ids, bands, shape),
        variance={b: np.full((n, *shape), 0.5, np.float32) for b in bands},
        mask={b: np.zeros((n, *shape), np.int32) for b in bands},
        simulated=simulated,
        source="coded test arrays",
    )


def write_coded_fits(
    folder: Path,
    rows,
    bands="gr",
    shape=(16, 16),
    *,
    mask=True,
    variance=True,
    simulated=True,
    prefix="c",
    offset=0.0,
) -> list[Path]:
    """One cutout FITS per object and band, centred on the object (plus ``offset`` in Dec,
    degrees), pixels = pixel_value(object, band)."""
    out = []
    for oid, ra, dec in rows:
        for b in bands:
            img = np.full(shape, pixel_value(oid, BANDS.index(b)), np.float32)
            out.append(
                write_cutout_fits(
                    folder / f"{prefix}{oid}-{b}.fits",
                    img,
                    band=b,
                    ra=ra,
                    dec=dec + offset,
                    mask=np.zeros(shape, np.int32) if mask else None,
                    variance=np.ones(shape, np.float32) if variance else None,
                    tract=9813,
                    patch="4,6",
                    rerun="pdr2_wide",
                    simulated=simulated,
                    overwrite=True,
                )
            )
    return out


def make_batch_tar(lists: list[Path], rows_wanted: set[int], out: Path | None = None) -> Path:
    """What the DAS service returns for a list: members <N>-cutout-<FILTER>-<tract>-<rerun>."""
    mapping = json.loads(lists[0].with_suffix(".json").read_text())
    tar_path = out or lists[0].with_suffix(".tar")
    work = tar_path.parent / f".{tar_path.stem}-members"
    work.mkdir(exist_ok=True)
    with tarfile.open(tar_path, "w") as tar:
        for entry in mapping["rows"]:
            if entry["row"] not in rows_wanted:
                continue
            oid = entry["object_id"]
            path = work / f"{entry['row']}.fits"
            write_cutout_fits(
                path,
                np.full((16, 16), pixel_value(oid, BANDS.index(mapping["band"])), np.float32),
                band=mapping["band"],
                ra=entry["ra"],
                dec=entry["dec"],
                mask=np.zeros((16, 16), np.int32),
                variance=np.ones((16, 16), np.float32),
                simulated=True,
                overwrite=True,
            )
            member = (
                f"arch-000000-000000/{entry['row'] + 2}-cutout-{mapping['filter']}-9813-"
                f"{mapping['rerun']}.fits"
            )
            tar.add(path, arcname=member)
    shutil.rmtree(work)
    return tar_path


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def catalog(tmp_path_factory):
    """A loaded catalog warehouse, built once; tests copy it."""
    return build_warehouse(tmp_path_factory.mktemp("cutouts-base"))


@pytest.fixture
def wh(catalog, tmp_path):
    return copy_warehouse(catalog, tmp_path / "wh")


# --------------------------------------------------------------------------- ingest of FITS


def test_ingest_keeps_pixels_exactly_and_aligns_with_the_catalog(wh, tmp_path):
    rows = objects(wh, limit=6)
    rng = np.random.default_rng(1)
    files = []
    arrays = {}
    for oid, ra, dec in rows:
        img = (rng.normal(size=(17, 15)) * 1e-3).astype(np.float32)  # odd shape, tiny values
        var = rng.uniform(1e-4, 2e-4, size=img.shape).astype(np.float32)
        msk = rng.integers(0, 1 << 9, size=img.shape).astype(np.int32)
        arrays[oid] = (img, var, msk)
        files.append(
            write_cutout_fits(
                tmp_path / f"{oid}.fits",
                img,
                band="i",
                ra=ra,
                dec=dec,
                mask=msk,
                variance=var,
                tract=9813,
                patch="3,4",
                rerun="pdr2_wide",
                simulated=True,
            )
        )
    report = ingest_cutouts(wh, files)
    assert (report.images, report.objects, report.table_rows, report.problems) == (6, 6, 6, [])
    for oid, (img, var, msk) in arrays.items():
        cut = read_cutout(wh, oid, bands=("i",))
        assert cut.images[0].dtype == np.float32
        assert cut.images[0].tobytes() == img.tobytes()  # bit for bit, never rescaled
        assert cut.variance[0].tobytes() == var.tobytes()
        assert np.array_equal(cut.mask[0], msk)
    meta = wh.query(
        "SELECT c.object_id, c._healpix_29 = f._healpix_29 AS aligned, c.i_height, c.i_width, "
        "c.i_zeropoint, round(c.i_pixel_scale, 6) AS scale, c.i_filter, c.i_source, c.tract, "
        "c.patch, c.rerun, c.simulated, c.bands, c.i_masked_fraction, c.masked_fraction, "
        "c.i_center_offset_arcsec, c.fit_action_127, c.fit_action_64 "
        "FROM cutouts c JOIN hsc_forced f USING (object_id) ORDER BY 1"
    ).to_pylist()
    assert [m["object_id"] for m in meta] == sorted(arrays)
    for m in meta:
        assert m["aligned"] and (m["i_height"], m["i_width"]) == (17, 15)
        assert (m["i_zeropoint"], m["scale"], m["i_filter"]) == (27.0, 0.168, "HSC-I")
        assert m["i_source"] == f"{m['object_id']}.fits"
        assert (m["tract"], m["patch"], m["rerun"], m["simulated"]) == (
            9813,
            "3,4",
            "pdr2_wide",
            True,
        )
        assert m["bands"] == "i" and m["i_center_offset_arcsec"] < 1e-6
        assert m["masked_fraction"] == m["i_masked_fraction"] > 0
        assert (m["fit_action_127"], m["fit_action_64"]) == ("padded", "padded")


def test_pixel_columns_are_hidden_from_sql_but_stored(wh, tmp_path):
    ingest_cutouts(wh, write_coded_fits(tmp_path, objects(wh, limit=2), bands="g"))
    columns = wh.query("SELECT * FROM cutouts LIMIT 0").column_names
    assert "g_height" in columns and "g_masked_fraction" in columns
    assert not {"g_image", "g_variance", "g_mask"} & set(columns)
    with pytest.raises(QueryError):
        wh.query("SELECT g_image FROM cutouts")
    schema = wh.current_version("cutouts").schema
    assert {"g_image", "g_variance", "g_mask"} <= set(schema.names)


def test_cutouts_table_is_a_valid_hats_catalog_sorted_by_healpix(wh, tmp_path):
    pytest.importorskip("hats")
    from hats.io.validation import is_valid_catalog

    ingest_coded(wh, [r[0] for r in objects(wh)])
    cv = wh.current_version("cutouts")
    assert len(cv.partitions) > 1  # [cutouts] max_rows_per_partition = 6 here
    assert is_valid_catalog(str(cv.path), strict=True)
    for f in cv.files():
        t = pq.read_table(f, columns=["_healpix_29", "object_id"])
        assert t.num_rows <= 6
        keys = list(zip(t.column(0).to_pylist(), t.column(1).to_pylist(), strict=True))
        assert keys == sorted(keys)


def test_a_new_band_adds_its_columns_and_keeps_the_others(wh, tmp_path):
    rows = objects(wh, limit=4)
    ingest_cutouts(wh, write_coded_fits(tmp_path, rows, bands="g"))
    ingest_cutouts(wh, write_coded_fits(tmp_path, rows[:2], bands="r", shape=(20, 20)))
    meta = {
        r["object_id"]: r
        for r in wh.query(
            "SELECT object_id, bands, g_source, r_source, r_height, fit_action_127 FROM cutouts"
        ).to_pylist()
    }
    assert len(meta) == 4
    for oid, _ra, _dec in rows[:2]:
        assert meta[oid]["bands"] == "g,r" and meta[oid]["g_source"] == f"c{oid}-g.fits"
        cut = read_cutout(wh, oid, bands=("g", "r"))
        assert cut.images.shape == (2, 20, 20)  # g padded to the larger r for reading back
        assert cut.images[0, 10, 10] == pixel_value(oid, 0)
        assert cut.images[1, 10, 10] == pixel_value(oid, 1)
    for oid, _ra, _dec in rows[2:]:
        assert meta[oid]["bands"] == "g" and meta[oid]["r_source"] is None


def test_reingesting_replaces_and_never_duplicates(wh, tmp_path):
    rows = objects(wh, limit=3)
    files = write_coded_fits(tmp_path, rows, bands="gr")
    ingest_cutouts(wh, files)
    first = wh.current_version("cutouts").nrows
    # the same files again, then new pixels for one object's g band
    ingest_cutouts(wh, files)
    oid, ra, dec = rows[0]
    write_cutout_fits(
        files[0], np.full((16, 16), 7.0), band="g", ra=ra, dec=dec, simulated=True, overwrite=True
    )
    ingest_cutouts(wh, [files[0]])
    assert first == wh.current_version("cutouts").nrows == 3
    n = wh.query("SELECT count(*) AS n, count(DISTINCT object_id) AS d FROM cutouts").to_pylist()
    assert n == [{"n": 3, "d": 3}]
    cut = read_cutout(wh, oid, bands=("g", "r"))
    assert cut.images[0, 0, 0] == 7.0 and cut.images[1, 0, 0] == pixel_value(oid, 1)
    assert cut.mask is not None and cut.mask[0, 0, 0] == 0  # g now has no mask, r keeps its own
    loads = (
        wh.query(
            "SELECT count(*) AS n FROM gwh_loads WHERE loader = 'cutouts' "
            "AND table_name = 'cutouts'"
        )
        .column("n")[0]
        .as_py()
    )
    assert loads == len(files) * 2 + 1  # one gwh_loads row per file and ingest


def test_unmatched_ambiguous_and_unreadable_files_are_listed_after_the_matched_are_ingested(
    wh, tmp_path
):
    good = write_coded_fits(tmp_path, objects(wh, limit=2), bands="g")
    nowhere = write_cutout_fits(
        tmp_path / "nowhere.fits", np.zeros((8, 8)), band="g", ra=10.0, dec=-40.0, simulated=True
    )
    # a planted deblend pair: two objects 0.5-1.0" apart; the midpoint is within 0.5" of both
    pair = wh.query(
        "SELECT a.object_id AS a, b.object_id AS b, (a.ra + b.ra) / 2 AS ra, "
        "(a.dec + b.dec) / 2 AS dec FROM hsc_forced a JOIN hsc_forced b "
        "ON a.object_id < b.object_id AND angular_distance_arcsec(a.ra, a.dec, b.ra, b.dec) < ? "
        "ORDER BY 1 LIMIT 1",
        [2 * MATCH_RADIUS_ARCSEC],
    ).to_pylist()[0]
    between = write_cutout_fits(
        tmp_path / "between.fits",
        np.zeros((8, 8)),
        band="g",
        ra=pair["ra"],
        dec=pair["dec"],
        simulated=True,
    )
    truncated = tmp_path / "truncated.fits"
    shutil.copy(DATA / "truncated.fits", truncated)
    with pytest.raises(CutoutError) as err:
        ingest_cutouts(wh, [*good, nowhere, between, truncated])
    msg = str(err.value)
    assert msg.startswith("3 file(s) not ingested (2 band image(s) of the others were)")
    assert "nowhere.fits: no hsc_forced object within 0.5 arcsec" in msg
    assert "between.fits: ambiguous: 2 hsc_forced objects" in msg
    assert str(pair["a"]) in msg and str(pair["b"]) in msg
    assert "truncated.fits" in msg
    assert wh.current_version("cutouts").nrows == 2  # the matched ones were committed


def test_two_files_for_one_object_and_band_are_both_refused(wh, tmp_path):
    rows = objects(wh, limit=2)
    a = write_coded_fits(tmp_path, rows, bands="g", prefix="a")
    b = write_coded_fits(tmp_path, rows[:1], bands="g", prefix="b")
    with pytest.raises(CutoutError, match=r"^2 file\(s\) not ingested") as err:
        ingest_cutouts(wh, [*a, *b])
    assert f"object_id {rows[0][0]} band g: 2 files" in str(err.value)
    ids = wh.query("SELECT object_id FROM cutouts").column("object_id").to_pylist()
    assert ids == [rows[1][0]]


def test_a_band_that_is_not_configured_is_reported(tmp_path, catalog):
    wh = copy_warehouse(catalog, tmp_path / "wh")
    text = (wh.root / "warehouse.toml").read_text()
    (wh.root / "warehouse.toml").write_text(
        text.replace('bands = ["g", "r", "i", "z", "y"]', 'bands = ["g", "r"]')
    )
    wh = Warehouse.open(wh.root)
    files = write_coded_fits(tmp_path, objects(wh, limit=1), bands="gy")
    with pytest.raises(CutoutError, match="band y .HSC-Y. is not one of the configured bands g, r"):
        ingest_cutouts(wh, files)
    assert wh.query("SELECT bands FROM cutouts").column("bands").to_pylist() == ["g"]


def test_fluxnorm_card_stores_no_zeropoint(wh, tmp_path):
    from astropy.io import fits

    (path,) = write_coded_fits(tmp_path, objects(wh, limit=1), bands="g", mask=False)
    with fits.open(path, mode="update") as hdul:
        hdul[0].header["FLUXNORM"] = (True, "normalised pixels")
    ingest_cutouts(wh, [path])
    row = wh.query("SELECT g_zeropoint, g_mask_present, masked_fraction FROM cutouts").to_pylist()
    assert row == [{"g_zeropoint": None, "g_mask_present": False, "masked_fraction": None}]


def test_paths_that_do_not_exist_stop_before_anything_is_ingested(wh, tmp_path):
    good = write_coded_fits(tmp_path, objects(wh, limit=1), bands="g")
    with pytest.raises(CutoutError, match="nope.fits: no such file"):
        ingest_cutouts(wh, [*good, tmp_path / "nope.fits"])
    assert wh.current_version("cutouts") is None


def test_a_folder_is_read_as_its_fits_and_tar_files(wh, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_coded_fits(folder, objects(wh, limit=3), bands="g")
    report = ingest_cutouts(wh, [folder])
    assert report.images == 3


def test_hsc_forced_must_be_loaded_to_match(tmp_path):
    wh = Warehouse.init(tmp_path / "empty")
    path = write_cutout_fits(
        tmp_path / "x.fits", np.zeros((4, 4)), band="g", ra=1.0, dec=1.0, simulated=True
    )
    with pytest.raises(CutoutError, match="hsc_forced cannot be read"):
        ingest_cutouts(wh, [path])


def test_real_archive_cutout_matches_a_catalog_row_at_its_centre(tmp_path):
    real = DATA / "image.fits"  # a real DAS cutout (see tests/data/cutouts/PROVENANCE.md)
    cut = read_cutout_fits(real)
    wh = Warehouse.init(tmp_path / "wh")
    csv = tmp_path / "forced.csv"
    csv.write_text(f"object_id,ra,dec\n1,{cut.center_ra!r},{cut.center_dec!r}\n")
    wh.load(registry.get("hsc-forced"), [csv])
    ingest_cutouts(wh, [real])
    row = wh.query(
        "SELECT object_id, bands, simulated, r_height, r_width, r_zeropoint, fit_action_127 "
        "FROM cutouts"
    ).to_pylist()
    assert row == [
        {
            "object_id": 1,
            "bands": "r",
            "simulated": False,  # no SIMULATED card: an archive file
            "r_height": 180,
            "r_width": 179,
            "r_zeropoint": 27.0,
            "fit_action_127": "cropped",
        }
    ]
    stored = read_cutout(wh, 1, bands=("r",))
    assert stored.images[0].tobytes() == cut.image.tobytes()


# --------------------------------------------------------------------------- batch lists and tars


def test_request_writes_lists_of_at_most_max_rows_with_mappings(wh, tmp_path):
    lists = request_cutouts(wh, tmp_path / "req", bands="gr", max_rows=20)
    ids = [r[0] for r in objects(wh)]
    per_band = -(-len(ids) // 20)
    assert len(lists) == 2 * per_band
    seen = []
    for path in lists:
        lines = path.read_text().splitlines()
        assert lines[0].startswith("#?\tra\tdec\tsw\tsh\tfilter") and 1 < len(lines) <= 21
        mapping = json.loads(path.with_suffix(".json").read_text())
        assert mapping["size"] == "20arcsec" and mapping["rerun"] == "pdr2_wide"
        if mapping["band"] == "g":
            seen += [r["object_id"] for r in mapping["rows"]]
    assert seen == ids  # ordered by object_id, every object once


def test_request_from_an_unknown_view_is_a_clear_error(wh, tmp_path):
    with pytest.raises(CutoutError, match="cannot list the objects of nope"):
        request_cutouts(wh, tmp_path / "req", view="nope")


def test_batch_tar_with_its_mapping_beside_it(wh, tmp_path):
    lists = request_cutouts(wh, tmp_path / "req", bands="g")
    tar = make_batch_tar(lists, rows_wanted={0, 3, 5})  # rows need not be contiguous
    report = ingest_cutouts(wh, [tar])
    assert report.images == 3
    mapping = json.loads(lists[0].with_suffix(".json").read_text())
    expected = {mapping["rows"][i]["object_id"]: i for i in (0, 3, 5)}
    stored = wh.query("SELECT object_id, g_source FROM cutouts").to_pylist()
    assert {r["object_id"] for r in stored} == set(expected)
    for r in stored:
        assert r["g_source"] == (
            f"{tar.name}:arch-000000-000000/{expected[r['object_id']] + 2}-cutout-HSC-G-9813-"
            "pdr2_wide.fits"
        )
        cut = read_cutout(wh, r["object_id"], bands=("g",))
        assert cut.images[0, 0, 0] == pixel_value(r["object_id"], 0)


def test_batch_tar_with_list_given_explicitly(wh, tmp_path):
    lists = request_cutouts(wh, tmp_path / "req", bands="g")
    tar = make_batch_tar(lists, {1, 2}, out=tmp_path / "download.tar")
    with pytest.raises(CutoutError, match="no list mapping download.json beside it"):
        ingest_cutouts(wh, [tar])
    assert ingest_cutouts(wh, [tar], lists=[lists[0]]).images == 2
    with pytest.raises(CutoutError, match="1 --list file.s. for 2 tar"):
        ingest_cutouts(wh, [tar, tar], lists=[lists[0]])


def test_a_tar_member_that_is_not_the_object_its_list_row_asked_for(wh, tmp_path):
    lists = request_cutouts(wh, tmp_path / "req", bands="g")
    tar = make_batch_tar(lists, {0, 1})
    mapping_file = lists[0].with_suffix(".json")
    mapping = json.loads(mapping_file.read_text())
    a, b = mapping["rows"][0]["object_id"], mapping["rows"][1]["object_id"]
    mapping["rows"][0]["object_id"], mapping["rows"][1]["object_id"] = b, a  # a wrong mapping
    mapping_file.write_text(json.dumps(mapping))
    with pytest.raises(CutoutError) as err:
        ingest_cutouts(wh, [tar])
    assert f"its list row asked for object_id {b}, but the cutout centre" in str(err.value)
    assert f"matches object_id {a}" in str(err.value)
    assert wh.current_version("cutouts") is None


def test_unsafe_tar_members_are_refused_and_nothing_is_written_outside(wh, tmp_path):
    evil = tmp_path / "evil.tar"
    payload = tmp_path / "payload.fits"
    write_cutout_fits(payload, np.zeros((4, 4)), band="g", ra=1.0, dec=1.0, simulated=True)
    with tarfile.open(evil, "w") as tar:
        tar.add(payload, arcname="../../escaped-2-cutout-HSC-G-9813-pdr2_wide.fits")
    (tmp_path / "evil.json").write_text(
        json.dumps({"band": "g", "filter": "HSC-G", "rerun": "pdr2_wide", "rows": []})
    )
    with pytest.raises(CutoutError, match="climbs out of the destination"):
        ingest_cutouts(wh, [evil])
    assert not list(tmp_path.parent.glob("escaped-*"))
    assert wh.current_version("cutouts") is None


# --------------------------------------------------------------------------- arrays, show, config


def test_ingest_arrays_needs_catalog_objects(wh):
    with pytest.raises(CutoutError, match="not in hsc_forced"):
        ingest_arrays(wh, [1, 2], coded_arrays([1, 2], "g"), simulated=True, source="x")
    with pytest.raises(CutoutError, match="arrays must be"):
        ingest_arrays(wh, [1], coded_arrays([1, 2], "g"), simulated=True, source="x")


def test_show_writes_a_png_preview(wh, tmp_path):
    rows = objects(wh, limit=1)
    ingest_cutouts(wh, write_coded_fits(tmp_path, rows, bands="gri"))
    (tmp_path / "p").mkdir()  # a preview never creates folders (as gwh sql --out)
    out = show_cutout(wh, rows[0][0], tmp_path / "p" / "preview.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]
    with pytest.raises(CutoutError, match="has no cutouts"):
        show_cutout(wh, 12345, tmp_path / "none.png")


def test_show_without_any_cutouts(wh, tmp_path):
    with pytest.raises(CutoutError, match="no cutouts have been ingested yet"):
        show_cutout(wh, 1, tmp_path / "x.png")


def test_cutouts_partition_threshold_is_its_own_setting():
    cfg = Config.default()
    assert cfg.cutouts_max_rows_per_partition == 1000
    text = cfg.to_toml()
    assert "[cutouts]\n" in text and parse_config(text) == cfg
    assert cfg.as_dict()["cutouts"] == {"max_rows_per_partition": 1000}
    custom = parse_config(
        text.replace("max_rows_per_partition = 1000\n", "max_rows_per_partition = 7\n")
    )
    assert custom.cutouts_max_rows_per_partition == 7
    assert custom.max_rows_per_partition == 1_000_000
    with pytest.raises(ConfigError, match=r"\[cutouts\] max_rows_per_partition must be a positive"):
        parse_config("[cutouts]\nmax_rows_per_partition = 0\n")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config("[cutouts]\nrows = 3\n")


def test_cutouts_is_a_registered_table():
    from warehouse.store.contracts import base_tables

    d = base_tables()["cutouts"]
    assert d.spec == CUTOUTS and d.spec.key == ("object_id",)
    assert d.hidden_suffixes == ("_image", "_variance", "_mask")


@pytest.mark.parametrize(
    ("shapes", "size", "action"),
    [
        ([(119, 119)], 127, "padded"),
        ([(127, 127)], 127, "none"),
        ([(180, 179)], 127, "cropped"),
        ([(119, 119), (130, 130)], 127, "cropped+padded"),
        ([(100, 140)], 127, "cropped+padded"),
    ],
)
def test_fit_action_of(shapes, size, action):
    assert fit_action_of(shapes, size) == action


# --------------------------------------------------------------------------- interrupted ingest


def test_a_killed_ingest_leaves_its_folder_in_the_warehouse_and_the_rerun_removes_it(wh, tmp_path):
    """kill -9 mid-ingest used to leave an extracted copy of the tar in the system temp folder
    for good; now it sits in ROOT/cache/tmp and the next ingest removes it, then completes."""
    import os
    import signal
    import subprocess
    import sys
    import time

    repo = Path(__file__).resolve().parents[3]
    lists = request_cutouts(wh, tmp_path / "req", bands="g")
    rows = set(range(len(json.loads(lists[0].with_suffix(".json").read_text())["rows"])))
    tar = make_batch_tar(lists[:1], rows)
    scratch = wh.root / "cache" / "tmp"
    command = [sys.executable, str(repo / "cli.py"), "cutouts", "ingest", str(tar)]
    command += ["--root", str(wh.root)]

    proc = subprocess.Popen(command, cwd=repo, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(p.is_file() for p in scratch.glob(f"ingest-*-{proc.pid}-*/tar0/**/*")):
        assert proc.poll() is None, "the ingest ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stderr.close()
    left = list(scratch.glob(f"ingest-*-{proc.pid}-*"))
    assert len(left) == 1 and any(p.is_file() for p in left[0].rglob("*"))  # extracted data
    assert wh.current_version("cutouts") is None  # killed before its commit

    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not left[0].exists()
    assert list(scratch.iterdir()) == []
    stored = wh.query("SELECT count(*) AS n FROM cutouts").column("n")[0].as_py()
    assert stored == len(rows)


def test_an_ingest_removes_scratch_folders_of_dead_processes_only(wh, tmp_path):
    import os
    import subprocess
    import sys

    from warehouse.files import host_tag

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    scratch = wh.root / "cache" / "tmp"
    mine = scratch / f"ingest-{host_tag()}-{os.getpid()}-live"
    gone = scratch / f"ingest-{host_tag()}-{dead.pid}-dead"
    for folder in (mine, gone):
        folder.mkdir(parents=True)
        (folder / "member.fits").write_bytes(b"x")
    lists = request_cutouts(wh, tmp_path / "req", bands="g")
    assert ingest_cutouts(wh, [make_batch_tar(lists[:1], {0})]).images == 1
    assert mine.exists() and not gone.exists()
    assert sorted(scratch.iterdir()) == [mine]  # the ingest's own folder is gone too
