"""Loaders: one module per source, each turning input files into validated Arrow tables.

A table's contract (name, key, columns shown) is declared once in ``warehouse.store.contracts``;
every loader is listed by name in :mod:`loaders.registry`, and ``gwh load <name>`` as well as
:meth:`Warehouse.load <warehouse.core.Warehouse.load>` take it from there.

>>> from loaders import registry
>>> registry.get("hsc-forced").name
'hsc-forced'
"""
