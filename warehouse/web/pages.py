"""The HTML pages: server-rendered Jinja2 templates (``templates/``), autoescaped, so every value
from the warehouse or the user is HTML-escaped; no CDN, the CSS and JS are ``static/``."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from warehouse.errors import ServeError, WarehouseError
from warehouse.images.preview import STRETCHES, scale_bar_arcsec
from warehouse.output import save
from warehouse.web import charts, data
from warehouse.web.api import SQL_PAGE_ROWS, site_of, sql_page
from warehouse.web.gallery import gallery, view_columns
from warehouse.web.images import RGB, cutout_png, cutout_pngs, cutouts_version, sky_png
from warehouse.web.params import (
    gallery_query,
    kind_of,
    mask_of,
    object_id_of,
    page_of,
    split_of,
    sql_of,
    stretch_of,
)

TEMPLATES = Path(__file__).parent / "templates"

EXAMPLE_SQL = "SELECT split, count(*) AS n, median(specz_redshift) AS z FROM ml_objects GROUP BY 1"


def _cell(value: Any) -> str:
    """A result cell as text (NULL shown as NULL; floats at their stored precision)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:.6g}" if abs(value) >= 1e6 or (value and abs(value) < 1e-3) else repr(value)
    return str(value)


def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every {{ value }} is HTML-escaped
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["cell"] = _cell
    env.filters["fixed"] = lambda v, n=4: _cell(v) if not isinstance(v, float) else f"{v:.{n}f}"
    env.filters["short"] = lambda v: f"{v:.4g}" if isinstance(v, float) else _cell(v)
    env.filters["num"] = lambda n: "-" if n is None else f"{n:,}"
    env.globals["urlencode"] = urlencode
    env.globals["split_colour"] = charts.split_colour
    return env


ENV = _env()


def render(request: Request, name: str, status: int = 200, **context: Any) -> HTMLResponse:
    site = site_of(request)
    html = ENV.get_template(name).render(
        path=request.url.path,
        release=site.release,
        root=str(site.wh.root),
        **context,
    )
    return HTMLResponse(html, status_code=status)


def png(content: bytes) -> Response:
    # the URLs carry the stretch and mask, and the data change only with a commit: a short
    # private cache spares re-fetching while a page is scrolled or resized
    return Response(
        content, media_type="image/png", headers={"Cache-Control": "private, max-age=60"}
    )


# -- pages -----------------------------------------------------------------------------------------


def overview_page(request: Request) -> HTMLResponse:
    info = data.overview(site_of(request))
    quality = info["quality"]
    bars = None
    if "rules" in quality:
        bars = charts.bar_chart(
            [(x["rule"], x["fails"]) for x in quality["rules"]], total=quality["candidates"]
        )
    dedup_bars = None
    if "outcomes" in info["dedup"]:
        dedup_bars = charts.bar_chart([(x["outcome"], x["n"]) for x in info["dedup"]["outcomes"]])
    z = info["redshift"]
    z_chart = None
    if z.get("edges"):
        z_chart = charts.histograms(z["edges"], z["counts"], x_label="spec-z redshift")
    return render(
        request,
        "overview.html",
        info=info,
        bars=bars,
        dedup_bars=dedup_bars,
        z_chart=z_chart,
        splits=list(z.get("counts", {})),
    )


def sql_view(request: Request) -> HTMLResponse:
    sql = request.query_params.get("q", "")
    result, error, status = None, None, 200
    if sql.strip():
        try:
            result = sql_page(site_of(request), sql, page_of(request))
        except WarehouseError as exc:
            error, status = str(exc), 400
    return render(
        request,
        "sql.html",
        status=status,
        sql=sql or EXAMPLE_SQL,
        ran=bool(sql.strip()),
        result=result,
        error=error,
        rows_per_page=SQL_PAGE_ROWS,
    )


def sql_download(request: Request) -> Response:
    """The whole result as a file: CSV, or Parquet with each column's unit and description."""
    fmt = request.path_params["fmt"]
    if fmt not in ("csv", "parquet"):
        raise ServeError(f"downloads are .csv or .parquet, not .{fmt}")
    site = site_of(request)
    table = site.query(sql_of(request))
    with tempfile.TemporaryDirectory(prefix="gwh-serve-") as tmp:
        path = Path(tmp) / f"result.{fmt}"
        save(table, path, data.units(site))
        content = path.read_bytes()
    media = "text/csv" if fmt == "csv" else "application/vnd.apache.parquet"
    return Response(
        content,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="gwh-result.{fmt}"'},
    )


def object_page(request: Request) -> HTMLResponse:
    site = site_of(request)
    object_id = object_id_of(request)
    info = data.object_detail(site, object_id)
    stretch, mask = stretch_of(request), mask_of(request)
    scale = None
    cut = info["cutouts"]
    if cut and cut["pixel_scale"] and cut["bands"]:
        width = cut["per_band"][cut["bands"][0]]["width"]
        arcsec = scale_bar_arcsec(width * cut["pixel_scale"])
        if arcsec is not None:  # None: the image is too small for one
            percent = round(100 * arcsec / cut["pixel_scale"] / width, 2)
            scale = {"arcsec": arcsec, "percent": percent}
    return render(
        request,
        "object.html",
        info=info,
        stretch=stretch,
        stretches=STRETCHES,
        mask=mask,
        scale=scale,
        version=abs(hash(cutouts_version(site))) if cut else 0,
    )


def gallery_page(request: Request) -> HTMLResponse:
    site = site_of(request)
    stretch = stretch_of(request)
    views = {v: c for v, c in view_columns(site).items() if "object_id" in c}
    q, result, error, status = None, None, None, 200
    try:
        q = gallery_query(request)
        result = gallery(site, q)
        # one pass over the partition files for the thumbnails this page lacks
        cutout_pngs(site, [x["object_id"] for x in result["objects"]], RGB, stretch, False)
    except WarehouseError as exc:
        error, status = str(exc), 400
    return render(
        request,
        "gallery.html",
        status=status,
        q=q,
        params=dict(request.query_params),
        result=result,
        error=error,
        views=views,
        stretch=stretch,
        stretches=STRETCHES,
        splits=data.splits(site),
        version=abs(hash(cutouts_version(site))),
    )


def releases_page(request: Request) -> HTMLResponse:
    return render(request, "releases.html", releases=data.releases(site_of(request)))


def release_page(request: Request) -> HTMLResponse:
    info = data.release_detail(site_of(request), request.path_params["name"])
    return render(request, "release.html", info=info)


# -- images ----------------------------------------------------------------------------------------


def cutout_image(request: Request) -> Response:
    site = site_of(request)
    return png(
        cutout_png(
            site, object_id_of(request), kind_of(request), stretch_of(request), mask_of(request)
        )
    )


def sky_image(request: Request) -> Response:
    return png(sky_png(site_of(request), split_of(request) or None))
