"""The gallery: a paged grid of the objects a query selects that have cutouts.

``view`` is any table or view with an ``object_id`` column (``ml_objects``, ``quality_flags``,
``deduplicated``, ``cutouts``...), ``where`` a SQL condition over its columns (e.g.
``not no_pixelflags_bad``), ``split`` a split of ml_objects, ``order`` one of its columns. The
statement built from them passes the same read-only guard as ``gwh sql`` and runs on the same
sandboxed connection, so ``where`` can read nothing the SQL page could not.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from warehouse.db import quote_ident
from warehouse.errors import BadRequestError, ServeError
from warehouse.web.site import Site

PER_PAGE = 100
MAX_PER_PAGE = 500
MAX_PAGE = 10**15  # (page - 1) * per_page stays a BIGINT offset for DuckDB
_ML_WITH_CUTOUTS = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"


@dataclass(frozen=True)
class GalleryQuery:
    """What a gallery page shows; validated against the view's columns by :func:`gallery`."""

    view: str = "ml_objects"
    split: str = ""
    where: str = ""
    order: str = "object_id"
    descending: bool = False
    page: int = 1
    per_page: int = PER_PAGE

    def __post_init__(self) -> None:
        if not 1 <= self.page <= MAX_PAGE:
            raise BadRequestError(f"page must be between 1 and {MAX_PAGE}, got {self.page}")
        if not 1 <= self.per_page <= MAX_PER_PAGE:
            raise BadRequestError(
                f"per_page must be between 1 and {MAX_PER_PAGE}, got {self.per_page}"
            )


def view_columns(site: Site) -> dict[str, list[str]]:
    """``{table or view: its columns}`` of the available ones, once per committed state."""

    def find() -> dict[str, list[str]]:
        with site.reading() as r:
            rows = r.rows(
                "SELECT table_name, list(column_name ORDER BY ordinal_position) AS columns "
                "FROM information_schema.columns GROUP BY 1 ORDER BY 1"
            )
            models = r.rows("SELECT name FROM gwh_models WHERE available")
        names = {m["name"] for m in models}
        return {x["table_name"]: x["columns"] for x in rows if x["table_name"] in names}

    return site.cached("view_columns", find)


def gallery(site: Site, q: GalleryQuery) -> dict[str, Any]:
    """One page of object ids (with the ``order`` value of each) and the total count."""
    columns = view_columns(site)
    if q.view not in columns:
        with site.reading() as r:
            why = r.rows("SELECT reason FROM gwh_models WHERE name = ?", [q.view])
        if why:
            raise ServeError(f"{q.view} is unavailable: {why[0]['reason']}")
        with_ids = sorted(v for v, cols in columns.items() if "object_id" in cols)
        raise ServeError(f"no table or view {q.view!r} to show; one of: {', '.join(with_ids)}")
    cols = columns[q.view]
    if "object_id" not in cols:
        raise ServeError(f"{q.view} has no object_id column: the gallery shows objects")
    if q.order not in cols:
        raise BadRequestError(f"{q.view} has no column {q.order!r} to order by")
    params: list[Any] = []
    with site.reading() as r:
        # the view's rows that have cutouts, computed once per committed state (at 1 M objects
        # recomputing ml_objects for every page would take seconds)
        source = r.materialized(
            f"gwh_serve_gallery_{q.view}",
            f"SELECT * FROM {quote_ident(q.view)} "
            "WHERE object_id IN (SELECT object_id FROM cutouts)",
        )
        base = f"SELECT * FROM {quote_ident(source)} WHERE true"
        if q.split:
            if "split" in cols:
                base += " AND split = ?"
            else:
                ml = quote_ident(r.materialized("gwh_serve_gallery_ml_objects", _ML_WITH_CUTOUTS))
                base += f" AND object_id IN (SELECT object_id FROM {ml} WHERE split = ?)"
            params.append(q.split)
        if q.where.strip():
            base += f" AND ({q.where})"
        pick, direction = ("max", "DESC") if q.descending else ("min", "ASC")
        total = r.query(f"SELECT count(DISTINCT object_id) AS n FROM ({base})", params)
        rows = r.query(
            f"SELECT object_id, {pick}({quote_ident(q.order)}) AS sort_value FROM ({base}) "
            f"GROUP BY object_id ORDER BY sort_value {direction} NULLS LAST, object_id "
            "LIMIT ? OFFSET ?",
            [*params, q.per_page, (q.page - 1) * q.per_page],
        ).to_pylist()
        ids = [x["object_id"] for x in rows]
        simulated = {
            x["object_id"]: bool(x["simulated"])
            for x in r.rows(
                "SELECT object_id, simulated FROM cutouts "
                "WHERE object_id IN (SELECT unnest(?::BIGINT[]))",
                [ids],
            )
        }
    n = int(total.column(0)[0].as_py())
    return {
        "query": asdict(q),
        "total": n,
        "pages": max(1, -(-n // q.per_page)),
        "objects": [
            {
                "object_id": x["object_id"],
                "sort_value": _plain(x["sort_value"]),
                "simulated": simulated.get(x["object_id"], False),
            }
            for x in rows
        ],
    }


def _plain(value: Any) -> Any:
    """A sort value for a label and for JSON (floats rounded for the eye, NaN as text)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (int, str, bool)) or value is None:
        return value
    return str(value)
