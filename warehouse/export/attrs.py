"""What an export file says about itself: provenance attributes, the meaning of its pixels,
the descriptions of its own datasets, and the digest that lets ``--all-splits`` resume.

The digest (:func:`export_digest`, file attribute ``export_sha256``) hashes everything that
decides the bytes of one file; a rerun keeps an existing split file only when it matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import h5py
import numpy as np

from warehouse import __version__
from warehouse.citations import CITATION_GALAXIESML, CITATIONS_HSC, HSC_ACKNOWLEDGEMENT
from warehouse.cutouts import CUTOUTS
from warehouse.lineage import simulated_sources, tables_named
from warehouse.store.contracts import base_tables

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "LAYOUT_VERSION",
    "OWN_DATASETS",
    "data_release",
    "export_digest",
    "image_units",
    "provenance",
    "stored_digest",
]

LAYOUT_VERSION = 3  # bump when the bytes written for the same inputs change (resume checks it)

OWN_DATASETS = {  # the ``description`` attribute of the datasets the export adds
    "image": "pixels (N, bands, S, S) as stored in the image table, never rescaled; see the file "
    "attribute image_units",
    "mask": "HSC mask bits per pixel (file attribute mask_planes); padding and missing bands "
    "have NO_DATA set",
    "variance": "per-pixel variance, in image units squared; padding inf, missing bands NaN",
    "fit_action": "how each image reached S x S: none, cropped, padded or cropped+padded; "
    "missing: no image",
    "zeropoint": "AB zeropoint per row and band (magnitude = zeropoint - 2.5 log10(pixel "
    "value)); NaN when unknown: those pixels are not calibrated flux",
    "image_simulated": "true where the pixels are synthetic (SIMULATED)",
}


def image_units(
    images: str,
    bands: Sequence[str],
    units: Mapping[str, str],
    zeropoints: tuple[int, int, float | None, float | None],
) -> str:
    """What the pixel values are, from the zeropoints of the exported images: calibrated flux
    only where a zeropoint is known (the real COSMOS cutouts have none: NULL/NaN).

    ``zeropoints``: (band images, band images with a known zeropoint, lowest, highest).

    >>> image_units("cutouts", "gr", {}, (4, 0, None, None))[:60]
    'as stored in the HSC cutouts; NOT calibrated flux: no image '
    """
    n_images, n_zp, lo, hi = zeropoints
    if images == CUTOUTS.name:
        stored = "as stored in the HSC cutouts"
    else:
        stored = (
            f"as stored in {images} ("
            + ", ".join(f"{b}: {units.get(b) or 'unit not stated'}" for b in bands)
            + ")"
        )
    if n_images == 0:
        return f"{stored}; no row has an image (every image is NaN); never rescaled"
    if n_zp == 0:
        return (
            f"{stored}; NOT calibrated flux: no image has a known zeropoint (zeropoint dataset "
            "NaN), so the pixel values have no stated flux unit; never rescaled"
        )
    if lo is not None and hi is not None and lo == hi:
        flux = f"flux with AB zeropoint {lo:g} (magnitude = {lo:g} - 2.5 log10(pixel value))"
    else:
        flux = (
            "flux with the per-image AB zeropoint of the zeropoint dataset (magnitude = "
            "zeropoint - 2.5 log10(pixel value))"
        )
    if n_zp < n_images:
        return (
            f"{stored}; {flux} where the zeropoint dataset is known ({n_zp:,} of {n_images:,} "
            "band images); where it is NaN the pixels are NOT calibrated flux; never rescaled"
        )
    return f"{stored}; {flux}; never rescaled"


def data_release(reruns: Sequence[str], images: str) -> str:
    """HSC-SSP PDR<n> from the cutouts' reruns (pdr2_wide, ...); other tables: their reruns."""
    if not reruns:
        return "unknown (the images record no rerun)"
    if images != CUTOUTS.name:
        return f"{images}: rerun {', '.join(reruns)}"
    names = {"pdr1": "HSC-SSP PDR1", "pdr2": "HSC-SSP PDR2", "pdr3": "HSC-SSP PDR3"}
    return ", ".join(
        sorted({next((v for k, v in names.items() if r.startswith(k)), r) for r in reruns})
    )


