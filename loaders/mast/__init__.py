"""MAST (Mikulski Archive for Space Telescopes).

- ``hubble_source_catalog``: the Hubble Source Catalog (astroquery's ``Catalogs``, catalog
  "HSC" — not Hyper Suprime-Cam) into ``hubble_source_catalog``;
- ``hst``: cutouts of MAST's drizzled HST mosaics (astroquery Zcut) into ``hst_cutouts``.
"""
