"""Every table loaders fill, declared once: its storage contract (name, key, position columns,
description: :class:`TableSpec`) and how the warehouse shows it (:class:`BaseTableDef`).

Writers (loaders, cutout ingest, morphology measure) and readers (views, export, releases, plots)
all read the contract from here, so a table's key or hidden columns cannot drift between them.
The order of :data:`BASE_TABLES` is the order views list the tables.

>>> base_tables()["hsc_forced"].spec.key
('object_id',)
"""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.store.layout import ParquetLayout
from warehouse.store.versions import TableSpec

__all__ = [
    "BASE_TABLES",
    "CATALOG_LAYOUT",
    "CUTOUTS",
    "GALAXY_ZOO",
    "HSC_FORCED",
    "HSC_SPECZ",
    "HST_CUTOUTS",
    "HUBBLE_SOURCE_CATALOG",
    "KIDS_CUTOUTS",
    "MORPHOLOGY",
    "MORPHOLOGY_EMPTY_COLUMNS",
    "MORPHOLOGY_HIDDEN_SUFFIXES",
    "MORPHOLOGY_LOAD_HINT",
    "SDSS_CUTOUTS",
    "BaseTableDef",
    "base_tables",
]


@dataclass(frozen=True)
class BaseTableDef:
    """A table loaders fill: its storage spec, what to tell a user who has not loaded it, and
    columns the SQL view leaves out (e.g. pixel blobs).

    ``empty_columns`` makes the table optional: ``(name, DuckDB type)`` pairs of an empty, typed
    placeholder view used while it was never loaded, so views that LEFT JOIN it keep working
    (instead of the error view a required table gets).
    """

    spec: TableSpec
    load_hint: str
    hidden_suffixes: tuple[str, ...] = ()
    empty_columns: tuple[tuple[str, str], ...] = ()
    image_table: bool = False  # pixels per row: partitions of [cutouts] max_rows_per_partition


# ------------------------------------------------------------------------------ catalog layout

CATALOG_LAYOUT = ParquetLayout(page_bytes=32 * 1024, page_index=True)
"""Catalog tables (rows of numbers, read by cone searches and scans): 100k-row groups of 32 KiB
pages with a page index. A cone search over a partition's ``_healpix_29``-sorted rows then
decodes the few pages of each column that hold its rows, not a whole 100k-row group of every
column (measured at 10M rows with ``benchmarks/bench_core.py``: README "From Python")."""

# ------------------------------------------------------------------------- HSC-SSP catalogs

HSC_FORCED = TableSpec(
    "hsc_forced",
    description="HSC-SSP forced photometry (pdr2_wide.forced + forced2)",
    layout=CATALOG_LAYOUT,
)
HSC_SPECZ = TableSpec(
    "hsc_specz",
    key=("object_id", "specz_name"),
    ra="specz_ra",
    dec="specz_dec",
    description="HSC-SSP spectroscopic redshifts matched to objects (pdr2_wide.specz)",
    layout=CATALOG_LAYOUT,
)

# ---------------------------------------------------------------------------- HSC cutouts

IMAGE_LAYOUT = ParquetLayout(
    row_group_rows=64,
    column_compression=(("*_image", "none"), ("*_variance", "none")),
)
"""Image tables: row groups of 64 objects (an export reads only those it needs, a block at a
time) and float pixel planes stored uncompressed (noise does not compress: snappy only cost a
copy on every read); masks (sparse bits) stay snappy."""

CUTOUTS = TableSpec(
    "cutouts",
    description="HSC image cutouts per object and band (pixels hidden from SQL; metadata shown)",
    layout=IMAGE_LAYOUT,
)

# ------------------------------------------------------------------ other catalogs and labels

HUBBLE_SOURCE_CATALOG = TableSpec(
    "hubble_source_catalog",
    key=("MatchID",),
    ra="MatchRA",
    dec="MatchDec",
    description="Hubble Source Catalog v3 (MAST): one row per match of HST detections",
    layout=CATALOG_LAYOUT,
)
GALAXY_ZOO = TableSpec(
    "galaxy_zoo",
    key=("objid",),
    description="Galaxy Zoo morphology: GZ2 votes with a task-1 label (gz2_label), GZ1 classes",
    layout=CATALOG_LAYOUT,
)

