"""Why a view cannot be built, in words that say what to do: a table it reads was never loaded,
or a quality rule needs per-band columns the loaded tables lack (:func:`why_unavailable`)."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warehouse.db import Model

__all__ = ["why_unavailable"]


def why_unavailable(
    sql: str,
    model: Model,
    known: set[str],
    unavailable: dict[str, str],
    columns_of: dict[str, set[str]],
    bands: tuple[str, ...],
) -> str | None:
    """Why ``model`` (its rendered ``sql``) cannot be built, or None: a model it reads is
    ``unavailable`` (that reason), or, for a per-band template, columns its tables
    (``columns_of``) lack: a band ``[warehouse] bands`` lists that no column has (the setting
    is wrong), else columns never loaded (load them)."""
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", sql))
    for dep in sorted(words & (known - {model.name})):
        if dep in unavailable:
            return unavailable[dep]  # the root cause names what to load
    if model.template:
        band_cols = {w for w in words if any(w.startswith(f"{b}_") for b in bands)}
        sources = list(words & set(columns_of))
        have = set().union(*(columns_of[t] for t in sources)) if sources else set()
        missing = sorted(
            band_cols - have, key=lambda c: (c.split("_", 1)[1], bands.index(c.split("_", 1)[0]))
        )
        absent = [b for b in bands if have and not any(c.startswith(f"{b}_") for c in have)]
        if missing and absent:  # not a column never loaded: a band the tables do not have
            return (
                f"{model.name} needs band(s) {', '.join(absent)}, which [warehouse] bands in "
                f"warehouse.toml lists but {', '.join(sorted(sources))} hold(s) no column of "
                f"(e.g. {missing[0]}). Fix the bands there, or load an export with those bands."
            )
        if missing:
            return (
                f"{model.name} needs columns {', '.join(missing)} of {', '.join(sorted(sources))}, "
                "which were never loaded. Load an export that has them (the quality rules use "
                "pdr2_wide.forced flags and forced2's sdsscentroid_flag: gwh load hsc-forced FILE)."
            )
    return None
