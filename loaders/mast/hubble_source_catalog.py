"""The Hubble Source Catalog (HSC v3) from MAST, through astroquery's Mashup client.

("HSC" in astroquery means this catalog, not Hyper Suprime-Cam.) ``Catalogs.query_region(...,
catalog="HSC")`` is a cone search on the MAST Mashup service ``Mast.Hsc.Db.v3``; the answer is
JSON ``{status, msg, paging: {page, pageSize, pagesFiltered, rows, rowsFiltered, rowsTotal},
fields: [{name, type}], data: [{column: value}]}``. This module asks for it page by page, keeps each
page in a cache, cuts the box and the user's constraints locally, and loads the result into the
warehouse table ``hubble_source_catalog`` (key ``MatchID``, position ``MatchRA``/``MatchDec``).

The Mashup cone has no constraints of its own, so a box is fetched as the cone around it and cut
here, and ``--where`` is applied here with DuckDB: changing either needs no new request.

Examples
--------
>>> result = fetch_hubble_source_catalog(  # doctest: +SKIP
...     "SMC", box_deg=3, where="A_F555W_N >= 1 AND A_F814W_N >= 1", cache_dir="cache")
>>> result.rows, result.path  # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loaders.base import check_positions, check_unique
from loaders.http.astroquery import mast_base_url, mast_catalogs, with_retries
from loaders.http.session import RetryPolicy
from loaders.mast.mashup import Box, mashup_to_arrow, read_json, resolve_target
from loaders.readers import SourceTable, one_line
from warehouse.errors import ArchiveError, LoadError, QueryError, first_line
from warehouse.files import atomic_write_bytes, json_hash, write_parquet_atomic
from warehouse.loading import Prepared
from warehouse.output import save
from warehouse.output.saving import refuse_existing
from warehouse.store.contracts import HUBBLE_SOURCE_CATALOG

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "HUBBLE_SOURCE_CATALOG",
    "FetchResult",
    "fetch_hubble_source_catalog",
    "fetch_into_warehouse",
    "match_sources",
]

log = logging.getLogger(__name__)

SERVICES = {2: "Mast.Hsc.Db.v2", 3: "Mast.Hsc.Db.v3"}
MAX_PAGESIZE = 50_000
# -- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FetchResult:
    path: Path  # Parquet of the rows kept
    center: tuple[float, float]
    radius_deg: float
    pages: int
    pages_fetched: int  # pages requested in this run (the others came from the cache)
    rows_fetched: int  # rows in the cone
    rows: int  # rows kept after the box and --where


def fetch_hubble_source_catalog(
    target: str,
    *,
    cache_dir: str | Path,
    box_deg: float | None = None,
    radius_deg: float | None = None,
    where: str | None = None,
    version: int = 3,
    max_records: int = 50_000,
    pagesize: int = MAX_PAGESIZE,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | tuple[float, float] = (15.0, 300.0),
    echo: Callable[[str], None] = lambda _m: None,
) -> FetchResult:
    """Fetch Hubble Source Catalog rows in a box or cone, page by page, into a Parquet file.

    Parameters
    ----------
    target : str
        A name MAST resolves (``"SMC"``) or coordinates (``"13.19 -72.83"``).
    cache_dir : path
        Pages are kept in ``cache_dir/<query key>/page-NNNNN.json``; a rerun fetches only the
        pages not there yet.
    box_deg, radius_deg : float
        A box ``box_deg`` on a side (see :class:`Box`) or a cone; exactly one.
    where : str, optional
        A SQL condition on the catalog's columns (DuckDB syntax), e.g. ``"A_F555W_N >= 1"``.
    max_records : int
        The Mashup's ``nr``: the most rows the cone may return. A cone that reaches it is an
        error (the result would be silently incomplete).
    pagesize : int
        Rows per page (at most 50,000).

    Raises
    ------
    ArchiveError
        Service errors, unreachable archive, a truncated result, or no rows left.
    QueryError
        ``where`` does not parse or names unknown columns.
    """
    if (box_deg is None) == (radius_deg is None):
        raise QueryError("give exactly one of --box-deg and --radius-deg")
    if version not in SERVICES:
        raise QueryError(f"Hubble Source Catalog version must be 2 or 3, got {version}")
    if not 1 <= pagesize <= MAX_PAGESIZE:
        raise QueryError(f"pagesize must be between 1 and {MAX_PAGESIZE}, got {pagesize}")
    if max_records < 1:
        raise QueryError(f"max_records must be positive, got {max_records}")
    if box_deg is not None and not (math.isfinite(box_deg) and 0 < box_deg <= 180):
        raise QueryError(f"--box-deg must be in (0, 180] degrees, got {box_deg}")
    base = mast_base_url(base_url)
    catalogs = mast_catalogs(base, timeout=timeout)
    try:
        ra0, dec0 = resolve_target(target, retry=retry, sleep=sleep, catalogs=catalogs)
        box = Box(ra0, dec0, float(box_deg)) if box_deg is not None else None
        if box is not None:
            radius = box.cone_radius()
        else:
            assert radius_deg is not None
            if not (math.isfinite(radius_deg) and 0 < radius_deg <= 180):
                raise QueryError(f"radius must be in (0, 180] degrees, got {radius_deg}")
            radius = float(radius_deg)

        from astropy.coordinates import SkyCoord

        service = SERVICES[version]
        params = {
            "service": service,
            "ra": round(ra0, 9),
            "dec": round(dec0, 9),
            "radius": round(radius, 9),
            "nr": int(max_records),
            "ni": 1,
            "magtype": 1,
            "pagesize": int(pagesize),
        }
        folder = Path(cache_dir) / json_hash(params, 24)
        folder.mkdir(parents=True, exist_ok=True)
        record = folder / "query.json"
        if not record.exists():
            atomic_write_bytes(record, (json.dumps(params, indent=1) + "\n").encode())
        echo(
            f"MAST {service}: cone of {radius:.4f} deg around ({ra0:.5f}, {dec0:+.5f})"
            + (f" holding a {box_deg} deg box" if box is not None else "")
        )

        center = SkyCoord(ra0, dec0, unit="deg", frame="icrs")

        def page_path(n: int) -> Path:
            return folder / f"page-{n:05d}.json"

        fetched = 0

        def get_page(n: int) -> dict[str, Any]:
            nonlocal fetched
            path = page_path(n)
            if path.is_file():
                return json.loads(path.read_text(encoding="utf-8"))
            what = f"MAST Mashup {service} page {n}"
            responses = with_retries(
                lambda: catalogs.query_region_async(
                    center,
                    radius=radius,
                    catalog="HSC",
                    version=version,
                    pagesize=pagesize,
                    page=n,
                    nr=max_records,
                ),
                what=what,
                retry=retry,
                sleep=sleep,
            )
            payload = read_json(responses[-1], what)
            status = payload.get("status")
            if status != "COMPLETE":
                msg = payload.get("msg") or "no message"
                raise ArchiveError(f"{what} ended with status {status!r}: {msg}")
            if not isinstance(payload.get("paging"), dict):
                raise ArchiveError(f"{what}: the answer has no 'paging' record.")
            atomic_write_bytes(path, json.dumps(payload).encode("utf-8"))
            fetched += 1
            return payload

        first = get_page(1)
        paging = first["paging"]
        n_pages = max(int(paging.get("pagesFiltered") or 1), 1)
        total = int(paging.get("rowsFiltered", paging.get("rowsTotal", 0)) or 0)
        if total >= max_records:
            raise ArchiveError(
                f"MAST returned {total:,} rows, the max-records limit ({max_records:,}): the "
                "region holds more sources and the result would be incomplete. Raise "
                "--max-records or make the box smaller."
            )
        pages = [first]
        for n in range(2, n_pages + 1):
            pages.append(get_page(n))
            echo(f"  page {n}/{n_pages}")
        table = mashup_to_arrow(pages)
        rows_fetched = table.num_rows
        if rows_fetched != total:
            raise ArchiveError(
                f"MAST paging announced {total:,} rows but the {n_pages} page(s) hold "
                f"{rows_fetched:,}; remove {folder} and fetch again."
            )
        table = _unique_matches(table)
        if box is not None and table.num_rows:
            ra = table.column("MatchRA").to_numpy(zero_copy_only=False)
            dec = table.column("MatchDec").to_numpy(zero_copy_only=False)
            table = table.filter(pa.array(box.contains(ra, dec)))
        if where:
            table = apply_where(table, where)
        if table.num_rows == 0:
            region = f"the {box_deg} deg box" if box is not None else f"the {radius} deg cone"
            raise ArchiveError(
                f"no Hubble Source Catalog sources left in {region} around "
                f"({ra0:.5f}, {dec0:+.5f}){' with ' + where if where else ''} "
                f"({rows_fetched:,} in the cone before the cuts). Check the target, the size and "
                "the constraints."
            )
        cut_key = json_hash({"box": box_deg, "radius": radius_deg, "where": where or ""}, 24)
        out = folder / f"result-{cut_key}.parquet"
        write_parquet_atomic(table, out)
        return FetchResult(out, (ra0, dec0), radius, n_pages, fetched, rows_fetched, table.num_rows)
    finally:
        catalogs._session.close()


def _unique_matches(table: pa.Table) -> pa.Table:
    """Pages may repeat a row if the archive's order is not stable: keep one of identical rows."""
    ids = table.column("MatchID").to_numpy(zero_copy_only=False)
    _, first = np.unique(ids, return_index=True)
    if first.size == ids.size:
        return table
    dup = table.take(pa.array(np.setdiff1d(np.arange(ids.size), first)))
    kept = table.take(pa.array(np.sort(first)))
    by_id = {r["MatchID"]: r for r in kept.to_pylist()}
    for row in dup.to_pylist():
        if repr(by_id[row["MatchID"]]) != repr(row):
            raise ArchiveError(
                f"MAST returned MatchID {row['MatchID']} twice with different values; fetch again."
            )
    return kept


