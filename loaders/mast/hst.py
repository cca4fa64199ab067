"""HST cutouts of labelled objects from MAST's drizzled deep-field mosaics, through astroquery.

The images are the drizzled (``_drz``) science mosaics MAST serves through its deep-field
cutout service (``astroquery.mast.Zcut``: CANDELS, 3D-HST, GOODS, ... high-level science
products). For every object of a labels table (``galaxy_zoo`` by default):

1. ``Zcut.get_surveys`` lists the surveys covering the position; the survey is ``--survey`` or,
   by default, the one whose mosaics hold the filter's camera (WFC3/IR filters F098M-F160W in the
   60 mas mosaics, ACS/UVIS filters in the 30 mas ones);
2. ``Zcut.get_cutouts`` returns a FITS cutout per filter of that survey, a little larger than
   asked; the one whose header (``FILTER``, ``FILTER1``/``FILTER2``, or ``ORIG_FLE``) names the
   filter is kept;
3. a ``pixels`` x ``pixels`` WCS cutout centres the object on pixel ``pixels // 2``
   (:func:`loaders.images.wcs_cutout`), pixel values unchanged.

Objects are done in batches, each batch kept under ``ROOT/cache/hst/``: a rerun fetches only
the objects not done. The table ``hst_cutouts`` (key ``object_id``) holds the filter's columns
(``f160w_image``, ``f160w_height``, ... as :mod:`loaders.images` describes; the band name is
the filter in lower case) and the label columns of the labels table.
"""

from __future__ import annotations

import functools
import logging
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loaders.http.astroquery import mast_base_url, mast_zcut, with_retries
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
from warehouse.errors import ArchiveError, CutoutError
from warehouse.files import atomic_write_bytes, parquet_bytes, short_hash, values_hash
from warehouse.store.contracts import HST_CUTOUTS

__all__ = ["HST_CUTOUTS", "HstResult", "choose_survey", "fetch_hst_cutouts", "pick_filter_hdu"]

log = logging.getLogger(__name__)

IR_FILTERS = frozenset({"F098M", "F105W", "F110W", "F125W", "F140W", "F160W"})
_FILTER = re.compile(r"^F\d{3,4}[A-Z]{1,2}$")
MARGIN = 4  # extra pixels asked of the service on each side, so the WCS cutout fits


def choose_survey(surveys: list[str], filt: str, wanted: str | None = None) -> str | None:
    """The survey to cut ``filt`` from: ``wanted`` if listed, else the one for its camera.

    >>> choose_survey(["candels_gn_60mas", "candels_gn_30mas", "goods_north"], "F160W")
    'candels_gn_60mas'
    >>> choose_survey(["candels_gn_60mas", "candels_gn_30mas", "goods_north"], "F814W")
    'candels_gn_30mas'
    """
    if wanted is not None:
        return wanted if wanted in surveys else None
    scale = "60mas" if filt in IR_FILTERS else "30mas"
    for s in surveys:
        if s.endswith(scale):
            return s
    return surveys[0] if surveys else None


def _filters_of(header) -> set[str]:  # type: ignore[no-untyped-def]
    names = {str(header.get(k, "")).strip().upper() for k in ("FILTER", "FILTER1", "FILTER2")}
    orig = str(header.get("ORIG_FLE", "")).lower()
    names |= {m.upper() for m in re.findall(r"_(f\d{3,4}[a-z]{1,2})_", orig)}
    return {n for n in names if _FILTER.match(n)}


def pick_filter_hdu(hduls: list, filt: str):  # type: ignore[no-untyped-def]
    """The image HDU of ``filt`` among Zcut's cutouts, and the filters that were there."""
    seen: set[str] = set()
    for hdul in hduls:
        for hdu in hdul:
            if hdu.data is None or getattr(hdu.data, "ndim", 0) != 2:
                continue
            names = _filters_of(hdu.header)
            seen |= names
            if filt in names:
                return hdu, seen
    return None, seen


@dataclass(frozen=True)
class HstResult:
    objects: int
    cutouts: int
    requested: int  # objects asked of MAST in this run
    no_coverage: int
    no_filter: int
    path: Path | None
    filter: str = "F160W"
    pixels: int = 64

    def summary(self) -> str:
        return (
            f"{self.cutouts:,} of {self.objects:,} objects have a {self.pixels}x{self.pixels} "
            f"{self.filter} cutout ({self.no_coverage:,} outside the surveys, "
            f"{self.no_filter:,} without {self.filter})"
        )


