"""Immutable, verifiable releases: what a paper cites, rebuildable byte for byte years later.

A release is a folder ``ROOT/releases/<name>/`` holding one human-readable ``manifest.json``. The
manifest names the table versions it froze (``catalogs/<table>/v<NNNNNN>``, which the warehouse
never removes while a release holds them), the SHA-256 of every one of their files, the SQL of
every view and macro, the configuration, the input files, row counts per view and split, and the
citations of the sources used. Table versions are immutable and shared between releases and the
live warehouse (partitions a load did not touch are hard links), so a second release costs its
manifest plus whatever changed.

Querying a release builds its views in memory from the frozen SQL over the frozen files, so
``gwh sql --release v1`` answers as the warehouse did when the release was made.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import json
import os
import platform
import re
import shutil
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from warehouse import __version__, db
from warehouse.citations import (
    CITATION_GALAXIESML,
    CITATIONS_HSC,
    HSC_ACKNOWLEDGEMENT,
    SPECZ_CITATIONS,
)
from warehouse.config import parse_config
from warehouse.core import Snapshot, Warehouse
from warehouse.errors import ReleaseError
from warehouse.files import Layout, sha256_hex
from warehouse.files import file_sha256 as sha256_file
from warehouse.store import CatalogVersion, read_version
from warehouse.store.contracts import base_tables

MANIFEST = "manifest.json"
PACK_MANIFEST = "pack.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.match(name):
        raise ReleaseError(
            f"{name!r} is not a release name: use letters, digits, '.', '_' or '-' "
            "(e.g. v1, 2026-11-paper)."
        )


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent.parent
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


# ---------------------------------------------------------------------------------- frozen state


class FrozenWarehouse(Warehouse):
    """A release opened for reading: the warehouse API over the frozen files and SQL.

    ``base`` is where the manifest's relative paths resolve: the warehouse root, or a packed copy.
    Its readers are the live warehouse's (:meth:`Warehouse.connect`, the same in-memory builder
    and sandbox); only the state they read differs: the manifest instead of the registry. Its
    table versions never change and are never removed, so it takes no readers' lock.
    """

    def __init__(self, base: Path, manifest: dict, release_dir: Path):
        super().__init__(Path(base), parse_config(manifest["config_toml"], "release configuration"))
        self.manifest = manifest
        self.release_dir = release_dir
        self.name = manifest["name"]

    def _readers_lock(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def _read_snapshot(self) -> Snapshot:
        registry = {
            name: (int(info.get("version", 0)), info["path"])
            for name, info in self.manifest["tables"].items()
        }
        return Snapshot(registry, {})

    def _reader_tables(self, snapshot: Snapshot) -> list[db.BaseTable]:
        tables = []
        defs = base_tables()
        for name, info in self.manifest["tables"].items():
            cv = read_version(self.root.resolve() / info["path"])
            hidden = tuple(info.get("hidden_columns", ()))
            columns = tuple(c for c in cv.schema.names if c not in hidden)
            hint = defs[name].load_hint if name in defs else ""
            tables.append(
                db.BaseTable(name, info.get("description", ""), cv.glob, columns, hint, hidden)
            )
        for name, d in defs.items():
            if name not in self.manifest["tables"]:
                tables.append(db.BaseTable(name, d.spec.description, None, (), d.load_hint))
        return tables

    def current_version(self, name: str) -> CatalogVersion | None:
        table = self.manifest["tables"].get(name)
        return read_version(self.root.resolve() / table["path"]) if table else None

    def models(self) -> list[db.Model]:
        return [db.model_from_text(m["path"], m["text"]) for m in self.manifest["sql"]["models"]]

    def assertion_texts(self) -> dict[str, str] | None:
        return {m["path"]: m["text"] for m in self.manifest["sql"].get("assertions", [])}

    def writing(self, command: str | None = None):  # type: ignore[no-untyped-def]
        raise ReleaseError(f"release {self.name} is immutable; write to the live warehouse.")


def releases_dir(root: Path) -> Path:
    return Layout(Path(root)).releases


def read_manifest(release_dir: Path) -> dict:
    path = Path(release_dir) / MANIFEST
    if not path.exists():
        raise ReleaseError(f"{path} is missing: {release_dir} is not a release.")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc}): the release is damaged.") from None


def open_release(root: Path, name: str) -> FrozenWarehouse:
    """The release ``name`` of the warehouse at ``root``."""
    _check_name(name)
    rdir = releases_dir(root) / name
    if not rdir.exists():
        known = list_releases(root)
        raise ReleaseError(
            f"no release {name!r} in {root}"
            + (f"; releases: {', '.join(r['name'] for r in known)}" if known else "; none yet")
            + ". Create one with `gwh release create NAME`."
        )
    return FrozenWarehouse(Path(root), read_manifest(rdir), rdir)


def open_pack(pack: Path) -> FrozenWarehouse:
    """A packed copy (``gwh release pack``) opened on its own, without the warehouse."""
    return FrozenWarehouse(Path(pack), read_manifest(pack), Path(pack))


def list_releases(root: Path) -> list[dict]:
    out = []
    rd = releases_dir(root)
    for m in sorted(rd.glob(f"*/{MANIFEST}")) if rd.exists() else []:
        if m.parent.name.startswith("."):
            continue
        data = json.loads(m.read_text(encoding="utf-8"))
        out.append(
            {
                "name": data["name"],
                "created_utc": data["created_utc"],
                "notes": data.get("notes", ""),
                "splits": data["counts"].get("splits", {}),
            }
        )
    return sorted(out, key=lambda r: r["created_utc"])


# ---------------------------------------------------------------------------------- create


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
    if not registry:
        raise ReleaseError("nothing has been loaded yet; load tables before making a release.")
    defs = base_tables()
    tables = {}
    for tname, version, path, nrows, description in registry:
        echo(f"hashing {tname} ({path})")
        cv = read_version(wh.root / path)
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


# ---------------------------------------------------------------------------------- verify


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
    if side.exists() and side.read_text(encoding="utf-8").split()[0] != sha256_hex(text):
        problems.append(Mismatch(str(manifest_path), "changed since the release was made"))
    manifest = json.loads(text)
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
    pack = release_dir / PACK_MANIFEST
    if pack.exists():
        for f in json.loads(pack.read_text(encoding="utf-8")).get("files", []):
            p = release_dir / f["path"]
            if not p.exists():
                problems.append(Mismatch(str(p), "missing (packed file)"))
            elif sha256_file(p) != f["sha256"]:
                problems.append(Mismatch(str(p), "changed (packed file): SHA-256 differs"))
    return problems


def verify_target(root: Path | None, target: str) -> tuple[Path, list[Mismatch]]:
    """``target`` is a release name in ``root``, or the folder of a packed copy."""
    path = Path(target)
    if (path / MANIFEST).exists():
        return path, verify(path, path)
    if root is None:
        raise ReleaseError(f"{target} is neither a packed release folder nor a release name.")
    frozen = open_release(root, target)
    return frozen.release_dir, verify(Path(root), frozen.release_dir)


# ---------------------------------------------------------------------------------- diff


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
        out["split_moves_error"] = str(exc).splitlines()[0]
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
    return out


def _dict_diff(a: dict, b: dict, prefix: str = "") -> dict:
    out = {}
    for k in sorted(a.keys() | b.keys()):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            out.update(_dict_diff(va, vb, f"{prefix}{k}."))
        elif va != vb:
            out[f"{prefix}{k}"] = {"from": va, "to": vb}
    return out


# ---------------------------------------------------------------------------------- pack


def pack(
    root: Path,
    name: str,
    dest: Path,
    with_splits: bool = True,
    echo: Callable[[str], None] = lambda _m: None,
) -> Path:
    """A standalone copy of release ``name`` at ``dest``: its manifest, the frozen HATS catalogs,
    the SQL and configuration, and the train/validation/test HDF5 files exported from it (when
    it holds cutouts; ``with_splits=False`` leaves them out)."""
    frozen = open_release(root, name)
    dest = Path(dest)
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"{dest} exists and is not empty; give a new folder for the pack.")
    problems = verify(Path(root), frozen.release_dir)
    if problems:
        raise ReleaseError(
            f"release {name} does not verify ({problems[0].path}: "
            f"{problems[0].problem}); refusing to pack it."
        )
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
    tmp.mkdir(parents=True)
    try:
        shutil.copy2(frozen.release_dir / MANIFEST, tmp / MANIFEST)
        shutil.copy2(frozen.release_dir / (MANIFEST + ".sha256"), tmp / (MANIFEST + ".sha256"))
        for tname, info in frozen.manifest["tables"].items():
            echo(f"copying {tname}")
            shutil.copytree(Path(root) / info["path"], tmp / info["path"])
        (tmp / "warehouse.toml").write_text(frozen.manifest["config_toml"], encoding="utf-8")
        for m in frozen.manifest["sql"]["models"] + frozen.manifest["sql"].get("assertions", []):
            p = tmp / "sql" / m["path"]
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(m["text"], encoding="utf-8")
        extra: list[Path] = [tmp / "warehouse.toml"] + sorted((tmp / "sql").rglob("*.sql"))
        if with_splits:
            from warehouse.export import export_release_splits

            echo("exporting the HDF5 splits")
            extra += export_release_splits(open_pack(tmp), tmp / "splits")
        (tmp / "README.txt").write_text(_pack_readme(frozen.manifest), encoding="utf-8")
        extra.append(tmp / "README.txt")
        files = [{"path": str(p.relative_to(tmp)), "sha256": sha256_file(p)} for p in extra]
        (tmp / PACK_MANIFEST).write_text(
            json.dumps({"release": name, "files": files}, indent=2) + "\n", encoding="utf-8"
        )
        if dest.exists():
            dest.rmdir()
        os.rename(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _pack_readme(manifest: dict) -> str:
    lines = [
        f"galaxy-warehouse release {manifest['name']} (made {manifest['created_utc']}, "
        f"gwh {manifest['gwh_version']}, git {manifest.get('git_revision')})",
        "",
        "Verify every byte:   gwh release verify THIS_FOLDER",
        'Query it:            gwh sql --release THIS_FOLDER "select * from split_summary"',
        "Open a table:        lsdb.open_catalog('THIS_FOLDER/<table path in manifest.json>')",
        "",
        "Tables: " + ", ".join(f"{k} ({v['rows']:,} rows)" for k, v in manifest["tables"].items()),
        "Splits: " + json.dumps(manifest["counts"].get("splits", {})),
        "",
        "Cite:",
        *[f"  - {c}" for c in manifest.get("citations", [])],
        "",
        *manifest.get("acknowledgements", []),
        "",
    ]
    return "\n".join(lines)


def resolve(root: Path | None, release: str) -> FrozenWarehouse:
    """``--release`` value: a release name of the warehouse, or a packed copy's folder."""
    path = Path(release)
    if (path / MANIFEST).exists():
        return open_pack(path)
    if root is None:
        raise ReleaseError(f"{release} is not a packed release folder.")
    return open_release(root, release)


def describe(frozen: FrozenWarehouse) -> dict:
    m = frozen.manifest
    return {
        k: m[k]
        for k in (
            "name",
            "created_utc",
            "notes",
            "gwh_version",
            "git_revision",
            "python",
            "libraries",
            "config",
            "counts",
            "citations",
        )
    } | {
        "tables": {
            k: {kk: v[kk] for kk in ("path", "version", "rows")} | {"files": len(v["files"])}
            for k, v in m["tables"].items()
        },
        "inputs": m["inputs"],
    }


__all__ = [
    "FrozenWarehouse",
    "create_release",
    "diff",
    "list_releases",
    "open_pack",
    "open_release",
    "pack",
    "resolve",
    "verify",
    "verify_target",
]
