"""The ``morphology`` table: GalaxiesML Table 1 per band, measured from the stored cutouts.

One row per object, keyed by ``object_id``, at its cutout (= ``hsc_forced``) position, so it sits
in the same HEALPix pixels as its catalog and cutout rows. Columns
(:func:`~warehouse.morphology.fields.morphology_schema`, the one place they are named):

* per band ``b``: ``{b}_<field>`` for every :data:`~warehouse.morphology.fields.MORPHOLOGY_FIELDS`
  (unit and description in each Parquet field's metadata, ``unit`` / ``description``), and
  ``{b}_morph_reason``: NULL when every field was measured, else why some are NULL (no cutout
  in the band, no detection, a fit that failed, no zeropoint ...). Nothing is invented: a value
  that cannot be measured is NULL.
* ``morphology_source``: ``measured`` (``gwh morphology measure``) or ``loaded:<file name>``
  (``gwh load morphology``); ``morph_config_hash``: the :class:`DetectionConfig`, algorithm and
  ``sep`` version of the last measurement (NULL for loaded rows).
* hidden from SQL, per band: ``{b}_morph_key``, a hash of the configuration and that band's
  stored cutout (source, shape, zeropoint, pixel scale, masked fraction, centre offset). A band
  whose key matches is up to date.

Measured and loaded rows share the table. A loaded row replaces the whole row of its object
(every band, columns its file lacks become NULL). ``gwh morphology measure`` leaves loaded rows
alone unless ``replace_loaded``; it measures an object again when any requested band's key
changed (another configuration, or a cutout ingested again), and writes the requested bands'
columns only, keeping the other bands' values.

Measurement: the pixels of the objects to measure are streamed from each cutouts partition file
once, in small record batches, and sent to the workers a few objects at a time; each runs
:func:`~warehouse.morphology.measure.measure_band` per band, with the HSC mask reduced to
:data:`~warehouse.images.masks.DEFAULT_BAD_MASK_BITS` and the variance plane. Tasks run in a
``ProcessPoolExecutor`` (workers forked from a forkserver); results are committed every
``chunk_size`` objects as a new table version, so a killed run keeps every finished chunk and a
rerun resumes.

Examples
--------
>>> report = measure_morphology(wh, bands="grizy", workers=2)  # doctest: +SKIP
>>> wh.query("select i_sersic_index, i_morph_reason from ml_objects")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import sep

from warehouse.compute.cluster import (
    check_address,
    dask_client,
    n_workers,
    resolve_address,
)
from warehouse.compute.morphology import measure_on_dask
from warehouse.config import too_many_processes
from warehouse.core import Warehouse
from warehouse.db import quote_ident
from warehouse.errors import MorphologyError
from warehouse.files import short_hash
from warehouse.images.bands import comma_bands
from warehouse.images.masks import DEFAULT_BAD_MASK_BITS, mask_bits_value
from warehouse.loading import Prepared, PreparedBatch
from warehouse.morphology.detect import DetectionConfig
from warehouse.morphology.fields import (
    LOADED_PREFIX,
    MORPHOLOGY_FIELDS,
    SOURCE_MEASURED,
    morphology_schema,
)
from warehouse.morphology.worker import PIXEL_COLUMNS, Job, measure_rows, watch_parent
from warehouse.progress import bar as progress_bar
from warehouse.progress import enabled as progress_enabled
from warehouse.store.contracts import MORPHOLOGY

__all__ = [
    "MeasureReport",
    "band_key",
    "config_hash",
    "measure_morphology",
]

LOADER_NAME = "morphology-measure"
ALGORITHM_VERSION = 2
"""Bump when warehouse.morphology changes what it measures: every object is measured again.

