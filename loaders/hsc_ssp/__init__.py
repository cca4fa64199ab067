"""HSC-SSP (Hyper Suprime-Cam Subaru Strategic Program) data releases.

- ``catalog``: exports of ``pdr2_wide.forced``/``forced2``/``specz`` (FITS, CSV, Parquet) into
  ``hsc_forced`` and ``hsc_specz``;
- ``sql_jobs``: the archive's catalog SQL job service (submit, poll, download);
- ``das``: the data access service for image cutouts (batch lists, tars, single GETs);
- ``fetch``: ``gwh fetch hsc-sql`` / ``hsc-cutouts``, the two services into the warehouse.
"""
