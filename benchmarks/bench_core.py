"""Core warehouse benchmark: ingest, ``ml_objects``, cone searches, with hats-import and pyarrow.

Every figure is measured on a SIMULATED HSC-like catalog (``loaders.simulated.catalog``, the
116-column ``forced`` + ``forced2`` table and a spec-z table), never on real data. The script prints
figures; it asserts no timing.

Each measured phase runs in a fresh Python subprocess, so its wall time and peak memory are its
own. Peak memory is reported two ways: ``ru_maxrss`` of the phase process (exact, one process) and
the peak of the summed RSS of the phase process and all its descendants, sampled every 0.1 s
(needed for hats-import, whose dask workers are separate processes; RSS sums count shared pages
once per process, so they overstate a little).

Usage::

    python benchmarks/bench_core.py --rows 1000000
    python benchmarks/bench_core.py --rows 10000000            # several minutes on 2 cores
    python benchmarks/bench_core.py --rows 1000000 --keep      # leave the temp dir to inspect
    python benchmarks/bench_core.py --rows 1000000 --skip hats-import,lsdb --json out.json

Phases: generate (inputs; not a benchmark), load-forced, load-specz, ml-count, ml-hash,
ml-arrow, cone, cone-lsdb, hats-import, pyarrow-dict-on, pyarrow-dict-off.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SIMULATED_NOTE = "SIMULATED HSC-like data (galaxy-warehouse bench_core); not real"

# Approximate HSC-SSP PDR2 Wide fields as RA/Dec boxes in degrees (rounded; about 300 deg^2 in
# all). Rows are spread uniformly over 1 deg x 1 deg tiles covering them.
FIELDS = (
    ("XMM", 30.0, 39.0, -6.0, -2.0),
    ("GAMA09H", 129.0, 151.0, -1.0, 4.0),
    ("WIDE12H", 173.0, 185.0, -1.0, 2.0),
    ("GAMA15H", 208.0, 224.0, -1.0, 2.0),
    ("HECTOMAP", 236.0, 250.0, 42.0, 45.0),
    ("VVDS", 332.0, 344.0, -1.0, 3.0),
)
TILE_DEG = 1.0
# Each tile's object_ids are shifted by tile_index * ID_STRIDE: simulate_field draws ids from the
# same HSC-like start with increments below 5000, so tiles never collide.
ID_STRIDE = 1 << 36
ROW_GROUP = 100_000
CONE_RADII = (10.0, 60.0)

PHASES = (
    "generate",
    "load-forced",
    "load-specz",
    "ml-count",
    "ml-hash",
    "ml-arrow",
    "cone",
    "cone-lsdb",
    "hats-import",
    "pyarrow-dict-on",
    "pyarrow-dict-off",
)
SKIPPABLE = ("ml", "ml-arrow", "cone", "lsdb", "hats-import", "pyarrow")


# --------------------------------------------------------------------------- footprint


def footprint_tiles() -> list[tuple[str, float, float]]:
    """(field, ra centre, dec centre) of every ~1 deg^2 tile of :data:`FIELDS`."""
    tiles = []
    for name, r1, r2, d1, d2 in FIELDS:
        for k in range(round((d2 - d1) / TILE_DEG)):
            dc = d1 + (k + 0.5) * TILE_DEG
            n_ra = max(1, round((r2 - r1) * math.cos(math.radians(dc)) / TILE_DEG))
            step = (r2 - r1) / n_ra
            tiles.extend((name, r1 + (j + 0.5) * step, dc) for j in range(n_ra))
    return tiles


def cone_positions(n: int, seed: int) -> list[tuple[float, float]]:
    """``n`` random positions well inside random tiles of the footprint."""
    import numpy as np

    rng = np.random.default_rng(seed + 7)
    tiles = footprint_tiles()
    out = []
    for i in rng.integers(0, len(tiles), n):
        _name, rc, dc = tiles[int(i)]
        dec = dc + rng.uniform(-0.4, 0.4) * TILE_DEG
        ra = rc + rng.uniform(-0.4, 0.4) * TILE_DEG / math.cos(math.radians(dec))
        out.append((float(ra % 360.0), float(dec)))
    return out


# --------------------------------------------------------------------------- generation


def _simulate_tile(job: tuple[int, float, float, int, int, float]):  # type: ignore[no-untyped-def]
    """One tile of the simulated field, with ids and spec-z names unique across tiles."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from loaders.simulated.catalog import simulate_field

    index, ra_c, dec_c, n, seed, specz_fraction = job
    if n * 5000 >= ID_STRIDE:
        raise ValueError(f"tile {index}: {n} rows would overflow its id range; use more tiles")
    field = simulate_field(
        n,
        seed=seed,
        center=(ra_c, dec_c),
        half_width_deg=TILE_DEG / 2,
        specz_fraction=specz_fraction,
    )
    shift = pa.scalar(index * ID_STRIDE, pa.int64())
    forced = field.forced_all()
    parent = forced.column("parent_id")
    forced = forced.set_column(
        forced.schema.get_field_index("object_id"),
        "object_id",
        pc.add(forced.column("object_id"), shift),
    )
    forced = forced.set_column(
        forced.schema.get_field_index("parent_id"),
        "parent_id",
        pc.if_else(pc.equal(parent, 0), parent, pc.add(parent, shift)),
    )
    specz = field.specz
    specz = specz.set_column(
        specz.schema.get_field_index("object_id"),
        "object_id",
        pc.add(specz.column("object_id"), shift),
    )
    specz = specz.set_column(
        specz.schema.get_field_index("specz_name"),
        "specz_name",
        pc.replace_substring(
            specz.column("specz_name"), "_", f"_t{index:04d}-", max_replacements=1
        ),
    )
    return forced, specz


