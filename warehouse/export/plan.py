"""The SQL of an export and its plan: the rows chosen (:func:`base_query`), each joined to
its image row's metadata and order key, checked (no duplicated, unplaced or image-less
objects unless allowed, one pixel scale) and counted before a byte is written."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from warehouse import db
from warehouse.cutouts import CUTOUTS, band_column
from warehouse.errors import ExportError
from warehouse.explain import explain_error, unavailable_in
from warehouse.export.columns import _PREFIX, _Column, _columns_of, _Label, _label_of
from warehouse.export.options import PLANES, cannot_export, check_split, unique_columns
from warehouse.healpix import SPATIAL_INDEX_COLUMN
from warehouse.readonly import check_read_only, unordered_limit

EXACT_IN_FLOAT64 = 2**53  # integers up to this magnitude are exact in a float64
ROWS_VIEW = "gwh_export_rows"  # the fetched rows (:attr:`_Plan.table`) while they are counted
ROW_ORDER_SQL = f"{_PREFIX}h29, object_id"


def base_query(view: str | None, sql: str | None, split: str | None, con=None) -> tuple[str, list]:
    """The SQL that chooses the rows, and its parameters (``sql`` checked, parsed on ``con``
    when given: :func:`~warehouse.readonly.check_read_only`)."""
    if sql is not None and view is not None:
        raise ExportError("give --view or --sql, not both")
    if sql is not None:
        text = sql.strip().rstrip(";").strip()
        if not text:
            raise ExportError("--sql is empty; give a SELECT returning object_id.")
        text = check_read_only(text, con)  # the same guard as every read path
        if con is not None:
            unique_columns(con, text)
        unordered = unordered_limit(text, con)
        if unordered is not None:  # an export is the same bytes on every run, or refused
            raise ExportError(f"--sql: {unordered}.")
    else:
        text = f"SELECT * FROM {db.quote_ident(view or 'ml_objects')}"
    if split is None:
        return text, []
    check_split(split)
    if sql is None:
        return f"{text} WHERE split = ?", [split]
    return f"SELECT * FROM (\n{text}\n) AS q WHERE split = ?", [split]


def _keyed_sql(
    base: str,
    cutout_columns: set[str],
    bands: Sequence[str],
    images: str = "cutouts",
    query_h29: bool = False,
) -> str:
    """The rows with their order key and the cutout metadata the export needs.

    The key is the image row's ``_healpix_29`` (what places it in a partition); rows without an
    image take ``hsc_forced``'s (``cutouts``) or the query's own (other image tables).
    """
    extra = []
    for b in bands:
        for what, typ in (
            ("height", "INTEGER"),
            ("width", "INTEGER"),
            ("zeropoint", "DOUBLE"),
            ("pixel_scale", "DOUBLE"),
            ("variance_present", "BOOLEAN"),
            ("mask_present", "BOOLEAN"),
        ):
            name = band_column(b, what)
            value = f"c.{db.quote_ident(name)}" if name in cutout_columns else f"NULL::{typ}"
            extra.append(f"{value} AS {db.quote_ident(_PREFIX + name)}")
    rerun = "c.rerun::VARCHAR" if "rerun" in cutout_columns else "NULL::VARCHAR"
    extra.append(f"{rerun} AS {_PREFIX}rerun")
    if images == CUTOUTS.name:
        return (
            f"WITH q AS (\n{base}\n)\n"
            f"SELECT q.*, coalesce(c.{SPATIAL_INDEX_COLUMN}, f.{SPATIAL_INDEX_COLUMN})"
            f" AS {_PREFIX}h29,"
            f" c.object_id IS NOT NULL AS {_PREFIX}has_cutout,"
            f" coalesce(c.simulated, false) AS {_PREFIX}simulated, "
            + ", ".join(extra)
            + " FROM q LEFT JOIN cutouts AS c ON q.object_id = c.object_id"
            f" LEFT JOIN (SELECT object_id, {SPATIAL_INDEX_COLUMN} FROM hsc_forced) AS f"
            " ON q.object_id = f.object_id"
        )
    h29 = f"c.{SPATIAL_INDEX_COLUMN}"
    if query_h29:
        h29 = f"coalesce({h29}, q.{SPATIAL_INDEX_COLUMN})"
    simulated = "coalesce(c.simulated, false)" if "simulated" in cutout_columns else "false"
    return (
        f"WITH q AS (\n{base}\n)\n"
        f"SELECT q.*, {h29} AS {_PREFIX}h29,"
        f" c.object_id IS NOT NULL AS {_PREFIX}has_cutout,"
        f" {simulated} AS {_PREFIX}simulated, "
        + ", ".join(extra)
        + f" FROM q LEFT JOIN {db.quote_ident(images)} AS c ON q.object_id = c.object_id"
    )


@dataclass
class _Plan:
    base: str
    params: list
    keyed: str
    columns: list[_Column]
    bands: tuple[str, ...]
    rows: int
    data: str
    pixel_scale: float
    missing: dict[str, int]
    images: str = "cutouts"
    planes: tuple[str, ...] = ("image", "mask", "variance")
    labels: dict[str, _Label] = field(default_factory=dict)
    column_info: dict[str, dict[str, str]] = field(default_factory=dict)  # unit, description
    units: dict[str, str] = field(default_factory=dict)  # band -> unit of the image table
    zeropoints: tuple[int, int, float | None, float | None] = (0, 0, None, None)
    reruns: tuple[str, ...] = ()
    # The keyed rows in the export's order, fetched once by the plan (a small export: its
    # checks and counts read them instead of running the join again); None: stream them.
    table: pa.Table | None = field(default=None, repr=False)


def sorted_sql(keyed: str) -> str:
    """The keyed rows in the export's order (``_healpix_29``, then ``object_id``)."""
    return f"SELECT * FROM ({keyed}) AS k ORDER BY {ROW_ORDER_SQL}"


