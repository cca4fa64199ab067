"""SDSS imaging cutouts (e.g. 40x40 px r band) for labelled objects, through astroquery.

For every object of a labels table (``galaxy_zoo`` by default: key, ra, dec, labels):

1. **Which frame.** SkyServer SQL through ``astroquery.sdss.SDSS.query_sql`` finds the
   photometric objects (``PhotoObj``: ra, dec, objid, run, rerun, camcol, field) in a small box
   around each position, for batches of objects; each object takes the nearest one within the
   match radius (ties: the smaller objid). The answer of each batch is cached.
2. **The frame.** ``SDSS.get_images`` downloads the corrected frame
   (``frame-<band>-<run>-<camcol>-<field>.fits.bz2`` from the Science Archive Server).
3. **The cutout.** A ``pixels`` x ``pixels`` WCS cutout (:func:`loaders.images.wcs_cutout`):
   the object's pixel on index ``pixels // 2``, pixel values (nanomaggies) copied unchanged,
   NaN outside the frame.

Work is kept frame by frame under ``ROOT/cache/sdss/``, so a rerun (after Ctrl-C, an outage or
with more objects) fetches only the frames of objects not done yet; then the table
``sdss_cutouts`` (key ``object_id``, the labels table's key) is loaded with the images in the
per-band column ``<band>_image`` and the label columns of the labels table.

SkyServer answers SQL synchronously: there is no remote job to cancel on Ctrl-C.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders.http import session as http
from loaders.http.astroquery import sdss_urls, with_retries
from loaders.http.session import RetryPolicy
from loaders.images import (
    FetchedTable,
    PartStore,
    band_fields,
    encode_image,
    image_rows,
    objects_of,
    stored_bands,
    wcs_cutout,
    work_rows,
)
from warehouse.config import ARCHIVE_DEFAULTS
from warehouse.errors import ArchiveError, CutoutError
from warehouse.files import (
    atomic_write_bytes,
    parquet_bytes,
    sha256_hex,
    values_hash,
    write_parquet_atomic,
)
from warehouse.store.contracts import SDSS_CUTOUTS

__all__ = [
    "SDSS_BANDS",
    "SDSS_CUTOUTS",
    "SdssResult",
    "decode_objid",
    "fetch_sdss_cutouts",
    "frame_lookup_sql",
    "sas_base_url",
]

log = logging.getLogger(__name__)

SDSS_BANDS = ("u", "g", "r", "i", "z")
SDSS_PIXEL_SCALE = 0.396
SDSS_NANOMAGGY_ZEROPOINT = 22.5
SAS_ENV = "GWH_SDSS_SAS_URL"
LOOKUP_COLUMNS = ("ra", "dec", "objid", "run", "rerun", "camcol", "field")


def sas_base_url(skyserver: str, config_value: str | None = None) -> str:
    """The Science Archive Server URL for frames.

    ``$GWH_SDSS_SAS_URL``, else a ``sdss_sas_url`` changed in ``warehouse.toml``, else
    ``<skyserver>/sas`` when SkyServer itself points at another host (a mirror or the test
    server), else https://data.sdss.org/sas.
    """
    default = ARCHIVE_DEFAULTS["sdss_sas_url"]
    url = os.environ.get(SAS_ENV) or (
        config_value if config_value and config_value != default else None
    )
    if url is None:
        url = default if skyserver == ARCHIVE_DEFAULTS["sdss_url"] else f"{skyserver}/sas"
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"SAS URL must start with http:// or https://, got {url!r}")
    return url.rstrip("/")


def decode_objid(objid: int) -> dict[str, int]:
    """run, rerun, camcol, field and id packed in an SDSS (DR8+) ``objid``.

    >>> decode_objid(1237653651835781245)["run"]
    1904
    """
    objid = int(objid)
    return {
        "run": (objid >> 32) & 0xFFFF,
        "rerun": (objid >> 48) & 0x7FF,
        "camcol": (objid >> 29) & 0x7,
        "field": (objid >> 16) & 0xFFF,
        "id": objid & 0xFFFF,
    }


def frame_lookup_sql(positions: Iterable[tuple[float, float]], radius_arcsec: float) -> str:
    """SkyServer SQL for the photometric objects in a box around each position.

    SkyServer's HTTP interface takes SQL text, not bound parameters; the numbers here are
    floats computed by this function (``repr``), never text from a user.
    """
    half = radius_arcsec / 3600.0
    boxes = []
    for ra, dec in positions:
        hw = min(half / max(math.cos(math.radians(dec)), 1e-6), 180.0)
        d1, d2 = max(dec - half, -90.0), min(dec + half, 90.0)
        spans = [(ra - hw, ra + hw)]
        if ra - hw < 0:
            spans = [(0.0, ra + hw), (ra - hw + 360.0, 360.0)]
        elif ra + hw >= 360:
            spans = [(ra - hw, 360.0), (0.0, ra + hw - 360.0)]
        for a, b in spans:
            boxes.append(f"(p.ra BETWEEN {a!r} AND {b!r} AND p.dec BETWEEN {d1!r} AND {d2!r})")
    if not boxes:
        raise ValueError("no positions")
    return (
        "SELECT p.ra, p.dec, p.objid, p.run, p.rerun, p.camcol, p.field "
        "FROM PhotoObj AS p WHERE " + " OR ".join(boxes)
    )


def _parse_lookup(text: str, what: str) -> pa.Table:
    """Rows of a SkyServer CSV answer (``#Table1`` line, header, rows); ids as int64."""
    if "error_message" in text.lower() or "<html" in text[:200].lower():
        raise ArchiveError(f"{what}: SkyServer answered an error: {' '.join(text[:300].split())}")
    lines = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    if not lines:
        return pa.table(
            {
                c: pa.array([], pa.float64() if c in ("ra", "dec") else pa.int64())
                for c in LOOKUP_COLUMNS
            }
        )
    header = [h.strip().lower() for h in lines[0].split(",")]
    missing = [c for c in LOOKUP_COLUMNS if c not in header]
    if missing:
        raise ArchiveError(f"{what}: SkyServer's answer lacks {', '.join(missing)} ({lines[0]!r})")
    cols: dict[str, list] = {c: [] for c in LOOKUP_COLUMNS}
    for line in lines[1:]:
        values = line.split(",")
        if len(values) != len(header):
            raise ArchiveError(f"{what}: malformed SkyServer row {line!r}")
        row = dict(zip(header, values, strict=True))
        for c in LOOKUP_COLUMNS:
            cols[c].append(float(row[c]) if c in ("ra", "dec") else int(row[c]))
    return pa.table(
        {
            c: pa.array(v, pa.float64() if c in ("ra", "dec") else pa.int64())
            for c, v in cols.items()
        }
    )


def _angular_sep_arcsec(ra1, dec1, ra2, dec2):  # type: ignore[no-untyped-def]
    r1, d1, r2, d2 = (np.radians(np.asarray(v, np.float64)) for v in (ra1, dec1, ra2, dec2))
    s = np.sin((d2 - d1) / 2) ** 2 + np.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.minimum(1.0, np.sqrt(s)))) * 3600.0


