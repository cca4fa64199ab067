"""Plots of a table's rows: the density-coloured colour-magnitude diagram and the HEALPix
sky map."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pyarrow as pa

from warehouse.db import quote_ident
from warehouse.healpix import SPATIAL_INDEX_ORDER, spatial_index
from warehouse.lineage import column_units
from warehouse.plots.common import (
    IDENT,
    SENTINEL_MAG,
    SIZE_INCHES,
    PlotError,
    PlotResult,
    axis_label,
    fit_title,
    mark_simulated,
    new_figure,
    plot_query,
    save_png,
    table_spec,
    where_sql,
)

# -- colour-magnitude diagram ---------------------------------------------------------------------


def _finite_pairs(rows, a: str, b: str) -> tuple[np.ndarray, np.ndarray, int]:  # type: ignore[no-untyped-def]
    """Columns ``a`` and ``b`` of ``rows`` as float64 where both are finite, and how many rows
    were left out (NULL, NaN or infinite in either)."""
    xs = rows.column(a).to_numpy(zero_copy_only=False).astype(np.float64)
    ys = rows.column(b).to_numpy(zero_copy_only=False).astype(np.float64)
    good = np.isfinite(xs) & np.isfinite(ys)
    return xs[good], ys[good], int((~good).sum())


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
    units = column_units(wh, table)
    # catalogs write -99 or 99 for a magnitude not measured: such a row is no source here
    mags = sorted({n for n in IDENT.findall(f"{x} {y}") if units.get(n.lower()) == "mag"})
    sentinel = " OR ".join(f"abs({quote_ident(n)}) >= {SENTINEL_MAG}" for n in mags) or "false"
    rows = plot_query(
        wh,
        f"SELECT ({x})::DOUBLE AS x, ({y})::DOUBLE AS y, coalesce({sentinel}, false) AS sentinel "
        f"FROM {quote_ident(table)}{where_sql(where)}",
        given=f"--x {x!r}, --y {y!r}" + (f", --where {where!r}" if where else ""),
    )
    flagged = rows.column("sentinel").to_numpy(zero_copy_only=False).astype(bool)
    sentinels = int(flagged.sum())
    rows = rows.filter(pa.array(~flagged))
    xs, ys, dropped = _finite_pairs(rows, "x", "y")
    if xs.size == 0:
        raise PlotError(
            f"nothing to plot: {table} has no rows with finite {x} and {y}"
            f"{' where ' + where if where else ''} ({dropped:,} rows with NULL/NaN values, "
            f"{sentinels:,} with magnitudes of -99/99)."
        )
    xl, _ = axis_label(x, units, x_label)
    yl, _ = axis_label(y, units, y_label)
    # one magnitude (not a colour, a difference of two): bright at the top
    magnitude = sum(units.get(n.lower()) == "mag" for n in set(IDENT.findall(y))) == 1

    from matplotlib.colors import LogNorm

    fig = new_figure(size)
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
    title = f"{table}: {xs.size:,} source{'s' if xs.size != 1 else ''}"
    notes = []
    if dropped:
        notes.append(f"{dropped:,} without finite values left out")
    if sentinels:
        notes.append(f"{sentinels:,} with a magnitude of -99/99 (not measured) left out")
    if (~inside).sum():
        notes.append(f"{int((~inside).sum()):,} outside the axes")
    if notes:
        title += f" ({'; '.join(notes)})"
    simulated = mark_simulated(fig, wh, table, where)
    if simulated:
        title = f"SIMULATED data - {title}"
    if where:
        title += f"\nwhere {where}"
    ax.set_title(fit_title(title), fontsize=10)
    ax.grid(True, alpha=0.25)
    pixels = save_png(fig, Path(out), wh.layout)
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

    spec = table_spec(table)
    ra_col, dec_col = (spec.ra, spec.dec) if spec is not None else ("ra", "dec")
    rows = plot_query(
        wh,
        f"SELECT {quote_ident(ra_col)}::DOUBLE AS ra_deg, {quote_ident(dec_col)}::DOUBLE AS "
        f"dec_deg FROM {quote_ident(table)}{where_sql(where)}",
        given=f"--table {table!r}, which needs the columns {ra_col} and {dec_col}",
    )
    ra, dec, dropped = _finite_pairs(rows, "ra_deg", "dec_deg")
    ra = ra % 360.0
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

    fig = new_figure(size)
    full_sky = span > 60.0
    from matplotlib.colors import LogNorm, Normalize

    values = np.array(list(lookup.values()))
    norm: Normalize = LogNorm(vmin=float(values.min()), vmax=float(values.max()))
    if values.max() < 10 * values.min():  # a log scale of less than a decade is all exponents
        norm = Normalize(vmin=0.0, vmax=float(values.max()))
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
    simulated = mark_simulated(fig, wh, table, where)
    if simulated:
        title = f"SIMULATED data - {title}"
    if where:
        title += f"\nwhere {where}"
    ax.set_title(fit_title(title), fontsize=10, pad=18 if full_sky else 6)
    pixels = save_png(fig, Path(out), wh.layout)
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
