"""Throughput of warehouse.morphology.measure_object vs Source Extractor, one core.

Images are SIMULATED: rendered Sersic galaxies (n = 1 or 4, random size, shape and angle) in
127x127x5 (g, r, i, z, y) cutouts, plus Gaussian noise at the real HSC COSMOS per-band sky
levels (median sqrt(variance) of tests/data/morphology/hsc_cosmos_35.npz). Source Extractor is
started once per band image, as the GalaxiesML pipeline did, on the same images in the same run.

Rates are galaxies per second of wall-clock time and per second of this process's CPU time
(``time.process_time``): on a machine shared with other work the second is the cost per core.
``--warehouse`` also runs ``gwh morphology measure`` end to end (one worker) on the same cutouts
ingested into a scratch warehouse of a SIMULATED field: reading the stored cutouts, measuring
and committing the ``morphology`` table.

Usage::

    python benchmarks/bench_morphology.py            # 40 galaxies, well under 2 minutes
    python benchmarks/bench_morphology.py --n 200 --no-sextractor --warehouse
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from morphology_agreement import SEX_DIR, render_sersic  # noqa: E402

from warehouse.morphology import (  # noqa: E402
    DetectionConfig,
    measure_object,
    run_source_extractor,
)

BANDS = "grizy"
SIZE = 127


def simulated_cutouts(n: int, seed: int = 0) -> np.ndarray:
    """(n, 5, 127, 127) float32 simulated galaxies with HSC-level noise."""
    sky = np.sqrt(
        np.median(
            np.load(ROOT / "tests/data/morphology/hsc_cosmos_35.npz")["variance"], axis=(1, 2)
        )
    )
    rng = np.random.default_rng(seed)
    colour = np.array([0.4, 0.7, 1.0, 1.2, 1.3])  # flux ratios to i, a red galaxy
    out = np.empty((n, len(BANDS), SIZE, SIZE), dtype=np.float32)
    c = (SIZE - 1) / 2
    for k in range(n):
        sersic_n = rng.choice([1.0, 4.0])
        r_e, q, theta = rng.uniform(2, 8), rng.uniform(0.3, 1.0), rng.uniform(-90, 90)
        flux = 10 ** rng.uniform(1.5, 3.0)
        x0, y0 = c + rng.uniform(-1, 1), c + rng.uniform(-1, 1)
        base = render_sersic((SIZE, SIZE), x0, y0, 1.0, r_e, sersic_n, q, theta, oversample=3)
        for b in range(len(BANDS)):
            out[k, b] = flux * colour[b] * base + rng.normal(0, sky[b], (SIZE, SIZE))
    return out


def end_to_end(cubes: np.ndarray) -> None:
    """``measure_morphology`` with one worker on ``cubes`` stored in a scratch warehouse."""
    import pyarrow.parquet as pq

    from loaders import registry
    from loaders.simulated.catalog import simulate_field
    from warehouse.config import Config
    from warehouse.core import Warehouse
    from warehouse.cutouts import ingest_arrays
    from warehouse.morphology import measure_morphology

    n = len(cubes)
    with tempfile.TemporaryDirectory() as tmp:
        field = simulate_field(max(200, 2 * n))
        forced = Path(tmp) / "simulated_forced.parquet"
        pq.write_table(field.forced, forced)
        wh = Warehouse.init(Path(tmp) / "wh", Config())
        wh.load(registry.get("hsc-forced"), [forced])
        ids = wh.query(f"SELECT object_id FROM hsc_forced ORDER BY object_id LIMIT {n}")
        images = {b: cubes[:, k] for k, b in enumerate(BANDS)}
        ingest_arrays(wh, ids.column(0).to_pylist(), images, simulated=True, source="bench")
        c0 = time.process_time()
        report = measure_morphology(wh, workers=1, progress=False)
        cpu = time.process_time() - c0
    print(
        f"gwh morphology measure, 1 worker: {report.measured / report.seconds:7.1f} galaxies/s "
        f"end to end ({report.measured} objects x {len(report.bands)} bands in "
        f"{report.seconds:.2f} s, {report.commits} commit(s)); {report.measured / cpu:7.1f} "
        "galaxies per CPU-second"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=40, help="number of galaxies (default 40)")
    parser.add_argument("--no-sextractor", action="store_true")
    parser.add_argument(
        "--warehouse", action="store_true", help="also gwh morphology measure end to end"
    )
    args = parser.parse_args(argv)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    cubes = simulated_cutouts(args.n)
    print(f"{args.n} simulated galaxies, {len(BANDS)}x{SIZE}x{SIZE} cutouts, one core")

    measure_object(cubes[0], BANDS)  # warm-up
    t0, c0 = time.perf_counter(), time.process_time()
    failed = 0
    for cube in cubes:
        out = measure_object(cube, BANDS)
        failed += sum(out[f"{b}_morph_reason"] is not None for b in BANDS)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"sep measure_object: {args.n / dt:7.1f} galaxies/s  ({5 * args.n / dt:7.1f} band "
        f"images/s, {failed} band measurements with a reason); {args.n / cpu:7.1f} galaxies "
        "per CPU-second"
    )

    no_fit = DetectionConfig(fit_sersic=False)
    t0, c0 = time.perf_counter(), time.process_time()
    for cube in cubes:
        measure_object(cube, BANDS, config=no_fit)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        f"sep, no Sersic fit: {args.n / dt:7.1f} galaxies/s  ({5 * args.n / dt:7.1f} band "
        f"images/s); {args.n / cpu:7.1f} galaxies per CPU-second"
    )

    if args.warehouse:
        end_to_end(cubes)

    exe = shutil.which("source-extractor") or shutil.which("sex")
    if args.no_sextractor or exe is None:
        print("Source Extractor: skipped" + ("" if exe else " (not installed)"))
        return 0
    t0 = time.perf_counter()
    for cube in cubes:
        for band_image in cube:
            run_source_extractor(band_image, SEX_DIR, binary=exe)
    dt = time.perf_counter() - t0
    print(
        f"Source Extractor:   {args.n / dt:7.1f} galaxies/s  ({5 * args.n / dt:7.1f} band "
        f"images/s, one process per band image)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
