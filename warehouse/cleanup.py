"""The clean-up of what superseded versions and killed writers leave, and the ``current`` link.

Old versions go only when no reader may still be reading them (:func:`collect_garbage`); what a
killed writer left (temporary folders, files and links no reader ever used) goes when the next
writer starts (:func:`remove_orphans`). Versions a release holds are never removed.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse import bookkeeping, locks
from warehouse.errors import LoadError, ReleaseError
from warehouse.files import DB_NAME
from warehouse.manifest_file import parse_manifest

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "collect_garbage",
    "committed_registry",
    "point_current",
    "protected_versions",
    "remove_orphans",
]


def committed_registry(wh: Warehouse) -> bookkeeping.Registry:
    """The committed versions, as writers see them (:mod:`warehouse.bookkeeping`)."""
    return bookkeeping.committed(wh.db_path).registry


def point_current(final: Path) -> None:
    """``catalogs/<table>/current`` → the current version, for lsdb and people.

    A ``current`` that is a folder, not a link, is a copy made by a tool that followed the link
    (``cp -rL``, ``shutil.copytree``): the version folder it copied is still there, so the copy
    is removed and the link put back."""
    link = final.parent / "current"
    if link.is_dir() and not link.is_symlink():
        if not final.is_dir():
            raise LoadError(
                f"{link} is a folder, not a link, and the version it should name ({final}) is "
                "missing: restore the warehouse from a copy that kept its links (cp -a)."
            )
        moved = final.parent / f".trash-{uuid.uuid4().hex}"
        os.rename(link, moved)
        shutil.rmtree(moved, ignore_errors=True)
    tmp = final.parent / f".current-{uuid.uuid4().hex}"
    os.symlink(final.name, tmp)
    os.replace(tmp, link)


def protected_versions(wh: Warehouse) -> set[Path]:
    """Version folders a release still holds (never removed)."""
    keep: set[Path] = set()
    releases = wh.layout.releases
    for manifest in releases.glob("*/manifest.json") if releases.exists() else []:
        try:
            data = parse_manifest(manifest.read_text(encoding="utf-8"), manifest)
        except (ReleaseError, OSError, UnicodeDecodeError):  # what it holds is unknown: keep all
            return {v.resolve() for v in wh.catalogs_dir.glob("*/v*")}
        keep |= {(wh.root / t["path"]).resolve() for t in data["tables"].values()}
    return keep


def collect_garbage(wh: Warehouse) -> None:
    """Remove table versions neither current nor held by a release, when no reader may be
    reading them: only if the readers' lock is free right now, else they wait for the next
    writer. A reader never finds a version gone under it, and a writer never waits."""
    if not wh.catalogs_dir.exists():
        return
    root = wh.root.resolve()
    current = {(root / p).resolve() for _v, p in committed_registry(wh).values()}
    keep = current | wh.protected_versions()
    stale = [
        child
        for table_dir in sorted(wh.catalogs_dir.iterdir())
        if table_dir.is_dir()
        for child in sorted(table_dir.glob("v*"))
        if child.is_dir() and child.resolve() not in keep
    ]
    if not stale:
        return
    trash = []
    with locks.no_readers(wh.root) as free:
        if not free:
            return
        for old in stale:  # renames only, while readers wait: milliseconds
            moved = old.parent / f".trash-{uuid.uuid4().hex}"
            os.rename(old, moved)
            trash.append(moved)
    for moved in trash:
        shutil.rmtree(moved, ignore_errors=True)


def remove_orphans(wh: Warehouse) -> None:
    """What killed writers left: temporary folders, files and links no reader ever used."""
    for leftover in wh.root.glob(f".{DB_NAME}.tmp-*"):
        leftover.unlink(missing_ok=True)
    if not wh.catalogs_dir.exists():
        return
    registry = committed_registry(wh)
    for table_dir in wh.catalogs_dir.iterdir():
        if not table_dir.is_dir():
            continue
        for child in table_dir.iterdir():
            if child.name.startswith((".tmp-", ".trash-", ".current-")):
                shutil.rmtree(child, ignore_errors=True) if child.is_dir() else child.unlink()
        if table_dir.name in registry:
            point_current(wh.root / registry[table_dir.name][1])
