"""Opening a release: its folder and manifest, and the warehouse read-only over the frozen
files and SQL (a release name of the warehouse, or a packed copy on its own)."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa

from warehouse import db
from warehouse.config import parse_config
from warehouse.core import Snapshot, Warehouse
from warehouse.errors import ReleaseError
from warehouse.files import Layout
from warehouse.manifest_file import parse_manifest
from warehouse.marts.key import MARTS
from warehouse.marts.tables import mart_table
from warehouse.store import read_version
from warehouse.store.contracts import base_tables

MANIFEST = "manifest.json"
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _check_name(name: str) -> None:
    if not _NAME_RE.fullmatch(name):  # not match: "$" would let a trailing newline through
        raise ReleaseError(
            f"{name!r} is not a release name: use 1 to 64 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit (e.g. v1, 2026-11-paper)."
        )


class ReleaseSource:
    """The frozen state of a release, as a :class:`~warehouse.core.ReadSource`: the manifest's
    table versions and SQL instead of the registry. It never changes, so no lock is needed, and
    every write is refused."""

    def __init__(self, manifest: dict, release_dir: Path):
        self.manifest = manifest
        self.release_dir = release_dir
        self.name: str = manifest["name"]

    def snapshot(self) -> Snapshot:
        registry = {
            name: (int(info.get("version", 0)), info["path"])
            for name, info in self.manifest["tables"].items()
        }
        return Snapshot(registry, {"gwh_loads": self.loads()})

    def loads(self) -> pa.Table:
        """``gwh_loads`` as the release froze it: the manifest's input files (when each was
        loaded is not recorded there), so lineage, e.g. which inputs were simulated, reads the
        same in a release as in the live warehouse."""
        inputs = self.manifest.get("inputs", [])
        return pa.table(
            {
                "sha256": pa.array([i["sha256"] for i in inputs], pa.string()),
                "loader": pa.array([i["loader"] for i in inputs], pa.string()),
                "file": pa.array([i["file"] for i in inputs], pa.string()),
                "table_name": pa.array([i["table"] for i in inputs], pa.string()),
                "nrows": pa.array([i["rows"] for i in inputs], pa.int64()),
                "version": pa.array([i["version"] for i in inputs], pa.int32()),
                "loaded_at": pa.nulls(len(inputs), pa.timestamp("us")),
            }
        )

    def tables(self, root: Path) -> list[db.BaseTable]:
        tables = []
        defs = base_tables()
        for name, info in self.manifest["tables"].items():
            if name in MARTS:  # a materialised view, frozen with the tables it was made from
                tables.append(mart_table(root / info["path"], name, info.get("description", "")))
                continue
            cv = read_version(root / info["path"])
            cv.check_files(name)  # views read a glob: a file gone would drop its rows unsaid
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

    def models(self) -> list[db.Model]:
        return [db.model_from_text(m["path"], m["text"]) for m in self.manifest["sql"]["models"]]

    def assertion_texts(self) -> dict[str, str] | None:
        return {m["path"]: m["text"] for m in self.manifest["sql"].get("assertions", [])}

    def refuse_writes(self) -> ReleaseError:
        return ReleaseError(f"release {self.name} is immutable; write to the live warehouse.")


class FrozenWarehouse(Warehouse):
    """A release opened for reading: a :class:`Warehouse` opened read-only on the release's
    :class:`ReleaseSource` (``base`` resolves the manifest's relative paths: the warehouse root,
    or a packed copy). It overrides nothing: its readers are the live warehouse's; the state
    they read, the absent lock and the refused writes all come from the source. The class only
    names the release (``manifest``, ``release_dir``, ``name``)."""

    def __init__(self, base: Path, manifest: dict, release_dir: Path):
        config = parse_config(manifest["config_toml"], "release configuration")
        super().__init__(Path(base), config, source=ReleaseSource(manifest, release_dir))
        self.manifest = manifest
        self.release_dir = release_dir
        self.name = manifest["name"]


def releases_dir(root: Path) -> Path:
    return Layout(Path(root)).releases


def read_manifest(release_dir: Path) -> dict:
    path = Path(release_dir) / MANIFEST
    if not path.exists():
        raise ReleaseError(f"{path} is missing: {release_dir} is not a release.")
    return parse_manifest(path.read_text(encoding="utf-8"), path)


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
        try:
            data = read_manifest(m.parent)
            row = {
                "name": data["name"],
                "created_utc": data["created_utc"],
                "notes": data.get("notes", ""),
                "splits": data["counts"].get("splits", {}),
            }
        except (ReleaseError, KeyError, TypeError, AttributeError):
            # one damaged release must not hide the others: list it as such
            name = m.parent.name
            row = {
                "name": name,
                "created_utc": "",
                "splits": {},
                "notes": f"damaged: {MANIFEST} cannot be read (gwh release verify {name})",
            }
        out.append(row)
    return sorted(out, key=lambda r: r["created_utc"])


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
    shown = {
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
    return shown | {k: m[k] for k in ("subsets", "leakage") if k in m}  # older ones have none
