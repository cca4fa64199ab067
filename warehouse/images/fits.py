"""HSC cutout FITS files: read and write one band of one object.

The HSC-SSP cutout service (DAS) returns one FITS file per object and band:

====  ===========  ==========================================================
HDU   EXTNAME      contents
====  ===========  ==========================================================
0     (primary)    no data; ``FILTER`` (``'HSC-R'``, ``'HSC-I2'``, ``'r'``...),
                   ``FLUXMAG0`` (zeropoint = 2.5 log10 FLUXMAG0, 27.0 for coadds)
1     ``IMAGE``    float32 (H, W) flux, TAN WCS (0.168"/px)
2     ``MASK``     int32 bit mask, or empty when not requested
3     ``VARIANCE`` float32 variance, or empty when not requested
====  ===========  ==========================================================

Pixel convention used throughout (the *centre pixel*): for an axis of length
``n`` the object sits on index ``n // 2``.  The sky position of a cutout
(``center_ra``/``center_dec``) is the WCS coordinate of the geometric centre
``((W - 1) / 2, (H - 1) / 2)`` (0-based), which is where the cutout service puts
the requested coordinate; for odd sizes the two coincide, for even sizes the
centre pixel is half a pixel past the geometric centre.

Pixel values are never rescaled: IMAGE and VARIANCE are returned as the stored
float32 and a file that asks for ``BSCALE``/``BZERO`` scaling of them is refused.
"""

from __future__ import annotations

import io
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.io.fits.verify import VerifyError, VerifyWarning
from astropy.utils.exceptions import AstropyUserWarning
from astropy.wcs import WCS, FITSFixedWarning
from astropy.wcs.utils import proj_plane_pixel_area

from warehouse.errors import CutoutError, first_line
from warehouse.images.bands import BAND_TO_FILTER, FILTER_TO_BAND, HSC_PIXEL_SCALE, band_from_filter
from warehouse.images.masks import HSC_MASK_BITS, mask_plane

__all__ = ["CutoutImage", "read_cutout_fits", "write_cutout_fits"]

# <N>-cutout-<FILTER>-<tract>-<rerun>.fits, the member names of a DAS batch tar.
_DAS_MEMBER = re.compile(r"^\d+-cutout-(?P<filter>[A-Za-z0-9-]+?)-(?P<tract>\d+)-(?P<rerun>[^/]+)$")

_FITS_BLOCK = 2880


@dataclass(frozen=True)
class CutoutImage:
    """One band of one HSC cutout, as read from a cutout FITS file.

    Attributes
    ----------
    band : str
        Band letter, one of ``g r i z y``.
    filter_name : str
        The ``FILTER`` card as stored (e.g. ``'HSC-R2'``), kept to tell the
        replacement filters apart.
    image : numpy.ndarray
        float32 (H, W) flux in the file's own units (never rescaled).
    mask : numpy.ndarray or None
        int32 (H, W) bit mask, None when the MASK HDU is empty.
    variance : numpy.ndarray or None
        float32 (H, W), None when the VARIANCE HDU is empty.
    zeropoint : float
        AB zeropoint, 2.5 log10(FLUXMAG0) rounded to 1e-6 mag.
    pixel_scale : float
        arcsec per pixel, from the WCS CD/PC matrix.
    center_ra, center_dec : float
        Degrees (ICRS), the WCS coordinate of the geometric array centre.
    tract, patch, rerun : int, str, str or None
        From ``TRACT``/``PATCH``/``RERUN`` cards, else from a DAS tar member name
        ``<N>-cutout-<FILTER>-<tract>-<rerun>.fits``, else None.
    simulated : bool or None
        The ``SIMULATED`` card; None when absent (files from the archive).
    mask_planes : dict
        Plane name -> bit from ``MP_*`` cards of the MASK HDU; empty if none.
    source : pathlib.Path
        The file read.
    fixes : tuple of str
        Header fixes astropy applied while parsing the WCS (informational).
    """

    band: str
    filter_name: str
    image: np.ndarray
    mask: np.ndarray | None
    variance: np.ndarray | None
    zeropoint: float
    pixel_scale: float
    center_ra: float
    center_dec: float
    tract: int | None = None
    patch: str | None = None
    rerun: str | None = None
    simulated: bool | None = None
    mask_planes: Mapping[str, int] = field(default_factory=dict)
    source: Path | None = None
    fixes: tuple[str, ...] = ()

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""
        return (int(self.image.shape[0]), int(self.image.shape[1]))


