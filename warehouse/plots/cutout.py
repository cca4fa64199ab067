"""One object's stored cutouts as a PNG a person can read (``gwh plot cutout``, ``gwh cutouts
show``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from warehouse.core import Warehouse
from warehouse.cutouts import read_cutout
from warehouse.errors import QueryError
from warehouse.files import atomic_path, missing_parent
from warehouse.images import preview
from warehouse.plots.common import PlotError, PlotResult

# -- one object's cutouts --------------------------------------------------------------------------


def _redshift(wh, object_id: int) -> tuple[float | None, str]:  # type: ignore[no-untyped-def]
    """The object's spec-z from ml_objects (the deduplicated match), else hsc_specz's most
    precise entry; (None, "") when neither knows it."""
    for sql, source in (
        ("SELECT specz_redshift FROM ml_objects WHERE object_id = ?", "spec-z, ml_objects"),
        (
            "SELECT specz_redshift FROM hsc_specz WHERE object_id = ? "
            "ORDER BY specz_redshift_err NULLS LAST LIMIT 1",
            "spec-z, hsc_specz",
        ),
    ):
        try:
            rows = wh.query(sql, [int(object_id)])
        except QueryError:  # a view or table not loaded: try the next
            continue
        if rows.num_rows and rows.column(0)[0].as_py() is not None:
            return float(rows.column(0)[0].as_py()), source
    return None, ""


def plot_cutout(
    wh,  # type: ignore[no-untyped-def]
    object_id: int,
    out: str | os.PathLike[str],
    bands: Sequence[str] | None = None,
) -> PlotResult:
    """A PNG of one object's stored cutouts a person can read (see
    :func:`warehouse.images.preview.cutout_figure`): RGB with a scale bar in arcsec, object id,
    RA/Dec, redshift when known, each band with its colour bar; SIMULATED when it is.

    Raises
    ------
    CutoutError
        No cutouts ingested, or none for this object.
    """
    out = Path(out)
    if out.suffix.lower() != ".png":
        raise PlotError(f"{out}: previews are PNG files; give a name ending in .png")
    if (missing := missing_parent(out, "--png")) is not None:  # gwh cutouts show --png
        raise PlotError(missing)
    cut = read_cutout(wh, object_id, bands)
    meta = cut.metadata
    present = [b for b, ok in zip(cut.bands, cut.present, strict=True) if ok]
    # one scale bar needs one pixel scale (to a micro-arcsec: FITS round-off is not a difference)
    scales = {
        round(float(meta[f"{b}_pixel_scale"]), 6) for b in present if meta.get(f"{b}_pixel_scale")
    }
    zps = {z for z, ok in zip(cut.zeropoints, cut.present, strict=True) if ok}
    if zps == {None}:
        units = "normalised (no zeropoint)"
    elif len(zps) == 1:
        units = f"flux (AB zeropoint {zps.pop():g})"
    else:
        units = "image units (zeropoints differ by band)"
    redshift, source = _redshift(wh, object_id)
    info = preview.CutoutInfo(
        object_id=cut.object_id,
        ra=meta.get("ra"),
        dec=meta.get("dec"),
        redshift=redshift,
        redshift_source=source,
        pixel_scale=scales.pop() if len(scales) == 1 else None,
        simulated=cut.simulated,
        units=units,
        missing=tuple(b for b in cut.bands if b not in present),
    )
    fig = preview.cutout_figure(cut.images, cut.bands, info)
    wh.layout.refuse_owned(Path(out), "--png")
    with atomic_path(out) as tmp:
        preview.save_figure_png(fig, tmp)
    width, height = fig.get_size_inches()
    dpi = preview.FIGURE_DPI
    return PlotResult(
        out,
        1,
        0,
        (int(round(width * dpi)), int(round(height * dpi))),
        f"object_id {cut.object_id}",
        fig.get_suptitle(),
        simulated=("cutouts: simulated pixels",) if cut.simulated else (),
        figure=fig,
        note=fig.get_suptitle(),
    )


def show_cutout(
    wh: Warehouse, object_id: int, png: str | os.PathLike[str], bands: Sequence[str] | None = None
) -> Path:
    """Save a preview PNG of one object (:func:`plot_cutout`): a Lupton RGB composite (i, r, g)
    with a scale bar, the object's id, position and redshift, one panel per band with a colour
    bar in the stored pixel units. Missing bands are drawn blank and named; simulated images say
    SIMULATED."""
    return plot_cutout(wh, object_id, png, bands).path
