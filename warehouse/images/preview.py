"""PNG previews of multi-band cutouts for a person to look at.

Display only: the stretch changes what is drawn, never the arrays passed in
(they are copied before any NaN handling or scaling). Figures are drawn with
matplotlib's Agg canvas directly, so no GUI backend or pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.visualization import (
    AsinhStretch,
    ImageNormalize,
    LinearStretch,
    PercentileInterval,
    make_lupton_rgb,
)
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = [
    "STRETCHES",
    "CutoutInfo",
    "cutout_figure",
    "display_plane",
    "display_rgb",
    "lupton_rgb",
    "overlay_mask",
    "save_gallery_png",
    "save_preview_png",
]

PANEL_INCHES = 2.4
DPI = 100
FIGURE_DPI = 150
"""Resolution of :func:`cutout_figure` PNGs (what ``gwh cutouts show`` writes)."""
SCALE_BARS_ARCSEC = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0)


def _as_cube(images: np.ndarray, bands: Sequence[str]) -> np.ndarray:
    cube = np.array(images, dtype=np.float64, copy=True)  # never touch the caller's data
    if cube.ndim == 2:
        cube = cube[None]
    if cube.ndim != 3 or 0 in cube.shape:
        raise ValueError(f"images must have shape (B, H, W), got {np.shape(images)}")
    if len(bands) != cube.shape[0]:
        raise ValueError(f"{len(bands)} band names for {cube.shape[0]} images")
    return np.where(np.isfinite(cube), cube, 0.0)


def lupton_rgb(images: np.ndarray, bands: Sequence[str], q: float = 8.0) -> np.ndarray:
    """uint8 (H, W, 3) asinh composite (Lupton et al. 2004) from i, r, g.

    Falls back to the reddest three bands when i, r, g are not all present, and
    to grey for fewer than three bands. The stretch is set from the 99.5th
    percentile of the three channels so faint and bright stamps both show.
    """
    cube = _as_cube(images, bands)
    red, green, blue = (cube[k] for k in _rgb_index(bands))
    top = float(np.percentile(np.stack([red, green, blue]), 99.5))
    stretch = max(top, 1e-12) / 4.0
    # astropy evaluates fI / I before masking I <= 0: zero-padded pixels give a 0/0
    # that it then discards, so only that floating-point warning is silenced.
    with np.errstate(invalid="ignore", divide="ignore"):
        return make_lupton_rgb(red, green, blue, minimum=0.0, stretch=stretch, Q=q)


def _rgb_index(bands: Sequence[str]) -> list[int]:
    """The planes drawn as red, green, blue: i, r, g, else the reddest three, else grey."""
    names = [b.lower() for b in bands]
    if all(b in names for b in ("i", "r", "g")):
        return [names.index("i"), names.index("r"), names.index("g")]
    if len(names) >= 3:
        return [len(names) - 1, len(names) - 2, len(names) - 3]
    return [0, 0, 0]


STRETCHES = ("asinh", "linear")
"""Display stretches of :func:`display_plane` and :func:`display_rgb`."""


def _check_stretch(stretch: str) -> None:
    if stretch not in STRETCHES:
        raise ValueError(f"stretch must be one of {', '.join(STRETCHES)}, got {stretch!r}")


def display_plane(plane: np.ndarray, stretch: str = "asinh") -> np.ndarray:
    """uint8 (H, W) grey levels of one band: ``asinh`` as the band panels of
    :func:`cutout_figure` draw it, or ``linear``, both over the central 99% of the values.
    Non-finite pixels show black; ``plane`` is not modified."""
    _check_stretch(stretch)
    cube = _as_cube(plane, ["band"])[0]
    shape = AsinhStretch() if stretch == "asinh" else LinearStretch()
    norm = ImageNormalize(cube, interval=PercentileInterval(99.0), stretch=shape, clip=True)
    return np.round(np.asarray(norm(cube), dtype=np.float64) * 255.0).astype(np.uint8)


def display_rgb(images: np.ndarray, bands: Sequence[str], stretch: str = "asinh") -> np.ndarray:
    """uint8 (H, W, 3) composite of i, r, g: ``asinh`` is :func:`lupton_rgb`; ``linear`` maps
    0 .. the 99.5th percentile of the three planes linearly to 0 .. 255."""
    _check_stretch(stretch)
    if stretch == "asinh":
        return lupton_rgb(images, bands)
    cube = _as_cube(images, bands)
    rgb = np.stack([cube[k] for k in _rgb_index(bands)], axis=-1)
    top = max(float(np.percentile(rgb, 99.5)), 1e-12)
    return np.round(np.clip(rgb / top, 0.0, 1.0) * 255.0).astype(np.uint8)


def overlay_mask(grey_or_rgb: np.ndarray, masked: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3): the image with the ``masked`` pixels (a boolean (H, W)) tinted red, half
    opaque, so the pixels under the mask stay visible."""
    rgb = np.asarray(grey_or_rgb, dtype=np.float64)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[..., None], 3, axis=-1)
    red = np.array([255.0, 0.0, 0.0])
    rgb[masked] = 0.5 * rgb[masked] + 0.5 * red
    return np.round(rgb).astype(np.uint8)


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=DPI, format="png")
    return path


