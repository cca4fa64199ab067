"""Readers only: a slow query is cancelled with a message and never holds up another browser,
the server answers while a writer holds the warehouse, and a load's commit shows on the next
request while the old state stays readable until its requests end."""

from __future__ import annotations

import threading

import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.conftest import tree_snapshot
from warehouse.errors import QueryTimeoutError, ServeError
from warehouse.release import create_release, pack
from warehouse.web import open_site, start
from warehouse.web.server import bind
from warehouse.web.site import settings_key

from .conftest import fetch

SLOW = "SELECT max(md5(range::VARCHAR)) FROM range(100000000000)"


@pytest.fixture
def served(loaded):
    running = start(open_site(loaded.root, query_timeout=4.0))
    yield loaded, running
    running.stop()


def test_a_long_query_is_cancelled_and_blocks_nobody(served):
    wh, running = served
    fetch(running.url, "/api/overview")  # computed once, cached for this state
    slow: dict = {}
    thread = threading.Thread(
        target=lambda: slow.setdefault("reply", fetch(running.url, "/api/sql", q=SLOW))
    )
    thread.start()
    quick = fetch(running.url, "/api/sql", q="SELECT count(*) AS n FROM hsc_forced")
    other = fetch(running.url, "/")
    assert thread.is_alive()  # the slow one still runs while two other requests were answered
    assert quick.status == 200 and quick.json()["rows"] == [{"n": 1200}]
    assert other.status == 200
    thread.join(timeout=120)
    reply = slow["reply"]
    assert reply.status == 400 and "ran longer than 4 s and was cancelled" in reply.json()["error"]
    page = fetch(running.url, "/sql", q=SLOW)
    assert page.status == 400 and "was cancelled" in page.text


def test_site_query_timeout_is_a_query_error(loaded):
    site = open_site(loaded.root, query_timeout=0.5)
    try:
        with pytest.raises(QueryTimeoutError, match="ran longer than 0.5 s"):
            site.query(SLOW)
        assert site.query("SELECT 1 AS x").to_pylist() == [{"x": 1}]  # the site still works
    finally:
        site.close()


def test_readers_never_wait_for_a_writer_and_see_its_commit(served, tmp_path):
    wh, running = served
    assert _forced_rows(running) == 1200
    with wh.writing("gwh load hsc-forced (test)"):  # a writer holds the warehouse
        assert _forced_rows(running) == 1200
        assert fetch(running.url, "/").status == 200
    extra = tmp_path / "more.parquet"
    pq.write_table(simulate_field(40, seed=777).forced, extra)
    done = threading.Event()

    def load() -> None:
        wh.load(registry.get("hsc-forced"), [extra])
        done.set()

    loader = threading.Thread(target=load)
    loader.start()  # the server holds its state open meanwhile: the load must not wait for it
    loader.join(timeout=300)
    assert done.is_set()
    after = _forced_rows(running)
    assert after == wh.query("SELECT count(*) FROM hsc_forced").column(0)[0].as_py() > 1200
    overview = fetch(running.url, "/api/overview").json()
    assert {v["name"]: v["rows"] for v in overview["views"]}["hsc_forced"] == after


def _forced_rows(running) -> int:
    return fetch(running.url, "/api/sql", q="SELECT count(*) AS n FROM hsc_forced").json()["rows"][
        0
    ]["n"]


def test_port_in_use_and_bad_host_are_one_line_errors(served):
    _wh, running = served
    port = int(running.url.rsplit(":", 1)[1].strip("/"))
    with pytest.raises(ServeError, match=rf"cannot listen on 127.0.0.1:{port}: .*pass --port N"):
        bind("127.0.0.1", port)
    with pytest.raises(ServeError, match="--host no-such-host.invalid: not an address"):
        bind("no-such-host.invalid", 0)


