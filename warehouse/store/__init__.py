"""HATS catalogs on disk (no DuckDB): the on-disk format of a table version, its partitions and
metadata (:mod:`.versions`), upserts into the next version (:mod:`.merge`, and for loads of
many or large files :mod:`.batch`, :mod:`.spill` and the partition tasks of :mod:`.tasks`),
margin catalogs (:mod:`.margins`), every table's contract (:mod:`.contracts`) and Parquet
layout (:mod:`.layout`), and the HSC-SSP archive column contract (:mod:`.hsc_columns`)."""

from warehouse.store.layout import ParquetLayout
from warehouse.store.margins import DEFAULT_MARGIN_ARCSEC, MarginBuilder, margin_name
from warehouse.store.merge import combine_upserts, merge_version
from warehouse.store.versions import (
    ROW_GROUP_SIZE,
    CatalogVersion,
    Partition,
    TableSpec,
    compute_partitions,
    conform,
    read_properties,
    read_version,
    write_collection,
    write_metadata_files,
    write_partition,
    write_properties,
)

__all__ = [
    "DEFAULT_MARGIN_ARCSEC",
    "ROW_GROUP_SIZE",
    "CatalogVersion",
    "MarginBuilder",
    "ParquetLayout",
    "Partition",
    "TableSpec",
    "combine_upserts",
    "compute_partitions",
    "conform",
    "margin_name",
    "merge_version",
    "read_properties",
    "read_version",
    "write_collection",
    "write_metadata_files",
    "write_partition",
    "write_properties",
]