def save_preview_png(
    images: np.ndarray,
    bands: Sequence[str],
    path: str | Path,
    title: str | None = None,
    *,
    units: str = "flux (image units)",
) -> Path:
    """Save an RGB composite plus one panel per band with a colour bar.

    Parameters
    ----------
    images : numpy.ndarray
        (B, H, W) pixels; not modified.
    bands : sequence of str
        Band name of each image, e.g. ``('g', 'r', 'i', 'z', 'y')``.
    path : str or Path
        Output PNG; its size is ``(B + 1) * 240`` x ``240`` pixels (plus 30
        when a title is given).
    title : str, optional
        Figure title (say "SIMULATED" for simulated stamps).
    units : str
        Colour-bar label; the bar shows the image's own values (asinh display
        stretch over the 0.5-99.5 percentile range).

    Returns
    -------
    Path
    """
    cube = _as_cube(images, bands)
    ncols = cube.shape[0] + 1
    height = PANEL_INCHES + (0.3 if title else 0.0)
    fig = Figure(figsize=(ncols * PANEL_INCHES, height), dpi=DPI)
    top = PANEL_INCHES / height
    axes = [
        fig.add_axes((k / ncols + 0.01, 0.06 * top, 0.72 / ncols, 0.84 * top)) for k in range(ncols)
    ]
    axes[0].imshow(lupton_rgb(images, bands), origin="lower", interpolation="nearest")
    axes[0].set_title("RGB (i, r, g)" if len(bands) >= 3 else "composite", fontsize=9)
    for ax, plane, band in zip(axes[1:], cube, bands, strict=True):
        norm = ImageNormalize(plane, interval=PercentileInterval(99.0), stretch=AsinhStretch())
        shown = ax.imshow(plane, origin="lower", cmap="gray", norm=norm, interpolation="nearest")
        ax.set_title(band, fontsize=9)
        bar = fig.colorbar(shown, ax=ax, fraction=0.08, pad=0.02)
        bar.ax.tick_params(labelsize=6)
        bar.set_label(units, fontsize=6)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10, y=0.99)
    return _save(fig, path)


