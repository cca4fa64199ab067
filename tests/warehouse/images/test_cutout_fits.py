"""Tests for warehouse.images: real and broken HSC cutout FITS files, masks, crop/pad."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from warehouse.errors import CutoutError
from warehouse.images.bands import band_from_filter
from warehouse.images.fit import fit_to_size
from warehouse.images.fits import read_cutout_fits, write_cutout_fits
from warehouse.images.masks import (
    DEFAULT_BAD_MASK_BITS,
    HSC_MASK_BITS,
    mask_bits_value,
    masked_fraction,
)

DATA = Path(__file__).resolve().parents[2] / "data" / "cutouts"
REAL = DATA / "image.fits"


# --------------------------------------------------------------------------- real file


def test_real_cutout_metadata():
    cut = read_cutout_fits(REAL)
    assert cut.band == "r"
    assert cut.filter_name == "r"
    assert cut.zeropoint == 27.0
    assert cut.pixel_scale == pytest.approx(0.168, abs=0.001)
    # (34.0, -5.0) within 0.5 arcsec
    dra = (cut.center_ra - 34.0) * math.cos(math.radians(-5.0)) * 3600
    ddec = (cut.center_dec + 5.0) * 3600
    assert math.hypot(dra, ddec) < 0.5
    assert cut.shape == (180, 179)
    assert cut.mask is None and cut.variance is None
    assert cut.tract is None and cut.patch is None and cut.rerun is None
    assert cut.simulated is None
    assert cut.source == REAL


def test_real_cutout_pixels_bit_identical_to_astropy_raw_read():
    cut = read_cutout_fits(REAL)
    with fits.open(REAL, do_not_scale_image_data=True) as hdul:
        raw = np.array(hdul[1].data)
    assert cut.image.dtype == np.float32
    assert raw.dtype == np.dtype(">f4")
    assert cut.image.shape == raw.shape
    assert cut.image.astype(">f4").tobytes() == raw.tobytes()
    assert not cut.image.flags.writeable


def test_real_cutout_written_back_reads_identically(tmp_path):
    cut = read_cutout_fits(REAL)
    out = write_cutout_fits(
        tmp_path / "copy.fits",
        cut.image,
        band=cut.filter_name,
        ra=cut.center_ra,
        dec=cut.center_dec,
        pixel_scale=cut.pixel_scale,
        zeropoint=cut.zeropoint,
        simulated=False,
    )
    back = read_cutout_fits(out)
    assert back.image.tobytes() == cut.image.tobytes()
    assert back.band == "r" and back.filter_name == "HSC-R"
    assert back.simulated is False
    assert back.zeropoint == cut.zeropoint
    assert back.center_ra == pytest.approx(cut.center_ra, abs=1e-10)
    assert back.center_dec == pytest.approx(cut.center_dec, abs=1e-10)


# --------------------------------------------------------------------------- round trip


@st.composite
def _cutouts(draw):
    ny = draw(st.integers(1, 40))
    nx = draw(st.integers(1, 40))
    image = draw(hnp.arrays(np.float32, (ny, nx), elements=st.floats(width=32, allow_nan=True)))
    mask = draw(st.none() | hnp.arrays(np.int32, (ny, nx), elements=st.integers(0, 2**17 - 1)))
    variance = draw(
        st.none() | hnp.arrays(np.float32, (ny, nx), elements=st.floats(0, 1e6, width=32))
    )
    return image, mask, variance


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    data=_cutouts(),
    band=st.sampled_from(["g", "r", "i", "z", "y", "HSC-R2", "HSC-I2"]),
    ra=st.floats(0, 359.999),
    dec=st.floats(-89.0, 89.0),
    zeropoint=st.sampled_from([27.0, 25.5, 31.4]),
    simulated=st.booleans(),
)
def test_write_read_round_trip(tmp_path, data, band, ra, dec, zeropoint, simulated):
    image, mask, variance = data
    path = write_cutout_fits(
        tmp_path / "c.fits",
        image,
        band=band,
        ra=ra,
        dec=dec,
        zeropoint=zeropoint,
        mask=mask,
        variance=variance,
        tract=9813,
        patch="4,5",
        rerun="pdr2_wide",
        simulated=simulated,
        overwrite=True,
    )
    cut = read_cutout_fits(path)
    assert cut.image.dtype == np.float32
    assert cut.image.tobytes() == image.tobytes()  # bit-exact, NaNs included
    if mask is None:
        assert cut.mask is None
    else:
        assert cut.mask.dtype == np.int32 and np.array_equal(cut.mask, mask)
    if variance is None:
        assert cut.variance is None
    else:
        assert cut.variance.tobytes() == variance.tobytes()
    assert cut.band == band_from_filter(band)
    assert cut.filter_name == (band if band.startswith("HSC") else f"HSC-{band.upper()}")
    assert cut.zeropoint == zeropoint
    assert cut.pixel_scale == pytest.approx(0.168, rel=1e-9)
    assert cut.center_dec == pytest.approx(dec, abs=1e-9)
    assert (cut.center_ra - ra + 180) % 360 - 180 == pytest.approx(0, abs=1e-9)
    assert (cut.tract, cut.patch, cut.rerun) == (9813, "4,5", "pdr2_wide")
    assert cut.simulated is simulated


def test_write_refuses_to_overwrite(tmp_path):
    path = write_cutout_fits(
        tmp_path / "a.fits", np.zeros((3, 3)), band="g", ra=1, dec=2, simulated=True
    )
    with pytest.raises(CutoutError, match=r"a\.fits already exists.*overwrite=True"):
        write_cutout_fits(path, np.zeros((3, 3)), band="g", ra=1, dec=2, simulated=True)


def test_write_mask_planes_are_declared(tmp_path):
    mask = np.zeros((4, 4), np.int32)
    path = write_cutout_fits(
        tmp_path / "m.fits", np.zeros((4, 4)), band="z", ra=1, dec=2, mask=mask, simulated=True
    )
    assert read_cutout_fits(path).mask_planes == HSC_MASK_BITS


def test_tract_and_rerun_from_das_member_name(tmp_path):
    name = tmp_path / "2-cutout-HSC-I-9813-pdr2_wide.fits"
    write_cutout_fits(name, np.ones((5, 5)), band="i", ra=150.1, dec=2.2, simulated=True)
    cut = read_cutout_fits(name)
    assert (cut.tract, cut.rerun, cut.patch) == (9813, "pdr2_wide", None)


# --------------------------------------------------------------------------- broken files


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("truncated.fits", "truncated"),
        ("truncated_at_block.fits", "truncated"),
        ("no_filter.fits", "no FILTER"),
        ("no_wcs.fits", "no celestial TAN WCS"),
        ("no_image.fits", "no 2-D IMAGE HDU"),
        ("not_fits.fits", "not a FITS file"),
    ],
)
def test_broken_files_raise_cutout_error_naming_the_file(name, message):
    path = DATA / name
    with pytest.raises(CutoutError, match=message) as info:
        read_cutout_fits(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(CutoutError, match="no such cutout file"):
        read_cutout_fits(tmp_path / "nope.fits")


def test_scaled_image_is_refused(tmp_path):
    """BSCALE/BZERO would silently change flux values; refuse instead of rescaling."""
    with fits.open(DATA / "no_filter.fits", do_not_scale_image_data=True) as hdul:
        hdul[0].header["FILTER"] = "HSC-G"
        hdul[1].header["BZERO"] = 10.0
        hdul.writeto(tmp_path / "scaled.fits")
    with fits.open(tmp_path / "scaled.fits", do_not_scale_image_data=True) as hdul:
        assert hdul[1].header["BZERO"] == 10.0  # the card really is in the file
    with pytest.raises(CutoutError, match="BSCALE/BZERO"):
        read_cutout_fits(tmp_path / "scaled.fits")


def test_unsigned_mask_is_read_exactly(tmp_path):
    """uint16 masks are stored as int16 + BZERO=32768; the reader must undo that exactly."""
    path = write_cutout_fits(
        tmp_path / "u.fits", np.zeros((2, 2)), band="g", ra=1, dec=2, simulated=True
    )
    mask = np.array([[0, 1], [2**15, 2**16 - 1]], dtype=np.uint16)
    with fits.open(path) as hdul:
        hdul[2] = fits.ImageHDU(mask, name="MASK")
        hdul.writeto(tmp_path / "u16.fits")
    with fits.open(tmp_path / "u16.fits", do_not_scale_image_data=True) as hdul:
        assert hdul[2].header["BZERO"] == 32768
    cut = read_cutout_fits(tmp_path / "u16.fits")
    assert cut.mask.dtype == np.int32
    assert cut.mask.tolist() == [[0, 1], [2**15, 2**16 - 1]]


def test_unknown_filter_is_refused(tmp_path):
    with fits.open(DATA / "no_filter.fits") as hdul:
        hdul[0].header["FILTER"] = "NB0921"
        hdul.writeto(tmp_path / "nb.fits")
    with pytest.raises(CutoutError, match="unknown HSC filter 'NB0921'"):
        read_cutout_fits(tmp_path / "nb.fits")


@pytest.mark.parametrize(
    ("name", "band"),
    [("HSC-G", "g"), ("HSC-R2", "r"), ("HSC-I2", "i"), ("hsc-z", "z"), ("Y", "y"), ("r", "r")],
)
def test_band_from_filter(name, band):
    assert band_from_filter(name) == band


# --------------------------------------------------------------------------- fit_to_size


def test_fit_119_padded_to_127():
    arr = np.arange(119 * 119, dtype=np.float32).reshape(119, 119) + 1
    out, action, offset = fit_to_size(arr, 127)
    assert action == "padded" and offset == (4, 4)
    assert out.shape == (127, 127) and out.dtype == np.float32
    assert out[63, 63] == arr[59, 59]
    assert np.array_equal(out[4:123, 4:123], arr)
    assert not out[:4].any() and not out[123:].any()
    assert not out[:, :4].any() and not out[:, 123:].any()


def test_fit_180x179_cropped_to_127():
    arr = np.random.default_rng(0).normal(size=(180, 179)).astype(np.float32)
    out, action, offset = fit_to_size(arr, 127)
    assert action == "cropped" and offset == (-27, -26)
    assert out[63, 63] == arr[90, 89]
    assert np.array_equal(out, arr[27:154, 26:153])


def test_fit_mixed_and_none_and_bands():
    cube = np.ones((5, 64, 200), dtype=np.int32)
    out, action, offset = fit_to_size(cube, 127, fill=-1)
    assert out.shape == (5, 127, 127) and action == "cropped+padded"
    assert offset == (31, -37)
    assert (out == -1).sum() == 5 * 127 * (127 - 64)
    same, action, offset = fit_to_size(np.ones((7, 7)), 7)
    assert action == "none" and offset == (0, 0)


@settings(max_examples=200, deadline=None)
@given(
    ny=st.integers(1, 60),
    nx=st.integers(1, 60),
    size=st.integers(1, 60),
    seed=st.integers(0, 2**32 - 1),
)
def test_fit_keeps_centre_and_values(ny, nx, size, seed):
    arr = np.random.default_rng(seed).integers(1, 1000, size=(ny, nx)).astype(np.int64)
    out, action, (dy, dx) = fit_to_size(arr, size)
    assert out.shape == (size, size)
    assert out[size // 2, size // 2] == arr[ny // 2, nx // 2]
    assert (dy, dx) == (size // 2 - ny // 2, size // 2 - nx // 2)
    # kept region: values unchanged, sum equal, padding is fill only
    ys = slice(max(0, -dy), min(ny, size - dy))
    xs = slice(max(0, -dx), min(nx, size - dx))
    kept = arr[ys, xs]
    assert out.sum() == kept.sum()
    assert np.count_nonzero(out) == kept.size
    assert np.array_equal(out[ys.start + dy : ys.stop + dy, xs.start + dx : xs.stop + dx], kept)
    cropped = ny > size or nx > size
    padded = ny < size or nx < size
    expected = {
        (False, False): "none",
        (True, False): "cropped",
        (False, True): "padded",
        (True, True): "cropped+padded",
    }[(cropped, padded)]
    assert action == expected


def test_fit_does_not_modify_input():
    arr = np.arange(30.0).reshape(5, 6)
    before = arr.copy()
    out, _, _ = fit_to_size(arr, 3)
    out[:] = -1
    assert np.array_equal(arr, before)


# --------------------------------------------------------------------------- masks


def test_masked_fraction_default_ignores_detected():
    detected = 1 << HSC_MASK_BITS["DETECTED"]
    mask = np.array([[0, detected], [1 << HSC_MASK_BITS["SAT"], detected | 1]], dtype=np.int32)
    assert masked_fraction(mask) == 0.5
    assert masked_fraction(mask, bits="any") == 0.75
    assert masked_fraction(mask, bits=["DETECTED"]) == 0.5
    assert masked_fraction(mask, bits=[5]) == 0.5
    assert masked_fraction(np.zeros((0, 3), np.int32)) == 0.0


def test_masked_fraction_on_real_hsc_mask_planes():
    """Real masks (hsc_cosmos_35) set INTRP|CR on 4.1% of pixels and DETECTED on 79%."""
    from loaders.simulated.images import DATA_DIR

    with np.load(DATA_DIR / "hsc_cosmos_35.npz") as data:
        mask = data["mask"].astype(np.int64)
    intrp_or_cr = np.count_nonzero(mask & 0b1100) / mask.size
    assert masked_fraction(mask) == pytest.approx(intrp_or_cr)
    assert 0.03 < masked_fraction(mask) < 0.05
    assert masked_fraction(mask, bits=["DETECTED"]) == pytest.approx(0.7938, abs=1e-4)
    assert masked_fraction(mask, bits="any") > masked_fraction(mask, bits=["DETECTED"])


def test_mask_bits_value_and_errors():
    assert mask_bits_value(DEFAULT_BAD_MASK_BITS) == sum(
        1 << HSC_MASK_BITS[name] for name in DEFAULT_BAD_MASK_BITS
    )
    assert "DETECTED" not in DEFAULT_BAD_MASK_BITS
    assert mask_bits_value(["MYPLANE"], planes={"MYPLANE": 20}) == 1 << 20
    with pytest.raises(ValueError, match="unknown mask plane 'NOPE'"):
        mask_bits_value(["NOPE"])


@pytest.mark.parametrize(
    ("offset", "chunk", "what"),
    [  # found by fuzzing batch tars: astropy raised these past the reader's own checks
        (1570, b"M", "VerifyError: an unparsable FLUXMAG0 card"),
        (3046, b"\x84\xca\xfd\x97\t%\xe1", "AttributeError: an HDU of no known kind"),
        (3121, b"\xacu", "KeyError: NAXIS1 unreadable"),
    ],
)
def test_a_damaged_header_is_a_cutout_error_not_an_astropy_one(tmp_path, offset, chunk, what):
    data = REAL.read_bytes()
    path = tmp_path / "damaged.fits"
    path.write_bytes(data[:offset] + chunk + data[offset + len(chunk) :])
    with pytest.raises(CutoutError) as info:
        read_cutout_fits(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value), what
