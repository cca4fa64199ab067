"""Query-string parameters of the pages and endpoints, checked with one-line messages."""

from __future__ import annotations

from starlette.requests import Request

from warehouse.config import SPLIT_NAMES
from warehouse.errors import BadRequestError, ServeError
from warehouse.web.gallery import PER_PAGE, GalleryQuery
from warehouse.web.images import RGB, check_stretch


def _int(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name, "")
    if raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise BadRequestError(f"{name} must be a whole number, got {raw!r}") from None


_TRUE, _FALSE = ("1", "on", "true", "yes"), ("", "0", "off", "false", "no")


def _flag(request: Request, name: str) -> bool:
    """A checkbox: 1 (on, true, yes), or 0 (off, false, no, absent); anything else is a 400
    (``mask=2`` showed the plain image, as if the parameter were fine)."""
    raw = request.query_params.get(name, "")
    if raw.lower() not in _TRUE + _FALSE:
        raise BadRequestError(f"{name} must be 1 or 0, got {raw!r}")
    return raw.lower() in _TRUE


MAX_PAGE = 10**9
"""Pages beyond this are refused (a result that long is for gwh sql --out, not a browser)."""


def page_of(request: Request) -> int:
    page = _int(request, "page", 1)
    if not 1 <= page <= MAX_PAGE:
        raise BadRequestError(f"page must be 1 to {MAX_PAGE:,}, got {page}")
    return page


def sql_of(request: Request) -> str:
    sql = request.query_params.get("q", "")
    if not sql.strip():
        raise BadRequestError("no SQL given: pass it as ?q=SELECT ...")
    return sql


def object_id_of(request: Request) -> int:
    raw = request.path_params["object_id"]
    try:
        return int(raw)
    except ValueError:
        raise ServeError(f"{raw!r} is not an object_id (a whole number)") from None


def stretch_of(request: Request) -> str:
    return check_stretch(request.query_params.get("stretch", "asinh"))


def mask_of(request: Request) -> bool:
    return _flag(request, "mask")


def kind_of(request: Request) -> str:
    """``rgb`` or a band name, from ``/cutout/<id>/<kind>.png``."""
    kind = request.path_params["kind"]
    return RGB if kind == RGB else kind


def split_of(request: Request) -> str:
    """``split``: one of train, validation, test, or "" (every split). A misspelt one was an
    empty gallery ("0 objects"), as if the split had no images."""
    split = request.query_params.get("split", "")
    if split and split not in SPLIT_NAMES:
        raise BadRequestError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
    return split


def gallery_query(request: Request) -> GalleryQuery:
    p = request.query_params
    return GalleryQuery(
        view=p.get("view", "ml_objects") or "ml_objects",
        split=split_of(request),
        where=p.get("where", ""),
        order=p.get("order", "object_id") or "object_id",
        descending=_flag(request, "desc"),
        page=page_of(request),
        per_page=_int(request, "per_page", PER_PAGE),
    )
