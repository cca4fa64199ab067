"""Where an export may write: never into the warehouse, and an hf ``--overwrite`` replaces only
an earlier export's folder.

An export's target is replaced whole (a temporary file or folder renamed over it), so a target
named by mistake would be lost: the warehouse's own files (``warehouse.duckdb``, a partition of
``catalogs/``, a release), the folder holding the warehouse, or a folder holding anything an hf
export does not write. These checks run before anything is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.errors import ExportError

if TYPE_CHECKING:
    from warehouse.core import Warehouse

_HF_ENTRIES = {"README.md", "data"}  # what --format hf writes (hf.py)


def check_file_target(wh: Warehouse, out: Path) -> None:
    """Refuse an HDF5 target inside the warehouse."""
    _outside_warehouse(wh, out)


def check_folder_target(wh: Warehouse, out: Path) -> None:
    """Refuse an hf target inside or around the warehouse, or an existing folder holding
    anything an hf export does not write (``README.md`` and ``data/*.parquet``)."""
    _outside_warehouse(wh, out)
    if not out.is_dir():
        return
    entries = {p.name for p in out.iterdir()}
    data = out / "data"
    foreign = sorted(entries - _HF_ENTRIES)
    if not foreign and data.exists():
        foreign = (
            [f"data/{p.name}" for p in sorted(data.iterdir()) if p.suffix != ".parquet"]
            if data.is_dir()
            else ["data"]
        )
    if foreign:
        raise ExportError(
            f"{out} holds {foreign[0]!r}, which a --format hf export does not write; --overwrite "
            "replaces only an earlier export's folder. Choose another --out-dir."
        )


def _outside_warehouse(wh: Warehouse, out: Path) -> None:
    part = wh.layout.owned_part(out)
    if part == ".":
        raise ExportError(
            f"{out} holds the warehouse {wh.root}; an export would replace it. Choose another "
            "target."
        )
    if part is not None:
        raise ExportError(
            f"{out} {wh.layout.owned_phrase(part)}, which only gwh's writers change; "
            "write the export elsewhere."
        )


def written_meanwhile(out: Path) -> ExportError:
    """The error of an export whose target another export wrote while it ran (both found it
    free at the start): the other's output stays."""
    return ExportError(
        f"{out} was written by another export while this one ran; nothing was replaced. "
        "Use --overwrite to replace it."
    )
