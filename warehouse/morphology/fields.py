"""The fields of GalaxiesML Table 1 per band and the columns of the ``morphology`` table.

The one place the morphology columns are named: :data:`MORPHOLOGY_FIELDS` with their units
(:data:`FIELD_UNITS`), descriptions (:data:`FIELD_DESCRIPTIONS`) and Arrow types
(:func:`field_type`), and :func:`morphology_schema`, the table's columns for a set of bands
(see :mod:`warehouse.morphology.table` for what each column holds). The table's contract (key,
placeholder columns, hidden suffixes) is in :mod:`warehouse.store.contracts`.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa

__all__ = [
    "CENTRAL_RADII",
    "FIELD_DESCRIPTIONS",
    "FIELD_UNITS",
    "INT_FIELDS",
    "LOADED_PREFIX",
    "MORPHOLOGY_FIELDS",
    "SOURCE_MEASURED",
    "band_fields",
    "field_type",
    "morphology_schema",
]

MORPHOLOGY_FIELDS: tuple[str, ...] = (
    "ellipticity",
    "half_light_radius",
    "isophotal_area",
    "major_axis",
    "minor_axis",
    "peak_surface_brightness",
    "petro_rad",
    "pos_angle",
    "sersic_index",
    "total_galaxies",
    "central_image_pop_15px_rad",
    "central_image_pop_10px_rad",
    "central_image_pop_5px_rad",
)

FIELD_UNITS: dict[str, str] = {
    "ellipticity": "",
    "half_light_radius": "pix",
    "isophotal_area": "pix^2",
    "major_axis": "pix",
    "minor_axis": "pix",
    "peak_surface_brightness": "mag/arcsec^2",
    "petro_rad": "pix",
    "pos_angle": "deg",
    "sersic_index": "",
    "total_galaxies": "count",
    "central_image_pop_15px_rad": "count",
    "central_image_pop_10px_rad": "count",
    "central_image_pop_5px_rad": "count",
}

#: Radii (pixels) of the ``central_image_pop_*`` counts, in field order.
CENTRAL_RADII: tuple[int, ...] = (15, 10, 5)

INT_FIELDS = frozenset(
    {
        "isophotal_area",
        "total_galaxies",
        "central_image_pop_15px_rad",
        "central_image_pop_10px_rad",
        "central_image_pop_5px_rad",
    }
)
"""Table 1 fields that are counts or areas (int32); the others are float64."""

FIELD_DESCRIPTIONS: dict[str, str] = {
    "ellipticity": "1 - B/A of the isophotal second-moment ellipse (ELLIPTICITY)",
    "half_light_radius": "circular radius holding half of FLUX_AUTO (FLUX_RADIUS 0.5)",
    "isophotal_area": "pixels above the detection threshold (ISOAREA_IMAGE)",
    "major_axis": "second-moment semi-major axis A (A_IMAGE)",
    "minor_axis": "second-moment semi-minor axis B (B_IMAGE)",
    "peak_surface_brightness": "zp - 2.5 log10(peak / pixel_scale^2) (MU_MAX)",
    "petro_rad": "Petrosian semi-major axis, eta = 0.2 on elliptical annuli",
    "pos_angle": "angle of A, counter-clockwise from +x (columns), (-90, 90] (THETA_IMAGE)",
    "sersic_index": "Sersic n of a fit with centre and shape fixed (PSF not deconvolved)",
    "total_galaxies": "detections in the cutout",
    "central_image_pop_15px_rad": "detections within 15 px of the cutout centre",
    "central_image_pop_10px_rad": "detections within 10 px of the cutout centre",
    "central_image_pop_5px_rad": "detections within 5 px of the cutout centre",
}

SOURCE_MEASURED = "measured"
LOADED_PREFIX = "loaded:"
"""``morphology_source`` of a measured row, and the prefix of a loaded one (``loaded:<file>``)."""


def field_type(name: str) -> pa.DataType:
    """Arrow type of a Table 1 field: counts and areas int32, the rest float64."""
    return pa.int32() if name in INT_FIELDS else pa.float64()


def band_fields(band: str) -> list[pa.Field]:
    """The visible columns of one band, with unit and description metadata."""
    out = [
        pa.field(
            f"{band}_{name}",
            field_type(name),
            metadata={"unit": FIELD_UNITS[name], "description": FIELD_DESCRIPTIONS[name]},
        )
        for name in MORPHOLOGY_FIELDS
    ]
    out.append(
        pa.field(
            f"{band}_morph_reason",
            pa.string(),
            metadata={"description": "NULL when every field was measured, else why not"},
        )
    )
    return out


def morphology_schema(bands: Sequence[str], keys: bool = True) -> pa.Schema:
    """Columns of the ``morphology`` table for ``bands`` (``keys``: the hidden band keys too)."""
    fields = [
        pa.field("object_id", pa.int64()),
        pa.field("ra", pa.float64(), metadata={"unit": "deg"}),
        pa.field("dec", pa.float64(), metadata={"unit": "deg"}),
    ]
    for b in bands:
        fields += band_fields(b)
    fields += [
        pa.field(
            "morphology_source",
            pa.string(),
            metadata={"description": "measured, or loaded:<file name>"},
        ),
        pa.field(
            "morph_config_hash",
            pa.string(),
            metadata={"description": "detection configuration, algorithm and sep version"},
        ),
    ]
    if keys:
        fields += [
            pa.field(
                f"{b}_morph_key",
                pa.string(),
                metadata={"description": "hash of configuration and the band's cutout"},
            )
            for b in bands
        ]
    return pa.schema(fields)