def keyed_width(columns: Sequence, bands: Sequence[str]) -> int:
    """The number of columns of the keyed query (the query's and the export's own)."""
    return len(columns) + 6 * len(bands) + 4


def _planes(images: str, cutout_columns: set[str], bands: Sequence[str], opts) -> tuple[str, ...]:
    """The planes written: image, and mask/variance unless left out by the options or, for
    tables other than ``cutouts``, held by none of the chosen bands (KiDS, SDSS, HST)."""
    out = ["image"]
    for plane in ("variance", "mask"):
        if not getattr(opts, plane):
            continue
        if images == CUTOUTS.name or any(band_column(b, plane) in cutout_columns for b in bands):
            out.append(plane)
    return tuple(p for p in PLANES if p in out)


def _plan(
    con,
    base: str,
    params: list,
    cutout_columns: set[str],
    bands: tuple[str, ...],
    opts,
    labels: dict[str, list[_Label]] | None = None,
    full: tuple[str, list] | None = None,
    fetch_below: int | None = None,
) -> _Plan:
    """Check the query and plan the file. ``full`` is the query without the split filter:
    which columns are nullable, and how, is decided on it, so all splits of one query have the
    same datasets with the same types. ``fetch_below``: when the query's rows times the keyed
    query's columns are at most this, the keyed rows are fetched sorted now (the plan's
    ``table``) and the checks and counts read them: one join of the image table's metadata
    instead of two (the plan's and the stream's)."""
    images = opts.images
    planes = _planes(images, cutout_columns, bands, opts)
    try:
        schema = con.sql(f"SELECT * FROM (\n{base}\n) AS q LIMIT 0", params=params or None)
        schema = schema.to_arrow_table().schema
    except Exception as exc:
        if full is not None and returns_no_split(con, *full):
            raise ExportError(no_split_column()) from None
        raise ExportError(_explain(exc, con, base)) from None
    if "object_id" not in schema.names or not pa.types.is_integer(schema.field("object_id").type):
        key_of = "the cutouts" if images == CUTOUTS.name else images
        raise ExportError(
            f"the query must return an integer object_id column (the key of {key_of}); "
            f"it returns {', '.join(schema.names[:12])}{', ...' if len(schema) > 12 else ''}."
        )
    columns = _columns_of(schema)
    reserved = {"image", "mask", "variance", "fit_action", "zeropoint", "image_simulated"}
    reserved |= {f"missing_{b}" for b in bands}
    clash = [c.name for c in columns if c.name in reserved or c.name.startswith(_PREFIX)]
    if clash:
        raise ExportError(
            f"column(s) {', '.join(clash)} of the query would overwrite the export's own "
            f"dataset(s) of that name; rename them in --sql (e.g. SELECT {clash[0]} AS "
            f"{clash[0]}_value)."
        )
    keyed = _keyed_sql(
        base, cutout_columns, bands, images, query_h29=SPATIAL_INDEX_COLUMN in schema.names
    )
    known = labels or {}
    found_labels = {
        c.name: _label_of(c.name, known[c.name], images)
        for c in columns
        if c.kind == "int" and c.name in known
    }
    table = None
    if fetch_below is not None:
        n_query = _one(con, f"SELECT count(*) FROM (\n{base}\n) AS q", params, base)[0]
        if n_query * keyed_width(columns, bands) <= fetch_below:
            table = _fetch(con, sorted_sql(keyed), params, base)
    if table is None:
        return _checked(con, base, params, keyed, columns, bands, opts, planes, found_labels, full)
    con.register(ROWS_VIEW, table)
    try:
        plan = _checked(
            con, base, params, keyed, columns, bands, opts, planes, found_labels, full, table
        )
    finally:
        con.unregister(ROWS_VIEW)
    plan.table = table
    return plan


