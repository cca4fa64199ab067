"""PNG images of the pages: cutout panels and composites (from the cutout store) and sky maps.

Cutout PNGs have exactly the cutout's pixels (one PNG pixel per stored pixel, row 0 of the FITS
image at the bottom as in ``gwh cutouts show``); the page scales them up. They are rendered with
the display stretches of :mod:`warehouse.images.preview` and cached in memory, keyed by the
cutouts table version, so a load of other tables keeps them and a new ingest renders afresh. A
gallery page renders all its missing thumbnails in one pass over the partition files
(:func:`warehouse.cutouts.read_cutouts`).
"""

from __future__ import annotations

import io
import math
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from warehouse.cutouts import StoredCutout, read_cutouts
from warehouse.db import quote_ident, quote_literal
from warehouse.errors import BadRequestError, ServeError
from warehouse.healpix import SPATIAL_INDEX_ORDER
from warehouse.images.masks import DEFAULT_BAD_MASK_BITS, mask_bits_value
from warehouse.images.preview import STRETCHES, display_plane, display_rgb, overlay_mask
from warehouse.plots import choose_order, plot_sky
from warehouse.store.contracts import CUTOUTS
from warehouse.web.site import Site

RGB = "rgb"
BAD_BITS = mask_bits_value(DEFAULT_BAD_MASK_BITS)
"""Mask planes shown on demand: the pixels whose flux is missing or unreliable."""


def check_stretch(stretch: str) -> str:
    if stretch not in STRETCHES:
        raise BadRequestError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")
    return stretch


def cutouts_version(site: Site) -> str:
    """The committed cutouts version (its folder), which the cached PNGs are keyed by."""

    def find() -> str:
        cv = site.wh.current_version(CUTOUTS.name)
        return str(cv.path) if cv is not None else ""

    return site.cached("cutouts_version", find)


def png_bytes(pixels: np.ndarray) -> bytes:
    """A PNG of uint8 (H, W) or (H, W, 3) pixels, row 0 at the bottom."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(np.flipud(pixels))).save(
        buf, format="PNG", compress_level=1
    )
    return buf.getvalue()


def render(cut: StoredCutout, kind: str, stretch: str, mask: bool) -> bytes:
    """The PNG of one band (``kind`` a band name) or of the RGB composite (``kind`` rgb)."""
    present = [b for b, ok in zip(cut.bands, cut.present, strict=True) if ok]
    if kind == RGB:
        idx = [cut.bands.index(b) for b in present]
        pixels = display_rgb(cut.images[idx], present, stretch)
        shown = idx
    else:
        if kind not in present:
            raise ServeError(f"object_id {cut.object_id} has no {kind}-band cutout")
        shown = [cut.bands.index(kind)]
        pixels = display_plane(cut.images[shown[0]], stretch)
    if mask and cut.mask is not None:
        masked = np.bitwise_or.reduce(cut.mask[shown] & BAD_BITS, axis=0) != 0
        pixels = overlay_mask(pixels, masked)
    return png_bytes(pixels)


def cutout_pngs(
    site: Site, object_ids: Sequence[int], kind: str, stretch: str, mask: bool
) -> dict[int, bytes]:
    """PNGs of several objects (the cached ones, the rest rendered in one read); objects
    without cutouts are left out."""
    check_stretch(stretch)
    if kind != RGB and kind not in site.wh.config.bands:
        raise ServeError(
            f"{kind!r} is not a band of this warehouse ({', '.join(site.wh.config.bands)})"
        )
    version = cutouts_version(site)
    out: dict[int, bytes] = {}
    missing = []
    for oid in object_ids:
        png = site.thumbnail((version, int(oid), kind, stretch, mask))
        if png is None:
            missing.append(int(oid))
        else:
            out[int(oid)] = png
    if missing and version:
        planes = ("image", "mask") if mask else ("image",)
        for oid, cut in read_cutouts(site.wh, missing, planes=planes).items():
            png = render(cut, kind, stretch, mask)
            site.keep_thumbnail((version, oid, kind, stretch, mask), png)
            out[oid] = png
    return out


def cutout_png(site: Site, object_id: int, kind: str, stretch: str, mask: bool) -> bytes:
    """One object's PNG (see :func:`cutout_pngs`)."""
    found = cutout_pngs(site, [object_id], kind, stretch, mask)
    if object_id not in found:
        raise ServeError(f"object_id {object_id} has no cutouts in this warehouse")
    return found[object_id]


def sky_png(site: Site, split: str | None) -> bytes:
    """The HEALPix density map of ml_objects (one split, or all) from
    :func:`warehouse.plots.plot_sky`, once per committed state. Every split is drawn at one
    HEALPix order (the coarsest the splits need), so their densities compare pixel for pixel."""
    order = site.cached("sky_order", lambda: _common_order(site))
    return site.cached(f"sky:{split or ''}", lambda: _sky(site, split, order)[0])


def _sky(site: Site, split: str | None, order: int | None) -> tuple[bytes, int | None]:
    where = f"split = {quote_literal(split)}" if split else None
    with tempfile.TemporaryDirectory(prefix="gwh-serve-") as tmp:
        path = Path(tmp) / "sky.png"
        result = plot_sky(site.wh, "ml_objects", path, where=where, order=order, size=(6.0, 4.6))
        found = re.search(r"order (\d+)", result.detail)
        return path.read_bytes(), int(found.group(1)) if found else None


def _common_order(site: Site) -> int | None:
    """The order :func:`~warehouse.plots.plot_sky` would choose for the smallest split (so the
    coarsest any split needs), from one pass over ml_objects' positions."""
    with site.reading() as r:
        pos = quote_ident(
            r.materialized(
                "gwh_serve_positions",
                "SELECT split, ra, dec, _healpix_29 FROM ml_objects "
                "WHERE isfinite(ra) AND isfinite(dec)",
            )
        )
        smallest = r.rows(
            f"SELECT split, count(*) AS n FROM {pos} GROUP BY 1 ORDER BY 2, 1 LIMIT 1"
        )
        if not smallest:
            return None
        t = r.query(
            f"SELECT ra, dec, _healpix_29 FROM {pos} WHERE split = ?", [smallest[0]["split"]]
        )
    ra = t.column("ra").to_numpy() % 360.0
    dec = t.column("dec").to_numpy()
    h29 = t.column("_healpix_29").to_numpy()
    a = np.radians(ra)  # the extent as plot_sky measures it: around the circular mean RA
    center = float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) % 360.0)
    offset = (ra - center + 180.0) % 360.0 - 180.0
    span = max(
        float(np.ptp(offset)) * math.cos(math.radians(float(np.median(dec)))), float(np.ptp(dec))
    )

    def counts_at(k: int) -> np.ndarray:
        return np.unique(h29 >> (2 * (SPATIAL_INDEX_ORDER - k)), return_counts=True)[1]

    return choose_order(span, counts_at)
