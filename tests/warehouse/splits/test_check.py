"""gwh splits check: planted cross-split neighbours, overlapping footprints and identical pixels
are found; a border pair in healpix mode is expected (counted, exit 0) and identical pixels in
two splits are a leak (exit 1); the CLI prints the report."""

from __future__ import annotations

import math
from pathlib import Path

import healpy as hp
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.warehouse.cutouts.test_cutouts import ingest_coded
from warehouse.config import Config, SplitConfig
from warehouse.core import Warehouse
from warehouse.cutouts import ingest_arrays
from warehouse.errors import UsageError
from warehouse.splits import check_splits, parse_radius
from warehouse.splits.check import LeakageReport

N, SEED = 150, 11


def build(root: Path, moves: dict[int, tuple[float, float]], splits: SplitConfig | None = None):
    """The SIMULATED test field with the objects of ``moves`` put at (ra, dec) (their spec-z
    positions move with them, so they still match)."""
    field = simulate_field(N, seed=SEED)

    def moved(table: pa.Table, ra: str, dec: str) -> pa.Table:
        ids = table.column("object_id").to_pylist()
        cols = {}
        for name, k in ((ra, 0), (dec, 1)):
            old = table.column(name).to_pylist()
            new = []
            for oid, value in zip(ids, old, strict=True):
                if oid in moves:
                    shift = moves[oid][k] - (forced_pos[oid][k])
                    value = value + shift
                new.append(value)
            cols[name] = pa.array(new, table.schema.field(name).type)
        for name, arr in cols.items():
            table = table.set_column(table.schema.get_field_index(name), name, arr)
        return table

    f = field.forced
    forced_pos = {
        oid: (r, d)
        for oid, r, d in zip(
            f.column("object_id").to_pylist(),
            f.column("ra").to_pylist(),
            f.column("dec").to_pylist(),
            strict=True,
        )
    }
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    tables = {
        "forced": moved(field.forced, "ra", "dec"),
        "forced2": field.forced2,
        "specz": moved(field.specz, "specz_ra", "specz_dec"),
    }
    for name, table in tables.items():
        pq.write_table(table, inputs / f"{name}.parquet")
    config = Config(max_rows_per_partition=40, splits=splits or SplitConfig())
    wh = Warehouse.init(root / "wh", config)
    wh.load(registry.get("hsc-forced"), [inputs / "forced.parquet", inputs / "forced2.parquet"])
    wh.load(registry.get("hsc-specz"), [inputs / "specz.parquet"])
    return wh


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build(tmp_path_factory.mktemp("splits-base"), {})


def _two_in_different_splits(wh):
    rows = wh.query("SELECT object_id, ra, dec, split FROM ml_objects ORDER BY object_id")
    rows = rows.to_pylist()
    a = next(r for r in rows if r["split"] == "train")
    b = next(r for r in rows if r["split"] == "test")
    return a, b


def test_a_planted_cross_split_neighbour_is_found(base, tmp_path):
    a, b = _two_in_different_splits(base)
    dec = a["dec"] + 2.0 / 3600  # 2 arcsec north of a
    wh = build(tmp_path, {b["object_id"]: (a["ra"], dec)})
    ingest_coded(wh, [a["object_id"], b["object_id"]])  # 12 x 12 px at 0.168": 2.016" wide
    report = check_splits(wh, 5.0)
    assert report.neighbours.get("train/test", 0) >= 1
    first = report.closest[0]
    assert {first["object_id_a"], first["object_id_b"]} == {a["object_id"], b["object_id"]}
    assert first["separation_arcsec"] == pytest.approx(2.0, abs=1e-3)
    assert report.footprint_pairs == {"train/test": 1} and report.footprint_objects == 2
    assert report.identical_groups == 0  # coded pixels differ per object
    assert not report.unexpected  # object mode: expected, reported
    tight = check_splits(wh, 1.5)
    assert all(
        {c["object_id_a"], c["object_id_b"]} != {a["object_id"], b["object_id"]}
        for c in tight.closest
    )
    quiet = check_splits(base, 5.0)
    assert (a["object_id"], b["object_id"]) not in {
        (c["object_id_a"], c["object_id_b"]) for c in quiet.closest
    }


def test_identical_pixels_across_splits_are_found(base, tmp_path, cli):
    wh = build(tmp_path, {})
    a, b = _two_in_different_splits(wh)
    same = {band: np.full((2, 10, 10), 3.5, np.float32) for band in "grizy"}
    ingest_arrays(wh, [a["object_id"], b["object_id"]], same, simulated=True, source="test")
    report = check_splits(wh, 5.0)
    assert report.identical_groups == 1 and report.identical_pairs == {"train/test": 1}
    assert report.identical_examples == [sorted([a["object_id"], b["object_id"]])]
    assert report.unexpected  # the same image in train and test, whatever the split mode
    r = cli("splits", "check", "--root", str(wh.root))
    assert r.exit_code == 1, r.output
    assert "LEAK: 1 image(s) with identical pixels are in more than one split" in r.output