def _fetch(con, sql: str, params: list, base: str) -> pa.Table:
    try:
        return con.sql(sql, params=params or None).to_arrow_table()
    except Exception as exc:
        raise ExportError(_explain(exc, con, base)) from None


def _checked(
    con,
    base: str,
    params: list,
    keyed: str,
    columns: list[_Column],
    bands: tuple[str, ...],
    opts,
    planes: tuple[str, ...],
    found_labels: dict[str, _Label],
    full: tuple[str, list] | None,
    table: pa.Table | None = None,
) -> _Plan:
    """The checks and counts of the keyed rows (those of ``table`` when fetched, registered
    as :data:`ROWS_VIEW`), and the plan."""
    images = opts.images
    if table is not None and full in (None, (base, params)):  # fetched: the query's rows
        _mark_nullable(columns, _null_counts(columns, table))
    else:
        _nullability(con, columns, *(full or (base, params)))
    aggregates = [
        "count(*)",
        "count(DISTINCT object_id)",
        "count(*) FILTER (WHERE object_id IS NULL)",
        f"count(*) FILTER (WHERE {_PREFIX}h29 IS NULL)",
        f"count(*) FILTER (WHERE {_PREFIX}has_cutout AND {_PREFIX}simulated)",
        f"count(*) FILTER (WHERE {_PREFIX}has_cutout AND NOT {_PREFIX}simulated)",
    ]
    for b in bands:
        h = db.quote_ident(_PREFIX + band_column(b, "height"))
        aggregates += [
            f"count(*) FILTER (WHERE {h} IS NULL)",
            f"count(*) FILTER (WHERE {h} IS NOT NULL AND NOT "
            f"{db.quote_ident(_PREFIX + band_column(b, 'variance_present'))})",
            f"count(*) FILTER (WHERE {h} IS NOT NULL AND NOT "
            f"{db.quote_ident(_PREFIX + band_column(b, 'mask_present'))})",
            f"min({db.quote_ident(_PREFIX + band_column(b, 'pixel_scale'))})",
            f"max({db.quote_ident(_PREFIX + band_column(b, 'pixel_scale'))})",
        ]
    zps = [db.quote_ident(_PREFIX + band_column(b, "zeropoint")) for b in bands]
    heights = [db.quote_ident(_PREFIX + band_column(b, "height")) for b in bands]
    aggregates += [  # images, images with a known zeropoint, and the range of those zeropoints
        " + ".join(f"count({h})" for h in heights) or "0",
        " + ".join(f"count(*) FILTER (WHERE {z} IS NOT NULL AND NOT isnan({z}))" for z in zps)
        or "0",
        "least(" + ", ".join(f"min({z}) FILTER (WHERE NOT isnan({z}))" for z in zps) + ")"
        if zps
        else "NULL",
        "greatest(" + ", ".join(f"max({z}) FILTER (WHERE NOT isnan({z}))" for z in zps) + ")"
        if zps
        else "NULL",
        f"list_sort(list_distinct(list({_PREFIX}rerun)))",
    ]
    if table is not None:
        stats = _one(con, f"SELECT {', '.join(aggregates)} FROM {ROWS_VIEW}", [], base)
    else:
        sql = f"WITH k AS ({keyed}) SELECT {', '.join(aggregates)} FROM k"
        stats = _one(con, sql, params, base)
    n, n_distinct, n_null_id, n_unplaced, n_sim, n_real = stats[:6]
    per_band = stats[6 : 6 + 5 * len(bands)]
    n_images, n_zp, zp_lo, zp_hi, reruns = stats[6 + 5 * len(bands) :]
    if n == 0:
        raise ExportError(
            "the query returns no rows: nothing to export. Check the split and the query "
            '(gwh sql "select split, count(*) from ml_objects group by 1").'
        )
    if n_null_id:
        raise ExportError(f"{n_null_id} row(s) of the query have a NULL object_id.")
    if n_distinct != n:
        dups = _examples(con, keyed, params, "GROUP BY object_id HAVING count(*) > 1", base)
        raise ExportError(
            f"the query returns {n - n_distinct} duplicated object_id row(s) (e.g. {dups}); an "
            "export holds one row per galaxy: deduplicate it (ml_objects already is)."
        )
    if n_unplaced:
        ex = _examples(con, keyed, params, f"WHERE {_PREFIX}h29 IS NULL", base)
        if images == CUTOUTS.name:
            raise ExportError(
                f"{n_unplaced} object(s) of the query are neither in hsc_forced nor in cutouts "
                f"(e.g. {ex}), so they have no sky position to order them by and no images."
            )
        raise ExportError(
            f"{n_unplaced} object(s) of the query are not in {images} and the query gives them "
            f"no {SPATIAL_INDEX_COLUMN} (e.g. {ex}), so they have no sky position to order them "
            f"by and no images. Select objects of {images} (e.g. WHERE object_id IN (SELECT "
            f"object_id FROM {images}))."
        )
    missing: dict[str, int] = {}
    problems: list[tuple[str, str]] = []
    scales: list[float] = []
    for k, b in enumerate(bands):
        n_missing, n_novar, n_nomask, lo, hi = per_band[5 * k : 5 * k + 5]
        missing[b] = int(n_missing)
        if lo is not None:
            scales += [lo, hi]
        cond = db.quote_ident(_PREFIX + band_column(b, "height"))
        if n_missing and not opts.allow_missing_bands:
            ex = _examples(con, keyed, params, f"WHERE {cond} IS NULL", base)
            problems.append((b, f"{n_missing} object(s) have no cutout (e.g. {ex})"))
        if n_novar and "variance" in planes:
            ex = _examples(
                con,
                keyed,
                params,
                f"WHERE {cond} IS NOT NULL AND NOT "
                f"{db.quote_ident(_PREFIX + band_column(b, 'variance_present'))}",
                base,
            )
            problems.append(
                (
                    b,
                    f"{n_novar} cutout(s) have no VARIANCE plane (e.g. {ex}); pass "
                    "--no-variance, or request the cutouts with variance",
                )
            )
        if n_nomask and "mask" in planes:
            ex = _examples(
                con,
                keyed,
                params,
                f"WHERE {cond} IS NOT NULL AND NOT "
                f"{db.quote_ident(_PREFIX + band_column(b, 'mask_present'))}",
                base,
            )
            problems.append(
                (
                    b,
                    f"{n_nomask} cutout(s) have no MASK plane (e.g. {ex}); pass --no-mask, "
                    "or request the cutouts with mask",
                )
            )
    if problems:
        raise cannot_export(problems, images)
    pixel_scale = float("nan")
    if scales:
        lo, hi = min(scales), max(scales)
        if hi - lo > 1e-6 * hi:
            raise ExportError(
                f"the cutouts have different pixel scales ({lo:.6f} to {hi:.6f} arcsec/px); "
                "an export needs one. Select objects of one survey with --sql."
            )
        pixel_scale = round(lo, 6)
    data = {(True, False): "simulated", (False, True): "real", (True, True): "mixed"}.get(
        (bool(n_sim), bool(n_real)), "none"
    )
    return _Plan(
        base,
        params,
        keyed,
        columns,
        bands,
        int(n),
        data,
        pixel_scale,
        missing,
        images=images,
        planes=planes,
        labels=found_labels,
        zeropoints=(int(n_images), int(n_zp), zp_lo, zp_hi),
        reruns=tuple(r for r in reruns or () if r),
    )


