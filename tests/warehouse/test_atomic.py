"""Writes are atomic: a failed or killed load leaves the warehouse as it was; a rerun resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loaders import registry
from loaders.simulated.catalog import simulate_field
from warehouse.core import Warehouse

REPO = Path(__file__).resolve().parents[2]


def state(root: Path):
    """What a user can observe: the registry, row counts, and the files of current versions."""
    wh = Warehouse.open(root)
    tables = wh.query("SELECT name, version, nrows FROM gwh_tables ORDER BY name").to_pylist()
    loads = wh.query("SELECT count(*) AS n FROM gwh_loads").column("n")[0].as_py()
    n = wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() if tables else 0
    return tables, loads, n


def test_failed_file_keeps_earlier_files_and_rerun_resumes(make_warehouse, tmp_path, field):
    wh = make_warehouse()
    good = tmp_path / "good.parquet"
    pq.write_table(field.forced.slice(0, 600), good)
    bad = tmp_path / "bad.csv"
    bad.write_text("object_id,ra,dec\n1,10,1\n2,999,1\n")
    later = tmp_path / "later.parquet"
    pq.write_table(field.forced.slice(600), later)
    try:
        wh.load(registry.get("hsc-forced"), [good, bad, later])
    except Exception as exc:  # noqa: BLE001 - the message is checked below
        assert "ra = 999.0" in str(exc)
    else:
        raise AssertionError("the bad file must fail")
    tables, loads, n = state(wh.root)
    assert n == 600 and loads == 1
    bad.write_text("object_id,ra,dec\n1,10,1\n2,11,1\n")  # the user fixes the file
    results = wh.load(registry.get("hsc-forced"), [good, bad, later])
    assert [r.skipped for r in results] == [True, False, False]
    assert state(wh.root)[2] == 1202


def _big_forced(tmp_path: Path, n: int = 40_000) -> Path:
    f = simulate_field(2000, seed=3).forced
    reps = []
    rng = np.random.default_rng(5)
    for i in range(n // f.num_rows):
        cols = dict(zip(f.column_names, f.columns, strict=True))
        cols["object_id"] = pa.array(f.column("object_id").to_numpy() + i * 10**9, pa.int64())
        cols["ra"] = pa.array(np.mod(f.column("ra").to_numpy() + rng.uniform(-20, 20), 360))
        reps.append(pa.table(cols))
    path = tmp_path / "big.parquet"
    pq.write_table(pa.concat_tables(reps), path)
    return path


def _run_load(root: Path, path: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            str(REPO / "cli.py"),
            "load",
            "hsc-forced",
            str(path),
            "--root",
            str(root),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )


def test_killed_load_leaves_old_or_new_state(make_warehouse, tmp_path, field_files):
    wh = make_warehouse(max_rows_per_partition=2000)
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    old = state(wh.root)
    big = _big_forced(tmp_path)
    t0 = time.monotonic()
    proc = _run_load(wh.root, big)
    assert proc.wait(timeout=300) == 0
    duration = time.monotonic() - t0
    new = state(wh.root)
    assert new != old and new[2] == old[2] + 40_000

    outcomes = set()
    for fraction in (0.2, 0.4, 0.6, 0.8, 0.95):
        root = tmp_path / f"kill{fraction}"
        w = Warehouse.init(root, wh.config)
        w.load(registry.get("hsc-forced"), [field_files["forced"]])
        proc = _run_load(root, big)
        time.sleep(duration * fraction)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        after = state(root)
        assert after in (old, new), after
        outcomes.add("new" if after == new else "old")
        # a rerun completes from whatever was left, to the same state as an uninterrupted run
        assert _run_load(root, big).wait(timeout=300) == 0
        assert state(root) == new
        leftovers = list((root / "catalogs").rglob(".tmp-*"))
        assert leftovers == []
        versions = sorted(p.name for p in (root / "catalogs" / "hsc_forced").glob("v*"))
        assert len(versions) == 1
    assert "old" in outcomes
