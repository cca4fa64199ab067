"""``gwh export``: ML-ready HDF5 files in the GalaxiesML layout, streamed partition by partition.

Layout of one file (every dataset has N rows; row i of each describes the galaxy of image i)::

    image          (N, B, S, S) float32  pixels as stored (flux units kept, never rescaled);
                                         a centred crop or zero padding reaches S x S
    mask           (N, B, S, S) int32    HSC mask bits; padding and missing bands: NO_DATA (bit 8)
    variance       (N, B, S, S) float32  padding: inf (no information); missing bands: NaN
    <column>       (N,)                  every column of the query, under its own name; a
                                         nullable integer (exact in float64) or boolean
                                         column is float64 with NaN for NULL
    <column>_isnull (N,) bool            for integer, boolean and string columns holding NULLs
                                         anywhere in the unsplit query (so every split of one
                                         query has the same datasets and types)
    fit_action     (N,) string           none, cropped, padded or cropped+padded
    zeropoint      (N, B) float64        AB zeropoint per band; NaN when unknown or missing
    image_simulated (N,) bool            the pixels are synthetic
    missing_<b>    (N,) bool             with --allow-missing-bands: band b has no cutout (NaN)

File attributes: ``gwh_version``, ``sql`` (the full SQL text that chose the rows) and
``sql_params``, ``split``, ``image_table``, ``bands``, ``size``, ``pixel_scale``, ``row_count``,
``row_order``, ``data`` (real, simulated or mixed), ``release``, ``data_release``, ``rerun``,
``split_fractions``, ``split_salt``, ``split_mode``, ``citation``, ``acknowledgement``,
``export_sha256``, ``image_units`` (calibrated flux only where the zeropoints are known) and
notes on padding (:mod:`warehouse.export.attrs`). Each query column's dataset has the ``unit`` and
``description`` the warehouse knows (:func:`warehouse.output.column_metadata`). Rows are
ordered by ``_healpix_29`` then ``object_id``. Images are chunked one object per chunk;
compression (lzf or gzip + shuffle) is optional and off by default (it does not pay on noisy
float images).

Images of any survey: ``images`` names the image table (default ``cutouts``, the HSC cutouts;
also ``kids_cutouts`` u,g,r,i 36x36, ``sdss_cutouts``, ``hst_cutouts``), any registered table
with per-band ``{b}_image`` columns (:mod:`loaders.images`). Its bands are the ones it holds
(``--bands`` chooses some, in the order given; for ``cutouts`` the configured bands), its pixel
scale is the ``pixel_scale`` attribute, and a plane (mask, variance) the table does not hold is
left out. Rows are placed by the image table's ``_healpix_29`` (for ``cutouts``, rows without a
cutout by ``hsc_forced``; for the other tables, by the query's own ``_healpix_29`` if it has one).

Labels: a query column named like an integer label column of a loaded table (``spectype_label``
of ``kids_cutouts``: GALAXY=0, QSO=1, STAR=2; ``gz2_label`` of ``galaxy_zoo``) carries that
table's mapping: the file attribute ``label_mapping/<column>`` (JSON) and, on the column's
dataset, the attributes ``label_mapping``, ``label_table`` and ``label_names_column``. A value
outside the mapping stops the export (the column is then not that label: rename it).

The same query on the same warehouse writes the same bytes: no timestamps (``track_times``
off, HDF5 1.8 file format pinned), no wall-clock values, a fixed row order.

Memory is bounded by one partition of the ``cutouts`` table, never by N: catalog rows stream from
DuckDB in order, and when they leave a cutouts partition its band columns are read with pyarrow,
one plane (image, variance, mask) at a time, and written to pre-sized HDF5 datasets. The file is
built in a hidden folder beside the target, named with this host and PID, and renamed at the end;
an exception or Ctrl-C removes it, and after a kill the next export removes it
(:func:`clean_stale_temporaries`). ``export_all_splits`` resumes: it keeps the split files the
same export already finished (same ``export_sha256``).

Examples
--------
>>> export_hdf5(wh, "train.h5", split="train")  # doctest: +SKIP
>>> export_all_splits(wh, "dataset/", options=ExportOptions(size=64))  # doctest: +SKIP
"""

from warehouse.export.columns import available_bands, image_tables, label_columns
from warehouse.export.h5file import ROW_ORDER
from warehouse.export.hdf5 import (
    CATALOG_BATCH_ROWS,
    DUCKDB_MEMORY_LIMIT,
    clean_stale_temporaries,
    export_all_splits,
    export_hdf5,
    export_release_splits,
)
from warehouse.export.hf import HfResult, export_hf, hf_features
from warehouse.export.options import (
    COMPRESSIONS,
    NO_DATA,
    PLANES,
    ExportOptions,
    ExportResult,
    parse_bands,
)
from warehouse.export.plan import EXACT_IN_FLOAT64, base_query
from warehouse.export.subsets import SUBSETS, limited_query, subset_limit
from warehouse.export.writer import WRITE_BLOCK_ROWS

__all__ = [
    "CATALOG_BATCH_ROWS",
    "COMPRESSIONS",
    "DUCKDB_MEMORY_LIMIT",
    "EXACT_IN_FLOAT64",
    "NO_DATA",
    "PLANES",
    "ROW_ORDER",
    "WRITE_BLOCK_ROWS",
    "ExportOptions",
    "ExportResult",
    "HfResult",
    "SUBSETS",
    "available_bands",
    "base_query",
    "clean_stale_temporaries",
    "export_all_splits",
    "export_hdf5",
    "export_hf",
    "export_release_splits",
    "hf_features",
    "image_tables",
    "label_columns",
    "limited_query",
    "parse_bands",
    "subset_limit",
]
