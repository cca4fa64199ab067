"""Source Extractor cross-check: its configuration equal to a :class:`DetectionConfig`, and a run.

:func:`source_extractor_files` writes the GalaxiesML configuration (``.sex``, ``.param``,
``.conv``) that matches a :class:`~warehouse.morphology.detect.DetectionConfig`;
:func:`run_source_extractor` runs the binary on one image. Used by the agreement benchmark and
the tests, never by a measurement.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np

from warehouse.morphology.detect import DetectionConfig

__all__ = ["SEXTRACTOR_PARAMS", "run_source_extractor", "source_extractor_files"]

#: Catalogue columns requested from Source Extractor by :func:`run_source_extractor`.
SEXTRACTOR_PARAMS: tuple[str, ...] = (
    "NUMBER",
    "X_IMAGE",
    "Y_IMAGE",
    "XMIN_IMAGE",
    "XMAX_IMAGE",
    "YMIN_IMAGE",
    "YMAX_IMAGE",
    "A_IMAGE",
    "B_IMAGE",
    "THETA_IMAGE",
    "ELLIPTICITY",
    "ISOAREA_IMAGE",
    "FLUX_MAX",
    "MU_MAX",
    "FLUX_AUTO",
    "KRON_RADIUS",
    "FLUX_RADIUS",
    "PETRO_RADIUS",
    "FLAGS",
)


def source_extractor_files(
    config: DetectionConfig = DetectionConfig(),  # noqa: B008 (frozen, immutable)
) -> dict[str, str]:
    """Source Extractor configuration equivalent to ``config``.

    Returns
    -------
    dict
        ``{"galaxiesml.sex": ..., "galaxiesml.param": ..., "galaxiesml.conv": ...}``; the
        ``.sex`` file names the other two by bare file name, so keep them in one directory.

    Examples
    --------
    >>> print(source_extractor_files()["galaxiesml.conv"].splitlines()[2])
    0.0625 0.125 0.0625
    """
    kernel = config.filter_kernel
    conv = [
        "CONV NORM",
        f"# {config.filter_size}x{config.filter_size} Gaussian, FWHM "
        f"{config.filter_fwhm} px, sampled at pixel centres (galaxy-warehouse)",
    ]
    if kernel is not None:
        conv += [" ".join(f"{v:.6g}" for v in row) for row in kernel]
    settings = {
        "CATALOG_NAME": "STDOUT",
        "CATALOG_TYPE": "ASCII_HEAD",
        "PARAMETERS_NAME": "galaxiesml.param",
        "DETECT_TYPE": "CCD",
        "DETECT_MINAREA": f"{config.detect_minarea}",
        "THRESH_TYPE": config.thresh_type.upper(),
        "DETECT_THRESH": f"{config.detect_thresh:g}",
        "ANALYSIS_THRESH": f"{config.detect_thresh:g}",
        "FILTER": "Y" if kernel is not None else "N",
        "FILTER_NAME": "galaxiesml.conv",
        "DEBLEND_NTHRESH": f"{config.deblend_nthresh}",
        "DEBLEND_MINCONT": f"{config.deblend_mincont:g}",
        "CLEAN": "Y" if config.clean else "N",
        "CLEAN_PARAM": f"{config.clean_param:g}",
        "MASK_TYPE": "CORRECT",
        "WEIGHT_TYPE": "NONE",
        "PHOT_AUTOPARAMS": f"{config.kron_fact:g}, {config.kron_minrad:g}",
        "PHOT_PETROPARAMS": "2.0, 3.5",
        "PHOT_FLUXFRAC": f"{config.phot_fluxfrac:g}",
        "SATUR_LEVEL": "1e20",
        "MAG_ZEROPOINT": "27.0",
        "GAIN": "0.0",
        "PIXEL_SCALE": "0.168",
        "BACK_TYPE": "AUTO" if config.subtract_background else "MANUAL",
        "BACK_VALUE": "0.0",
        "BACK_SIZE": f"{config.back_size}",
        "BACK_FILTERSIZE": f"{config.back_filtersize}",
        "BACKPHOTO_TYPE": "GLOBAL",
        "CHECKIMAGE_TYPE": "NONE",
        "VERBOSE_TYPE": "QUIET",
    }
    sex = [
        "# GalaxiesML Source Extractor configuration, written by",
        "# warehouse.morphology.source_extractor_files(DetectionConfig())",
    ]
    sex += [f"{k:<17}{v}" for k, v in settings.items()]
    return {
        "galaxiesml.sex": "\n".join(sex) + "\n",
        "galaxiesml.param": "\n".join(SEXTRACTOR_PARAMS) + "\n",
        "galaxiesml.conv": "\n".join(conv) + "\n",
    }


def run_source_extractor(
    image: np.ndarray,
    config_dir: str | Path,
    *,
    zeropoint: float = 27.0,
    pixel_scale: float = 0.168,
    binary: str | None = None,
) -> np.ndarray:
    """Run the Source Extractor binary on one image (one process per call).

    Parameters
    ----------
    image : numpy.ndarray
        2-D fluxes, written to a temporary FITS file as float32.
    config_dir : str or pathlib.Path
        Directory holding the files of :func:`source_extractor_files`.
    zeropoint, pixel_scale : float
        Passed as MAG_ZEROPOINT and PIXEL_SCALE.
    binary : str, optional
        Executable; by default ``source-extractor`` or ``sex`` from ``PATH``.

    Returns
    -------
    numpy.ndarray
        Record array with the :data:`SEXTRACTOR_PARAMS` columns; pixel coordinates are
        converted to 0-based (``X_IMAGE``, ``Y_IMAGE``, ``*MIN/MAX_IMAGE`` minus 1).

    Raises
    ------
    FileNotFoundError
        If no Source Extractor binary is found (``apt-get install source-extractor``).
    RuntimeError
        If the binary fails; the message holds its standard error.
    """
    from astropy.io import fits

    exe = binary or shutil.which("source-extractor") or shutil.which("sex")
    if exe is None:
        raise FileNotFoundError(
            "Source Extractor is not installed; install it with 'apt-get install source-extractor'"
        )
    config_dir = Path(config_dir).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "image.fits"
        fits.PrimaryHDU(np.asarray(image, dtype=np.float32)).writeto(path)
        proc = subprocess.run(
            [
                exe,
                str(path),
                "-c",
                "galaxiesml.sex",
                "-MAG_ZEROPOINT",
                repr(float(zeropoint)),
                "-PIXEL_SCALE",
                repr(float(pixel_scale)),
            ],
            cwd=config_dir,
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{exe} failed ({proc.returncode}): {proc.stderr.strip()}")
    rows = [line.split() for line in proc.stdout.splitlines() if line and not line[0] == "#"]
    dtype = [
        (
            name,
            np.int64
            if name in ("NUMBER", "FLAGS", "ISOAREA_IMAGE")
            or name.endswith(("MIN_IMAGE", "MAX_IMAGE"))
            else np.float64,
        )
        for name in SEXTRACTOR_PARAMS
    ]
    out = np.array([tuple(float(v) for v in r) for r in rows], dtype=dtype)
    for name in ("X_IMAGE", "Y_IMAGE", "XMIN_IMAGE", "XMAX_IMAGE", "YMIN_IMAGE", "YMAX_IMAGE"):
        out[name] -= 1
    return out
