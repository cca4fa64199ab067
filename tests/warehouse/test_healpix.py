"""HEALPix spatial index: agreement with hats, coarser orders by shifting, cone coverage."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from warehouse.healpix import (
    angular_separation_deg,
    cone_pixel_ranges,
    pixel_range,
    shift,
    spatial_index,
)

ra_st = st.floats(0.0, 360.0, allow_nan=False, exclude_max=True)
dec_st = st.floats(-90.0, 90.0, allow_nan=False)


def test_spatial_index_equals_hats():
    from hats.pixel_math.spatial_index import compute_spatial_index

    rng = np.random.default_rng(3)
    ra = rng.uniform(0, 360, 20_000)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, 20_000)))
    ra = np.concatenate([ra, [0.0, 359.9999999, 180.0, 0.0, 0.0]])
    dec = np.concatenate([dec, [0.0, 0.0, 90.0, -90.0, 89.9999999]])
    assert np.array_equal(spatial_index(ra, dec), compute_spatial_index(ra, dec))


@given(ra_st, dec_st, st.integers(0, 29))
def test_coarser_pixel_is_a_shift(ra, dec, order):
    import healpy as hp

    h29 = int(spatial_index(np.array([ra]), np.array([dec]))[0])
    expected = hp.ang2pix(2**order, ra, dec, nest=True, lonlat=True)
    coarse = h29 >> shift(order)
    assert coarse == expected
    lo, hi = pixel_range(order, coarse)
    assert lo <= h29 < hi


def test_ra_360_is_ra_0():
    assert (
        spatial_index(np.array([360.0]), np.array([10.0]))[0]
        == spatial_index(np.array([0.0]), np.array([10.0]))[0]
    )


@settings(max_examples=60, deadline=None)
@given(ra_st, dec_st, st.floats(0.5, 3600.0))
def test_cone_ranges_cover_every_point_inside(ra, dec, radius):
    rng = np.random.default_rng(0)
    # points scattered up to twice the radius around the centre, including across RA 0 and poles
    r = np.radians(radius / 3600.0) * np.sqrt(rng.uniform(0, 4, 400))
    theta = rng.uniform(0, 2 * np.pi, 400)
    d0, a0 = np.radians(dec), np.radians(ra)
    dec_p = np.arcsin(np.sin(d0) * np.cos(r) + np.cos(d0) * np.sin(r) * np.cos(theta))
    ra_p = a0 + np.arctan2(
        np.sin(theta) * np.sin(r) * np.cos(d0), np.cos(r) - np.sin(d0) * np.sin(dec_p)
    )
    ra_p, dec_p = np.mod(np.degrees(ra_p), 360.0), np.degrees(dec_p)
    inside = angular_separation_deg(ra_p, dec_p, ra, dec) * 3600 <= radius
    h = spatial_index(ra_p, dec_p)
    ranges = cone_pixel_ranges(ra, dec, radius)
    covered = np.zeros(h.size, bool)
    for lo, hi in ranges:
        covered |= (h >= lo) & (h < hi)
    assert covered[inside].all()


def test_haversine_small_separation():
    # 1 milliarcsecond apart in Dec: the cosine formula loses this in float64
    d = angular_separation_deg(np.array([10.0]), np.array([20.0]), 10.0, 20.0 + 1e-3 / 3600)
    assert abs(d[0] * 3600 - 1e-3) < 1e-9


def test_spatial_index_wraps_ra_exactly_as_np_mod_would():
    """RA outside [0, 360) (or -0.0) is wrapped; inside, the values go to healpy unchanged."""
    import healpy as hp

    ra = np.array([0.0, -0.0, 360.0, 359.999999999, -10.0, 725.0, 1e-300, 150.25])
    dec = np.array([0.0, 0.0, 0.0, 89.9999, -5.0, 5.0, -90.0, 2.2])
    want = hp.ang2pix(2**29, np.mod(ra, 360.0), dec, nest=True, lonlat=True)
    assert spatial_index(ra, dec).tolist() == np.asarray(want, np.int64).tolist()
    inside = slice(6, 8)  # only values in [0, 360): no wrap needed
    assert spatial_index(ra[inside], dec[inside]).tolist() == want[inside].tolist()
