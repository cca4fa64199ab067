"""The fingerprint of a view's inputs: what a materialised copy of it was computed from.

It hashes everything the view's rows depend on, and nothing else, so that a load of an
unrelated table (cutouts, labels) keeps the copy valid:

* the SQL of the view and of every view and macro it reads, directly or through others
  (as rendered for the configured bands);
* the version folder (``v<NNNNNN>``, immutable) of every base table it reads, or how the
  placeholder of a table never loaded looks;
* the settings of ``warehouse.toml`` the views read (``gwh_settings``, ``gwh_bands``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.store.contracts import base_tables

if TYPE_CHECKING:
    from warehouse import db
    from warehouse.config import Config

MARTS = ("ml_objects",)
"""The views a load materialises."""

VIEW_COLUMNS = {
    "specz_match_distance_arcsec": {
        "unit": "arcsec",
        "description": "distance from the HSC object to the spec-z position it was matched to",
    },
}
"""Unit and description of the columns ml_objects computes (every other column keeps those of
the base column it comes from)."""

MART_FILE = "mart.json"
"""Beside a mart version's catalog: the fingerprint it was computed from, and its inputs."""

FORMAT = 1
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_VERSION = re.compile(r"[/\\](v\d{6})(?=[/\\])")


def dependencies(view: str, sql_of: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """Every name of ``names`` (models and base tables) that ``view`` reads, directly or through
    the models it reads (``sql_of``: model name → SQL), sorted."""
    known = set(names) | set(sql_of)
    seen: set[str] = set()
    todo = [view]
    while todo:
        name = todo.pop()
        for word in set(_WORD.findall(sql_of.get(name, ""))) & known:
            if word not in seen and word != view:
                seen.add(word)
                todo.append(word)
    return sorted(seen)


def version_id(table: db.BaseTable) -> str:
    """A base table's identity for the fingerprint: its version folder, or its placeholder."""
    if table.glob is None:  # the placeholder view db.build makes (a release names none)
        registered = base_tables().get(table.name)
        empty = table.empty_columns
        if empty is None:
            empty = registered.empty_columns if registered is not None else ()
        return "absent:" + json.dumps(list(empty))
    found = _VERSION.findall(table.glob)
    ident = found[-1] if found else table.glob
    return ident + (":hidden=" + ",".join(table.hidden) if table.hidden else "")


def settings(config: Config) -> dict[str, object]:
    """The settings of ``warehouse.toml`` the views read: the whole ``[splits]`` section (what
    ``gwh_settings`` holds, so a split setting added later is covered too) and the bands."""
    return {**dataclasses.asdict(config.splits), "bands": list(config.bands)}


def fingerprint(
    view: str,
    config: Config,
    tables: Sequence[db.BaseTable],
    models: Sequence[db.Model],
) -> str:
    """The SHA-256 of ``view``'s inputs (see the module doc). Materialised copies among
    ``tables`` (named like a model) are not inputs."""
    sql_of = {m.name: m.render(config.bands) for m in models}
    bases = {t.name: t for t in tables if t.name not in sql_of}
    deps = dependencies(view, sql_of, bases)
    record = {
        "format": FORMAT,
        "view": view,
        "sql": {n: sql_of[n] for n in [view, *deps] if n in sql_of},
        "tables": {n: version_id(bases[n]) for n in deps if n in bases},
        "settings": settings(config),
    }
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def recorded(version_dir: Path) -> dict:
    """The record written beside a mart version ({} when absent or unreadable: never used)."""
    try:
        data = json.loads((Path(version_dir) / MART_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