2: the Sersic fit by its own Levenberg-Marquardt loop (n differs from version 1 by < 1e-3)."""

# Cutout columns a band's key depends on (metadata; the pixels are not read to decide).
_KEY_COLUMNS = (
    "source",
    "height",
    "width",
    "zeropoint",
    "pixel_scale",
    "masked_fraction",
    "center_offset_arcsec",
    "simulated",
)


def config_hash(config: DetectionConfig) -> str:
    """16 hex digits naming the configuration, algorithm version and ``sep`` version.

    >>> config_hash(DetectionConfig()) == config_hash(DetectionConfig())
    True
    >>> config_hash(DetectionConfig()) == config_hash(DetectionConfig(detect_thresh=1.5))
    False
    """
    text = json.dumps(
        {
            "config": dataclasses.asdict(config),
            "algorithm": ALGORITHM_VERSION,
            "sep": sep.__version__,
        },
        sort_keys=True,
    )
    return short_hash(text)


def band_key(chash: str, band: str, meta: dict[str, Any] | None) -> str:
    """Hash of the configuration and one band's stored cutout metadata (None: no cutout)."""
    values = None if meta is None else [meta.get(k) for k in _KEY_COLUMNS]
    text = json.dumps([chash, band, values], sort_keys=True, default=repr)
    return short_hash(text)


# --------------------------------------------------------------------------- the run


@dataclass
class MeasureReport:
    """What :func:`measure_morphology` did."""

    bands: tuple[str, ...] = ()
    config_hash: str = ""
    objects: int = 0  # objects with cutouts
    measured: int = 0
    up_to_date: int = 0  # skipped: same configuration and cutouts
    loaded_kept: int = 0  # skipped: a loaded row (replace_loaded=False)
    band_failures: int = 0  # band measurements with a reason
    commits: int = 0
    workers: int = 0
    seconds: float = 0.0
    table_rows: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # most common reasons

    def summary(self) -> str:
        """What ``gwh morphology measure`` prints: the totals, then the five commonest reasons."""
        rate = self.measured / self.seconds if self.seconds else 0.0
        head = (
            f"morphology: measured {self.measured:,} of {self.objects:,} object(s) with cutouts "
            f"(bands {''.join(self.bands)}, config {self.config_hash}) in {self.seconds:.1f} s "
            f"({rate:.1f} galaxies/s, {self.workers} worker(s), {self.commits} commit(s)); "
            f"{self.up_to_date:,} up to date, {self.loaded_kept:,} loaded kept; "
            f"{self.band_failures:,} band measurement(s) with NULLs and a reason"
        )
        common = sorted(self.reasons.items(), key=lambda kv: -kv[1])[:5]
        return "\n".join([head] + [f"  {n:>7,}  {reason}" for reason, n in common])


def _parse_bands(bands: str | Sequence[str] | None, configured: Sequence[str]) -> tuple[str, ...]:
    if bands is None:
        return tuple(configured)
    if isinstance(bands, str):
        try:
            items = comma_bands(bands) if "," in bands else list(bands)
        except ValueError as exc:
            raise MorphologyError(str(exc)) from None
    else:
        items = list(bands)
        if not all(isinstance(b, str) and b.strip() for b in items):  # dropped, unsaid
            raise MorphologyError(
                f"bands {items!r} has an empty or non-text band name; give names such as "
                f"{list(configured)!r}."
            )
    unknown = [b for b in items if b not in configured]
    if unknown or not items:
        raise MorphologyError(
            f"bands {','.join(unknown) or '(none)'}: choose among the configured bands "
            f"{''.join(configured)} (e.g. --bands {''.join(configured)})."
        )
    if len(set(items)) != len(items):
        raise MorphologyError(f"--bands lists a band twice: {''.join(items)}")
    return tuple(b for b in configured if b in items)


def _stored_state(wh: Warehouse, bands: Sequence[str]) -> dict[int, dict[str, Any]]:
    """object_id -> morphology_source and {b}_morph_key of the stored rows."""
    mv = wh.current_version(MORPHOLOGY.name)
    if mv is None or mv.nrows == 0:
        return {}
    names = set(mv.schema.names)
    columns = ["object_id", "morphology_source"] + [
        f"{b}_morph_key" for b in bands if f"{b}_morph_key" in names
    ]
    tables = [pq.read_table(f, columns=columns) for f in mv.files()]
    out = {}
    for t in tables:
        for r in t.to_pylist():
            out[r["object_id"]] = r
    return out