# --------------------------------------------------------------------------- reading


def _fail(path: Path, what: str) -> CutoutError:
    return CutoutError(f"{path}: {what}")


def _find_hdu(hdul: fits.HDUList, name: str, position: int) -> fits.ImageHDU | None:
    """HDU by EXTNAME, else the unnamed HDU at its standard position."""
    for hdu in hdul[1:]:
        if hdu.name.upper() == name:
            return hdu
    if len(hdul) > position:
        hdu = hdul[position]
        if isinstance(hdu, fits.ImageHDU) and hdu.name in ("", "PRIMARY"):
            return hdu
    return None


def _float_plane(path: Path, hdu: fits.ImageHDU, what: str) -> np.ndarray:
    header = hdu.header
    if header.get("BSCALE", 1) != 1 or header.get("BZERO", 0) != 0:
        raise _fail(
            path,
            f"{what} HDU has BSCALE/BZERO scaling; cutout pixels must be stored as float32 "
            "so that flux values are kept exactly. Re-download the cutout from the archive.",
        )
    if header.get("BITPIX") != -32:
        raise _fail(
            path,
            f"{what} HDU has BITPIX={header.get('BITPIX')}, expected -32 (float32) "
            "as the HSC cutout service writes it.",
        )
    # Native byte order, same values: '>f4' -> 'float32' is exact.
    return np.array(hdu.data, dtype=np.float32)


def _wcs_from_header(path: Path, header: fits.Header) -> tuple[WCS, tuple[str, ...]]:
    fixes: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", FITSFixedWarning)
        try:
            wcs = WCS(header, naxis=2)
        except Exception as exc:  # astropy raises several unrelated types here
            raise _fail(path, f"IMAGE HDU has an invalid WCS ({exc}).") from exc
    for w in caught:
        if issubclass(w.category, FITSFixedWarning):
            fixes.append(str(w.message))
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if not wcs.has_celestial or not all("TAN" in t for t in wcs.wcs.ctype):
        raise _fail(
            path,
            "IMAGE HDU has no celestial TAN WCS (CTYPE1/2 'RA---TAN'/'DEC--TAN' with CRVAL, "
            "CRPIX and a CD or PC matrix); cannot place the cutout on the sky.",
        )
    return wcs, tuple(fixes)


def _card(headers: Iterable[fits.Header], key: str):
    for header in headers:
        if key in header:
            return header[key]
    return None