def apply_where(table: pa.Table, where: str) -> pa.Table:
    """Rows of ``table`` for which the SQL condition ``where`` holds (DuckDB, in memory)."""
    con = duckdb.connect()
    try:
        con.register("hubble_source_catalog", table)
        try:
            result = con.sql(
                f"SELECT * FROM hubble_source_catalog WHERE ({where})"
            ).to_arrow_table()
        except duckdb.Error as exc:
            first = first_line(exc)
            raise QueryError(
                f"--where {where!r} does not apply to the Hubble Source Catalog columns: "
                f"{first}. Columns: {', '.join(table.column_names[:12])}, ..."
            ) from None
    finally:
        con.close()
    return result.cast(table.schema)


def match_sources(
    match_id: int,
    *,
    version: int = 3,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | tuple[float, float] = (15.0, 300.0),
) -> pa.Table:
    """The individual HST detections (one row per image) behind one ``MatchID``.

    Raises
    ------
    ArchiveError
        Service error, or no detections for that MatchID.
    """
    if version not in SERVICES:
        raise QueryError(f"Hubble Source Catalog version must be 2 or 3, got {version}")
    catalogs = mast_catalogs(mast_base_url(base_url), timeout=timeout)
    try:
        what = f"MAST Mashup HscMatches (MatchID {match_id})"
        responses = with_retries(
            lambda: catalogs.query_hsc_matchid_async(int(match_id), version=version),
            what=what,
            retry=retry,
            sleep=sleep,
        )
        pages = []
        for response in responses:
            payload = read_json(response, what)
            if payload.get("status") != "COMPLETE":
                raise ArchiveError(
                    f"{what} ended with status {payload.get('status')!r}: "
                    f"{payload.get('msg') or 'no message'}"
                )
            pages.append(payload)
        table = mashup_to_arrow(pages, drop=("_selected_",))
        if table.num_rows == 0:
            raise ArchiveError(f"{what}: no detections. Is {match_id} a MatchID of HSC v{version}?")
        return table
    finally:
        catalogs._session.close()


