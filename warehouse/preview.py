"""PNG previews of multi-band cutouts for a person to look at.

Display only: the stretch changes what is drawn, never the arrays passed in
(they are copied before any NaN handling or scaling). Figures are drawn with
matplotlib's Agg canvas directly, so no GUI backend or pyplot state is touched.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from astropy.visualization import AsinhStretch, ImageNormalize, PercentileInterval, make_lupton_rgb
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

__all__ = ["lupton_rgb", "save_gallery_png", "save_preview_png"]

PANEL_INCHES = 2.4
DPI = 100


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
    names = [b.lower() for b in bands]
    if all(b in names for b in ("i", "r", "g")):
        idx = [names.index("i"), names.index("r"), names.index("g")]
    elif len(names) >= 3:
        idx = [len(names) - 1, len(names) - 2, len(names) - 3]
    else:
        idx = [0, 0, 0]
    red, green, blue = (cube[k] for k in idx)
    top = float(np.percentile(np.stack([red, green, blue]), 99.5))
    stretch = max(top, 1e-12) / 4.0
    # astropy evaluates fI / I before masking I <= 0: zero-padded pixels give a 0/0
    # that it then discards, so only that floating-point warning is silenced.
    with np.errstate(invalid="ignore", divide="ignore"):
        return make_lupton_rgb(red, green, blue, minimum=0.0, stretch=stretch, Q=q)


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