def save_gallery_png(
    items: Sequence[tuple[np.ndarray, str]],
    bands: Sequence[str],
    path: str | Path,
    ncols: int = 5,
    title: str | None = None,
) -> Path:
    """Save a grid of RGB thumbnails, each labelled.

    Parameters
    ----------
    items : sequence of (images, label)
        ``images`` is (B, H, W) in ``bands`` order; not modified.
    bands : sequence of str
        Band names shared by all items.
    path : str or Path
        Output PNG, ``ncols * 200`` x ``nrows * 200`` pixels (plus 30 for a title).
    ncols : int
        Thumbnails per row.
    title : str, optional
        Figure title.

    Returns
    -------
    Path
    """
    if not items:
        raise ValueError("items is empty: nothing to draw")
    if ncols < 1:
        raise ValueError(f"ncols must be >= 1, got {ncols}")
    ncols = min(ncols, len(items))
    nrows = -(-len(items) // ncols)
    cell = 2.0
    height = nrows * cell + (0.3 if title else 0.0)
    fig = Figure(figsize=(ncols * cell, height), dpi=DPI)
    grid_top = nrows * cell / height
    for k, (images, label) in enumerate(items):
        row, col = divmod(k, ncols)
        ax = fig.add_axes(
            (
                (col + 0.05) / ncols,
                grid_top * (1 - (row + 0.9) / nrows),
                0.9 / ncols,
                grid_top * 0.78 / nrows,
            )
        )
        ax.imshow(lupton_rgb(images, bands), origin="lower", interpolation="nearest")
        ax.set_title(str(label), fontsize=7)
        ax.set_xticks([])
        ax.set_yticks([])
    if title:
        fig.suptitle(title, fontsize=10, y=0.995)
    return _save(fig, path)


@dataclass(frozen=True)
class CutoutInfo:
    """What a reader needs beside the pixels: who, where, how far, how big a pixel is."""

    object_id: int
    ra: float | None = None  # degrees
    dec: float | None = None
    redshift: float | None = None
    redshift_source: str = ""  # e.g. "spec-z, ml_objects"
    pixel_scale: float | None = None  # arcsec per pixel
    simulated: bool = False
    units: str = "image units"  # of the pixel values
    missing: tuple[str, ...] = ()  # bands without a cutout (drawn blank)


def scale_bar_arcsec(side_arcsec: float) -> float | None:
    """The longest round angle (1, 2, 5, 10, ... arcsec) at most a third of the image side; on
    a small image the shortest if it is at most 80% of the side, else None (no bar fits)."""
    fitting = [a for a in SCALE_BARS_ARCSEC if a <= side_arcsec / 3]
    if fitting:
        return fitting[-1]
    return SCALE_BARS_ARCSEC[0] if SCALE_BARS_ARCSEC[0] <= 0.8 * side_arcsec else None


def _scale_bar(ax, width_px: int, height_px: int, pixel_scale: float) -> float | None:  # type: ignore[no-untyped-def]
    """A white bar with its length in arcsec, bottom left of an image axes; None (no bar) when
    the image is too small for one."""
    arcsec = scale_bar_arcsec(width_px * pixel_scale)
    x0, y0 = 0.06 * width_px, 0.08 * height_px
    if arcsec is None or x0 + arcsec / pixel_scale > width_px - 0.5:  # past the image's edge
        return None
    length = arcsec / pixel_scale
    for color, lw in (("black", 6.0), ("white", 3.0)):  # outlined: readable on any background
        ax.plot([x0, x0 + length], [y0, y0], color=color, lw=lw, solid_capstyle="butt")
    ax.text(
        x0 + length / 2,
        y0 + 0.04 * height_px,
        f'{arcsec:g}"',
        color="white",
        ha="center",
        va="bottom",
        fontsize=13,
        fontweight="bold",
        path_effects=[_outline()],
    )
    return arcsec


def _outline():  # type: ignore[no-untyped-def]
    from matplotlib import patheffects

    return patheffects.withStroke(linewidth=2.5, foreground="black")


def _coordinates(ra: float | None, dec: float | None) -> str:
    if ra is None or dec is None:
        return "position unknown"
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    c = SkyCoord(ra * u.deg, dec * u.deg)
    hms = c.ra.to_string(unit=u.hourangle, sep=":", precision=2, pad=True)
    dms = c.dec.to_string(unit=u.deg, sep=":", precision=1, alwayssign=True, pad=True)
    return f"RA {ra:.5f}°  Dec {dec:+.5f}°\n({hms}  {dms})"


def cutout_figure(images: np.ndarray, bands: Sequence[str], info: CutoutInfo) -> Figure:
    """A figure of one object a person can read: a large RGB composite with an angular scale
    bar, the object's id, position and redshift beside it, and one panel per band below with
    its colour bar in the pixel units.

    Parameters
    ----------
    images : numpy.ndarray
        (B, H, W) pixels in ``bands`` order; not modified.
    bands : sequence of str
        Band names, e.g. ``('g', 'r', 'i', 'z', 'y')``.
    info : CutoutInfo
        Object id, position, redshift, pixel scale and whether the pixels are simulated.

    Returns
    -------
    matplotlib.figure.Figure
        11 x 7.5 inches; save it at :data:`FIGURE_DPI` (1650 x 1125 pixels).

    Examples
    --------
    >>> fig = cutout_figure(cube, "grizy", CutoutInfo(1, 150.1, 2.2, 0.53, pixel_scale=0.168))
    ... # doctest: +SKIP
    """
    cube = _as_cube(images, bands)
    nb, height, width = cube.shape
    fig = Figure(figsize=(11.0, 7.5), dpi=FIGURE_DPI, layout="constrained")
    grid = fig.add_gridspec(2, max(nb, 3), height_ratios=(1.6, 1.0))
    rgb_ax = fig.add_subplot(grid[0, : max(nb, 3) // 2])
    kept = [k for k, b in enumerate(bands) if b not in info.missing] or list(range(nb))
    kept_bands = [bands[k] for k in kept]
    rgb_ax.imshow(
        lupton_rgb(np.asarray(images)[kept], kept_bands), origin="lower", interpolation="nearest"
    )
    rgb_ax.set_title(_composite_label(kept_bands), fontsize=12)
    rgb_ax.set_xticks([])
    rgb_ax.set_yticks([])
    has_bar = _scale_bar(rgb_ax, width, height, info.pixel_scale) if info.pixel_scale else None
    text_ax = fig.add_subplot(grid[0, max(nb, 3) // 2 :])
    text_ax.axis("off")
    if info.redshift is None:
        z_text = "redshift: unknown"
    else:
        z_text = f"z = {info.redshift:.4f}" + (
            f"  ({info.redshift_source})" if info.redshift_source else ""
        )
    side = (
        f'{width} x {height} px = {width * info.pixel_scale:.1f}" x '
        f'{height * info.pixel_scale:.1f}" ({info.pixel_scale:.3f}"/px)'
        + ("" if has_bar else ", too small for a scale bar")
        if info.pixel_scale
        else f"{width} x {height} px (pixel scale unknown: no scale bar)"
    )
    lines = [
        f"object_id {info.object_id}",
        _coordinates(info.ra, info.dec),
        z_text,
        side,
        f"pixel values: {info.units}",
    ]
    if info.missing:
        lines.append(f"no cutout in band(s) {', '.join(info.missing)} (drawn blank)")
    text_ax.text(
        0.02,
        0.95,
        "\n".join(lines),
        va="top",
        ha="left",
        fontsize=13,
        linespacing=1.5,
        transform=text_ax.transAxes,
    )
    text_ax.text(
        0.02,
        0.05,
        "SIMULATED image (not real data)" if info.simulated else "real HSC image",
        va="bottom",
        ha="left",
        fontsize=15,
        fontweight="bold",
        color="tab:red" if info.simulated else "black",
        transform=text_ax.transAxes,
    )
    for k, (plane, band) in enumerate(zip(cube, bands, strict=True)):
        ax = fig.add_subplot(grid[1, k])
        blank = band in info.missing
        norm = ImageNormalize(plane, interval=PercentileInterval(99.0), stretch=AsinhStretch())
        shown = ax.imshow(plane, origin="lower", cmap="gray", norm=norm, interpolation="nearest")
        ax.set_title(f"{band}" + (" (missing)" if blank else ""), fontsize=13)
        ax.set_xticks([])
        ax.set_yticks([])
        if blank:
            ax.text(
                0.5,
                0.5,
                f"no {band} cutout",
                color="white",
                fontsize=12,
                ha="center",
                va="center",
                transform=ax.transAxes,
            )
        if not blank:
            bar = fig.colorbar(shown, ax=ax, orientation="horizontal", fraction=0.08, pad=0.03)
            bar.ax.tick_params(labelsize=8)
            bar.locator = _few_ticks()
            bar.update_ticks()
    if info.simulated:
        watermark_simulated(fig, fontsize=90, alpha=0.15, rotation=25)
    kind = "SIMULATED" if info.simulated else "HSC"
    fig.suptitle(f"{kind} cutout of object_id {info.object_id}", fontsize=15)
    return fig


def _composite_label(bands: Sequence[str]) -> str:
    """What :func:`lupton_rgb` draws from ``bands``, for the panel's title."""
    names = [b.lower() for b in bands]
    if all(b in names for b in ("i", "r", "g")):
        return "RGB composite (i, r, g)"
    if len(bands) >= 3:
        return f"RGB composite ({', '.join(bands[-1:-4:-1])})"
    return f"{bands[0]} band (grey)"


def _few_ticks():  # type: ignore[no-untyped-def]
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(3)


def save_figure_png(fig: Figure, path: str | Path) -> Path:
    """Save a figure made here at :data:`FIGURE_DPI`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=FIGURE_DPI, format="png")
    return path


def watermark_simulated(fig: Figure, fontsize: float, alpha: float, rotation: float) -> None:
    """Write SIMULATED across a figure: the one mark every plot of simulated data carries."""
    fig.text(
        0.5,
        0.5,
        "SIMULATED",
        fontsize=fontsize,
        color="tab:red",
        alpha=alpha,
        rotation=rotation,
        ha="center",
        va="center",
        zorder=10,
    )