def _open_checked(path: Path) -> fits.HDUList:
    """Open fully into memory, turning astropy's truncation warnings into CutoutError."""
    if not path.is_file():
        raise _fail(path, "no such cutout file.")
    with path.open("rb") as fh:
        start = fh.read(30)
    if not start.startswith(b"SIMPLE  =") or start[29:30] != b"T":
        # printable ASCII only: random bytes must not reach the terminal as control characters
        shown = "".join(chr(b) if 32 <= b < 127 else "." for b in start[:20])
        raise _fail(
            path,
            f"not a FITS file (starts with {shown!r}); the archive may have sent an error "
            "page instead of a cutout. Check the request and fetch it again.",
        )
    size = path.stat().st_size
    if size % _FITS_BLOCK:
        raise _fail(
            path,
            f"truncated FITS file ({size} bytes is not a multiple of {_FITS_BLOCK}). "
            "Fetch the cutout again.",
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", AstropyUserWarning)
        warnings.simplefilter("always", VerifyWarning)
        try:
            # Raw stored values: astropy would otherwise apply BSCALE/BZERO and drop the cards.
            # from memory (a cutout is small): astropy leaves its own file handle open when
            # a damaged header aborts fits.open
            hdul = fits.open(
                io.BytesIO(path.read_bytes()),
                memmap=False,
                lazy_load_hdus=False,
                checksum=True,
                do_not_scale_image_data=True,
            )
        except (OSError, ValueError, TypeError) as exc:
            raise _fail(path, f"not a readable FITS file ({exc}).") from exc
        try:
            for hdu in hdul:
                _ = hdu.data  # read now: truncation only shows when data is loaded
        except (OSError, ValueError, TypeError) as exc:
            hdul.close()
            raise _fail(
                path, f"truncated or corrupt FITS data ({exc}). Fetch the cutout again."
            ) from exc
    bad = (AstropyUserWarning, VerifyWarning)
    problems = [str(w.message) for w in caught if issubclass(w.category, bad)]
    for w in caught:
        if not issubclass(w.category, bad):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if problems:
        hdul.close()
        first = problems[0].splitlines()[0]
        raise _fail(path, f"corrupt or truncated FITS file ({first}). Fetch the cutout again.")
    return hdul


def read_cutout_fits(path: str | Path) -> CutoutImage:
    """Read one HSC cutout FITS file (IMAGE, MASK, VARIANCE layout).

    Parameters
    ----------
    path : str or Path
        A file as returned by the HSC-SSP cutout service, or written by
        :func:`write_cutout_fits`.

    Returns
    -------
    CutoutImage

    Raises
    ------
    CutoutError
        The file is missing, not FITS, truncated, has no IMAGE HDU, no TAN WCS,
        no or an unknown ``FILTER``, a bad ``FLUXMAG0``, or planes that disagree
        in shape. The message starts with the file path.

    Examples
    --------
    >>> cut = read_cutout_fits("image.fits")  # doctest: +SKIP
    >>> cut.band, cut.zeropoint, cut.image.shape  # doctest: +SKIP
    ('r', 27.0, (180, 179))
    """
    path = Path(path)
    try:
        return _read_cutout_fits(path)
    except (VerifyError, AttributeError, KeyError, IndexError, ValueError, TypeError) as exc:
        # astropy's own errors on a header or HDU damaged past what _open_checked catches
        # (an unparsable card, an HDU of no known kind): one line, never a traceback
        reason = first_line(exc)
        raise _fail(path, f"damaged FITS file ({reason}). Fetch the cutout again.") from None


def _read_cutout_fits(path: Path) -> CutoutImage:
    with _open_checked(path) as hdul:
        primary = hdul[0].header
        image_hdu = _find_hdu(hdul, "IMAGE", 1)
        if image_hdu is None or image_hdu.data is None or image_hdu.data.ndim != 2:
            raise _fail(
                path, "no 2-D IMAGE HDU; expected HDU1 'IMAGE' as the HSC cutout service writes it."
            )
        if len(hdul) < 4:
            raise _fail(
                path,
                f"{len(hdul)} HDUs, expected 4 (PRIMARY, IMAGE, MASK, VARIANCE; MASK and "
                "VARIANCE may be empty but are always present); the file may be truncated. "
                "Fetch the cutout again.",
            )
        image = _float_plane(path, image_hdu, "IMAGE")
        headers = (primary, image_hdu.header)

        filter_card = _card(headers, "FILTER")
        if filter_card is None or not str(filter_card).strip():
            raise _fail(path, "no FILTER card in the primary header; cannot tell the band.")
        filter_name = str(filter_card).strip()
        try:
            band = band_from_filter(filter_name)
        except ValueError as exc:
            raise _fail(path, str(exc)) from exc

        fluxmag0 = _card(headers, "FLUXMAG0")
        if fluxmag0 is None:
            raise _fail(path, "no FLUXMAG0 card; cannot derive the photometric zeropoint.")
        try:
            fluxmag0 = float(fluxmag0)
        except (TypeError, ValueError) as exc:
            raise _fail(path, f"FLUXMAG0={fluxmag0!r} is not a number.") from exc
        if not math.isfinite(fluxmag0) or fluxmag0 <= 0:
            raise _fail(path, f"FLUXMAG0={fluxmag0!r} must be a positive number.")
        zeropoint = round(2.5 * math.log10(fluxmag0), 6)

        wcs, fixes = _wcs_from_header(path, image_hdu.header)
        pixel_scale = math.sqrt(proj_plane_pixel_area(wcs)) * 3600.0
        ny, nx = image.shape
        ra, dec = wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)

        mask = variance = None
        mask_planes: dict[str, int] = {}
        mask_hdu = _find_hdu(hdul, "MASK", 2)
        if mask_hdu is not None and mask_hdu.data is not None:
            mask = mask_plane(path, mask_hdu)
            mask_planes = {
                key[3:]: int(value)
                for key, value in mask_hdu.header.items()
                if key.startswith("MP_")
            }
        var_hdu = _find_hdu(hdul, "VARIANCE", 3)
        if var_hdu is not None and var_hdu.data is not None:
            variance = _float_plane(path, var_hdu, "VARIANCE")
        for name, plane in (("MASK", mask), ("VARIANCE", variance)):
            if plane is not None and plane.shape != image.shape:
                raise _fail(path, f"{name} shape {plane.shape} differs from IMAGE {image.shape}.")

        tract = _card(headers, "TRACT")
        patch = _card(headers, "PATCH")
        rerun = _card(headers, "RERUN")
        member = _DAS_MEMBER.match(path.stem)
        if member is not None:
            tract = tract if tract is not None else member["tract"]
            rerun = rerun if rerun is not None else member["rerun"]
        simulated = _card(headers, "SIMULATED")

    for arr in (image, mask, variance):
        if arr is not None:
            arr.flags.writeable = False
    return CutoutImage(
        band=band,
        filter_name=filter_name,
        image=image,
        mask=mask,
        variance=variance,
        zeropoint=zeropoint,
        pixel_scale=pixel_scale,
        center_ra=float(ra),
        center_dec=float(dec),
        tract=None if tract is None else int(tract),
        patch=None if patch is None else str(patch).strip(),
        rerun=None if rerun is None else str(rerun).strip(),
        simulated=None if simulated is None else bool(simulated),
        mask_planes=mask_planes,
        source=path,
        fixes=fixes,
    )


