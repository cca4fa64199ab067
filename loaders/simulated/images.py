"""SIMULATED HSC-like 5-band galaxy images, plus the real COSMOS cutouts shipped with the package.

Everything :func:`render_galaxy` returns is synthetic: Sérsic profiles integrated
over sub-pixels, convolved with *real* HSC PSFs and given Gaussian noise at the
*real* HSC per-band background variance, both read from the packaged copy of
scarlet's HSC COSMOS data (``loaders/data/hsc_ssp_scarlet/``, see its
PROVENANCE.md). Files written from these arrays must say ``SIMULATED=T``.

Conventions
-----------
- Bands are ``g r i z y`` (:data:`BANDS`); arrays are channels-first (5, S, S).
- Flux units follow the HSC coadds: zeropoint 27, ``flux = 10**(-0.4 * (mag - 27))``.
- The galaxy centre sits on pixel ``S // 2`` (both axes), the centre-pixel
  convention of :func:`warehouse.images.fit.fit_to_size`, shifted by ``offset``.
- Pixel ``j`` covers ``[j - 0.5, j + 0.5)``; images are north up, east left, and
  the position angle is measured from north (+y) through east (-x).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from scipy.signal import fftconvolve
from scipy.special import gamma, gammaincinv

from warehouse.images.bands import BANDS, HSC_PIXEL_SCALE
from warehouse.images.masks import HSC_MASK_BITS

__all__ = [
    "DATA_DIR",
    "SersicGalaxy",
    "load_real_noise",
    "load_real_psfs",
    "mag_to_flux",
    "real_cosmos_cutouts",
    "render_galaxy",
    "sersic_b",
    "sersic_image",
]

DATA_DIR = Path(__file__).resolve().parents[1] / "data" / "hsc_ssp_scarlet"
"""Packaged real HSC data (scarlet, MIT; HSC-SSP)."""

ZEROPOINT = 27.0


def mag_to_flux(mag: float, zeropoint: float = ZEROPOINT) -> float:
    """AB magnitude to flux in HSC coadd units; ``inf`` gives 0.

    Examples
    --------
    >>> mag_to_flux(27.0), mag_to_flux(22.0)
    (1.0, 100.0)
    """
    if math.isinf(mag) and mag > 0:
        return 0.0
    return float(10.0 ** (-0.4 * (mag - zeropoint)))


def sersic_b(n: float) -> float:
    """The b_n with half the total light inside the half-light radius, Γ(2n) γ(2n, b_n) = 1/2."""
    return float(gammaincinv(2.0 * n, 0.5))


@dataclass(frozen=True)
class SersicGalaxy:
    """One Sérsic component.

    Parameters
    ----------
    mags : mapping
        Band letter -> AB magnitude for every band in :data:`BANDS` (``inf`` for none).
    n : float
        Sérsic index, 0.3 <= n <= 8.
    r_half_px : float
        Half-light radius along the major axis, pixels.
    ellipticity : float
        1 - b/a, in [0, 1).
    pos_angle_deg : float
        Major-axis angle from north (+y) through east (-x), degrees.
    offset : (float, float)
        (dy, dx) of the centre from the centre pixel, pixels.
    """

    mags: Mapping[str, float]
    n: float
    r_half_px: float
    ellipticity: float
    pos_angle_deg: float
    offset: tuple[float, float] = (0.0, 0.0)

    def __post_init__(self) -> None:
        missing = [b for b in BANDS if b not in self.mags]
        if missing:
            raise ValueError(f"mags: no magnitude for band(s) {missing}; need all of {BANDS}")
        for b in BANDS:
            m = float(self.mags[b])
            if math.isnan(m) or m == -math.inf:
                raise ValueError(f"mags[{b!r}] must be a finite magnitude or inf, got {m}")
        if not 0.3 <= self.n <= 8.0:
            raise ValueError(f"n: Sérsic index must be in [0.3, 8], got {self.n}")
        if not (math.isfinite(self.r_half_px) and self.r_half_px > 0):
            raise ValueError(f"r_half_px must be positive, got {self.r_half_px}")
        if not 0.0 <= self.ellipticity < 1.0:
            raise ValueError(f"ellipticity must be in [0, 1), got {self.ellipticity}")
        if not math.isfinite(self.pos_angle_deg):
            raise ValueError(f"pos_angle_deg must be finite, got {self.pos_angle_deg}")
        if len(self.offset) != 2 or not all(math.isfinite(o) for o in self.offset):
            raise ValueError(f"offset must be two finite numbers (dy, dx), got {self.offset}")

    def flux(self, band: str, zeropoint: float = ZEROPOINT) -> float:
        """Total flux in ``band``."""
        return mag_to_flux(float(self.mags[band]), zeropoint)


def _profile(dy: np.ndarray, dx: np.ndarray, gal: SersicGalaxy) -> np.ndarray:
    """Surface brightness of a unit-total-flux Sérsic profile at offsets (dy, dx)."""
    n, re = gal.n, gal.r_half_px
    q = 1.0 - gal.ellipticity
    b = sersic_b(n)
    pa = math.radians(gal.pos_angle_deg)
    major = -dx * math.sin(pa) + dy * math.cos(pa)  # along (-sin PA, cos PA) in (x, y)
    minor = dx * math.cos(pa) + dy * math.sin(pa)
    r = np.sqrt(major**2 + (minor / q) ** 2)
    norm = 2.0 * math.pi * q * n * re**2 * math.exp(b) * gamma(2.0 * n) / b ** (2.0 * n)
    return np.exp(-b * ((r / re) ** (1.0 / n) - 1.0)) / norm


def _integrate(
    gal: SersicGalaxy, cy: float, cx: float, rows: range, cols: range, factor: int
) -> np.ndarray:
    """Mean of ``factor``² sub-pixel samples for each pixel of rows x cols."""
    sub = (np.arange(factor) + 0.5) / factor - 0.5
    ys = (np.asarray(rows, dtype=float)[:, None] + sub[None, :]).ravel() - cy
    xs = (np.asarray(cols, dtype=float)[:, None] + sub[None, :]).ravel() - cx
    values = _profile(ys[:, None], xs[None, :], gal)
    return values.reshape(len(rows), factor, len(cols), factor).mean(axis=(1, 3))


def _distance(cy: float, cx: float, y0: float, x0: float, width: float) -> float:
    """Distance from (cy, cx) to the square [y0, y0+w) x [x0, x0+w); 0 inside."""
    dy = max(y0 - cy, 0.0, cy - (y0 + width))
    dx = max(x0 - cx, 0.0, cx - (x0 + width))
    return math.hypot(dy, dx)


def _cusp_integral(
    gal: SersicGalaxy,
    cy: float,
    cx: float,
    y0: float,
    x0: float,
    width: float,
    factor: int,
    depth: int,
) -> float:
    """Mean of the profile over the square [y0, y0+w) x [x0, x0+w).

    The square is split 3 x 3; sub-squares closer to the profile centre than
    half their width are split again (at most ~4 per level, so the cost grows
    linearly with ``depth``), the others are sampled ``factor``² times.
    """
    third = width / 3.0
    sub = (np.arange(factor) + 0.5) / factor * third
    total = 0.0
    for i in range(3):
        for j in range(3):
            sy, sx = y0 + i * third, x0 + j * third
            if depth > 0 and _distance(cy, cx, sy, sx, third) < third / 2.0:
                total += _cusp_integral(gal, cy, cx, sy, sx, third, factor, depth - 1)
            else:
                total += float(
                    _profile((sy + sub - cy)[:, None], (sx + sub - cx)[None, :], gal).mean()
                )
    return total / 9.0


def sersic_image(
    shape: tuple[int, int],
    gal: SersicGalaxy,
    center: tuple[float, float],
    *,
    oversample: int = 5,
) -> np.ndarray:
    """Pixel-integrated unit-flux Sérsic image (float64), centred at ``center`` = (y, x).

    Every pixel is sampled ``oversample``² times, the 31 x 31 pixels around the
    centre 3 times and the 7 x 7 pixels 9 times more finely per axis, and the
    pixels touching the centre, where the
    profile is cuspy for large n, by recursive 3 x 3 subdivision down to
    ~1e-4 px. The sum over an infinite image would be 1; flux beyond the edges
    is lost.
    """
    if oversample < 1:
        raise ValueError(f"oversample must be >= 1, got {oversample}")
    ny, nx = shape
    cy, cx = center
    img = _integrate(gal, cy, cx, range(ny), range(nx), oversample)
    iy, ix = round(cy), round(cx)
    for half, factor in ((15, 3 * oversample), (3, 9 * oversample)):
        rows = range(max(0, iy - half), min(ny, iy + half + 1))
        cols = range(max(0, ix - half), min(nx, ix + half + 1))
        if len(rows) and len(cols):
            img[rows.start : rows.stop, cols.start : cols.stop] = _integrate(
                gal, cy, cx, rows, cols, factor
            )
    for y in range(max(0, iy - 1), min(ny, iy + 2)):
        for x in range(max(0, ix - 1), min(nx, ix + 2)):
            if _distance(cy, cx, y - 0.5, x - 0.5, 1.0) < 0.5:
                img[y, x] = _cusp_integral(gal, cy, cx, y - 0.5, x - 0.5, 1.0, 8, 8)
    return img


def render_galaxy(
    size: int,
    *,
    mags: Mapping[str, float],
    n: float,
    r_half_px: float,
    ellipticity: float,
    pos_angle_deg: float,
    psfs: np.ndarray,
    noise_var: Mapping[str, float] | None,
    rng: np.random.Generator | int | None,
    offset: tuple[float, float] = (0.0, 0.0),
    neighbours: Sequence[SersicGalaxy] = (),
    zeropoint: float = ZEROPOINT,
    oversample: int = 5,
) -> tuple[np.ndarray, np.ndarray]:
    """Render a SIMULATED 5-band HSC-like galaxy stamp.

    The noise-free model is rendered on a stamp enlarged by the PSF half-width,
    convolved with each band's PSF and cut back to ``size``, so light scattered
    in from beyond the edge is kept. Then Gaussian noise of variance
    ``noise_var[band]`` is added (sky-limited: no source photon noise).

    Parameters
    ----------
    size : int
        Stamp height and width, pixels.
    mags, n, r_half_px, ellipticity, pos_angle_deg, offset
        The central galaxy, see :class:`SersicGalaxy`.
    psfs : numpy.ndarray
        (5, K, K) PSF kernels in band order, K odd, e.g. :func:`load_real_psfs`;
        each is normalised to unit sum here.
    noise_var : mapping or None
        Band -> per-pixel noise variance (e.g. :func:`load_real_noise`); None for
        a noise-free image with zero variance.
    rng : numpy.random.Generator or int or None
        Source of the noise; needed when ``noise_var`` is given.
    neighbours : sequence of SersicGalaxy
        Further galaxies in the stamp, offsets relative to the centre pixel.
    zeropoint : float
        ``flux = 10**(-0.4 * (mag - zeropoint))``.
    oversample : int
        Sub-pixel samples per pixel and axis.

    Returns
    -------
    image, variance : numpy.ndarray
        float32 (5, size, size) each.

    Examples
    --------
    >>> img, var = render_galaxy(64, mags=dict.fromkeys(BANDS, 21.0), n=1.0,
    ...     r_half_px=4.0, ellipticity=0.3, pos_angle_deg=30.0,
    ...     psfs=load_real_psfs(), noise_var=load_real_noise(), rng=42)  # doctest: +SKIP
    """
    if int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, got {size!r}")
    size = int(size)
    galaxies = [
        SersicGalaxy(
            mags, n, r_half_px, ellipticity, pos_angle_deg, (float(offset[0]), float(offset[1]))
        ),
        *neighbours,
    ]
    kernels = _normalised_psfs(psfs)
    half = kernels.shape[-1] // 2
    big = size + 2 * half
    centre = size // 2 + half

    image = np.empty((len(BANDS), size, size), dtype=np.float64)
    profiles = [
        sersic_image(
            (big, big), g, (centre + g.offset[0], centre + g.offset[1]), oversample=oversample
        )
        for g in galaxies
    ]
    for k, band in enumerate(BANDS):
        model = sum(g.flux(band, zeropoint) * p for g, p in zip(galaxies, profiles, strict=True))
        image[k] = fftconvolve(model, kernels[k], mode="valid")

    variance = np.zeros_like(image)
    if noise_var is not None:
        if rng is None:
            raise ValueError("rng: pass a numpy Generator or an int seed to draw the noise")
        gen = np.random.default_rng(rng)
        missing = [b for b in BANDS if b not in noise_var]
        if missing:
            raise ValueError(f"noise_var: no variance for band(s) {missing}")
        for k, band in enumerate(BANDS):
            var = float(noise_var[band])
            if not (math.isfinite(var) and var >= 0):
                raise ValueError(f"noise_var[{band!r}] must be >= 0, got {var}")
            image[k] += gen.normal(0.0, math.sqrt(var), size=(size, size))
            variance[k] = var
    return image.astype(np.float32), variance.astype(np.float32)


def _normalised_psfs(psfs: np.ndarray) -> np.ndarray:
    kernels = np.asarray(psfs, dtype=np.float64)
    if kernels.ndim != 3 or kernels.shape[0] != len(BANDS):
        raise ValueError(f"psfs must have shape (5, K, K), got {kernels.shape}")
    if kernels.shape[1] != kernels.shape[2] or kernels.shape[1] % 2 == 0:
        raise ValueError(f"psfs must be square with an odd size, got {kernels.shape[1:]}")
    sums = kernels.sum(axis=(1, 2))
    if not np.all(np.isfinite(sums)) or np.any(sums <= 0):
        raise ValueError(f"psfs must have positive finite sums, got {sums}")
    return kernels / sums[:, None, None]


# --------------------------------------------------------------------------- real data


def load_real_psfs(source: str = "hsc_cosmos") -> np.ndarray:
    """Real HSC PSFs, float64 (5, K, K) in band order, each normalised to unit sum.

    Parameters
    ----------
    source : {'hsc_cosmos', 'hsc_cosmos_35', 'PSF_HSC'}
        ``hsc_cosmos.npz`` (41 x 41, default), ``hsc_cosmos_35.npz`` (43 x 43)
        or ``PSF_HSC.fits`` (31 x 31, the PSFs of ``Cut_HSC.fits``).
    """
    if source in ("hsc_cosmos", "hsc_cosmos_35"):
        with np.load(DATA_DIR / f"{source}.npz", allow_pickle=False) as data:
            psfs = np.array(data["psfs"], dtype=np.float64)
    elif source == "PSF_HSC":
        psfs = np.array(fits.getdata(DATA_DIR / "PSF_HSC.fits"), dtype=np.float64)
    else:
        raise ValueError(f"unknown PSF source {source!r}; use hsc_cosmos, hsc_cosmos_35 or PSF_HSC")
    return _normalised_psfs(psfs)


def load_real_noise() -> dict[str, float]:
    """Real HSC per-band pixel variance: the median of each band's variance plane.

    From ``hsc_cosmos_35.npz`` (HSC COSMOS coadd, ZP 27 flux units). Its
    sigma-clipped background variance agrees with these medians within ~15%.
    """
    with np.load(DATA_DIR / "hsc_cosmos_35.npz", allow_pickle=False) as data:
        variance = np.asarray(data["variance"], dtype=np.float64)
    return {band: float(np.median(variance[k])) for k, band in enumerate(BANDS)}


def _fits_cube(name: str) -> tuple[np.ndarray, float, float]:
    path = DATA_DIR / name
    with fits.open(path, memmap=False) as hdul:
        header = hdul[0].header
        cube = np.array(hdul[0].data)
    wcs = WCS(header, naxis=2)
    ny, nx = cube.shape[-2:]
    ra, dec = wcs.pixel_to_world_values((nx - 1) / 2.0, (ny - 1) / 2.0)
    images = cube.astype(np.float32)
    if not np.array_equal(images.astype(cube.dtype), cube):
        raise ValueError(f"{path}: float64 values not exactly representable as float32")
    return images, float(ra), float(dec)


def real_cosmos_cutouts() -> list[dict]:
    """The real HSC COSMOS 5-band cutouts shipped in ``loaders/data/hsc_ssp_scarlet/``.

    Returns
    -------
    list of dict
        One per real object, keys: ``name``, ``images`` float32 (5, H, W) in
        g r i z y, ``variance`` float32 or None, ``mask`` int32 or None, ``ra``,
        ``dec`` (degrees, the geometric array centre) or None when the source
        file records no position, ``pixel_scale``, ``zeropoint`` (27.0, or None
        when the pixels are not in calibrated flux units), ``psfs`` or None,
        ``source`` (file name), ``note``, ``simulated`` (always False).

    Notes
    -----
    ``hsc_cosmos.npz`` holds the same pixels and PSFs as
    ``43158172147386355.npz`` (checked: identical arrays), so it is returned
    once, under the object_id name. The two FITS cubes are normalised per band
    (each band sums to a constant), so they have no zeropoint and no colours.
    """
    out: list[dict] = []
    with np.load(DATA_DIR / "hsc_cosmos_35.npz", allow_pickle=False) as d:
        out.append(
            {
                "name": "hsc_cosmos_35",
                "images": np.asarray(d["images"], dtype=np.float32),
                "variance": np.asarray(d["variance"], dtype=np.float32),
                "mask": np.asarray(d["mask"], dtype=np.int32),
                "ra": None,
                "dec": None,
                "psfs": np.asarray(d["psfs"], dtype=np.float64),
                "source": "hsc_cosmos_35.npz",
                "note": "HSC COSMOS coadd blend of 7 sources with variance and HSC mask planes; "
                "the file records no sky position.",
            }
        )
    with np.load(DATA_DIR / "43158172147386355.npz", allow_pickle=False) as d:
        weights = np.asarray(d["weights"], dtype=np.float32)
        nodata = weights <= 0
        with np.errstate(divide="ignore"):
            variance = np.where(nodata, np.float32(np.inf), 1.0 / weights).astype(np.float32)
        mask = np.where(nodata, 1 << HSC_MASK_BITS["NO_DATA"], 0).astype(np.int32)
        out.append(
            {
                "name": "43158172147386355",
                "images": np.asarray(d["images"], dtype=np.float32),
                "variance": variance,
                "mask": mask,
                "ra": None,
                "dec": None,
                "psfs": np.asarray(d["psfs"], dtype=np.float64),
                "source": "43158172147386355.npz",
                "note": "HSC COSMOS coadd named by its HSC object_id (object_id >> 42 = tract "
                "9813, COSMOS); same pixels as hsc_cosmos.npz. variance = 1/weights; mask is "
                "derived: NO_DATA where weight is 0 (variance inf). No sky position recorded.",
            }
        )
    for name, label in (
        ("hsc_ra150.24071_dec2.06514.fits", "hsc_ra150.24071_dec2.06514"),
        ("Cut_HSC.fits", "Cut_HSC"),
    ):
        images, ra, dec = _fits_cube(name)
        out.append(
            {
                "name": label,
                "images": images,
                "variance": None,
                "mask": None,
                "ra": ra,
                "dec": dec,
                "psfs": None,
                "source": name,
                "note": 'HSC COSMOS coadd cube with TAN WCS (0.168"/px); each band is '
                "normalised to a constant sum, so no zeropoint or colour; band order g,r,i,z,y "
                "assumed (no FILTER cards). No variance or mask.",
            }
        )
    for item in out:
        item["pixel_scale"] = HSC_PIXEL_SCALE
        item["zeropoint"] = ZEROPOINT if item["source"].endswith(".npz") else None
        item["simulated"] = False
    return out
