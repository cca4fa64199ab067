"""What the pages show, as plain JSON-ready dicts: the overview, one object, releases.

Every page is rendered from these, and ``/api/...`` returns them as they are, so the JSON
endpoints and the pages never disagree. All SQL goes through :class:`~warehouse.web.site.Site`
(the read-only guard of ``gwh sql``, the sandboxed connection, the time limit).
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import Any

from warehouse.db import quote_ident
from warehouse.errors import QueryError, ReleaseError, ServeError, WarehouseError, first_line
from warehouse.lineage import simulated_sources
from warehouse.output import column_metadata
from warehouse.release import describe, diff, list_releases, open_release, verify
from warehouse.store.contracts import CUTOUTS
from warehouse.web.site import Reading, Site

REDSHIFT_BIN = 0.1
"""Width of the redshift histogram bins of the overview (the rules keep 0.01 < z < 4)."""

SPLIT_ORDER = ("train", "validation", "test")


def _unavailable(exc: WarehouseError) -> dict[str, str]:
    return {"unavailable": first_line(exc)}


def units(site: Site) -> dict[str, dict[str, str]]:
    """``{column: {"unit", "description"}}`` of the warehouse's columns, once per state."""
    return site.cached("units", lambda: column_metadata(site.wh))


def split_names(r: Reading) -> list[str]:
    """The splits of ml_objects, train, validation, test first."""
    found = [row["split"] for row in r.rows("SELECT DISTINCT split FROM ml_objects")]
    known = [s for s in SPLIT_ORDER if s in found]
    return known + sorted(s for s in found if s not in known)


def splits(site: Site) -> list[str]:
    """The splits of ml_objects (none when it is unavailable), once per committed state."""

    def find() -> list[str]:
        with site.reading() as r:
            try:
                return split_names(r)
            except QueryError:
                return []

    return site.cached("splits", find)


# -- the overview ----------------------------------------------------------------------------------


def overview(site: Site) -> dict[str, Any]:
    """The warehouse at a glance, computed once per committed state (a load makes a new one)."""
    return site.cached("overview", lambda: _overview(site))


def _overview(site: Site) -> dict[str, Any]:
    wh = site.wh
    out: dict[str, Any] = {
        "warehouse": str(wh.root),
        "release": site.release,
        "computed_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
    }
    with site.reading() as r:
        out["quality"] = _quality(r)
        out["dedup"] = _dedup(r)
        out["splits"] = _splits(r)
        out["redshift"] = _redshift(r)
        out["views"] = _views(site, r, _known_counts(out))
    available = {v["name"] for v in out["views"] if not v["unavailable"]}
    out["simulated"] = simulated_sources(wh, "ml_objects") if "ml_objects" in available else []
    return out


def _known_counts(out: dict[str, Any]) -> dict[str, int]:
    """Row counts the sections already found (each one a pass over a heavy view at 1 M rows)."""
    known: dict[str, int] = {}
    quality, dedup, splits = out["quality"], out["dedup"], out["splits"]
    if "candidates" in quality:
        known["quality_flags"] = quality["candidates"]
        known["quality_passed"] = quality["passes_all"]
    if "outcomes" in dedup:
        known["deduplicated"] = sum(o["n"] for o in dedup["outcomes"])
    if "splits" in splits:
        known["ml_objects"] = sum(s["n_objects"] for s in splits["splits"])
        known["split_summary"] = len(splits["splits"])
    return known


def _views(site: Site, r: Reading, known: dict[str, int]) -> list[dict[str, Any]]:
    """Every table and view (as ``gwh views`` lists them) with its row count."""
    out = []
    for v in site.wh.views(count_rows=False):
        rows = None
        if not v.reason:
            rows = known.get(v.name)
            if rows is None:
                rows = r.query(f"SELECT count(*) AS n FROM {quote_ident(v.name)}").column(0)[0]
                rows = rows.as_py()
        out.append(
            {
                "name": v.name,
                "layer": v.layer,
                "kind": v.kind,
                "rows": rows,
                "description": v.description,
                "unavailable": v.reason,
            }
        )
    return out