def _nullability(con, columns: list[_Column], full: str, params: list) -> None:
    """Mark the integer, boolean and string columns that hold a NULL anywhere in the unsplit
    query ``full``; a nullable boolean, or integer whose values are all exact in float64, is
    written as float64 with NaN (HF ``datasets`` then reads a NULL as NaN, never a number)."""
    aggregates = _null_aggregates(columns)
    if aggregates:
        sql = f"SELECT {', '.join(aggregates)} FROM (\n{full}\n) AS q"
        _mark_nullable(columns, _one(con, sql, params, full))


def _null_aggregates(columns: list[_Column]) -> list[str]:
    """What :func:`_nullability` counts: NULLs, and the range of integers."""
    aggregates = []
    for c in columns:
        if c.kind not in ("int", "bool", "string"):
            continue
        q = db.quote_ident(c.name)
        aggregates.append(f"count(*) - count({q})")
        if c.kind == "int":
            aggregates += [f"min({q})::HUGEINT", f"max({q})::HUGEINT"]
    return aggregates


def _null_counts(columns: list[_Column], table: pa.Table) -> list:
    """What :func:`_null_aggregates` counts, read from the fetched rows: Arrow keeps each
    column's NULL count, and its range takes one pass."""
    out: list = []
    for c in columns:
        if c.kind not in ("int", "bool", "string"):
            continue
        values = table.column(c.name)
        out.append(values.null_count)
        if c.kind == "int":
            found = pc.min_max(values)
            out += [
                None if v is None else int(v) for v in (found["min"].as_py(), found["max"].as_py())
            ]
    return out


