"""Long steps show progress on stderr when it is a terminal or GWH_PROGRESS=1, never otherwise:
``gwh load`` (bytes checksummed, then the step), ``gwh cutouts ingest`` (files read) and an
HSC-SSP catalog job (its state and the elapsed time)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from loaders.hsc_ssp.sql_cache import run_sql
from tests.support import replay_server as support
from tests.support.replay_server import install_hsc_ssp
from tests.warehouse.cutouts.test_cutouts import objects, write_coded_fits
from warehouse import progress
from warehouse.cutouts import ingest_cutouts

CLI = Path(__file__).resolve().parents[2] / "cli.py"
replay_server = support.replay_server  # the fixture factory


@pytest.fixture(autouse=True)
def _no_ambient_setting(monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)


def test_enabled_follows_the_argument_then_the_environment_then_the_terminal(monkeypatch):
    assert progress.enabled() is False  # pytest's stderr is not a terminal
    monkeypatch.setenv(progress.ENV, "1")
    assert progress.enabled() is True and progress.enabled(False) is False
    monkeypatch.setenv(progress.ENV, "off")
    assert progress.enabled() is False and progress.enabled(True) is True


def gwh(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``gwh`` as a user runs it, with stdout and stderr pipes (not terminals)."""
    clean = {k: v for k, v in os.environ.items() if k != progress.ENV}
    return subprocess.run(
        [sys.executable, str(CLI), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_gwh_load_shows_bytes_and_steps_only_when_forced(make_warehouse, field_files):
    wh = make_warehouse()
    forced, forced2 = field_files["forced"], field_files["forced2"]
    plain = gwh("load", "hsc-forced", str(forced), "--root", str(wh.root), env={})
    assert plain.returncode == 0, plain.stderr
    assert plain.stderr == ""  # not a terminal: no bar, nothing on stderr
    shown = gwh("load", "hsc-forced", str(forced2), "--root", str(wh.root), env={progress.ENV: "1"})
    assert shown.returncode == 0, shown.stderr
    # the SHA-256 (load-once) is computed beside the read, not as a step of its own
    assert forced2.name in shown.stderr and "reading" in shown.stderr
    assert "writing 1,200 rows" in shown.stderr
    assert "B/s" in shown.stderr or "B [" in shown.stderr  # a byte count with its rate
    assert "loaded (hsc_forced" in shown.stdout and "\r" not in shown.stdout


def test_cutouts_ingest_counts_files_when_forced(loaded, tmp_path, capsys, monkeypatch):
    rows = objects(loaded, limit=3)
    files = write_coded_fits(tmp_path, rows, bands="gr")
    ingest_cutouts(loaded, files[:2])
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(progress.ENV, "1")
    ingest_cutouts(loaded, files[2:])
    err = capsys.readouterr().err
    assert "reading cutouts" in err and f"{len(files) - 2}/{len(files) - 2}" in err


def test_catalog_job_shows_its_state_and_elapsed_time(replay_server, tmp_path, capsys, monkeypatch):
    server = replay_server()
    archive = install_hsc_ssp(server, polls_until_done=2)

    def fetch(name: str):  # type: ignore[no-untyped-def]
        return run_sql(
            "SELECT object_id FROM pdr1_wide.forced LIMIT 5",
            release="pdr1",
            cache_dir=tmp_path / name,
            base_url=server.url,
            credentials=archive.credentials,
            sleep=lambda _s: None,
        )

    fetch("quiet")
    assert capsys.readouterr().err == ""
    monkeypatch.setenv(progress.ENV, "1")
    fetch("shown")
    err = capsys.readouterr().err
    assert re.search(r"HSC-SSP catalog job \d+: submitted \[00:00\]", err)
    assert re.search(r"HSC-SSP catalog job \d+: running \[\d\d:\d\d\]", err)
    assert re.search(r"HSC-SSP catalog job \d+: done \[", err)