def _quality(r: Reading) -> dict[str, Any]:
    """Candidates (object x spec-z entry), how many fail each rule, how many pass them all."""
    try:
        names = r.query("SELECT * FROM quality_flags LIMIT 0").column_names
        rules = [c for c in names if c not in ("object_id", "specz_name", "passes_all")]
        counts = r.rows(
            "SELECT count(*) AS candidates, count(*) FILTER (WHERE passes_all) AS passes_all"
            + "".join(
                f", count(*) FILTER (WHERE NOT {quote_ident(c)}) AS {quote_ident(c)}" for c in rules
            )
            + " FROM quality_flags"
        )[0]
    except QueryError as exc:
        return _unavailable(exc)
    return {
        "candidates": counts["candidates"],
        "passes_all": counts["passes_all"],
        "rules": [{"rule": c, "fails": counts[c]} for c in rules],
    }


def _dedup(r: Reading) -> dict[str, Any]:
    try:
        rows = r.rows(
            "SELECT coalesce(duplicate_rule, 'kept') AS outcome, count(*) AS n "
            "FROM deduplicated GROUP BY 1 ORDER BY outcome = 'kept' DESC, outcome"
        )
    except QueryError as exc:
        return _unavailable(exc)
    return {"outcomes": rows}


def _splits(r: Reading) -> dict[str, Any]:
    try:
        return {"splits": r.rows("SELECT * FROM split_summary")}
    except QueryError as exc:
        return _unavailable(exc)


def _redshift(r: Reading) -> dict[str, Any]:
    """Histogram of the spec-z per split, in bins of :data:`REDSHIFT_BIN`."""
    try:
        rows = r.rows(
            "SELECT split, floor(specz_redshift / ?)::INTEGER AS bin, count(*) AS n "
            "FROM ml_objects WHERE isfinite(specz_redshift) GROUP BY ALL ORDER BY ALL",
            [REDSHIFT_BIN],
        )
        splits = split_names(r)
    except QueryError as exc:
        return _unavailable(exc)
    if not rows:
        return {"bin_width": REDSHIFT_BIN, "edges": [], "counts": {}}
    lo, hi = min(x["bin"] for x in rows), max(x["bin"] for x in rows)
    counts = {s: [0] * (hi - lo + 1) for s in splits}
    for x in rows:
        counts[x["split"]][x["bin"] - lo] = x["n"]
    edges = [round(k * REDSHIFT_BIN, 10) for k in range(lo, hi + 2)]
    return {"bin_width": REDSHIFT_BIN, "edges": edges, "counts": counts}


# -- one object ------------------------------------------------------------------------------------

_SPECZ_RULE_COLUMNS = {
    "specz_secure": ("specz_flag_homogeneous",),
    "specz_err_in_range": ("specz_redshift_err",),
    "specz_not_sentinel": ("specz_redshift",),
    "redshift_in_range": ("specz_redshift",),
    "specz_err_relative": ("specz_redshift", "specz_redshift_err"),
}
"""The spec-z columns each spec-z rule of quality_flags reads (shown as its evidence)."""


def _rule_band_columns(rule: str) -> tuple[str, ...]:
    """The per-band suffixes a photometric rule reads: ``no_<flag>`` reads ``<band>_<flag>``."""
    if rule == "detected_all_bands":
        return ("cmodel_mag", "cmodel_magsigma")
    if rule == "cmodel_mag_in_range":
        return ("cmodel_mag",)
    if rule.startswith("no_"):
        return (rule[3:],)
    return ()


def _first(r: Reading, sql: str, object_id: int) -> dict[str, Any] | None:
    try:
        rows = r.rows(sql, [object_id])
    except QueryError:  # the view is unavailable (nothing loaded into it yet)
        return None
    return rows[0] if rows else None


def _all(r: Reading, sql: str, params: list) -> list[dict[str, Any]]:
    try:
        return r.rows(sql, params)
    except QueryError:
        return []


