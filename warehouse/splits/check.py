"""``gwh splits check``: does the sky leak between train, validation and test?

Three checks over ``ml_objects`` (the live warehouse or a release):

* **neighbours**: pairs of objects in different splits closer than ``radius`` on the sky
  (counts per split pair and the closest pairs), found with a KD-tree (scipy ``cKDTree``) on
  unit vectors: the chord ``2 sin(radius / 2)`` bounds the angle exactly, and the work grows as
  N log N, so 300,000 objects take seconds;
* **footprints**: objects whose cutout (its height x width pixels times the pixel scale,
  centred on the cutout's position) overlaps the cutout of an object in another split;
* **identical pixels**: cutouts in different splits whose pixel arrays (all bands) are
  byte-identical, by a SHA-256 of each cutout's pixels read partition by partition.

In ``object`` mode each object is drawn on its own, so neighbours across splits are expected:
the report counts them. In ``healpix`` mode whole HEALPix cells go to one split, so sky
neighbours share a split except across a cell border, which neighbouring cells always share
at any order: those pairs are counted as border pairs, expected too (a lower ``healpix_order``
makes fewer, never none, and bigger cells make the realised fractions drift further from the
configured ones, which the report prints). ``gwh splits check`` exits 1 only for what no split
should hold: byte-identical pixels in two splits (the same image twice), or, in healpix mode,
two objects of one cell in different splits.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow.parquet as pq
from scipy.spatial import cKDTree

from warehouse.config import SPLIT_NAMES
from warehouse.cutouts import CUTOUTS, band_column
from warehouse.db import quote_ident
from warehouse.errors import UsageError

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = ["LeakageReport", "check_command", "check_splits", "parse_radius"]

_UNITS = {"arcsec": 1.0, '"': 1.0, "arcmin": 60.0, "'": 60.0, "deg": 3600.0}
_RADIUS = re.compile(r"^\s*(-?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(arcsec|arcmin|deg|\"|')?\s*$")


def parse_radius(text: str | float) -> float:
    """``"5arcsec"``, ``"0.1arcmin"``, ``"5"`` (arcsec) -> arcseconds.

    >>> parse_radius("0.5arcmin")
    30.0
    """
    if isinstance(text, int | float):
        value = float(text)
    else:
        m = _RADIUS.match(text)
        if m is None:
            raise UsageError(
                f"--radius {text!r}: give a number and a unit, e.g. 5arcsec or 0.1arcmin"
            )
        value = float(m[1]) * _UNITS[m[2] or "arcsec"]
    if not 0 < value <= 3600:
        raise UsageError(f"--radius must be above 0 and at most 1 deg, got {text!r}")
    return value


@dataclass
class LeakageReport:
    """What :func:`check_splits` found; :meth:`as_dict` is what a release manifest stores."""

    radius_arcsec: float
    mode: str
    objects: int
    neighbours: dict[str, int] = field(default_factory=dict)  # "train/test" -> pairs
    closest: list[dict[str, Any]] = field(default_factory=list)
    footprint_objects: int = 0  # objects whose cutout overlaps another split's cutout
    footprint_pairs: dict[str, int] = field(default_factory=dict)
    footprint_examples: list[dict[str, Any]] = field(default_factory=list)
    cutouts: int = 0  # objects with a cutout (footprint and pixel checks)
    identical_groups: int = 0  # pixel arrays found in more than one split
    identical_pairs: dict[str, int] = field(default_factory=dict)
    identical_examples: list[list[int]] = field(default_factory=list)
    border_pairs: int = 0  # healpix mode: neighbour/footprint pairs across a cell border
    same_cell_pairs: int = 0  # healpix mode: pairs of one cell in two splits (never expected)
    fractions: dict[str, float] = field(default_factory=dict)  # realised, per split
    configured: dict[str, float] = field(default_factory=dict)  # [splits] in warehouse.toml

    @property
    def leaks(self) -> int:
        return (
            sum(self.neighbours.values())
            + sum(self.footprint_pairs.values())
            + sum(self.identical_pairs.values())
        )

    @property
    def unexpected(self) -> bool:
        """Leaks no split mode allows: identical pixels in two splits, or (healpix mode) one
        cell's objects in two splits. Pairs across a cell border are expected."""
        return self.identical_groups > 0 or self.same_cell_pairs > 0

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["leaks"], out["unexpected"] = self.leaks, self.unexpected
        return out

    def summary(self) -> str:
        lines = [
            f"splits check: {self.objects:,} objects of ml_objects, split mode {self.mode}, "
            f"radius {self.radius_arcsec:g} arcsec"
        ]
        pairs = ", ".join(f"{k} {v:,}" for k, v in self.neighbours.items() if v) or "none"
        lines.append(f"  neighbours in different splits: {pairs}")
        for c in self.closest:
            lines.append(
                f"    {c['object_id_a']} ({c['split_a']}) - {c['object_id_b']} ({c['split_b']}): "
                f"{c['separation_arcsec']:.3f} arcsec"
            )
        fp = ", ".join(f"{k} {v:,}" for k, v in self.footprint_pairs.items() if v) or "none"
        lines.append(
            f"  cutout footprints overlapping another split: {self.footprint_objects:,} of "
            f"{self.cutouts:,} objects with cutouts (pairs: {fp})"
        )
        for c in self.footprint_examples:
            lines.append(
                f"    {c['object_id_a']} ({c['split_a']}) - {c['object_id_b']} ({c['split_b']}): "
                f"{c['separation_arcsec']:.2f} arcsec apart"
            )
        same = ", ".join(f"{k} {v:,}" for k, v in self.identical_pairs.items() if v) or "none"
        lines.append(f"  identical pixel arrays across splits: {self.identical_groups:,} ({same})")
        for group in self.identical_examples:
            lines.append(f"    object_ids {', '.join(str(i) for i in group)}")
        healpix = self.mode.startswith("healpix")
        if healpix and self.fractions:
            realised = ", ".join(f"{k} {v:.3f}" for k, v in self.fractions.items())
            lines.append(f"  realised split fractions: {realised} (whole cells go to one split)")
            off = max(abs(v - self.configured.get(k, v)) for k, v in self.fractions.items())
            empty = [k for k, v in self.fractions.items() if v == 0 and self.configured.get(k)]
            if empty or off > 0.05:
                wanted = ", ".join(f"{k} {v:g}" for k, v in self.configured.items())
                lines.append(
                    f"  note: {'split ' + ', '.join(empty) + ' is empty; ' if empty else ''}the "
                    f"realised fractions are up to {off:.2f} from the configured {wanted}: too "
                    "few cells hold objects at this healpix_order; raise it (smaller cells)."
                )
        if self.identical_groups:
            lines.append(
                f"  LEAK: {self.identical_groups:,} image(s) with identical pixels are in more "
                "than one split (the same cutout twice): drop the duplicates (a spec-z or "
                "object_id matched twice) so that each image is in one split."
            )
        if self.same_cell_pairs:
            lines.append(
                f"  LEAK: {self.same_cell_pairs:,} pair(s) of objects in one HEALPix cell are "
                "in different splits, which healpix mode never assigns: rebuild the views "
                "(gwh refresh) and check [splits] in warehouse.toml."
            )
        if healpix and self.border_pairs:
            lines.append(
                f"  ({self.border_pairs:,} pair(s) straddle a cell border, which neighbouring "
                "cells always share: expected; a lower [splits] healpix_order gives fewer, "
                "never none)"
            )
        elif self.leaks and not self.unexpected:
            lines.append(
                "  (object mode draws each object on its own, so neighbours across splits are "
                'expected; [splits] mode = "healpix" keeps cells together)'
            )
        return "\n".join(lines)


