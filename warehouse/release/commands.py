"""What ``gwh release ...`` prints: the release functions of this package, each with its report
(the commands themselves are declared in :mod:`warehouse.commands`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.errors import ReleaseError
from warehouse.release.audit import diff, diff_lines, verify_target
from warehouse.release.frozen import FrozenWarehouse, describe, list_releases
from warehouse.release.manifest import create_release
from warehouse.release.packing import pack

if TYPE_CHECKING:
    from warehouse.core import Warehouse

Echo = Callable[[str], None]


def create_command(wh: Warehouse, *, name: str, notes: str = "", echo: Echo) -> None:
    path = create_release(wh, name, notes, echo=echo)
    echo(f"created release {name}: {path / 'manifest.json'}")


def list_command(wh: Warehouse, *, echo: Echo) -> None:
    rows = list_releases(wh.root)
    if not rows:
        echo("no releases yet (gwh release create NAME)")
    for r in rows:
        splits = ", ".join(f"{k} {v:,}" for k, v in r["splits"].items())
        echo(f"{r['name']:<16} {r['created_utc']}  {splits}  {r['notes']}")


def show_command(release: FrozenWarehouse, *, name: str, echo: Echo) -> None:
    """``name`` is the release ``release`` was opened from (see ``opens="target"``)."""
    echo(json.dumps(describe(release), indent=2))


def verify_command(root: Path, *, target: str, echo: Echo, warn: Echo) -> None:
    where, problems = verify_target(root, target)
    for p in problems:
        warn(f"MISMATCH {p.path}: {p.problem}")
    if problems:
        raise ReleaseError(f"release {target} does not verify ({len(problems)} problem(s))")
    echo(f"release {target} verifies: every file matches its SHA-256 ({where})")


def diff_command(wh: Warehouse, *, a: str, b: str, as_json: bool = False, echo: Echo) -> None:
    d = diff(wh.root, a, b)
    echo(json.dumps(d, indent=2) if as_json else "\n".join(diff_lines(d)))


def pack_command(wh: Warehouse, *, name: str, dest: Path, echo: Echo) -> None:
    path = pack(wh.root, name, dest, echo=echo)
    verify = f"gwh release verify {shlex.quote(str(path))}"
    echo(f"packed release {name} at {path}; check it with: {verify}")