def nearest_match(ra: float, dec: float, candidates: pa.Table, radius_arcsec: float) -> dict | None:
    """The candidate nearest to (ra, dec) within the radius; ties go to the smaller objid."""
    if candidates.num_rows == 0:
        return None
    sep = _angular_sep_arcsec(
        ra, dec, candidates.column("ra").to_numpy(), candidates.column("dec").to_numpy()
    )
    objid = candidates.column("objid").to_numpy()
    order = np.lexsort((objid, sep))
    best = int(order[0])
    if sep[best] > radius_arcsec:
        return None
    row = {c: candidates.column(c)[best].as_py() for c in LOOKUP_COLUMNS}
    row["match_arcsec"] = float(sep[best])
    return row


@dataclass(frozen=True)
class SdssResult:
    objects: int
    cutouts: int  # rows in sdss_cutouts from this labels table and band
    frames_fetched: int
    no_photoobj: int
    off_frame: int
    path: Path | None
    band: str = "r"
    pixels: int = 40

    def summary(self) -> str:
        return (
            f"{self.cutouts:,} of {self.objects:,} objects have a {self.pixels}x{self.pixels} "
            f"{self.band} cutout ({self.frames_fetched} frame(s) fetched now; "
            f"{self.no_photoobj:,} not in SDSS, {self.off_frame:,} off their frame)"
        )