def _unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    r, d = np.radians(ra), np.radians(dec)
    return np.column_stack([np.cos(d) * np.cos(r), np.cos(d) * np.sin(r), np.sin(d)])


def _chord(arcsec: float) -> float:
    return 2.0 * math.sin(math.radians(arcsec / 3600.0) / 2.0)


def _separation(v: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Angular separation in arcsec of the unit vectors ``v[i]`` and ``v[j]``."""
    chord = np.linalg.norm(v[i] - v[j], axis=1)
    return np.degrees(2.0 * np.arcsin(np.clip(chord / 2.0, 0.0, 1.0))) * 3600.0


def _pair_key(a: str, b: str) -> str:
    order = {s: k for k, s in enumerate(SPLIT_NAMES)}
    x, y = sorted((a, b), key=lambda s: order.get(s, 99))
    return f"{x}/{y}"


def _cross_pairs(v: np.ndarray, splits: np.ndarray, arcsec: float) -> np.ndarray:
    if len(v) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = cKDTree(v).query_pairs(_chord(arcsec) * (1 + 1e-12), output_type="ndarray")
    return pairs[splits[pairs[:, 0]] != splits[pairs[:, 1]]]


def _count(splits: np.ndarray, pairs: np.ndarray) -> dict[str, int]:
    out: dict[str, int] = {}
    for a, b in zip(splits[pairs[:, 0]].tolist(), splits[pairs[:, 1]].tolist(), strict=True):
        k = _pair_key(a, b)
        out[k] = out.get(k, 0) + 1
    return dict(sorted(out.items()))


def _examples(ids, splits, pairs, sep, examples: int) -> list[dict[str, Any]]:
    order = np.lexsort((ids[pairs[:, 1]], ids[pairs[:, 0]], sep))[:examples]
    return [
        {
            "object_id_a": int(ids[pairs[k, 0]]),
            "split_a": str(splits[pairs[k, 0]]),
            "object_id_b": int(ids[pairs[k, 1]]),
            "split_b": str(splits[pairs[k, 1]]),
            "separation_arcsec": round(float(sep[k]), 6),
        }
        for k in order.tolist()
    ]


def check_splits(
    wh: Warehouse, radius_arcsec: float = 5.0, examples: int = 10, pixels: bool = True
) -> LeakageReport:
    """The leakage report of ``wh``'s ``ml_objects`` (see the module doc)."""
    splits_cfg = wh.config.splits
    mode = splits_cfg.mode + (
        f" (HEALPix order {splits_cfg.healpix_order})" if splits_cfg.mode == "healpix" else ""
    )
    healpix = splits_cfg.mode == "healpix"
    with wh.reading():
        t = wh.query(
            "SELECT object_id, ra, dec, split, _healpix_29 FROM ml_objects ORDER BY object_id"
        )
        ids = t.column("object_id").to_numpy()
        splits = np.array(t.column("split").to_pylist(), dtype=object)
        report = LeakageReport(round(float(radius_arcsec), 6), mode, len(ids))
        cells: dict[int, int] | None = None
        if healpix:  # the cell each object's split was drawn for (sql/marts/ml_objects.sql)
            shift = 2 * (29 - splits_cfg.healpix_order)
            h29 = t.column("_healpix_29").to_numpy(zero_copy_only=False).astype(np.int64)
            cells = dict(zip(ids.tolist(), (h29 >> shift).tolist(), strict=True))
            names, counts = np.unique(splits.astype(str), return_counts=True)
            realised = dict(zip(names.tolist(), (counts / max(len(ids), 1)).tolist(), strict=True))
            report.fractions = {k: round(realised.get(k, 0.0), 6) for k in SPLIT_NAMES}
            report.configured = {k: getattr(splits_cfg, k) for k in SPLIT_NAMES}
        v = _unit_vectors(
            t.column("ra").to_numpy(zero_copy_only=False),
            t.column("dec").to_numpy(zero_copy_only=False),
        )
        pairs = _cross_pairs(v, splits, radius_arcsec)
        report.neighbours = _count(splits, pairs)
        report.closest = _examples(ids, splits, pairs, _separation(v, *pairs.T), examples)
        _by_cell(report, ids, pairs, cells)
        if wh.current_version(CUTOUTS.name) is not None:
            _footprints(wh, report, examples, cells)
            if pixels:
                _identical(wh, report, dict(zip(ids.tolist(), splits.tolist(), strict=True)))
    return report


def _by_cell(
    report: LeakageReport, ids: np.ndarray, pairs: np.ndarray, cells: dict[int, int] | None
) -> None:
    """Count cross-split ``pairs`` (rows of ``ids``) across a cell border and within one cell."""
    if cells is None or not len(pairs):
        return
    a = np.array([cells[int(i)] for i in ids[pairs[:, 0]]], dtype=np.int64)
    b = np.array([cells[int(i)] for i in ids[pairs[:, 1]]], dtype=np.int64)
    report.border_pairs += int((a != b).sum())
    report.same_cell_pairs += int((a == b).sum())


def _footprints(
    wh: Warehouse, report: LeakageReport, examples: int, cells: dict[int, int] | None
) -> None:
    cv = wh.current_version(CUTOUTS.name)
    assert cv is not None
    names = set(cv.schema.names)
    widths, heights = [], []
    for b in wh.config.bands:
        h, w, s = (band_column(b, k) for k in ("height", "width", "pixel_scale"))
        if {h, w, s} <= names:
            widths.append(f"c.{quote_ident(w)} * c.{quote_ident(s)}")
            heights.append(f"c.{quote_ident(h)} * c.{quote_ident(s)}")
    if not widths:
        return
    t = wh.query(
        "SELECT m.object_id, m.split, c.ra, c.dec, "
        f"greatest({', '.join(widths)}) AS w, greatest({', '.join(heights)}) AS h "
        "FROM ml_objects AS m JOIN cutouts AS c ON m.object_id = c.object_id "
        "ORDER BY m.object_id"
    )
    ids = t.column("object_id").to_numpy()
    splits = np.array(t.column("split").to_pylist(), dtype=object)
    w = np.nan_to_num(t.column("w").to_numpy(zero_copy_only=False).astype(float))
    h = np.nan_to_num(t.column("h").to_numpy(zero_copy_only=False).astype(float))
    ra = t.column("ra").to_numpy(zero_copy_only=False)
    dec = t.column("dec").to_numpy(zero_copy_only=False)
    report.cutouts = len(ids)
    if len(ids) < 2:
        return
    v = _unit_vectors(ra, dec)
    reach = float(np.hypot(w, h).max())  # two footprints farther apart than this cannot touch
    pairs = _cross_pairs(v, splits, reach)
    i, j = pairs[:, 0], pairs[:, 1]
    dx = ((ra[i] - ra[j] + 180.0) % 360.0 - 180.0) * np.cos(np.radians((dec[i] + dec[j]) / 2))
    dy = dec[i] - dec[j]
    overlap = (np.abs(dx) * 3600 < (w[i] + w[j]) / 2) & (np.abs(dy) * 3600 < (h[i] + h[j]) / 2)
    pairs = pairs[overlap]
    report.footprint_pairs = _count(splits, pairs)
    report.footprint_objects = int(np.unique(pairs).size)
    report.footprint_examples = _examples(ids, splits, pairs, _separation(v, *pairs.T), examples)
    _by_cell(report, ids, pairs, cells)


def _identical(wh: Warehouse, report: LeakageReport, split_of: dict[int, str]) -> None:
    """Hash every cutout's pixels (all bands, in band order), one partition at a time."""
    cv = wh.current_version(CUTOUTS.name)
    assert cv is not None
    names = set(cv.schema.names)
    cols = [band_column(b, "image") for b in wh.config.bands if band_column(b, "image") in names]
    groups: dict[bytes, list[int]] = {}
    for path in cv.files():
        table = pq.read_table(path, columns=["object_id", *cols])
        oids = table.column("object_id").to_pylist()
        bands = [table.column(c).to_pylist() for c in cols]
        for k, oid in enumerate(oids):
            if oid not in split_of:
                continue
            digest = hashlib.sha256()
            for band in bands:
                px = band[k]
                digest.update(b"\x00" if px is None else b"\x01" + len(px).to_bytes(8, "big") + px)
            groups.setdefault(digest.digest(), []).append(oid)
        del table, bands
    found: dict[str, int] = {}
    shown = []
    for oids in groups.values():
        in_splits = {split_of[o] for o in oids}
        if len(in_splits) < 2:
            continue
        report.identical_groups += 1
        for a in sorted(in_splits):
            for b in sorted(in_splits):
                if a < b:
                    key = _pair_key(a, b)
                    found[key] = found.get(key, 0) + 1
        shown.append(sorted(oids))
    report.identical_pairs = dict(sorted(found.items()))
    report.identical_examples = sorted(shown)[:10]


def check_command(
    wh: Warehouse,
    *,
    radius: str = "5arcsec",
    examples: int = 10,
    as_json: bool = False,
    echo: Callable[[str], None],
) -> int:
    """``gwh splits check``: print the report; exit 1 for a leak no split mode allows
    (:attr:`LeakageReport.unexpected`)."""
    report = check_splits(wh, parse_radius(radius), examples)
    echo(json.dumps(report.as_dict(), indent=2) if as_json else report.summary())
    return 1 if report.unexpected else 0
