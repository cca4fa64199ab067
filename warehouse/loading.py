"""The one load path's vocabulary: what a loader returns and what a commit reports.

A loader turns one input file into :class:`Prepared` tables, each destined for a warehouse table
described by a :class:`~warehouse.store.TableSpec`; it never writes. :meth:`Warehouse.load
<warehouse.core.Warehouse.load>` stores what it returns atomically and records the file in
``gwh_loads``; tables prepared from something other than a file (cutout ingest, morphology
measure) are committed as :class:`PreparedBatch` es by :meth:`Warehouse.ingest_prepared
<warehouse.core.Warehouse.ingest_prepared>`. Both report a :class:`LoadResult` per commit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from warehouse.store import TableSpec

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["LoadResult", "Loader", "Prepared", "PreparedBatch"]


@dataclass(frozen=True)
class Prepared:
    """Rows ready for one warehouse table."""

    spec: TableSpec
    table: pa.Table


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