# ------------------------------------------------------------------------------- morphology

MORPHOLOGY = TableSpec(
    "morphology",
    description="Per-band galaxy morphology (GalaxiesML Table 1): measured with sep or loaded",
    layout=CATALOG_LAYOUT,
)
MORPHOLOGY_LOAD_HINT = (
    "Run `gwh morphology measure` (on the ingested cutouts) or `gwh load morphology FILE`."
)
MORPHOLOGY_EMPTY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("object_id", "BIGINT"),
    ("ra", "DOUBLE"),
    ("dec", "DOUBLE"),
    ("_healpix_29", "BIGINT"),
    ("morphology_source", "VARCHAR"),
    ("morph_config_hash", "VARCHAR"),
)
"""The placeholder ``morphology`` view while nothing was measured or loaded: ``ml_objects``
LEFT JOINs it, so its morphology columns are then ``morphology_source`` and
``morph_config_hash``, both NULL."""
MORPHOLOGY_HIDDEN_SUFFIXES = ("_morph_key",)

# ------------------------------------------------------------------ image tables of other surveys

KIDS_CUTOUTS = TableSpec(
    "kids_cutouts",
    description='KiDS-DR4 u,g,r,i cutouts (36x36, 0.2"/px) with SPECTYPE labels',
    layout=IMAGE_LAYOUT,
)
SDSS_CUTOUTS = TableSpec(
    "sdss_cutouts",
    description="SDSS frame cutouts (nanomaggies) of labelled objects, one column per band",
    layout=IMAGE_LAYOUT,
)
HST_CUTOUTS = TableSpec(
    "hst_cutouts",
    description="HST drizzled-mosaic cutouts (MAST deep fields) of labelled objects, per filter",
    layout=IMAGE_LAYOUT,
)

BASE_TABLES: tuple[BaseTableDef, ...] = (
    BaseTableDef(HSC_FORCED, "Run `gwh load hsc-forced FILE`."),
    BaseTableDef(HSC_SPECZ, "Run `gwh load hsc-specz FILE`."),
    BaseTableDef(
        CUTOUTS,
        "Run `gwh cutouts ingest FILE`.",
        hidden_suffixes=("_image", "_variance", "_mask"),
        image_table=True,
    ),
    BaseTableDef(
        HUBBLE_SOURCE_CATALOG, "Run `gwh fetch hubble-source-catalog --target NAME --box-deg 1`."
    ),
    BaseTableDef(GALAXY_ZOO, "Run `gwh load galaxy-zoo FILE.csv` (or a GZ1 .fits)."),
    BaseTableDef(
        MORPHOLOGY,
        MORPHOLOGY_LOAD_HINT,
        hidden_suffixes=MORPHOLOGY_HIDDEN_SUFFIXES,
        empty_columns=MORPHOLOGY_EMPTY_COLUMNS,
    ),
    BaseTableDef(
        KIDS_CUTOUTS,
        "Run `gwh load kids-cutouts FILE.h5 ...`.",
        hidden_suffixes=("_image",),
        image_table=True,
    ),
    BaseTableDef(
        SDSS_CUTOUTS,
        "Run `gwh fetch sdss-cutouts --labels galaxy_zoo --band r --pixels 40`.",
        hidden_suffixes=("_image",),
        image_table=True,
    ),
    BaseTableDef(
        HST_CUTOUTS,
        "Run `gwh fetch hst-cutouts --filter F160W --labels galaxy_zoo`.",
        hidden_suffixes=("_image",),
        image_table=True,
    ),
)


def base_tables() -> dict[str, BaseTableDef]:
    """Every table a loader can fill, by name, in the order views list them."""
    return {d.spec.name: d for d in BASE_TABLES}
