"""The ``cutouts`` rows of one ingest: per-object columns from the new bands and the stored ones,
per-band values, and the prepared tables committed in batches of about :data:`BATCH_BYTES`."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from warehouse.cutouts.inputs import (
    BATCH_BYTES,
    CutoutInput,
    IngestReport,
    reread,
    without_pixels,
)
from warehouse.db import quote_ident
from warehouse.files import file_sha256
from warehouse.images.columns import (
    BAND_FIELDS,
    GALAXIESML_SIZES,
    OBJECT_FIELDS,
    band_column,
    fit_action_of,
)
from warehouse.images.masks import masked_fraction
from warehouse.loading import Prepared, PreparedBatch
from warehouse.store.contracts import CUTOUTS

if TYPE_CHECKING:
    from warehouse.core import Warehouse

LOADER_NAME = "cutouts"


def _stored_metadata(wh: Warehouse, ids: list[int], bands: Sequence[str]) -> dict[int, dict]:
    """The per-object and per-band metadata already stored for these objects."""
    cv = wh.current_version(CUTOUTS.name)
    if cv is None or not ids:
        return {}
    names = set(cv.schema.names)
    columns = ["object_id", "tract", "patch", "rerun"]
    for b in bands:
        for what in ("height", "width", "masked_fraction", "simulated"):
            if band_column(b, what) in names:
                columns.append(band_column(b, what))
    select = ", ".join(quote_ident(c) for c in columns if c in names)
    rows = wh.query(
        f"SELECT {select} FROM cutouts WHERE object_id IN (SELECT unnest(?::BIGINT[]))", [ids]
    )
    return {r["object_id"]: r for r in rows.to_pylist()}


def _object_row(
    oid: int, items: dict[str, CutoutInput], stored: dict | None, bands: Sequence[str]
) -> dict:
    """Per-object columns, from the new bands and those already stored."""
    stored = stored or {}
    first = next(iter(items.values()))
    shapes, fractions, simulated, present = [], [], [], []
    for b in bands:
        if b in items:
            cut = items[b].cut
            assert cut is not None
            shapes.append(cut.shape)
            if cut.mask is not None:
                fractions.append(masked_fraction(cut.mask, planes=cut.mask_planes or None))
            simulated.append(bool(cut.simulated))
            present.append(b)
        elif stored.get(band_column(b, "height")) is not None:
            shapes.append((stored[band_column(b, "height")], stored[band_column(b, "width")]))
            if stored.get(band_column(b, "masked_fraction")) is not None:
                fractions.append(stored[band_column(b, "masked_fraction")])
            simulated.append(bool(stored.get(band_column(b, "simulated"))))
            present.append(b)

    def known(attr: str, key: str):  # the new files' value when they know it, else the stored
        for item in items.values():
            value = getattr(item.cut, attr)
            if value is not None:
                return value
        return stored.get(key)

    row = {
        "object_id": oid,
        "ra": first.ra,
        "dec": first.dec,
        "tract": known("tract", "tract"),
        "patch": known("patch", "patch"),
        "rerun": known("rerun", "rerun"),
        "simulated": any(simulated),
        "bands": ",".join(present),
        "masked_fraction": max(fractions) if fractions else None,
    }
    for size in GALAXIESML_SIZES:
        row[f"fit_action_{size}"] = fit_action_of(shapes, size)
    return row


def _band_values(inp: CutoutInput) -> dict:
    cut = inp.cut
    assert cut is not None
    return {
        "image": np.ascontiguousarray(cut.image, dtype="<f4").tobytes(),
        "variance": None
        if cut.variance is None
        else np.ascontiguousarray(cut.variance, dtype="<f4").tobytes(),
        "mask": None if cut.mask is None else np.ascontiguousarray(cut.mask, "<i4").tobytes(),
        "height": cut.shape[0],
        "width": cut.shape[1],
        "zeropoint": None if inp.fluxnorm else cut.zeropoint,
        "pixel_scale": cut.pixel_scale,
        "filter": cut.filter_name,
        "masked_fraction": None
        if cut.mask is None
        else masked_fraction(cut.mask, planes=cut.mask_planes or None),
        "variance_present": cut.variance is not None,
        "mask_present": cut.mask is not None,
        "simulated": bool(cut.simulated),
        "source": inp.source,
        "center_offset_arcsec": inp.offset_arcsec,
    }


def _build_table(
    objects: list[tuple[int, dict[str, CutoutInput]]],
    stored: dict[int, dict],
    bands: Sequence[str],
) -> pa.Table:
    """One table for objects that all carry the same new bands."""
    new_bands = [b for b in bands if b in objects[0][1]]
    columns: dict[str, list] = {name: [] for name, _ in OBJECT_FIELDS}
    for b in new_bands:
        for what, _ in BAND_FIELDS:
            columns[band_column(b, what)] = []
    for oid, items in objects:
        row = _object_row(oid, items, stored.get(oid), bands)
        for name, _ in OBJECT_FIELDS:
            columns[name].append(row[name])
        for b in new_bands:
            values = _band_values(items[b])
            for what, _ in BAND_FIELDS:
                columns[band_column(b, what)].append(values[what])
    types = dict(OBJECT_FIELDS)
    for b in new_bands:
        for what, typ in BAND_FIELDS:
            types[band_column(b, what)] = typ
    return pa.table({name: pa.array(values, types[name]) for name, values in columns.items()})


def batches(
    wh: Warehouse,
    objects: dict[int, dict[str, CutoutInput]],
    bands: Sequence[str],
    report: IngestReport,
) -> Iterator[PreparedBatch]:
    """Prepared tables of at most ~BATCH_BYTES of pixels; objects in one table carry the same
    new bands (a null column would replace a stored band)."""

    groups: dict[tuple[str, ...], list[int]] = {}
    for oid in sorted(objects):
        groups.setdefault(tuple(b for b in bands if b in objects[oid]), []).append(oid)
    shas: dict[Path, str] = {}
    names: dict[Path, str] = {}
    for band_set, ids in sorted(groups.items()):
        start = 0
        while start < len(ids):
            chunk: list[int] = []
            size = 0
            while start < len(ids) and (not chunk or size < BATCH_BYTES):
                oid = ids[start]
                chunk.append(oid)
                size += sum(objects[oid][b].nbytes for b in band_set)
                start += 1
            for oid in chunk:  # pixels dropped after the first read: read them again
                for b in band_set:
                    if not objects[oid][b].has_pixels:
                        reread(objects[oid][b])
            stored = _stored_metadata(wh, chunk, bands)
            table = _build_table([(oid, objects[oid]) for oid in chunk], stored, bands)
            counts: dict[Path, int] = {}
            for oid in chunk:
                for b in band_set:
                    inp = objects[oid][b]
                    counts[inp.container] = counts.get(inp.container, 0) + 1
                    if inp.container_sha is not None:
                        shas[inp.container] = inp.container_sha
            sources = []
            for container, n in sorted(counts.items()):
                if container not in shas:  # a file on disk: record where, and its SHA-256
                    shas[container] = file_sha256(container)
                    names[container] = str(container.resolve())
                sources.append((names.get(container, str(container)), shas[container], n))
            label = f"{len(counts)} cutout file(s), bands {','.join(band_set)}"
            yield PreparedBatch(label, [Prepared(CUTOUTS, table)], tuple(sources))
            report.images += len(chunk) * len(band_set)
            report.objects += len(chunk)
            for oid in chunk:  # free the pixels of committed objects
                for b in band_set:
                    inp = objects[oid][b]
                    inp.cut, inp.has_pixels = without_pixels(inp.cut), False  # type: ignore[arg-type]
