"""The GalaxiesML archive query (sql/sources/galaxiesml_pdr2.sql) and the HSC-SSP fetch
functions wired to a warehouse (catalog jobs and cutouts against the local replay server)."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import duckdb
import pytest

from loaders import registry
from loaders.hsc_ssp.catalog import REQUIRED_SPECZ
from loaders.hsc_ssp.fetch import fetch_hsc_cutouts, fetch_hsc_sql, read_sql
from tests.support import replay_server as support
from tests.support.replay_server import DATA_DIR, install_hsc_ssp
from warehouse.db import load_models
from warehouse.errors import CutoutError, QueryError
from warehouse.store.hsc_columns import archive_columns

replay_server = support.replay_server

SQL_FILE = Path(__file__).resolve().parents[3] / "sql" / "sources" / "galaxiesml_pdr2.sql"
BANDS = ("g", "r", "i", "z", "y")
# the recorded cutout (image.fits) is centred 0.40" from this object of the recorded result
CUTOUT_OBJECT = 37485259083766168


class Sleeps(list):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture(autouse=True)
def _no_ambient_credentials(monkeypatch):
    for var in ("GWH_HSC_SSP_URL", "HSC_SSP_CAS_USER", "HSC_SSP_CAS_PASSWORD"):
        monkeypatch.delenv(var, raising=False)


def selected_columns() -> list[tuple[str, str]]:
    """(alias, column) of the SELECT list of the query file."""
    text = read_sql(None, SQL_FILE)
    select = text[: text.index("FROM pdr2_wide.forced")]
    return [(a, c.strip('"')) for a, c in re.findall(r'\b(f1|f2|sz)\.("?\w+"?)', select)]


def test_the_query_selects_every_column_the_views_use():
    got = {c for _, c in selected_columns()}
    staging = next(m for m in load_models() if m.name == "hsc_forced_bands").render(BANDS)
    per_band = set(re.findall(r"\b([grizy]_\w+) AS", staging))
    assert len(per_band) == 5 * 9
    assert per_band <= got
    assert set(REQUIRED_SPECZ) <= got | {"object_id"}
    assert {"object_id", "ra", "dec"} <= got


def test_every_selected_column_exists_in_its_pdr2_table():
    tables = {"f1": "forced", "f2": "forced2", "sz": "specz"}
    for alias, column in selected_columns():
        assert column in archive_columns(tables[alias]), (alias, column)


def _archive_tables(con, rows):
    """In-memory pdr2_wide.forced / forced2 / specz with the query's columns (test rows)."""
    con.execute("CREATE SCHEMA pdr2_wide")
    forced_cols = [
        "object_id BIGINT",
        "ra DOUBLE",
        '"dec" DOUBLE',
        "skymap_id BIGINT",
        "isprimary BOOLEAN",
    ]
    for b in BANDS:
        forced_cols += [
            f"{b}_cmodel_mag REAL",
            f"{b}_cmodel_magsigma REAL",
            f"{b}_cmodel_flag BOOLEAN",
        ]
        forced_cols += [
            f"{b}_pixelflags_{f} BOOLEAN"
            for f in ("edge", "interpolatedcenter", "saturatedcenter", "crcenter", "bad")
        ]
    con.execute(f"CREATE TABLE pdr2_wide.forced ({', '.join(forced_cols)})")
    con.execute(
        "CREATE TABLE pdr2_wide.forced2 (object_id BIGINT, "
        + ", ".join(f"{b}_sdsscentroid_flag BOOLEAN" for b in BANDS)
        + ")"
    )
    con.execute(
        "CREATE TABLE pdr2_wide.specz (object_id BIGINT, specz_name VARCHAR, "
        "specz_ra DOUBLE, specz_dec DOUBLE, specz_redshift REAL, "
        "specz_redshift_err REAL, specz_flag_homogeneous BOOLEAN, specz_mag_i REAL)"
    )
    for oid, z, err, flag, mag in rows:
        con.execute(
            "INSERT INTO pdr2_wide.forced VALUES (?, 150, 2, 1, true, "
            + ", ".join(["?, 0.01, false, false, false, false, false, false"] * 5)
            + ")",
            [oid, *([mag] * 5)],
        )
        con.execute(
            "INSERT INTO pdr2_wide.forced2 VALUES (?, false, false, false, false, false)", [oid]
        )
        con.execute(
            "INSERT INTO pdr2_wide.specz VALUES (?, ?, 150, 2, ?, ?, ?, 20)",
            [oid, f"S{oid}", z, err, flag],
        )


