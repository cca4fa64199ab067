"""The one load path's vocabulary: what a loader returns and what a commit reports.

A loader turns one input file into :class:`Prepared` tables, each destined for a warehouse table
described by a :class:`~warehouse.store.TableSpec`; it never writes. :meth:`Warehouse.load
<warehouse.core.Warehouse.load>` stores what it returns atomically and records the file in
``gwh_loads``; tables prepared from something other than a file (cutout ingest, morphology
measure) are committed as :class:`PreparedBatch` es by :meth:`Warehouse.ingest_prepared
<warehouse.core.Warehouse.ingest_prepared>`. Both report a :class:`LoadResult` per commit.
"""

from __future__ import annotations

import os
import shlex
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from warehouse.errors import LoadError
from warehouse.store import TableSpec

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["LoadResult", "Loader", "Prepared", "PreparedBatch", "input_files"]


@dataclass(frozen=True)
class Prepared:
    """Rows ready for one warehouse table. ``part``: one of several parts of a file read in
    chunks (``prepare_chunks`` of a large file): the load starts sorting it at once."""

    spec: TableSpec
    table: pa.Table
    part: bool = False


class Loader(Protocol):
    name: str  # recorded in gwh_loads.loader: a loader's name never changes
    description: str

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        """Validated tables from one file; ``wh`` is the warehouse loading it (for loaders that
        read what it holds, e.g. positions or configured bands)."""
        ...


# Optional, looked up with getattr by Warehouse.load:
#   describe(path, prepared, result) -> str   the line printed for a loaded file
# and, called by `gwh load` after Warehouse.load returns:
#   after_load(wh, echo)                      e.g. galaxy-zoo's position match


@dataclass(frozen=True)
class PreparedBatch:
    """Tables prepared outside a registered loader, committed together as one version."""

    label: str  # names the batch in results and error messages
    prepared: Sequence[Prepared]
    sources: tuple[tuple[str, str, int], ...]  # (file, sha256, rows) recorded in gwh_loads


@dataclass(frozen=True)
class LoadResult:
    file: str
    loader: str
    skipped: bool
    tables: dict[str, tuple[int, int]]  # table -> (rows in file, rows in table after)
    note: str = ""


def input_files(paths: Iterable[str | os.PathLike], loader_name: str) -> list[Path]:
    """The files to load, each checked to exist; a folder is named as one, with the files it
    holds (by suffix) and the command that loads them."""
    files = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            raise LoadError(f"{path} is a folder, not a file; {_folder_hint(path, loader_name)}")
        if path.exists() and not path.is_file():  # a pipe (<(zcat x.gz)), a device
            raise LoadError(
                f"{path} is not a regular file (a pipe or a device?): a load reads its file "
                "twice (its SHA-256, then its rows). Write it to a file first and load that."
            )
        if not path.is_file():
            raise LoadError(f"{path}: no such file. Check the path.")
        files.append(path)
    return files


def _folder_hint(folder: Path, loader_name: str) -> str:
    suffixes = Counter(
        "".join(p.suffixes[-2:]).lower() if p.suffix.lower() == ".gz" else p.suffix.lower()
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".")
    )
    if not suffixes:
        return "it holds no files. Give the export files themselves."
    held = ", ".join(f"{n} {suffix or '(no suffix)'}" for suffix, n in suffixes.most_common(4))
    suffix = suffixes.most_common(1)[0][0]
    return (
        f"it holds {held} file(s). Give the files, e.g. "
        f"gwh load {loader_name} {shlex.quote(str(folder))}/*{suffix}"
    )
