"""``gwh serve`` benchmark: the overview of a 1 M-object warehouse and a gallery of 100 cutouts,
over real HTTP, with the HTTP floor of the same server (the ceiling) and the uncached work the
caches replace (the peers) measured in the same run.

Data: a SIMULATED HSC-like field (``loaders.simulated.catalog.simulate_field``: ``--objects``
objects, 80% with a spec-z entry) loaded through the real loaders, plus ``--images`` SIMULATED
5-band 119x119 cutouts (Gaussian galaxies at the catalog magnitudes over unit noise, a few masked
pixels) ingested with ``warehouse.cutouts.ingest_arrays``. Not real data. The warehouse is built
once under ``--work`` and reused by later runs.

Figures (wall time; median of ``--repeat`` runs where it says so):

- overview cold: the first ``GET /`` after the server starts (counts every view, quality rules,
  dedup, splits, redshift histograms; computed once per committed state);
- overview warm: ``GET /`` again (and ``/api/overview``);
- gallery cold: ``GET /gallery?per_page=100`` of a page never shown, then its 100 thumbnails
  fetched by 6 parallel connections (a browser's default per host);
- gallery warm: the same page and thumbnails again;
- ceiling: ``GET /static/style.css`` (the server's own floor per request), and 101 of them;
- prewarm: what ``gwh serve`` computes in the background when it starts, then the first
  visitor's overview and gallery page;
- peers: ``Warehouse.views()`` (what ``gwh views`` counts, uncached: the bulk of a cold overview),
  and the 100 cutouts read one by one with ``read_cutout`` and drawn into one PNG with
  ``preview.save_gallery_png`` (what ``gwh cutouts show`` / the demo's gallery do, with matplotlib).

Usage (wrap it in the shared lock so two benchmarks never run at once)::

    flock /tmp/bench.lock python benchmarks/bench_serve.py                # 1,000,000 objects
    flock /tmp/bench.lock python benchmarks/bench_serve.py --objects 100000 --images 200
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from loaders import registry  # noqa: E402
from loaders.simulated.catalog import simulate_field  # noqa: E402
from warehouse import __version__  # noqa: E402
from warehouse.config import Config  # noqa: E402
from warehouse.core import Warehouse  # noqa: E402
from warehouse.cutouts import ingest_arrays, read_cutout  # noqa: E402
from warehouse.images.masks import HSC_MASK_BITS  # noqa: E402
from warehouse.images.preview import save_gallery_png  # noqa: E402
from warehouse.web import open_site, start  # noqa: E402
from warehouse.web.server import prewarm  # noqa: E402

BANDS = ("g", "r", "i", "z", "y")
SIDE = 119
DONE = ".bench-serve-built"


def build(work: Path, n_objects: int, n_images: int) -> Path:
    """The SIMULATED warehouse at ``work/warehouse`` (reused when already built)."""
    root = work / "warehouse"
    if (work / DONE).exists():
        return root
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    field = simulate_field(n_objects, seed=20261129)
    paths = {}
    for name in ("forced", "forced2", "specz"):
        paths[name] = work / f"simulated_{name}.parquet"
        pq.write_table(getattr(field, name), paths[name])
    del field
    wh = Warehouse.init(root, Config(max_rows_per_partition=100_000))
    wh.load(registry.get("hsc-forced"), [paths["forced"], paths["forced2"]])
    wh.load(registry.get("hsc-specz"), [paths["specz"]])
    rows = wh.query(
        "SELECT object_id, g_cmodel_mag, r_cmodel_mag, i_cmodel_mag, z_cmodel_mag, y_cmodel_mag "
        "FROM ml_objects ORDER BY hash(object_id) LIMIT ?",
        [n_images],
    ).to_pylist()
    rng = np.random.default_rng(7)
    yy, xx = np.mgrid[:SIDE, :SIDE] - SIDE // 2
    images, masks = {}, {}
    for b in BANDS:
        cube = rng.normal(0.0, 1.0, (len(rows), SIDE, SIDE)).astype(np.float32)
        mask = np.zeros((len(rows), SIDE, SIDE), np.int32)
        for k, r in enumerate(rows):
            mag = r[f"{b}_cmodel_mag"] if np.isfinite(r[f"{b}_cmodel_mag"] or np.nan) else 25.0
            sigma = 2.0 + 3.0 * rng.random()
            peak = 10 ** (-0.4 * (mag - 27.0)) / (2 * np.pi * sigma**2)
            cube[k] += (peak * np.exp(-(xx**2 + yy**2) / (2 * sigma**2))).astype(np.float32)
            mask[k, rng.integers(0, SIDE, 20), rng.integers(0, SIDE, 20)] = 1 << HSC_MASK_BITS["CR"]
        images[b], masks[b] = cube, mask
    ingest_arrays(
        wh,
        [r["object_id"] for r in rows],
        images,
        mask=masks,
        simulated=True,
        source="bench_serve SIMULATED Gaussian galaxies",
    )
    (work / DONE).write_text(f"built in {time.perf_counter() - t0:.0f} s\n")
    return root


def get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=600) as resp:
        return resp.read()


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median_of(fn, repeat: int) -> float:  # type: ignore[no-untyped-def]
    return statistics.median(timed(fn) for _ in range(repeat))


def gallery_page(base: str, page: int) -> int:
    """The page, then its thumbnails over 6 parallel connections; the number of thumbnails."""
    html = get(f"{base}gallery?per_page=100&page={page}").decode()
    srcs = [s.split('"', 1)[0] for s in html.split('<img src="')[1:]]
    with ThreadPoolExecutor(6) as pool:
        sizes = list(pool.map(lambda s: len(get(base + s.lstrip("/"))), srcs))
    assert all(sizes), "an empty thumbnail"
    return len(srcs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=1_000_000)
    parser.add_argument("--images", type=int, default=300, help="objects given cutouts (>= 200)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--work", type=Path, default=None, help="default /tmp/gwh-bench-serve-N")
    args = parser.parse_args(argv)
    work = args.work or Path(tempfile.gettempdir()) / f"gwh-bench-serve-{args.objects}"
    t_build = time.perf_counter()
    root = build(work, args.objects, args.images)
    built = time.perf_counter() - t_build
    wh = Warehouse.open(root)
    n_ml = wh.query("SELECT count(*) FROM ml_objects").column(0)[0].as_py()
    n_cut = wh.query("SELECT count(*) FROM cutouts").column(0)[0].as_py()

    running = start(open_site(root))
    base = running.url
    try:
        cold = timed(lambda: get(base))
        warm = median_of(lambda: get(base), args.repeat)
        warm_api = median_of(lambda: get(base + "api/overview"), args.repeat)
        floor = median_of(lambda: get(base + "static/style.css"), args.repeat)
        floor_101 = timed(lambda: [get(base + "static/style.css") for _ in range(101)])
        shown = {}
        g_cold = timed(lambda: shown.setdefault(1, gallery_page(base, 1)))
        g_cold2 = timed(lambda: shown.setdefault(2, gallery_page(base, 2)))
        g_warm = median_of(lambda: gallery_page(base, 1), max(3, args.repeat // 4))
        sky = timed(lambda: get(base + "plot/sky.png?split=train"))
    finally:
        running.stop()

    # what `gwh serve` does at start: the same work in the background before the first visitor
    running = start(open_site(root))
    try:
        warming = timed(lambda: prewarm(running.site).join())
        first_after = timed(lambda: get(running.url))
        gallery_after = timed(lambda: gallery_page(running.url, 1))
    finally:
        running.stop()

    views = timed(wh.views)
    ids = wh.query("SELECT object_id FROM cutouts ORDER BY object_id LIMIT 100").column(0)
    ids = ids.to_pylist()

    def matplotlib_gallery() -> None:
        cuts = [read_cutout(wh, i) for i in ids]
        with tempfile.TemporaryDirectory() as tmp:
            save_gallery_png(
                [(c.images, str(c.object_id)) for c in cuts], BANDS, Path(tmp) / "g.png"
            )

    peer_gallery = timed(matplotlib_gallery)

    print(f"gwh serve benchmark  (galaxy-warehouse {__version__}; SIMULATED data, not real)")
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    machine = f"{platform.platform()}, {os.cpu_count()} CPUs, python {platform.python_version()}"
    print(f"machine: {machine}")
    print(
        f"warehouse: {root}  hsc_forced {args.objects:,} objects, ml_objects {n_ml:,}, "
        f"cutouts {n_cut:,} (5 x {SIDE}x{SIDE})  [build/reuse {built:.1f} s]"
    )
    print()
    print(f"{'figure':<66} {'seconds':>9}")
    rows = [
        ("overview cold (first GET / after start)", cold),
        (f"overview warm (GET /, median of {args.repeat})", warm),
        (f"overview JSON warm (GET /api/overview, median of {args.repeat})", warm_api),
        (f"gallery cold: page 1 + {shown[1]} thumbnails (6 connections)", g_cold),
        (f"gallery cold: page 2 + {shown[2]} thumbnails", g_cold2),
        ("gallery warm: page 1 + thumbnails again (median)", g_warm),
        ("sky density map of the train split, cold (PNG)", sky),
        ("gwh serve's background prewarm at start (overview, gallery 1, sky)", warming),
        ("  then the first GET / (after the prewarm)", first_after),
        ("  then gallery page 1 + 100 thumbnails (after the prewarm)", gallery_after),
        (f"ceiling: GET /static/style.css (median of {args.repeat})", floor),
        ("ceiling: 101 sequential GETs of /static/style.css", floor_101),
        ("peer: Warehouse.views() row counts, uncached (gwh views)", views),
        ("peer: 100 x read_cutout + save_gallery_png (matplotlib)", peer_gallery),
    ]
    for label, seconds in rows:
        print(f"{label:<66} {seconds:>9.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