# --------------------------------------------------------------------------- writing


def write_cutout_fits(
    path: str | Path,
    image: np.ndarray,
    *,
    band: str,
    ra: float,
    dec: float,
    pixel_scale: float = HSC_PIXEL_SCALE,
    zeropoint: float = 27.0,
    mask: np.ndarray | None = None,
    variance: np.ndarray | None = None,
    tract: int | None = None,
    patch: str | None = None,
    rerun: str | None = None,
    simulated: bool,
    overwrite: bool = False,
) -> Path:
    """Write one band in the HSC cutout layout (PRIMARY, IMAGE, MASK, VARIANCE).

    The TAN WCS puts (``ra``, ``dec``) on the geometric array centre, north up
    and east left (CD1_1 < 0), so :func:`read_cutout_fits` returns the same
    centre. The file is written next to ``path`` and renamed into place.

    Parameters
    ----------
    path : str or Path
        Output file.
    image : array_like
        (H, W) flux; stored as float32 (a float64 input is cast once, here).
    band : str
        ``g r i z y`` or an HSC filter name; written as ``FILTER='HSC-G'`` etc.
        (a replacement filter name such as ``'HSC-I2'`` is kept as given).
    ra, dec : float
        Degrees (ICRS) at the array centre.
    pixel_scale : float
        arcsec per pixel.
    zeropoint : float
        AB zeropoint; ``FLUXMAG0 = 10**(0.4 * zeropoint)``.
    mask, variance : array_like, optional
        (H, W) int32 bit mask and float32 variance; empty HDUs when None.
    tract, patch, rerun : optional
        Recorded as ``TRACT``/``PATCH``/``RERUN`` cards when given.
    simulated : bool
        Written as the ``SIMULATED`` card: True for synthetic pixels.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    Path
        ``path``.

    Examples
    --------
    >>> write_cutout_fits("x.fits", np.zeros((127, 127)), band="i", ra=150.1,
    ...                   dec=2.2, simulated=True)  # doctest: +SKIP
    """
    path = Path(path)
    img = np.asarray(image)
    if img.ndim != 2 or 0 in img.shape:
        raise ValueError(f"image must be a non-empty 2-D array, got shape {img.shape}")
    if img.dtype.kind not in "fiu":
        raise ValueError(f"image must hold numbers, got dtype {img.dtype}")
    img = img.astype(np.float32)
    given = band.strip().upper()
    filter_name = given if given in FILTER_TO_BAND else BAND_TO_FILTER[band_from_filter(band)]
    if not (math.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(f"pixel_scale must be positive, got {pixel_scale}")
    if not (math.isfinite(ra) and math.isfinite(dec) and -90 <= dec <= 90):
        raise ValueError(f"invalid position ra={ra}, dec={dec}")
    if path.exists() and not overwrite:
        raise CutoutError(f"{path} already exists. Pass overwrite=True to replace it.")

    primary = fits.PrimaryHDU()
    ph = primary.header
    ph["FILTER"] = (filter_name, "HSC filter")
    ph["FLUXMAG0"] = (10 ** (0.4 * zeropoint), "flux of a 0 mag (AB) source")
    # 9 letters: longer than a FITS keyword, so a HIERARCH card (as HSC uses for its own).
    ph["HIERARCH SIMULATED"] = (bool(simulated), "T: synthetic pixels, not observed")
    if tract is not None:
        ph["TRACT"] = (int(tract), "HSC skymap tract")
    if patch is not None:
        ph["PATCH"] = (str(patch), "HSC skymap patch")
    if rerun is not None:
        ph["RERUN"] = (str(rerun), "HSC data release rerun")
    ph["ORIGIN"] = ("galaxy-warehouse", "writer of this file")

    ny, nx = img.shape
    image_hdu = fits.ImageHDU(img, name="IMAGE")
    ih = image_hdu.header
    ih["RADESYS"] = "ICRS"
    ih["EQUINOX"] = 2000.0
    ih["CTYPE1"] = "RA---TAN"
    ih["CTYPE2"] = "DEC--TAN"
    ih["CUNIT1"] = "deg"
    ih["CUNIT2"] = "deg"
    ih["CRVAL1"] = float(ra)
    ih["CRVAL2"] = float(dec)
    ih["CRPIX1"] = (nx + 1) / 2.0  # 1-based geometric centre
    ih["CRPIX2"] = (ny + 1) / 2.0
    ih["CD1_1"] = -pixel_scale / 3600.0
    ih["CD1_2"] = 0.0
    ih["CD2_1"] = 0.0
    ih["CD2_2"] = pixel_scale / 3600.0

    if mask is None:
        mask_hdu = fits.ImageHDU(name="MASK")
    else:
        m = np.asarray(mask)
        if m.shape != img.shape or m.dtype.kind not in "iub":
            raise ValueError(f"mask must be an integer array of shape {img.shape}")
        if m.size and (int(m.min()) < np.iinfo(np.int32).min or int(m.max()) > 2**31 - 1):
            raise ValueError("mask values do not fit in int32")
        mask_hdu = fits.ImageHDU(m.astype(np.int32), name="MASK")
        for name, bit in HSC_MASK_BITS.items():
            mask_hdu.header[f"HIERARCH MP_{name}"] = bit
    if variance is None:
        var_hdu = fits.ImageHDU(name="VARIANCE")
    else:
        v = np.asarray(variance)
        if v.shape != img.shape:
            raise ValueError(f"variance must have shape {img.shape}, got {v.shape}")
        var_hdu = fits.ImageHDU(v.astype(np.float32), name="VARIANCE")

    hdul = fits.HDUList([primary, image_hdu, mask_hdu, var_hdu])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        hdul.writeto(tmp, overwrite=True)  # no CHECKSUM: its timestamp would change the bytes
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
