"""Every loader by the name ``gwh load <name>`` and the warehouse's load records know it.

Entries name their class as ``"module:Class"`` and are imported only when used, so listing them
(``gwh --help``) stays cheap. A name is recorded with every file loaded: it never changes.

>>> names()[:2]
['hsc-forced', 'hsc-specz']
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from warehouse.errors import LoadError
from warehouse.loading import Loader

__all__ = ["ENTRIES", "Entry", "get", "names"]


@dataclass(frozen=True)
class Entry:
    name: str
    target: str  # "module:Class"; the class takes no arguments
    hidden: bool = False  # loaded by another command, not a `gwh load` verb of its own


ENTRIES: tuple[Entry, ...] = (
    Entry("hsc-forced", "loaders.hsc:HscForcedLoader"),
    Entry("hsc-specz", "loaders.hsc:HscSpeczLoader"),
    Entry("hubble-source-catalog", "loaders.mast_hsc:HubbleSourceCatalogLoader"),
    Entry("galaxy-zoo", "loaders.galaxy_zoo:GalaxyZooLoader"),
    Entry("galaxy-zoo-match", "loaders.galaxy_zoo:GalaxyZooMatchLoader", hidden=True),
    Entry("kids-cutouts", "loaders.kids:KidsCutoutsLoader"),
    Entry("morphology", "loaders.morphology:MorphologyLoader"),
)
_BY_NAME = {e.name: e for e in ENTRIES}


def names() -> list[str]:
    """Registered loader names, in registry order."""
    return [e.name for e in ENTRIES]


def get(name: str) -> Loader:
    """A new loader for ``name``.

    Raises
    ------
    LoadError
        No loader has that name (the message lists those that do).
    """
    entry = _BY_NAME.get(name)
    if entry is None:
        raise LoadError(f"unknown loader {name!r}; choose one of {', '.join(sorted(_BY_NAME))}")
    module, _, cls = entry.target.partition(":")
    return getattr(importlib.import_module(module), cls)()