def object_detail(site: Site, object_id: int) -> dict[str, Any]:
    """Everything the warehouse knows about one object: its catalog row with units, each rule it
    passes or fails and the values behind it, its spec-z entries and the dedup outcome, its
    split, morphology and cutouts."""
    meta = units(site)
    bands = list(site.wh.config.bands)
    with site.reading() as r:
        row = _first(r, "SELECT * FROM hsc_forced WHERE object_id = ?", object_id)
        cutout = _first(r, "SELECT * FROM cutouts WHERE object_id = ?", object_id)
        if row is None and cutout is None:
            raise ServeError(
                f"object_id {object_id} is in neither hsc_forced nor cutouts of this warehouse; "
                "the SQL page lists objects (select object_id from ml_objects limit 10)."
            )
        ml = _first(r, "SELECT split FROM ml_objects WHERE object_id = ?", object_id)
        specz = _all(r, "SELECT * FROM hsc_specz WHERE object_id = ? ORDER BY 2", [object_id])
        flags = _all(
            r, "SELECT * FROM quality_flags WHERE object_id = ? ORDER BY specz_name", [object_id]
        )
        photometry = _first(r, "SELECT * FROM photometry_flags WHERE object_id = ?", object_id)
        names = sorted({s["specz_name"] for s in specz if s.get("specz_name") is not None})
        dedup = _all(
            r,
            "SELECT * FROM deduplicated WHERE object_id = ? OR specz_name IN "
            "(SELECT unnest(?::VARCHAR[])) ORDER BY specz_name, object_id",
            [object_id, names],
        )
        morphology = _first(r, "SELECT * FROM morphology WHERE object_id = ?", object_id)
    columns = [
        {
            "name": name,
            "value": value,
            "unit": meta.get(name, {}).get("unit", ""),
            "description": meta.get(name, {}).get("description", ""),
        }
        for name, value in (row or cutout or {}).items()
    ]
    return {
        "object_id": object_id,
        "in_catalog": row is not None,
        "split": ml["split"] if ml else None,
        "in_ml_objects": ml is not None,
        "columns": columns,
        "specz": specz,
        "rules": _rules(flags, photometry, row or {}, specz, bands),
        "dedup": _dedup_outcome(object_id, dedup),
        "morphology": _morphology(morphology, bands, meta),
        "cutouts": _cutout_info(cutout, bands),
    }


def _rules(
    flags: list[dict], photometry: dict | None, row: dict, specz: list[dict], bands: list[str]
) -> dict[str, Any]:
    """Per candidate (spec-z entry) each rule: passes, and the values it read."""
    by_name = {s.get("specz_name"): s for s in specz}
    candidates = []
    sources = flags or ([{"specz_name": None, **photometry}] if photometry else [])
    for f in sources:
        checks = []
        for rule, ok in f.items():
            if rule in ("object_id", "specz_name", "passes_all") or not isinstance(ok, bool):
                continue
            band_cols = _rule_band_columns(rule)
            if band_cols:
                evidence = {f"{b}_{c}": row.get(f"{b}_{c}") for b in bands for c in band_cols}
                failing = [
                    b
                    for b in bands
                    if not _band_passes(rule, {c: row.get(f"{b}_{c}") for c in band_cols})
                ]
            else:
                entry = by_name.get(f.get("specz_name"), {})
                evidence = {c: entry.get(c) for c in _SPECZ_RULE_COLUMNS.get(rule, ())}
                failing = []
            checks.append(
                {"rule": rule, "passes": ok, "bands_failing": failing, "values": evidence}
            )
        candidates.append(
            {"specz_name": f.get("specz_name"), "passes_all": f.get("passes_all"), "checks": checks}
        )
    note = None
    if not flags:
        note = (
            "no spec-z entry matches this object, so it is not a candidate: ml_objects needs a "
            "spec-z redshift (the photometric rules are shown alone)"
        )
    return {"candidates": candidates, "note": note}


def _band_passes(rule: str, values: dict[str, Any]) -> bool:
    """Whether one band satisfies a photometric rule (a NULL flag counts as set, as in SQL)."""

    def finite(v: Any) -> bool:
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if rule == "detected_all_bands":
        return all(finite(v) for v in values.values())
    if rule == "cmodel_mag_in_range":
        v = values["cmodel_mag"]
        return finite(v) and 0 < v < 50
    return all(v is False for v in values.values())


