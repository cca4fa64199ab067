"""Readers never block or write; writers never wait for readers; two writers never overlap.

Every other party runs in its own process, as it would in real use: a notebook holding
``duckdb.connect(warehouse.duckdb, read_only=True)``, a gwh reader streaming a query, a second
``gwh load``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.warehouse.cutouts.test_cutouts import (
    build_warehouse,
    copy_warehouse,
    ingest_coded,
    objects,
)
from warehouse.export import ExportOptions, export_hdf5

REPO = Path(__file__).resolve().parents[2]

NOTEBOOK = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
n = con.execute("SELECT count(*) FROM hsc_forced").fetchone()[0]
print(n, flush=True)
for line in sys.stdin:  # each line: count again, on the state it opened
    print(con.execute("SELECT count(*) FROM hsc_forced").fetchone()[0], flush=True)
"""

STREAMING_READER = """
import sys
from warehouse.core import Warehouse
wh = Warehouse.open(sys.argv[1])
with wh.connect() as con:
    stream = con.sql("SELECT object_id FROM hsc_forced").to_arrow_reader(8)
    n = stream.read_next_batch().num_rows
    print("streaming", flush=True)
    sys.stdin.readline()
    n += sum(batch.num_rows for batch in stream)
    again = con.execute("SELECT count(*) FROM hsc_forced").fetchone()[0]
    print(n, again, flush=True)
"""

WRITER = """
import os, sys
sys.argv = ["gwh", "load", "hsc-forced", "big_export.fits"]  # what the holder's message names
from warehouse.core import Warehouse
with Warehouse.open(os.environ["ROOT"]).writing():
    print("writing", flush=True)
    sys.stdin.readline()
"""


@contextlib.contextmanager
def process(script: str, *args, env: dict | None = None) -> Iterator[subprocess.Popen]:
    """A Python process running ``script``; stdin stays open until the block ends."""
    with subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        cwd=REPO,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    ) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.stdin.close()
                proc.wait(timeout=60)


def ask(proc: subprocess.Popen, line: str = "\n") -> str:
    proc.stdin.write(line)
    proc.stdin.flush()
    return proc.stdout.readline().strip()


def gwh(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
    )


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        for p in sorted(root.rglob("*"))
    }


def versions(root: Path, table: str) -> list[str]:
    return sorted(p.name for p in (root / "catalogs" / table).glob("v*"))


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("concurrency"))
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


@pytest.fixture
def wh(populated, tmp_path):
    return copy_warehouse(populated, tmp_path / "wh")


@pytest.fixture
def more_forced(tmp_path):
    path = tmp_path / "more_forced.parquet"
    pq.write_table(simulate_field(40, seed=123).forced, path)
    return path


def test_readers_work_beside_a_read_only_holder_and_change_nothing(wh, tmp_path):
    root = wh.root
    ra, dec = objects(wh, limit=1)[0][1:]
    db_file = root / "warehouse.duckdb"
    with process(NOTEBOOK, db_file) as notebook:
        assert int(notebook.stdout.readline()) == 150
        before, mtime = tree_digest(root), db_file.stat().st_mtime_ns
        runs = {
            "sql": gwh("sql", "select count(*) from hsc_forced", "--root", root),
            "views": gwh("views", "--root", root),
            "cone": gwh("cone", ra, dec, 5, "--root", root),
            "check": gwh("check", "--root", root),
            "export": gwh(
                "export",
                "--split",
                "train",
                "--size",
                "16",
                "--out",
                tmp_path / "t.h5",
                "--root",
                root,
            ),
        }
        for name, run in runs.items():
            assert run.returncode == 0, f"gwh {name}: {run.stderr}"
            assert "Traceback" not in run.stderr
        assert "150" in runs["sql"].stdout and "ml_objects" in runs["views"].stdout
        assert (tmp_path / "t.h5").exists()
        assert tree_digest(root) == before and db_file.stat().st_mtime_ns == mtime
        assert int(ask(notebook)) == 150


def test_a_load_commits_beside_readers_who_keep_their_state(wh, more_forced):
    root = wh.root
    old = versions(root, "hsc_forced")
    assert len(old) == 1
    with (
        process(NOTEBOOK, root / "warehouse.duckdb") as notebook,
        process(STREAMING_READER, root) as reader,
    ):
        assert int(notebook.stdout.readline()) == 150
        assert reader.stdout.readline().strip() == "streaming", reader.stderr.read()

        load = gwh("load", "hsc-forced", more_forced, "--root", root)
        assert load.returncode == 0, load.stderr
        total = wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py()
        assert total > 150
        assert len(versions(root, "hsc_forced")) == 2  # the old one stays: a reader holds it

        assert ask(reader) == "150 150"  # no FileNotFoundError: the whole read saw one state
        reader.wait(timeout=60)
        assert reader.returncode == 0, reader.stderr.read()
        assert int(ask(notebook)) == 150  # the notebook still sees what it opened

    assert len(versions(root, "hsc_forced")) == 2  # nobody collected yet
    refresh = gwh("refresh", "--root", root)  # the next writer collects the old version
    assert refresh.returncode == 0, refresh.stderr
    remaining = versions(root, "hsc_forced")
    assert len(remaining) == 1 and remaining[0] not in old
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() == total


def test_a_second_writer_fails_at_once_naming_the_first(wh, more_forced, cli, tmp_path):
    root = wh.root
    with process(WRITER, env={"ROOT": str(root)}) as writer:
        assert writer.stdout.readline().strip() == "writing", writer.stderr.read()
        before = tree_digest(root / "catalogs")
        result = cli("load", "hsc-forced", more_forced, "--root", root)
        assert result.exit_code == 1
        message = result.stderr
        assert f"is held by `gwh load hsc-forced big_export.fits` (PID {writer.pid}" in message
        assert "wait for it to finish" in message and message.count("\n") == 1
        release = cli("release", "create", "r1", "--root", root)
        assert release.exit_code == 1 and f"(PID {writer.pid}" in release.stderr
        assert tree_digest(root / "catalogs") == before

        # readers and exports never take the writer lock
        assert cli("sql", "select count(*) from hsc_forced", "--root", root).exit_code == 0
        r = export_hdf5(
            wh, tmp_path / "x.h5", split="test", options=ExportOptions(size=16), progress=False
        )
        assert r.rows > 0
    assert cli("load", "hsc-forced", more_forced, "--root", root).exit_code == 0
    assert (root / ".lock").read_text() == ""  # nobody holds it


def test_a_writer_collects_only_when_no_reader_reads(wh, more_forced):
    root = wh.root
    with wh.reading():  # a reader in this very process
        wh.load(registry.get("hsc-forced"), [more_forced])
        assert len(versions(root, "hsc_forced")) == 2
    wh.refresh()
    assert len(versions(root, "hsc_forced")) == 1
    assert not list((root / "catalogs" / "hsc_forced").glob(".trash-*"))