def test_the_where_clause_applies_the_papers_cuts():
    rows = [
        (1, 0.5, 0.001, True, 22.0),  # kept
        (2, 0.5, 0.001, False, 22.0),  # not homogeneous
        (3, 0.01, 0.0001, True, 22.0),  # z not above 0.01
        (4, 0.0101, 0.0001, True, 22.0),  # kept
        (5, 4.0, 0.001, True, 22.0),  # z not below 4
        (6, 1.0, 0.0, True, 22.0),  # err not above 0
        (7, 1.0, 0.0099, True, 22.0),  # err < 0.005 (1 + z) = 0.01: kept
        (8, 1.0, 0.0101, True, 22.0),  # err too large for its z
        (9, 0.5, 0.001, True, 50.0),  # magnitude not below 50
        (10, 0.5, 0.001, True, -1.0),  # magnitude not above 0
    ]
    con = duckdb.connect()
    _archive_tables(con, rows)
    got = con.sql(read_sql(None, SQL_FILE)).to_arrow_table()
    assert sorted(got.column("object_id").to_pylist()) == [1, 4, 7]
    assert len(got.column_names) == len(selected_columns())


def test_read_sql_strips_whole_line_comments_only():
    assert read_sql("-- a note\nSELECT 1 -- keep\n;", None) == "SELECT 1 -- keep"
    with pytest.raises(QueryError, match="exactly one of --sql and --sql-file"):
        read_sql("SELECT 1", SQL_FILE)
    with pytest.raises(QueryError, match="empty"):
        read_sql("-- only a comment\n", None)
    text = read_sql(None, SQL_FILE)
    assert not any(line.lstrip().startswith("--") for line in text.splitlines())


def test_the_shipped_query_is_found_from_any_folder(tmp_path, monkeypatch):
    """The README's and --help's `--sql-file sql/sources/galaxiesml_pdr2.sql` said "no such SQL
    file" outside a checkout; a file of that name in the folder still comes first."""
    monkeypatch.chdir(tmp_path)
    assert read_sql(None, "sql/sources/galaxiesml_pdr2.sql") == read_sql(None, SQL_FILE)
    (tmp_path / "sql" / "sources").mkdir(parents=True)
    (tmp_path / "sql" / "sources" / "galaxiesml_pdr2.sql").write_text("SELECT 2")
    assert read_sql(None, "sql/sources/galaxiesml_pdr2.sql") == "SELECT 2"
    with pytest.raises(QueryError, match=r"^nope\.sql: no such SQL file\. .* gwh ships are in "):
        read_sql(None, "nope.sql")


# -- against the replay server ---------------------------------------------------------------------


@pytest.fixture
def archive(replay_server, monkeypatch):
    server = replay_server()
    archive = install_hsc_ssp(server, polls_until_done=1)
    monkeypatch.setenv("GWH_HSC_SSP_URL", server.url)
    return server, archive


def test_fetch_sql_writes_out_and_loads(archive, make_warehouse, tmp_path):
    server, hsc = archive
    wh = make_warehouse()
    out = tmp_path / "result.fits"
    got = fetch_hsc_sql(
        wh,
        release="pdr2",
        out=out,
        sql_file=SQL_FILE,
        load="hsc-forced",
        credentials=hsc.credentials,
        sleep=Sleeps(),
    )
    assert (
        got.rows == 5 and out.read_bytes() == (DATA_DIR / "response_query_region.fits").read_bytes()
    )
    assert got.cached.parent == wh.root / "cache" / "hsc_sql"
    assert wh.query("SELECT count(*) FROM hsc_forced").column(0)[0].as_py() == 5
    submitted = server.requests[0].json()["catalog_job"]
    assert submitted["release_version"] == "pdr2" and submitted["sql"] == read_sql(None, SQL_FILE)


def test_fetch_sql_checks_out_and_load_before_asking(archive, make_warehouse, tmp_path):
    server, hsc = archive
    wh = make_warehouse()
    with pytest.raises(QueryError, match="name the file \\*.fits or \\*.csv"):
        fetch_hsc_sql(wh, release="pdr2", out=tmp_path / "r.txt", sql="SELECT 1")
    with pytest.raises(Exception, match="--load 'nope' is not a loader"):
        fetch_hsc_sql(wh, release="pdr2", out=tmp_path / "r.fits", sql="SELECT 1", load="nope")
    with pytest.raises(QueryError, match="release must be one of"):
        fetch_hsc_sql(
            wh, release="dr2", out=tmp_path / "r.fits", sql="SELECT 1", credentials=hsc.credentials
        )
    assert server.requests == []


