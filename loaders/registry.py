"""Every loader by the name ``gwh load <name>`` and the warehouse's load records know it.

Entries name their class as ``"module:Class"`` and are imported only when used, so listing them
(``gwh --help``) stays cheap; ``cli.py`` makes one ``gwh load <name>`` verb per visible entry,
with the entry's help text and options. A name is recorded with every file loaded: it never
changes.

>>> names()[:2]
['hsc-forced', 'hsc-specz']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from warehouse.errors import LoadError

if TYPE_CHECKING:
    from warehouse.loading import Loader

__all__ = ["ENTRIES", "Entry", "Option", "get", "names"]

EXPORT_FILES = "Export files (.fits, .csv, .parquet)."


@dataclass(frozen=True)
class Option:
    """A keyword argument of the loader class, offered as ``flag`` on its ``gwh load`` verb."""

    name: str
    type: type
    default: Any
    flag: str
    help: str


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
        "loaders.hsc:HscForcedLoader",
        "An export of pdr2_wide.forced, forced2, or the paper's forced JOIN specz query.",
    ),
    Entry("hsc-specz", "loaders.hsc:HscSpeczLoader", "An export of pdr2_wide.specz."),
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
        "Galaxy Zoo 2 tables (.csv, .csv.gz) or GZ1 catalogues (.fits).",
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
        "loaders.mast_hsc:HubbleSourceCatalogLoader",
        "MAST Hubble Source Catalog answers (Mashup .json) or fetched .parquet files.",
    ),
    Entry("galaxy-zoo-match", "loaders.galaxy_zoo:GalaxyZooMatchLoader", hidden=True),
)
_BY_NAME = {e.name: e for e in ENTRIES}


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
