"""Table 1 measured on one band's cutout (:func:`measure_band`) or an object's bands.

:func:`measure_object` runs :func:`measure_band` on every band of a cutout cube. The central
galaxy (the detection nearest the cutout centre) is measured: second-moment shape, isophotal
area, peak surface brightness, half-light and Petrosian radii, Sersic index and the counts of
detections near the centre. The definitions, and how neighbours and bad pixels are handled, are
in the :mod:`warehouse.morphology` package docstring. A measurement that cannot be made is
``None`` and ``reason`` says why.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import sep

from warehouse.morphology.detect import (
    Detection,
    DetectionConfig,
    _detect,
    _Failure,
    _prepare,
)
from warehouse.morphology.fields import CENTRAL_RADII, MORPHOLOGY_FIELDS
from warehouse.morphology.sersic import fit_sersic, sersic_profile

__all__ = ["measure_band", "measure_object", "petrosian_radius", "sersic_profile"]


def petrosian_radius(
    data: np.ndarray,
    valid: np.ndarray | None,
    x: float,
    y: float,
    q: float,
    theta: float,
    *,
    eta: float = 0.2,
    rmin: float = 1.0,
    r_hint: float | None = None,
) -> float:
    """Petrosian semi-major axis (pixels) on elliptical annuli.

    eta(r) = mean surface brightness in [0.8 r, 1.25 r] / mean surface brightness inside r;
    r is scanned in 5 % steps from ``rmin`` and the first crossing of ``eta`` is interpolated.
    The flux and pixel count inside each radius are sums over the valid pixels whose elliptical
    radius is at most that radius (pixels are binned between consecutive radii, not sorted).

    Parameters
    ----------
    data : numpy.ndarray
        Background-subtracted image.
    valid : numpy.ndarray or None
        Boolean map of usable pixels (``None``: all are).
    x, y : float
        Centre (0-based pixels).
    q, theta : float
        Axis ratio B/A and angle (radians, counter-clockwise from +x) of the annuli.
    eta, rmin : float
        Petrosian ratio and the smallest radius tried.
    r_hint : float, optional
        A size of the galaxy (pixels, e.g. its Kron radius): the radii up to 1.5 times it
        are scanned first, on fewer pixels. The result does not depend on it.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If the ratio never falls to ``eta`` inside the image.
    """
    h, w = data.shape
    # Largest annulus must stay inside the image along every direction: the ellipse's minor
    # extent is q * r, its major extent r; require the whole ellipse 1.25 r inside.
    edge = min(x + 0.5, w - 0.5 - x, y + 0.5, h - 0.5 - y)
    rmax = edge / 1.25
    if rmax <= rmin:
        raise ValueError("cutout too small around the centre for a Petrosian radius")
    radii = rmin * 1.05 ** np.arange(int(math.log(rmax / rmin) / math.log(1.05)) + 1)
    thresholds = np.concatenate((radii, 1.25 * radii, 0.8 * radii))
    edges = np.sort(thresholds)
    m = radii.size
    where = np.searchsorted(edges, thresholds).reshape(3, m)  # rows: r, 1.25 r, 0.8 r
    outer = float(edges[-1])
    # eta(r_i) depends on the pixels within 1.25 r_i only: try the radii up to about
    # 1.5 r_hint first (on a smaller box), then, if eta has not fallen by then, all of them.
    limit = outer if r_hint is None else min(1.5 * 1.25 * max(r_hint, rmin), outer)
    while True:
        found = _petrosian_scan(data, valid, x, y, q, theta, eta, radii, edges, where, limit)
        if found is not None or limit >= outer:
            break
        limit = outer
    if found is None:
        raise ValueError("Petrosian ratio does not fall to the threshold inside the cutout")
    return found


def _petrosian_scan(
    data: np.ndarray,
    valid: np.ndarray | None,
    x: float,
    y: float,
    q: float,
    theta: float,
    eta: float,
    radii: np.ndarray,
    edges: np.ndarray,
    where: np.ndarray,
    limit: float,
) -> float | None:
    """The interpolated first crossing of ``eta`` among the radii whose outer annulus edge
    (1.25 r) is at most ``limit``, or None. ``edges``: every annulus edge, sorted; ``where``:
    the position in ``edges`` of r, 1.25 r and 0.8 r for each radius."""
    h, w = data.shape
    n_edges = int(np.searchsorted(edges, limit, side="right"))
    usable = int(np.searchsorted(where[1], n_edges))  # radii with 1.25 r among those edges
    if usable == 0:
        return None
    # only pixels within the ellipse of semi-major axis `limit` count: its bounding box (+1 px)
    big, c, s = float(edges[n_edges - 1]), math.cos(theta), math.sin(theta)
    half_x, half_y = big * math.hypot(c, q * s) + 1.0, big * math.hypot(s, q * c) + 1.0
    x0, x1 = max(int(x - half_x), 0), min(int(math.ceil(x + half_x)) + 1, w)
    y0, y1 = max(int(y - half_y), 0), min(int(math.ceil(y + half_y)) + 1, h)
    r = _radius_map(x0, x1, y0, y1, x, y, q, theta)
    if valid is not None:
        np.copyto(r, np.inf, where=~valid[y0:y1, x0:x1])
    # bin k holds the pixels with edges[k-1] < r <= edges[k]; bin n_edges the rest
    k = np.searchsorted(edges[:n_edges], r.ravel(), side="left")
    box = data[y0:y1, x0:x1].ravel()
    cum_flux = np.cumsum(np.bincount(k, weights=box, minlength=n_edges + 1))
    cum_n = np.cumsum(np.bincount(k, minlength=n_edges + 1)).astype(float)
    f_in, f_hi, f_lo = cum_flux[where[:, :usable]]
    n_in, n_hi, n_lo = cum_n[where[:, :usable]]
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = ((f_hi - f_lo) / (n_hi - n_lo)) / (f_in / n_in)
    ok = np.isfinite(ratio) & (f_in > 0)
    below = np.nonzero(ok & (ratio < eta))[0]
    if below.size == 0:
        return None
    k0 = below[0]
    if k0 == 0 or not ok[k0 - 1]:
        return float(radii[k0])
    r0, r1, e0, e1 = radii[k0 - 1], radii[k0], ratio[k0 - 1], ratio[k0]
    return float(r0 + (e0 - eta) * (r1 - r0) / (e0 - e1))


def _radius_map(
    x0: int, x1: int, y0: int, y1: int, x: float, y: float, q: float, theta: float
) -> np.ndarray:
    """Elliptical (semi-major) radius about (x, y) of the pixels [y0:y1, x0:x1].

    The same arithmetic as :func:`~warehouse.morphology.sersic.elliptical_radius` on the pixel
    offsets, broadcast from a row and a column of offsets.
    """
    c, s = math.cos(theta), math.sin(theta)
    dx = np.arange(x0, x1) - x
    dy = (np.arange(y0, y1) - y)[:, None]
    u = dx * c + dy * s
    v = dy * c - dx * s  # = -dx s + dy c
    v /= q
    np.square(v, out=v)
    np.multiply(u, u, out=u)
    u += v
    return np.sqrt(u, out=u)


def _corrected(
    det: Detection, index: int, x: float, y: float
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """MASK_TYPE CORRECT: replace neighbour and bad pixels by their mirror about (x, y).

    Returns the corrected image, the pixels still unusable (``None`` when there are none) and
    the neighbour-or-bad map. With nothing to correct the image is ``det.data`` itself.
    """
    unusable = det.bad | ((det.segmap > 0) & (det.segmap != index + 1))
    yy, xx = np.nonzero(unusable)
    if yy.size == 0:
        return det.data, None, unusable
    data = det.data.copy()
    mx = np.rint(2.0 * x - xx).astype(int)
    my = np.rint(2.0 * y - yy).astype(int)
    h, w = data.shape
    inside = (mx >= 0) & (mx < w) & (my >= 0) & (my < h)
    ok = inside.copy()
    ok[inside] = ~unusable[my[inside], mx[inside]]
    data[yy[ok], xx[ok]] = det.data[my[ok], mx[ok]]
    still_bad = np.zeros_like(unusable)
    still_bad[yy[~ok], xx[~ok]] = True
    data[still_bad] = 0.0
    return data, still_bad, unusable


def _empty(reason: str | None) -> dict[str, Any]:
    out: dict[str, Any] = dict.fromkeys(MORPHOLOGY_FIELDS)
    out["reason"] = reason
    return out


def measure_band(
    image: np.ndarray,
    *,
    variance: np.ndarray | None = None,
    mask: np.ndarray | None = None,
    zeropoint: float = 27.0,
    pixel_scale: float = 0.168,
    config: DetectionConfig = DetectionConfig(),  # noqa: B008 (frozen, immutable)
) -> dict[str, Any]:
    """Measure the central galaxy of one band's cutout.

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluxes (not normalised); NaN/inf pixels are masked.
    variance : numpy.ndarray, optional
        Per-pixel variance, used as the error of the Sersic fit (else the background RMS);
        non-positive or NaN values mask the pixel.
    mask : numpy.ndarray, optional
        Non-zero marks a bad pixel.
    zeropoint : float
        Magnitude zero point of the pixel values (27.0 for HSC coadds).
    pixel_scale : float
        Arcsec per pixel (0.168 for HSC).
    config : DetectionConfig

    Returns
    -------
    dict
        One entry per :data:`MORPHOLOGY_FIELDS` (``None`` when not measurable) and ``reason``:
        ``None`` when every field was measured, otherwise ``"; "``-joined short explanations.

    Raises
    ------
    ValueError
        Only for caller errors: a non-2-D image or mismatched shapes.

    Examples
    --------
    >>> measure_band(np.zeros((64, 64)))["reason"]
    'background RMS is zero or undefined (constant image)'
    """
    if not (math.isfinite(zeropoint) and math.isfinite(pixel_scale) and pixel_scale > 0):
        raise ValueError(
            f"zeropoint must be finite and pixel_scale > 0, got {zeropoint!r}, {pixel_scale!r}"
        )
    try:
        data, bad, var = _prepare(image, variance, mask)
        det = _detect(data, bad, config)
    except _Failure as exc:
        return _empty(str(exc))

    h, w = det.data.shape
    cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
    objs = det.objects
    dist = np.hypot(objs["x"] - cx, objs["y"] - cy)
    out = _empty(None)
    out["total_galaxies"] = len(objs)
    for rad in CENTRAL_RADII:
        out[f"central_image_pop_{rad}px_rad"] = int(np.count_nonzero(dist <= rad))
    if len(objs) == 0:
        out["reason"] = "no detection"
        return out
    i = int(np.argmin(dist))
    if config.max_center_distance is not None and dist[i] > config.max_center_distance:
        out["reason"] = f"no detection within {config.max_center_distance:g} px of the centre"
        return out
    obj = objs[i]
    if obj["xmin"] <= 0 or obj["ymin"] <= 0 or obj["xmax"] >= w - 1 or obj["ymax"] >= h - 1:
        out["reason"] = "central detection touches the image edge"
        return out

    x, y = float(obj["x"]), float(obj["y"])
    a, b, theta = float(obj["a"]), float(obj["b"]), float(obj["theta"])
    reasons: list[str] = []
    if not (a > 0 and b > 0 and np.isfinite(theta)):
        out["reason"] = "degenerate central detection (zero second moments)"
        return out
    out["major_axis"], out["minor_axis"] = a, b
    out["ellipticity"] = 1.0 - b / a
    out["pos_angle"] = math.degrees(theta)
    out["isophotal_area"] = int(obj["tnpix"])
    peak = float(obj["peak"])
    if peak > 0:
        out["peak_surface_brightness"] = zeropoint - 2.5 * math.log10(peak / pixel_scale**2)
    else:
        reasons.append("peak_surface_brightness: non-positive peak")

    corr, still_bad, unusable = _corrected(det, i, x, y)
    q = b / a
    # FLUX_AUTO (Kron) aperture, with SExtractor's minimum circular radius.
    xa, ya, aa, ba, ta = (np.array([v]) for v in (x, y, a, b, theta))
    kronrad, _ = sep.kron_radius(corr, xa, ya, aa, ba, ta, 6.0, mask=still_bad)
    kronrad = float(kronrad[0])
    r_min = config.kron_minrad
    if (
        not (np.isfinite(kronrad) and kronrad > 0)
        or config.kron_fact * kronrad * math.sqrt(a * b) < r_min
    ):
        flux, _, _ = sep.sum_circle(corr, xa, ya, r_min, mask=still_bad, subpix=5)
        r_kron = max(r_min, config.kron_fact * kronrad * a if np.isfinite(kronrad) else r_min)
    else:
        flux, _, _ = sep.sum_ellipse(
            corr, xa, ya, aa, ba, ta, config.kron_fact * kronrad, mask=still_bad, subpix=5
        )
        r_kron = config.kron_fact * kronrad * a
    flux = float(flux[0])

    if not (np.isfinite(flux) and flux > 0):
        reasons.append("half_light_radius: FLUX_AUTO is not positive")
    else:
        rmax = max(r_kron, r_min) * 1.5
        hl, hflag = sep.flux_radius(
            corr,
            xa,
            ya,
            np.array([rmax]),
            config.phot_fluxfrac,
            normflux=np.array([flux]),
            mask=still_bad,
            subpix=5,
        )
        hl, hflag = float(hl[0]), int(hflag[0])
        if hflag & sep.APER_ALLMASKED or not (np.isfinite(hl) and 0 < hl < rmax):
            reasons.append(f"half_light_radius: sep.flux_radius failed (flag {int(hflag)})")
        else:
            out["half_light_radius"] = hl

    try:
        out["petro_rad"] = petrosian_radius(
            corr,
            None if still_bad is None else ~still_bad,
            x,
            y,
            q,
            theta,
            eta=config.petro_thresh,
            r_hint=r_kron,
        )
    except ValueError as exc:
        reasons.append(f"petro_rad: {exc}")

    if config.fit_sersic:
        valid = ~unusable
        sigma = np.sqrt(var) if var is not None else det.rms
        guess = out["half_light_radius"] or math.sqrt(a * b)
        try:
            out["sersic_index"] = fit_sersic(
                det.data,
                sigma,
                valid,
                x,
                y,
                q,
                theta,
                r_fit=max(1.5 * r_kron, 3.0 * r_min),
                r_guess=guess / math.sqrt(q),
            )
        except ValueError as exc:
            reasons.append(f"sersic_index: {exc}")

    out["reason"] = "; ".join(reasons) or None
    return out


def measure_object(
    images: np.ndarray,
    bands: str | Sequence[str],
    variances: np.ndarray | None = None,
    masks: np.ndarray | None = None,
    zeropoint: float | Sequence[float] = 27.0,
    pixel_scale: float = 0.168,
    config: DetectionConfig = DetectionConfig(),  # noqa: B008 (frozen, immutable)
) -> dict[str, Any]:
    """Measure every band of one object's cutout cube.

    Parameters
    ----------
    images : numpy.ndarray
        (B, S, S) fluxes, channels first.
    bands : str or sequence of str
        B band names, e.g. ``"grizy"``.
    variances, masks : numpy.ndarray, optional
        (B, S, S) planes, as in :func:`measure_band`.
    zeropoint : float or sequence of float
        One zero point, or one per band.
    pixel_scale : float
    config : DetectionConfig

    Returns
    -------
    dict
        ``{f"{band}_{field}": value}`` for every field, and ``f"{band}_morph_reason"``.

    Examples
    --------
    >>> out = measure_object(np.zeros((2, 32, 32)), "gr")
    >>> out["g_ellipticity"] is None, out["r_morph_reason"]
    (True, 'background RMS is zero or undefined (constant image)')
    """
    images = np.asarray(images)
    bands = list(bands)
    if images.ndim != 3 or images.shape[0] != len(bands):
        raise ValueError(
            f"images must be (bands, rows, columns) with {len(bands)} bands, got {images.shape}"
        )
    if isinstance(zeropoint, Sequence) or np.ndim(zeropoint) > 0:
        zps = [float(z) for z in np.atleast_1d(np.asarray(zeropoint, dtype=float))]
    else:
        zps = [float(zeropoint)] * len(bands)
    if len(zps) != len(bands):
        raise ValueError(f"got {len(zps)} zeropoints for {len(bands)} bands")
    out: dict[str, Any] = {}
    for k, band in enumerate(bands):
        res = measure_band(
            images[k],
            variance=None if variances is None else variances[k],
            mask=None if masks is None else masks[k],
            zeropoint=zps[k],
            pixel_scale=pixel_scale,
            config=config,
        )
        for field in MORPHOLOGY_FIELDS:
            out[f"{band}_{field}"] = res[field]
        out[f"{band}_morph_reason"] = res["reason"]
    return out
