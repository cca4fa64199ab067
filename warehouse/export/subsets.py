"""Stable subsets: ``--limit N`` keeps, in each split, the N objects that come first in the
split hash order; ``--subset tiny|small|medium`` is a named limit (:data:`SUBSETS`).

The order is ``split_unit(salt, 'object:' || object_id)`` (the number ``ml_objects`` draws the
split from in ``object`` mode; sql/macros/split_unit.sql), then ``object_id``. It is a pure
function of the salt and the id, so:

* a ``--limit 1000`` export is contained in the ``--limit 10000`` one (the first 1,000 of one
  fixed order are among its first 10,000), and ``tiny`` in ``small`` in ``medium``;
* a rebuild of the same warehouse (or a release) selects the same objects; loading new objects
  can only let a new object in where its hash comes first, never reshuffle the others.

Example
-------
>>> limited_query("SELECT * FROM ml_objects WHERE split = ?", ["train"], "gwh-v1", 1000)[1]
['train', 'gwh-v1', 1000]
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from warehouse.config import SPLIT_NAMES
from warehouse.errors import ExportError
from warehouse.files import sha256_hex

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "SUBSETS",
    "SUBSET_ORDER",
    "ids_sha256",
    "limited_query",
    "subset_limit",
    "subset_record",
]

SUBSETS = {"tiny": 1_000, "small": 10_000, "medium": 100_000}  # objects per split
SUBSET_ORDER = "split_unit(salt, 'object:' || object_id), object_id"


def subset_limit(name: str) -> int:
    """The per-split limit of the named subset.

    >>> subset_limit("small")
    10000
    """
    if name not in SUBSETS:
        known = ", ".join(f"{k} ({v:,})" for k, v in SUBSETS.items())
        raise ExportError(f"--subset must be one of {known}, got {name!r}")
    return SUBSETS[name]


def limited_query(base: str, params: list, salt: str, limit: int) -> tuple[str, list]:
    """``base`` (one split's rows) cut to its first ``limit`` objects in the split hash order."""
    sql = (
        f"SELECT * FROM (\n{base}\n) AS q\n"
        "ORDER BY split_unit(?, 'object:' || q.object_id::VARCHAR), q.object_id\nLIMIT ?"
    )
    return sql, [*params, salt, int(limit)]


def ids_sha256(ids: list[int]) -> str:
    """SHA-256 of a set of object_ids: their decimal text, sorted, one per line."""
    return sha256_hex("\n".join(str(i) for i in sorted(int(x) for x in ids)))


def subset_record(wh: Warehouse) -> dict:
    """What each named subset of ``wh``'s ``ml_objects`` holds: per split its rows and the
    :func:`ids_sha256` of its object_ids (a release manifest's ``subsets``)."""
    salt = wh.config.splits.salt
    first: dict[str, list[int]] = {}
    for s in SPLIT_NAMES:
        sql, params = limited_query(
            "SELECT object_id FROM ml_objects WHERE split = ?", [s], salt, max(SUBSETS.values())
        )
        first[s] = wh.query(sql, params).column("object_id").to_pylist()
    return {
        name: {
            "limit": limit,
            "order": f"{SUBSET_ORDER} (salt {salt!r})",
            "splits": {
                s: {"rows": len(ids[:limit]), "object_ids_sha256": ids_sha256(ids[:limit])}
                for s, ids in first.items()
            },
        }
        for name, limit in SUBSETS.items()
    }
