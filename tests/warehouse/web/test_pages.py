"""The HTML pages over a real HTTP server: content, escaping, downloads, errors."""

from __future__ import annotations

import io
import re

import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from warehouse.core import Warehouse
from warehouse.web import open_site, start

from .conftest import fetch


def _first_imaged(demo_root) -> int:
    wh = Warehouse.open(demo_root)
    return (
        wh.query(
            "SELECT object_id FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts) "
            "ORDER BY object_id LIMIT 1"
        )
        .column(0)[0]
        .as_py()
    )


def test_overview_page_shows_counts_charts_and_sky_maps(get, demo_root):
    wh = Warehouse.open(demo_root)
    page = get("/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    n = wh.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()
    assert re.search(rf'data-view="ml_objects">{n:,}<', page.text)
    assert page.text.count("<svg") == 3  # rule bars, dedup bars, redshift histograms
    assert "SIMULATED data" in page.text
    for split in ("train", "validation", "test"):
        assert f"/plot/sky.png?split={split}" in page.text
    sky = get("/plot/sky.png", split="test")
    assert sky.status == 200 and sky.body[:8] == b"\x89PNG\r\n\x1a\n"
    assert "/static/style.css" in page.text and get("/static/style.css").status == 200
    assert not re.search(r'(src|href)="(https?:)?//', page.text)  # offline: nothing external


def test_sql_page_links_ids_and_escapes_everything(get):
    page = get("/sql", q="SELECT object_id, split FROM ml_objects ORDER BY object_id LIMIT 3")
    ids = re.findall(r'<a href="/object/(-?\d+)">', page.text)
    assert page.status == 200 and len(ids) == 3
    evil = get("/sql", q="SELECT '<script>alert(1)</script>' AS \"<b>x</b>\"")
    assert evil.status == 200
    assert "<script>alert(1)</script>" not in evil.text and "<b>x</b>" not in evil.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in evil.text
    refused = get("/sql", q="SELECT 1; DROP VIEW ml_objects")
    assert refused.status == 400 and 'id="error"' in refused.text
    assert "2 statements given" in refused.text and "<textarea" in refused.text
    escaped_error = get("/sql", q='SELECT * FROM "<img src=x onerror=alert(1)>"')
    assert "<img src=x" not in escaped_error.text and "&lt;img src=x" in escaped_error.text


def test_sql_pages_move_on(get):
    page = get("/sql", q="SELECT range AS k FROM range(1500)")
    assert page.text.count("<tr>") == 1001 and 'id="next"' in page.text  # header + 1,000 rows
    second = get("/sql", q="SELECT range AS k FROM range(1500)", page=2)
    assert second.text.count("<tr>") == 501 and 'id="next"' not in second.text
    assert 'id="prev"' in second.text and "rows 1,001–1,500" in second.text


def test_downloads_hold_every_row_with_units(get, demo_root):
    wh = Warehouse.open(demo_root)
    sql = "SELECT object_id, ra, i_cmodel_mag FROM ml_objects ORDER BY object_id"
    expected = wh.query(sql)
    csv = get("/sql/download.csv", q=sql)
    assert csv.status == 200 and "attachment" in csv.headers["content-disposition"]
    table = pcsv.read_csv(io.BytesIO(csv.body))
    assert table.column("object_id").to_pylist() == expected.column("object_id").to_pylist()
    parquet = get("/sql/download.parquet", q=sql)
    t = pq.read_table(io.BytesIO(parquet.body))
    assert t.num_rows == expected.num_rows
    assert t.schema.field("i_cmodel_mag").metadata[b"unit"] == b"mag"
    assert get("/sql/download.parquet", q="COPY ml_objects TO 'x.csv'").status == 400


def test_object_page(get, demo_root):
    oid = _first_imaged(demo_root)
    page = get(f"/object/{oid}")
    assert page.status == 200
    for band in ("rgb", "g", "r", "i", "z", "y"):
        assert f'id="img-{band}"' in page.text
    assert 'class="scalebar"' in page.text and "SIMULATED" in page.text
    assert "Quality rules" in page.text and 'id="dedup-status">kept' in page.text
    assert re.search(r"<code>i_cmodel_mag</code></td><td[^>]*>[^<]+</td><td>mag</td>", page.text)
    linear = get(f"/object/{oid}", stretch="linear", mask="1")
    assert "stretch=linear" in linear.text and "mask=1" in linear.text
    assert get(f"/object/{oid}", stretch="log").status == 400  # a bad parameter
    missing = get("/object/12345")
    assert missing.status == 404 and "12345" in missing.text and "Traceback" not in missing.text


def test_real_cutout_without_zeropoint_or_catalog_photometry(get):
    page = get("/object/-1")  # a real COSMOS cutout: position-only catalog row, no zeropoint
    assert page.status == 200
    assert "not calibrated flux" in page.text and "SIMULATED image" not in page.text


def test_gallery_page_and_its_pages(get, demo_root):
    page = get("/gallery", per_page=5)
    thumbs = re.findall(r'<img src="/cutout/(-?\d+)/rgb.png', page.text)
    assert page.status == 200 and len(thumbs) == 5 and 'id="next"' in page.text
    page2 = get("/gallery", per_page=5, page=2)
    thumbs2 = re.findall(r'<img src="/cutout/(-?\d+)/rgb.png', page2.text)
    assert thumbs2 and not set(thumbs) & set(thumbs2)
    failing = get("/gallery", view="quality_flags", where="NOT no_pixelflags_bad")
    assert failing.status == 200 and 'id="gallery-summary"' in failing.text
    bad = get("/gallery", where="no_such_column > 1")
    assert bad.status == 400 and "no_such_column" in bad.text


def test_release_pages(get):
    listing = get("/release")
    assert listing.status == 200 and 'href="/release/v1"' in listing.text
    v2 = get("/release/v2")
    assert v2.status == 200 and "verified: every file matches" in v2.text
    assert 'id="diff-title">v1 → v2' in v2.text
    assert "This is the first release" in get("/release/v1").text
    assert get("/release/../../etc").status == 404


def test_an_empty_warehouse_says_what_to_load(make_warehouse):
    wh = make_warehouse()
    running = start(open_site(wh.root))
    try:
        page = fetch(running.url, "/")
        assert page.status == 200 and "unavailable: hsc_forced has not been loaded yet" in page.text
        gallery = fetch(running.url, "/gallery")
        assert gallery.status == 400 and "ml_objects is unavailable" in gallery.text
        assert fetch(running.url, "/sql", q="SELECT 42 AS x").status == 200
        assert fetch(running.url, "/plot/sky.png").status == 400
    finally:
        running.stop()
