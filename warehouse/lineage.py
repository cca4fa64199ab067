"""Where a view's columns come from: its base tables, their units, and whether they are simulated.

A view's SQL (``sql/``) names the tables and views it reads; following those names down to the
base tables gives the tables whose Arrow field metadata describe its columns. Views keep column
names (``ml_objects`` selects ``hsc_forced.*``), so a column of a view takes the unit of the
base-table column of the same name, when the base tables agree on it.

Examples
--------
>>> sorted(base_sources("ml_objects"))  # doctest: +SKIP
['hsc_forced', 'hsc_specz', 'morphology']
>>> column_units(wh, "ml_objects")["g_cmodel_mag"]  # doctest: +SKIP
'mag'
>>> simulated_sources(wh, "ml_objects")  # doctest: +SKIP
['hsc_forced: simulated_pdr2_wide_forced.fits', ...]
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

from warehouse.db import load_models, quote_ident
from warehouse.errors import QueryError
from warehouse.store.contracts import base_tables
from warehouse.store.hsc_columns import unit_of

__all__ = [
    "base_sources",
    "column_units",
    "is_simulated_file",
    "one_unit",
    "simulated_sources",
    "tables_named",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SIMULATED_PREFIX = "simulated"
"""File names the simulators write (``simulated_pdr2_wide_forced.fits``) start with this."""


@cache
def _model_words() -> dict[str, frozenset[str]]:
    return {m.name: frozenset(_IDENT.findall(m.text)) for m in load_models()}


def base_sources(name: str) -> tuple[str, ...]:
    """The base tables a table or view reads, in registry order (a base table: itself).

    Unknown names give ``()``: a plot of an ad-hoc name then simply has no units.
    """
    bases = list(base_tables())
    models = _model_words()
    seen: set[str] = set()
    todo = [name]
    found: set[str] = set()
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in bases:
            found.add(current)
            continue
        for word in models.get(current, ()):
            if word in bases or (word in models and word != current):
                todo.append(word)
    return tuple(b for b in bases if b in found)


def tables_named(sql: str) -> tuple[str, ...]:
    """The base tables behind the tables and views a SQL text names (in registry order)."""
    words = set(_IDENT.findall(sql))
    names = (set(base_tables()) | set(_model_words())) & words
    found = {b for name in names for b in base_sources(name)}
    return tuple(b for b in base_tables() if b in found)


def _hsc_archive_unit(column: str) -> str:
    # The HSC tables were stored without field metadata before units were written there;
    # the archive schema shipped with the loader knows them.
    return unit_of(column)


def column_units(wh, table: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """``{column (lower case): unit}`` of a table or view.

    Units come from each base table's stored field metadata (``unit``), else the HSC-SSP archive
    schema for the HSC tables; ra/dec are degrees. A view's column takes the unit of the base
    column of the same name; a name whose base tables disagree gets no unit (``deg`` and
    ``degree`` agree).
    """
    defs = base_tables()
    seen: dict[str, set[str]] = {}
    for base in base_sources(table):
        spec = defs[base].spec
        units = {spec.ra.lower(): "deg", spec.dec.lower(): "deg"}
        cv = wh.current_version(base)
        for f in cv.schema if cv is not None else ():
            raw = (f.metadata or {}).get(b"unit")
            unit = raw.decode() if raw else ""
            if not unit and base in ("hsc_forced", "hsc_specz"):
                unit = _hsc_archive_unit(f.name)
            if unit:
                units[f.name.lower()] = unit
        for name, unit in units.items():
            seen.setdefault(name, set()).add(unit)
    return {name: next(iter(units)) for name, units in seen.items() if one_unit(units)}


def one_unit(units: set[str]) -> bool:
    """Whether spellings name one unit (``deg`` and ``degree`` do; ``mag`` and ``nJy`` do not)."""
    if len(units) <= 1:
        return True
    import warnings

    from astropy import units as u

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", u.UnitsWarning)
        parsed = {u.Unit(text, parse_strict="silent") for text in units}
    return len(parsed) == 1 and not isinstance(next(iter(parsed)), u.UnrecognizedUnit)


def is_simulated_file(path: str | Path) -> bool:
    """Whether an input file says it is simulated: its name starts with ``simulated``, or it is a
    FITS file with ``SIMULATE``/``SIMULATED`` true in a header, or a text file whose first line
    says SIMULATED (as :mod:`loaders.simulated.catalog` writes them)."""
    path = Path(path)
    if path.name.lower().startswith(SIMULATED_PREFIX):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(2880 * 2)
    except OSError:
        return False
    if head.startswith(b"SIMPLE  ="):
        cards = [head[k : k + 80] for k in range(0, len(head), 80)]
        return any(
            c[:8].strip() in (b"SIMULATE", b"SIMULATED") and c[10:31].strip() == b"T" for c in cards
        )
    first = head.split(b"\n", 1)[0]
    return first.startswith(b"#") and b"SIMULATED" in first


def simulated_sources(wh, table: str) -> list[str]:  # type: ignore[no-untyped-def]
    """The simulated inputs behind a table or view, as ``'<table>: <file name>'``.

    A base table is simulated where any file loaded into it is (:func:`is_simulated_file`); an
    image table where any row has ``simulated`` true. Empty when all of it is real.
    """
    bases = base_sources(table)
    if not bases:
        return []
    with wh.reading() as snapshot:  # the loads the snapshot holds: no query to run
        held = snapshot.bookkeeping.get("gwh_loads")
    loads = set()
    if held is not None:
        loads = set(zip(held["table_name"].to_pylist(), held["file"].to_pylist(), strict=True))
    out = [f"{t}: {Path(f).name}" for t, f in sorted(loads) if t in bases and is_simulated_file(f)]
    named = {r.split(":")[0] for r in out}
    for base in bases:
        if base in named or wh.current_version(base) is None:
            continue
        cv = wh.current_version(base)
        if "simulated" in cv.schema.names:
            try:
                n = wh.query(
                    f"SELECT count(*) AS n FROM {quote_ident(base)} WHERE simulated"
                ).column(0)[0]
            except QueryError:
                continue
            if n.as_py():
                out.append(f"{base}: {n.as_py():,} simulated row(s)")
    return out