def test_fetch_sql_keeps_a_users_file_at_out(archive, make_warehouse, tmp_path):
    """An existing --out that is not this query's result is refused before the job (it was
    replaced without a word); a rerun of the same query rewrites its own file; --overwrite
    replaces the user's."""
    server, hsc = archive
    wh = make_warehouse()
    out = tmp_path / "result.fits"
    out.write_bytes(b"my own table")
    ask = {"release": "pdr2", "out": out, "sql_file": SQL_FILE, "credentials": hsc.credentials}
    with pytest.raises(QueryError, match=f"--out {out} already exists; give --overwrite"):
        fetch_hsc_sql(wh, **ask, sleep=Sleeps())
    assert out.read_bytes() == b"my own table" and server.requests == []
    got = fetch_hsc_sql(wh, **ask, overwrite=True, sleep=Sleeps())
    recorded = (DATA_DIR / "response_query_region.fits").read_bytes()
    assert got.rows == 5 and out.read_bytes() == recorded
    asked = len(server.requests)
    again = fetch_hsc_sql(wh, **ask, sleep=Sleeps())  # the same result: no --overwrite needed
    assert again.rows == 5 and out.read_bytes() == recorded and len(server.requests) == asked


def _one_object_forced(tmp_path) -> Path:
    """The recorded result's row nearest the recorded cutout, as a forced export (real values)."""
    from astropy.table import Table

    t = Table.read(DATA_DIR / "response_query_region.fits")
    row = t[t["object_id"] == CUTOUT_OBJECT]
    path = tmp_path / "one_object.csv"
    path.write_text(
        f"object_id,ra,dec\n{int(row['object_id'][0])},{float(row['ra'][0])!r},{float(row['dec'][0])!r}\n"
    )
    return path


def test_fetch_cutouts_is_resumable_and_ingests_once(archive, make_warehouse, tmp_path):
    server, hsc = archive
    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [_one_object_forced(tmp_path)])
    report = fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert (report.objects, report.tars_fetched, report.tars_ingested, report.images) == (
        1,
        1,
        1,
        1,
    )
    assert wh.query("SELECT object_id, bands FROM cutouts").to_pylist() == [
        {"object_id": CUTOUT_OBJECT, "bands": "r"}
    ]
    (tar,) = report.folder.glob("c*.tar")
    with tarfile.open(tar) as t:
        assert [m.name.split("/")[-1] for m in t.getmembers()] == [
            "2-cutout-HSC-R-8523-pdr2_wide.fits"
        ]
    uploads = len(hsc.lists)
    again = fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert len(hsc.lists) == uploads and again.tars_fetched == 0 and again.tars_ingested == 0


def test_fetch_cutouts_names_the_cutouts_that_do_not_ingest(archive, make_warehouse, tmp_path):
    server, hsc = archive
    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [DATA_DIR / "response_query_region.fits"])
    # the replay answers the same recorded image for every row: only one row is really it
    with pytest.raises(CutoutError, match="4 file\\(s\\) not ingested") as info:
        fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert "asked for object_id 37485259083748138" in str(info.value)
    assert len(hsc.lists) == 1 and hsc.lists[0].count("\n") == 6  # header + 5 rows, one upload
    assert wh.query("SELECT count(*) FROM cutouts").column(0)[0].as_py() == 1


def test_a_rerun_with_nothing_new_leaves_cutouts_alone_until_hsc_forced_changes(
    archive, make_warehouse, tmp_path
):
    """A tar with cutouts left out was ingested again on every rerun, each time a new version
    of cutouts. Now a rerun says there is nothing new, until hsc_forced changes (the objects
    those cutouts need may have arrived): then the tar is matched once more."""
    server, hsc = archive
    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [DATA_DIR / "response_query_region.fits"])
    with pytest.raises(CutoutError, match="4 file\\(s\\) not ingested"):
        fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    version = wh.current_version("cutouts").collection
    said: list[str] = []
    again = fetch_hsc_cutouts(
        wh, bands="r", view="hsc_forced", credentials=hsc.credentials, echo=said.append
    )
    assert again.tars_fetched == again.tars_ingested == 0
    assert wh.current_version("cutouts").collection == version  # no new version
    assert any("nothing new" in line and "hsc_forced" in line for line in said), said
    wh.load(registry.get("hsc-forced"), [_one_object_forced(tmp_path)])  # hsc_forced changes
    with pytest.raises(CutoutError, match="4 file\\(s\\) not ingested"):
        fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert len(hsc.lists) == 1  # matched again from the tar kept, never asked again
    version = wh.current_version("cutouts").collection
    fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert wh.current_version("cutouts").collection == version


def test_fetch_cutouts_rejects_bad_options(archive, make_warehouse):
    server, hsc = archive
    wh = make_warehouse()
    with pytest.raises(CutoutError, match="unknown HSC band"):
        fetch_hsc_cutouts(wh, bands=["q"], view="hsc_forced", credentials=hsc.credentials)
    with pytest.raises(CutoutError, match="cutout size"):
        fetch_hsc_cutouts(wh, size="big", view="hsc_forced", credentials=hsc.credentials)
    with pytest.raises(CutoutError, match="cannot list the objects of hsc_forced"):
        fetch_hsc_cutouts(wh, bands="r", view="hsc_forced", credentials=hsc.credentials)
    assert server.requests == []
