"""Tests for loaders.simulated.images: SIMULATED Sérsic stamps with real HSC PSFs and noise."""

from __future__ import annotations

import math

import numpy as np
import pytest

from loaders.simulated.images import (
    DATA_DIR,
    SersicGalaxy,
    load_real_noise,
    load_real_psfs,
    mag_to_flux,
    real_cosmos_cutouts,
    render_galaxy,
    sersic_b,
    sersic_image,
)
from warehouse.images.bands import BANDS
from warehouse.images.fits import read_cutout_fits, write_cutout_fits
from warehouse.images.masks import HSC_MASK_BITS

MAGS = {"g": 22.4, "r": 21.9, "i": 21.5, "z": 21.3, "y": 21.2}


def _delta_psfs(k: int = 21) -> np.ndarray:
    psfs = np.zeros((5, k, k))
    psfs[:, k // 2, k // 2] = 1.0
    return psfs


def _centroid(plane: np.ndarray) -> tuple[float, float]:
    p = plane.astype(np.float64)
    y, x = np.indices(p.shape)
    return float((p * y).sum() / p.sum()), float((p * x).sum() / p.sum())


def test_sersic_b_matches_known_values():
    # b_1 = 1.6783, b_4 = 7.6692 (Ciotti & Bertin 1999)
    assert sersic_b(1.0) == pytest.approx(1.67834699, rel=1e-6)
    assert sersic_b(4.0) == pytest.approx(7.66924944, rel=1e-6)


def test_sersic_image_half_light_radius():
    gal = SersicGalaxy(MAGS, n=1.0, r_half_px=6.0, ellipticity=0.0, pos_angle_deg=0.0)
    img = sersic_image((201, 201), gal, (100.0, 100.0), oversample=5)
    y, x = np.indices(img.shape)
    r = np.hypot(y - 100, x - 100)
    assert img.sum() == pytest.approx(1.0, abs=1e-4)
    assert img[r < 6.0].sum() == pytest.approx(0.5, abs=0.02)


@pytest.mark.parametrize(("n", "r_half"), [(1.0, 2.0), (0.5, 1.5), (2.0, 1.5), (4.0, 1.0)])
def test_total_flux_matches_magnitude_for_compact_galaxy(n, r_half):
    image, variance = render_galaxy(
        64,
        mags=MAGS,
        n=n,
        r_half_px=r_half,
        ellipticity=0.3,
        pos_angle_deg=40.0,
        psfs=load_real_psfs(),
        noise_var=None,
        rng=None,
    )
    assert image.shape == variance.shape == (5, 64, 64)
    assert image.dtype == variance.dtype == np.float32
    assert not variance.any()
    for k, band in enumerate(BANDS):
        expected = 10 ** (-0.4 * (MAGS[band] - 27.0))
        assert image[k].sum(dtype=np.float64) == pytest.approx(expected, rel=0.03)


def test_centroid_at_centre_pixel_with_real_psf():
    image, _ = render_galaxy(
        65,
        mags=MAGS,
        n=1.0,
        r_half_px=3.0,
        ellipticity=0.5,
        pos_angle_deg=25.0,
        psfs=load_real_psfs(),
        noise_var=None,
        rng=None,
    )
    for plane in image:
        cy, cx = _centroid(plane)
        # real PSFs are off-centre by up to 0.25 px; the model itself is exact (next test)
        assert math.hypot(cy - 32, cx - 32) < 0.3


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.3, -0.2), (-2.5, 4.0)])
@pytest.mark.parametrize("size", [63, 64])
def test_centroid_follows_offset_exactly_with_point_psf(size, offset):
    image, _ = render_galaxy(
        size,
        mags=MAGS,
        n=1.0,
        r_half_px=2.5,
        ellipticity=0.4,
        pos_angle_deg=-30.0,
        psfs=_delta_psfs(),
        noise_var=None,
        rng=None,
        offset=offset,
    )
    cy, cx = _centroid(image[2])
    assert cy == pytest.approx(size // 2 + offset[0], abs=0.01)
    assert cx == pytest.approx(size // 2 + offset[1], abs=0.01)


def test_position_angle_is_east_of_north():
    """PA 0: major axis along rows (north); PA 90: along columns (east is -x)."""
    kwargs = {
        "mags": MAGS,
        "n": 1.0,
        "r_half_px": 4.0,
        "ellipticity": 0.6,
        "psfs": _delta_psfs(),
        "noise_var": None,
        "rng": None,
    }
    north, _ = render_galaxy(41, pos_angle_deg=0.0, **kwargs)
    east, _ = render_galaxy(41, pos_angle_deg=90.0, **kwargs)
    assert north[0, :, 20].sum() > 2 * north[0, 20, :].sum()
    assert east[0, 20, :].sum() > 2 * east[0, :, 20].sum()


def test_deterministic_given_seed():
    kwargs = {
        "mags": MAGS,
        "n": 1.5,
        "r_half_px": 3.0,
        "ellipticity": 0.2,
        "pos_angle_deg": 10.0,
        "psfs": load_real_psfs(),
        "noise_var": load_real_noise(),
    }
    a, va = render_galaxy(48, rng=7, **kwargs)
    b, vb = render_galaxy(48, rng=np.random.default_rng(7), **kwargs)
    c, _ = render_galaxy(48, rng=8, **kwargs)
    assert a.tobytes() == b.tobytes() and va.tobytes() == vb.tobytes()
    assert not np.array_equal(a, c)


def test_noise_variance_matches_real_hsc_variance():
    noise = load_real_noise()
    blank = dict.fromkeys(BANDS, math.inf)
    image, variance = render_galaxy(
        128,
        mags=blank,
        n=1.0,
        r_half_px=2.0,
        ellipticity=0.0,
        pos_angle_deg=0.0,
        psfs=load_real_psfs(),
        noise_var=noise,
        rng=3,
    )
    with np.load(DATA_DIR / "hsc_cosmos_35.npz") as data:
        real = np.median(data["variance"], axis=(1, 2))
    for k, band in enumerate(BANDS):
        assert noise[band] == pytest.approx(float(real[k]), rel=1e-6)
        assert np.all(variance[k] == np.float32(noise[band]))
        assert image[k].var(ddof=1) == pytest.approx(noise[band], rel=0.06)  # 16k pixels
    # real HSC depth: g is the deepest, y the noisiest
    assert noise["g"] < noise["i"] < noise["y"]


def test_neighbours_add_their_flux():
    kwargs = {
        "mags": MAGS,
        "n": 1.0,
        "r_half_px": 2.0,
        "ellipticity": 0.0,
        "pos_angle_deg": 0.0,
        "psfs": load_real_psfs(),
        "noise_var": None,
        "rng": None,
    }
    alone, _ = render_galaxy(96, **kwargs)
    neighbour = SersicGalaxy(dict.fromkeys(BANDS, 22.0), 1.0, 1.5, 0.2, 70.0, (20.0, -25.0))
    both, _ = render_galaxy(96, neighbours=[neighbour], **kwargs)
    extra = both[2].sum(dtype=np.float64) - alone[2].sum(dtype=np.float64)
    assert extra == pytest.approx(mag_to_flux(22.0), rel=0.03)
    assert both[2, 48 + 20, 48 - 25] > 10 * alone[2, 48 + 20, 48 - 25]


def test_real_psfs_are_normalised_and_untouched_in_shape():
    for source, k in (("hsc_cosmos", 41), ("hsc_cosmos_35", 43), ("PSF_HSC", 31)):
        psfs = load_real_psfs(source)
        assert psfs.shape == (5, k, k)
        assert np.allclose(psfs.sum(axis=(1, 2)), 1.0, atol=1e-12)
        assert all(np.unravel_index(p.argmax(), p.shape) == (k // 2, k // 2) for p in psfs)
    with pytest.raises(ValueError, match="unknown PSF source"):
        load_real_psfs("nope")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("n", 12.0, "Sérsic index"),
        ("r_half_px", 0.0, "r_half_px"),
        ("ellipticity", 1.0, "ellipticity"),
        ("mags", {"g": 20.0}, "no magnitude for band"),
    ],
)
def test_invalid_parameters_name_the_field(field, value, message):
    args = {"mags": MAGS, "n": 1.0, "r_half_px": 2.0, "ellipticity": 0.1, "pos_angle_deg": 0.0}
    args[field] = value
    with pytest.raises(ValueError, match=message):
        SersicGalaxy(**args)


def test_noise_needs_a_seed():
    with pytest.raises(ValueError, match="rng"):
        render_galaxy(
            16,
            mags=MAGS,
            n=1.0,
            r_half_px=2.0,
            ellipticity=0.0,
            pos_angle_deg=0.0,
            psfs=load_real_psfs(),
            noise_var=load_real_noise(),
            rng=None,
        )


def test_simulated_stamp_round_trips_through_cutout_fits(tmp_path):
    image, variance = render_galaxy(
        127,
        mags=MAGS,
        n=2.0,
        r_half_px=4.0,
        ellipticity=0.3,
        pos_angle_deg=60.0,
        psfs=load_real_psfs(),
        noise_var=load_real_noise(),
        rng=11,
    )
    for k, band in enumerate(BANDS):
        path = write_cutout_fits(
            tmp_path / f"{band}.fits",
            image[k],
            band=band,
            ra=150.1,
            dec=2.2,
            variance=variance[k],
            simulated=True,
        )
        cut = read_cutout_fits(path)
        assert cut.simulated is True
        assert cut.image.tobytes() == image[k].tobytes()
        assert cut.variance.tobytes() == variance[k].tobytes()


# --------------------------------------------------------------------------- real cutouts


def test_real_cosmos_cutouts():
    items = real_cosmos_cutouts()
    names = [item["name"] for item in items]
    assert names == ["hsc_cosmos_35", "43158172147386355", "hsc_ra150.24071_dec2.06514", "Cut_HSC"]
    for item in items:
        images = item["images"]
        assert images.dtype == np.float32 and images.ndim == 3 and images.shape[0] == 5
        assert np.isfinite(images).all()
        assert item["simulated"] is False
        assert item["pixel_scale"] == 0.168
        assert (DATA_DIR / item["source"]).is_file()
        for key in ("variance", "mask"):
            if item[key] is not None:
                assert item[key].shape == images.shape
    by_name = {item["name"]: item for item in items}
    assert by_name["hsc_cosmos_35"]["ra"] is None
    assert by_name["hsc_cosmos_35"]["zeropoint"] == 27.0
    assert by_name["Cut_HSC"]["ra"] == pytest.approx(150.3191, abs=1e-3)
    assert by_name["Cut_HSC"]["dec"] == pytest.approx(2.0394, abs=1e-3)
    assert by_name["Cut_HSC"]["zeropoint"] is None  # per-band normalised pixels
    assert by_name["hsc_ra150.24071_dec2.06514"]["ra"] == pytest.approx(150.24071, abs=1e-4)
    assert by_name["hsc_ra150.24071_dec2.06514"]["dec"] == pytest.approx(2.06514, abs=1e-4)
    obj = by_name["43158172147386355"]
    nodata = obj["mask"] == 1 << HSC_MASK_BITS["NO_DATA"]
    assert np.isinf(obj["variance"][nodata]).all()
    assert np.isfinite(obj["variance"][~nodata]).all()
    with np.load(DATA_DIR / "hsc_cosmos.npz") as dup:
        assert np.array_equal(dup["images"], obj["images"])


def test_shipped_data_is_small():
    total = sum(p.stat().st_size for p in DATA_DIR.iterdir() if p.is_file())
    assert total < 1_000_000
