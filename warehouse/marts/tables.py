"""A committed mart version as the readers see it: a :class:`~warehouse.db.BaseTable` named like
its view, carrying the fingerprint it was computed from (:func:`warehouse.db.build` decides
whether the view reads it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from warehouse import db
from warehouse.errors import DamagedFileError
from warehouse.marts.key import MARTS, recorded
from warehouse.store import read_version


def mart_table(version_dir: Path, name: str, description: str = "") -> db.BaseTable:
    """The mart version at ``version_dir`` (absolute) for the readers' views. A copy missing a
    partition file (deleted outside gwh) or holding one cut short carries no fingerprint, so no
    view reads it: its view is the SQL view again, exact, and ``gwh materialise`` makes the copy
    anew (read, a missing file dropped its rows from ``ml_objects`` without a word, and a file
    cut short failed every query of it while ``materialise`` found the copy current)."""
    cv = read_version(version_dir)
    try:
        cv.check_whole(name)
        fingerprint = str(recorded(version_dir).get("fingerprint") or "") or None
    except DamagedFileError:
        fingerprint = None
    return db.BaseTable(
        name,
        description or f"{name}, materialised",
        cv.glob,
        tuple(cv.schema.names),
        "",
        mart=fingerprint,
    )


def mart_tables(root: Path, registry: Mapping[str, tuple[int, str]]) -> list[db.BaseTable]:
    """The committed mart versions of a registry (name → (version, path under ``root``))."""
    return [mart_table(Path(root) / registry[n][1], n) for n in MARTS if n in registry]