class _Sink:
    """Parquet files of at most ``file_rows`` rows, written in row groups of ``ROW_GROUP``."""

    def __init__(self, folder: Path, stem: str, file_rows: int):
        self.folder, self.stem, self.file_rows = folder, stem, file_rows
        self.paths: list[Path] = []
        self.rows = 0
        self._writer = None
        self._in_file = 0
        self._buffer: list = []
        self._buffered = 0

    def write(self, table) -> None:  # type: ignore[no-untyped-def]
        while table.num_rows:
            if self._writer is None:
                self._open(table.schema)
            room = self.file_rows - self._in_file - self._buffered
            part, table = table.slice(0, room), table.slice(room)
            self._buffer.append(part)
            self._buffered += part.num_rows
            if self._buffered >= ROW_GROUP:
                self._flush()
            if self._in_file + self._buffered >= self.file_rows:
                self._close()

    def _open(self, schema) -> None:  # type: ignore[no-untyped-def]
        import pyarrow.parquet as pq

        path = self.folder / f"{self.stem}_{len(self.paths):04d}.parquet"
        self.paths.append(path)
        schema = schema.with_metadata({"galaxy_warehouse.note": SIMULATED_NOTE})
        strings = [f.name for f in schema if str(f.type) == "string"]
        self._writer = pq.ParquetWriter(
            path, schema, compression="snappy", use_dictionary=strings or False
        )
        self._in_file = 0

    def _flush(self) -> None:
        import pyarrow as pa

        if not self._buffered:
            return
        table = pa.concat_tables(self._buffer)
        assert self._writer is not None
        self._writer.write_table(table.replace_schema_metadata(self._writer.schema.metadata))
        self._in_file += table.num_rows
        self.rows += table.num_rows
        self._buffer, self._buffered = [], 0

    def _close(self) -> None:
        self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def close(self) -> None:
        self._close()


