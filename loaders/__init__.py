"""Loaders: one module per source, each turning input files into validated Arrow tables.

A loader module that fills warehouse tables lists them in ``TABLES`` (:class:`BaseTableDef`) and its
loaders in ``LOADERS``; add the module's name to ``MODULES`` below and the warehouse creates a
view per table and a ``gwh load <name>`` verb per loader.
"""

from __future__ import annotations

import importlib

MODULES = (
    "loaders.hsc",
    "warehouse.cutouts",
    "loaders.mast_hsc",
    "loaders.galaxy_zoo",
    "loaders.morphology",
    "loaders.kids",
    "loaders.sdss",
    "loaders.hst",
)


def registered_modules() -> list:
    return [importlib.import_module(name) for name in MODULES]
