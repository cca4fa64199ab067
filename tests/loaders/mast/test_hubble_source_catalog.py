"""The Hubble Source Catalog client (astroquery's Mashup client pointed at the local replay
server, which answers the real recorded MAST responses in tests/data/hubble_source_catalog_mast)."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.http.session import RetryPolicy
from loaders.mast.hubble_source_catalog import (
    HubbleSourceCatalogLoader,
    fetch_hubble_source_catalog,
    match_sources,
)
from loaders.mast.mashup import Box, resolve_target
from tests.support import replay_server as support
from tests.support.replay_server import MAST_DIR, Response, install_mast
from warehouse.errors import ArchiveError, LoadError, QueryError

replay_server = support.replay_server

M15 = "322.525 12.167"  # the recorded answer is a cone on M15
RECORDED = json.loads((MAST_DIR / "hsc.json").read_text())


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def _no_ambient_url(monkeypatch):
    monkeypatch.delenv("GWH_MAST_URL", raising=False)


@pytest.fixture
def mast(replay_server):
    server = replay_server()
    return server, install_mast(server)


def fetch(server, tmp_path, **kw):
    kw.setdefault("box_deg", 0.05)
    kw.setdefault("sleep", Sleeps())
    return fetch_hubble_source_catalog(
        kw.pop("target", M15), cache_dir=tmp_path / "cache", base_url=server.url, **kw
    )


def test_fetch_returns_the_recorded_rows_typed_exactly(mast, tmp_path):
    server, archive = mast
    result = fetch(server, tmp_path)
    table = pq.read_table(result.path)
    assert result.rows == result.rows_fetched == table.num_rows == 28
    assert table.schema.field("MatchID").type == pa.int64()
    assert sorted(table.column("MatchID").to_pylist()) == sorted(
        r["MatchID"] for r in RECORDED["data"]
    )
    assert "_selected_" not in table.column_names and "Distance" not in table.column_names
    # None in the answer is NULL, not NaN or a sentinel
    assert table.column("A_F606W").null_count == 27
    assert table.schema.field("A_F814W").metadata[b"unit"] == b"mag"
    assert table.schema.field("MatchRA").metadata[b"unit"] == b"deg"
    assert archive.protocol_errors == []
    (call,) = archive.calls
    assert call["service"] == "Mast.Hsc.Db.v3"
    assert call["params"]["nr"] == 50_000 and call["params"]["ni"] == 1
    assert call["params"]["ra"] == pytest.approx(322.525)
    assert call["params"]["radius"] == pytest.approx(Box(322.525, 12.167, 0.05).cone_radius())


def test_pages_are_cached_and_a_rerun_asks_for_nothing(mast, tmp_path):
    server, archive = mast
    first = fetch(server, tmp_path, pagesize=10)
    assert archive.pages() == [1, 2, 3] and first.pages == 3 and first.pages_fetched == 3
    again = fetch(server, tmp_path, pagesize=10, where="W3_F336W_N >= 1")
    assert archive.pages() == [1, 2, 3]  # nothing new: the cut is local
    assert again.pages_fetched == 0 and again.rows == 21 and again.rows_fetched == 28


def test_an_interrupted_fetch_resumes_with_the_missing_pages(mast, tmp_path):
    server, archive = mast
    state = {"fail": True}

    def flaky(request):
        mashup = json.loads(parse_qs(request.body.decode())["request"][0])
        if mashup.get("page") == 2 and state["fail"]:
            archive.calls.append(mashup)
            return Response.text("internal error", status=500)
        return archive._invoke(request)

    server.add_route("POST", "/api/v0/invoke", flaky)
    with pytest.raises(ArchiveError, match=r"page 2 answered HTTP 500 \(gave up after 1 attempt"):
        fetch(server, tmp_path, pagesize=10, retry=RetryPolicy(attempts=1))
    state["fail"] = False
    result = fetch(server, tmp_path, pagesize=10)
    assert archive.pages() == [1, 2, 2, 3]  # page 1 came from the cache
    assert result.rows == 28 and result.pages_fetched == 2


def test_a_transient_503_is_retried_with_back_off(mast, tmp_path):
    server, _ = mast
    server.inject("status", count=2, status=503, path="/api/v0/invoke")
    sleeps = Sleeps()
    assert fetch(server, tmp_path, sleep=sleeps).rows == 28
    assert sleeps == [1.0, 2.0]


def test_a_connection_reset_is_retried(mast, tmp_path):
    server, _ = mast
    server.inject("reset", count=1, path="/api/v0/invoke")
    sleeps = Sleeps()
    assert fetch(server, tmp_path, sleep=sleeps).rows == 28
    assert sleeps == [1.0]


def test_a_hung_server_times_out_and_is_a_clear_error(replay_server, tmp_path):
    server = replay_server(hang_seconds=3)
    install_mast(server)
    server.inject("hang", count=5, path="/api/v0/invoke")
    with pytest.raises(ArchiveError, match="timed out.*gave up after 2 attempts"):
        fetch(server, tmp_path, timeout=(2.0, 0.3), retry=RetryPolicy(attempts=2))


def test_a_4xx_is_not_retried(mast, tmp_path):
    server, _ = mast
    server.inject("status", count=1, status=400, path="/api/v0/invoke")
    sleeps = Sleeps()
    with pytest.raises(ArchiveError, match="answered HTTP 400"):
        fetch(server, tmp_path, sleep=sleeps)
    assert sleeps == []


def test_a_service_error_names_the_message(mast, tmp_path):
    server, _ = mast
    server.add_route(
        "POST",
        "/api/v0/invoke",
        lambda r: Response.json({"status": "ERROR", "msg": "Query timed out on the server"}),
    )
    with pytest.raises(ArchiveError, match="status 'ERROR': Query timed out on the server"):
        fetch(server, tmp_path)
    assert not list((tmp_path / "cache").rglob("page-*.json"))  # an error is never cached


def test_reaching_max_records_is_an_error_not_a_silent_truncation(mast, tmp_path):
    server, _ = mast
    with pytest.raises(ArchiveError, match=r"28 rows, the max-records limit \(28\)"):
        fetch(server, tmp_path, max_records=28)


def test_no_rows_left_is_a_clear_error(mast, tmp_path):
    server, _ = mast
    with pytest.raises(
        ArchiveError, match=r"no Hubble Source Catalog sources left.*28 in the cone"
    ):
        fetch(server, tmp_path, where="A_F606W_N >= 5")


def test_names_resolve_through_mast_and_an_unknown_name_is_an_error(mast, tmp_path):
    server, archive = mast
    ra, dec = resolve_target("M101", base_url=server.url)
    assert (ra, dec) == pytest.approx((210.802429, 54.34875))
    assert archive.calls[-1] == {**archive.calls[-1], "service": "Mast.Name.Lookup"}
    assert archive.calls[-1]["params"]["input"] == "M101"
    with pytest.raises(ArchiveError, match="could not resolve the name 'NoSuchGalaxy'"):
        resolve_target("NoSuchGalaxy", base_url=server.url)
    # the recorded cone is M15: a box on M101 holds none of it
    with pytest.raises(ArchiveError, match=r"around \(210\.80243, \+54\.34875\)"):
        fetch(server, tmp_path, target="M101")


def test_bad_arguments_fail_before_any_request(mast, tmp_path):
    server, archive = mast
    with pytest.raises(QueryError, match="exactly one of --box-deg and --radius-deg"):
        fetch(server, tmp_path, radius_deg=0.1)
    with pytest.raises(QueryError, match="version must be 2 or 3"):
        fetch(server, tmp_path, version=4)
    with pytest.raises(QueryError, match="pagesize must be between"):
        fetch(server, tmp_path, pagesize=0)
    assert server.requests == []
    with pytest.raises(QueryError, match="--where 'no_such_col > 1' does not apply"):
        fetch(server, tmp_path, where="no_such_col > 1")


def test_the_env_url_wins_over_the_configured_one(mast, tmp_path, monkeypatch):
    server, _ = mast
    monkeypatch.setenv("GWH_MAST_URL", server.url)
    result = fetch_hubble_source_catalog(
        M15, cache_dir=tmp_path, box_deg=0.05, base_url="http://127.0.0.1:9"
    )
    assert result.rows == 28


def test_match_detail_of_the_recorded_matchid(mast):
    server, archive = mast
    table = match_sources(82371983, base_url=server.url)
    assert table.num_rows == 9
    assert set(table.column("MatchID").to_pylist()) == {82371983}
    assert table.schema.field("SourceID").type == pa.int64()
    assert archive.calls[-1]["service"] == "Mast.HscMatches.Db.v3"
    with pytest.raises(ArchiveError, match="no detections"):
        match_sources(1, base_url=server.url)


def test_the_loader_reads_a_recorded_answer_file(tmp_path):
    (prepared,) = HubbleSourceCatalogLoader().prepare(MAST_DIR / "hsc.json")
    assert prepared.spec.name == "hubble_source_catalog" and prepared.table.num_rows == 28
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"status": "COMPLETE"}))
    with pytest.raises(LoadError, match="not a MAST Mashup answer"):
        HubbleSourceCatalogLoader().prepare(bad)


def _edited(tmp_path, name: str, edit) -> object:  # type: ignore[no-untyped-def]
    payload = json.loads((MAST_DIR / "hsc.json").read_text(encoding="utf-8"))
    edit(payload)
    path = tmp_path / name
    path.write_text(json.dumps(payload), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (12345.7, "12345.7"),  # was stored as 12345
        (1e17, "1e+17"),  # float notation: was 100000000000000000, digits unknown
        (9007199254740993.0, "9007199254740992.0"),  # JSON gave ...992 already
        (2**63, "9223372036854775808"),  # was an OverflowError traceback
    ],
)
def test_the_loader_refuses_a_matchid_that_is_not_an_exact_integer(tmp_path, value, shown):
    def edit(payload):  # type: ignore[no-untyped-def]
        payload["data"][1]["MatchID"] = value

    path = _edited(tmp_path, "edited.json", edit)
    said = rf"MAST column MatchID, row 2: {re.escape(shown)} is not a 64-bit"
    with pytest.raises(LoadError, match=said):
        HubbleSourceCatalogLoader().prepare(path)


def test_the_loader_refuses_an_answer_that_is_not_whole_or_of_detections(tmp_path):
    def failed(payload):  # type: ignore[no-untyped-def]
        payload["status"], payload["msg"] = "ERROR", "Request timed out"

    def first_page(payload):  # type: ignore[no-untyped-def]
        payload["paging"].update(pagesFiltered=2, rowsFiltered=100, rowsTotal=100)

    loader = HubbleSourceCatalogLoader()
    with pytest.raises(LoadError, match=r"ended with status 'ERROR' \(Request timed out\)"):
        loader.prepare(_edited(tmp_path, "failed.json", failed))  # loaded with exit 0
    with pytest.raises(LoadError, match=r"is page 1 of 2 of a MAST answer \(28 of 100 rows\)"):
        loader.prepare(_edited(tmp_path, "page1.json", first_page))  # stored as whole
    with pytest.raises(LoadError, match=r"is an answer of detections \(HSC.Sources"):
        loader.prepare(MAST_DIR / "matchid.json")  # was "MatchID=... appears more than once"
