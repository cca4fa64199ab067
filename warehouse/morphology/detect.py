"""Source detection as the GalaxiesML Source Extractor configuration does it, with ``sep``.

:class:`DetectionConfig` holds the Source Extractor settings (the defaults are GalaxiesML's);
:func:`detect_sources` subtracts a ``sep`` background, thresholds at DETECT_THRESH times the
global background RMS and extracts, deblends and cleans the detections, returning them with the
segmentation map (:class:`Detection`). Pure functions over arrays, no I/O.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import sep

__all__ = ["Detection", "DetectionConfig", "detect_sources"]


@dataclass(frozen=True)
class DetectionConfig:
    """Source Extractor style settings; the defaults are the GalaxiesML configuration.

    Parameters
    ----------
    detect_thresh : float
        DETECT_THRESH: in units of the local background RMS if ``thresh_type`` is
        ``"relative"``, in flux units if ``"absolute"``.
    thresh_type : {"relative", "absolute"}
        THRESH_TYPE.
    subtract_background : bool
        Subtract the ``sep`` background (BACK_TYPE AUTO); ``False`` is BACK_TYPE MANUAL, 0.
    back_size, back_filtersize : int
        BACK_SIZE and BACK_FILTERSIZE of the background mesh (pixels, meshes).
    detect_minarea : int
        DETECT_MINAREA, pixels.
    filter_fwhm : float or None
        FWHM in pixels of the Gaussian detection filter sampled at pixel centres on a
        ``filter_size`` square grid; 2.0 and 3 give SExtractor's ``default.conv``
        ([[1,2,1],[2,4,2],[1,2,1]]/16). ``None`` disables filtering.
    filter_size : int
        Odd width of the filter kernel, pixels.
    deblend_nthresh : int
        DEBLEND_NTHRESH.
    deblend_mincont : float
        DEBLEND_MINCONT, in [0, 1].
    clean : bool
        CLEAN.
    clean_param : float
        CLEAN_PARAM.
    petro_thresh : float
        Petrosian ratio eta at which ``petro_rad`` is taken (0.2), in (0, 1).
    phot_fluxfrac : float
        PHOT_FLUXFRAC for ``half_light_radius``, in (0, 1).
    kron_fact, kron_minrad : float
        PHOT_AUTOPARAMS: Kron factor and minimum radius (pixels) of the FLUX_AUTO aperture.
    max_center_distance : float or None
        The central detection must lie within this many pixels of the cutout centre, otherwise
        the galaxy counts as undetected; ``None`` accepts the nearest detection wherever it is.
    fit_sersic : bool
        Fit the Sersic index (the slowest step).

    Examples
    --------
    >>> float(DetectionConfig().filter_kernel.sum())
    1.0
    >>> DetectionConfig(detect_minarea=0)
    Traceback (most recent call last):
    ...
    ValueError: DetectionConfig.detect_minarea must be an integer >= 1, got 0
    """

    detect_thresh: float = 3.0
    thresh_type: str = "relative"
    subtract_background: bool = True
    back_size: int = 64
    back_filtersize: int = 3
    detect_minarea: int = 5
    filter_fwhm: float | None = 2.0
    filter_size: int = 3
    deblend_nthresh: int = 32
    deblend_mincont: float = 0.005
    clean: bool = True
    clean_param: float = 1.0
    petro_thresh: float = 0.2
    phot_fluxfrac: float = 0.5
    kron_fact: float = 2.5
    kron_minrad: float = 3.5
    max_center_distance: float | None = 15.0
    fit_sersic: bool = True

    def __post_init__(self) -> None:
        def fail(name: str, what: str) -> None:
            raise ValueError(f"DetectionConfig.{name} must be {what}, got {getattr(self, name)!r}")

        def positive_int(name: str) -> None:
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                fail(name, "an integer >= 1")

        def finite(name: str, lo: float, hi: float, lo_open: bool = True) -> None:
            v = getattr(self, name)
            ok = isinstance(v, (int, float, np.floating)) and not isinstance(v, bool)
            ok = ok and math.isfinite(v) and (v > lo if lo_open else v >= lo) and v < hi
            if not ok:
                bracket = "(" if lo_open else "["
                fail(name, f"a finite number in {bracket}{lo}, {hi})")

        finite("detect_thresh", 0.0, math.inf)
        if self.thresh_type not in ("relative", "absolute"):
            fail("thresh_type", "'relative' or 'absolute'")
        for name in ("back_size", "back_filtersize", "detect_minarea", "deblend_nthresh"):
            positive_int(name)
        positive_int("filter_size")
        if self.filter_size % 2 == 0:
            fail("filter_size", "odd")
        if self.filter_fwhm is not None:
            finite("filter_fwhm", 0.0, math.inf)
        finite("deblend_mincont", 0.0, 1.0 + 1e-12, lo_open=False)
        finite("clean_param", 0.0, math.inf)
        finite("petro_thresh", 0.0, 1.0)
        finite("phot_fluxfrac", 0.0, 1.0)
        finite("kron_fact", 0.0, math.inf)
        finite("kron_minrad", 0.0, math.inf)
        if self.max_center_distance is not None:
            finite("max_center_distance", 0.0, math.inf)

    @property
    def filter_kernel(self) -> np.ndarray | None:
        """The normalised detection filter (``None`` when filtering is off)."""
        if self.filter_fwhm is None:
            return None
        return _gaussian_kernel(float(self.filter_fwhm), int(self.filter_size)).copy()


@functools.lru_cache(maxsize=8)
def _gaussian_kernel(fwhm: float, size: int) -> np.ndarray:
    """Normalised ``size`` x ``size`` Gaussian of FWHM ``fwhm`` px sampled at pixel centres
    (read-only: shared by every detection with these settings)."""
    half = size // 2
    u = np.arange(-half, half + 1, dtype=float)
    g = np.exp(-4.0 * math.log(2.0) * u**2 / fwhm**2)
    kernel = np.outer(g, g)
    kernel /= kernel.sum()
    kernel.flags.writeable = False
    return kernel


@dataclass(frozen=True)
class Detection:
    """What :func:`detect_sources` found in one image.

    Attributes
    ----------
    objects : numpy.ndarray
        ``sep.extract`` record array (x, y, a, b, theta, npix, tnpix, peak, flag, ...).
    segmap : numpy.ndarray
        int32 segmentation map: 0 is sky, ``i + 1`` belongs to ``objects[i]``.
    data : numpy.ndarray
        float64 background-subtracted image, bad pixels set to 0.
    rms : numpy.ndarray
        Background RMS map (float32; ones when no background was estimated).
    bad : numpy.ndarray
        Boolean map of unusable pixels (non-finite, masked, or invalid variance).
    """

    objects: np.ndarray
    segmap: np.ndarray
    data: np.ndarray
    rms: np.ndarray
    bad: np.ndarray


class _Failure(Exception):
    """A measurement that cannot be made; the message becomes the ``reason``."""


def _prepare(image, variance, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    data = np.array(image, dtype=np.float64, copy=True)
    if data.ndim != 2:
        raise ValueError(f"image must be 2-D (rows, columns), got shape {data.shape}")
    if data.size == 0:
        raise _Failure("empty image")
    bad = ~np.isfinite(data)
    if mask is not None:
        mask = np.asarray(mask)
        if mask.shape != data.shape:
            raise ValueError(f"mask shape {mask.shape} differs from image shape {data.shape}")
        bad |= mask != 0
    var = None
    if variance is not None:
        var = np.array(variance, dtype=np.float64, copy=True)
        if var.shape != data.shape:
            raise ValueError(f"variance shape {var.shape} differs from image shape {data.shape}")
        with np.errstate(invalid="ignore"):
            bad |= ~(np.isfinite(var) & (var > 0))
        var[bad] = np.inf
    if bad.all():
        raise _Failure("no valid pixels (all NaN, masked or zero-variance)")
    data[bad] = 0.0
    return data, bad, var


def _detect(data: np.ndarray, bad: np.ndarray, config: DetectionConfig) -> Detection:
    rms = np.ones(data.shape, dtype=np.float32)
    sigma = 1.0
    any_bad = bool(bad.any())
    sep_mask = bad if any_bad else None  # the same results; sep skips the mask
    if config.subtract_background or config.thresh_type == "relative":
        try:
            bkg = sep.Background(
                data,
                mask=sep_mask,
                bw=config.back_size,
                bh=config.back_size,
                fw=config.back_filtersize,
                fh=config.back_filtersize,
            )
        except Exception as exc:  # sep raises bare Exception subclasses from C
            raise _Failure(f"background estimation failed: {exc}") from exc
        rms = bkg.rms()
        if config.subtract_background:
            data = data - bkg.back()
            if any_bad:
                data[bad] = 0.0
        sigma = float(bkg.globalrms)
        # sep reports globalrms = 1 for a constant image; its RMS map is then all zero.
        usable_rms = rms[~bad] if any_bad else rms
        constant = not (np.isfinite(sigma) and sigma > 0 and usable_rms.max() > 0)
        if config.thresh_type == "relative" and constant:
            raise _Failure("background RMS is zero or undefined (constant image)")
    # SExtractor without a weight map thresholds at DETECT_THRESH x the global background RMS.
    thresh = config.detect_thresh * (sigma if config.thresh_type == "relative" else 1.0)
    try:
        objects, segmap = sep.extract(
            data.astype(np.float32),  # sep detects in float32: the same, without its copy
            thresh,
            mask=sep_mask,
            minarea=config.detect_minarea,
            filter_kernel=None
            if config.filter_fwhm is None
            else _gaussian_kernel(float(config.filter_fwhm), int(config.filter_size)),
            filter_type="conv",
            deblend_nthresh=config.deblend_nthresh,
            deblend_cont=config.deblend_mincont,
            clean=config.clean,
            clean_param=config.clean_param,
            segmentation_map=True,
        )
    except Exception as exc:
        raise _Failure(f"sep.extract failed: {exc}") from exc
    return Detection(objects=objects, segmap=segmap, data=data, rms=rms, bad=bad)


def detect_sources(
    image: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    config: DetectionConfig = DetectionConfig(),
) -> Detection:
    """Detect sources as Source Extractor with ``config`` would.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluxes; NaN/inf pixels are treated as masked.
    variance : numpy.ndarray, optional
        Per-pixel variance; pixels with a non-positive or NaN variance are masked. The detection
        threshold uses the global background RMS, as SExtractor without a weight map does.
    mask : numpy.ndarray, optional
        Non-zero marks a bad pixel (reduce HSC bit planes to the bad bits first).
    config : DetectionConfig

    Returns
    -------
    Detection

    Raises
    ------
    ValueError
        If the image is not 2-D, the image is empty, or no detection is possible (the message
        says why).

    Examples
    --------
    >>> img = np.zeros((40, 40)); img[18:22, 18:22] = 5.0
    >>> cfg = DetectionConfig(detect_thresh=1.0, thresh_type="absolute",
    ...                       subtract_background=False)
    >>> len(detect_sources(img, config=cfg).objects)
    1
    """
    try:
        data, bad, _ = _prepare(image, variance, mask)
        return _detect(data, bad, config)
    except _Failure as exc:
        raise ValueError(str(exc)) from exc
