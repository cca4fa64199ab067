"""loaders/hsc_ssp/sql_jobs.py: the CAS catalog-job cycle against the replayed HSC-SSP archive."""

from __future__ import annotations

import json
import logging
import traceback

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table
from hypothesis import given
from hypothesis import strategies as st

from loaders.hsc_ssp import sql_jobs
from loaders.hsc_ssp.sql_cache import preview_sql, result_row_count, run_sql
from loaders.hsc_ssp.sql_jobs import (
    CatalogJobClient,
    cache_key,
    normalize_sql,
)
from loaders.http.session import Credentials, RetryPolicy
from tests.support import replay_server as support
from tests.support.replay_server import DATA_DIR, install_hsc_ssp
from warehouse.errors import ArchiveError, AuthenticationError

replay_server = support.replay_server  # the fixture factory

API = "/datasearch/api/catalog_jobs/"
SQL = "SELECT object_id, ra, dec FROM pdr1_wide.forced WHERE coneSearch(coord, 34.0, -5.0, 6.0)"
RECORDED_IDS = [
    37485259083748138,
    37485259083748145,
    37485259083766167,
    37485259083766168,
    37485259083766169,
]
RECORDED_JOB_ID = 14067


class Sleeps(list):
    """``sleep`` replacement: records waits, optionally raises on the n-th call."""

    def __init__(self, interrupt_at: int | None = None) -> None:
        super().__init__()
        self.interrupt_at = interrupt_at

    def __call__(self, seconds: float) -> None:
        self.append(seconds)
        if self.interrupt_at is not None and len(self) == self.interrupt_at:
            raise KeyboardInterrupt


