"""What an export is asked for and what it reports: :class:`ExportOptions` (validated on
creation, messages name the ``gwh export`` option), :class:`ExportResult`, ``--bands``
parsing and the planes an image may have."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from warehouse.config import SPLIT_NAMES
from warehouse.cutouts import CUTOUTS
from warehouse.errors import ExportError, QueryError
from warehouse.export.subsets import SUBSETS
from warehouse.images.bands import comma_bands
from warehouse.images.masks import HSC_MASK_BITS
from warehouse.output.formats import unique_names

COMPRESSIONS = ("lzf", "gzip")
NO_DATA = np.int32(1 << HSC_MASK_BITS["NO_DATA"])
_TABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# plane -> (dtype, value of a missing band, value of padding)
PLANES: dict[str, tuple[type, float | int, float | int]] = {
    "image": (np.float32, np.nan, 0.0),
    "variance": (np.float32, np.nan, np.inf),
    "mask": (np.int32, int(NO_DATA), int(NO_DATA)),
}


@dataclass(frozen=True)
class ExportOptions:
    """How images are written. Validated on creation; messages name the option."""

    size: int = 127
    bands: tuple[str, ...] | None = None  # None: the configured bands, in their order
    allow_missing_bands: bool = False
    mask: bool = True
    variance: bool = True
    compression: str | None = None
    overwrite: bool = False
    images: str = "cutouts"  # the image table: cutouts, kids_cutouts, sdss_cutouts, ...
    limit: int | None = None  # objects per split, first in the split hash order (subsets.py)
    subset: str | None = None  # a named limit: tiny, small or medium

    def __post_init__(self) -> None:
        if self.subset is not None:
            if self.subset not in SUBSETS:
                known = ", ".join(f"{k} ({v:,})" for k, v in SUBSETS.items())
                raise ExportError(f"--subset must be one of {known}, got {self.subset!r}")
            if self.limit is not None and self.limit != SUBSETS[self.subset]:
                raise ExportError(
                    f"--subset {self.subset} is --limit {SUBSETS[self.subset]:,}; give one of "
                    "--subset and --limit."
                )
            object.__setattr__(self, "limit", SUBSETS[self.subset])
        if self.limit is not None and (
            isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1
        ):
            raise ExportError(f"--limit must be a positive number of objects, got {self.limit!r}")
        if not isinstance(self.images, str) or not _TABLE_NAME.match(self.images):
            raise ExportError(
                f"--images must name an image table such as cutouts or kids_cutouts, "
                f"got {self.images!r}"
            )
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not 1 <= self.size:
            raise ExportError(f"--size must be a positive number of pixels, got {self.size!r}")
        if self.size > 4096:
            raise ExportError(f"--size {self.size} is larger than 4096 pixels; choose 127 or 64.")
        if self.compression not in (None, *COMPRESSIONS):
            raise ExportError(
                f"--compression must be one of {', '.join(COMPRESSIONS)}, got {self.compression!r}"
            )
        if self.bands is not None:
            if not self.bands:
                raise ExportError("--bands must name at least one band")
            if len(set(self.bands)) != len(self.bands):
                raise ExportError(f"--bands names a band twice: {','.join(self.bands)}")


@dataclass(frozen=True)
class ExportResult:
    path: Path
    rows: int
    split: str | None
    bands: tuple[str, ...]
    size: int
    data: str
    bytes: int
    seconds: float
    fit_actions: dict[str, int] = field(default_factory=dict)
    missing: dict[str, int] = field(default_factory=dict)
    kept: bool = False  # an earlier, complete file of the same export was kept (resume)


def parse_bands(text: str, configured: Sequence[str], table: str | None = None) -> tuple[str, ...]:
    """``"grizy"``, ``"g,r,i"`` or ``"f160w"`` -> bands, each one of ``configured`` (the
    configured bands, or those the image table ``table`` holds), in the order given.

    >>> parse_bands("irg", "grizy")
    ('i', 'r', 'g')
    >>> parse_bands("f160w,f814w", ["f814w", "f160w"], table="hst_cutouts")
    ('f160w', 'f814w')
    """
    text = text.strip()
    try:
        bands = tuple(comma_bands(text)) if "," in text else _split_bands(text, configured)
    except ValueError as exc:
        raise ExportError(str(exc)) from None
    unknown = [b for b in bands if b not in configured]
    if not bands:
        raise ExportError(f"--bands names no band; give some of {', '.join(configured)}.")
    if unknown:
        if table is None or table == CUTOUTS.name:
            raise ExportError(
                f"--bands {text!r}: {', '.join(unknown)} is not a configured band; "
                f"the warehouse has {', '.join(configured)} (warehouse.toml)."
            )
        raise ExportError(
            f"--bands {text!r}: {', '.join(unknown)} is not a band of {table}; "
            f"it holds {', '.join(configured)}."
        )
    return bands


def _split_bands(text: str, known: Sequence[str]) -> tuple[str, ...]:
    """Band names written together (``"ugri"``): longest known name first; characters no known
    name starts with are kept together, as one unknown name."""
    names = sorted((b for b in known if b), key=len, reverse=True)
    out: list[str] = []
    unknown = ""
    i = 0
    while i < len(text):
        match = next((n for n in names if text.startswith(n, i)), None)
        if match is None:
            unknown += text[i]
            i += 1
            continue
        if unknown:
            out.append(unknown)
            unknown = ""
        out.append(match)
        i += len(match)
    if unknown:
        out.append(unknown)
    return tuple(out)


def check_split(split: str | None) -> None:
    """Refuse a split name that is none of train, validation, test (None: no split)."""
    if split is not None and split not in SPLIT_NAMES:
        raise ExportError(f"--split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")


def cannot_export(problems: list[tuple[str, str]], images: str) -> ExportError:
    """The error of an export whose bands lack images or planes: ``problems`` are (band, what)
    pairs; the bands with the same problem (the same count and examples) are said once, the
    problems one after the other on one line (it was a line per band and plane)."""
    said: dict[str, list[str]] = {}
    for band, what in problems:
        said.setdefault(what, []).append(band)
    lines = [f"band{'s' if len(b) > 1 else ''} {','.join(b)}: {what}" for what, b in said.items()]
    hint = ""
    if any("no cutout" in what for what in said):
        load = (
            "Ingest the missing cutouts (gwh cutouts request, then gwh cutouts ingest)"
            if images == CUTOUTS.name
            else f"Load the missing images into {images}"
        )
        hint = (
            f" {load}, or pass --allow-missing-bands to write NaN images and missing_<band> flags."
        )
    return ExportError(f"cannot export: {'; '.join(lines)}.{hint}")  # one line, however many


def unique_columns(con, text: str) -> None:  # type: ignore[no-untyped-def]
    """Refuse a query (``text``, on ``con``) returning two columns of one name: every export
    wraps it in a subquery, where DuckDB named the second ``ra`` ``ra_1`` without a word."""
    try:
        names = con.sql(text).columns
    except duckdb.Error:  # the planner explains a query that does not bind
        return
    try:
        unique_names(names, "an export (one dataset per column name)")
    except QueryError as exc:
        raise ExportError(str(exc)) from None
