"""Checking releases: re-hashing every file a release names (:func:`verify`), and what
changed between two releases (:func:`diff`)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from pathlib import Path

import duckdb

from warehouse import db
from warehouse.errors import ReleaseError, first_line
from warehouse.files import PACK_MANIFEST, sha256_hex
from warehouse.files import file_sha256 as sha256_file
from warehouse.manifest_file import parse_manifest
from warehouse.release.frozen import MANIFEST, open_release
from warehouse.store import read_version
from warehouse.store.contracts import base_tables


@dataclass(frozen=True)
class Mismatch:
    path: str
    problem: str


def verify(base: Path, release_dir: Path) -> list[Mismatch]:
    """Re-hash every file the release names. ``base`` resolves the manifest's paths."""
    problems: list[Mismatch] = []
    manifest_path = release_dir / MANIFEST
    text = manifest_path.read_text(encoding="utf-8") if manifest_path.exists() else None
    if text is None:
        return [Mismatch(str(manifest_path), "missing")]
    side = release_dir / (MANIFEST + ".sha256")
    if not side.is_file():  # written with every release: without it the manifest goes unchecked
        problems.append(Mismatch(str(side), "missing (the manifest's SHA-256)"))
    elif (side.read_text(encoding="utf-8").split() or [""])[0] != sha256_hex(text):
        problems.append(Mismatch(str(manifest_path), "changed since the release was made"))
    try:
        manifest = parse_manifest(text, manifest_path)
    except ReleaseError as exc:
        return [*problems, Mismatch(str(manifest_path), str(exc).split(": ", 1)[-1])]
    for tname, info in manifest["tables"].items():
        root = base / info["path"]
        listed = set()
        for f in info["files"]:
            p = root / f["path"]
            listed.add(f["path"])
            if not p.exists():
                problems.append(Mismatch(str(p), f"missing (table {tname})"))
            elif p.stat().st_size != f["bytes"] or sha256_file(p) != f["sha256"]:
                problems.append(Mismatch(str(p), f"changed (table {tname}): SHA-256 differs"))
        if root.exists():
            for p in sorted(root.rglob("*")):
                if p.is_file() and str(p.relative_to(root)) not in listed:
                    problems.append(Mismatch(str(p), f"not part of the release (table {tname})"))
    for m in manifest["sql"]["models"] + manifest["sql"].get("assertions", []):
        if sha256_hex(m["text"]) != m["sha256"]:
            problems.append(Mismatch(f"{manifest_path}: sql/{m['path']}", "SQL text changed"))
    if sha256_hex(manifest["config_toml"]) != manifest["config_sha256"]:
        problems.append(Mismatch(f"{manifest_path}: config", "configuration changed"))
    if base.resolve() == release_dir.resolve():  # a packed copy: its own files too
        problems += _packed(release_dir, manifest)
    return problems


