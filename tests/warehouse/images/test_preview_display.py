"""The display stretches of warehouse.images.preview used by gwh serve: shapes, ranges, the
asinh/linear difference, the mask overlay, and the caller's pixels left untouched."""

from __future__ import annotations

import numpy as np
import pytest

from warehouse.images.preview import display_plane, display_rgb, lupton_rgb, overlay_mask


@pytest.fixture
def cube():
    rng = np.random.default_rng(3)
    images = rng.normal(0.0, 1.0, (5, 41, 37)).astype(np.float32)
    images[:, 15:25, 12:22] += 200.0  # a bright galaxy
    images[2, 0, 0] = np.nan
    return images


def test_display_plane_is_uint8_of_the_same_shape(cube):
    before = cube.copy()
    for stretch in ("asinh", "linear"):
        grey = display_plane(cube[2], stretch)
        assert grey.dtype == np.uint8 and grey.shape == (41, 37)
        assert grey[20, 17] >= 250 and grey[0, 0] < 100  # galaxy bright, NaN shown black
    assert np.array_equal(cube, before, equal_nan=True)


def test_asinh_lifts_the_faint_pixels_more_than_linear(cube):
    faint = (slice(30, 41), slice(0, 10))  # sky away from the galaxy
    assert (
        display_plane(cube[2], "asinh")[faint].mean()
        > display_plane(cube[2], "linear")[faint].mean()
    )


def test_display_rgb(cube):
    assert np.array_equal(display_rgb(cube, "grizy", "asinh"), lupton_rgb(cube, "grizy"))
    linear = display_rgb(cube, "grizy", "linear")
    assert linear.shape == (41, 37, 3) and linear.dtype == np.uint8 and linear.max() == 255
    with pytest.raises(ValueError, match="stretch must be one of asinh, linear"):
        display_rgb(cube, "grizy", "log")


def test_overlay_mask_tints_only_the_masked_pixels():
    grey = np.full((4, 4), 100, np.uint8)
    masked = np.zeros((4, 4), bool)
    masked[1, 2] = True
    out = overlay_mask(grey, masked)
    assert out.shape == (4, 4, 3) and tuple(out[1, 2]) == (178, 50, 50)
    assert (out[~masked] == 100).all()
