"""MAST Mashup answers for the Hubble Source Catalog: the sky region asked for (a name MAST
resolves or 'RA DEC', a box or a cone) and the JSON answer turned into Arrow with the catalog's
units. The Mashup cone has no constraints of its own, so a box is asked for as the cone around
it and cut here.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from loaders.http.astroquery import mast_base_url, mast_catalogs, with_retries
from loaders.http.session import RetryPolicy
from warehouse.errors import ArchiveError, QueryError

if TYPE_CHECKING:
    pass


# Columns that describe the query, not the source: not stored.
QUERY_COLUMNS = ("_selected_", "Distance")
_MASHUP_TYPES = {
    "int": pa.int64(),
    "long": pa.int64(),
    "short": pa.int64(),
    "float": pa.float64(),
    "double": pa.float64(),
    "decimal": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
    "char": pa.string(),
    "date": pa.string(),
    "datetime": pa.string(),
}
_FILTER_MAG = re.compile(r"^[A-Z][A-Z0-9]*_F\d+[A-Z]*\d*$")
_UNITS = {
    "MatchRA": "deg",
    "MatchDec": "deg",
    "DSigma": "mas",
    "StartMJD": "d",
    "StopMJD": "d",
    "CI": "mag",
    "CI_Sigma": "mag",
    "KronRadius": "arcsec",
    "KronRadius_Sigma": "arcsec",
    "Extinction": "mag",
}


def unit_of(name: str) -> str:
    """Unit of a Hubble Source Catalog column ('' when dimensionless or unknown).

    >>> unit_of("A_F814W"), unit_of("A_F814W_Sigma"), unit_of("A_F814W_N")
    ('mag', 'mag', '')
    """
    if name in _UNITS:
        return _UNITS[name]
    base = name[: -len("_Sigma")] if name.endswith("_Sigma") else name
    return "mag" if _FILTER_MAG.match(base) else ""


# -- geometry ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Box:
    """A box ``side_deg`` on a side centred on (ra, dec), in degrees.

    Dec spans ``dec ± side/2``; RA spans ``ra ± side / (2 cos dec)``, i.e. ``side`` degrees of
    arc along the parallel through the centre. A box reaching a pole covers every RA.
    """

    ra: float
    dec: float
    side_deg: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.side_deg) and 0 < self.side_deg <= 180):
            raise ValueError(f"box side must be in (0, 180] degrees, got {self.side_deg}")

    @property
    def dec_range(self) -> tuple[float, float]:
        h = self.side_deg / 2
        return max(self.dec - h, -90.0), min(self.dec + h, 90.0)

    @property
    def ra_half_width(self) -> float:
        """Half the RA span in degrees (180: all RA)."""
        h = self.side_deg / 2
        if abs(self.dec) + h >= 90:
            return 180.0
        return min(h / math.cos(math.radians(self.dec)), 180.0)

    def contains(self, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
        lo, hi = self.dec_range
        inside = (dec >= lo) & (dec <= hi)
        hw = self.ra_half_width
        if hw < 180:
            offset = (np.asarray(ra, np.float64) - self.ra + 180.0) % 360.0 - 180.0
            inside &= np.abs(offset) <= hw + 1e-9  # the edge is inside, whatever the rounding
        return inside

    def cone_radius(self) -> float:
        """Radius (deg) of the cone around the centre that holds the whole box."""
        lo, hi = self.dec_range
        hw = self.ra_half_width
        corners = [(self.ra + s * hw, d) for s in (-1, 1) for d in (lo, hi)]
        corners += [(self.ra, lo), (self.ra, hi)]
        sep = max(_separation(self.ra, self.dec, r, d) for r, d in corners)
        return min(sep + 1.0 / 3600, 180.0)  # one arcsec of margin for rounding


def _separation(ra1: float, dec1: float, ra2: float, dec2: float) -> float:
    r1, d1, r2, d2 = map(math.radians, (ra1, dec1, ra2, dec2))
    s = math.sin((d2 - d1) / 2) ** 2 + math.cos(d1) * math.cos(d2) * math.sin((r2 - r1) / 2) ** 2
    return math.degrees(2 * math.asin(min(1.0, math.sqrt(s))))


# -- targets -------------------------------------------------------------------------------------


def _parse_coordinates(text: str) -> tuple[float, float] | None:
    """(ra, dec) in degrees from ``"322.5 12.17"``, ``"322.5,12.17"`` or sexagesimal text."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord

    cleaned = text.replace(",", " ").strip()
    parts = cleaned.split()
    try:
        if len(parts) == 2 and all(re.fullmatch(r"[+-]?\d+(\.\d*)?", p) for p in parts):
            ra, dec = float(parts[0]), float(parts[1])
            if not (0 <= ra < 360 and -90 <= dec <= 90):  # SkyCoord wraps RA 400 to 40
                raise ValueError("RA must be in [0, 360) and Dec in [-90, 90] degrees")
            coord = SkyCoord(ra, dec, unit=(u.deg, u.deg))
        elif re.search(r"\d[hH:]", cleaned) and len(parts) >= 2:
            coord = SkyCoord(cleaned, unit=(u.hourangle, u.deg))
        else:
            return None
    except ValueError as exc:
        raise QueryError(
            f"target {text!r} looks like coordinates but does not parse: {exc}"
        ) from None
    return float(coord.ra.deg), float(coord.dec.deg)