def _packed(folder: Path, manifest: dict) -> list[Mismatch]:
    """The files a pack adds to its release (``pack.json`` lists them with their SHA-256):
    each there and unchanged, ``warehouse.toml`` and ``sql/`` equal to the manifest's text,
    and no file in the folder that neither the manifest nor ``pack.json`` accounts for (a
    split file dropped from ``pack.json`` and changed would otherwise pass)."""
    problems: list[Mismatch] = []
    listing = folder / PACK_MANIFEST
    listed: dict[str, str] = {}
    try:
        files = json.loads(listing.read_text(encoding="utf-8"))["files"]
        listed = {str(f["path"]): str(f["sha256"]) for f in files}
    except FileNotFoundError:
        problems.append(Mismatch(str(listing), "missing (the list of packed files)"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        problems.append(Mismatch(str(listing), f"damaged ({type(exc).__name__})"))
    sql = manifest["sql"]["models"] + manifest["sql"].get("assertions", [])
    texts = {"warehouse.toml": manifest["config_toml"]}
    texts.update({f"sql/{m['path']}": m["text"] for m in sql})
    for rel, text in texts.items():
        p = folder / rel
        if not p.is_file():
            problems.append(Mismatch(str(p), "missing (packed file)"))
        elif p.read_bytes() != text.encode("utf-8"):
            problems.append(Mismatch(str(p), "changed (packed file): differs from the manifest"))
    for rel, sha in listed.items():
        p = folder / rel
        if rel in texts:
            continue
        if not p.is_file():
            problems.append(Mismatch(str(p), "missing (packed file)"))
        elif sha256_file(p) != sha:
            problems.append(Mismatch(str(p), "changed (packed file): SHA-256 differs"))
    known = {MANIFEST, MANIFEST + ".sha256", PACK_MANIFEST, *texts, *listed}
    tables = [Path(info["path"]) for info in manifest["tables"].values()]
    for p in sorted(folder.rglob("*")):
        inside = p.relative_to(folder)
        if (
            p.is_file()
            and str(inside) not in known
            and not any(inside.is_relative_to(t) for t in tables)
        ):
            problems.append(Mismatch(str(p), "not part of the release (nor listed in pack.json)"))
    return problems


def verify_target(root: Path | None, target: str) -> tuple[Path, list[Mismatch]]:
    """``target`` is a release name in ``root``, or the folder of a packed copy."""
    path = Path(target)
    if (path / MANIFEST).exists():
        return path, verify(path, path)
    if path.is_dir() and ("/" in target or root is None):  # a folder given, not a name
        raise ReleaseError(
            f"{target} is not a packed release: it has no {MANIFEST}. Give the folder "
            "`gwh release pack` wrote, or a release name."
        )
    if root is None:
        raise ReleaseError(f"{target} is neither a packed release folder nor a release name.")
    frozen = open_release(root, target)
    return frozen.release_dir, verify(Path(root), frozen.release_dir)


def diff(root: Path, a: str, b: str) -> dict:
    """What changed from release ``a`` to ``b``: rows per table, split moves, SQL, config."""
    ra, rb = open_release(root, a), open_release(root, b)
    ma, mb = ra.manifest, rb.manifest
    out: dict = {"from": a, "to": b, "tables": {}, "split_moves": [], "sql": {}, "config": {}}
    defs = base_tables()
    con = duckdb.connect()
    for tname in sorted(set(ma["tables"]) | set(mb["tables"])):
        ta, tb = ma["tables"].get(tname), mb["tables"].get(tname)
        if ta is None or tb is None:
            out["tables"][tname] = {
                "table": "added" if ta is None else "removed",
                "rows": (tb or ta)["rows"],
            }
            continue
        key = list(defs[tname].spec.key) if tname in defs else ["object_id"]
        ga = read_version(Path(root) / ta["path"]).glob
        gb = read_version(Path(root) / tb["path"]).glob
        cols_a = con.sql(f"SELECT * FROM {db.parquet_source(ga)} LIMIT 0").columns
        cols_b = con.sql(f"SELECT * FROM {db.parquet_source(gb)} LIMIT 0").columns
        common = [c for c in cols_a if c in cols_b and c not in key]
        on = " AND ".join(f"a.{db.quote_ident(k)} = b.{db.quote_ident(k)}" for k in key)
        differs = (
            " OR ".join(
                f"a.{db.quote_ident(c)} IS DISTINCT FROM b.{db.quote_ident(c)}" for c in common
            )
            or "false"
        )
        src = (
            f"(SELECT * FROM {db.parquet_source(ga)}) a "
            f"FULL OUTER JOIN (SELECT * FROM {db.parquet_source(gb)}) b ON {on}"
        )
        k0 = db.quote_ident(key[0])
        counted = con.execute(
            f"SELECT count(*) FILTER (WHERE a.{k0} IS NULL),"
            f" count(*) FILTER (WHERE b.{k0} IS NULL),"
            f" count(*) FILTER (WHERE a.{k0} IS NOT NULL AND b.{k0} IS NOT NULL AND ({differs}))"
            f" FROM {src}"
        ).fetchall()
        added, removed, changed = counted[0]
        out["tables"][tname] = {
            "rows_from": ta["rows"],
            "rows_to": tb["rows"],
            "added": added,
            "removed": removed,
            "changed": changed,
            "columns_added": [c for c in cols_b if c not in cols_a],
            "columns_removed": [c for c in cols_a if c not in cols_b],
            "same_version": ta["path"] == tb["path"],
        }
    try:
        sa = {
            r["object_id"]: r["split"]
            for r in ra.query("SELECT object_id, split FROM ml_objects").to_pylist()
        }
        sb = {
            r["object_id"]: r["split"]
            for r in rb.query("SELECT object_id, split FROM ml_objects").to_pylist()
        }
        out["split_moves"] = [
            {"object_id": oid, "from": sa[oid], "to": sb[oid]}
            for oid in sorted(sa.keys() & sb.keys())
            if sa[oid] != sb[oid]
        ]
        out["split_counts"] = {
            "from": ma["counts"]["splits"],
            "to": mb["counts"]["splits"],
            "entered": len(sb.keys() - sa.keys()),
            "left": len(sa.keys() - sb.keys()),
        }
    except Exception as exc:  # noqa: BLE001 - a release without ml_objects has no splits
        out["split_moves_error"] = first_line(exc)
    models_a = {m["path"]: m["text"] for m in ma["sql"]["models"]}
    models_b = {m["path"]: m["text"] for m in mb["sql"]["models"]}
    for path in sorted(models_a.keys() | models_b.keys()):
        ta_, tb_ = models_a.get(path, ""), models_b.get(path, "")
        if ta_ != tb_:
            out["sql"][path] = "".join(
                difflib.unified_diff(
                    ta_.splitlines(True), tb_.splitlines(True), f"{a}/sql/{path}", f"{b}/sql/{path}"
                )
            )
    out["config"] = _dict_diff(ma["config"], mb["config"])
    if "leakage" in ma or "leakage" in mb:
        out["leakage"] = _leakage_diff(ma.get("leakage"), mb.get("leakage"))
    if "subsets" in ma or "subsets" in mb:
        out["subsets"] = _subsets_diff(ma.get("subsets") or {}, mb.get("subsets") or {})
    return out


_LEAK_COUNTS = {
    "neighbours": "neighbours in different splits",
    "footprint_pairs": "overlapping cutout footprints",
    "identical_pairs": "identical pixel arrays",
}


def _leakage_diff(a: dict | None, b: dict | None) -> dict:
    """The leakage reports' counts (per split pair) in ``a`` and ``b``; None where a release
    was made before releases stored one."""
    out: dict = {
        "radius_arcsec": {
            "from": (a or {}).get("radius_arcsec"),
            "to": (b or {}).get("radius_arcsec"),
        }
    }
    for key in (*_LEAK_COUNTS, "leaks", "unexpected"):
        out[key] = {
            "from": None if a is None else a.get(key),
            "to": None if b is None else b.get(key),
        }
    return out


def _subsets_diff(a: dict, b: dict) -> dict:
    """Per named subset and split: rows in each release and whether they are the same objects."""
    out: dict = {}
    for name in sorted(a.keys() | b.keys()):
        sa, sb = a.get(name, {}).get("splits", {}), b.get(name, {}).get("splits", {})
        out[name] = {
            s: {
                "rows_from": sa.get(s, {}).get("rows"),
                "rows_to": sb.get(s, {}).get("rows"),
                "same_objects": sa.get(s, {}).get("object_ids_sha256")
                == sb.get(s, {}).get("object_ids_sha256"),
            }
            for s in sorted(sa.keys() | sb.keys())
        }
    return out


def _leakage_lines(d: dict) -> list[str]:
    lines = []
    leak = d.get("leakage")
    if leak is not None:
        r = leak["radius_arcsec"]
        lines.append(f"  leakage (gwh splits check, radius {r['from']} -> {r['to']} arcsec):")
        for key, label in _LEAK_COUNTS.items():
            lines.append(f"    {label}: {_counts(leak[key]['from'])} -> {_counts(leak[key]['to'])}")
        u = leak["unexpected"]
        lines.append(
            f"    unexpected (identical pixels, or one HEALPix cell in two splits): {u['from']} "
            f"-> {u['to']}"
        )
    for name, per_split in (d.get("subsets") or {}).items():
        parts = [
            f"{s} {v['rows_from']} -> {v['rows_to']}"
            + ("" if v["same_objects"] else " (other objects)")
            for s, v in per_split.items()
        ]
        lines.append(f"  subset {name}: {', '.join(parts)}")
    return lines


def _counts(value: dict | None) -> str:
    if value is None:
        return "not recorded"
    return ", ".join(f"{k} {n:,}" for k, n in value.items() if n) or "none"


def _dict_diff(a: dict, b: dict, prefix: str = "") -> dict:
    out = {}
    for k in sorted(a.keys() | b.keys()):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_dict_diff(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out[f"{prefix}{k}"] = {"from": va, "to": vb}
    return out


SHOWN = 50
"""Split moves ``gwh release diff`` lists (a line says how many more ``--json`` holds)."""


def diff_lines(d: dict) -> list[str]:
    """:func:`diff` as the lines ``gwh release diff`` prints (the first :data:`SHOWN` split
    moves)."""
    lines = [f"release diff {d['from']} -> {d['to']}"]
    for table, t in d["tables"].items():
        if "table" in t:
            lines.append(f"  {table}: table {t['table']} ({t['rows']:,} rows)")
            continue
        lines.append(
            f"  {table}: {t['rows_from']:,} -> {t['rows_to']:,} rows; +{t['added']:,} "
            f"added, -{t['removed']:,} removed, {t['changed']:,} changed"
            + (f"; columns added: {', '.join(t['columns_added'])}" if t["columns_added"] else "")
        )
    moves = d.get("split_moves", [])
    lines.append(f"  split moves: {len(moves)}")
    lines += [f"    object_id {m['object_id']}: {m['from']} -> {m['to']}" for m in moves[:SHOWN]]
    if len(moves) > SHOWN:
        lines.append(f"    ... and {len(moves) - SHOWN:,} more (--json lists every move)")
    if "split_counts" in d:
        c = d["split_counts"]
        lines.append(f"  ml_objects: {c['entered']:,} entered, {c['left']:,} left")
    lines += [f"  sql/{path} changed:\n{text}" for path, text in d["sql"].items()]
    lines += [
        f"  config {key}: {change['from']!r} -> {change['to']!r}"
        for key, change in d["config"].items()
    ]
    lines += _leakage_lines(d)
    return lines
