"""Making a release: the manifest (table versions and the SHA-256 of each of their files,
the SQL, configuration, inputs, counts, citations), written once and never changed."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from warehouse import __version__, db
from warehouse.citations import (
    CITATION_GALAXIESML,
    CITATIONS_HSC,
    HSC_ACKNOWLEDGEMENT,
    SPECZ_CITATIONS,
)
from warehouse.core import Warehouse
from warehouse.errors import ReleaseError
from warehouse.export.subsets import subset_record
from warehouse.files import file_sha256 as sha256_file
from warehouse.files import sha256_hex
from warehouse.marts.key import MARTS
from warehouse.release.frozen import MANIFEST, FrozenWarehouse, _check_name, releases_dir
from warehouse.splits import check_splits
from warehouse.store import read_version
from warehouse.store.contracts import base_tables


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parents[2]  # the checkout holding warehouse/
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return rev.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("duckdb", "pyarrow", "numpy", "astropy", "healpy", "h5py", "sep", "typer"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def _table_files(base: Path, rel: str) -> list[dict]:
    """Every file of a catalog version with its size and SHA-256, in a fixed order."""
    root = base / rel
    files = []
    for p in sorted(root.rglob("*")):
        if p.is_file():
            files.append(
                {
                    "path": str(p.relative_to(root)),
                    "bytes": p.stat().st_size,
                    "sha256": sha256_file(p),
                }
            )
    return files


def create_release(
    wh: Warehouse, name: str, notes: str = "", echo: Callable[[str], None] = lambda _m: None
) -> Path:
    """Freeze the warehouse as release ``name``; fails if the name exists."""
    _check_name(name)
    rd = releases_dir(wh.root)
    final = rd / name
    if final.exists():
        raise ReleaseError(
            f"release {name!r} already exists ({final}); releases are immutable. "
            "Choose another name."
        )
    with wh.writing():
        rd.mkdir(exist_ok=True)
        for stale in rd.glob(".tmp-*"):  # a create that was killed
            shutil.rmtree(stale, ignore_errors=True)
        manifest = _build_manifest(wh, name, notes, echo)
        tmp = rd / f".tmp-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            text = json.dumps(manifest, indent=2, sort_keys=False) + "\n"
            (tmp / MANIFEST).write_text(text, encoding="utf-8")
            (tmp / (MANIFEST + ".sha256")).write_text(
                f"{sha256_hex(text)}  {MANIFEST}\n", encoding="utf-8"
            )
            if final.exists():
                raise ReleaseError(f"release {name!r} appeared while this one was being made.")
            os.rename(tmp, final)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    echo(
        f"release {name}: {sum(len(t['files']) for t in manifest['tables'].values())} files "
        f"in {len(manifest['tables'])} tables frozen at {final}"
    )
    return final


def _build_manifest(wh: Warehouse, name: str, notes: str, echo: Callable[[str], None]) -> dict:
    with wh.connect(read_only=True) as con:
        registry = con.execute(
            "SELECT name, version, path, nrows, description FROM gwh_tables ORDER BY name"
        ).fetchall()
        loads = con.execute(
            "SELECT file, sha256, loader, table_name, nrows, version FROM gwh_loads "
            "ORDER BY loaded_at, file, table_name"
        ).fetchall()
        in_use = {k for (k,) in con.execute("SELECT key FROM gwh_meta").fetchall()}
    # a materialised view is frozen only while the views read it (its fingerprint is current)
    registry = [r for r in registry if r[0] not in MARTS or f"mart:{r[0]}" in in_use]
    if not registry:
        raise ReleaseError("nothing has been loaded yet; load tables before making a release.")
    defs = base_tables()
    tables = {}
    for tname, version, path, nrows, description in registry:
        echo(f"hashing {tname} ({path})")
        cv = read_version(wh.root / path)
        cv.check_whole(tname)  # a file deleted or cut short outside gwh is not frozen as it is
        d = defs.get(tname)
        hidden = [
            c for c in cv.schema.names if d and d.hidden_suffixes and c.endswith(d.hidden_suffixes)
        ]
        tables[tname] = {
            "path": path,
            "version": version,
            "rows": nrows,
            "description": description,
            "hidden_columns": hidden,
            "files": _table_files(wh.root, path),
        }
    models = [
        {"path": m.path, "sha256": sha256_hex(m.text), "text": m.text} for m in db.load_models()
    ]
    assertions = [
        {"path": rel, "sha256": sha256_hex(text), "text": text}
        for rel, text in db.assertion_texts().items()
    ]
    config_text = (wh.root / "warehouse.toml").read_text(encoding="utf-8")
    manifest: dict[str, Any] = {
        "name": name,
        "created_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "notes": notes,
        "gwh_version": __version__,
        "git_revision": _git_revision(),
        "python": platform.python_version(),
        "libraries": _library_versions(),
        "config": wh.config.as_dict(),
        "config_toml": config_text,
        "config_sha256": sha256_hex(config_text),
        "sql": {"models": models, "assertions": assertions},
        "tables": tables,
        "inputs": [
            {"file": f, "sha256": s, "loader": ld, "table": t, "rows": n, "version": v}
            for f, s, ld, t, n, v in loads
        ],
    }
    frozen = FrozenWarehouse(wh.root, manifest, releases_dir(wh.root) / name)
    counts = {}
    for info in frozen.views(count_rows=True):
        counts[info.name] = info.rows
    splits = {}
    if counts.get("ml_objects") is not None:
        splits = {
            r["split"]: r["n"]
            for r in frozen.query(
                "SELECT split, count(*) AS n FROM ml_objects GROUP BY split ORDER BY split"
            ).to_pylist()
        }
    manifest["counts"] = {"views": counts, "splits": splits}
    if splits:  # the named subsets an export of this release selects, and its leakage report
        echo("recording subsets and checking the splits for leakage")
        manifest["subsets"] = subset_record(frozen)
        manifest["leakage"] = check_splits(frozen).as_dict()
    manifest["citations"] = _citations(frozen, tables)
    manifest["acknowledgements"] = (
        [HSC_ACKNOWLEDGEMENT] if any(t.startswith("hsc_") for t in tables) else []
    )
    return manifest


def _citations(frozen: FrozenWarehouse, tables: dict) -> list[str]:
    out = []
    if any(t.startswith("hsc_") or t == "cutouts" for t in tables):
        out.extend(CITATIONS_HSC)
    if "hsc_specz" in tables:
        names = set(frozen.query("SELECT * FROM hsc_specz LIMIT 0").column_names)
        flags = [f for f in SPECZ_CITATIONS if f in names]
        if flags:
            used = frozen.query(
                "SELECT "
                + ", ".join(f"bool_or({db.quote_ident(f)}) AS {db.quote_ident(f)}" for f in flags)
                + " FROM hsc_specz"
            ).to_pylist()[0]
            out.extend(SPECZ_CITATIONS[f] for f in flags if used[f])
        out.append(CITATION_GALAXIESML)
    return out