def fetch_hst_cutouts(
    wh,  # type: ignore[no-untyped-def]
    *,
    filter: str = "F160W",  # noqa: A002 - the archive's word
    labels: str = "galaxy_zoo",
    pixels: int = 64,
    survey: str | None = None,
    batch: int = 25,
    limit: int | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | tuple[float, float] = (15.0, 300.0),
    load: bool = True,
    echo: Callable[[str], None] = lambda _m: None,
) -> HstResult:
    """Cut ``pixels`` x ``pixels`` HST ``filter`` thumbnails of every object of ``labels``.

    Raises
    ------
    ArchiveError
        MAST errors after retries, or no object has a cutout in that filter.
    CutoutError
        A bad filter name, or the labels table is missing.
    """
    filt = filter.strip().upper()
    if not _FILTER.match(filt):
        raise CutoutError(f"--filter must be an HST filter name such as F160W, got {filter!r}")
    if not 4 <= pixels <= 1024:
        raise CutoutError(f"--pixels must be between 4 and 1024, got {pixels}")
    if not 1 <= batch <= 1000:
        raise CutoutError(f"batch must be between 1 and 1000, got {batch}")
    key, objects = objects_of(wh, labels, limit)
    if objects.num_rows == 0:
        raise CutoutError(f"{labels} has no rows: nothing to cut out.")
    zcut = mast_zcut(mast_base_url(wh.config.archives.mast_url), timeout=timeout)
    try:
        cache = wh.layout.cache("hst")
        parts = PartStore(cache / f"{labels}-{filt.lower()}-{pixels}px-{survey or 'auto'}")
        done = parts.done("object_id")
        ids = objects.column(key).to_pylist()
        todo = [i for i, oid in enumerate(ids) if oid not in done]
        echo(
            f"HST {filt}: {len(ids):,} objects of {labels}, {len(ids) - len(todo):,} done before, "
            f"{len(todo):,} to do"
        )
        ra_all = objects.column("ra").to_numpy(zero_copy_only=False)
        dec_all = objects.column("dec").to_numpy(zero_copy_only=False)
        from astropy.coordinates import SkyCoord
        from astroquery.exceptions import NoResultsWarning

        for start in range(0, len(todo), batch):
            rows = todo[start : start + batch]
            results: dict[int, dict] = {}
            for i in rows:
                coord = SkyCoord(float(ra_all[i]), float(dec_all[i]), unit="deg", frame="icrs")
                what = f"MAST Zcut at ({ra_all[i]:.6f}, {dec_all[i]:+.6f})"
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NoResultsWarning)
                    surveys = with_retries(
                        functools.partial(_surveys, zcut, coord),
                        what=f"{what} survey list",
                        retry=retry,
                        sleep=sleep,
                    )
                chosen = choose_survey(surveys, filt, survey)
                if chosen is None:
                    results[i] = {"status": "no_coverage", "surveys": ",".join(surveys)}
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", NoResultsWarning)
                    hduls = with_retries(
                        functools.partial(
                            zcut.get_cutouts, coord, size=pixels + 2 * MARGIN, survey=chosen
                        ),
                        what=f"{what} cutout from {chosen}",
                        retry=retry,
                        sleep=sleep,
                    )
                hdu, seen = pick_filter_hdu(hduls, filt)
                if hdu is None:
                    results[i] = {
                        "status": "no_filter",
                        "survey": chosen,
                        "surveys": ",".join(surveys),
                        "filters_seen": ",".join(sorted(seen)),
                    }
                    continue
                results[i] = _cut(hdu, float(ra_all[i]), float(dec_all[i]), pixels, chosen)
            parts.write(
                f"batch-{values_hash(ids[i] for i in rows)}", _part(objects, key, rows, results)
            )
            echo(f"  objects {start + 1}-{start + len(rows)} of {len(todo)} done")

        everything = parts.combined()
        assert everything is not None
        status = everything.column("status")
        good = everything.filter(pc.equal(status, "ok"))
        n_cov = int(pc.sum(pc.equal(status, "no_coverage")).as_py() or 0)
        bad = everything.filter(pc.equal(status, "no_filter"))
        if good.num_rows == 0:
            hint = ""
            if bad.num_rows:
                r = bad.slice(0, 1).to_pylist()[0]
                hint = (
                    f" The survey {r['survey']} has {r['filters_seen']} there, not {filt}; "
                    "choose one of those or another --survey."
                    if r["filters_seen"]
                    else f" MAST returned no image from the survey {r['survey']} there; try "
                    f"another --survey (listed there: {r['surveys']})."
                )
            raise ArchiveError(
                f"no HST {filt} cutouts for the {len(ids):,} objects of {labels}: {n_cov:,} "
                f"outside every MAST deep-field survey, {bad.num_rows:,} without {filt} in the "
                f"survey.{hint}"
            )
        table = _final_table(wh, good.sort_by([("object_id", "ascending")]), labels, filt, pixels)
        data = parquet_bytes(table)
        out = cache / f"hst_cutouts-{labels}-{filt.lower()}-{pixels}px-{short_hash(data)}.parquet"
        atomic_write_bytes(out, data)
        if load:
            (result,) = wh.load(FetchedTable("hst-cutouts", HST_CUTOUTS, table), [out])
            if result.skipped:
                echo(f"hst_cutouts: {out.name} is loaded already; nothing to do.")
            else:
                after = result.tables[HST_CUTOUTS.name][1]
                echo(f"hst_cutouts: {table.num_rows:,} {filt} cutout(s) stored; {after:,} rows")
        return HstResult(
            len(ids), table.num_rows, len(todo), n_cov, bad.num_rows, out, filter, pixels
        )
    finally:
        zcut._session.close()