def phase_generate(cfg: dict, work: Path) -> dict:
    from concurrent.futures import ProcessPoolExecutor

    import numpy as np

    n, tiles = cfg["rows"], footprint_tiles()
    counts = [n // len(tiles) + (1 if i < n % len(tiles) else 0) for i in range(len(tiles))]
    jobs = [
        (i, rc, dc, counts[i], cfg["seed"] * 100_003 + i, cfg["specz_fraction"])
        for i, (_f, rc, dc) in enumerate(tiles)
    ]
    inputs = work / "inputs"
    inputs.mkdir(parents=True, exist_ok=True)
    n_files = max(1, math.ceil(n / cfg["file_rows"]))
    if cfg["layout"] == "sky":
        forced_sinks = [_Sink(inputs, "simulated_hsc_forced", cfg["file_rows"])]
    else:  # "mixed": every file holds rows from every tile
        forced_sinks = [
            _Sink(inputs, f"simulated_hsc_forced_mixed{k:03d}", cfg["file_rows"])
            for k in range(n_files)
        ]
    specz_sink = _Sink(inputs, "simulated_hsc_specz", cfg["file_rows"])
    rng = np.random.default_rng(cfg["seed"])
    offset = 0
    t0 = time.perf_counter()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for forced, specz in pool.map(_simulate_tile, jobs):
            if len(forced_sinks) == 1:
                forced_sinks[0].write(forced)
            else:
                # Round-robin over a shuffled tile keeps every file within --file-rows.
                k = len(forced_sinks)
                order = rng.permutation(forced.num_rows)
                sink_of = (offset + np.arange(forced.num_rows)) % k
                offset += forced.num_rows
                for i, sink in enumerate(forced_sinks):
                    sink.write(forced.take(np.sort(order[sink_of == i])))
            specz_sink.write(specz)
    for sink in [*forced_sinks, specz_sink]:
        sink.close()
    seconds = time.perf_counter() - t0
    forced_files = [str(p) for s in forced_sinks for p in s.paths]
    return {
        "rows": sum(s.rows for s in forced_sinks),
        "seconds": seconds,
        "forced_files": forced_files,
        "specz_files": [str(p) for p in specz_sink.paths],
        "specz_rows": specz_sink.rows,
        "tiles": len(tiles),
        "input_bytes": sum(Path(p).stat().st_size for p in forced_files),
    }


# --------------------------------------------------------------------------- warehouse phases


def _manifest(work: Path) -> dict:
    return json.loads((work / "results" / "generate.json").read_text())


def phase_load_forced(cfg: dict, work: Path) -> dict:
    from loaders import registry
    from warehouse.core import Warehouse

    files = _manifest(work)["forced_files"]
    wh = Warehouse.init(work / "wh")
    stamps: list[float] = []
    t0 = time.perf_counter()
    wh.load(registry.get("hsc-forced"), files, echo=lambda _msg: stamps.append(time.perf_counter()))
    seconds = time.perf_counter() - t0
    per_file = [b - a for a, b in zip([t0, *stamps[:-1]], stamps, strict=True)]
    cv = wh.current_version("hsc_forced")
    assert cv is not None
    orders: dict[int, int] = {}
    for p in cv.partitions:
        orders[p.order] = orders.get(p.order, 0) + 1
    import pyarrow.parquet as pq

    from warehouse.store.contracts import base_tables

    contract = base_tables()["hsc_forced"].spec.layout
    md = pq.read_metadata(max(cv.files(), key=lambda f: f.stat().st_size))
    return {
        "rows": cv.nrows,
        "seconds": seconds,
        "layout": {  # the table contract's Parquet layout; the page index as written
            "row_group_rows": contract.row_group_rows,
            "page_bytes": contract.page_bytes,
            "page_index": md.row_group(0).column(0).has_column_index,
        },
        "per_file_seconds": per_file,
        "partitions": len(cv.partitions),
        "partition_orders": {str(k): v for k, v in sorted(orders.items())},
        "catalog_bytes": sum(f.stat().st_size for f in cv.files()),
    }


def phase_load_specz(cfg: dict, work: Path) -> dict:
    from loaders import registry
    from warehouse.core import Warehouse

    files = _manifest(work)["specz_files"]
    wh = Warehouse.open(work / "wh")
    t0 = time.perf_counter()
    wh.load(registry.get("hsc-specz"), files)
    seconds = time.perf_counter() - t0
    cv = wh.current_version("hsc_specz")
    assert cv is not None
    return {"rows": cv.nrows, "seconds": seconds, "partitions": len(cv.partitions)}


def _timed_queries(cfg: dict, work: Path, sql: str) -> dict:
    """Run ``sql`` ``repeat`` times on one read-only connection, each fully fetched."""
    from warehouse.core import Warehouse

    wh = Warehouse.open(work / "wh")
    times, result = [], None
    with wh.connect(read_only=True) as con:
        for _ in range(cfg["repeat"]):
            t0 = time.perf_counter()
            result = con.execute(sql).fetchall()
            times.append(time.perf_counter() - t0)
    assert result is not None
    return {
        "rows": int(result[0][0]),
        "seconds": statistics.median(times),
        "first_seconds": times[0],
        "times": times,
    }


def phase_ml_count(cfg: dict, work: Path) -> dict:
    return _timed_queries(cfg, work, "SELECT count(*) FROM ml_objects")


def phase_ml_hash(cfg: dict, work: Path) -> dict:
    # hash(ml) hashes the whole row (a struct of every column), so every column is computed.
    out = _timed_queries(cfg, work, "SELECT count(*), sum(hash(ml)) FROM ml_objects AS ml")
    from warehouse.core import Warehouse

    out["columns"] = (
        Warehouse.open(work / "wh").query("SELECT * FROM ml_objects LIMIT 0").num_columns
    )
    return out


def phase_ml_arrow(cfg: dict, work: Path) -> dict:
    """``Warehouse.query('select * from ml_objects')``: the library call, to one Arrow table."""
    from warehouse.core import Warehouse

    wh = Warehouse.open(work / "wh")
    times, nbytes, rows, cols = [], 0, 0, 0
    for _ in range(cfg["repeat"]):
        t0 = time.perf_counter()
        table = wh.query("SELECT * FROM ml_objects")
        times.append(time.perf_counter() - t0)
        rows, cols, nbytes = table.num_rows, table.num_columns, table.nbytes
        del table
    return {
        "rows": rows,
        "columns": cols,
        "arrow_bytes": nbytes,
        "seconds": statistics.median(times),
        "first_seconds": times[0],
        "times": times,
    }


NAIVE_CONE_SQL = (
    "SELECT *, angular_distance_arcsec(ra, dec, ?, ?) AS distance_arcsec FROM hsc_forced "
    "WHERE cone_search(ra, dec, ?, ?, ?) ORDER BY distance_arcsec, 1"
)


def _latencies(fn, positions, radius: float) -> tuple[list[float], int]:  # type: ignore[no-untyped-def]
    times, rows = [], 0
    for ra, dec in positions:
        t0 = time.perf_counter()
        n = fn(ra, dec, radius)
        times.append(time.perf_counter() - t0)
        rows += n
    return times, rows


def phase_cone(cfg: dict, work: Path) -> dict:
    from warehouse.core import Warehouse
    from warehouse.healpix import SPATIAL_INDEX_COLUMN, cone_pixel_ranges

    wh = Warehouse.open(work / "wh")
    positions = [tuple(p) for p in cfg["cone_positions"]]

    def prefilter_sql(ra: float, dec: float, radius: float) -> tuple[str, list]:
        # The SQL Warehouse.cone runs, for the open-connection variant below.
        ranges = cone_pixel_ranges(ra, dec, radius)
        where = " OR ".join(
            f"({SPATIAL_INDEX_COLUMN} >= ? AND {SPATIAL_INDEX_COLUMN} < ?)" for _ in ranges
        )
        sql = (
            "SELECT *, angular_distance_arcsec(ra, dec, ?, ?) AS distance_arcsec FROM hsc_forced "
            f"WHERE ({where}) AND cone_search(ra, dec, ?, ?, ?) ORDER BY distance_arcsec, 1"
        )
        return sql, [ra, dec] + [v for r in ranges for v in r] + [ra, dec, radius]

    held = contextlib.ExitStack()  # the reader connection stays open across the timed calls
    con = held.enter_context(wh.connect())
    methods = {
        "Warehouse.cone (HEALPix pre-filter)": lambda ra, dec, r: wh.cone(ra, dec, r).num_rows,
        "Warehouse.query, naive full scan": lambda ra, dec, r: (
            wh.query(NAIVE_CONE_SQL, [ra, dec, ra, dec, r]).num_rows
        ),
        "  same pre-filter SQL, open connection": lambda ra, dec, r: (
            con.execute(*prefilter_sql(ra, dec, r)).to_arrow_table().num_rows
        ),
    }
    out: dict = {"methods": {}}
    for name, fn in methods.items():
        fn(*positions[0], CONE_RADII[-1])  # warm-up call
        out["methods"][name] = {}
        for radius in CONE_RADII:
            times, rows = _latencies(fn, positions, radius)
            out["methods"][name][str(radius)] = {"times": times, "rows": rows}
    held.close()
    return out


def phase_cone_lsdb(cfg: dict, work: Path) -> dict:
    import lsdb

    positions = [tuple(p) for p in cfg["cone_positions"]]
    t0 = time.perf_counter()
    catalog = lsdb.open_catalog(str(work / "wh" / "catalogs" / "hsc_forced" / "current"))
    open_seconds = time.perf_counter() - t0

    def cone(ra: float, dec: float, radius: float) -> int:
        return len(catalog.cone_search(ra, dec, radius).compute(progress_bar=False))

    cone(*positions[0], CONE_RADII[-1])  # warm-up call
    res = {}
    for radius in CONE_RADII:
        times, rows = _latencies(cone, positions, radius)
        res[str(radius)] = {"times": times, "rows": rows}
    return {"open_seconds": open_seconds, "methods": {"lsdb catalog.cone_search().compute()": res}}


# --------------------------------------------------------------------------- peers


def phase_hats_import(cfg: dict, work: Path) -> dict:
    import hats
    from dask.distributed import Client
    from hats_import.catalog.arguments import ImportArguments
    from hats_import.pipeline import pipeline_with_client

    files = _manifest(work)["forced_files"]
    out_dir, tmp = work / "hats_import_out", work / "hats_import_tmp"
    t0 = time.perf_counter()
    with Client(
        n_workers=2, threads_per_worker=1, local_directory=str(tmp / "dask"), dashboard_address=None
    ) as client:
        t1 = time.perf_counter()
        args = ImportArguments(
            output_path=str(out_dir),
            output_artifact_name="hsc_forced",
            input_file_list=files,
            file_reader="parquet",
            ra_column="ra",
            dec_column="dec",
            pixel_threshold=cfg["max_rows"],
            tmp_dir=str(tmp),
            resume=False,
            progress_bar=False,
        )
        pipeline_with_client(args, client)
        t2 = time.perf_counter()
    t3 = time.perf_counter()
    catalog = hats.read_hats(str(out_dir / "hsc_forced"))
    pixels = catalog.get_healpix_pixels()
    orders: dict[int, int] = {}
    for p in pixels:
        orders[p.order] = orders.get(p.order, 0) + 1
    return {
        "rows": int(catalog.catalog_info.total_rows),
        "seconds": t3 - t0,
        "pipeline_seconds": t2 - t1,
        "partitions": len(pixels),
        "partition_orders": {str(k): v for k, v in sorted(orders.items())},
    }


def _pyarrow_write(work: Path, dictionary_floats: bool) -> dict:
    import pyarrow.parquet as pq

    files = _manifest(work)["forced_files"]
    target = work / f"pyarrow_dict_{'on' if dictionary_floats else 'off'}.parquet"
    writer, rows, write_s, read_s = None, 0, 0.0, 0.0
    for path in files:
        t0 = time.perf_counter()
        table = pq.read_table(path)
        t1 = time.perf_counter()
        if writer is None:
            strings = [f.name for f in table.schema if str(f.type) == "string"]
            writer = pq.ParquetWriter(
                target,
                table.schema,
                compression="snappy",
                use_dictionary=True if dictionary_floats else (strings or False),
            )
        writer.write_table(table, row_group_size=ROW_GROUP)
        t2 = time.perf_counter()
        read_s += t1 - t0
        write_s += t2 - t1
        rows += table.num_rows
        del table
    assert writer is not None
    t0 = time.perf_counter()
    writer.close()
    write_s += time.perf_counter() - t0
    size = target.stat().st_size
    target.unlink()
    return {"rows": rows, "seconds": write_s, "read_seconds": read_s, "bytes": size}


def phase_pyarrow_dict_on(cfg: dict, work: Path) -> dict:
    return _pyarrow_write(work, dictionary_floats=True)


def phase_pyarrow_dict_off(cfg: dict, work: Path) -> dict:
    return _pyarrow_write(work, dictionary_floats=False)


PHASE_FUNCTIONS = {
    "generate": phase_generate,
    "load-forced": phase_load_forced,
    "load-specz": phase_load_specz,
    "ml-count": phase_ml_count,
    "ml-hash": phase_ml_hash,
    "ml-arrow": phase_ml_arrow,
    "cone": phase_cone,
    "cone-lsdb": phase_cone_lsdb,
    "hats-import": phase_hats_import,
    "pyarrow-dict-on": phase_pyarrow_dict_on,
    "pyarrow-dict-off": phase_pyarrow_dict_off,
}


def run_phase_in_child(name: str, work: Path) -> None:
    """Entry point of a phase subprocess: run it, write results/<name>.json."""
    cfg = json.loads((work / "config.json").read_text())
    result = PHASE_FUNCTIONS[name](cfg, work)
    result["ru_maxrss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result["ru_maxrss_children_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    (work / "results" / f"{name}.json").write_text(json.dumps(result))


# --------------------------------------------------------------------------- parent


class TreeRss:
    """Peak of the summed RSS of a process and its descendants, sampled every 0.1 s."""

    def __init__(self, pid: int):
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.available = True
        try:
            import psutil  # noqa: F401
        except ImportError:
            self.available = False

    def __enter__(self) -> TreeRss:
        if self.available:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self.available:
            self._thread.join()

    def _run(self) -> None:
        import psutil

        try:
            root = psutil.Process(self.pid)
        except psutil.NoSuchProcess:
            return
        while not self._stop.is_set():
            total = 0
            try:
                for proc in [root, *root.children(recursive=True)]:
                    try:
                        total += proc.memory_info().rss
                    except psutil.NoSuchProcess:
                        pass
            except psutil.NoSuchProcess:
                return
            self.peak = max(self.peak, total)
            self._stop.wait(0.1)


def run_phase(name: str, work: Path) -> dict | None:
    log = work / "logs" / f"{name}.log"
    cmd = [sys.executable, str(Path(__file__).resolve()), "--phase", name, "--work", str(work)]
    print(f"  [{time.strftime('%H:%M:%S')}] {name} ...", flush=True, file=sys.stderr)
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT)
        with TreeRss(proc.pid) as tree:
            proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-15:]
        print(f"  {name} FAILED (exit {proc.returncode}); last lines of its log:", file=sys.stderr)
        print("    " + "\n    ".join(tail), file=sys.stderr)
        return None
    result = json.loads((work / "results" / f"{name}.json").read_text())
    result["tree_rss_peak_bytes"] = tree.peak if tree.available else None
    result["process_wall_seconds"] = wall
    return result


