"""ml_objects at scale: the SQL view against its materialised copy, in the same run.

Builds (once; ``--work DIR`` keeps and reuses it) a warehouse from SIMULATED HSC-like inputs
(``bench_core.py``'s generator), loads ``hsc_forced`` and ``hsc_specz`` without materialising,
then times, on the same warehouse and in the same process:

* materialising ``ml_objects`` (:func:`warehouse.marts.build.materialise`): the seconds a load
  adds, per HEALPix partition in this process, and, as its peer, one DuckDB query of the whole
  view written to one Parquet file;
* ``select count(*) from ml_objects`` and ``Warehouse.query("select * from ml_objects")`` (to
  Arrow), through the SQL view and through the copy;
* ``Warehouse.cone`` on ``hsc_forced`` (warm), which the copy must not slow down.

Prints figures; asserts no timing. Run it under ``flock /tmp/bench.lock`` on a shared machine::

    python benchmarks/bench_views.py --rows 10000000 --work /tmp/gwh-bench-views-10m
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_core  # noqa: E402  (the generator of the SIMULATED inputs)
import pyarrow.parquet as pq  # noqa: E402

from loaders import registry  # noqa: E402
from warehouse import db  # noqa: E402
from warehouse.core import Warehouse  # noqa: E402
from warehouse.marts import build  # noqa: E402
from warehouse.marts.key import MARTS  # noqa: E402

SIMULATED_NOTE = "SIMULATED HSC-like data (galaxy-warehouse bench_views); not real"


def _timed(fn, repeat: int) -> tuple[float, list[float], object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times, out


def prepare(work: Path, rows: int, seed: int) -> dict:
    """Inputs and a loaded warehouse in ``work`` (reused when already there)."""
    done = work / "loaded.json"
    if done.exists():
        return json.loads(done.read_text())
    cfg = {
        "rows": rows,
        "specz_fraction": 0.15,
        "file_rows": 1_000_000,
        "layout": "sky",
        "seed": seed,
    }
    gen = bench_core.phase_generate(cfg, work)
    if (work / "wh").exists():
        shutil.rmtree(work / "wh")
    wh = Warehouse.init(work / "wh")
    build.MIN_ROWS = 1 << 62  # load without materialising: that is timed on its own below
    t0 = time.perf_counter()
    wh.load(registry.get("hsc-forced"), gen["forced_files"])
    t1 = time.perf_counter()
    wh.load(registry.get("hsc-specz"), gen["specz_files"])
    t2 = time.perf_counter()
    info = {
        "rows": rows,
        "seed": seed,
        "load_forced_seconds": t1 - t0,
        "load_specz_seconds": t2 - t1,
        "specz_rows": gen["specz_rows"],
    }
    done.write_text(json.dumps(info))
    return info


def _drop_copies(wh: Warehouse) -> None:
    """Forget every materialised copy, so the next materialise starts from the SQL view."""
    for name in MARTS:
        folder = wh.catalogs_dir / name
        if folder.exists():

            def forget(con, name=name):  # type: ignore[no-untyped-def]
                con.execute("DELETE FROM gwh_tables WHERE name = ?", [name])

            with wh.writing():
                wh._write_file(forget)
            shutil.rmtree(folder)


def sql_view_connection(wh: Warehouse):  # type: ignore[no-untyped-def]
    """A reader whose ml_objects is the SQL view (the copy left out), as before marts."""
    snapshot = wh._read_snapshot()
    tables = [t for t in wh.reader_tables(snapshot) if t.name not in MARTS]
    return db.reader(tables, wh.config, snapshot.bookkeeping, wh.allowed_directories())


def one_query_copy(wh: Warehouse, out: Path) -> float:
    """The peer of materialising: the whole view in one DuckDB query, written to one file."""
    con = sql_view_connection(wh)
    try:
        t0 = time.perf_counter()
        table = con.sql("SELECT * FROM ml_objects ORDER BY _healpix_29, object_id").to_arrow_table()
        pq.write_table(table, out, compression="snappy")
        return time.perf_counter() - t0
    finally:
        con.close()
        out.unlink(missing_ok=True)


def measure(work: Path, repeat: int, cones: int, seed: int) -> dict:
    wh = Warehouse.open(work / "wh")
    res: dict = {}
    _drop_copies(wh)
    positions = bench_core.cone_positions(cones, seed)

    def cone_ms() -> float:
        wh.cone(*positions[0], 10.0)  # warm
        times = []
        for ra, dec in positions:
            t = time.perf_counter()
            wh.cone(ra, dec, 10.0)
            times.append(time.perf_counter() - t)
        return 1000 * statistics.median(times)

    res["cone_no_copy_ms"] = cone_ms()  # as before marts: no copy in the warehouse
    res["one_query_copy_seconds"] = one_query_copy(wh, work / "one_query.parquet")
    t0 = time.perf_counter()
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:  # the Dask path's tasks, run here
        build.materialise(wh, lambda f, tasks: pool.map(f, tasks), force=True)
    res["per_partition_seconds"] = time.perf_counter() - t0
    _drop_copies(wh)
    t0 = time.perf_counter()
    result = build.materialise(wh, force=True)  # what a load runs
    res["materialise_seconds"] = time.perf_counter() - t0
    assert result is not None
    res["mart_rows"], res["mart_partitions"] = result.nrows, result.partitions
    res["mart_bytes"] = sum(
        f.stat().st_size for f in (wh.catalogs_dir / "ml_objects").rglob("*.parquet")
    )
    for label in ("view", "copy"):
        with contextlib.ExitStack() as stack:
            if label == "view":
                con = sql_view_connection(wh)
                stack.callback(con.close)
            else:  # the reader a user gets (Warehouse.connect), which reads the copy
                con = stack.enter_context(wh.connect())
                used = con.execute("SELECT value FROM gwh_meta WHERE key = 'mart:ml_objects'")
                assert used.fetchall(), "the copy is not in use"

            def query(sql: str, con=con):  # type: ignore[no-untyped-def]
                return con.sql(sql).to_arrow_table()

            count, count_times, n = _timed(lambda: query("SELECT count(*) FROM ml_objects"), repeat)
            full, full_times, table = _timed(lambda: query("SELECT * FROM ml_objects"), repeat)
            res[label] = {
                "count_seconds": count,
                "count_times": count_times,
                "count": n.column(0)[0].as_py(),  # type: ignore[union-attr]
                "select_star_seconds": full,
                "select_star_times": full_times,
                "rows": table.num_rows,  # type: ignore[union-attr]
                "columns": table.num_columns,  # type: ignore[union-attr]
            }
            del table
    res["cone_with_copy_ms"] = cone_ms()
    t0 = time.perf_counter()
    wh.query("SELECT * FROM ml_objects")
    res["wh_query_select_star_seconds"] = time.perf_counter() - t0
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="forced rows (default 1M)")
    parser.add_argument("--work", help="folder to build in and keep (default: a temp dir, removed)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each query (median)")
    parser.add_argument("--cones", type=int, default=20, help="cone positions (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    keep = args.work is not None
    work = Path(args.work) if keep else Path(f"/tmp/gwh-bench-views-{os.getpid()}")
    work.mkdir(parents=True, exist_ok=True)
    load_before = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    try:
        info = prepare(work, args.rows, args.seed)
        res = measure(work, max(1, args.repeat), args.cones, args.seed)
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    v, c = res["view"], res["copy"]
    print(f"bench_views: {SIMULATED_NOTE}")
    print(f"command: {command}")
    print(f"machine: {os.cpu_count()} CPUs; at the start: {load_before}; at the end: {load}")
    print(
        f"warehouse: {info['rows']:,} forced rows (load {info['load_forced_seconds']:.1f} s), "
        f"{info['specz_rows']:,} spec-z rows (load {info['load_specz_seconds']:.1f} s); "
        f"ml_objects {v['rows']:,} rows x {v['columns']} columns"
    )
    print(
        f"materialise (added to a load): {res['materialise_seconds']:.1f} s, one streamed query "
        f"cut at partition borders ({res['mart_partitions']} partitions, "
        f"{res['mart_bytes'] / 2**20:.0f} MiB); per partition + margin (the Dask path's tasks, "
        f"{os.cpu_count()} threads here): {res['per_partition_seconds']:.1f} s; peer, one query "
        f"of the whole view to one file: {res['one_query_copy_seconds']:.1f} s"
    )
    print(f"{'query':34s} {'SQL view':>10s} {'copy':>10s} {'ratio':>7s}")
    for label, key, unit in (
        ("select count(*) from ml_objects", "count_seconds", "s"),
        ("select * from ml_objects -> Arrow", "select_star_seconds", "s"),
    ):
        ratio = v[key] / c[key] if c[key] else float("inf")
        print(f"{label:34s} {v[key]:>8.3f}{unit:2s} {c[key]:>8.3f}{unit:2s} {ratio:>6.1f}x")
    print(
        f'Warehouse.cone 10" on hsc_forced (warm, median of {args.cones}): without a copy '
        f"{res['cone_no_copy_ms']:.1f} ms, with it {res['cone_with_copy_ms']:.1f} ms"
    )
    print(
        f"Warehouse.query('select * from ml_objects') with the copy (connect included): "
        f"{res['wh_query_select_star_seconds']:.3f} s"
    )
    same = v["count"] == c["count"] == c["rows"] == v["rows"] and v["columns"] == c["columns"]
    print(f"same rows and columns through both: {same}")
    print(json.dumps({"info": info, **res}), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