def _surveys(zcut, coord) -> list[str]:  # type: ignore[no-untyped-def]
    """The Zcut surveys covering ``coord``, as a list (one call to retry)."""
    return list(zcut.get_surveys(coord))


def _cut(hdu, ra: float, dec: float, pixels: int, survey: str) -> dict:  # type: ignore[no-untyped-def]
    from astropy.wcs import WCS, FITSFixedWarning
    from astropy.wcs.utils import proj_plane_pixel_scales

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)
        wcs = WCS(hdu.header)
    data = np.asarray(hdu.data)
    image, coverage = wcs_cutout(data, wcs, ra, dec, pixels)
    scale = float(np.mean(proj_plane_pixel_scales(wcs.celestial)) * 3600.0)
    if coverage == 0:
        return {"status": "no_coverage", "survey": survey}
    return {
        "status": "ok",
        "survey": survey,
        "image": encode_image(image),
        "coverage": coverage,
        "scale": round(scale, 6),
        "source": str(hdu.header.get("ORIG_FLE", "")).strip() or None,
        "unit": str(hdu.header.get("BUNIT", "")).strip(),
        "zeropoint": ab_zeropoint(hdu.header),
        "simulated": bool(hdu.header.get("SIMULATED", False)),
    }


def ab_zeropoint(header) -> float | None:  # type: ignore[no-untyped-def]
    """AB magnitude of one count/s from PHOTFLAM and PHOTPLAM (None if either is missing).

    ZP_AB = -2.5 log10(PHOTFLAM) - 5 log10(PHOTPLAM) - 2.408 (the STScI formula).
    """
    import math

    flam, plam = header.get("PHOTFLAM"), header.get("PHOTPLAM")
    if not flam or not plam or flam <= 0 or plam <= 0:
        return None
    return round(-2.5 * math.log10(flam) - 5 * math.log10(plam) - 2.408, 4)


def _part(objects, key, rows, results) -> pa.Table:  # type: ignore[no-untyped-def]
    """One batch of finished work: per object its cutout, or why there is none."""
    r = [results[i] for i in rows]
    columns = {
        "survey": pa.array([x.get("survey") for x in r], pa.string()),
        "surveys": pa.array([x.get("surveys") for x in r], pa.string()),
        "filters_seen": pa.array([x.get("filters_seen") for x in r], pa.string()),
        "image": pa.array([x.get("image") for x in r], pa.binary()),
        "coverage": pa.array([x.get("coverage") for x in r], pa.float64()),
        "scale": pa.array([x.get("scale") for x in r], pa.float64()),
        "unit": pa.array([x.get("unit") for x in r], pa.string()),
        "source": pa.array([x.get("source") for x in r], pa.string()),
        "zeropoint": pa.array([x.get("zeropoint") for x in r], pa.float64()),
        "simulated": pa.array([bool(x.get("simulated")) for x in r], pa.bool_()),
        "status": pa.array([x["status"] for x in r], pa.string()),
    }
    return work_rows(objects.take(pa.array(rows, pa.int64())), key, columns)


def filter_order(name: str) -> tuple[bool, int]:
    """Wavelength order of HST filters: optical (nm) before WFC3/IR (units of 10 nm)."""
    upper = name.upper()
    return (upper in IR_FILTERS, int(re.sub(r"\D", "", upper) or 0))


def _final_table(wh, good: pa.Table, labels: str, filt: str, pixels: int) -> pa.Table:  # type: ignore[no-untyped-def]
    band = filt.lower()
    ids = good.column("object_id").to_pylist()
    stored = stored_bands(wh, HST_CUTOUTS.name, ids)
    bands = [",".join(sorted(set(stored.get(oid, ())) | {band}, key=filter_order)) for oid in ids]
    unit = next((u for u in good.column("unit").to_pylist() if u), "")
    scale = float(np.median(good.column("scale").to_numpy(zero_copy_only=False)))
    band_pairs = band_fields(
        band,
        good.column("image").to_pylist(),
        pixels,
        scale,
        filt,
        good.column("source").to_pylist(),
        unit,
        simulated=good.column("simulated").to_pylist(),
    )
    # the pixel scale and zeropoint of each row, from its own header and WCS
    per_row = {
        f"{band}_pixel_scale": good.column("scale").combine_chunks(),
        f"{band}_zeropoint": good.column("zeropoint").combine_chunks(),
    }
    band_pairs = [(f, per_row.get(f.name, a)) for f, a in band_pairs]
    survey = (pa.field(f"{band}_survey", pa.string()), good.column("survey"))
    internal = {"survey", "surveys", "filters_seen", "scale", "zeropoint"}
    columns = [survey, *band_pairs]
    return image_rows(
        good, bands=bands, labels=labels, band=band, columns=columns, internal=internal
    )