def fetch_sdss_cutouts(
    wh,  # type: ignore[no-untyped-def]
    *,
    labels: str = "galaxy_zoo",
    band: str = "r",
    pixels: int = 40,
    match_radius_arcsec: float = 2.0,
    data_release: int = 17,
    batch: int = 50,
    limit: int | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float = 120.0,
    load: bool = True,
    echo: Callable[[str], None] = lambda _m: None,
) -> SdssResult:
    """Cut ``pixels`` x ``pixels`` SDSS ``band`` thumbnails of every object of ``labels``.

    Raises
    ------
    ArchiveError
        SkyServer or SAS errors after retries, or not one object found in SDSS.
    CutoutError
        The labels table is missing or has no positions.
    """
    if band not in SDSS_BANDS:
        raise CutoutError(f"SDSS band must be one of {', '.join(SDSS_BANDS)}, got {band!r}")
    if not 4 <= pixels <= 2048:
        raise CutoutError(f"--pixels must be between 4 and 2048, got {pixels}")
    if not 0 < match_radius_arcsec <= 60:
        raise CutoutError(f"match radius must be in (0, 60] arcsec, got {match_radius_arcsec}")
    if not 1 <= batch <= 500:
        raise CutoutError(f"batch must be between 1 and 500, got {batch}")
    if data_release < 8:  # the frames' paths on the SAS, and their calibration, are DR8's on
        raise CutoutError(f"--data-release must be 8 or later (SDSS frames), got {data_release}")
    if limit is not None and limit < 1:
        raise CutoutError(f"--limit must be a positive number of objects, got {limit}")
    key, objects = objects_of(wh, labels, limit)
    if objects.num_rows == 0:
        raise CutoutError(f"{labels} has no rows: nothing to cut out.")
    cfg = wh.config.archives
    skyserver = http.base_url("sdss", cfg.sdss_url)
    sas = sas_base_url(skyserver, cfg.sdss_sas_url)
    cache = wh.layout.cache("sdss")
    parts = PartStore(cache / f"{labels}-{band}-{pixels}px-dr{data_release}")
    done = parts.done("object_id")
    ids = objects.column(key).to_pylist()
    todo = [i for i, oid in enumerate(ids) if oid not in done]
    echo(
        f"SDSS {band}: {len(ids):,} objects of {labels}, {len(ids) - len(todo):,} done before, "
        f"{len(todo):,} to do"
    )
    ra_all = objects.column("ra").to_numpy(zero_copy_only=False)
    dec_all = objects.column("dec").to_numpy(zero_copy_only=False)

    from astroquery.sdss import SDSSClass

    client = SDSSClass()
    try:
        # 1. frame lookup, batch by batch (each answer cached)
        matches: dict[int, dict] = {}
        no_match: list[int] = []
        for start in range(0, len(todo), batch):
            rows = todo[start : start + batch]
            positions = [(float(ra_all[i]), float(dec_all[i])) for i in rows]
            sql = frame_lookup_sql(positions, match_radius_arcsec)
            cached = cache / "lookup" / f"dr{data_release}-{values_hash([sql])}.csv"
            if cached.is_file():
                text = cached.read_text(encoding="utf-8")
            else:
                what = f"SkyServer DR{data_release} SQL (objects {start + 1}-{start + len(rows)})"

                def query(sql: str = sql) -> str:
                    with sdss_urls(skyserver, sas):
                        response = client.query_sql_async(
                            sql, data_release=data_release, cache=False, timeout=timeout
                        )
                    response.raise_for_status()
                    return response.text

                text = with_retries(query, what=what, retry=retry, sleep=sleep)
                _parse_lookup(text, what)  # never cache an error page
                atomic_write_bytes(cached, text.encode("utf-8"))
            found = _parse_lookup(text, str(cached))
            for i in rows:
                m = nearest_match(float(ra_all[i]), float(dec_all[i]), found, match_radius_arcsec)
                if m is None:
                    no_match.append(i)
                else:
                    matches[i] = m
        if no_match:
            parts.write(
                f"nomatch-{values_hash(ids[i] for i in no_match)}",
                _part(objects, key, no_match, {}, {}, "no_photoobj"),
            )
            echo(
                f"  {len(no_match):,} object(s) have no SDSS photometric object within "
                f"{match_radius_arcsec:g} arcsec"
            )

        # 2.-3. frames and cutouts, frame by frame; each frame's cutouts are kept before the next
        by_frame: dict[tuple[int, int, int, int], list[int]] = {}
        for i, m in matches.items():
            by_frame.setdefault((m["run"], m["rerun"], m["camcol"], m["field"]), []).append(i)
        frames_fetched = 0
        for n, (frame, rows) in enumerate(sorted(by_frame.items()), start=1):
            run, rerun, camcol, field = frame
            what = f"SDSS frame {band} run {run} camcol {camcol} field {field}"
            data, wcs, unit, name, simulated = with_retries(
                functools.partial(
                    _get_frame,
                    client,
                    skyserver,
                    sas,
                    run,
                    rerun,
                    camcol,
                    field,
                    band,
                    data_release,
                    timeout,
                ),
                what=what,
                retry=retry,
                sleep=sleep,
            )
            frames_fetched += 1
            cuts: dict[int, dict] = {}
            for i in rows:
                cut, coverage = wcs_cutout(data, wcs, float(ra_all[i]), float(dec_all[i]), pixels)
                cuts[i] = {
                    "image": encode_image(cut) if coverage > 0 else None,
                    "coverage": coverage,
                    "unit": unit,
                    "source": name,
                    "simulated": simulated,
                }
            ok = [i for i in rows if cuts[i]["image"] is not None]
            off = [i for i in rows if cuts[i]["image"] is None]
            table = pa.concat_tables(
                [
                    _part(objects, key, ok, matches, cuts, "ok"),
                    _part(objects, key, off, matches, cuts, "off_frame"),
                ]
            )
            unit = values_hash(ids[i] for i in rows)
            parts.write(f"{run:06d}-{camcol}-{field:04d}-{unit}", table)
            echo(f"  frame {n}/{len(by_frame)}: {name}: {len(ok)} cutout(s)")

        # 4. the table
        everything = parts.combined()
        assert everything is not None
        status = everything.column("status")
        good = everything.filter(pc.equal(status, "ok"))
        n_nomatch = int(pc.sum(pc.equal(status, "no_photoobj")).as_py() or 0)
        n_off = int(pc.sum(pc.equal(status, "off_frame")).as_py() or 0)
        if good.num_rows == 0:
            raise ArchiveError(
                f"no SDSS cutouts: none of the {len(ids):,} objects of {labels} has an SDSS "
                f"photometric object within {match_radius_arcsec:g} arcsec inside a frame "
                f"({n_nomatch:,} without a match, {n_off:,} off their frame). Is the labels table "
                "in the SDSS footprint?"
            )
        table = _final_table(wh, good.sort_by([("object_id", "ascending")]), labels, band, pixels)
        content = values_hash([sha256_hex(parquet_bytes(table))])
        out = cache / f"sdss_cutouts-{labels}-{band}-{pixels}px-{content}.parquet"
        write_parquet_atomic(table, out)
        if load:
            (result,) = wh.load(FetchedTable("sdss-cutouts", SDSS_CUTOUTS, table), [out])
            if result.skipped:
                echo(f"sdss_cutouts: {out.name} is loaded already; nothing to do.")
            else:
                rows_after = result.tables[SDSS_CUTOUTS.name][1]
                echo(
                    f"sdss_cutouts: {table.num_rows:,} {band} cutout(s) stored; {rows_after:,} rows"
                )
        return SdssResult(
            len(ids), table.num_rows, frames_fetched, n_nomatch, n_off, out, band, pixels
        )
    finally:
        client._session.close()


