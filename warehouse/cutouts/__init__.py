"""The cutout store: HSC image cutouts as one more HATS table, ``cutouts``, keyed by object_id.

Each row is one catalog object; its ``ra``/``dec`` are the matched ``hsc_forced`` object's
position, so cutout rows sit in the same HEALPix pixels as their catalog rows (NESTED, sorted by
``_healpix_29``). The table is written by the store's :func:`~warehouse.store.merge_version`, like
every other table: each ingest is an atomic new version, an object ingested again is replaced
(never duplicated), partitions it does not touch are hard links, and releases keep versions.

Columns (named once in :mod:`warehouse.images.columns`: :data:`BAND_FIELDS`, :data:`OBJECT_FIELDS`):

* per band ``b``: ``{b}_image`` (float32 little-endian C-order bytes, exactly the FITS pixel
  values), ``{b}_variance`` (float32 bytes or null), ``{b}_mask`` (int32 bytes or null),
  ``{b}_height``, ``{b}_width``, ``{b}_zeropoint`` (null when the pixels are not calibrated
  flux), ``{b}_pixel_scale`` (arcsec/px), ``{b}_filter``, ``{b}_masked_fraction`` (pixels with a
  bad-pixel plane set, null without a mask), ``{b}_variance_present``, ``{b}_mask_present``,
  ``{b}_simulated``, ``{b}_source`` (file name or ``<tar>:<member>``), ``{b}_center_offset_arcsec``
  (cutout centre to catalog position);
* per object: ``object_id``, ``ra``, ``dec``, ``tract``, ``patch``, ``rerun`` (when known),
  ``simulated`` (any band simulated), ``bands`` (comma-separated, configured order),
  ``masked_fraction`` (the worst band), ``fit_action_127`` and ``fit_action_64`` (what reaching
  the GalaxiesML sizes does to this object: none, cropped, padded or cropped+padded).

The pixel columns are hidden from SQL: the ``cutouts`` view shows the metadata only.

Ingesting band r of an object that has g adds or replaces the r columns and keeps g (the store's
upsert keeps the columns a new row does not carry); the per-object columns are recomputed from
the stored bands and the new ones.

Examples
--------
>>> report = ingest_cutouts(wh, ["cutout-HSC-G.fits"])  # doctest: +SKIP
>>> cut = read_cutout(wh, 43158034708430172)  # doctest: +SKIP

Modules: :mod:`.inputs` (the files of one ingest and how each is read), :mod:`.match` (which
``hsc_forced`` object a cutout is), :mod:`.rows` (the table rows and their batches),
:mod:`.ingest` (files and arrays in), :mod:`.read` (one object's planes back). DAS batch tars and
the request lists are the archive's side: ``loaders.hsc_ssp.das``.
"""

from warehouse.cutouts.ingest import (
    WORKDIR_PREFIX,
    Expand,
    ingest_arrays,
    ingest_cutouts,
    ingest_workdir,
)
from warehouse.cutouts.inputs import (
    FLUXNORM_CARD,
    CutoutInput,
    IngestReport,
    expand_paths,
    file_kind,
)
from warehouse.cutouts.match import MATCH_RADIUS_ARCSEC
from warehouse.cutouts.read import StoredCutout, read_cutout, read_cutouts
from warehouse.cutouts.rows import LOADER_NAME
from warehouse.images.columns import (
    BAND_FIELDS,
    GALAXIESML_SIZES,
    OBJECT_FIELDS,
    band_column,
    combine_fit_actions,
    decode_plane,
    fit_action_of,
)
from warehouse.store.contracts import CUTOUTS

__all__ = [
    "BAND_FIELDS",
    "CUTOUTS",
    "FLUXNORM_CARD",
    "GALAXIESML_SIZES",
    "LOADER_NAME",
    "MATCH_RADIUS_ARCSEC",
    "OBJECT_FIELDS",
    "WORKDIR_PREFIX",
    "CutoutInput",
    "Expand",
    "IngestReport",
    "StoredCutout",
    "band_column",
    "combine_fit_actions",
    "decode_plane",
    "expand_paths",
    "file_kind",
    "fit_action_of",
    "ingest_arrays",
    "ingest_cutouts",
    "ingest_workdir",
    "read_cutout",
    "read_cutouts",
]