def _split_of_cell(wh, order: int, cell: int) -> str:
    s = wh.config.splits
    u = wh.query("SELECT split_unit(?, ?) AS u", [s.salt, f"healpix{order}:{cell}"])
    u = u.column("u")[0].as_py()
    return "train" if u < s.train else "validation" if u < s.train + s.validation else "test"


def test_a_border_pair_in_healpix_mode_is_expected_not_a_leak(tmp_path, cli):
    """Neighbouring cells share a border at every order, so two objects an arcsec apart across
    it can be in two splits: counted as a border pair, exit 0 (it was exit 1 with advice to
    lower healpix_order, which makes fewer such pairs, never none)."""
    order = 7
    splits = SplitConfig(mode="healpix", healpix_order=order)
    probe = build(tmp_path / "probe", {}, splits)
    rows = probe.query("SELECT object_id, ra, dec FROM ml_objects ORDER BY object_id").to_pylist()
    nside = 2**order
    a = rows[0]
    cell = int(hp.ang2pix(nside, a["ra"], a["dec"], nest=True, lonlat=True))
    near = [int(c) for c in hp.get_all_neighbours(nside, cell, nest=True) if c >= 0]
    other = next(
        c for c in near if _split_of_cell(probe, order, c) != _split_of_cell(probe, order, cell)
    )
    # a point on the border the two cells share, and one arcsec into each of them
    edge = hp.boundaries(nside, cell, step=64, nest=True).T
    vc, vo = (np.array(hp.pix2vec(nside, c, nest=True)) for c in (cell, other))
    p = edge[np.argmin(np.linalg.norm(edge - vo, axis=1))]
    step = math.radians(1.0 / 3600)

    def inside(v):
        q = p + step * (v - p) / np.linalg.norm(v - p)
        lon, lat = hp.vec2ang(q / np.linalg.norm(q), lonlat=True)
        return float(lon[0]), float(lat[0])

    pa_, pb_ = inside(vc), inside(vo)
    assert hp.ang2pix(nside, *pa_, nest=True, lonlat=True) == cell
    assert hp.ang2pix(nside, *pb_, nest=True, lonlat=True) == other
    wh = build(tmp_path / "wh", {rows[0]["object_id"]: pa_, rows[1]["object_id"]: pb_}, splits)
    report = check_splits(wh, 5.0)
    assert report.leaks >= 1 and report.border_pairs == report.leaks
    assert report.same_cell_pairs == 0 and not report.unexpected
    assert report.closest[0]["separation_arcsec"] < 2.5
    assert set(report.fractions) == {"train", "validation", "test"}
    assert sum(report.fractions.values()) == pytest.approx(1.0)
    r = cli("splits", "check", "--root", str(wh.root), "--radius", "5arcsec")
    assert r.exit_code == 0, r.output
    assert "neighbours in different splits:" in r.output and "LEAK" not in r.output
    assert "straddle a cell border, which neighbouring cells always share: expected" in r.output
    assert "realised split fractions: train 0." in r.output


def test_cli_object_mode_reports_and_exits_zero(base, cli):
    r = cli("splits", "check", "--root", str(base.root), "--radius", "0.5arcmin", "--json")
    assert r.exit_code == 0, r.output
    assert '"radius_arcsec": 30.0' in r.output and '"unexpected": false' in r.output


def test_radius_parsing():
    assert parse_radius("5arcsec") == 5.0 == parse_radius("5") == parse_radius('5"')
    assert parse_radius("0.1deg") == pytest.approx(360.0)
    with pytest.raises(UsageError, match="give a number and a unit"):
        parse_radius("five")
    with pytest.raises(UsageError, match="above 0"):
        parse_radius("0arcsec")
    for negative in ("-5arcsec", "-0.1arcmin", "-5"):  # said "give a number and a unit"
        with pytest.raises(UsageError, match="must be above 0 and at most 1 deg"):
            parse_radius(negative)


def test_the_summary_says_when_cells_are_too_few_for_the_fractions():
    """healpix_order 0 on a small field put every object in one split and said nothing."""
    wanted = {"train": 0.7, "validation": 0.15, "test": 0.15}
    bad = LeakageReport(5.0, "healpix", 10, fractions={"train": 0.0, "validation": 1.0,
                        "test": 0.0}, configured=wanted)  # fmt: skip
    assert "note: split train, test is empty; the realised fractions are up to 0.85" in (
        bad.summary()
    )
    near = LeakageReport(5.0, "healpix", 10, fractions={"train": 0.71, "validation": 0.14,
                         "test": 0.15}, configured=wanted)  # fmt: skip
    assert "note:" not in near.summary()
