"""warehouse.duckdb is portable: plain DuckDB clients open it from any folder, a moved warehouse
keeps working with gwh, and one command re-points the file for plain clients."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from loaders import registry
from warehouse import db
from warehouse.core import Warehouse

REPO = Path(__file__).resolve().parents[2]

PLAIN_CLIENT = textwrap.dedent(
    """
    import json, sys
    import duckdb
    con = duckdb.connect(sys.argv[1], read_only=True)
    names = [r[0] for r in con.execute(
        "SELECT name FROM gwh_models WHERE kind <> 'macro' AND available ORDER BY name"
    ).fetchall()]
    counts = {}
    for name in names:
        try:
            counts[name] = con.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
        except duckdb.Error as exc:
            counts[name] = "error: " + str(exc).splitlines()[0]
    print(json.dumps(counts))
    """
)


def plain_client_counts(db_file: Path, cwd: Path) -> dict:
    """Row counts of every available view, from a plain DuckDB client in another process."""
    cwd.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        [sys.executable, "-c", PLAIN_CLIENT, str(db_file)],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def gwh(*args, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *map(str, args)],
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
    )


def test_a_plain_client_in_another_folder_reads_every_view(loaded, tmp_path):
    expected = {v.name: v.rows for v in loaded.views() if v.rows is not None}
    assert expected["hsc_forced"] == 1200 and expected["ml_objects"] > 0
    got = plain_client_counts(loaded.db_path, tmp_path / "somewhere" / "else")
    assert got == expected


def test_moved_warehouse_works_with_gwh_and_after_refresh_with_plain_clients(loaded, tmp_path):
    before = loaded.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    moved = tmp_path / "moved" / "wh"
    moved.parent.mkdir()
    shutil.move(loaded.root, moved)

    result = gwh("sql", "select count(*) AS n from ml_objects", "--root", moved, "-f", "csv")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == str(before)
    assert Warehouse.open(moved).cone(150.0, 2.0, 3600).num_rows >= 0

    stale = plain_client_counts(moved / "warehouse.duckdb", tmp_path / "elsewhere")
    assert str(stale["hsc_forced"]).startswith("error: ")  # the old folder is gone

    listing = gwh("views", "--no-counts", "--root", moved)
    assert listing.returncode == 0 and f"gwh refresh --root {moved}" in listing.stderr

    result = gwh("refresh", "--root", moved)
    assert result.returncode == 0, result.stderr
    listing = gwh("views", "--no-counts", "--root", moved)
    assert listing.returncode == 0 and "refresh" not in listing.stderr
    assert str(moved) in result.stdout
    got = plain_client_counts(moved / "warehouse.duckdb", tmp_path / "elsewhere")
    assert got["ml_objects"] == before and got["hsc_forced"] == 1200


def duckdb_cli() -> str | None:
    beside = Path(sys.executable).parent / "duckdb"
    return str(beside) if beside.exists() else shutil.which("duckdb")


def test_the_duckdb_cli_from_pypi_opens_the_file(loaded, tmp_path):
    exe = duckdb_cli()
    if exe is None:
        pytest.skip("duckdb-cli is not installed (pip install duckdb-cli)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    done = subprocess.run(
        [
            exe,
            "-readonly",
            "-csv",
            str(loaded.db_path),
            "-c",
            "SELECT count(*) AS n FROM hsc_forced; SELECT count(*) AS m FROM ml_objects;",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, f"{version.stdout}: {done.stderr}"
    n = loaded.query("SELECT count(*) AS m FROM ml_objects").column("m")[0].as_py()
    assert done.stdout.split() == ["n", "1200", "m", str(n)]


def storage_version(path: Path) -> int:
    """The storage version number in a DuckDB file's main header (after the magic ``DUCK``)."""
    head = path.read_bytes()[:64]
    at = head.index(b"DUCK") + 4
    return int.from_bytes(head[at : at + 8], "little")


def test_the_file_is_written_in_the_chosen_storage_format(loaded, tmp_path):
    import duckdb

    assert db.STORAGE_COMPATIBILITY == "v1.4.0"
    assert storage_version(loaded.db_path) == 67  # DuckDB 1.4; duckdb-cli 1.5.x reads 64-68
    with duckdb.connect(str(tmp_path / "default.duckdb")) as con:
        con.execute("CREATE TABLE t AS SELECT 1")
    assert storage_version(tmp_path / "default.duckdb") > 68  # what a default write would be


def test_a_reader_sees_a_replaced_file_even_while_this_process_holds_the_old_one(loaded, tmp_path):
    import duckdb

    held = duckdb.connect(str(loaded.db_path), read_only=True)  # a notebook's connection
    try:
        n_before = held.execute("SELECT count(*) FROM gwh_loads").fetchone()[0]
        specz = tmp_path / "more_specz.parquet"
        import pyarrow.parquet as pq

        from loaders.simulated.catalog import simulate_field

        pq.write_table(simulate_field(50, seed=99).specz, specz)
        loaded.load(registry.get("hsc-specz"), [specz])
        # the notebook keeps its consistent old state; gwh sees the new one
        assert held.execute("SELECT count(*) FROM gwh_loads").fetchone()[0] == n_before
        assert loaded.loaded_at(_sha(specz), "hsc-specz") is not None
        assert loaded.query("SELECT count(*) AS n FROM gwh_loads").column("n")[0].as_py() > (
            n_before
        )
    finally:
        held.close()


def _sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_moved_releases_still_answer(loaded, tmp_path):
    from warehouse.release import create_release, pack

    create_release(loaded, "v1")
    dest = pack(loaded.root, "v1", tmp_path / "pack", with_splits=False)
    moved_pack = tmp_path / "elsewhere" / "pack"
    moved_pack.parent.mkdir()
    shutil.move(dest, moved_pack)
    moved_root = tmp_path / "moved" / "wh"
    moved_root.parent.mkdir()
    shutil.move(loaded.root, moved_root)
    for where in (["--release", moved_pack], ["--root", moved_root, "--release", "v1"]):
        result = gwh("sql", "select count(*) AS n from hsc_forced", "-f", "csv", *where)
        assert result.returncode == 0, result.stderr
        assert result.stdout.split()[-1] == "1200"
    verified = gwh("release", "verify", moved_pack)
    assert verified.returncode == 0, verified.stderr


def test_filters_on_nan_count_every_row_in_gwh_and_a_plain_client(loaded):
    """pyarrow leaves NaN out of a float column's min/max (as the Parquet spec says) and DuckDB
    pruned row groups by them: `where isnan(g_cmodel_mag)` answered 0 of the field's NaN
    magnitudes (duckdb/duckdb#25521). Every view reads with can_have_nan."""
    import duckdb

    column = "g_cmodel_mag"
    full = loaded.query(
        f"SELECT count(*) FILTER (WHERE isnan({column})) AS n, "
        f"count(*) FILTER (WHERE {column} > 50) AS big FROM (SELECT {column} FROM hsc_forced)"
    ).to_pylist()[0]
    assert full["n"] > 0  # the simulated field has NaN magnitudes to find
    for where, want in ((f"isnan({column})", full["n"]), (f"{column} > 50", full["big"])):
        got = loaded.query(f"SELECT count(*) AS n FROM hsc_forced WHERE {where}")
        assert got.column("n")[0].as_py() == want, where
        con = duckdb.connect(str(loaded.db_path), read_only=True)
        try:
            assert (
                con.execute(f"SELECT count(*) FROM hsc_forced WHERE {where}").fetchone()[0] == want
            )
        finally:
            con.close()
