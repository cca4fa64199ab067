"""The one load path commits all files of a command together: a killed multi-file load leaves
the previous state, a rerun loads only what is missing, and every partition is written once."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.support.parts import write_interleaved
from warehouse.core import Warehouse
from warehouse.errors import LoadError

REPO = Path(__file__).resolve().parents[2]


def _state(root: Path):
    wh = Warehouse.open(root)
    tables = wh.query("SELECT name, version, nrows FROM gwh_tables ORDER BY name").to_pylist()
    loads = sorted(wh.query("SELECT sha256 FROM gwh_loads").column("sha256").to_pylist())
    rows = wh.query("SELECT * FROM hsc_forced ORDER BY object_id").to_pandas() if tables else None
    return tables, loads, rows


def _interleaved(tmp_path: Path, n_files: int = 6, copies: int = 8) -> list[Path]:
    """Files whose rows spread over the whole field: each touches every partition."""
    f = simulate_field(2000, seed=11).forced
    big = pa.concat_tables(
        [
            f.set_column(0, "object_id", pa.array(f.column("object_id").to_numpy() + i * 10**9))
            for i in range(copies)
        ]
    )
    return write_interleaved(big, tmp_path, n_files, seed=2)


def _run(root: Path, files: list[Path]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "load", "hsc-forced", *map(str, files)]
        + ["--root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd=REPO,
    )


def test_many_files_make_one_version_and_write_each_partition_once(make_warehouse, tmp_path):
    files = _interleaved(tmp_path)
    wh = make_warehouse(max_rows_per_partition=3000)
    results = wh.load(registry.get("hsc-forced"), files)
    assert [r.skipped for r in results] == [False] * len(files)
    tables, loads, rows = _state(wh.root)
    assert tables[0]["version"] == 1 and len(loads) == len(files) and len(rows) == 16_000
    cv = wh.current_version("hsc_forced")
    assert len(cv.partitions) > 3
    # one file per partition, each written once: no other version folder exists
    assert sorted(p.name for p in (wh.root / "catalogs" / "hsc_forced").glob("v*")) == ["v000001"]
    # the same files again, with one more: only the new one is read
    extra = tmp_path / "extra.parquet"
    pq.write_table(pq.read_table(files[0]).slice(0, 10), extra)
    again = wh.load(registry.get("hsc-forced"), [*files, extra])
    assert [r.skipped for r in again] == [True] * len(files) + [False]


def test_killed_multi_file_load_leaves_old_state_and_rerun_completes(make_warehouse, tmp_path):
    files = _interleaved(tmp_path)
    wh = make_warehouse(max_rows_per_partition=3000)
    wh.load(registry.get("hsc-forced"), files[:1])
    old = _state(wh.root)
    t0 = time.monotonic()
    assert _run(wh.root, files).wait(timeout=300) == 0
    duration = time.monotonic() - t0
    new = _state(wh.root)
    assert len(new[2]) == 16_000
    seen = set()
    for fraction in (0.3, 0.6, 0.85):
        root = tmp_path / f"kill{fraction}"
        w = Warehouse.init(root, wh.config)
        w.load(registry.get("hsc-forced"), files[:1])
        proc = _run(root, files)
        time.sleep(duration * fraction)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        tables, loads, rows = _state(root)
        if loads == old[1]:
            assert tables[0]["nrows"] == old[0][0]["nrows"] and rows.equals(old[2])
            seen.add("old")
        else:
            assert loads == new[1] and rows.equals(new[2])
            seen.add("new")
        assert _run(root, files).wait(timeout=300) == 0  # loads what is missing
        tables, loads, rows = _state(root)
        assert loads == new[1] and rows.equals(new[2])
        assert not list((root / "catalogs").rglob(".tmp-*"))
    assert "old" in seen


def test_a_copy_that_followed_the_current_links_is_mended_by_the_next_writer(loaded, tmp_path):
    """``cp -rL`` or ``shutil.copytree`` turn each ``current`` link into a folder: the copy still
    reads, and the next writer puts the links back instead of failing on them."""
    import shutil

    copy = tmp_path / "copied"
    shutil.copytree(loaded.root, copy)  # follows links
    current = copy / "catalogs" / "hsc_forced" / "current"
    assert current.is_dir() and not current.is_symlink()
    wh = Warehouse.open(copy)
    before = wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py()
    wh.refresh()
    for table_dir in (copy / "catalogs").iterdir():
        link = table_dir / "current"
        assert link.is_symlink(), link
        assert (table_dir / os.readlink(link)).is_dir()
        assert not [p for p in table_dir.iterdir() if p.name.startswith((".trash-", ".current-"))]
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() == before


def test_a_current_folder_whose_version_is_gone_is_a_clear_error(loaded, tmp_path):
    copy = tmp_path / "copied"
    shutil.copytree(loaded.root, copy)
    table_dir = copy / "catalogs" / "hsc_forced"
    for version in table_dir.glob("v*"):
        shutil.rmtree(version)
    with pytest.raises(LoadError, match=r"is a folder, not a link.*cp -a"):
        Warehouse.open(copy).refresh()
    assert (table_dir / "current").is_dir()  # nothing of the user's removed


def test_a_reload_says_how_many_rows_it_replaced(make_warehouse, tmp_path):
    field = simulate_field(300, seed=5)
    f = field.forced
    first, again = tmp_path / "first.parquet", tmp_path / "again.parquet"
    pq.write_table(f, first)
    more = tmp_path / "forced2.parquet"  # other columns of the same objects, merged in
    pq.write_table(field.forced2, more)
    changed = f.slice(0, 40)  # the same keys, another value
    mag = pc.add(changed.column("g_cmodel_mag"), 0.01)
    pq.write_table(changed.set_column(changed.schema.get_field_index("g_cmodel_mag"),
                                      "g_cmodel_mag", mag), again)  # fmt: skip
    wh = make_warehouse()
    said: list[str] = []
    wh.load(registry.get("hsc-forced"), [first, more], echo=said.append)
    assert said == [  # forced2 adds columns to the same objects: no row is added twice
        f"{first}: loaded (hsc_forced: 300 rows)",
        f"{more}: loaded (hsc_forced: 300 rows)",
        "hsc_forced: 300 new rows → 300; 300 rows merged by key with a row of another file of "
        "this load",
    ]
    said.clear()
    wh.load(registry.get("hsc-forced"), [again], echo=said.append)
    assert said == [
        f"{again}: loaded (hsc_forced: 40 rows)",
        "hsc_forced: 0 new rows → 300; 40 updated rows whose key it held",
    ]
