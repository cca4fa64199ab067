"""Readers in one process share the committed ``warehouse.duckdb`` they opened: the same views
and answers as views built afresh, a load by another process seen by the next reader, and
nothing one reader does to its connection reaching another."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from warehouse.core import Warehouse

REPO = Path(__file__).resolve().parents[2]


def _database(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT current_database()").fetchone()[0]


def _answers(con: duckdb.DuckDBPyConnection) -> dict[str, tuple]:
    """Rows and a hash of every value of every available view and table."""
    names = [
        r[0]
        for r in con.execute(
            "SELECT name FROM gwh_models WHERE kind <> 'macro' AND available ORDER BY name"
        ).fetchall()
    ]
    out = {}
    for name in names:
        out[name] = con.execute(f'SELECT count(*), sum(hash(t)) FROM "{name}" t').fetchone()
    return out


def test_readers_of_one_state_share_the_open_file_and_answer_as_views_built_afresh(loaded):
    with loaded.reading() as first:
        pass
    with loaded.reading() as second:
        pass
    assert first.held is not None and first.held is second.held
    with loaded.connect(shared=True) as a, loaded.connect(shared=True) as b:
        assert _database(a) == _database(b) == "gwh_file"  # the file's views, nothing rebuilt
        stored = _answers(a)
        assert stored == _answers(b)
    # by default (and with settings of its own) a reader builds its views in a database of its
    # own: tables of its own, and cursors of it that see the views (as gwh serve uses them)
    with loaded.connect() as private, loaded.connect(settings={"threads": 1}) as tuned:
        assert _database(private) == _database(tuned) == "memory"
        assert _answers(private) == _answers(tuned) == stored
        private.execute("CREATE TABLE mine AS SELECT 1 AS x")
        assert _answers(private.cursor()) == stored
    assert stored["ml_objects"][0] > 0 and stored["hsc_forced"][0] == 1200


def test_a_load_by_another_process_is_seen_by_the_next_reader(loaded, tmp_path):
    specz = tmp_path / "more_specz.parquet"
    pq.write_table(simulate_field(50, seed=99).specz, specz)
    count = "SELECT count(*) FROM gwh_loads"
    with loaded.connect(shared=True) as before:
        n_before = before.execute(count).fetchone()[0]
    with loaded.reading() as old:
        pass
    with loaded.connect(shared=True) as holding:  # a reader that stays open across the load
        done = subprocess.run(
            [sys.executable, str(REPO / "cli.py"), "load", "hsc-specz", str(specz)],
            cwd=tmp_path,
            env={"GWH_ROOT": str(loaded.root), "PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        # another Warehouse object of this process (loaded's nested readers share its state)
        with Warehouse.open(loaded.root).connect(shared=True) as after:
            assert after.execute(count).fetchone()[0] == n_before + 1
            assert (
                after.execute("SELECT count(*) FROM hsc_specz").fetchone()[0]
                > (holding.execute("SELECT count(*) FROM hsc_specz").fetchone()[0])
            )
        assert holding.execute(count).fetchone()[0] == n_before  # its own consistent state
    assert old.held is not None and old.held.retired
    with loaded.reading() as new:
        assert new.held is not old.held
        assert new.held.identity != old.held.identity
    assert Warehouse.open(loaded.root).query(count).column(0)[0].as_py() == n_before + 1


def test_an_edited_configuration_is_used_at_once(loaded):
    toml = loaded.root / "warehouse.toml"
    toml.write_text(toml.read_text().replace('salt = "gwh-v1"', 'salt = "another"'))
    wh = Warehouse.open(loaded.root)
    with wh.connect(shared=True) as con:
        assert _database(con) == "memory"  # the stored views follow the old salt
        assert con.execute("SELECT salt FROM gwh_settings").fetchone()[0] == "another"
    wh.refresh()
    with wh.connect(shared=True) as con:
        assert _database(con) == "gwh_file"
        assert con.execute("SELECT salt FROM gwh_settings").fetchone()[0] == "another"


def test_what_one_reader_does_to_its_connection_stays_there(loaded):
    with loaded.connect(shared=True) as con:
        truth = _answers(con)
    with loaded.connect(shared=True) as con:
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("CREATE TABLE gwh_file.main.t AS SELECT 1 AS x")
        with pytest.raises(duckdb.Error, match="read-only"):
            con.execute("DROP VIEW ml_objects")
        con.execute("CREATE TEMP VIEW ml_objects AS SELECT 1 AS x")
        con.execute("USE memory")
        con.execute("CREATE VIEW hsc_forced AS SELECT 1 AS x")
        con.execute("DETACH gwh_file")
        with pytest.raises(duckdb.Error):
            con.execute("SELECT count(*) FROM gwh_file.ml_objects").fetchall()
    for _ in range(2):  # the next reader finds the file detached and opens it again
        with loaded.connect(shared=True) as con:
            assert _answers(con) == truth
    with loaded.connect(shared=True) as con:
        assert _database(con) == "gwh_file"


def test_threads_reading_through_loads_see_each_state_whole(loaded, tmp_path):
    files = []
    for seed in (101, 102):
        files.append(tmp_path / f"specz_{seed}.parquet")
        pq.write_table(simulate_field(40, seed=seed).specz, files[-1])
    stop = threading.Event()
    seen: list[list[tuple[int, int]]] = [[] for _ in range(4)]
    errors: list[BaseException] = []

    def read(out: list[tuple[int, int]]) -> None:
        wh = Warehouse.open(loaded.root)
        try:
            while True:
                done = stop.is_set()  # set before this query began: it sees the last load
                t = wh.query(
                    "SELECT (SELECT count(*) FROM gwh_loads) AS loads, "
                    "(SELECT count(*) FROM hsc_specz) AS specz"
                )
                out.append((t.column("loads")[0].as_py(), t.column("specz")[0].as_py()))
                if done and len(out) >= 5:
                    return
        except BaseException as exc:  # handed to the test thread
            errors.append(exc)

    threads = [threading.Thread(target=read, args=(out,)) for out in seen]
    for t in threads:
        t.start()
    for path in files:
        loaded.load(registry.get("hsc-specz"), [path])
    stop.set()
    for t in threads:
        t.join()
    assert not errors, errors
    final = Warehouse.open(loaded.root).query("SELECT count(*) AS n FROM hsc_specz")
    rows_at = {3: None, 4: None, 5: final.column("n")[0].as_py()}
    for out in seen:
        assert out == sorted(out)  # never an older state after a newer one
        for loads, specz in out:  # a state is whole: its loads and its rows go together
            assert loads in rows_at
            if rows_at[loads] is None:
                rows_at[loads] = specz
            assert rows_at[loads] == specz
        assert out[-1] == (5, rows_at[5])  # a read begun after the last load sees it