def _mark_nullable(columns: list[_Column], stats: Sequence) -> None:
    """Set the nullability of ``columns`` from the values of :func:`_null_aggregates`."""
    k = 0
    for c in columns:
        if c.kind not in ("int", "bool", "string"):
            continue
        c.nullable = bool(stats[k])
        k += 1
        if c.kind == "int":
            lo, hi = stats[k], stats[k + 1]
            k += 2
            if lo is not None and (lo < -(2**63) or hi > 2**63 - 1):
                raise ExportError(
                    f"column {c.name} ({c.sql_type}) holds {lo if lo < -(2**63) else hi}, "
                    "beyond signed 64-bit integers (int64), which HDF5 readers cannot hold "
                    f"exactly; cast it in --sql (e.g. {c.name}::VARCHAR AS {c.name}_text, or "
                    "::DOUBLE if approximate is fine)."
                )
            exact = lo is None or (-EXACT_IN_FLOAT64 <= lo and hi <= EXACT_IN_FLOAT64)
            c.as_float = c.nullable and exact
        elif c.kind == "bool":
            c.as_float = c.nullable
        if c.as_float:
            c.dtype = np.dtype(np.float64)


def _one(con, sql: str, params: list, base: str) -> tuple:
    try:
        return con.execute(sql, params or None).fetchall()[0]  # fetch all: DuckDB 2.0
    except Exception as exc:
        raise ExportError(_explain(exc, con, base)) from None


def _examples(con, keyed: str, params: list, tail: str, base: str, limit: int = 5) -> str:
    """Up to ``limit`` object_ids of the rows ``tail`` (a WHERE or GROUP BY clause) selects."""
    sql = f"WITH k AS ({keyed}) SELECT object_id FROM k {tail} ORDER BY object_id LIMIT {limit + 1}"
    try:
        ids = [r[0] for r in con.execute(sql, params or None).fetchall()]
    except Exception as exc:  # pragma: no cover - the same query just ran
        raise ExportError(_explain(exc, con, base)) from None
    return ", ".join(str(i) for i in ids[:limit]) + (", ..." if len(ids) > limit else "")


def no_split_column(option: str = "--split") -> str:
    return (
        f"{option} needs a split column, and the query returns none. Select it too, e.g. --sql "
        '"select f.*, m.split from hsc_forced f join ml_objects m using (object_id)", or '
        f"export without {option}."
    )


def returns_no_split(con, sql: str, params: list) -> bool:
    """The query runs and has no ``split`` column (a split filter on it cannot bind), and it
    reads no unavailable view (which has none; what it lacks is said instead)."""
    if unavailable_in(con, sql) is not None:
        return False
    try:
        return (
            "split"
            not in con.sql(f"SELECT * FROM (\n{sql}\n) AS q LIMIT 0", params=params or None).columns
        )
    except Exception:  # noqa: BLE001 - the query's own error is reported instead
        return False


def _explain(exc: Exception, con, sql: str) -> str:
    import duckdb

    if isinstance(exc, duckdb.Error):
        return explain_error(exc, con, sql)
    return str(exc)  # pragma: no cover