def provenance(wh: Warehouse, images: str, sql: str, reruns: Sequence[str]) -> dict:
    """Release, data release, split settings, citations and acknowledgement of one export of
    ``sql`` with the images of table ``images`` whose reruns are ``reruns``."""
    splits = wh.config.splits
    hsc = images == CUTOUTS.name or wh.current_version("hsc_forced") is not None
    citations = list(CITATIONS_HSC) if hsc else []
    if hsc and "ml_objects" in sql:
        citations.append(CITATION_GALAXIESML)
    strings = h5py.string_dtype("utf-8")
    return {
        "release": getattr(wh, "name", None) or "none (exported from the live warehouse)",
        "data_release": data_release(reruns, images),
        "rerun": ", ".join(reruns) or "unknown",
        "split_fractions": json.dumps(
            {"train": splits.train, "validation": splits.validation, "test": splits.test}
        ),
        "split_salt": splits.salt,
        "split_mode": splits.mode
        + (f" (HEALPix order {splits.healpix_order})" if splits.mode == "healpix" else ""),
        "citation": np.array(citations or ["none recorded for these tables"], dtype=strings),
        "acknowledgement": HSC_ACKNOWLEDGEMENT if hsc else "none recorded for these tables",
        "catalog_simulated": np.array(catalog_simulated(wh, sql) or ["none"], dtype=strings),
    }


def catalog_simulated(wh: Warehouse, sql: str) -> list[str]:
    """The SIMULATED inputs behind the catalog tables ``sql`` reads (``'<table>: <file>'``,
    :func:`warehouse.lineage.simulated_sources`); empty when all of them are real."""
    found: list[str] = []
    for table in tables_named(sql):
        found += [s for s in simulated_sources(wh, table) if s not in found]
    return found


def export_digest(
    wh: Warehouse, base: str, params: list, bands: Sequence[str], options: dict
) -> str:
    """SHA-256 of everything that decides the bytes of one export file: the layout and gwh
    version, the query and its parameters, the options, the versions of the loaded tables, the
    bands and split settings and the SQL of the views. Stored as the file attribute
    ``export_sha256``; ``export --all-splits`` keeps an existing file only when it matches."""
    options = {k: v for k, v in options.items() if k != "overwrite"}
    for key in ("limit", "subset"):  # absent when unset: earlier exports keep their digest
        if options.get(key) is None:
            options.pop(key, None)
    options["bands"] = list(bands)
    tables = {}
    for name in base_tables():
        cv = wh.current_version(name)
        if cv is not None:
            tables[name] = [cv.path.name, cv.nrows]
    models = hashlib.sha256()
    for m in wh.models():
        models.update(f"{m.path}\0{m.text}\0".encode())
    text = json.dumps(
        {
            "layout": LAYOUT_VERSION,
            "gwh_version": __version__,
            "sql": base,
            "params": params,
            "options": options,
            "tables": tables,
            "config": {
                "bands": list(wh.config.bands),
                "splits": dataclasses.asdict(wh.config.splits),
            },
            "models": models.hexdigest(),
            "release": getattr(wh, "name", None),
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(text.encode()).hexdigest()


def stored_digest(path: Path) -> str | None:
    """The ``export_sha256`` of a finished export file (files appear only when complete, by
    rename), or None when ``path`` is not one."""
    try:
        with h5py.File(path, "r") as h5:
            digest = h5.attrs.get("export_sha256")
            n = int(h5.attrs.get("row_count", -1))
            if "object_id" not in h5 or h5["object_id"].shape != (n,):
                return None
    except (OSError, ValueError, TypeError):
        return None
    return digest.decode() if isinstance(digest, bytes) else digest