def save_match_sources(
    wh,  # type: ignore[no-untyped-def]
    match_id: int,
    *,
    out: str | Path,
    version: int = 3,
    overwrite: bool = False,
    echo: Callable[[str], None] = lambda _m: None,
) -> Path:
    """:func:`match_sources` with the warehouse's MAST URL, written to ``out`` (.csv, .parquet):
    an existing file only with ``overwrite``, never the warehouse's own parts (both checked
    before the request)."""
    out = Path(out)
    refuse_existing(out, overwrite)
    wh.layout.refuse_owned(out, "--out")
    table = match_sources(match_id, version=version, base_url=wh.config.archives.mast_url)
    save(table, out, warehouse=wh.layout, overwrite=overwrite)
    echo(f"wrote {table.num_rows:,} detections of MatchID {match_id} to {out}")
    return Path(out)


def fetch_into_warehouse(
    wh,  # type: ignore[no-untyped-def]
    target: str,
    *,
    echo: Callable[[str], None] = lambda _m: None,
    **options: Any,
) -> FetchResult:
    """:func:`fetch_hubble_source_catalog` with the warehouse's cache and MAST URL, then load
    the rows into ``hubble_source_catalog`` (each result file once)."""
    options.setdefault("base_url", wh.config.archives.mast_url)
    result = fetch_hubble_source_catalog(
        target, cache_dir=wh.layout.cache("mast_hsc"), echo=echo, **options
    )
    echo(
        f"{result.rows:,} of {result.rows_fetched:,} sources kept "
        f"({result.pages} page(s), {result.pages_fetched} fetched now)"
    )
    wh.load(HubbleSourceCatalogLoader(), [result.path], echo=echo)
    return result