def _dedup_outcome(object_id: int, rows: list[dict]) -> dict[str, Any]:
    """Kept or dropped, by which rule, and which candidate was kept instead."""
    mine = [x for x in rows if x["object_id"] == object_id]
    others = [x for x in rows if x["object_id"] != object_id]
    if not mine:
        return {
            "status": "not a deduplication candidate (it fails a quality rule or has no spec-z)",
            "rows": [],
            "competitors": others,
        }
    kept = any(x["kept"] for x in mine)
    rules = sorted({x["duplicate_rule"] for x in mine if x["duplicate_rule"]})
    why = {
        "same_specz_name": "another object matched to the same spec-z entry was closer "
        "(then: smaller redshift error, smaller object_id)",
        "same_object_id": "another spec-z entry of this object had a smaller redshift error "
        "(then: closer match, smaller specz_name)",
    }
    if kept:
        status = "kept" + (f" (its other entries lost by {', '.join(rules)})" if rules else "")
    else:
        status = "dropped: " + "; ".join(why.get(x, x) for x in rules)
    return {"status": status, "kept": kept, "rows": mine, "competitors": others}


def _morphology(row: dict | None, bands: list[str], meta: dict) -> dict[str, Any] | None:
    if row is None:
        return None
    fields = sorted({k[len(b) + 1 :] for k in row for b in bands if k.startswith(f"{b}_")}, key=str)
    table = [
        {
            "field": f,
            "unit": meta.get(f"{bands[0]}_{f}", {}).get("unit", ""),
            "values": {b: row.get(f"{b}_{f}") for b in bands},
        }
        for f in fields
    ]
    return {"source": row.get("morphology_source"), "fields": table}


def _cutout_info(row: dict | None, bands: list[str]) -> dict[str, Any] | None:
    if row is None:
        return None
    per_band = {
        b: {
            "width": row.get(f"{b}_width"),
            "height": row.get(f"{b}_height"),
            "pixel_scale": row.get(f"{b}_pixel_scale"),
            "zeropoint": row.get(f"{b}_zeropoint"),
            "mask_present": row.get(f"{b}_mask_present"),
            "masked_fraction": row.get(f"{b}_masked_fraction"),
            "simulated": row.get(f"{b}_simulated"),
            "source": row.get(f"{b}_source"),
        }
        for b in bands
        if row.get(f"{b}_width") is not None
    }
    scales = {round(v["pixel_scale"], 6) for v in per_band.values() if v["pixel_scale"]}
    return {
        "bands": list(per_band),
        "per_band": per_band,
        "simulated": bool(row.get("simulated")),
        "pixel_scale": scales.pop() if len(scales) == 1 else None,
        "masked_fraction": row.get("masked_fraction"),
        "has_mask": any(v["mask_present"] for v in per_band.values()),
        "table": CUTOUTS.name,
    }


# -- releases --------------------------------------------------------------------------------------


def releases(site: Site) -> list[dict[str, Any]]:
    if site.base_root is None:  # a packed release served on its own
        frozen = site.wh
        manifest = getattr(frozen, "manifest", {})
        return [
            {
                "name": manifest.get("name"),
                "created_utc": manifest.get("created_utc"),
                "notes": manifest.get("notes", ""),
                "splits": manifest.get("counts", {}).get("splits", {}),
            }
        ]
    return list_releases(site.base_root)


def release_detail(site: Site, name: str) -> dict[str, Any]:
    """The manifest (without file hashes and SQL text), whether every file still matches its
    SHA-256, and the diff against the release made before it."""
    if site.base_root is None:
        frozen = site.wh
        if name != getattr(frozen, "name", None):
            shown = getattr(frozen, "name", None)
            raise ServeError(f"this server shows the packed release {shown!r} only.")
        base: Path = Path(frozen.root)
    else:
        base = site.base_root
        try:
            frozen = open_release(base, name)
        except ReleaseError as exc:
            raise ServeError(str(exc)) from None
    info = describe(frozen)  # type: ignore[arg-type]
    problems = site.cached(f"verify:{name}", lambda: verify(base, frozen.release_dir))  # type: ignore[attr-defined]
    known = [x["name"] for x in releases(site)]
    previous = known[known.index(name) - 1] if name in known and known.index(name) > 0 else None
    changes: dict[str, Any] | None = None
    if previous is not None and site.base_root is not None:
        changes = site.cached(f"diff:{previous}:{name}", lambda: diff(base, previous, name))
    return {
        "name": name,
        "manifest": info,
        "verified": not problems,
        "problems": [{"path": p.path, "problem": p.problem} for p in problems],
        "previous": previous,
        "diff": changes,
    }
