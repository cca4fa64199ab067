"""End to end in a real headless Chromium (Debian's ``chromium``, driven by Playwright): the
overview shows the counts, a query returns rows and links to an object page whose cutout PNGs
load at the cutout's size, the gallery pages, a write statement is refused. Screenshots of the
four main pages go to ``tests/artifacts/screenshots/`` (``overview.png``, ``sql.png``,
``object.png``, ``gallery.png``; git ignores the folder).

Chromium must be installed (``.ci/run`` installs it): without it this test fails, it never skips.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

from warehouse.core import Warehouse

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or (
        "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
    )
    assert found, (
        "Debian's chromium is missing: `apt-get install -y chromium` (.ci/run installs it); "
        "never `playwright install`"
    )
    return found


@pytest.fixture(scope="module")
def page():
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium(),
            args=CHROMIUM_ARGS,  # Playwright gives it a new, empty profile folder
        )
        try:
            yield browser.new_page(viewport={"width": 1300, "height": 900})
        finally:
            browser.close()


def loaded(page, selector: str) -> None:
    """Wait until every image the selector matches has loaded a non-empty picture."""
    page.wait_for_function(
        "s => Array.from(document.querySelectorAll(s))"
        ".every(i => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_the_four_pages_in_chromium(page, server, demo_root):
    wh = Warehouse.open(demo_root)
    base = server.url.rstrip("/")
    n_ml = wh.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()
    n_test = wh.query("SELECT count(*) FROM ml_objects WHERE split = 'test'").column(0)[0].as_py()

    # the overview shows the counts
    page.goto(base + "/")
    assert page.locator('td[data-view="ml_objects"]').inner_text() == f"{n_ml:,}"
    assert page.locator('td[data-split="test"]').inner_text() == f"{n_test:,}"
    loaded(page, ".sky img")
    shot(page, "overview")

    # a query returns rows, whose object_ids link to object pages
    page.goto(base + "/sql")
    page.fill(
        "#q",
        "SELECT object_id, split, specz_redshift FROM ml_objects "
        "WHERE object_id IN (SELECT object_id FROM cutouts) ORDER BY object_id",
    )
    page.click("#run")
    page.wait_for_selector("#results")
    rows = page.locator("#results tbody tr")
    imaged = (
        wh.query(
            "SELECT count(*) FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
        )
        .column(0)[0]
        .as_py()
    )
    assert rows.count() == imaged > 0
    shot(page, "sql")
    first = page.locator("#results tbody tr a").first
    oid = int(first.inner_text())
    first.click()
    page.wait_for_url(f"**/object/{oid}")

    # the object page: its cutout PNGs load, at the cutout's size
    assert page.locator("#object-id").inner_text() == str(oid)
    page.wait_for_function(
        "Array.from(document.querySelectorAll('img.cutout')).every(i => i.complete)"
    )
    sizes = page.eval_on_selector_all(
        "img.cutout",
        "imgs => imgs.map(i => [i.id, i.naturalWidth, i.naturalHeight])",
    )
    stored = wh.query(
        "SELECT g_width, g_height FROM cutouts WHERE object_id = ?", [oid]
    ).to_pylist()[0]
    assert [s[0] for s in sizes] == ["img-rgb", "img-g", "img-r", "img-i", "img-z", "img-y"]
    assert all(s[1:] == [stored["g_width"], stored["g_height"]] for s in sizes), sizes
    page.select_option("#stretch", "linear")  # changing the stretch reloads the images
    page.wait_for_url("**stretch=linear**")
    loaded(page, "img.cutout")
    assert "stretch=linear" in page.locator("#img-g").get_attribute("src")
    shot(page, "object")

    # the gallery pages
    page.goto(base + "/gallery?per_page=6&order=specz_redshift")
    loaded(page, "#grid img")
    first_page = page.locator("#grid a").evaluate_all("as => as.map(a => a.href)")
    assert len(first_page) == 6
    shot(page, "gallery")
    page.click("#next")
    page.wait_for_url("**page=2**")
    second_page = page.locator("#grid a").evaluate_all("as => as.map(a => a.href)")
    assert second_page and not set(first_page) & set(second_page)

    # a write statement is refused, in the page
    page.goto(base + "/sql")
    page.fill("#q", "COPY ml_objects TO '/tmp/gwh-browser-stolen.csv'")
    page.click("#run")
    assert "COPY is not allowed" in page.locator("#error").inner_text()
    assert not Path("/tmp/gwh-browser-stolen.csv").exists()
    for name in ("overview", "sql", "object", "gallery"):
        assert (SCREENSHOTS / f"{name}.png").stat().st_size > 10_000
