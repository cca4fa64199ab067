"""A release as a standalone folder (``gwh release pack``): manifest, frozen catalogs, SQL,
configuration and the HDF5 splits exported from it, each file hashed in ``pack.json``."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

from warehouse.errors import ReleaseError
from warehouse.export import export_release_splits
from warehouse.files import PACK_MANIFEST, Layout, missing_parent, publish_folder, room_in
from warehouse.files import file_sha256 as sha256_file
from warehouse.release.audit import verify
from warehouse.release.frozen import MANIFEST, FrozenWarehouse, open_pack, open_release


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
    if dest.exists() and not dest.is_dir():
        raise ReleaseError(f"{dest} is a file; give a new folder for the pack.")
    if dest.exists() and any(dest.iterdir()):
        raise ReleaseError(f"{dest} exists and is not empty; give a new folder for the pack.")
    part = Layout(Path(root)).owned_part(dest)
    if part is not None:
        raise ReleaseError(
            f"{dest} {Layout.owned_phrase(part)}, which only gwh's writers change: "
            "give a folder outside it for the pack."
        )
    if (dest.parent.resolve() / dest.name).is_relative_to(Path(root).resolve()):
        raise ReleaseError(
            f"{dest} is inside the warehouse {root}: a pack is a standalone copy of the release "
            "to move or share; give a folder outside the warehouse."
        )
    missing = missing_parent(dest, "pack")
    if missing is not None:
        raise ReleaseError(missing)
    problems = verify(Path(root), frozen.release_dir)
    if problems:
        raise ReleaseError(
            f"release {name} does not verify ({problems[0].path}: "
            f"{problems[0].problem}); refusing to pack it."
        )
    tmp = dest.parent / f".{dest.name}.tmp-{uuid.uuid4().hex}"
    try:
        tmp.mkdir()
    except OSError as exc:
        raise ReleaseError(f"cannot write the pack in {dest.parent}: {exc.strerror}.") from None
    try:
        with room_in(dest.parent):  # out of room: one line naming the folder
            _fill(frozen, Path(root), tmp, name, with_splits, echo)
        if not publish_folder(tmp, dest):
            raise ReleaseError(
                f"{dest} was filled by another pack while this one ran; nothing was replaced. "
                "Give a new folder for the pack."
            )
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _fill(
    frozen: FrozenWarehouse,
    root: Path,
    tmp: Path,
    name: str,
    with_splits: bool,
    echo: Callable[[str], None],
) -> None:
    """Write the pack's files into ``tmp``: manifest, tables, configuration, SQL, the splits,
    a README and ``pack.json`` listing each with its SHA-256."""
    shutil.copy2(frozen.release_dir / MANIFEST, tmp / MANIFEST)
    shutil.copy2(frozen.release_dir / (MANIFEST + ".sha256"), tmp / (MANIFEST + ".sha256"))
    for tname, info in frozen.manifest["tables"].items():
        echo(f"copying {tname}")
        shutil.copytree(root / info["path"], tmp / info["path"])
    (tmp / "warehouse.toml").write_text(frozen.manifest["config_toml"], encoding="utf-8")
    for m in frozen.manifest["sql"]["models"] + frozen.manifest["sql"].get("assertions", []):
        p = tmp / "sql" / m["path"]
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(m["text"], encoding="utf-8")
    extra: list[Path] = [tmp / "warehouse.toml"] + sorted((tmp / "sql").rglob("*.sql"))
    if with_splits:
        echo("exporting the HDF5 splits")
        extra += export_release_splits(open_pack(tmp), tmp / "splits")
    (tmp / "README.txt").write_text(_pack_readme(frozen.manifest), encoding="utf-8")
    extra.append(tmp / "README.txt")
    files = [{"path": str(p.relative_to(tmp)), "sha256": sha256_file(p)} for p in extra]
    (tmp / PACK_MANIFEST).write_text(
        json.dumps({"release": name, "files": files}, indent=2) + "\n", encoding="utf-8"
    )


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