def machine_info() -> dict:
    from importlib import metadata

    info: dict = {
        "platform": f"{platform.system()} {platform.machine()}",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": list(os.getloadavg()),
    }
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["ram_bytes"] = int(line.split()[1]) * 1024
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    versions = {}
    for dist in ("duckdb", "pyarrow", "numpy", "healpy", "hats", "hats-import", "lsdb", "dask"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = "not installed"
    info["versions"] = versions
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "warehouse", "loaders", "sql"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.splitlines()
        info["git"] = f"{rev}" + (
            f" + uncommitted changes in {len(dirty)} file(s) of warehouse/, loaders/, sql/"
            if dirty
            else ""
        )
    except OSError:
        info["git"] = "unknown"
    return info


def _page(page_bytes: int | None) -> str:
    return "pyarrow's default 1 MiB" if page_bytes is None else f"{page_bytes / 1024:g} KiB"


def _mib(kib_or_bytes: float | None, unit: str = "kib") -> str:
    if not kib_or_bytes:
        return "-"
    return f"{kib_or_bytes / (1024 if unit == 'kib' else 1024 * 1024):,.0f}"


def _rate(rows: float, seconds: float) -> str:
    return f"{rows / seconds:,.0f}" if seconds > 0 else "-"


def report(cfg: dict, info: dict, results: dict[str, dict | None], command: str) -> str:
    lines = []
    gen = results.get("generate") or {}
    v = info["versions"]
    lines.append(f"galaxy-warehouse bench_core: {SIMULATED_NOTE}")
    lines.append(f"command  : {command}")
    lines.append(
        f"machine  : {info['platform']}, {info['cpus']} CPUs ({info.get('cpu_model', '?')}), "
        f"{info.get('ram_bytes', 0) / 2**30:.1f} GiB RAM, Python {info['python']}"
    )
    lines.append("versions : " + ", ".join(f"{k} {val}" for k, val in v.items() if k != "numpy"))
    lines.append(f"code     : git {info.get('git', 'unknown')}")
    start, end = info.get("load_average", []), os.getloadavg()
    lines.append(
        "load avg : start " + " ".join(f"{x:.2f}" for x in start)
        + ", end " + " ".join(f"{x:.2f}" for x in end)
        + " (1, 5, 15 min; other work on the machine slows every figure)"
    )  # fmt: skip
    layout = (results.get("load-forced") or {}).get("layout")
    if layout:
        lines.append(
            f"store    : hsc_forced partition files in row groups of {layout['row_group_rows']:,}"
            f" rows, data pages of {_page(layout.get('page_bytes'))}, Parquet page index "
            f"{'written' if layout['page_index'] else 'not written'}"
        )
    area = len(footprint_tiles()) * TILE_DEG**2
    lines.append(
        f"data     : N = {cfg['rows']:,} forced rows x 116 columns in "
        f"{len(gen.get('forced_files', []))} Parquet file(s) ({cfg['layout']} layout, "
        f"<= {cfg['file_rows']:,} rows each, {gen.get('input_bytes', 0) / 2**20:,.0f} MiB); "
        f"{gen.get('specz_rows', 0):,} spec-z rows in {len(gen.get('specz_files', []))} file(s)"
    )
    lines.append(
        f"footprint: {len(FIELDS)} HSC-Wide-like fields, {len(footprint_tiles())} tiles of "
        f"~{TILE_DEG:g} deg^2 (~{area:.0f} deg^2); partition threshold {cfg['max_rows']:,} rows"
    )
    lines.append(
        "memory   : 'peak RSS' = ru_maxrss of the phase's own process; 'tree RSS' = peak of "
        "the summed RSS of the phase process and its children (sampled at 10 Hz)"
    )
    lines.append("")
    head = f"{'phase':<52}{'rows':>12}{'wall s':>9}{'rows/s':>12}{'peak RSS':>10}{'tree RSS':>10}"
    lines.append(head + "  notes")
    lines.append("-" * (len(head) + 30))

    def row(label: str, r: dict | None, note: str = "", seconds_key: str = "seconds") -> None:
        if r is None:
            lines.append(f"{label:<52}{'FAILED or skipped':>51}")
            return
        s = r[seconds_key]
        lines.append(
            f"{label:<52}{r['rows']:>12,}{s:>9.2f}{_rate(r['rows'], s):>12}"
            f"{_mib(r.get('ru_maxrss_kib')):>10}"
            f"{_mib(r.get('tree_rss_peak_bytes'), 'bytes'):>10}  {note}"
        )

    if gen:
        row(
            "generate inputs (not a benchmark)",
            gen,
            f"simulate_field on {gen['tiles']} tiles, 2 processes",
        )
    lf = results.get("load-forced")
    note = ""
    if lf:
        pf = lf["per_file_seconds"]
        orders = ", ".join(f"{n} at order {o}" for o, n in lf["partition_orders"].items())
        note = f"{lf['partitions']} partitions ({orders}); {lf['catalog_bytes'] / 2**20:,.0f} MiB"
        if len(pf) > 1:
            note += f"; per file {pf[0]:.1f}s first .. {pf[-1]:.1f}s last"
        if lf["rows"] != cfg["rows"]:
            note += f"; STORED {lf['rows']:,} != N"
    row("Warehouse.load('hsc-forced', files)", lf, note)
    ls = results.get("load-specz")
    row(
        "Warehouse.load('hsc-specz', files)",
        ls,
        f"{ls['partitions']} partitions; rebuilds views" if ls else "",
    )
    hi = results.get("hats-import")
    if "hats-import" in results:
        note = ""
        if hi:
            orders = ", ".join(f"{n} at order {o}" for o, n in hi["partition_orders"].items())
            note = (
                f"2 dask workers; wall incl. cluster start/stop; pipeline alone "
                f"{hi['pipeline_seconds']:.1f}s = {_rate(hi['rows'], hi['pipeline_seconds'])} "
                f"rows/s; {hi['partitions']} partitions ({orders})"
            )
        row("hats-import pipeline_with_client (peer)", hi, note)
    for key, label in (("pyarrow-dict-on", "on"), ("pyarrow-dict-off", "off (strings only)")):
        if key in results:
            r = results[key]
            note = (
                f"write time only (read {r['read_seconds']:.1f}s excluded); snappy; "
                f"{r['bytes'] / 2**20:,.0f} MiB"
                if r
                else ""
            )
            row(f"pyarrow write, 1 file, dictionary {label}", r, note)
    if any(k.startswith("ml-") for k in results):
        lines.append("")
        lines.append(
            f"{'query (DuckDB, read-only)':<52}{'rows':>12}{'median s':>9}{'first s':>12}"
            f"{'peak RSS':>10}{'tree RSS':>10}  notes"
        )
        lines.append("-" * (len(head) + 30))

    def qrow(label: str, r: dict | None, note: str) -> None:
        if r is None:
            lines.append(f"{label:<52}{'FAILED or skipped':>51}")
            return
        lines.append(
            f"{label:<52}{r['rows']:>12,}{r['seconds']:>9.2f}{r['first_seconds']:>12.2f}"
            f"{_mib(r.get('ru_maxrss_kib')):>10}"
            f"{_mib(r.get('tree_rss_peak_bytes'), 'bytes'):>10}  {note}"
        )

    rep = cfg["repeat"]
    if "ml-count" in results:
        qrow(
            "select count(*) from ml_objects",
            results.get("ml-count"),
            f"median of {rep} on one connection",
        )
    if "ml-hash" in results:
        mh = results.get("ml-hash")
        qrow(
            "select count(*), sum(hash(ml)) ml_objects",
            mh,
            f"every column of every row hashed in DuckDB ({mh['columns']} columns); median of {rep}"
            if mh
            else "",
        )
    if "ml-arrow" in results:
        ma = results.get("ml-arrow")
        qrow(
            "Warehouse.query('select * from ml_objects')",
            ma,
            f"to one Arrow table: {ma['columns']} columns, {ma['arrow_bytes'] / 2**20:,.0f} MiB; "
            f"median of {rep}"
            if ma
            else "",
        )
    cone_methods: dict = {}
    lsdb_open = None
    for key in ("cone", "cone-lsdb"):
        r = results.get(key)
        if r:
            cone_methods.update(r["methods"])
            lsdb_open = r.get("open_seconds", lsdb_open)
        elif key in results:
            cone_methods[f"{key} FAILED"] = None
    if cone_methods:
        n_pos = len(cfg["cone_positions"])
        lines.append("")
        title = f"cone search, warm, {n_pos} random positions (ms)"
        lines.append(
            f"{title:<52}"
            + "".join(f"{'median ' + format(r, 'g') + chr(34):>14}{'p90':>8}" for r in CONE_RADII)
            + "  rows found (sum over positions)"
        )
        lines.append("-" * (len(head) + 30))
        for name, res in cone_methods.items():
            if res is None:
                lines.append(f"{name:<52}{'FAILED':>14}")
                continue
            cells, found = "", []
            for radius in CONE_RADII:
                t = sorted(res[str(radius)]["times"])
                p90 = t[min(len(t) - 1, math.ceil(0.9 * len(t)) - 1)]
                cells += f"{statistics.median(t) * 1000:>14.1f}{p90 * 1000:>8.1f}"
                found.append(f"{res[str(radius)]['rows']:,}")
            lines.append(f"{name:<52}{cells}  {' / '.join(found)}")
        counts = {
            tuple(res[str(r)]["rows"] for r in CONE_RADII)
            for res in cone_methods.values()
            if res is not None
        }
        lines.append(
            "rows found agree across methods: "
            + ("yes" if len(counts) == 1 else f"NO {sorted(counts)}")
            + (f"; lsdb.open_catalog took {lsdb_open:.2f} s" if lsdb_open is not None else "")
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=(
            "Benchmark the core warehouse (load, ml_objects, cone) on a SIMULATED HSC-like "
            "catalog, with hats-import, lsdb and plain pyarrow as peers. Prints figures."
        )
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="forced rows (default 1M)")
    parser.add_argument(
        "--specz-fraction",
        type=float,
        default=0.15,
        help="fraction of objects given a spec-z entry (default 0.15; duplicates add ~5%%)",
    )
    parser.add_argument(
        "--file-rows", type=int, default=1_000_000, help="max rows per input Parquet file"
    )
    parser.add_argument(
        "--layout",
        choices=("sky", "mixed"),
        default="sky",
        help="sky: each input file covers a contiguous part of the footprint, as exports by "
        "region or object_id range do (default); mixed: every file holds rows from everywhere",
    )
    parser.add_argument("--cones", type=int, default=20, help="cone positions (default 20)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each ml_objects query")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--skip",
        default="",
        help=f"comma-separated phases to skip, from: {', '.join(SKIPPABLE)}",
    )
    parser.add_argument(
        "--tmp", default="/tmp", help="folder in which the temp dir is made (default /tmp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir at the end")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    Path(args.tmp).mkdir(parents=True, exist_ok=True)  # a new folder given as --tmp

    if args.phase:
        run_phase_in_child(args.phase, Path(args.work))
        return 0

    n_tiles = len(footprint_tiles())
    if args.rows < 10 * n_tiles:
        parser.error(f"--rows must be at least {10 * n_tiles} (10 per footprint tile)")
    if not 0.0 <= args.specz_fraction <= 1.0:
        parser.error("--specz-fraction must be between 0 and 1")
    if args.file_rows < ROW_GROUP:
        parser.error(f"--file-rows must be at least {ROW_GROUP:,}")
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(SKIPPABLE):
        parser.error(f"--skip: unknown {sorted(skip - set(SKIPPABLE))}; choose from {SKIPPABLE}")

    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    work = Path(tempfile.mkdtemp(prefix="gwh-bench-core-", dir=args.tmp))
    (work / "results").mkdir()
    (work / "logs").mkdir()
    from warehouse.config import Config

    cfg = {
        "rows": args.rows,
        "specz_fraction": args.specz_fraction,
        "file_rows": args.file_rows,
        "layout": args.layout,
        "repeat": max(1, args.repeat),
        "seed": args.seed,
        "max_rows": Config.default().max_rows_per_partition,
        "cone_positions": cone_positions(args.cones, args.seed),
    }
    (work / "config.json").write_text(json.dumps(cfg))
    info = machine_info()
    print(f"bench_core: working in {work}", file=sys.stderr)

    def importable(module: str) -> bool:
        import importlib.util

        return importlib.util.find_spec(module) is not None

    plan = ["generate", "load-forced", "load-specz"]
    plan += [] if "ml" in skip else ["ml-count", "ml-hash"]
    plan += [] if skip & {"ml", "ml-arrow"} else ["ml-arrow"]
    plan += [] if "cone" in skip else ["cone"]
    if "lsdb" not in skip and "cone" not in skip:
        if importable("lsdb"):
            plan.append("cone-lsdb")
        else:
            print("  lsdb is not importable: no lsdb cone search", file=sys.stderr)
    if "hats-import" not in skip:
        if importable("hats_import"):
            plan.append("hats-import")
        else:
            print("  hats_import is not importable: no hats-import peer", file=sys.stderr)
    plan += [] if "pyarrow" in skip else ["pyarrow-dict-on", "pyarrow-dict-off"]

    results: dict[str, dict | None] = {}
    try:
        for name in plan:
            if name != "generate" and results.get("generate") is None:
                break
            if name.startswith(("ml-", "cone", "load-specz")) and not results.get("load-forced"):
                results[name] = None
                continue
            results[name] = run_phase(name, work)
            if name == "hats-import":
                shutil.rmtree(work / "hats_import_out", ignore_errors=True)
                shutil.rmtree(work / "hats_import_tmp", ignore_errors=True)
        text = report(cfg, info, results, command)
        print(text)
        if args.json:
            Path(args.json).write_text(
                json.dumps({"command": command, "machine": info, "config": cfg, "results": results})
            )
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
