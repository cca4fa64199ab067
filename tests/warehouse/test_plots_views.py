"""Plots of views keep units and the magnitude axis direction; plots of simulated inputs say
SIMULATED; a cutout preview is readable (scale bar, id, position, redshift, 150 dpi).

Data: the SIMULATED field of conftest (its files are named ``simulated_*``), the real recorded
Hubble Source Catalog answer (M15), and simulated in-memory cutouts of field objects.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest

from loaders import registry
from warehouse.cutouts import ingest_arrays
from warehouse.errors import CutoutError
from warehouse.lineage import base_sources, column_units, is_simulated_file, simulated_sources
from warehouse.plots import PlotError, plot_cmd, plot_cutout, plot_sky

DATA = Path(__file__).resolve().parents[1] / "data"


def png_chunks(path: Path) -> dict[bytes, bytes]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    out, k = {}, 8
    while k < len(data):
        (n,) = struct.unpack(">I", data[k : k + 4])
        kind = data[k + 4 : k + 8]
        out.setdefault(kind, data[k + 8 : k + 8 + n])
        k += 12 + n
    return out


def png_size_and_dpi(path: Path) -> tuple[int, int, float]:
    chunks = png_chunks(path)
    width, height = struct.unpack(">II", chunks[b"IHDR"][:8])
    per_metre, _, unit = struct.unpack(">IIB", chunks[b"pHYs"])
    assert unit == 1  # metres
    return width, height, per_metre * 0.0254


def figure_texts(fig) -> str:  # type: ignore[no-untyped-def]
    texts = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        texts += [ax.get_title(), ax.get_xlabel(), ax.get_ylabel()]
        texts += [t.get_text() for t in ax.texts]
    if fig.get_suptitle():
        texts.append(fig.get_suptitle())
    return "\n".join(texts)


def test_view_columns_take_the_units_of_their_base_columns(loaded):
    assert {"hsc_forced", "hsc_specz"} <= set(base_sources("ml_objects"))
    assert base_sources("hsc_forced") == ("hsc_forced",)
    assert base_sources("no_such_view") == ()
    units = column_units(loaded, "ml_objects")
    assert units["i_cmodel_mag"] == "mag" and units["ra"] in ("deg", "degree")


def test_cmd_of_a_view_has_units_an_inverted_magnitude_axis_and_says_simulated(loaded, tmp_path):
    r = plot_cmd(
        loaded, "ml_objects", "g_cmodel_mag - i_cmodel_mag", "i_cmodel_mag", tmp_path / "c.png"
    )
    assert r.x_label == "g_cmodel_mag - i_cmodel_mag [mag]" and r.y_label == "i_cmodel_mag [mag]"
    ax = r.figure.axes[0]
    assert ax.yaxis_inverted() and not ax.xaxis_inverted()
    lo, hi = ax.get_ylim()
    assert lo > hi  # bright (small magnitudes) at the top
    assert r.title.startswith("SIMULATED data - ml_objects: ")
    assert "SIMULATED" in [t.get_text() for t in r.figure.texts]  # the watermark
    assert any("simulated_forced.parquet" in s for s in r.simulated)


def test_a_colour_on_the_y_axis_is_not_inverted(loaded, tmp_path):
    r = plot_cmd(
        loaded,
        "ml_objects",
        "i_cmodel_mag",
        "g_cmodel_mag - i_cmodel_mag",
        tmp_path / "c.png",
        y_label="g - i",
    )
    assert not r.figure.axes[0].yaxis_inverted()


def test_sky_map_of_a_view_says_simulated(loaded, tmp_path):
    r = plot_sky(loaded, "ml_objects", tmp_path / "s.png")
    assert r.title.startswith("SIMULATED data - ml_objects:")
    assert "SIMULATED" in figure_texts(r.figure)


def test_real_data_is_not_marked_simulated(make_warehouse, tmp_path):
    wh = make_warehouse()
    wh.load(
        registry.get("hubble-source-catalog"), [DATA / "hubble_source_catalog_mast" / "hsc.json"]
    )
    r = plot_cmd(wh, "hubble_source_catalog", "A_F606W - A_F814W", "A_F814W", tmp_path / "c.png")
    assert r.simulated == () and "SIMULATED" not in figure_texts(r.figure)
    assert r.figure.axes[0].yaxis_inverted()  # a base table's magnitudes, as before
    assert simulated_sources(wh, "hubble_source_catalog") == []


def test_sentinel_magnitudes_are_left_out_and_counted(make_warehouse, tmp_path):
    """Magnitudes of -99 and 99 (not measured) were plotted as sources and stretched the axes
    to -120; a long title was cut at both edges of the figure."""
    payload = json.loads((DATA / "hubble_source_catalog_mast" / "hsc.json").read_text())
    both = [r for r in payload["data"] if r["W3_F336W"] is not None and r["W3_F438W"] is not None]
    both[0]["W3_F438W"], both[1]["W3_F438W"] = -99.0, 99.0
    path = tmp_path / "hsc_sentinels.json"
    path.write_text(json.dumps(payload), encoding="utf-8")
    wh = make_warehouse()
    wh.load(registry.get("hubble-source-catalog"), [path])
    r = plot_cmd(wh, "hubble_source_catalog", "W3_F336W - W3_F438W", "W3_F438W", tmp_path / "c.png")
    assert r.points == len(both) - 2 > 10
    assert "2 with a magnitude of -99/99 (not measured) left out" in " ".join(r.title.split())
    assert max(abs(v) for v in r.figure.axes[0].get_ylim()) < 50
    assert all(len(line) <= 84 for line in r.figure.axes[0].get_title().splitlines())


def test_simulated_files_are_recognised_by_name_and_header(tmp_path):
    from loaders.simulated.catalog import simulate_field, write_archive_csv, write_archive_fits

    field = simulate_field(100, seed=1)
    fits_path, csv_path = tmp_path / "forced.fits", tmp_path / "specz.csv"
    write_archive_fits(field.forced, fits_path)
    write_archive_csv(field.specz, csv_path)
    assert is_simulated_file(fits_path) and is_simulated_file(csv_path)  # by content
    assert is_simulated_file(tmp_path / "simulated_gone.csv")  # by name, file gone
    real = tmp_path / "real.csv"
    real.write_text("object_id,ra,dec\n1,150.0,2.0\n")
    assert not is_simulated_file(real)


def _ingest_simulated(wh, n: int = 2, bands: str = "grizy"):  # type: ignore[no-untyped-def]
    ids = [
        row["object_id"]
        for row in wh.query(
            "SELECT object_id FROM ml_objects ORDER BY object_id LIMIT ?", [n]
        ).to_pylist()
    ]
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:127, :127]
    blob = np.exp(-((xx - 63) ** 2 + (yy - 63) ** 2) / 40.0).astype(np.float32)
    images = {
        b: (blob * (k + 1) + rng.normal(0, 0.02, (n, 127, 127))).astype(np.float32)
        for k, b in enumerate(bands)
    }
    ingest_arrays(wh, ids, images, simulated=True, source="test simulation")
    return ids


def test_real_image_rows_plotted_alone_are_not_marked_simulated(loaded, tmp_path):
    """Image rows say themselves whether they are simulated: a sky map of the real ones alone
    was stamped SIMULATED because other rows of the table were."""
    simulated = _ingest_simulated(loaded)
    real = (
        loaded.query(
            "SELECT object_id FROM ml_objects WHERE object_id NOT IN (?, ?) "
            "ORDER BY object_id LIMIT 2",
            simulated,
        )
        .column("object_id")
        .to_pylist()
    )
    images = {b: np.ones((2, 127, 127), np.float32) for b in "grizy"}
    ingest_arrays(loaded, real, images, simulated=False, source="test real")
    alone = plot_sky(loaded, "cutouts", tmp_path / "r.png", where="not simulated")
    assert alone.simulated == () and "SIMULATED" not in figure_texts(alone.figure)
    both = plot_sky(loaded, "cutouts", tmp_path / "b.png")
    assert both.simulated == ("cutouts: 2 simulated row(s) plotted",)
    assert both.title.startswith("SIMULATED data - cutouts:")
    assert "SIMULATED" in figure_texts(both.figure)


def test_cutout_preview_is_readable(loaded, tmp_path):
    ids = _ingest_simulated(loaded)
    z = loaded.query("SELECT specz_redshift FROM ml_objects WHERE object_id = ?", [ids[0]])
    out = tmp_path / "p" / "preview.png"
    out.parent.mkdir()  # plots never create folders (as gwh sql --out)
    r = plot_cutout(loaded, ids[0], out)
    width, height, dpi = png_size_and_dpi(out)
    assert (width, height) == r.pixels and round(dpi) >= 150 and width >= 1200
    text = figure_texts(r.figure)
    assert f"object_id {ids[0]}" in text
    assert "RA " in text and "Dec " in text
    assert f"z = {z.column(0)[0].as_py():.4f}" in text
    assert '5"' in text  # a 5 arcsec scale bar on a 21" (127 x 0.168") stamp
    assert "SIMULATED" in text and r.simulated
    assert min(t.get_fontsize() for t in r.figure.axes[0].texts) >= 10
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_cutout_preview_names_missing_bands_and_draws_what_exists(loaded, tmp_path):
    ids = _ingest_simulated(loaded, 1, bands="gr")
    r = plot_cutout(loaded, ids[0], tmp_path / "gr.png")
    text = figure_texts(r.figure)
    assert "no cutout in band(s) i, z, y" in text and "no i cutout" in text
    assert r.figure.axes[0].get_title() == "g band (grey)"  # not an RGB with an empty i


def test_cutout_preview_errors_are_clear(loaded, tmp_path):
    with pytest.raises(CutoutError, match="no cutouts have been ingested yet"):
        plot_cutout(loaded, 1, tmp_path / "x.png")
    ids = _ingest_simulated(loaded, 1)
    with pytest.raises(PlotError, match="PNG files"):
        plot_cutout(loaded, ids[0], tmp_path / "x.jpg")
    with pytest.raises(CutoutError, match="outside the 64-bit range"):  # was "has no cutouts"
        plot_cutout(loaded, 2**63, tmp_path / "x.png")


def test_cli_cutouts_show(loaded, cli, tmp_path):
    ids = _ingest_simulated(loaded, 1)
    out = tmp_path / "show.png"
    res = cli("cutouts", "show", str(ids[0]), "--png", out, "--root", loaded.root)
    assert res.exit_code == 0, res.output
    assert f"wrote {out} (1650x1125 px, SIMULATED cutout of object_id {ids[0]})" in res.stdout
    assert zlib.crc32(out.read_bytes()) != 0
