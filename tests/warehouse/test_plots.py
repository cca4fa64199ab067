"""PNG plots: written, non-empty, of the expected size, with units on the axes and counts in the
title. Data: the real recorded Hubble Source Catalog answer (M15) and the real Galaxy Zoo 2
sample (a stripe around the sky)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from loaders import registry
from warehouse.plots import DPI, SIZE_INCHES, PlotError, choose_order, plot_cmd, plot_sky

DATA = Path(__file__).resolve().parents[1] / "data"
EXPECTED = (int(SIZE_INCHES[0] * DPI), int(SIZE_INCHES[1] * DPI))


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


@pytest.fixture
def hubble(make_warehouse):
    wh = make_warehouse()
    wh.load(
        registry.get("hubble-source-catalog"), [DATA / "hubble_source_catalog_mast" / "hsc.json"]
    )
    return wh


def test_cmd_is_a_labelled_png_of_the_expected_size(hubble, tmp_path):
    out = tmp_path / "cmd.png"
    r = plot_cmd(hubble, "hubble_source_catalog", "W3_F336W - W3_F438W", "W3_F438W", out)
    assert png_size(out) == EXPECTED == r.pixels and out.stat().st_size > 10_000
    n = (
        hubble.query(
            "SELECT count(*) FROM hubble_source_catalog WHERE W3_F336W IS NOT NULL "
            "AND W3_F438W IS NOT NULL"
        )
        .column(0)[0]
        .as_py()
    )
    assert r.points == n == 21 and r.dropped == 7
    assert r.x_label == "W3_F336W - W3_F438W [mag]" and r.y_label == "W3_F438W [mag]"
    assert r.title.startswith("hubble_source_catalog: 21 sources (7 without finite values")


def test_cmd_where_and_labels(hubble, tmp_path):
    r = plot_cmd(
        hubble,
        "hubble_source_catalog",
        "W3_F336W - W3_F438W",
        "W3_F438W",
        tmp_path / "cmd.png",
        where="NumImages >= 3",
        y_label="F438W (WFC3) [ABmag]",
    )
    assert r.y_label == "F438W (WFC3) [ABmag]" and "where NumImages >= 3" in r.title


def test_sky_map_of_a_small_field_is_zoomed(hubble, tmp_path):
    out = tmp_path / "sky.png"
    r = plot_sky(hubble, "hubble_source_catalog", out)
    assert png_size(out) == EXPECTED and out.stat().st_size > 5_000
    assert r.points == 28 and (r.x_label, r.y_label) == ("RA [deg]", "Dec [deg]")
    assert r.title.startswith("hubble_source_catalog: 28 objects in ")


def test_sky_map_of_a_stripe_around_the_sky_is_all_sky(make_warehouse, tmp_path):
    wh = make_warehouse()
    wh.load(
        registry.get("galaxy-zoo"), [DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"]
    )
    out = tmp_path / "sky.png"
    r = plot_sky(wh, "galaxy_zoo", out, order=4)
    assert png_size(out) == EXPECTED
    assert r.detail == "order 4" and r.x_label.startswith("RA [deg]")
    assert r.title.startswith("galaxy_zoo: 200 objects in ")


def test_nothing_to_plot_and_bad_input_are_clear_errors(hubble, tmp_path):
    with pytest.raises(PlotError, match="nothing to plot"):
        plot_cmd(
            hubble,
            "hubble_source_catalog",
            "A_F606W",
            "A_F814W",
            tmp_path / "a.png",
            where="A_F606W IS NULL",
        )
    with pytest.raises(PlotError, match="PNG files"):
        plot_cmd(hubble, "hubble_source_catalog", "CI", "A_F814W", tmp_path / "a.jpg")
    with pytest.raises(PlotError, match="no_such_column"):
        plot_cmd(hubble, "hubble_source_catalog", "no_such_column", "CI", tmp_path / "a.png")
    with pytest.raises(PlotError, match="no_such_table"):
        plot_sky(hubble, "no_such_table", tmp_path / "a.png")
    with pytest.raises(PlotError, match='column "ra" not found.*needs the columns ra and dec'):
        plot_sky(hubble, "gwh_loads", tmp_path / "a.png")  # a table without positions
    for x in ("CI; DROP TABLE hubble_source_catalog", "MatchID || 'a'"):  # parser, cast errors
        with pytest.raises(PlotError) as one_line:
            plot_cmd(hubble, "hubble_source_catalog", x, "A_F814W", tmp_path / "a.png")
        assert "\n" not in str(one_line.value) and f"--x {x!r}" in str(one_line.value)
    with pytest.raises(PlotError, match="--order must be between 0 and 13"):
        plot_sky(hubble, "hubble_source_catalog", tmp_path / "a.png", order=20)
    assert not list(tmp_path.glob("*.png")) and not list(tmp_path.glob(".*"))  # no partial files


def test_choose_order_resolves_the_field_and_keeps_pixels_populated():
    import numpy as np

    # a 1-degree field, well populated: about 60 pixels across
    assert choose_order(1.0, lambda k: np.full(10, 50)) == 12
    # sparse: coarser until the median pixel holds 3 objects (at most 4 orders)
    assert choose_order(1.0, lambda k: np.full(10, 2 ** (12 - k))) == 10
    assert choose_order(1.0, lambda k: np.full(10, 1)) == 8
    assert choose_order(360.0, lambda k: np.full(10, 100)) == 3  # 768 pixels on the sky


def test_out_in_a_missing_folder_is_refused_as_sql_out_refuses_it(hubble, tmp_path):
    """``gwh plot --out /nonexistent/dir/x.png`` created the folders; gwh sql --out refuses.
    Both now say the same line, and nothing is created."""
    from warehouse import output
    from warehouse.errors import QueryError

    out = tmp_path / "no" / "such" / "cmd.png"
    with pytest.raises(PlotError) as plotted:
        plot_cmd(hubble, "hubble_source_catalog", "W3_F336W - W3_F438W", "W3_F438W", out)
    with pytest.raises(PlotError, match="does not exist; create it first"):
        plot_sky(hubble, "hubble_source_catalog", out)
    with pytest.raises(QueryError) as saved:
        output.save(hubble.query("select 1 as x"), out.with_suffix(".csv"))
    want = f"--out {out}: folder {out.parent} does not exist; create it first."
    assert str(plotted.value) == want
    assert str(saved.value) == want.replace(".png", ".csv")
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("x")
    with pytest.raises(PlotError, match="is not a folder"):
        plot_cmd(
            hubble, "hubble_source_catalog", "W3_F336W", "W3_F438W", tmp_path / "file" / "a.png"
        )