@pytest.fixture(autouse=True)
def _no_ambient_config(monkeypatch):
    for var in ("GWH_HSC_SSP_URL", "HSC_SSP_CAS_USER", "HSC_SSP_CAS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)

    def no_prompt(prompt: str) -> str:
        raise AssertionError(f"unexpected prompt: {prompt}")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    monkeypatch.setattr("builtins.input", no_prompt)


@pytest.fixture
def server(replay_server):
    return replay_server()


def verbs(server) -> list[str]:
    return [r.path.removeprefix(API) for r in server.requests]


def run(server, archive, tmp_path, **kw):
    kw.setdefault("sleep", Sleeps())
    kw.setdefault("credentials", archive.credentials)
    return run_sql(SQL, release="pdr1", cache_dir=tmp_path / "cache", base_url=server.url, **kw)


# -- the full cycle --------------------------------------------------------------------------------


def test_full_job_cycle_returns_the_recorded_fits_with_exact_int64_ids(server, tmp_path):
    archive = install_hsc_ssp(server, polls_until_done=2)
    sleeps = Sleeps()
    path = run(server, archive, tmp_path, sleep=sleeps)

    assert path == tmp_path / "cache" / f"{cache_key(SQL, 'pdr1', 'fits')}.fits"
    assert path.read_bytes() == (DATA_DIR / "response_query_region.fits").read_bytes()
    table = Table.read(path)
    assert table["object_id"].dtype == np.dtype(">i8")
    assert table["object_id"].tolist() == RECORDED_IDS
    assert verbs(server) == ["submit", "status", "status", "download", "delete"]
    assert sleeps == [1.0, 2.0]
    assert archive.protocol_errors == []
    assert archive.deleted() == [RECORDED_JOB_ID]

    submit = server.requests[0].json()
    assert submit["catalog_job"] == {
        "sql": SQL,
        "out_format": "fits",
        "include_metainfo_to_body": True,
        "release_version": "pdr1",
    }
    assert submit["nomail"] is True and submit["skip_syntax_check"] is True
    assert server.requests[0].headers["Content-Type"] == "application/json"
    assert server.requests[1].json()["id"] == RECORDED_JOB_ID

    record = json.loads(path.with_suffix(".json").read_text())
    assert record["job_id"] == RECORDED_JOB_ID and record["rows"] == 5
    assert record["release"] == "pdr1" and record["sql"] == normalize_sql(SQL)


def test_polling_backs_off_1_2_4_and_caps(server, tmp_path):
    archive = install_hsc_ssp(server, polls_until_done=6)
    sleeps = Sleeps()
    run(server, archive, tmp_path, sleep=sleeps, max_interval=4.0)
    assert sleeps == [1.0, 2.0, 4.0, 4.0, 4.0, 4.0]
    assert verbs(server).count("status") == 6


def test_poll_timeout_cancels_the_job(server, tmp_path):
    archive = install_hsc_ssp(server, polls_until_done=1000)
    sleeps = Sleeps()
    with pytest.raises(ArchiveError, match=r"job 14067 was not done after 10 s.*cancelled"):
        run(server, archive, tmp_path, sleep=sleeps, poll_timeout=10)
    assert sleeps == [1.0, 2.0, 4.0, 3.0]
    assert archive.cancelled() == [RECORDED_JOB_ID]
    assert not list((tmp_path / "cache").glob("*.fits"))


def test_job_error_names_the_server_message_and_job_id(server, tmp_path):
    message = 'ERROR:  column "no_such_col" does not exist'
    archive = install_hsc_ssp(server, job_error=message)
    with pytest.raises(ArchiveError) as info:
        run(server, archive, tmp_path)
    assert not isinstance(info.value, AuthenticationError)
    assert f"job {RECORDED_JOB_ID} failed: {message}" in str(info.value)
    assert verbs(server) == ["submit", "status", "status", "delete"]
    assert archive.deleted() == [RECORDED_JOB_ID]
    assert list((tmp_path / "cache").iterdir()) == []


def test_ctrl_c_during_polling_cancels_the_remote_job(server, tmp_path):
    archive = install_hsc_ssp(server, polls_until_done=100)
    with pytest.raises(KeyboardInterrupt):
        run(server, archive, tmp_path, sleep=Sleeps(interrupt_at=3))
    assert archive.cancelled() == [RECORDED_JOB_ID]
    assert verbs(server) == ["submit", "status", "status", "cancel"]
    assert list((tmp_path / "cache").iterdir()) == []


# -- credentials -----------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["http401", "json"])
def test_wrong_password_is_a_clear_error_and_never_leaks(server, tmp_path, caplog, style):
    archive = install_hsc_ssp(server, auth_failure=style)
    wrong = "Wr0ng-but-secret-Passw0rd"
    caplog.set_level(logging.DEBUG)
    with pytest.raises(AuthenticationError) as info:
        run(server, archive, tmp_path, credentials=Credentials(archive.user, wrong))

    text = "".join(traceback.format_exception(info.value)) + repr(info.value)
    assert "HSC_SSP_CAS_PASSWORD" in str(info.value)
    assert wrong not in text
    assert wrong not in caplog.text
    cache = tmp_path / "cache"
    for path in cache.rglob("*"):
        assert wrong.encode() not in path.read_bytes()
    assert not list(cache.glob("*.fits"))
    assert verbs(server) == ["submit"]


def test_password_is_not_in_the_cache_record_or_repr(server, tmp_path):
    archive = install_hsc_ssp(server)
    path = run(server, archive, tmp_path)
    for file in path.parent.iterdir():
        assert archive.password.encode() not in file.read_bytes()
    client = CatalogJobClient(archive.credentials, base_url=server.url)
    client.close()
    assert archive.password not in repr(client)


def test_credentials_come_from_the_environment(server, tmp_path, monkeypatch):
    archive = install_hsc_ssp(server)
    monkeypatch.setenv("HSC_SSP_CAS_USER", archive.user)
    monkeypatch.setenv("HSC_SSP_CAS_PASSWORD", archive.password)
    path = run_sql(SQL, release="pdr1", cache_dir=tmp_path, base_url=server.url, sleep=Sleeps())
    assert Table.read(path)["object_id"].tolist() == RECORDED_IDS


# -- cache -----------------------------------------------------------------------------------------


def test_cache_hit_needs_no_server_and_no_credentials(server, tmp_path):
    archive = install_hsc_ssp(server)
    first = run(server, archive, tmp_path)
    url = server.url
    server.stop()

    again = run_sql(f"  {SQL} ;\n", release="pdr1", cache_dir=tmp_path / "cache", base_url=url)
    assert again == first
    assert Table.read(again)["object_id"].tolist() == RECORDED_IDS

    # a different release is a different query: it needs the (now stopped) server
    with pytest.raises(ArchiveError, match="failed: ConnectionError"):
        run_sql(
            SQL,
            release="pdr2",
            cache_dir=tmp_path / "cache",
            base_url=url,
            credentials=archive.credentials,
            retry=RetryPolicy(attempts=1),
        )


def test_cache_file_is_written_atomically(server, tmp_path):
    archive = install_hsc_ssp(server)
    server.inject("truncate", count=1, path=API + "download")
    sleeps = Sleeps()
    path = run(server, archive, tmp_path, sleep=sleeps)
    assert path.read_bytes() == (DATA_DIR / "response_query_region.fits").read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == sorted(
        [path.name, path.with_suffix(".json").name]
    )
    assert verbs(server).count("download") == 2


def test_sql_normalisation_keeps_literals():
    assert (
        normalize_sql("SELECT  a,\n\tb FROM t WHERE s = 'x  y' ;;")
        == "SELECT a, b FROM t WHERE s = 'x  y'"
    )
    assert normalize_sql('SELECT "dec"  FROM t') == 'SELECT "dec" FROM t'
    assert cache_key("SELECT 1", "pdr2", "fits") == cache_key(" SELECT\n1; ", "pdr2", "fits")
    assert cache_key("SELECT 'a b'", "pdr2", "fits") != cache_key("SELECT 'a  b'", "pdr2", "fits")
    assert cache_key("SELECT 1", "pdr2", "fits") != cache_key("SELECT 1", "pdr3", "fits")
    assert cache_key("SELECT 1", "pdr2", "fits") != cache_key("SELECT 1", "pdr2", "csv")
    with pytest.raises(ValueError, match="SQL is empty"):
        normalize_sql(" ; ")


@given(st.text(alphabet="SELECT ab'\"\n\t;,", min_size=1))
def test_normalisation_is_idempotent(sql):
    try:
        once = normalize_sql(sql)
    except ValueError:
        return
    assert normalize_sql(once) == once


def test_bad_release_or_format_fails_before_any_request(server, tmp_path):
    archive = install_hsc_ssp(server)
    with pytest.raises(ValueError, match="release must be one of pdr1, pdr2, pdr3"):
        run_sql(
            SQL,
            release="dr2",
            cache_dir=tmp_path,
            base_url=server.url,
            credentials=archive.credentials,
        )
    with pytest.raises(ValueError, match="out_format must be one of fits, csv"):
        run_sql(
            SQL,
            release="pdr2",
            out_format="votable",
            cache_dir=tmp_path,
            base_url=server.url,
            credentials=archive.credentials,
        )
    assert server.requests == []


# -- results ---------------------------------------------------------------------------------------


@pytest.fixture
def empty_fits(tmp_path):
    """A zero-row result with the recorded columns (made here, not recorded)."""
    path = tmp_path / "empty.fits"
    cols = [
        fits.Column("object_id", "K", array=np.zeros(0, np.int64)),
        fits.Column("ra", "D", array=np.zeros(0)),
        fits.Column("dec", "D", array=np.zeros(0)),
    ]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path)
    return path


