"""Where a warehouse is: what a folder a user named holds, and the one line that says so when it
is not the warehouse they meant (``--root`` next to one, a packed release, a folder inside one).

>>> is_warehouse(Path("no/such/folder"))
False
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from warehouse.files import CONFIG_NAME, DB_NAME, PACK_MANIFEST

__all__ = [
    "is_pack",
    "is_warehouse",
    "new_warehouse_refusal",
    "not_a_warehouse",
    "settings_only",
    "warehouse_near",
]


def is_warehouse(path: Path) -> bool:
    """Whether ``path`` is a warehouse folder (it holds ``warehouse.toml`` and
    ``warehouse.duckdb``)."""
    return (path / CONFIG_NAME).is_file() and (path / DB_NAME).is_file()


def is_pack(path: Path) -> bool:
    """Whether ``path`` is a packed release (``gwh release pack``: read with ``--release``)."""
    return (path / PACK_MANIFEST).is_file()


DEMO_FOLDER = "gwh-demo"
"""Where ``gwh demo`` makes its warehouse by default (``gwh-demo/warehouse``)."""


def warehouse_near(path: Path) -> Path | None:
    """The warehouse (or packed release) a user who named ``path`` most likely meant, when
    ``path`` is not one: the folder of a ``warehouse.duckdb``/``warehouse.toml`` named, one
    inside ``path`` (``warehouse/`` first: ``gwh demo``'s folder), one holding ``path``, or,
    for a ``path`` that does not exist, the demo's beside it.
    None: no such folder."""
    absolute = path.expanduser().absolute()
    try:
        inside = sorted(absolute.iterdir()) if absolute.is_dir() else []
    except OSError:  # a folder we may not list
        inside = []
    candidates = [absolute / "warehouse", *(p for p in inside if p.is_dir()), *absolute.parents]
    if absolute.name in (DB_NAME, CONFIG_NAME):
        candidates.insert(0, absolute.parent)
    if not absolute.exists():  # ./warehouse, the default, beside the demo's
        candidates.append(absolute.parent / DEMO_FOLDER / "warehouse")
    return next((c for c in candidates if is_warehouse(c) or is_pack(c)), None)


def _shown(path: Path) -> str:
    """``path`` as a user would type it here: relative under the working folder (not when that
    is ``/``: every path is under it), quoted."""
    here = Path.cwd()
    relative = path.is_relative_to(here) and here != Path(here.anchor)
    return shlex.quote(os.path.relpath(path) if relative else str(path))


def _packed(root: Path) -> str:
    return (
        f"{root} is a packed release (gwh release pack), read-only: query it with "
        f'`gwh sql --release {_shown(root)} "select ..."` (export: --release too).'
    )


def settings_only(root: Path) -> bool:
    """Whether ``root`` holds a ``warehouse.toml`` and nothing loaded yet (no
    ``warehouse.duckdb``, no table under ``catalogs/``): settings written before ``gwh init``."""
    catalogs = root / "catalogs"
    return (
        (root / CONFIG_NAME).is_file()
        and not (root / DB_NAME).exists()
        and not (catalogs.is_dir() and any(catalogs.iterdir()))
    )


def not_a_warehouse(root: Path) -> str:
    """Why ``root`` cannot be opened, and what to type instead."""
    if is_pack(root):
        return _packed(root)
    if settings_only(root):
        return (
            f"{root} holds a {CONFIG_NAME} but no {DB_NAME}: run `gwh init "
            f"{shlex.quote(str(root))}` to make the warehouse with these settings."
        )
    if (root / CONFIG_NAME).is_file() and not (root / DB_NAME).exists():
        return (
            f"{root} has tables under catalogs/ but no {DB_NAME}, which records which of their "
            "versions are committed and which files were loaded: restore it from a backup."
        )
    if (root / DB_NAME).is_file() and not (root / CONFIG_NAME).exists():
        return (
            f"{root} has its {DB_NAME} but no {CONFIG_NAME}, its settings (splits, quality "
            "cuts, partitions): put it back (a backup, or a release manifest's config_toml); "
            f"`gwh init {shlex.quote(str(root))}` would write the defaults instead."
        )
    near = warehouse_near(root)
    if near is not None and is_pack(near):
        return f"{root} is not a warehouse. {_packed(near)}"
    what = "is not a warehouse" if root.exists() else "does not exist"
    if near is not None:
        return (
            f"{root} {what}, but {near} is a warehouse: pass --root {_shown(near)} (or set "
            "GWH_ROOT to it)."
        )
    if (root / "__init__.py").exists():  # ./warehouse, the default, in a checkout of gwh itself
        return (
            f"{root} is a Python package folder, not a warehouse: pass --root to one (gwh demo "
            f"makes {DEMO_FOLDER}/warehouse) or set GWH_ROOT."
        )
    return (
        f"{root} is not a warehouse (no {CONFIG_NAME} and {DB_NAME}). "
        f"Run `gwh init {shlex.quote(str(root))}` first, or pass --root / set GWH_ROOT "
        "to an existing one."
    )


def new_warehouse_refusal(root: Path) -> str | None:
    """Why ``gwh init`` must not make a warehouse at ``root`` (None: it may): it is one already,
    a packed release, inside or holding one (a second, empty warehouse there would be found
    instead of the real one), or a Python package."""
    if is_pack(root):
        return _packed(root)
    if (root / CONFIG_NAME).exists() and not settings_only(root):
        return f"{root} is already a warehouse. Use it as it is, or choose another ROOT."
    near = warehouse_near(root)
    if near is not None and near.absolute() != root.absolute():
        what = "packed release" if is_pack(near) else "warehouse"
        where = "is inside" if near in root.absolute().parents else "holds"
        return f"{root} {where} the {what} {near}; give a folder outside it for a new warehouse."
    if (root / "__init__.py").exists():
        return (
            f"{root} is a Python package folder, not a place for a warehouse. "
            "Give another ROOT (e.g. gwh init ./data/warehouse) or set GWH_ROOT."
        )
    return None
