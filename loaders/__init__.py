"""Loaders: one module per source, each turning input files into validated Arrow tables.

A table's contract (name, key, columns shown) is declared once in ``warehouse.store.contracts``;
a loader module lists its loaders in ``LOADERS`` and its name in ``MODULES`` below.
"""

from __future__ import annotations

import importlib

MODULES = (
    "loaders.hsc",
    "loaders.mast_hsc",
    "loaders.galaxy_zoo",
    "loaders.morphology",
    "loaders.kids",
    "loaders.sdss",
    "loaders.hst",
)


def registered_modules() -> list:
    return [importlib.import_module(name) for name in MODULES]
