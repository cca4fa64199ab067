"""Materialised marts: ``ml_objects`` kept as a versioned HATS table beside the base tables.

A view over 10 M forced rows recomputes the quality cuts, the deduplication and the splits on
every query; its materialised copy (``catalogs/ml_objects/v<NNNNNN>``, partitioned like
``hsc_forced``) is read like any base table. The copy records the fingerprint of everything the
view depends on (:mod:`warehouse.marts.key`), and the view reads it only while that fingerprint
is the current one: otherwise it is the plain SQL view, so editing ``warehouse.toml`` or the SQL
never gives stale rows. A load rebuilds it when it commits (:mod:`warehouse.marts.build`), one
HEALPix partition at a time, in this process or on Dask workers.

The package's modules are imported by name (this file imports nothing), because
:mod:`warehouse.db` reads :mod:`warehouse.marts.key` while :mod:`warehouse.marts.build` reads
:mod:`warehouse.db`.
"""
