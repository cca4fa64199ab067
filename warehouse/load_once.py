"""Load-once: a file already loaded by a loader (same SHA-256) is not loaded again, nor a file
given twice in one command. :func:`warehouse.commit.load` hashes the files in a thread while it
reads them (:func:`warehouse.files.background_sha256`) and asks :class:`LoadOnce` about each in
order; loaders that commit file by file hash first (:func:`hashed_first`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse import bookkeeping, db, progress
from warehouse.files import file_sha256
from warehouse.loading import LoadResult

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["LoadOnce", "hashed_first", "loaded_at"]


def loaded_at(wh: Warehouse, sha256: str, loader_name: str) -> dt.datetime | None:
    """When a file with this SHA-256 was first loaded by this loader (UTC), or None."""
    with db.connect(wh.db_path) as con:
        row = con.execute(
            "SELECT min(loaded_at) FROM gwh_loads WHERE sha256 = ? AND loader = ?",
            [sha256, loader_name],
        ).fetchone()
    return row[0] if row else None


def hashed_first(
    wh: Warehouse,
    loader_name: str,
    files: list[Path],
    skipped: list[LoadResult],
    echo: Callable[[str], None],
) -> list[tuple[Path, str]]:
    """(path, SHA-256) of the files to load, hashed first; the others reported in ``skipped``."""
    todo = []
    check = LoadOnce(wh, loader_name, skipped, echo)
    for path in files:
        with progress.bar(path.stat().st_size, desc=path.name, unit="B", unit_scale=True) as bar:
            bar.set_postfix_str("checksum")
            sha = file_sha256(path, on_bytes=bar.update)
        if not check.skips(path, sha):
            todo.append((path, sha))
    return todo


class LoadOnce:
    """Load-once: why a file is skipped (loaded before by this loader, or given twice in this
    command: same SHA-256), else None; asked in the order the files are loaded. A skipped file
    is reported (``echo``) and its :class:`LoadResult` appended to ``skipped``."""

    def __init__(
        self,
        wh: Warehouse,
        loader_name: str,
        skipped: list[LoadResult],
        echo: Callable[[str], None] = lambda _msg: None,
    ):
        self.wh, self.loader_name = wh, loader_name
        self.skipped, self.echo = skipped, echo
        self.seen: set[str] = set()
        self.paths: set[Path] = set()
        self._loaded: dict[str, dt.datetime] | None = None

    def skips(self, path: Path, sha: str) -> bool:
        """Whether ``path`` is skipped (:meth:`skip`); if so it is reported and recorded."""
        return self.drop(path, self.skip(path, sha))

    def drop(self, path: Path, why: str | None) -> bool:
        """Report and record ``path`` as skipped for ``why`` (nothing if ``why`` is None)."""
        if why:
            self.echo(f"{path}: {why}; nothing to do.")
            self.skipped.append(LoadResult(str(path), self.loader_name, True, {}))
        return bool(why)

    def skip(self, path: Path, sha: str) -> str | None:
        if self._loaded is None:  # one look for every file (the writer lock is held)
            self._loaded = bookkeeping.committed(self.wh.db_path).loaded_by(self.loader_name)
        when = self._loaded.get(sha)
        if when is not None:
            return f"already loaded ({when:%Y-%m-%d %H:%M} UTC)"
        if sha in self.seen:
            return "given twice"
        self.seen.add(sha)
        self.paths.add(path.resolve())
        return None
