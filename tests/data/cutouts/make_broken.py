"""Regenerate the deliberately broken cutout files in this folder.

Run from anywhere: ``python tests/data/cutouts/make_broken.py``. Uses astropy
only (not the code under test), so the files do not change when the reader does.
Each file breaks exactly one thing about an otherwise valid 16 x 16 HSC cutout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

HERE = Path(__file__).resolve().parent
BLOCK = 2880


def _cutout(*, with_filter: bool = True, with_wcs: bool = True) -> fits.HDUList:
    primary = fits.PrimaryHDU()
    if with_filter:
        primary.header["FILTER"] = "HSC-I"
    primary.header["FLUXMAG0"] = 63095734448.0194
    data = np.arange(256, dtype=np.float32).reshape(16, 16)
    image = fits.ImageHDU(data, name="IMAGE")
    if with_wcs:
        for key, value in {
            "CTYPE1": "RA---TAN",
            "CTYPE2": "DEC--TAN",
            "CRVAL1": 150.0,
            "CRVAL2": 2.0,
            "CRPIX1": 8.5,
            "CRPIX2": 8.5,
            "CD1_1": -4.6666666666666e-05,
            "CD1_2": 0.0,
            "CD2_1": 0.0,
            "CD2_2": 4.6666666666666e-05,
            "CUNIT1": "deg",
            "CUNIT2": "deg",
        }.items():
            image.header[key] = value
    return fits.HDUList(
        [primary, image, fits.ImageHDU(name="MASK"), fits.ImageHDU(name="VARIANCE")]
    )


def main() -> None:
    full = HERE / "_full.fits"
    _cutout().writeto(full, overwrite=True)
    raw = full.read_bytes()
    full.unlink()
    # primary header (1 block) + IMAGE header (1 block) + 1024 bytes of the IMAGE data
    (HERE / "truncated.fits").write_bytes(raw[: 2 * BLOCK + 1024])
    # cut on a block boundary: a valid-looking size, but the IMAGE data is missing
    (HERE / "truncated_at_block.fits").write_bytes(raw[: 2 * BLOCK])
    _cutout(with_filter=False).writeto(HERE / "no_filter.fits", overwrite=True)
    _cutout(with_wcs=False).writeto(HERE / "no_wcs.fits", overwrite=True)
    header_only = fits.PrimaryHDU()
    header_only.header["FILTER"] = "HSC-I"
    header_only.header["FLUXMAG0"] = 63095734448.0194
    header_only.writeto(HERE / "no_image.fits", overwrite=True)
    (HERE / "not_fits.fits").write_text(
        "<html><body>Your session has expired. Please log in again.</body></html>\n"
    )


if __name__ == "__main__":
    main()
