"""``gwh serve``: look at a warehouse in a browser, read-only.

Pages: ``/`` (tables and views with their row counts, what each quality rule removes, the dedup
outcome, splits with their redshift distributions and sky density maps), ``/sql`` (paged
read-only SQL with CSV/Parquet downloads), ``/object/<object_id>`` (the catalog row with units,
each rule and why it passes or fails, dedup, split, morphology and the cutouts at a chosen
stretch, the mask on demand), ``/gallery`` (a paged grid of cutouts for any query) and
``/release/<name>`` (manifest, verification, diff with the previous release); the JSON behind
them under ``/api/``.

Modules: :mod:`.site` (the committed state held open, query time limit, caches), :mod:`.data`
(what the pages show), :mod:`.gallery`, :mod:`.images` (PNGs), :mod:`.charts` (SVG),
:mod:`.params`, :mod:`.pages` and :mod:`.api` (endpoints), :mod:`.app` (routes),
:mod:`.server` (uvicorn).

>>> from warehouse.web import open_site, start
>>> running = start(open_site(Path("gwh-demo/warehouse")))  # doctest: +SKIP
>>> running.url, running.stop()  # doctest: +SKIP
"""

from warehouse.web.app import create_app
from warehouse.web.server import DEFAULT_HOST, DEFAULT_PORT, Running, run, serve, start
from warehouse.web.site import QUERY_TIMEOUT_S, Site, open_site, site_for

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT",
    "QUERY_TIMEOUT_S",
    "Running",
    "Site",
    "create_app",
    "open_site",
    "run",
    "serve",
    "site_for",
    "start",
]