def _get_frame(client, skyserver, sas, run, rerun, camcol, field, band, dr, timeout):  # type: ignore[no-untyped-def]
    from astropy.table import Table
    from astropy.wcs import WCS, FITSFixedWarning

    matches = Table({"run": [run], "rerun": [rerun], "camcol": [camcol], "field": [field]})
    with sdss_urls(skyserver, sas):
        hduls = client.get_images(
            matches=matches,
            band=band,
            data_release=dr,
            cache=False,
            show_progress=False,
            timeout=timeout,
        )
    if not hduls:
        raise ArchiveError(f"SDSS returned no frame for run {run} camcol {camcol} field {field}")
    hdu = hduls[0][0]
    if hdu.data is None or hdu.data.ndim != 2:
        raise ArchiveError(
            f"SDSS frame run {run} camcol {camcol} field {field} has no 2-D image in HDU 0"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdu.header)
    unit = str(hdu.header.get("BUNIT", "nanomaggy")).strip()
    name = f"frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2"
    simulated = bool(hdu.header.get("SIMULATED", False))
    return np.asarray(hdu.data), wcs, unit, name, simulated


def _part(objects, key, rows, matches, cuts, status) -> pa.Table:  # type: ignore[no-untyped-def]
    """One piece of finished work: per object its match, its cutout (or why none)."""
    m = [matches.get(i, {}) for i in rows]
    c = [cuts.get(i, {}) for i in rows]
    columns = {
        "sdss_objid": pa.array([x.get("objid") for x in m], pa.int64()),
        "run": pa.array([x.get("run") for x in m], pa.int32()),
        "rerun": pa.array([x.get("rerun") for x in m], pa.int32()),
        "camcol": pa.array([x.get("camcol") for x in m], pa.int32()),
        "field": pa.array([x.get("field") for x in m], pa.int32()),
        "match_arcsec": pa.array([x.get("match_arcsec") for x in m], pa.float64()),
        "image": pa.array([x.get("image") for x in c], pa.binary()),
        "coverage": pa.array([x.get("coverage") for x in c], pa.float64()),
        "unit": pa.array([x.get("unit") for x in c], pa.string()),
        "source": pa.array([x.get("source") for x in c], pa.string()),
        "simulated": pa.array([bool(x.get("simulated")) for x in c], pa.bool_()),
        "status": pa.array([status] * len(rows), pa.string()),
    }
    return work_rows(objects.take(pa.array(rows, pa.int64())), key, columns)