# -- loading ---------------------------------------------------------------------------------------


class HubbleSourceCatalogLoader:
    name = "hubble-source-catalog"
    description = "Hubble Source Catalog rows: a MAST Mashup JSON answer or a fetched Parquet"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        path = Path(path)
        if path.suffix.lower() == ".json":
            try:
                payload = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise LoadError(f"{path} is not readable JSON ({one_line(exc)}).") from None
            if not isinstance(payload, dict) or "fields" not in payload:
                raise LoadError(f"{path} is not a MAST Mashup answer (no 'fields').")
            _refuse_incomplete(path, payload)
            try:
                table = mashup_to_arrow([payload])
            except ArchiveError as exc:
                raise LoadError(f"{path}: {exc}") from None
        elif path.suffix.lower() in (".parquet", ".pq"):
            try:
                table = pq.read_table(path)
            except (pa.ArrowInvalid, OSError) as exc:
                raise LoadError(f"{path} is unreadable as Parquet ({one_line(exc)}).") from None
        else:
            raise LoadError(f"{path}: give a MAST .json answer or a .parquet file.")
        missing = [c for c in ("MatchID", "MatchRA", "MatchDec") if c not in table.column_names]
        if missing:
            raise LoadError(f"{path}: missing column(s) {', '.join(missing)}.")
        if "SourceID" in table.column_names:  # each row one detection: MatchID repeats
            raise LoadError(
                f"{path} is an answer of detections (HSC.Sources: a SourceID per row), not of "
                "Hubble Source Catalog matches: load the catalog answer (gwh fetch "
                "hubble-source-catalog), or read the detections with pyarrow/pandas."
            )
        if not pa.types.is_integer(table.schema.field("MatchID").type):
            raise LoadError(f"{path}: MatchID must be an integer column.")
        src = SourceTable(path, table, 1, "row")
        check_positions(src, "MatchRA", "MatchDec")
        check_unique(src, table, HUBBLE_SOURCE_CATALOG.key)
        return [Prepared(HUBBLE_SOURCE_CATALOG, table)]


def _refuse_incomplete(path: Path, payload: dict) -> None:
    """A saved Mashup answer is loaded only when it is whole: status COMPLETE (one ending in
    ERROR loaded its rows, or none, with exit 0) and, when it says how it was paged, every row
    on this one page (page 1 of 2 was stored as the whole catalog)."""
    status = payload.get("status")
    if status is not None and status != "COMPLETE":
        msg = str(payload.get("msg") or "no message")
        raise LoadError(
            f"{path}: the MAST answer ended with status {status!r} ({msg}); fetch it again "
            "(gwh fetch hubble-source-catalog)."
        )
    paging = payload.get("paging")
    if not isinstance(paging, dict):
        return
    rows = len(payload.get("data") or [])
    total = paging.get("rowsFiltered", paging.get("rowsTotal"))
    pages = paging.get("pagesFiltered")
    if (isinstance(pages, int) and pages > 1) or (isinstance(total, int) and total != rows):
        raise LoadError(
            f"{path} is page {paging.get('page', '?')} of {pages or '?'} of a MAST answer "
            f"({rows:,} of {total if total is not None else '?'} rows): load the whole answer "
            "(gwh fetch hubble-source-catalog writes every page into one Parquet file)."
        )
