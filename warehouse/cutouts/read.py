"""Reading one object's stored cutouts back as arrays."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow.parquet as pq

from warehouse.errors import CutoutError
from warehouse.images.columns import band_column, decode_plane
from warehouse.images.fit import fit_to_size
from warehouse.store.contracts import CUTOUTS

if TYPE_CHECKING:
    from warehouse.core import Warehouse


@dataclass(frozen=True)
class StoredCutout:
    """One object's cutouts read back from the store: (B, H, W) planes in ``bands`` order,
    NaN (image, variance) or None where a band is missing."""

    object_id: int
    bands: tuple[str, ...]
    images: np.ndarray
    variance: np.ndarray | None
    mask: np.ndarray | None
    present: tuple[bool, ...]
    zeropoints: tuple[float | None, ...]
    simulated: bool
    metadata: dict


def read_cutout(wh: Warehouse, object_id: int, bands: Sequence[str] | None = None) -> StoredCutout:
    """Read one object's stored cutouts (all planes) back as arrays."""
    bands = tuple(bands or wh.config.bands)
    cv = wh.current_version(CUTOUTS.name)
    if cv is None:
        raise CutoutError("no cutouts have been ingested yet. Run `gwh cutouts ingest FILE`.")
    if not -(2**63) <= int(object_id) < 2**63:  # a typo: no stored id is that large
        raise CutoutError(
            f"object_id {object_id} is outside the 64-bit range of object ids; check the number."
        )
    found = wh.query("SELECT _healpix_29 FROM cutouts WHERE object_id = ?", [int(object_id)])
    if found.num_rows == 0:
        raise CutoutError(
            f'object_id {object_id} has no cutouts. `gwh sql "select object_id, bands from '
            f'cutouts limit 10"` lists some that have; ingest its files with gwh cutouts ingest.'
        )
    h29 = found.column(0)[0].as_py()
    part = next(p for p in cv.partitions if p.h29_range()[0] <= h29 < p.h29_range()[1])
    table = pq.read_table(cv.path / part.relpath, filters=[("object_id", "=", int(object_id))])
    row = table.slice(0, 1).to_pylist()[0]
    return _stored(int(object_id), row, bands)


def read_cutouts(
    wh: Warehouse,
    object_ids: Sequence[int],
    bands: Sequence[str] | None = None,
    planes: Sequence[str] = ("image", "variance", "mask"),
) -> dict[int, StoredCutout]:
    """Several objects' stored cutouts at once, each partition file read once (a gallery page):
    ``{object_id: StoredCutout}`` for the ids that have cutouts; the others are left out.
    ``planes`` limits the pixel planes read (``("image",)`` for thumbnails reads a third of the
    bytes); the others come back as None (variance, mask)."""
    bands = tuple(bands or wh.config.bands)
    skip = {band_column(b, p) for b in bands for p in ("variance", "mask") if p not in planes}
    ids = sorted({int(i) for i in object_ids})
    with wh.reading():  # the row lookup and the files read from one committed state
        cv = wh.current_version(CUTOUTS.name)
        if cv is None or not ids:
            return {}
        marks = ", ".join("?" for _ in ids)
        found = wh.query(
            f"SELECT object_id, _healpix_29 FROM cutouts WHERE object_id IN ({marks})", ids
        ).to_pylist()
        by_part: dict[str, list[int]] = {}
        for r in found:
            part = next(
                p for p in cv.partitions if p.h29_range()[0] <= r["_healpix_29"] < p.h29_range()[1]
            )
            by_part.setdefault(part.relpath, []).append(r["object_id"])
        out: dict[int, StoredCutout] = {}
        for relpath, part_ids in by_part.items():
            columns = [c for c in cv.schema.names if c not in skip]
            table = pq.read_table(
                cv.path / relpath, columns=columns, filters=[("object_id", "in", part_ids)]
            )
            for row in table.to_pylist():
                out[int(row["object_id"])] = _stored(int(row["object_id"]), row, bands)
    return out


def _stored(object_id: int, row: dict, bands: tuple[str, ...]) -> StoredCutout:
    """One stored row as arrays (see :class:`StoredCutout`)."""
    present = tuple(row.get(band_column(b, "image")) is not None for b in bands)
    if not any(present):  # pragma: no cover - a stored row always has a band
        raise CutoutError(f"object_id {object_id} has none of the bands {', '.join(bands)}")
    shown = [b for b, ok in zip(bands, present, strict=True) if ok]
    shapes = {(row[band_column(b, "height")], row[band_column(b, "width")]) for b in shown}
    # one shape: the planes as stored; several: each centred on the largest side (fit_to_size)
    shape = shapes.pop() if len(shapes) == 1 else (max(max(s) for s in shapes),) * 2
    planes: dict[str, list] = {"image": [], "variance": [], "mask": []}
    for b, ok in zip(bands, present, strict=True):
        for what, fill in (("image", np.nan), ("variance", np.nan), ("mask", 0)):
            blob = row.get(band_column(b, what)) if ok else None
            if blob is None:
                dtype = np.int32 if what == "mask" else np.float32
                planes[what].append(np.full(shape, fill, dtype))
                continue
            plane = decode_plane(
                blob, row[band_column(b, "height")], row[band_column(b, "width")], what
            )
            if plane.shape != shape:
                plane = fit_to_size(plane, shape[0], fill=fill).array
            planes[what].append(plane)
    has_var = any(row.get(band_column(b, "variance")) is not None for b in bands)
    has_mask = any(row.get(band_column(b, "mask")) is not None for b in bands)
    metadata = {k: v for k, v in row.items() if not k.endswith(("_image", "_variance", "_mask"))}
    return StoredCutout(
        object_id=int(object_id),
        bands=bands,
        images=np.stack(planes["image"]),
        variance=np.stack(planes["variance"]) if has_var else None,
        mask=np.stack(planes["mask"]) if has_mask else None,
        present=present,
        zeropoints=tuple(row.get(band_column(b, "zeropoint")) for b in bands),
        simulated=bool(row.get("simulated")),
        metadata=metadata,
    )
