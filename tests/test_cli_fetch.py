"""``gwh fetch``, ``gwh plot`` and the new ``gwh load`` verbs from the command line, against the
local replay server (real recorded archive answers; the SDSS frames and the KiDS files are
SIMULATED, see tests/loaders/test_sdss.py and test_kids.py)."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from loaders.hsc_ssp import fetch as hsc_fetch
from tests.loaders.hsc_ssp.test_fetch import CUTOUT_OBJECT, SQL_FILE, _one_object_forced
from tests.loaders.mast.test_hst import OBJECTS as HST_OBJECTS
from tests.loaders.mast.test_hst import simulated_labels as hst_labels
from tests.loaders.test_kids import simulated_kids_file
from tests.loaders.test_sdss import OBJECTS as SDSS_OBJECTS
from tests.loaders.test_sdss import simulated_labels as sdss_labels
from tests.support import replay_server as support
from tests.support.replay_server import (
    MAST_DIR,
    install_hsc_ssp,
    install_mast,
    install_sdss,
)
from warehouse.core import Warehouse

replay_server = support.replay_server

DATA = Path(__file__).resolve().parent / "data"
GZ_SAMPLE = DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"
ARCHIVE_VARS = (
    "GWH_HSC_SSP_URL",
    "GWH_MAST_URL",
    "GWH_SDSS_URL",
    "GWH_SDSS_SAS_URL",
    "HSC_SSP_CAS_USER",
    "HSC_SSP_CAS_PASSWORD",
)


@pytest.fixture(autouse=True)
def _isolated(monkeypatch):
    for var in ARCHIVE_VARS:
        monkeypatch.delenv(var, raising=False)

    def no_prompt(prompt: str = "") -> str:
        raise AssertionError(f"unexpected prompt: {prompt}")

    monkeypatch.setattr("getpass.getpass", no_prompt)
    # the catalog job is polled with waits of 1, 2, 4 s: not in tests
    monkeypatch.setitem(hsc_fetch.fetch_hsc_sql.__kwdefaults__, "sleep", lambda _s: None)


@pytest.fixture
def root(cli, tmp_path):
    path = tmp_path / "wh"
    assert cli("init", path).exit_code == 0
    return path


def files_hold(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def png_size(path: Path) -> tuple[int, int]:
    return struct.unpack(">II", path.read_bytes()[16:24])


# -- help ------------------------------------------------------------------------------------------

COMMANDS = [
    ("fetch", "hsc-sql"),
    ("fetch", "hsc-cutouts"),
    ("fetch", "hubble-source-catalog"),
    ("fetch", "hubble-source-matches"),
    ("fetch", "sdss-cutouts"),
    ("fetch", "hst-cutouts"),
    ("plot", "cmd"),
    ("plot", "sky"),
    ("load", "kids-cutouts"),
    ("load", "galaxy-zoo"),
    ("load", "hubble-source-catalog"),
]


@pytest.mark.parametrize("group,command", COMMANDS)
def test_every_command_has_help(cli, group, command):
    result = cli(group, command, "--help")
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output and len(result.output.splitlines()) > 5


# -- HSC-SSP ---------------------------------------------------------------------------------------


@pytest.fixture
def hsc(replay_server):
    server = replay_server()
    return server, install_hsc_ssp(server, polls_until_done=1)


def test_hsc_sql_with_credentials_from_the_environment(cli, root, hsc, tmp_path):
    server, archive = hsc
    env = {
        "GWH_HSC_SSP_URL": server.url,
        "HSC_SSP_CAS_USER": archive.user,
        "HSC_SSP_CAS_PASSWORD": archive.password,
    }
    out = tmp_path / "result.fits"
    args = ("fetch", "hsc-sql", "--release", "pdr2", "--sql-file", SQL_FILE, "--out", out)
    result = cli(*args, "--load", "hsc-forced", "--root", root, env=env)
    assert result.exit_code == 0, result.output
    assert "wrote 5 rows" in result.output and "hsc_forced: 5 new rows → 5" in result.output
    assert Warehouse.open(root).query("SELECT count(*) FROM hsc_forced").column(0)[0].as_py() == 5
    # the same SQL again: from the cache, no request, nothing new to load
    n = len(server.requests)
    again = cli(*args, "--load", "hsc-forced", "--root", root, env=env)
    assert again.exit_code == 0 and len(server.requests) == n and "already loaded" in again.output
    assert archive.password not in result.output + again.output
    assert files_hold(root, archive.password) == []


def test_hsc_sql_wrong_password_is_a_clear_error_and_never_leaks(cli, root, hsc, tmp_path):
    server, archive = hsc
    wrong = "Wr0ng-but-s3cret-CLI"
    env = {
        "GWH_HSC_SSP_URL": server.url,
        "HSC_SSP_CAS_USER": archive.user,
        "HSC_SSP_CAS_PASSWORD": wrong,
    }
    result = cli(
        "fetch",
        "hsc-sql",
        "--release",
        "pdr2",
        "--sql",
        "SELECT 1",
        "--out",
        tmp_path / "r.fits",
        "--root",
        root,
        env=env,
    )
    assert result.exit_code == 1
    assert "error: HSC-SSP archive refused the credentials" in result.output
    assert "HSC_SSP_CAS_PASSWORD" in result.output
    assert wrong not in result.output and files_hold(root, wrong) == []


def test_hsc_sql_prompts_for_missing_credentials(cli, root, hsc, tmp_path, monkeypatch):
    server, archive = hsc
    asked: list[str] = []

    def getpass(prompt: str = "") -> str:
        asked.append(prompt)
        return archive.password

    monkeypatch.setattr("getpass.getpass", getpass)
    result = cli(
        "fetch",
        "hsc-sql",
        "--release",
        "pdr2",
        "--sql",
        "SELECT 1",
        "--out",
        tmp_path / "r.fits",
        "--root",
        root,
        env={"GWH_HSC_SSP_URL": server.url},
        input=f"{archive.user}\n",
    )
    assert result.exit_code == 0, result.output
    assert asked == [f"HSC-SSP password for {archive.user}: "]
    assert archive.password not in result.output


def test_hsc_sql_ctrl_c_cancels_the_remote_job(cli, root, hsc, tmp_path, monkeypatch):
    server, archive = hsc

    def interrupt(_seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(hsc_fetch.fetch_hsc_sql.__kwdefaults__, "sleep", interrupt)
    env = {
        "GWH_HSC_SSP_URL": server.url,
        "HSC_SSP_CAS_USER": archive.user,
        "HSC_SSP_CAS_PASSWORD": archive.password,
    }
    result = cli(
        "fetch",
        "hsc-sql",
        "--release",
        "pdr2",
        "--sql",
        "SELECT 1",
        "--out",
        tmp_path / "r.fits",
        "--root",
        root,
        env=env,
    )
    assert result.exit_code != 0
    assert archive.cancelled() == [14067]
    assert not (tmp_path / "r.fits").exists()


def test_hsc_sql_base_url_from_warehouse_toml(cli, root, hsc, tmp_path):
    server, archive = hsc
    toml = root / "warehouse.toml"
    toml.write_text(toml.read_text().replace("https://hsc-release.mtk.nao.ac.jp", server.url))
    env = {"HSC_SSP_CAS_USER": archive.user, "HSC_SSP_CAS_PASSWORD": archive.password}
    result = cli(
        "fetch",
        "hsc-sql",
        "--release",
        "pdr2",
        "--sql",
        "SELECT 1",
        "--out",
        tmp_path / "r.csv",
        "--root",
        root,
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert server.requests[0].json()["catalog_job"]["out_format"] == "csv"


def test_hsc_cutouts_fetch_and_ingest(cli, root, hsc, tmp_path):
    server, archive = hsc
    assert cli("load", "hsc-forced", _one_object_forced(tmp_path), "--root", root).exit_code == 0
    env = {
        "GWH_HSC_SSP_URL": server.url,
        "HSC_SSP_CAS_USER": archive.user,
        "HSC_SSP_CAS_PASSWORD": archive.password,
    }
    args = ("fetch", "hsc-cutouts", "--bands", "r", "--view", "hsc_forced", "--root", root)
    result = cli(*args, env=env)
    assert result.exit_code == 0, result.output
    assert "1 objects: 1 tar(s) fetched, 1 ingested (1 band images)" in result.output
    rows = Warehouse.open(root).query("SELECT object_id, bands FROM cutouts").to_pylist()
    assert rows == [{"object_id": CUTOUT_OBJECT, "bands": "r"}]
    again = cli(*args, env=env)
    assert again.exit_code == 0 and "0 to fetch" in again.output
    assert len(archive.lists) == 1
    assert archive.password not in result.output and files_hold(root, archive.password) == []


# -- MAST ------------------------------------------------------------------------------------------


def test_hubble_source_catalog_then_plots(cli, root, replay_server, tmp_path):
    server = replay_server()
    install_mast(server)
    env = {"GWH_MAST_URL": server.url}
    result = cli(
        "fetch",
        "hubble-source-catalog",
        "--target",
        "322.525 12.167",
        "--box-deg",
        "0.05",
        "--where",
        "W3_F336W_N >= 1",
        "--pagesize",
        "10",
        "--root",
        root,
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "21 of 28 sources kept (3 page(s), 3 fetched now)" in result.output
    wh = Warehouse.open(root)
    assert wh.query("SELECT count(*) FROM hubble_source_catalog").column(0)[0].as_py() == 21

    cmd_png, sky_png = tmp_path / "cmd.png", tmp_path / "sky.png"
    r1 = cli(
        "plot",
        "cmd",
        "--table",
        "hubble_source_catalog",
        "--x",
        "W3_F336W - W3_F438W",
        "--y",
        "W3_F438W",
        "--out",
        cmd_png,
        "--root",
        root,
    )
    r2 = cli("plot", "sky", "--table", "hubble_source_catalog", "--out", sky_png, "--root", root)
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    assert "1050x900 px, 21 sources" in r1.output and "21 objects" in r2.output
    assert png_size(cmd_png) == png_size(sky_png) == (1050, 900)


def test_hubble_source_catalog_errors_and_matches(cli, root, replay_server, tmp_path):
    server = replay_server()
    install_mast(server)
    toml = root / "warehouse.toml"  # the URL from warehouse.toml this time
    toml.write_text(toml.read_text().replace("https://mast.stsci.edu", server.url))
    result = cli(
        "fetch", "hubble-source-catalog", "--target", "M101", "--box-deg", "0.05", "--root", root
    )
    assert result.exit_code == 1
    assert "error: no Hubble Source Catalog sources left in the 0.05 deg box" in result.output
    out = tmp_path / "m.csv"
    result = cli("fetch", "hubble-source-matches", "82371983", "--out", out, "--root", root)
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 10
    # an existing --out (here the file just written) is replaced only with --overwrite, as
    # gwh sql --out; it was replaced without a word; and never inside the warehouse's own parts
    asked = len(server.requests)
    again = cli("fetch", "hubble-source-matches", "82371983", "--out", out, "--root", root)
    assert again.exit_code == 1 and f"--out {out} already exists; give --overwrite" in again.stderr
    assert len(server.requests) == asked  # refused before the request
    again = cli(
        "fetch", "hubble-source-matches", "82371983", "--out", out, "--overwrite", "--root", root
    )
    assert again.exit_code == 0 and len(out.read_text().splitlines()) == 10
    inside = cli(
        "fetch",
        "hubble-source-matches",
        "82371983",
        "--out",
        root / "catalogs" / "m.csv",
        "--root",
        root,
    )
    assert inside.exit_code == 1 and "only gwh's writers change" in inside.stderr
    result = cli("load", "hubble-source-catalog", MAST_DIR / "hsc.json", "--root", root)
    assert result.exit_code == 0 and "28 new rows → 28" in result.output


def test_plot_errors_exit_1(cli, root, tmp_path):
    result = cli(
        "plot", "sky", "--table", "hsc_forced", "--out", tmp_path / "s.png", "--root", root
    )
    assert result.exit_code == 1 and "error: hsc_forced" in result.output


# -- SDSS, HST -------------------------------------------------------------------------------------


def test_sdss_cutouts_of_galaxy_zoo(cli, root, replay_server, tmp_path):
    server = replay_server()
    install_sdss(server)
    gz = sdss_labels(tmp_path / "simulated_gz.csv", SDSS_OBJECTS)
    assert cli("load", "galaxy-zoo", gz, "--root", root).exit_code == 0
    result = cli(
        "fetch",
        "sdss-cutouts",
        "--labels",
        "galaxy_zoo",
        "--band",
        "r",
        "--pixels",
        "40",
        "--root",
        root,
        env={"GWH_SDSS_URL": server.url},
    )
    assert result.exit_code == 0, result.output
    assert "2 of 2 objects have a 40x40 r cutout (2 frame(s) fetched now" in result.output


def test_hst_cutouts_of_galaxy_zoo(cli, root, replay_server, tmp_path):
    server = replay_server()
    install_mast(server)
    gz = hst_labels(tmp_path / "simulated_gz.csv", HST_OBJECTS)
    assert cli("load", "galaxy-zoo", gz, "--root", root).exit_code == 0
    env = {"GWH_MAST_URL": server.url}
    ok = cli("fetch", "hst-cutouts", "--filter", "F814W", "--pixels", "40", "--root", root, env=env)
    assert ok.exit_code == 0, ok.output
    assert "2 of 2 objects have a 40x40 F814W cutout" in ok.output
    bad = cli("fetch", "hst-cutouts", "--filter", "F160W", "--root", root, env=env)
    assert bad.exit_code == 1 and "error: no HST F160W cutouts" in bad.output


# -- KiDS, Galaxy Zoo ------------------------------------------------------------------------------


def test_load_kids_cutouts_stacks_files(cli, root, tmp_path):
    files = []
    for k, cls in enumerate(("STAR", "QSO", "GALAXY")):
        files.append(tmp_path / f"simulated_{cls.lower()}.h5")
        simulated_kids_file(files[-1], cls, 2, seed=k)
    result = cli("load", "kids-cutouts", *files, "--root", root)
    assert result.exit_code == 0, result.output
    assert "kids_cutouts now holds 6" in result.output
    labels = (
        Warehouse.open(root)
        .query("SELECT spectype, spectype_label FROM kids_cutouts GROUP BY ALL ORDER BY 2")
        .to_pylist()
    )
    assert labels == [
        {"spectype": "GALAXY", "spectype_label": 0},
        {"spectype": "QSO", "spectype_label": 1},
        {"spectype": "STAR", "spectype_label": 2},
    ]
    nopos = tmp_path / "simulated_nopos.h5"
    simulated_kids_file(nopos, "STAR", 1, positions=False)
    result = cli("load", "kids-cutouts", nopos, "--root", root)
    assert result.exit_code == 1 and "no RA/DEC columns" in result.output


def test_load_galaxy_zoo_real_sample(cli, root):
    result = cli("load", "galaxy-zoo", GZ_SAMPLE, "--root", root)
    assert result.exit_code == 0, result.output
    assert (
        "galaxy_zoo: 200 new rows → 200" in result.output and "no hsc_forced table" in result.output
    )


@pytest.mark.parametrize("radius", ["-1", "nan", "1e9"])
def test_a_bad_match_radius_loads_nothing(cli, root, radius):
    """It said "loaded (galaxy_zoo: 200 rows)", then "error: match radius must be in (0, 60]",
    exit 1, with the rows committed and never matched (no hsc_object_id column)."""
    result = cli("load", "galaxy-zoo", GZ_SAMPLE, "--match-radius", radius, "--root", root)
    assert result.exit_code == 1 and "loaded" not in result.output, result.output
    assert result.stderr.startswith("error: match radius must be in (0, 60] arcsec")
    assert Warehouse.open(root).current_version("galaxy_zoo") is None


def test_fetch_options_are_checked_before_the_network(cli, root, tmp_path):
    """No archive is reachable here: each of these is refused before any request. They were a
    ValueError traceback (--box-deg -1), RA 400 silently taken as 40, a UnicodeDecodeError
    traceback (an --sql-file that is not text), a job submitted with --poll-timeout -5, and a
    raw binder error (--limit -1)."""
    binary = tmp_path / "random.sql"
    binary.write_bytes(bytes(range(128, 256)))
    for args, said in (
        (["hubble-source-catalog", "--target", "150 2", "--box-deg", "-1"], "--box-deg must be"),
        (
            ["hubble-source-catalog", "--target", "400 2", "--box-deg", "1"],
            "RA must be in [0, 360)",
        ),
        (
            ["hsc-sql", "--release", "pdr2", "--out", tmp_path / "f.csv", "--sql-file", binary],
            "is not UTF-8 text",
        ),
        (
            ["hsc-sql", "--release", "pdr2", "--sql", "select 1", "--out", tmp_path / "f.csv"]
            + ["--poll-timeout", "-5"],
            "--poll-timeout must be a positive number of seconds",
        ),
        (["sdss-cutouts", "--band", "r", "--limit", "-1"], "--limit must be a positive"),
        (["sdss-cutouts", "--band", "r", "--data-release", "-1"], "must be 8 or later"),
    ):
        result = cli("fetch", *args, "--root", root, env={"GWH_MAST_URL": "http://127.0.0.1:9"})
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert said in result.stderr, result.stderr
