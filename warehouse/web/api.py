"""The JSON endpoints behind the pages (``/api/...``, documented in the README).

Each returns what its page is rendered from. Values are strict JSON, as ``gwh sql --format
json`` writes them: 64-bit ids exact integers, NaN and infinities the strings "nan", "inf",
"-inf". An error is ``{"error": "<one line>"}`` with status 400 (bad SQL, refused statement,
time limit, a malformed parameter) or 404 (no such object, view or release).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from warehouse.web import data
from warehouse.web.gallery import GalleryQuery, gallery
from warehouse.web.params import gallery_query, object_id_of, page_of, sql_of
from warehouse.web.site import Site, plain_rows

SQL_PAGE_ROWS = 1000
"""Rows per page of the SQL page and ``/api/sql``: the first 1,000, then pages."""


class JSON(Response):
    """Strict JSON (``allow_nan=False``: NaN never reaches a browser's JSON.parse)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=False, allow_nan=False).encode("utf-8")


def site_of(request: Request) -> Site:
    return request.app.state.site


def sql_page(site: Site, sql: str, page: int, rows: int = SQL_PAGE_ROWS) -> dict[str, Any]:
    """Rows ``(page - 1) * rows ..`` of a read-only statement, with each column's unit."""
    result = site.page(sql, (page - 1) * rows, rows)
    meta = data.units(site)
    return {
        "sql": sql,
        "page": page,
        "rows_per_page": rows,
        "offset": result.offset,
        "more": result.more,
        "seconds": round(result.seconds, 4),
        "columns": [
            {
                "name": f.name,
                "type": str(f.type),
                "unit": meta.get(f.name, {}).get("unit", ""),
            }
            for f in result.table.schema
        ],
        "rows": plain_rows(result.table),
    }


def api_overview(request: Request) -> JSON:
    return JSON(data.overview(site_of(request)))


def api_sql(request: Request) -> JSON:
    return JSON(sql_page(site_of(request), sql_of(request), page_of(request)))


def api_object(request: Request) -> JSON:
    return JSON(data.object_detail(site_of(request), object_id_of(request)))


def api_gallery(request: Request) -> JSON:
    q: GalleryQuery = gallery_query(request)
    return JSON(gallery(site_of(request), q))


def api_releases(request: Request) -> JSON:
    return JSON(data.releases(site_of(request)))


def api_release(request: Request) -> JSON:
    return JSON(data.release_detail(site_of(request), request.path_params["name"]))
