"""What writers read of warehouse.duckdb, once per committed state: always what the file holds,
whether this process committed the state or another one did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from loaders import registry
from warehouse import bookkeeping, db
from warehouse.core import Warehouse
from warehouse.errors import WarehouseError

REPO = Path(__file__).resolve().parents[2]

LOAD_ELSEWHERE = """
import sys
from loaders import registry
from warehouse.core import Warehouse
Warehouse.open(sys.argv[1]).load(registry.get("hsc-specz"), [sys.argv[2]])
"""


def _in_file(db_path: Path) -> tuple[dict, dict]:
    """The registry and loaded files as the file holds them (read directly)."""
    with db.connect(db_path) as con:
        tables = con.execute("SELECT name, version, path FROM gwh_tables").fetchall()
        loads = con.execute(
            "SELECT loader, sha256, min(loaded_at) FROM gwh_loads GROUP BY 1, 2"
        ).fetchall()
    return {n: (v, p) for n, v, p in tables}, {(lo, s): w for lo, s, w in loads}


def _seen(db_path: Path) -> tuple[dict, dict]:
    state = bookkeeping.committed(db_path)
    return dict(state.registry), dict(state.loaded)


def test_a_new_warehouse_has_no_tables(make_warehouse, tmp_path):
    wh = make_warehouse()
    assert _seen(wh.db_path) == ({}, {})
    assert bookkeeping.committed(tmp_path / "none" / "warehouse.duckdb") == bookkeeping.EMPTY


def test_the_state_a_load_records_is_the_file_it_committed(make_warehouse, field_files):
    wh = make_warehouse(max_rows_per_partition=300)
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    first = _seen(wh.db_path)
    assert first == _in_file(wh.db_path)
    assert set(first[0]) == {"hsc_forced"} and len(first[1]) == 1
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    seen = _seen(wh.db_path)
    assert seen == _in_file(wh.db_path)
    assert set(seen[0]) >= {"hsc_forced", "hsc_specz"}
    assert bookkeeping.committed(wh.db_path).loaded_by("hsc-specz").keys() == {
        sha for (loader, sha) in seen[1] if loader == "hsc-specz"
    }


def test_a_commit_by_another_process_is_seen(make_warehouse, field_files):
    wh = make_warehouse(max_rows_per_partition=300)
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    before = _seen(wh.db_path)
    subprocess.run(
        [sys.executable, "-c", LOAD_ELSEWHERE, str(wh.root), str(field_files["specz"])],
        cwd=REPO,
        check=True,
    )
    after = _seen(wh.db_path)
    assert after != before and after == _in_file(wh.db_path)
    assert "hsc_specz" in after[0]
    # and this process skips the file the other one loaded
    messages: list[str] = []
    results = wh.load(registry.get("hsc-specz"), [field_files["specz"]], echo=messages.append)
    assert [r.skipped for r in results] == [True]
    assert "already loaded" in messages[0]


def test_a_write_refuses_to_lose_a_table_a_user_made_in_the_file(tmp_path):
    """warehouse.duckdb opens in any DuckDB client, where a user may CREATE TABLE; every write
    replaces the file, so a writer refuses to start (the table vanished at the next load)."""
    wh = Warehouse.init(tmp_path / "w")
    with duckdb.connect(str(wh.db_path)) as con:
        con.execute("CREATE TABLE my_labels AS SELECT 1 AS object_id, 42 AS label")
    assert bookkeeping.foreign_tables(wh.db_path) == ["my_labels"]
    with pytest.raises(WarehouseError, match="holds my_labels, which gwh did not make"):
        wh.refresh()
    with duckdb.connect(str(wh.db_path), read_only=True) as con:  # still there
        assert con.execute("SELECT label FROM my_labels").fetchone() == (42,)
    with duckdb.connect(str(wh.db_path)) as con:
        con.execute("DROP TABLE my_labels")
    wh.refresh()  # and once it is gone, writes go on
