"""Per-band galaxy morphology (GalaxiesML Table 1) measured with ``sep`` on numpy cutouts.

Pure functions over arrays: no I/O, no warehouse state. Pixel values are fluxes and are never
normalised; only a ``sep`` background is subtracted, as Source Extractor does.

Detection follows the GalaxiesML Source Extractor configuration (:class:`DetectionConfig`):
DETECT_THRESH 3 sigma above a ``sep`` background (BACK_SIZE 64, BACK_FILTERSIZE 3), sigma being
the global background RMS as in SExtractor without a weight map; DETECT_MINAREA 5; a 3x3
Gaussian filter (FWHM 2 px, SExtractor's ``default.conv``); DEBLEND_NTHRESH 32, DEBLEND_MINCONT
0.005; CLEAN with CLEAN_PARAM 1. The central galaxy is the detection nearest the cutout centre
((W-1)/2, (H-1)/2 in 0-based pixel coordinates).

Per band the measured quantities are:

* ``ellipticity`` = 1 - B/A, ``major_axis`` = A, ``minor_axis`` = B, ``pos_angle``: the
  second-moment ellipse of the isophotal pixels (Source Extractor A_IMAGE, B_IMAGE, THETA_IMAGE);
  the angle is in degrees counter-clockwise from the +x (column) axis, in (-90, 90].
* ``isophotal_area``: pixels of the detection above the threshold in the unfiltered image
  (``sep``'s ``tnpix``, ISOAREA_IMAGE).
* ``peak_surface_brightness``: mu = zp - 2.5 log10(peak / pixel_scale**2) from the brightest
  background-subtracted pixel (MU_MAX).
* ``half_light_radius``: ``sep.flux_radius`` at PHOT_FLUXFRAC of FLUX_AUTO (Kron aperture,
  PHOT_AUTOPARAMS 2.5, 3.5), a circular radius in pixels (FLUX_RADIUS).
* ``petro_rad``: the Petrosian semi-major axis in pixels, on elliptical annuli of the
  detection's shape: the radius r where the mean surface brightness in the annulus
  [0.8 r, 1.25 r] over the mean surface brightness inside r falls to ``petro_thresh`` (0.2),
  linearly interpolated between radii 5 % apart (the SDSS definition). Source Extractor reports
  PETRO_RADIUS = 2 x (its own r_P, on a coarser grid) in units of A; r_P = PETRO_RADIUS * A / 2.
* ``sersic_index``: weighted least-squares fit (:mod:`~warehouse.morphology.sersic`, a
  Levenberg-Marquardt loop with the analytic Jacobian) of a Sersic profile
  I(r) = I_e exp(-b_n ((r/R_e)**(1/n) - 1)) to the pixels within 1.5 Kron radii, with
  centre, axis ratio and angle fixed to the detection's moments and I_e, R_e, n free
  (b_n from ``gammaincinv(2n, 1/2)``). The model is integrated over each pixel (11x11
  sub-samples within 2 px of the centre, 3x3 to 6 px, pixel centres beyond). On rendered
  galaxies n = 1 comes back within 0.01 and n = 4 within 0.7 (typically ~10 % low; a larger
  fit region does not change it). The PSF is not deconvolved, so for galaxies a few pixels
  across the index is that of the observed, seeing-convolved light.
* ``total_galaxies``: the number of detections; ``central_image_pop_{15,10,5}px_rad``: the
  detections whose barycentre lies within that many pixels of the cutout centre.

Radii (half-light, Kron, Petrosian, Sersic) are measured with neighbours handled as Source
Extractor's MASK_TYPE CORRECT: pixels of other detections in ``sep``'s segmentation map (and bad
pixels) are replaced by the pixel symmetric about the central galaxy, or dropped when that one is
unusable too. The Sersic fit simply leaves them out.

A measurement that cannot be made is ``None`` and the ``reason`` entry says why; nothing is
invented. NaN/inf pixels, pixels flagged in ``mask`` and pixels with a non-positive or NaN
``variance`` are excluded everywhere.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(1)
>>> yy, xx = np.mgrid[:63, :63]
>>> image = 50 * np.exp(-((xx - 31) ** 2 + (yy - 31) ** 2) / 18) + rng.normal(0, 1, (63, 63))
>>> m = measure_band(image)
>>> m["reason"] is None, m["total_galaxies"], round(m["ellipticity"], 1)
(True, 1, 0.0)

Modules: :mod:`~warehouse.morphology.fields` (the Table 1 fields and the table's columns, named
once), :mod:`~warehouse.morphology.detect` (detection), :mod:`~warehouse.morphology.measure`
(per band and per object), :mod:`~warehouse.morphology.sersic` (the Sersic profile and fit),
:mod:`~warehouse.morphology.sextractor` (the Source Extractor
cross-check), :mod:`~warehouse.morphology.table` (``gwh morphology measure``: the ``morphology``
table, tasks, batches, commits) and :mod:`~warehouse.morphology.worker` (what a worker process
runs). :func:`measure_morphology` loads on first use, so a worker process, which imports this
package, does not import the warehouse (DuckDB, healpy, astropy).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from warehouse.morphology.detect import Detection, DetectionConfig, detect_sources
from warehouse.morphology.fields import CENTRAL_RADII, FIELD_UNITS, MORPHOLOGY_FIELDS
from warehouse.morphology.measure import measure_band, measure_object, petrosian_radius
from warehouse.morphology.sersic import sersic_profile
from warehouse.morphology.sextractor import run_source_extractor, source_extractor_files

if TYPE_CHECKING:  # at run time measure_morphology loads on first use (see above)
    from warehouse.morphology.table import measure_morphology

__all__ = [
    "CENTRAL_RADII",
    "FIELD_UNITS",
    "MORPHOLOGY_FIELDS",
    "Detection",
    "DetectionConfig",
    "detect_sources",
    "measure_band",
    "measure_morphology",
    "measure_object",
    "petrosian_radius",
    "run_source_extractor",
    "sersic_profile",
    "source_extractor_files",
]

# public name -> module that defines it (PEP 562, as warehouse/__init__.py)
_LAZY = {"measure_morphology": "warehouse.morphology.table"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'warehouse.morphology' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
