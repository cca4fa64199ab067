"""Every loader by the name ``gwh load <name>`` and the warehouse's load records know it, and
the commands of the sources (``gwh fetch <name>``, ``gwh cutouts request|ingest``).

Entries name their class as ``"module:Class"`` and are imported only when used, so listing them
(``gwh --help``) stays cheap; ``cli.py`` makes one ``gwh load <name>`` verb per visible entry,
with the entry's help text and options, and :data:`LOAD_OPTIONS` (``--dask``). A name is
recorded with every file loaded: it never changes.

>>> names()[:2]
['hsc-forced', 'hsc-specz']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.commands import DASK_OPTION, REQUIRED, Command, Option
from warehouse.errors import LoadError

if TYPE_CHECKING:
    from warehouse.loading import Loader

__all__ = ["COMMANDS", "ENTRIES", "LOAD_OPTIONS", "Entry", "get", "names"]

EXPORT_FILES = "Export files (.fits, .csv, .parquet)."


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:Class"
    help: str = ""  # the verb's help text
    files_help: str = EXPORT_FILES
    options: tuple[Option, ...] = ()
    hidden: bool = False  # loaded by another command, not a `gwh load` verb of its own


ENTRIES: tuple[Entry, ...] = (
    Entry(
        "hsc-forced",
        "loaders.hsc_ssp.catalog:HscForcedLoader",
        "An export of pdr2_wide.forced, forced2, or the paper's forced JOIN specz query.",
    ),
    Entry("hsc-specz", "loaders.hsc_ssp.catalog:HscSpeczLoader", "An export of pdr2_wide.specz."),
    Entry(
        "kids-cutouts",
        "loaders.kids:KidsCutoutsLoader",
        "KiDS-DR4 cutouts (N, 36, 36, 4; u,g,r,i) into kids_cutouts, SPECTYPE as labels\n"
        "    GALAXY=0, QSO=1, STAR=2.",
        "KiDS-DR4 HDF5 files (image, SPECTYPE, RA, DEC); stacked in order.",
    ),
    Entry(
        "galaxy-zoo",
        "loaders.galaxy_zoo:GalaxyZooLoader",
        "Galaxy Zoo 2 votes (task-1 label gz2_label) or a GZ1 catalogue (gz1_morphology) into\n"
        "    galaxy_zoo (key objid), matched by position to hsc_forced when it is loaded.",
        "Galaxy Zoo 2 tables (.csv, .csv.gz, .parquet) or GZ1 catalogues (.fits).",
        (
            Option(
                "radius_arcsec",
                float,
                1.0,
                "--match-radius",
                "Arcsec to match galaxies to hsc_forced.",
            ),
        ),
    ),
    Entry(
        "morphology",
        "loaders.morphology:MorphologyLoader",
        "An external morphology table (object_id, {b}_<GalaxiesML field> columns, optional\n"
        "    ra/dec) into morphology; each row replaces its object's row "
        "(morphology_source loaded:FILE).",
        "Tables keyed by object_id (.csv, .fits, .parquet).",
    ),
    Entry(
        "hubble-source-catalog",
        "loaders.mast.hubble_source_catalog:HubbleSourceCatalogLoader",
        "MAST Hubble Source Catalog answers (Mashup .json) or fetched .parquet files.",
        "Mashup answers (.json) or files gwh fetch wrote (.parquet).",
    ),
    Entry("galaxy-zoo-match", "loaders.galaxy_zoo:GalaxyZooMatchLoader", hidden=True),
)
_BY_NAME = {e.name: e for e in ENTRIES}

LOAD_OPTIONS: tuple[Option, ...] = (DASK_OPTION,)
"""Options of every ``gwh load <name>`` verb that go to the load (:meth:`Warehouse.load`), not to
the loader: ``--dask ADDRESS`` writes the new version's partitions (and the materialised views)
on a Dask cluster."""


_LABELS = "Table of objects and labels."
_SIDE = "Cutout side, full width (the DAS is asked for sw = sh = half of it, its semi-width)."
COMMANDS: tuple[Command, ...] = (
    Command(
        "cutouts request",
        "loaders.hsc_ssp.cutouts:request_command",
        "Batch list files (<=1000 rows each) for the HSC-SSP cutout service, with the row ->\n"
        "object_id mapping (<list>.json) beside each.",
        (
            Option("out_dir", Path, REQUIRED, "--out", "Folder for the list files and mappings."),
            Option("bands", str, "grizy", "--bands", "Bands, one list per band."),
            Option("size", str, "20arcsec", "--size", _SIDE),
            Option("view", str, "ml_objects", "--view", "Table or view to cut out."),
            Option("rerun", str, "pdr2_wide", "--rerun", "Archive rerun."),
        ),
    ),
    Command(
        "cutouts ingest",
        "loaders.hsc_ssp.cutouts:ingest_command",
        'Match each cutout to its hsc_forced object (WCS centre within 0.5") and store it; files\n'
        "that do not match are listed and the exit code is 1, after the others are ingested.",
        (
            Option(
                "paths",
                list[Path],
                REQUIRED,
                "",
                "Cutout FITS files, batch tars, or folders of them.",
            ),
            Option(
                "lists",
                list[Path] | None,
                None,
                "--list",
                "The list (or its .json) of each tar, in order. Repeatable.",
            ),
        ),
    ),
    Command(
        "fetch hsc-sql",
        "loaders.hsc_ssp.fetch:fetch_hsc_sql",
        "Run SQL as an HSC-SSP catalog job (credentials: $HSC_SSP_CAS_USER and\n"
        "    $HSC_SSP_CAS_PASSWORD, else a prompt); results are cached by SQL and release.",
        (
            Option("release", str, REQUIRED, "--release", "pdr1, pdr2, pdr3 or pdr3-citus."),
            Option("out", Path, REQUIRED, "--out", "Result file, .fits or .csv."),
            Option("sql", str | None, None, "--sql", "The SQL text."),
            Option(
                "sql_file",
                Path | None,
                None,
                "--sql-file",
                "A file of SQL, e.g. sql/sources/galaxiesml_pdr2.sql.",
            ),
            Option("load", str | None, None, "--load", "Then load it: hsc-forced or hsc-specz."),
            Option("poll_timeout", float, 600.0, "--poll-timeout", "Seconds to wait for the job."),
            Option("allow_empty", bool, False, "--allow-empty", "Accept a result with no rows."),
            Option(
                "overwrite",
                bool,
                False,
                "--overwrite",
                "Replace the --out file if it holds something else.",
            ),
        ),
    ),
    Command(
        "fetch hsc-cutouts",
        "loaders.hsc_ssp.fetch:fetch_hsc_cutouts",
        "DAS cutouts of every object of a view: batch lists of <=1000 rows, tars kept under\n"
        "    ROOT/cache/hsc_cutouts (a rerun fetches only what is missing), then ingested into "
        "cutouts.",
        (
            Option("bands", str, "grizy", "--bands", "Bands, one list per band."),
            Option("size", str, "20arcsec", "--size", _SIDE),
            Option("view", str, "ml_objects", "--view", "Table or view to cut out."),
            Option("rerun", str, "pdr2_wide", "--rerun", "Archive rerun."),
            Option("ingest", bool, True, "--ingest/--no-ingest", "Ingest the tars (else fetch)."),
        ),
    ),
    Command(
        "fetch hubble-source-catalog",
        "loaders.mast.hubble_source_catalog:fetch_into_warehouse",
        'Hubble Source Catalog rows (MAST, astroquery Catalogs catalog="HSC") into\n'
        "    hubble_source_catalog; pages are cached, so a rerun fetches only the missing ones.",
        (
            Option(
                "target", str, REQUIRED, "--target", "A name MAST resolves, or 'RA DEC' in degrees."
            ),
            Option("box_deg", float | None, None, "--box-deg", "Box side in degrees."),
            Option("radius_deg", float | None, None, "--radius-deg", "Cone radius in degrees."),
            Option("where", str | None, None, "--where", 'SQL condition, e.g. "A_F555W_N >= 1".'),
            Option("version", int, 3, "--version", "HSC version, 2 or 3."),
            Option("max_records", int, 50_000, "--max-records", "Most rows MAST may return."),
            Option("pagesize", int, 50_000, "--pagesize", "Rows per page."),
        ),
    ),
    Command(
        "fetch hubble-source-matches",
        "loaders.mast.hubble_source_catalog:save_match_sources",
        "The individual HST detections (one per image) behind one Hubble Source Catalog match.",
        (
            Option("match_id", int, REQUIRED, "", "A MatchID of hubble_source_catalog."),
            Option("out", Path, REQUIRED, "--out", "File to write, .csv or .parquet."),
            Option("version", int, 3, "--version", "HSC version, 2 or 3."),
            Option("overwrite", bool, False, "--overwrite", "Replace the --out file if it exists."),
        ),
    ),
    Command(
        "fetch sdss-cutouts",
        "loaders.sdss:fetch_sdss_cutouts",
        "SDSS frame cutouts (astroquery SkyServer + frames) of every object of a labels table,\n"
        "    into sdss_cutouts with the labels; work is kept frame by frame, a rerun resumes.",
        (
            Option("labels", str, "galaxy_zoo", "--labels", _LABELS),
            Option("band", str, "r", "--band", "u, g, r, i or z."),
            Option("pixels", int, 40, "--pixels", "Cutout side in pixels."),
            Option(
                "match_radius_arcsec",
                float,
                2.0,
                "--match-radius",
                "Arcsec to the SDSS photometric object.",
            ),
            Option("data_release", int, 17, "--data-release", "SDSS DR."),
            Option("limit", int | None, None, "--limit", "Only the first N."),
        ),
    ),
    Command(
        "fetch hst-cutouts",
        "loaders.mast.hst:fetch_hst_cutouts",
        "Cutouts of MAST's drizzled HST mosaics (astroquery Zcut) for every object of a labels\n"
        "    table, into hst_cutouts with the labels; a rerun fetches only what is missing.",
        (
            Option("filter", str, "F160W", "--filter", "HST filter, e.g. F160W."),
            Option("labels", str, "galaxy_zoo", "--labels", _LABELS),
            Option("pixels", int, 64, "--pixels", "Cutout side in pixels."),
            Option(
                "survey",
                str | None,
                None,
                "--survey",
                "MAST deep-field survey (default: by filter).",
            ),
            Option("limit", int | None, None, "--limit", "Only the first N."),
        ),
    ),
)


def names() -> list[str]:
    """Registered loader names, in registry order."""
    return [e.name for e in ENTRIES]


def get(name: str, **options: Any) -> Loader:
    """A new loader for ``name``, built with ``options`` (the entry's :class:`Option` names).

    Raises
    ------
    LoadError
        No loader has that name (the message lists those that do).
    """
    entry = _BY_NAME.get(name)
    if entry is None:
        raise LoadError(f"unknown loader {name!r}; choose one of {', '.join(sorted(_BY_NAME))}")
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)(**options)