def _final_table(wh, good: pa.Table, labels: str, band: str, pixels: int) -> pa.Table:  # type: ignore[no-untyped-def]
    """The rows of ``sdss_cutouts``: per-object columns, the band's columns, the labels."""
    ids = good.column("object_id").to_pylist()
    stored = stored_bands(wh, SDSS_CUTOUTS.name, ids)
    bands = [
        ",".join(b for b in SDSS_BANDS if b == band or b in stored.get(oid, ())) for oid in ids
    ]
    unit = next((u for u in good.column("unit").to_pylist() if u), "nanomaggy")
    match = ("sdss_objid", "run", "rerun", "camcol", "field", "match_arcsec")
    columns = [(good.schema.field(name), good.column(name)) for name in match]
    columns += band_fields(
        band,
        good.column("image").to_pylist(),
        pixels,
        SDSS_PIXEL_SCALE,
        f"SDSS-{band}",
        good.column("source").to_pylist(),
        unit,
        # nanomaggies: 1 nanomaggy is AB magnitude 22.5
        zeropoint=SDSS_NANOMAGGY_ZEROPOINT if unit == "nanomaggy" else None,
        simulated=good.column("simulated").to_pylist(),
    )
    return image_rows(
        good, bands=bands, labels=labels, band=band, columns=columns, internal=set(match)
    )
