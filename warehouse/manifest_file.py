"""A release's ``manifest.json`` read and checked, without the release package (the version
clean-up reads it too, to never remove a version a release holds).

>>> try:
...     parse_manifest('{"name": "v1"}', Path("v1/manifest.json"))
... except ReleaseError as exc:
...     print(str(exc).split(": ")[0])
v1/manifest.json lacks its config_toml (a str)
"""

from __future__ import annotations

import json
from pathlib import Path

from warehouse.errors import ReleaseError

__all__ = ["parse_manifest"]

_FIELDS = {"name": str, "config_toml": str, "config_sha256": str, "tables": dict, "sql": dict}
"""What every reader of a manifest indexes, and its JSON type."""


def parse_manifest(text: str, path: Path) -> dict:
    """The manifest ``text`` of the file ``path``, or the one line saying how it is damaged."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReleaseError(f"{path} is not valid JSON ({exc}): the release is damaged.") from None
    if not isinstance(data, dict):
        _damaged(path, "holds no JSON object")
    for key, kind in _FIELDS.items():
        if not isinstance(data.get(key), kind):
            _damaged(path, f"lacks its {key} (a {kind.__name__})")
    for table, info in data["tables"].items():
        if not (isinstance(info, dict) and isinstance(info.get("path"), str)):
            _damaged(path, f"names no folder for table {table}")
        if not isinstance(info.get("files"), list):
            _damaged(path, f"lists no files for table {table}")
    if not isinstance(data["sql"].get("models"), list):
        _damaged(path, "lists no SQL models")
    return data


def _damaged(path: Path, how: str) -> None:
    raise ReleaseError(
        f"{path} {how}: the release is damaged. Restore the release folder from a backup or a "
        "pack (gwh release pack)."
    )