def resolve_target(
    target: str,
    *,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    catalogs: Any = None,
) -> tuple[float, float]:
    """(ra, dec) in degrees of coordinates given as text, or of an object name.

    Names are resolved by the MAST Mashup service ``Mast.Name.Lookup`` (through astroquery's
    portal client, so ``$GWH_MAST_URL`` redirects it like every other MAST request).

    Raises
    ------
    ArchiveError
        The name does not resolve.
    """
    parsed = _parse_coordinates(target)
    if parsed is not None:
        return parsed
    name = target.strip()
    if not name:
        raise QueryError("target is empty: give a name (SMC) or coordinates ('13.19 -72.83')")
    if catalogs is None:
        own = mast_catalogs(mast_base_url(base_url))
        try:
            return resolve_target(target, retry=retry, sleep=sleep, catalogs=own)
        finally:
            own._session.close()
    portal = catalogs._portal_api_connection
    responses = with_retries(
        lambda: portal.service_request_async("Mast.Name.Lookup", {"input": name, "format": "json"}),
        what=f"MAST name lookup of {name!r}",
        retry=retry,
        sleep=sleep,
    )
    payload = read_json(responses[0], f"MAST name lookup of {name!r}")
    found = [
        r
        for r in payload.get("resolvedCoordinate") or []
        if str(r.get("searchString", name.lower())).lower() == name.lower()
        and r.get("ra") is not None
        and r.get("decl") is not None
    ]
    if not found:
        raise ArchiveError(
            f"MAST could not resolve the name {name!r}. Check the spelling, or give coordinates "
            "in degrees, e.g. --target '13.19 -72.83'."
        )
    return float(found[0]["ra"]), float(found[0]["decl"])


def read_json(response: Any, what: str) -> dict[str, Any]:
    try:
        payload = response.json()
    except ValueError:
        text = " ".join(response.text[:200].split())
        raise ArchiveError(f"{what}: the answer is not JSON ({text!r}).") from None
    if not isinstance(payload, dict):
        raise ArchiveError(f"{what}: expected a JSON object, got {type(payload).__name__}.")
    return payload


# -- Mashup JSON -> Arrow --------------------------------------------------------------------------


def mashup_to_arrow(
    pages: list[dict[str, Any]], *, drop: tuple[str, ...] = QUERY_COLUMNS
) -> pa.Table:
    """The rows of Mashup JSON answers as one Arrow table, typed from their ``fields``.

    ``None`` becomes NULL; integers stay exact (``MatchID`` is int64); columns in ``drop`` are
    left out. Each field carries its unit in the Arrow field metadata (``unit``).
    """
    if not pages:
        raise ValueError("no pages")
    fields = pages[0].get("fields")
    if not isinstance(fields, list) or not fields:
        raise ArchiveError("MAST answer has no 'fields': is the base URL a MAST Mashup service?")
    names = [f["name"] for f in fields]
    for page in pages[1:]:
        if [f["name"] for f in page.get("fields", [])] != names:
            raise ArchiveError("MAST pages disagree on their columns; fetch again (--refresh).")
    schema_fields = []
    for f in fields:
        if f["name"] in drop:
            continue
        typ = _MASHUP_TYPES.get(str(f.get("type", "string")).lower(), pa.string())
        unit = unit_of(f["name"])
        schema_fields.append(pa.field(f["name"], typ, metadata={"unit": unit} if unit else None))
    schema = pa.schema(schema_fields)
    columns: dict[str, list] = {f.name: [] for f in schema}
    for page in pages:
        for row in page.get("data") or []:
            for name in columns:
                columns[name].append(row.get(name))
    arrays = []
    for f in schema:
        if pa.types.is_integer(f.type):
            _refuse_inexact_integers(f.name, columns[f.name])
        try:
            arrays.append(pa.array(columns[f.name], type=f.type))
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise ArchiveError(
                f"MAST column {f.name} does not hold {f.type} values as its field type says "
                f"({exc})."
            ) from None
    return pa.Table.from_arrays(arrays, schema=schema)


_INT64 = (-(2**63), 2**63)


def _refuse_inexact_integers(name: str, values: list) -> None:
    """An integer field's values as written: a JSON number in float notation (``12345.7``,
    ``1e17``) was cut to an integer without a word, and a float of more than 53 bits had lost
    digits already (``9007199254740993.0`` is read as ...992): a MatchID must be written as an
    integer. One beyond 64 bits raised an OverflowError."""
    for row, value in enumerate(values, start=1):
        if value is None or isinstance(value, bool):  # bool: pyarrow refuses it, said below
            continue
        if isinstance(value, float) or (
            isinstance(value, int) and not _INT64[0] <= value < _INT64[1]
        ):
            raise ArchiveError(
                f"MAST column {name}, row {row}: {value!r} is not a 64-bit integer as its field "
                "type says (an id in float notation loses digits); fetch the answer again."
            )
