"""HATS catalogs on disk (no DuckDB): versions of each table, their partitions and metadata
(:mod:`.versions`), every table's contract (:mod:`.contracts`), and the HSC-SSP archive column
contract (:mod:`.hsc_columns`)."""

from warehouse.store.versions import (
    ROW_GROUP_SIZE,
    CatalogVersion,
    Partition,
    TableSpec,
    compute_partitions,
    conform,
    merge_version,
    read_properties,
    read_version,
    write_metadata_files,
    write_partition,
    write_properties,
)

__all__ = [
    "ROW_GROUP_SIZE",
    "CatalogVersion",
    "Partition",
    "TableSpec",
    "compute_partitions",
    "conform",
    "merge_version",
    "read_properties",
    "read_version",
    "write_metadata_files",
    "write_partition",
    "write_properties",
]
