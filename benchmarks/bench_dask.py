"""``--dask local:1`` vs ``local:2``: views per partition, gwh load, gwh export, gwh morphology.

Data are SIMULATED: a field of ``--objects`` HSC-like objects (loaders.simulated) loaded with
partitions of ``--objects / 4`` rows, and ``--galaxies`` rendered Sersic galaxies (5 bands,
127x127, HSC-level noise) ingested as cutouts in partitions of ``--galaxies / 8`` rows.

Figures printed, nothing asserted:

* views: every row of ``ml_objects`` into Arrow, on one machine (one DuckDB query: the peer) and
  split by partition on ``local:1`` and ``local:2`` (plan + spec-z group check + rows; cluster
  start-up reported apart); the ceiling is ``local:1`` x workers;
* load: ``gwh load hsc-forced`` of one SIMULATED file of ``--load-rows`` rows (partitions of
  ``--load-rows / 16``) into an empty warehouse, on one machine (the peer) and with ``--dask``
  on a running ``local:1`` / ``local:2`` cluster (the file is read and spilled here, the
  partitions written by the workers; cluster start-up reported apart), with the SHA-256 of every
  written file against the single-machine load;
* export: ``gwh export`` of ``ml_objects`` (64x64 images, missing bands allowed) on one machine (the
  peer) and with ``--dask local:1`` / ``local:2`` (rows per partition on the workers, pixels and
  writing here), with the SHA-256 of each file against the single-machine one;
* morphology: ``gwh morphology measure`` with ``--workers 1`` and ``--workers 2`` (the peers)
  and with ``--dask local:1`` / ``local:2`` on copies of the same warehouse, galaxies per second
  end to end (cluster start-up included, it is part of a run); the ceiling is the in-process
  per-object rate x workers.

On a shared 2-core machine expect modest speed-ups. Run under the benchmark lock::

    flock /tmp/bench.lock python benchmarks/bench_dask.py                 # ~2 minutes
    flock /tmp/bench.lock python benchmarks/bench_dask.py --objects 100000 --galaxies 400
    flock /tmp/bench.lock python benchmarks/bench_dask.py --parts load,export --load-rows 1000000
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_morphology import BANDS, simulated_cutouts  # noqa: E402

from loaders import registry  # noqa: E402
from loaders.simulated.catalog import simulate_field  # noqa: E402
from warehouse.compute import ENV_VAR, dask_client, plan_partitions, view_rows  # noqa: E402
from warehouse.config import Config  # noqa: E402
from warehouse.core import Warehouse  # noqa: E402
from warehouse.cutouts import ingest_arrays  # noqa: E402
from warehouse.export import ExportOptions, export_hdf5  # noqa: E402
from warehouse.images.masks import DEFAULT_BAD_MASK_BITS, mask_bits_value  # noqa: E402
from warehouse.morphology import DetectionConfig, measure_morphology  # noqa: E402
from warehouse.morphology.worker import Job, measure_rows  # noqa: E402
from warehouse.store.versions import without_time_properties  # noqa: E402


def build(folder: Path, objects: int, galaxies: int) -> Warehouse:
    field = simulate_field(objects, seed=11)
    paths = []
    for name, table in (("forced", field.forced), ("forced2", field.forced2)):
        paths.append(folder / f"simulated_{name}.parquet")
        pq.write_table(table, paths[-1])
    specz = folder / "simulated_specz.parquet"
    pq.write_table(field.specz, specz)
    config = Config(
        max_rows_per_partition=max(100, objects // 4),
        cutouts_max_rows_per_partition=max(8, galaxies // 8),
    )
    wh = Warehouse.init(folder / "wh", config)
    wh.load(registry.get("hsc-forced"), paths)
    wh.load(registry.get("hsc-specz"), [specz])
    ids = wh.query(f"SELECT object_id FROM ml_objects ORDER BY object_id LIMIT {galaxies}")
    cubes = simulated_cutouts(ids.num_rows, seed=3)
    images = {b: cubes[:, k] for k, b in enumerate(BANDS)}
    ingest_arrays(wh, ids.column(0).to_pylist(), images, simulated=True, source="bench")
    return wh


def bench_views(wh: Warehouse, workers: list[int]) -> None:
    t0 = time.perf_counter()
    want = wh.query("SELECT * FROM ml_objects")
    single = time.perf_counter() - t0
    n = want.num_rows
    print(
        f"views: ml_objects, {n:,} rows, {len(wh.current_version('hsc_forced').partitions)} "
        "partitions of hsc_forced"
    )
    print(f"  one machine (one DuckDB query)      {single:7.2f} s  {n / single:10,.0f} rows/s")
    base = None
    for k in workers:
        t0 = time.perf_counter()
        with dask_client(f"local:{k}") as client:
            started = time.perf_counter() - t0
            t1 = time.perf_counter()
            with wh.reading():
                plan = plan_partitions(wh)
                planned = time.perf_counter() - t1
                got = pa.concat_tables([rows for _, rows in view_rows(plan, "ml_objects", client)])
            took = time.perf_counter() - t1
        assert got.num_rows == n, (got.num_rows, n)
        base = base or took
        print(
            f"  --dask local:{k}  plan+check {planned:5.2f} s, total {took:7.2f} s "
            f"{n / took:10,.0f} rows/s  speed-up {base / took:4.2f} (ceiling {k}.00); "
            f"cluster start {started:.1f} s"
        )


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _catalog_digests(root: Path) -> dict[str, str]:
    out = {}
    for folder, dirs, names in os.walk(root / "catalogs"):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                data = path.read_bytes()
                if name == "hats.properties":  # written in another minute, maybe
                    data = without_time_properties(data)
                out[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def bench_load(rows: int, workers: list[int], scratch: Path) -> None:
    field = simulate_field(rows, seed=5)
    source = scratch / "load_forced.parquet"
    pq.write_table(field.forced, source)
    size = source.stat().st_size
    del field
    config = Config(max_rows_per_partition=max(1000, rows // 16))

    def load(label: str, address: str | None) -> tuple[float, dict[str, str], int]:
        root = scratch / f"load-{label}"
        wh = Warehouse.init(root, config)
        t0 = time.perf_counter()
        wh.load(registry.get("hsc-forced"), [source], dask=address)
        took = time.perf_counter() - t0
        parts = len(wh.current_version("hsc_forced").partitions)
        files = _catalog_digests(root)
        shutil.rmtree(root)
        return took, files, parts

    single, want, parts = load("here", None)
    print(
        f"load: hsc-forced, one SIMULATED file of {rows:,} rows ({size / 2**20:.0f} MiB), "
        f"{parts} partitions"
    )
    print(f"  one machine                         {single:7.2f} s  {rows / single:10,.0f} rows/s")
    base = None
    for k in workers:
        t0 = time.perf_counter()
        with dask_client(f"local:{k}") as client:
            started = time.perf_counter() - t0
            took, files, _ = load(f"dask{k}", client.scheduler.address)
        base = base or took
        same = "same bytes" if files == want else "DIFFERENT BYTES"
        print(
            f"  --dask local:{k}  {took:7.2f} s {rows / took:10,.0f} rows/s  speed-up "
            f"{base / took:4.2f} (ceiling {k}.00); cluster start {started:.1f} s; {same} "
            f"({len(files)} files)"
        )


def bench_export(wh: Warehouse, workers: list[int], scratch: Path) -> None:
    opts = ExportOptions(allow_missing_bands=True, size=64, mask=False, variance=False)
    t0 = time.perf_counter()
    one = export_hdf5(wh, scratch / "one.h5", options=opts, progress=False)
    single = time.perf_counter() - t0
    want = _sha(scratch / "one.h5")
    print(f"export: ml_objects, {one.rows:,} rows (size 64, missing bands allowed)")
    print(
        f"  one machine                         {single:7.2f} s  {one.rows / single:10,.0f} rows/s"
    )
    base = None
    for k in workers:
        t0 = time.perf_counter()
        with dask_client(f"local:{k}") as client:
            started = time.perf_counter() - t0
            t1 = time.perf_counter()
            out = scratch / f"dask{k}.h5"
            export_hdf5(wh, out, options=opts, progress=False, client=client)
            took = time.perf_counter() - t1
        base = base or took
        same = "same bytes" if _sha(out) == want else "DIFFERENT BYTES"
        print(
            f"  --dask local:{k}  {took:7.2f} s {one.rows / took:10,.0f} rows/s  speed-up "
            f"{base / took:4.2f} (ceiling {k}.00); cluster start {started:.1f} s; {same}"
        )


def bench_morphology(wh: Warehouse, workers: list[int], scratch: Path) -> None:
    cv = wh.current_version("cutouts")
    print(
        f"morphology: {cv.nrows} galaxies x {len(BANDS)} bands, {len(cv.partitions)} cutouts "
        "partitions"
    )
    job = Job(tuple(BANDS), DetectionConfig(), mask_bits_value(DEFAULT_BAD_MASK_BITS))
    rows = pq.read_table(cv.path / cv.partitions[0].relpath).to_pylist()[:16]
    t0 = time.perf_counter()
    measure_rows(rows, job)
    per_object = (time.perf_counter() - t0) / len(rows)
    print(f"  in process, per object (ceiling/worker) {1 / per_object:7.1f} galaxies/s")
    runs: list[tuple[str, dict]] = [(f"--workers {k}", {"workers": k}) for k in workers]
    runs += [(f"--dask local:{k}", {"dask": f"local:{k}"}) for k in workers]
    for label, kwargs in runs:
        copy = scratch / f"wh-{label.replace(' ', '').replace(':', '')}"
        shutil.copytree(wh.root, copy, symlinks=True)
        t0 = time.perf_counter()
        report = measure_morphology(Warehouse.open(copy), progress=False, **kwargs)
        took = time.perf_counter() - t0
        k = int(label.split()[-1].split(":")[-1])
        print(
            f"  {label:<18} {report.measured / took:7.1f} galaxies/s end to end "
            f"({report.measured} in {took:.1f} s, {report.commits} commit(s); ceiling "
            f"{k / per_object:.1f})"
        )
        shutil.rmtree(copy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=20_000, help="field size (20,000)")
    parser.add_argument("--galaxies", type=int, default=96, help="cutouts measured (96)")
    parser.add_argument("--workers", default="1,2", help="worker counts (1,2)")
    parser.add_argument("--load-rows", type=int, default=300_000, help="rows loaded (300,000)")
    parser.add_argument(
        "--parts", default="views,load,export,morphology", help="what to run (all four)"
    )
    args = parser.parse_args(argv)
    workers = [int(k) for k in args.workers.split(",")]
    parts = set(args.parts.split(","))
    os.environ.pop(ENV_VAR, None)  # "one machine" runs must not find a scheduler
    with tempfile.TemporaryDirectory() as tmp:
        if "load" in parts:
            bench_load(args.load_rows, workers, Path(tmp))
        if not parts & {"views", "export", "morphology"}:
            return 0
        t0 = time.perf_counter()
        wh = build(Path(tmp), args.objects, args.galaxies)
        print(f"built a SIMULATED warehouse in {time.perf_counter() - t0:.1f} s")
        if "views" in parts:
            bench_views(wh, workers)
        if "export" in parts:
            bench_export(wh, workers, Path(tmp))
        if "morphology" in parts:
            bench_morphology(wh, workers, Path(tmp))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
