"""Cutout PNGs: one PNG pixel per stored pixel, row 0 at the bottom, stretches, the mask."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from warehouse.core import Warehouse
from warehouse.cutouts import StoredCutout
from warehouse.images.masks import HSC_MASK_BITS
from warehouse.web.images import render


def _png(body: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(body)))


def test_band_and_rgb_pngs_have_the_cutout_size(get, demo_root):
    wh = Warehouse.open(demo_root)
    rows = wh.query(
        "SELECT object_id, g_width, g_height, i_width, i_height FROM cutouts ORDER BY object_id"
    ).to_pylist()
    for r in (rows[0], rows[-1]):  # a real COSMOS cutout (50 or 54 px) and a simulated one
        oid = r["object_id"]
        g = _png(get(f"/cutout/{oid}/g.png").body)
        assert g.shape == (r["g_height"], r["g_width"]) and g.std() > 0
        rgb = _png(get(f"/cutout/{oid}/rgb.png", stretch="linear").body)
        assert rgb.shape == (r["i_height"], r["i_width"], 3) and rgb.std() > 0
    asinh = get(f"/cutout/{rows[-1]['object_id']}/i.png").body
    linear = get(f"/cutout/{rows[-1]['object_id']}/i.png", stretch="linear").body
    assert asinh != linear
    assert get(f"/cutout/{rows[-1]['object_id']}/i.png").body == asinh  # cached, same bytes


def test_image_errors(get):
    assert get("/cutout/12345/g.png").status == 404
    assert get("/cutout/-1/q.png").status == 404
    assert get("/cutout/-1/g.png", stretch="log").status == 400  # a bad parameter
    bad_mask = get("/cutout/-1/g.png", mask="2")  # was the plain image, 200
    assert bad_mask.status == 400 and "mask must be 1 or 0, got &#39;2&#39;" in bad_mask.text
    assert get("/cutout/-1/g.png", mask="on").status == 200
    huge = get("/api/sql", q="select 1", page="99999999999999999999")
    assert huge.status == 400 and huge.json()["error"].startswith("page must be 1 to 1,000,000,000")


def _cut(mask: np.ndarray | None) -> StoredCutout:
    images = np.zeros((5, 6, 8), np.float32)
    images[:, 0, 0] = 100.0  # FITS row 0, column 0: bottom left when displayed
    images += np.linspace(0, 1, 48, dtype=np.float32).reshape(6, 8)
    return StoredCutout(
        object_id=7,
        bands=("g", "r", "i", "z", "y"),
        images=images,
        variance=None,
        mask=mask,
        present=(True,) * 5,
        zeropoints=(27.0,) * 5,
        simulated=True,
        metadata={},
    )


def test_row_zero_is_drawn_at_the_bottom():
    grey = _png(render(_cut(None), "g", "linear", False))
    assert grey.shape == (6, 8) and grey[-1, 0] == grey.max() and grey[0, 0] < grey.max()


def test_mask_on_demand_tints_the_bad_pixels_red():
    mask = np.zeros((5, 6, 8), np.int32)
    mask[1, 3, 4] = 1 << HSC_MASK_BITS["SAT"]  # bad in r
    mask[1, 2, 2] = 1 << HSC_MASK_BITS["DETECTED"]  # not a bad plane: left alone
    plain = _png(render(_cut(mask), "r", "asinh", False))
    shown = _png(render(_cut(mask), "r", "asinh", True))
    assert plain.ndim == 2 and shown.shape == (6, 8, 3)
    row = 6 - 1 - 3  # flipped for display
    r, g, b = shown[row, 4]
    assert r > g and r > b
    assert shown[6 - 1 - 2, 2, 0] == shown[6 - 1 - 2, 2, 1]  # DETECTED stays grey
    other_band = _png(render(_cut(mask), "g", "asinh", True))
    assert other_band[row, 4, 0] == other_band[row, 4, 1]  # the mask is r's, not g's
    rgb = _png(render(_cut(mask), "rgb", "asinh", True))
    assert rgb[row, 4, 0] > rgb[row, 4, 1]  # the composite shows every band's mask