def test_empty_result_is_an_error_unless_allowed(server, tmp_path, empty_fits):
    archive = install_hsc_ssp(server, result=empty_fits)
    with pytest.raises(ArchiveError, match="returned no rows.*allow_empty=True"):
        run(server, archive, tmp_path)
    # the answer is cached: asking again explicitly accepts it without the archive
    server.stop()
    path = run_sql(
        SQL, release="pdr1", cache_dir=tmp_path / "cache", base_url=server_url(), allow_empty=True
    )
    assert result_row_count(path, "fits") == 0
    assert len(Table.read(path)) == 0


def server_url() -> str:
    return "http://127.0.0.1:9"  # nothing listens: proves the cache answered


def test_a_non_fits_download_is_refused_and_not_cached(server, tmp_path):
    page = tmp_path / "maintenance.html"
    page.write_text("<html>down for maintenance</html>")
    archive = install_hsc_ssp(server, result=page)
    with pytest.raises(ArchiveError, match="not a FITS file"):
        run(server, archive, tmp_path)
    assert list((tmp_path / "cache").iterdir()) == []


def test_transient_503_on_status_is_retried(server, tmp_path):
    archive = install_hsc_ssp(server, polls_until_done=1)
    server.inject("status", count=2, status=503, path=API + "status")
    sleeps = Sleeps()
    run(server, archive, tmp_path, sleep=sleeps)
    assert sleeps == [1.0, 1.0, 2.0]  # poll wait, then two retry back-offs
    assert verbs(server) == ["submit", "status", "status", "status", "download", "delete"]


def test_env_var_base_url_wins_over_the_configured_one(server, tmp_path, monkeypatch):
    archive = install_hsc_ssp(server)
    monkeypatch.setenv("GWH_HSC_SSP_URL", server.url)
    path = run_sql(
        SQL,
        release="pdr1",
        cache_dir=tmp_path,
        base_url="http://127.0.0.1:9",
        credentials=archive.credentials,
        sleep=Sleeps(),
    )
    assert path.is_file()


def test_preview_returns_strings(server):
    archive = install_hsc_ssp(server)
    preview = preview_sql(SQL, release="pdr1", credentials=archive.credentials, base_url=server.url)
    assert preview.fields == ["object_id", "ra", "dec"]
    assert [row[0] for row in preview.rows] == [str(i) for i in RECORDED_IDS]
    assert preview.count == 5 and not preview.truncated
    assert server.requests[0].json()["catalog_job"] == {"sql": SQL, "release_version": "pdr1"}


def test_csv_row_count(tmp_path):
    csv = tmp_path / "r.csv"
    csv.write_text("# meta\nobject_id,ra\n1,2.0\n3,4.0\n")
    assert result_row_count(csv, "csv") == 2
    csv.write_text("# meta\nobject_id,ra\n")
    assert result_row_count(csv, "csv") == 0
    csv.write_text("# object_id,ra\n37485259083748138,34.0\n")
    assert result_row_count(csv, "csv") == 1


def test_module_exports_exist():
    for name in sql_jobs.__all__:
        assert hasattr(sql_jobs, name), name