def measure_morphology(
    wh: Warehouse,
    *,
    bands: str | Sequence[str] | None = None,
    workers: int | None = None,
    config: DetectionConfig | None = None,
    chunk_size: int = 1000,
    replace_loaded: bool = False,
    progress: bool | None = None,
    dask: str | None = None,
    echo: Callable[[str], None] = lambda _m: None,
) -> MeasureReport:
    """Measure every ingested cutout into the ``morphology`` table; resumable.

    Parameters
    ----------
    wh : Warehouse
    bands : str or sequence of str, optional
        Bands to measure (``"grizy"``, ``"g,r"``); default every configured band.
    workers : int, optional
        Worker processes (default ``os.cpu_count()``); 1 measures in this process.
    config : DetectionConfig, optional
        Detection and measurement settings; default the GalaxiesML configuration.
    chunk_size : int
        Objects per commit: each chunk becomes a new version of ``morphology``, so a killed run
        keeps the chunks it finished.
    replace_loaded : bool
        Measure objects whose row was loaded by ``gwh load morphology`` too (default: keep them).
    progress : bool, optional
        A tqdm bar on stderr; default when stderr is a terminal.
    dask : str, optional
        Measure on a Dask cluster (``local:N`` or a scheduler address; default
        ``$GWH_DASK_SCHEDULER``, else ``[compute] dask``): each worker reads and measures whole
        cutouts partitions (:mod:`warehouse.compute.morphology`); ``workers`` is then unused.

    Returns
    -------
    MeasureReport
    """
    t0 = time.perf_counter()
    config = DetectionConfig() if config is None else config
    if chunk_size < 1:
        raise MorphologyError(f"chunk size must be at least 1, got {chunk_size}")
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise MorphologyError(f"--workers must be at least 1, got {workers}")
    if too_many := too_many_processes("--workers", workers):  # one process per worker
        raise MorphologyError(too_many)
    measured_bands = _parse_bands(bands, wh.config.bands)
    address = resolve_address(dask, wh.config.dask)
    if address is not None:
        check_address(address)  # a malformed --dask fails even when nothing is left to do
    cv = wh.current_version("cutouts")
    if cv is None or cv.nrows == 0:
        raise MorphologyError(
            "no cutouts have been ingested yet: morphology is measured on them. Run "
            "`gwh cutouts ingest FILE` (or `gwh fetch hsc-cutouts`) first."
        )
    chash = config_hash(config)
    report = MeasureReport(bands=measured_bands, config_hash=chash)

    # Which objects need measuring: their bands' keys from the cutouts metadata (the view, no
    # pixels read) against the stored keys.
    names = set(cv.schema.names)
    meta_cols = [f"{b}_{k}" for b in measured_bands for k in _KEY_COLUMNS if f"{b}_{k}" in names]
    columns = ["object_id", "ra", "dec", "_healpix_29"] + meta_cols
    select = ", ".join(quote_ident(c) for c in columns)
    cutouts = wh.query(f"SELECT {select} FROM cutouts ORDER BY _healpix_29, object_id").to_pylist()
    stored = _stored_state(wh, measured_bands)
    todo: list[dict[str, Any]] = []
    for row in cutouts:
        keys = {}
        for b in measured_bands:
            present = row.get(f"{b}_height") is not None
            meta = {k: row.get(f"{b}_{k}") for k in _KEY_COLUMNS} if present else None
            keys[b] = band_key(chash, b, meta)
        row["keys"] = keys
        old = stored.get(row["object_id"])
        if old is not None and str(old.get("morphology_source") or "").startswith(LOADED_PREFIX):
            if not replace_loaded:
                report.loaded_kept += 1
                continue
            row["replaces_loaded"] = True
        elif old is not None and all(old.get(f"{b}_morph_key") == keys[b] for b in keys):
            report.up_to_date += 1
            continue
        todo.append(row)
    report.objects = len(cutouts)
    if not todo:
        report.seconds = time.perf_counter() - t0
        return report

    # Work: per cutouts partition, the objects to measure. The pixels are streamed from each
    # partition file once, in small record batches, and sent to the workers a few objects at a
    # time (a worker reading its own rows would decode the whole partition file every time).
    by_id = {r["object_id"]: r for r in todo}
    h29 = np.array([r["_healpix_29"] for r in todo], dtype=np.int64)
    ids = np.array([r["object_id"] for r in todo], dtype=np.int64)
    plan: list[tuple[str, set[int]]] = []
    for part in cv.partitions:
        lo, hi = part.h29_range()
        inside = set(ids[(h29 >= lo) & (h29 < hi)].tolist())
        if inside:
            plan.append((str(cv.path / part.relpath), inside))
    per_task = max(1, min(16, math.ceil(len(todo) / (4 * workers))))
    workers = min(workers, math.ceil(len(todo) / per_task))
    report.workers = workers
    show = progress_enabled(progress)
    where = f"with {workers} worker(s)" if address is None else "on Dask"
    echo(
        f"measuring {len(todo):,} object(s) x {len(measured_bands)} band(s) "
        f"({''.join(measured_bands)}) {where}; {report.up_to_date:,} up to date"
        + (f", {report.loaded_kept:,} loaded rows kept" if report.loaded_kept else "")
    )
    job = Job(measured_bands, config, mask_bits_value(DEFAULT_BAD_MASK_BITS))
    with contextlib.ExitStack() as stack:
        if address is None:
            results = _results(_tasks(plan, measured_bands, per_task), job, workers)
        else:
            client = stack.enter_context(dask_client(address))
            report.workers = n_workers(client)
            echo(f"on the Dask cluster {address} ({report.workers} worker thread(s))")
            results = measure_on_dask(client, plan, job)
        batches = _batches(wh, results, len(todo), by_id, chash, chunk_size, report, show)
        committed = wh.ingest_prepared(LOADER_NAME, batches)
    report.commits = len(committed)
    if committed:
        report.table_rows = committed[-1].tables[MORPHOLOGY.name][1]
    report.seconds = time.perf_counter() - t0
    return report


