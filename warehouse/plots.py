"""PNG plots for a person: a density-coloured colour-magnitude diagram and a HEALPix sky map.

Both read the warehouse with SQL (``x``/``y`` are SQL expressions over the table's columns, as in
``gwh sql``), label their axes with units (from the columns' metadata or the archive schema),
put the counts in the title, and write the PNG atomically at a fixed size (``width`` x
``height`` inches at ``dpi``).

Examples
--------
>>> plot_cmd(wh, "hubble_source_catalog", "A_F555W - A_F814W", "A_F555W",
...          "cmd.png")  # doctest: +SKIP
>>> plot_sky(wh, "hsc_forced", "sky.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from warehouse.core import Warehouse
from warehouse.cutouts import read_cutout
from warehouse.db import quote_ident
from warehouse.errors import QueryError, WarehouseError
from warehouse.files import atomic_path
from warehouse.healpix import SPATIAL_INDEX_ORDER, spatial_index
from warehouse.images import preview
from warehouse.lineage import column_units, simulated_sources
from warehouse.store.contracts import base_tables

__all__ = [
    "PlotResult",
    "choose_order",
    "column_units",
    "plot_cmd",
    "plot_cutout",
    "plot_sky",
    "show_cutout",
]

DPI = 150
SIZE_INCHES = (7.0, 6.0)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class PlotError(WarehouseError):
    """A plot cannot be made (no rows, bad expression, unknown table)."""


@dataclass(frozen=True)
class PlotResult:
    path: Path
    points: int  # rows plotted
    dropped: int  # rows left out (NULL or non-finite values)
    pixels: tuple[int, int]  # PNG width, height
    detail: str = ""
    title: str = ""
    x_label: str = ""
    y_label: str = ""
    simulated: tuple[str, ...] = ()  # the simulated inputs behind the plot (empty: real data)
    figure: Any = field(default=None, repr=False, compare=False)  # the matplotlib Figure
    note: str = ""  # what ``gwh plot`` says of it after the size

    def summary(self) -> str:
        return f"wrote {self.path} ({self.pixels[0]}x{self.pixels[1]} px, {self.note})"


def _table_spec(table: str):  # type: ignore[no-untyped-def]
    defs = base_tables()
    return defs[table].spec if table in defs else None


def _mark_simulated(fig, wh, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    """A SIMULATED watermark across the figure when any input of ``table`` is simulated."""
    sources = simulated_sources(wh, table)
    if sources:
        preview.watermark_simulated(fig, fontsize=64, alpha=0.18, rotation=30)
    return sources


def _axis_label(expr: str, units: dict[str, str], given: str | None) -> tuple[str, str]:
    """The label of an axis and the unit found for the expression ('' if none or mixed)."""
    names = {m.lower() for m in _IDENT.findall(expr)}
    found = {units[n] for n in names if n in units}
    unit = found.pop() if len(found) == 1 else ""
    if given:
        return given, unit
    return (f"{expr} [{unit}]" if unit else expr), unit


def _save_png(fig, out: Path) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    out = Path(out)
    if out.suffix.lower() != ".png":
        raise PlotError(f"{out}: plots are PNG files; give a name ending in .png")
    with atomic_path(out) as tmp:
        FigureCanvasAgg(fig)
        fig.savefig(tmp, dpi=DPI, format="png")
    width, height = fig.get_size_inches()
    return int(round(width * DPI)), int(round(height * DPI))


def _figure(size: tuple[float, float]):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    return Figure(figsize=size, dpi=DPI, layout="constrained")


def _query(wh, sql: str, params: list | None = None, given: str = ""):  # type: ignore[no-untyped-def]
    """``wh.query``; a failure is one line naming what the user ``given`` (not our SQL)."""
    try:
        return wh.query(sql, params)
    except QueryError as exc:
        first = str(exc).strip().splitlines()[0].strip()
        raise PlotError(f"{first} (in {given})" if given else first) from None


def _where(where: str | None) -> str:
    return f" WHERE ({where})" if where else ""


# -- colour-magnitude diagram ---------------------------------------------------------------------


def plot_cmd(
    wh,  # type: ignore[no-untyped-def]
    table: str,
    x: str,
    y: str,
    out: str | os.PathLike[str],
    *,
    where: str | None = None,
    x_label: str | None = None,
    y_label: str | None = None,
    bins: int | None = None,
    size: tuple[float, float] = SIZE_INCHES,
) -> PlotResult:
    """A colour-magnitude diagram of ``y`` against ``x``, each point coloured by the number of
    sources around it (a 2-D histogram of ``bins`` x ``bins``, by default about sqrt(N)/1.5 bins
    a side). A y axis of one magnitude (not a colour) is inverted: bright at the top. The axes
    show the central 99% of each coordinate; points outside are counted in the title.
    """
    rows = _query(
        wh,
        f"SELECT ({x})::DOUBLE AS x, ({y})::DOUBLE AS y FROM {quote_ident(table)}{_where(where)}",
        given=f"--x {x!r}, --y {y!r}" + (f", --where {where!r}" if where else ""),
    )
    xs = rows.column("x").to_numpy(zero_copy_only=False).astype(np.float64)
    ys = rows.column("y").to_numpy(zero_copy_only=False).astype(np.float64)
    good = np.isfinite(xs) & np.isfinite(ys)
    xs, ys = xs[good], ys[good]
    dropped = int((~good).sum())
    if xs.size == 0:
        raise PlotError(
            f"nothing to plot: {table} has no rows with finite {x} and {y}"
            f"{' where ' + where if where else ''} ({dropped:,} rows with NULL/NaN values)."
        )
    units = column_units(wh, table)
    xl, _ = _axis_label(x, units, x_label)
    yl, _ = _axis_label(y, units, y_label)
    # one magnitude (not a colour, a difference of two): bright at the top
    magnitude = sum(units.get(n.lower()) == "mag" for n in set(_IDENT.findall(y))) == 1

    from matplotlib.colors import LogNorm

    fig = _figure(size)
    ax = fig.add_subplot()
    # the axes show the central 99% of each coordinate, so sentinels (-99 mag) do not squash
    # the diagram; the points outside are counted in the title
    if bins is None:  # about 7 sources per occupied bin on average for a compact diagram
        bins = int(np.clip(np.sqrt(xs.size) / 1.5, 10, 150))
    xlim, ylim = _view(xs), _view(ys)
    inside = (xs >= xlim[0]) & (xs <= xlim[1]) & (ys >= ylim[0]) & (ys <= ylim[1])
    counts, xe, ye = np.histogram2d(xs[inside], ys[inside], bins=bins, range=[xlim, ylim])
    ix = np.clip(np.searchsorted(xe, xs, side="right") - 1, 0, counts.shape[0] - 1)
    iy = np.clip(np.searchsorted(ye, ys, side="right") - 1, 0, counts.shape[1] - 1)
    density = np.where(inside, counts[ix, iy], 1.0)
    order = np.argsort(density, kind="stable")  # densest drawn last, on top
    points = ax.scatter(
        xs[order],
        ys[order],
        c=density[order],
        s=4 if xs.size > 2000 else 12,
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=max(float(density.max()), 2.0)),
        linewidths=0,
        rasterized=True,
    )
    fig.colorbar(points, ax=ax, label=f"sources per bin ({bins}x{bins} bins)")
    ax.set_xlabel(xl)
    ax.set_ylabel(yl)
    ax.set_xlim(*xlim)
    ax.set_ylim(*(ylim[::-1] if magnitude else ylim))
    title = f"{table}: {xs.size:,} sources"
    notes = []
    if dropped:
        notes.append(f"{dropped:,} without finite values left out")
    if (~inside).sum():
        notes.append(f"{int((~inside).sum()):,} outside the axes")
    if notes:
        title += f" ({'; '.join(notes)})"
    simulated = _mark_simulated(fig, wh, table)
    if simulated:
        title = f"SIMULATED data - {title}"
    if where:
        title += f"\nwhere {where}"
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.25)
    pixels = _save_png(fig, Path(out))
    return PlotResult(
        Path(out),
        int(xs.size),
        dropped,
        pixels,
        "",
        title,
        xl,
        yl,
        tuple(simulated),
        fig,
        note=f"{int(xs.size):,} sources",
    )


def _view(values: np.ndarray) -> tuple[float, float]:
    """Axis limits around the central 99% of the values, with a 5% margin."""
    lo, hi = (float(v) for v in np.percentile(values, [0.5, 99.5]))
    pad = 0.05 * (hi - lo) if hi > lo else max(abs(lo) * 0.05, 0.5)
    return lo - pad, hi + pad


# -- sky map ---------------------------------------------------------------------------------------


def pixel_size_deg(order: int) -> float:
    """Typical side of a HEALPix pixel at ``order``, degrees."""
    return math.sqrt(4 * math.pi / (12 * 4**order)) * 180 / math.pi


def choose_order(span_deg: float, counts_at, max_order: int = 13) -> int:  # type: ignore[no-untyped-def]
    """The HEALPix order of a sky map: about 60 pixels across the data's extent, coarser while
    the median non-empty pixel holds fewer than 3 objects (at most 4 orders coarser).

    ``counts_at(order)`` returns the counts of the non-empty pixels at that order.
    """
    span = max(span_deg, 1e-4)
    k = int(round(math.log2(max(pixel_size_deg(0) * 60 / span, 1.0))))
    k = min(max(k, 0), max_order)
    floor = max(k - 4, 0)
    while k > floor and np.median(counts_at(k)) < 3:
        k -= 1
    return k


def _circular_center(ra: np.ndarray) -> float:
    a = np.radians(ra)
    return float(np.degrees(np.arctan2(np.sin(a).mean(), np.cos(a).mean())) % 360.0)


def plot_sky(
    wh,  # type: ignore[no-untyped-def]
    table: str,
    out: str | os.PathLike[str],
    *,
    where: str | None = None,
    order: int | None = None,
    size: tuple[float, float] = SIZE_INCHES,
) -> PlotResult:
    """A HEALPix density map of ``table``: objects per arcmin² (per deg² for pixels larger than
    a degree) in NESTED pixels of ``order`` (chosen from the data when not given). A field
    smaller than 60 degrees is drawn zoomed (RA increasing to the left), a larger one on a
    Mollweide projection of the whole sky.
    """
    import healpy as hp

    spec = _table_spec(table)
    ra_col, dec_col = (spec.ra, spec.dec) if spec is not None else ("ra", "dec")
    rows = _query(
        wh,
        f"SELECT {quote_ident(ra_col)}::DOUBLE AS ra_deg, {quote_ident(dec_col)}::DOUBLE AS "
        f"dec_deg FROM {quote_ident(table)}{_where(where)}",
        given=f"--table {table!r}, which needs the columns {ra_col} and {dec_col}",
    )
    ra = rows.column("ra_deg").to_numpy(zero_copy_only=False).astype(np.float64)
    dec = rows.column("dec_deg").to_numpy(zero_copy_only=False).astype(np.float64)
    good = np.isfinite(ra) & np.isfinite(dec)
    ra, dec = ra[good] % 360.0, dec[good]
    dropped = int((~good).sum())
    if ra.size == 0:
        raise PlotError(
            f"nothing to plot: {table} has no rows with positions"
            f"{' where ' + where if where else ''}."
        )
    h29 = spatial_index(ra, dec)
    center = _circular_center(ra)
    offset = (ra - center + 180.0) % 360.0 - 180.0
    span = max(
        float(np.ptp(offset)) * math.cos(math.radians(float(np.median(dec)))), float(np.ptp(dec))
    )

    def counts_at(k: int) -> np.ndarray:
        _, c = np.unique(h29 >> (2 * (SPATIAL_INDEX_ORDER - k)), return_counts=True)
        return c

    if order is None:
        order = choose_order(span, counts_at)
    if not 0 <= order <= 13:
        raise PlotError(f"--order must be between 0 and 13, got {order}")
    nside = 2**order
    pix, counts = np.unique(h29 >> (2 * (SPATIAL_INDEX_ORDER - order)), return_counts=True)
    # objects per arcmin² for fields, per deg² when pixels are larger than a degree
    per_deg2 = pixel_size_deg(order) > 1.0
    area = hp.nside2pixarea(nside, degrees=True) * (1.0 if per_deg2 else 3600.0)
    area_unit = "deg²" if per_deg2 else "arcmin²"
    size_text = (
        f"{pixel_size_deg(order):.3g}°" if per_deg2 else f"{pixel_size_deg(order) * 60:.3g}'"
    )
    lookup = dict(zip(pix.tolist(), (counts / area).tolist(), strict=True))

    def density(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        p = hp.ang2pix(nside, lon % 360.0, lat, nest=True, lonlat=True)
        return np.array([lookup.get(int(v), np.nan) for v in p.ravel()]).reshape(p.shape)

    fig = _figure(size)
    full_sky = span > 60.0
    from matplotlib.colors import LogNorm

    values = np.array(list(lookup.values()))
    norm = LogNorm(vmin=float(values.min()), vmax=max(float(values.max()), values.min() * 1.01))
    if full_sky:
        ax = fig.add_subplot(projection="mollweide")
        lon = np.linspace(-180, 180, 721)
        lat = np.linspace(-90, 90, 361)
        lon_g, lat_g = np.meshgrid(lon, lat)
        # RA increases to the left: plot -RA
        grid = density(-lon_g, lat_g)
        mesh = ax.pcolormesh(
            np.radians(lon_g), np.radians(lat_g), grid, cmap="viridis", norm=norm, shading="auto"
        )
        ticks = np.arange(-150, 151, 30)
        ax.set_xticks(np.radians(ticks))
        ax.set_xticklabels([f"{(-t) % 360:.0f}°" for t in ticks], fontsize=8)
        ax.set_xlabel("RA [deg] (increasing to the left)")
        ax.set_ylabel("Dec [deg]")
        ax.grid(True, alpha=0.3)
    else:
        ax = fig.add_subplot()
        pad = max(pixel_size_deg(order), 0.02 * span, 1e-3)
        o_lo, o_hi = float(offset.min()) - pad, float(offset.max()) + pad
        d_lo, d_hi = max(float(dec.min()) - pad, -90.0), min(float(dec.max()) + pad, 90.0)
        nx = ny = 400
        xs = np.linspace(o_lo, o_hi, nx)
        ys = np.linspace(d_lo, d_hi, ny)
        xg, yg = np.meshgrid(xs, ys)
        grid = density(center + xg, yg)
        mesh = ax.imshow(
            grid,
            origin="lower",
            extent=(center + o_lo, center + o_hi, d_lo, d_hi),
            cmap="viridis",
            norm=norm,
            interpolation="nearest",
            aspect=1.0 / max(math.cos(math.radians((d_lo + d_hi) / 2)), 0.05),
        )
        ax.invert_xaxis()
        ax.set_xlabel("RA [deg]")
        ax.set_ylabel("Dec [deg]")
        ax.grid(True, alpha=0.25)
    fig.colorbar(
        mesh,
        ax=ax,
        label=f"objects per {area_unit} (HEALPix order {order}, pixel ≈ {size_text})",
        shrink=0.8 if full_sky else 1.0,
        orientation="horizontal" if full_sky else "vertical",
    )
    title = f"{table}: {ra.size:,} objects in {pix.size:,} HEALPix pixels (order {order})"
    if dropped:
        title += f"; {dropped:,} without a position left out"
    simulated = _mark_simulated(fig, wh, table)
    if simulated:
        title = f"SIMULATED data - {title}"
    if where:
        title += f"\nwhere {where}"
    ax.set_title(title, fontsize=10, pad=18 if full_sky else 6)
    pixels = _save_png(fig, Path(out))
    return PlotResult(
        Path(out),
        int(ra.size),
        dropped,
        pixels,
        f"order {order}",
        title,
        ax.get_xlabel(),
        ax.get_ylabel(),
        tuple(simulated),
        fig,
        note=f"{int(ra.size):,} objects, order {order}",
    )


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
