"""The HSC-SSP PDR2 archive schemas: which columns exist, their types and units.

Column lists and units come from the archive's own metadata (shipped in
``warehouse/data/hsc_ssp_unagi/``, see its PROVENANCE.md). The archive's SQL types are not in that
metadata, so the type of each column follows from its name and unit by the rules below, which
match what the archive returns: identifiers int64, flags boolean, magnitudes float32 (``real``),
coordinates and fluxes float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from importlib import resources

import pyarrow as pa

INT64_COLUMNS = frozenset({"object_id", "parent_id", "skymap_id", "id"})
INT32_COLUMNS = frozenset({"tract", "patch", "nchild"})
STRING_COLUMNS = frozenset({"patch_s", "coord", "specz_name", "specz_original_flag"})


@dataclass(frozen=True)
class ArchiveColumn:
    name: str
    table: str
    description: str
    unit: str
    type: pa.DataType


def column_type(name: str, unit: str = "") -> pa.DataType:
    """Declared Arrow type of an HSC archive column.

    >>> column_type("object_id")
    DataType(int64)
    >>> column_type("g_cmodel_mag", "mag")
    DataType(float)
    """
    if name in INT64_COLUMNS or name.endswith("_id"):
        return pa.int64()
    if name in INT32_COLUMNS or name.endswith("_inputcount_value"):
        return pa.int32()
    if name in STRING_COLUMNS:
        return pa.string()
    if (
        "flag" in name
        or "pixelflags" in name
        or name.startswith(("merge_", "detect_is"))
        or name == "isprimary"
    ):
        return pa.bool_()
    if unit == "mag" or name.endswith(("_mag", "_magsigma")) or "_mag_" in name:
        return pa.float32()
    return pa.float64()


_SCHEMAS = resources.files("warehouse") / "data" / "hsc_ssp_unagi"
"""The archive's own schema tables (real, from unagi; see PROVENANCE.md there)."""


@cache
def archive_columns(table: str) -> dict[str, ArchiveColumn]:
    """Columns of ``pdr2_wide.<table>`` for table in forced, forced2, specz, in archive order."""
    from astropy.io import fits

    ref = _SCHEMAS / f"pdr2_wide_{table}_schema.fits"
    with resources.as_file(ref) as path, fits.open(path) as hdul:
        rows = hdul[1].data
        out = {}
        for raw_name, raw_desc in zip(rows["object"], rows["description"], strict=True):
            name = str(raw_name).strip().strip('"')
            text, _, unit = str(raw_desc).partition("||")
            unit = unit.strip().rstrip("~").strip()
            out[name] = ArchiveColumn(name, table, text.strip(), unit, column_type(name, unit))
    return out


@cache
def forced_columns() -> dict[str, ArchiveColumn]:
    """forced and forced2 together (they share object_id)."""
    merged = dict(archive_columns("forced"))
    for name, col in archive_columns("forced2").items():
        merged.setdefault(name, col)
    return merged


def specz_columns() -> dict[str, ArchiveColumn]:
    return archive_columns("specz")


def declared_type(name: str) -> pa.DataType | None:
    """The type a column of any known HSC table is stored with (None: keep the file's)."""
    col = forced_columns().get(name) or specz_columns().get(name)
    if col is not None:
        return col.type
    if name in INT64_COLUMNS or name.endswith("_id"):
        return pa.int64()
    return None


STATED_UNITS = {"d_pos": "arcsec", "d_mag": "mag", "specz_mag_i": "mag"}
"""Units the archive's metadata leaves out of its unit field but states in the description
("... in arcsec", a difference of magnitudes, an i-band magnitude)."""


def unit_of(name: str) -> str:
    col = forced_columns().get(name) or specz_columns().get(name)
    return (col.unit or STATED_UNITS.get(name, "")) if col else ""


# The archive's unit strings as astropy/VOUnit spell them; "nano" and "arc" are "nano-Jy" and
# "arcsec^2" cut short in the archive's metadata (psfflux_flux is in nJy, psf_shape11 in arcsec^2).
ASTROPY_UNITS = {
    "nano-Jy": "nJy",
    "nano": "nJy",
    "degree": "deg",
    "arcsec^2": "arcsec2",
    "arc": "arcsec2",
    "pixel": "pix",
}


def field_metadata(name: str) -> dict[str, str]:
    """``unit`` (astropy spelling) and ``description`` of an HSC archive column, as stored in
    its Arrow field metadata; empty values left out, {} for a column the archive lacks.

    >>> field_metadata("g_cmodel_flux")["unit"]
    'nJy'
    """
    col = forced_columns().get(name) or specz_columns().get(name)
    if col is None:
        return {}
    text = col.description
    if text.endswith("~"):  # the archive cuts long descriptions with "~"
        text = text.rstrip("~").rstrip() + "…"
    unit = col.unit or STATED_UNITS.get(name, "")
    out = {"unit": ASTROPY_UNITS.get(unit, unit), "description": text}
    return {k: v for k, v in out.items() if v}


def with_archive_metadata(table: pa.Table) -> pa.Table:
    """``table`` with each archive column's unit and description in its field metadata."""
    fields = []
    for f in table.schema:
        meta = field_metadata(f.name)
        if meta:
            encoded = {k.encode(): v.encode() for k, v in meta.items()}
            f = f.with_metadata({**(f.metadata or {}), **encoded})
        fields.append(f)
    return pa.Table.from_arrays(table.columns, schema=pa.schema(fields, table.schema.metadata))