def _tasks(
    plan: list[tuple[str, set[int]]], bands: tuple[str, ...], per_task: int
) -> Iterator[list[dict[str, Any]]]:
    """Stored cutout rows (pixel columns of ``bands``) of the planned objects, ``per_task`` at
    a time, each partition file read once in record batches."""
    buffer: list[dict[str, Any]] = []
    for path, wanted in plan:
        pf = pq.ParquetFile(path)
        names = set(pf.schema_arrow.names)
        columns = ["object_id"] + [
            f"{b}_{w}" for b in bands for w in PIXEL_COLUMNS if f"{b}_{w}" in names
        ]
        for batch in pf.iter_batches(batch_size=64, columns=columns):
            oid = batch.column(0).to_numpy()
            for i in np.flatnonzero(np.isin(oid, list(wanted))):
                buffer.append({c: batch.column(k)[i].as_py() for k, c in enumerate(columns)})
                if len(buffer) >= per_task:
                    yield buffer
                    buffer = []
    if buffer:
        yield buffer


def _results(
    tasks: Iterator[list[dict[str, Any]]], job: Job, workers: int
) -> Iterator[list[dict[str, Any]]]:
    """Measured rows of each task as it finishes; in this process when ``workers`` is 1."""
    if workers <= 1:
        for rows in tasks:
            yield measure_rows(rows, job)
        return
    # forkserver: workers fork from a clean single-threaded server that imported the worker
    # module once (a plain fork would inherit DuckDB's and Arrow's threads and locks mid-flight;
    # spawn would import numpy, scipy and pyarrow again in every worker).
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["warehouse.morphology.worker"])
    # the workers end themselves when this process ends, even by kill -9 (no orphans)
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=watch_parent, initargs=(os.getpid(),)
    )
    clean = False
    try:
        pending = set()
        for rows in tasks:  # at most 2 tasks per worker in flight: memory stays bounded
            pending.add(pool.submit(measure_rows, rows, job))
            if len(pending) >= 2 * workers:
                break
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                try:
                    measured = fut.result()
                except BrokenProcessPool as exc:
                    raise MorphologyError(
                        f"a morphology worker died ({exc}); the chunks committed so far are kept. "
                        "Rerun `gwh morphology measure` to resume (try --workers 1 to see why)."
                    ) from None
                nxt = next(tasks, None)
                if nxt is not None:
                    pending.add(pool.submit(measure_rows, nxt, job))
                yield measured
        clean = True
    finally:
        pool.shutdown(wait=clean, cancel_futures=True)


