"""What writers read of warehouse.duckdb, once per committed state: always what the file holds,
whether this process committed the state or another one did."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from loaders import registry
from warehouse import bookkeeping, db

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
