"""The Starlette application of ``gwh serve``: the routes, the static files, the error pages.

Endpoints are plain functions: Starlette runs them in its thread pool, so a slow query in one
browser never holds up another (each request has its own DuckDB cursor, see
:mod:`warehouse.web.site`).
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from warehouse.errors import ServeError, WarehouseError
from warehouse.web import api, pages
from warehouse.web.site import Site

STATIC = Path(__file__).parent / "static"


def _error(request: Request, exc: Exception) -> Response:
    """A :class:`WarehouseError` as one line: JSON under /api, else the error page."""
    status = 404 if isinstance(exc, ServeError) else 400
    message = str(exc)
    if request.url.path.startswith("/api/"):
        return api.JSON({"error": message}, status_code=status)
    return pages.render(request, "error.html", status=status, message=message)


ROUTES = [
    Route("/", pages.overview_page),
    Route("/sql", pages.sql_view),
    Route("/sql/download.{fmt}", pages.sql_download),
    Route("/object/{object_id}", pages.object_page),
    Route("/gallery", pages.gallery_page),
    Route("/release", pages.releases_page),
    Route("/release/{name}", pages.release_page),
    Route("/cutout/{object_id}/{kind}.png", pages.cutout_image),
    Route("/plot/sky.png", pages.sky_image),
    Route("/api/overview", api.api_overview),
    Route("/api/sql", api.api_sql),
    Route("/api/object/{object_id}", api.api_object),
    Route("/api/gallery", api.api_gallery),
    Route("/api/releases", api.api_releases),
    Route("/api/release/{name}", api.api_release),
    Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
]


def create_app(site: Site) -> Starlette:
    """The web app over ``site`` (see :func:`warehouse.web.site.open_site`)."""
    app = Starlette(routes=ROUTES, exception_handlers={WarehouseError: _error})
    app.state.site = site
    return app
