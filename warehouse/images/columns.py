"""The per-band and per-object image columns, named once: the HSC ``cutouts`` table and every
image table (``kids_cutouts``, ``sdss_cutouts``, ``hst_cutouts``) use these names and types, so
one export reads them all. :func:`band_column` is the one rule naming a per-band column."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa

from warehouse.errors import CutoutError
from warehouse.images.fit import fit_to_size

GALAXIESML_SIZES = (127, 64)

BAND_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("image", pa.binary()),
    ("variance", pa.binary()),
    ("mask", pa.binary()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("zeropoint", pa.float64()),
    ("pixel_scale", pa.float64()),
    ("filter", pa.string()),
    ("masked_fraction", pa.float64()),
    ("variance_present", pa.bool_()),
    ("mask_present", pa.bool_()),
    ("simulated", pa.bool_()),
    ("source", pa.string()),
    ("center_offset_arcsec", pa.float64()),
)
OBJECT_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("object_id", pa.int64()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("tract", pa.int32()),
    ("patch", pa.string()),
    ("rerun", pa.string()),
    ("simulated", pa.bool_()),
    ("bands", pa.string()),
    ("masked_fraction", pa.float64()),
    *((f"fit_action_{s}", pa.string()) for s in GALAXIESML_SIZES),
)

# Pixel bytes held in memory between reading the files and committing them; above it, files are


def band_column(band: str, what: str) -> str:
    """``band_column("g", "image") == "g_image"``: the one rule naming per-band columns."""
    return f"{band}_{what}"


def combine_fit_actions(actions: Sequence[str]) -> str:
    """One action for an object from its bands' :func:`fit_to_size` actions."""
    cropped = any("cropped" in a for a in actions)
    padded = any("padded" in a for a in actions)
    return {
        (False, False): "none",
        (True, False): "cropped",
        (False, True): "padded",
        (True, True): "cropped+padded",
    }[(cropped, padded)]


def fit_action_of(shapes: Sequence[tuple[int, int]], size: int) -> str:
    """What :func:`fit_to_size` does to planes of these (H, W) shapes at ``size``."""
    return combine_fit_actions(
        [fit_to_size(np.zeros(shape, np.int8), size).action for shape in shapes]
    )


def decode_plane(blob: bytes, height: int, width: int, what: str) -> np.ndarray:
    """A stored plane as its (H, W) array: float32 for image/variance, int32 for mask."""
    dtype = "<i4" if what == "mask" else "<f4"
    arr = np.frombuffer(blob, dtype=dtype)
    if arr.size != height * width:
        raise CutoutError(
            f"stored {what} holds {arr.size} values, expected {height}x{width}; the cutouts "
            "table is damaged: ingest the object again."
        )
    return arr.reshape(height, width)
