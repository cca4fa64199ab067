"""Tests for warehouse.images.preview: PNGs decode, have the documented size, data untouched."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pytest

from loaders.simulated.images import real_cosmos_cutouts
from warehouse.images.bands import BANDS
from warehouse.images.fit import fit_to_size
from warehouse.images.preview import lupton_rgb, save_gallery_png, save_preview_png


@pytest.fixture(scope="module")
def real():
    return real_cosmos_cutouts()


def test_preview_png_of_real_cutout(tmp_path, real):
    images = real[0]["images"]
    before = images.copy()
    path = save_preview_png(images, BANDS, tmp_path / "sub" / "p.png", title="hsc_cosmos_35")
    png = mpimg.imread(path)
    assert png.shape == (270, 6 * 240, 4)  # 5 bands + RGB, 240 px panels, 30 px title
    assert png[..., :3].std() > 0.05  # something was drawn
    assert images.tobytes() == before.tobytes()


def test_preview_without_title_and_with_nan_and_zero_padding(tmp_path):
    images = np.zeros((5, 40, 40), dtype=np.float32)
    images[:, 10:30, 10:30] = np.random.default_rng(0).normal(1, 0.2, (5, 20, 20))
    images[1, 15, 15] = np.nan
    before = images.copy()
    padded, _, _ = fit_to_size(images, 64)  # zero padding: the 0/0 case of the Lupton map
    save_preview_png(padded, BANDS, tmp_path / "p.png")
    assert mpimg.imread(tmp_path / "p.png").shape == (240, 1440, 4)
    assert np.array_equal(images, before, equal_nan=True)


def test_preview_rejects_band_mismatch(tmp_path):
    with pytest.raises(ValueError, match="3 band names for 5 images"):
        save_preview_png(np.zeros((5, 4, 4)), "gri", tmp_path / "x.png")


def test_gallery_png(tmp_path, real):
    items = [(item["images"], item["name"]) for item in real]
    copies = [images.copy() for images, _ in items]
    path = save_gallery_png(items, BANDS, tmp_path / "g.png", ncols=3, title="real COSMOS")
    png = mpimg.imread(path)
    assert png.shape == (2 * 200 + 30, 3 * 200, 4)
    for (images, _), copy in zip(items, copies, strict=True):
        assert images.tobytes() == copy.tobytes()
    with pytest.raises(ValueError, match="items is empty"):
        save_gallery_png([], BANDS, tmp_path / "e.png")


def test_lupton_rgb_uses_i_r_g():
    images = np.zeros((5, 8, 8))
    images[BANDS.index("i")] = 1.0  # only i has light: the composite must be red
    rgb = lupton_rgb(images, BANDS)
    assert rgb.dtype == np.uint8 and rgb.shape == (8, 8, 3)
    assert rgb[..., 0].min() > 0 and rgb[..., 1].max() == 0 and rgb[..., 2].max() == 0


@pytest.mark.parametrize("side_px", [1, 2, 5, 9, 64])
def test_the_scale_bar_never_passes_the_image_edge(side_px):
    """A 1x1 cutout got a 1" bar six pixels long: the RGB panel was widened around it."""
    from warehouse.images.preview import CutoutInfo, cutout_figure

    cube = np.ones((5, side_px, side_px), dtype=np.float32)
    fig = cutout_figure(cube, "grizy", CutoutInfo(1, 150.1, 2.2, None, pixel_scale=0.168))
    rgb = fig.axes[0]
    lo, hi = rgb.get_xlim()
    assert (lo, hi) == (-0.5, side_px - 0.5)  # the image's own extent
    bars = [line.get_xdata() for line in rgb.get_lines()]
    assert all(hi >= max(x) and min(x) >= lo for x in bars)
    text = "\n".join(t.get_text() for ax in fig.axes for t in ax.texts)
    if side_px * 0.168 < 1.0 / 0.8:  # not even a 1" bar fits
        assert not bars and "too small for a scale bar" in text
    else:
        assert bars