@pytest.mark.parametrize("port", [65536, 99999, -1])
def test_a_port_out_of_range_is_refused_not_wrapped(port):
    """99999 used to listen on 34463 (99999 mod 65536) and print that address."""
    with pytest.raises(ServeError, match=rf"--port {port}: a port is 0 \(any free port\) to 65535"):
        bind("127.0.0.1", port)


def test_serving_writes_nothing_in_the_warehouse(served):
    wh, running = served
    before = tree_snapshot(wh.root)
    for path, params in (
        ("/", {}),
        ("/api/overview", {}),
        ("/sql", {"q": "SELECT * FROM ml_objects LIMIT 5"}),
        ("/sql/download.parquet", {"q": "SELECT object_id FROM ml_objects"}),
        ("/sql/download.csv", {"q": "SELECT object_id FROM ml_objects"}),
        ("/plot/sky.png", {"split": "train"}),
        ("/gallery", {}),
        ("/release", {}),
        ("/api/sql", {"q": "COPY ml_objects TO 'inside.csv'"}),
    ):
        assert fetch(running.url, path, **params).status in (200, 400), path
    oid = wh.query("SELECT object_id FROM ml_objects LIMIT 1").column(0)[0].as_py()
    assert fetch(running.url, f"/object/{oid}").status == 200
    assert tree_snapshot(wh.root) == before


def test_a_packed_release_is_served_on_its_own(loaded, tmp_path):
    create_release(loaded, "v1", "first")
    packed = pack(loaded.root, "v1", tmp_path / "v1-packed")
    running = start(open_site(tmp_path / "nowhere", release=str(packed)))
    try:
        assert fetch(running.url, "/api/overview").json()["release"] == "v1"
        assert [r["name"] for r in fetch(running.url, "/api/releases").json()] == ["v1"]
        info = fetch(running.url, "/api/release/v1").json()
        assert info["verified"] and info["diff"] is None
        assert fetch(running.url, "/api/release/v2").status == 404
        rows = fetch(running.url, "/api/sql", q="SELECT count(*) AS n FROM hsc_forced").json()
        assert rows["rows"] == [{"n": 1200}]
    finally:
        running.stop()


def test_an_edit_of_warehouse_toml_shows_on_the_next_request(served):
    """A running server read its configuration once: after [splits] went from 70/15/15 to
    60/20/20 it still served the old splits (every moved object on the wrong one) while
    ``gwh sql`` gave the new ones. It now reopens the warehouse when warehouse.toml changes."""
    from warehouse.core import Warehouse

    loaded, running = served
    sql = "SELECT split, count(*) AS n FROM ml_objects GROUP BY 1 ORDER BY 1"

    def served_counts() -> dict[str, int]:
        reply = fetch(running.url, "/api/sql", q=sql)
        assert reply.status == 200, reply.text
        return {r["split"]: r["n"] for r in reply.json()["rows"]}

    before = served_counts()
    toml = loaded.root / "warehouse.toml"
    text = toml.read_text(encoding="utf-8")
    for old, new in (("train = 0.7", "train = 0.6"), ("0.15", "0.2")):
        assert old in text
        text = text.replace(old, new)
    toml.write_text(text, encoding="utf-8")
    fresh = Warehouse.open(loaded.root).query(sql).to_pylist()
    expected = {r["split"]: r["n"] for r in fresh}
    assert expected != before  # objects moved
    assert served_counts() == expected


def test_the_settings_key_survives_a_file_that_goes_away(tmp_path):
    """An editor saves warehouse.toml by moving it away and back: the key a running server
    compares on every request must not fail on the missing file (every page was a 500)."""
    (tmp_path / "warehouse.toml").write_text("[splits]\n")
    there = settings_key(tmp_path)
    (tmp_path / "warehouse.toml").unlink()
    gone = settings_key(tmp_path)
    assert gone != there
    (tmp_path / "warehouse.toml").write_text("[splits]\ntrain = 0.6\n")
    assert settings_key(tmp_path) not in (there, gone)