def _batches(
    wh: Warehouse,
    results: Iterator[list[dict[str, Any]]],
    total: int,
    by_id: dict[int, dict[str, Any]],
    chash: str,
    chunk_size: int,
    report: MeasureReport,
    show_progress: bool,
) -> Iterator[PreparedBatch]:
    """Prepared chunks of measured rows, committed one by one by ``ingest_prepared``."""
    # Rows replacing a loaded row carry every configured band (the others NULL), so that no
    # row mixes loaded and measured values; the rest carry the measured bands only.
    bands = report.bands
    groups: dict[bool, list[dict[str, Any]]] = {False: [], True: []}
    bar = progress_bar(total, unit="galaxy", desc="morphology", progress=show_progress)
    try:
        for rows in results:
            bar.update(len(rows))
            for row in rows:
                src = by_id[row["object_id"]]
                full = bool(src.get("replaces_loaded"))
                groups[full].append(_complete(row, src, bands, wh.config.bands, chash, full))
                for b in bands:
                    reason = row[f"{b}_morph_reason"]
                    if reason is not None:
                        report.band_failures += 1
                        first = reason.split(";")[0].split(":")[0]
                        report.reasons[first] = report.reasons.get(first, 0) + 1
            for full, pending in groups.items():
                while len(pending) >= chunk_size:  # commits of exactly chunk_size objects
                    chunk, pending = pending[:chunk_size], pending[chunk_size:]
                    groups[full] = pending
                    yield _batch(chunk, bands, wh.config.bands, full, chash, report)
        for full, pending in groups.items():
            if pending:
                yield _batch(pending, bands, wh.config.bands, full, chash, report)
    finally:
        bar.close()


def _complete(
    row: dict[str, Any],
    src: dict[str, Any],
    bands: tuple[str, ...],
    configured: Sequence[str],
    chash: str,
    full: bool,
) -> dict[str, Any]:
    out = dict(row)
    out["ra"], out["dec"] = src["ra"], src["dec"]
    out["morphology_source"] = SOURCE_MEASURED
    out["morph_config_hash"] = chash
    for b in bands:
        out[f"{b}_morph_key"] = src["keys"][b]
    if full:
        for b in configured:
            if b not in bands:
                for name in MORPHOLOGY_FIELDS:
                    out[f"{b}_{name}"] = None
                out[f"{b}_morph_reason"] = "not measured (band not requested)"
                out[f"{b}_morph_key"] = None
    return out


def _batch(
    rows: list[dict[str, Any]],
    bands: tuple[str, ...],
    configured: Sequence[str],
    full: bool,
    chash: str,
    report: MeasureReport,
) -> PreparedBatch:
    schema = morphology_schema(tuple(configured) if full else bands)
    table = pa.Table.from_pylist(rows, schema=schema)
    report.measured += len(rows)
    label = f"morphology of {len(rows):,} object(s), bands {''.join(bands)}"
    # gwh_loads records what was measured: the command, and a digest of config and objects.
    digest = hashlib.sha256(chash.encode())
    digest.update(np.asarray(table.column("object_id"), dtype=np.int64).tobytes())
    what = f"gwh morphology measure --bands {''.join(bands)} (config {chash})"
    return PreparedBatch(
        label, [Prepared(MORPHOLOGY, table)], ((what, digest.hexdigest(), len(rows)),)
    )
