"""KiDS-DR4 cutouts in HDF5 with spectroscopic classes, as the warehouse table ``kids_cutouts``.

The files (one per class in the public description: stars, QSOs, galaxies) hold a table with an
``image`` column of shape (N, 36, 36, 4), channels-last in bands u, g, r, i at 0.2"/px, and a
``SPECTYPE`` string column (GALAXY, QSO or STAR). Two HDF5 layouts are read:

* a compound dataset whose fields include ``image`` and ``SPECTYPE`` (what
  ``astropy.table.Table.write(..., format="hdf5")`` writes), or
* a group holding datasets named ``image`` and ``SPECTYPE`` of the same length.

Each table also needs sky positions: columns ``RA``/``DEC`` (or ``RAJ2000``/``DECJ2000``,
``ALPHA_J2000``/``DELTA_J2000``), in degrees. The warehouse partitions every table by HEALPix,
so a file without them is refused with a message saying so. An ``ID`` (or ``KIDS_ID``) column
is kept as ``kids_id`` (without one, ``kids_id`` is built from the position). The key
``object_id`` is the order-29 NESTED HEALPix index of (ra, dec) (``_healpix_29``, ~0.4 mas
pixels): a stable integer for survey ids that are strings; two rows at one position are refused
as duplicates. An HDF5 attribute ``SIMULATED`` (or ``simulated``) that is true on the file, group
or dataset marks the rows ``simulated``.

Pixel values are kept exactly: the images become channels-first per-band columns ``u_image``,
``g_image``, ``r_image``, ``i_image`` (float32 bytes, with ``{b}_height``, ``{b}_width``,
``{b}_pixel_scale``, ... as :mod:`loaders.images` describes); a float64
image that float32 cannot hold exactly is refused rather than rounded (the KiDS README warns that
flux information matters). ``SPECTYPE`` becomes ``spectype`` and the integer ``spectype_label``
with the stable mapping GALAXY=0, QSO=1, STAR=2, stored in the field's metadata.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from loaders.base import check_positions, check_unique, require_rows
from loaders.images import (
    band_fields,
    encode_image,
    encode_labels,
    label_field,
)
from loaders.readers import SourceTable, one_line
from warehouse.errors import LoadError
from warehouse.healpix import spatial_index
from warehouse.loading import LoadResult, Prepared
from warehouse.store.contracts import KIDS_CUTOUTS

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "KIDS_BANDS",
    "KIDS_CUTOUTS",
    "SPECTYPE_LABELS",
    "load_kids_cutouts",
    "read_kids_hdf5",
]

KIDS_BANDS = ("u", "g", "r", "i")
KIDS_PIXEL_SCALE = 0.2
SPECTYPE_LABELS = {"GALAXY": 0, "QSO": 1, "STAR": 2}
_RA_NAMES = ("ra", "raj2000", "alpha_j2000")
_DEC_NAMES = ("dec", "decj2000", "delta_j2000")
_ID_NAMES = ("id", "kids_id")


@dataclass
class _RawTable:
    where: str  # file:/hdf5/path, for messages
    columns: dict[str, np.ndarray]  # lower-case name -> values
    simulated: bool = False


def _text(values: np.ndarray) -> list[str]:
    out = []
    for v in values:
        if isinstance(v, bytes | np.bytes_):
            v = bytes(v).decode("utf-8", "replace")
        out.append(str(v).strip())
    return out


def _find_tables(path: Path) -> list[_RawTable]:
    import h5py

    try:
        fh = h5py.File(path, "r")
    except OSError as exc:
        raise LoadError(f"{path} is not a readable HDF5 file ({one_line(exc)}).") from None
    found: list[_RawTable] = []
    seen: list[str] = []
    with fh:

        def simulated(obj) -> bool:  # type: ignore[no-untyped-def]
            while True:
                for key in ("SIMULATED", "simulated"):
                    if key in obj.attrs and bool(obj.attrs[key]):
                        return True
                if obj.name == "/":
                    return False
                obj = obj.parent

        def visit(name: str, obj) -> None:  # type: ignore[no-untyped-def]
            seen.append(name)
            if isinstance(obj, h5py.Dataset) and obj.dtype.names:
                names = {n.lower(): n for n in obj.dtype.names}
                if "image" in names and "spectype" in names:
                    data = obj[()]
                    cols = {k: data[v] for k, v in names.items()}
                    found.append(_RawTable(f"{path}:/{name}", cols, simulated(obj)))
            elif isinstance(obj, h5py.Group):
                members = {k.lower(): k for k, v in obj.items() if isinstance(v, h5py.Dataset)}
                if "image" in members and "spectype" in members:
                    cols = {k: obj[v][()] for k, v in members.items()}
                    found.append(_RawTable(f"{path}:/{name}", cols, simulated(obj)))

        try:
            visit("", fh)
            fh.visititems(visit)
        except (OSError, RuntimeError, KeyError, ValueError) as exc:  # h5py's damaged-file errors
            where = seen[-1] if seen else "/"
            raise LoadError(
                f"{path}:/{where}: the HDF5 file is damaged or truncated ({one_line(exc)}). "
                "Download or write it again."
            ) from None
    if not found:
        raise LoadError(
            f"{path}: no table with an 'image' and a 'SPECTYPE' column (looked at "
            f"{len(seen)} HDF5 object(s): {', '.join(seen[:8]) or 'none'}). A KiDS cutout file "
            "holds images (N, 36, 36, 4) and SPECTYPE strings."
        )
    return found


def _column(table: _RawTable, names: tuple[str, ...]) -> np.ndarray | None:
    for n in names:
        if n in table.columns:
            return table.columns[n]
    return None


def read_kids_hdf5(path: str | Path) -> pa.Table:
    """Every KiDS table in one HDF5 file as rows of ``kids_cutouts`` (see the module doc)."""
    path = Path(path)
    if not path.is_file():
        raise LoadError(f"{path}: no such file. Check the path.")
    parts = []
    for raw in _find_tables(path):
        parts.append(_convert(raw, path))
    return pa.concat_tables(parts) if len(parts) > 1 else parts[0]


def _convert(raw: _RawTable, path: Path) -> pa.Table:
    images = np.asarray(raw.columns["image"])
    spectype = np.asarray(raw.columns["spectype"])
    n = images.shape[0] if images.ndim else 0
    if images.ndim != 4 or images.shape[3] != len(KIDS_BANDS) or images.shape[1] != images.shape[2]:
        raise LoadError(
            f"{raw.where}: image has shape {images.shape}; expected (N, S, S, 4), channels-last "
            f"in bands {','.join(KIDS_BANDS)} (KiDS-DR4: S = 36)."
        )
    if spectype.shape != (n,):
        raise LoadError(
            f"{raw.where}: SPECTYPE has shape {spectype.shape}, but there are {n} images."
        )
    ra = _column(raw, _RA_NAMES)
    dec = _column(raw, _DEC_NAMES)
    if ra is None or dec is None:
        raise LoadError(
            f"{raw.where}: no RA/DEC columns. The warehouse stores every table by sky position "
            "(HEALPix), so each KiDS table needs RA and DEC in degrees (also accepted: "
            "RAJ2000/DECJ2000, ALPHA_J2000/DELTA_J2000). Add them from the KiDS-DR4 catalogue "
            "(e.g. by ID) and load the file again."
        )
    size = int(images.shape[1])
    classes = [s.upper() for s in _text(spectype)]
    labels = encode_labels(classes, SPECTYPE_LABELS, f"{raw.where} SPECTYPE")
    for name, values in (("RA", ra), ("DEC", dec)):
        if np.asarray(values).dtype.kind not in "fiu":
            first = _text(np.asarray(values)[:1])
            raise LoadError(
                f"{raw.where}: {name} is stored as {np.asarray(values).dtype} (e.g. "
                f"{first[0] if first else 'no value'!r}), not as numbers. Store RA and DEC as "
                "floating-point degrees (convert sexagesimal text first) and write the file again."
            )
    ra = np.asarray(ra, dtype=np.float64)
    dec = np.asarray(dec, dtype=np.float64)
    ids = _column(raw, _ID_NAMES)
    for name, given in (("RA", ra), ("DEC", dec), ("ID", ids)):
        if given is not None and np.shape(given) != (n,):  # rows would pair with other images
            raise LoadError(
                f"{raw.where}: {name} has shape {np.shape(given)}, but there are {n} images; "
                "each column holds one value per image. Write the file again with them aligned."
            )
    if ids is not None:
        kids_id = _text(ids)
    else:
        kids_id = [f"J{r:010.6f}{d:+010.6f}" for r, d in zip(ra, dec, strict=True)]
    bad = ~(np.isfinite(ra) & np.isfinite(dec) & (np.abs(dec) <= 90))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LoadError(
            f"{raw.where}, row {i + 1}: RA/DEC = ({ra[i]}, {dec[i]}) is not a sky position in "
            f"degrees ({int(bad.sum())} such row(s)). Fix or drop these rows."
        )
    first_row: dict[str, int] = {}
    for i, name in enumerate(kids_id):
        j = first_row.setdefault(name, i)
        if j != i:  # one survey object twice (at other positions: two keys, two rows)
            raise LoadError(
                f"{raw.where}, rows {j + 1} and {i + 1}: both are KiDS object {name!r}; a file "
                "holds each object once. Drop the duplicate and load it again."
            )
    pairs: list[tuple[pa.Field, pa.Array]] = [
        (pa.field("object_id", pa.int64()), pa.array(spatial_index(ra, dec), pa.int64())),
        (pa.field("kids_id", pa.string()), pa.array(kids_id, pa.string())),
        (pa.field("ra", pa.float64(), metadata={"unit": "deg"}), pa.array(ra)),
        (pa.field("dec", pa.float64(), metadata={"unit": "deg"}), pa.array(dec)),
        (pa.field("bands", pa.string()), pa.array([",".join(KIDS_BANDS)] * n, pa.string())),
        (pa.field("simulated", pa.bool_()), pa.array([raw.simulated] * n, pa.bool_())),
        (pa.field("spectype", pa.string()), pa.array(classes, pa.string())),
        (label_field("spectype_label", SPECTYPE_LABELS, "spectype"), labels),
    ]
    where = raw.where.split(":", 1)[1]
    sources = [f"{path.name}:{where}[{i}]" for i in range(n)]
    for k, band in enumerate(KIDS_BANDS):
        blobs = []
        for i in range(n):
            try:
                blobs.append(encode_image(images[i, :, :, k]))
            except ValueError as exc:
                raise LoadError(
                    f"{raw.where}, row {i + 1}, band {band}: {exc}. Pixel values are stored "
                    "unchanged as float32; convert the file to float32 yourself if rounding "
                    "is acceptable."
                ) from None
        pairs += band_fields(
            band, blobs, size, KIDS_PIXEL_SCALE, f"KiDS-{band}", sources, simulated=raw.simulated
        )
    pairs += [
        (pa.field("source_file", pa.string()), pa.array([path.name] * n, pa.string())),
        (pa.field("source_row", pa.int64()), pa.array(np.arange(1, n + 1), pa.int64())),
    ]
    schema = pa.schema([f for f, _ in pairs])
    return pa.Table.from_arrays([a for _, a in pairs], schema=schema)


def load_kids_cutouts(
    wh,  # type: ignore[no-untyped-def]
    files: list[Path],
    echo: Callable[[str], None] = lambda _m: None,
) -> int:
    """Load KiDS files one by one into ``kids_cutouts`` (each file once; a rerun resumes).

    Files are stacked: each adds its rows (an object loaded again, same ``kids_id``, is replaced).
    Returns the rows of the table after the last file.
    """
    wh.load(KidsCutoutsLoader(), files, echo=echo)
    cv = wh.current_version(KIDS_CUTOUTS.name)
    return cv.nrows if cv is not None else 0


class KidsCutoutsLoader:
    name = "kids-cutouts"
    description = "KiDS-DR4 HDF5 cutouts (image (N,36,36,4) u,g,r,i + SPECTYPE, RA, DEC)"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        table = read_kids_hdf5(path)
        src = SourceTable(Path(path), table, 1, "row")
        require_rows(src, "kids_cutouts")
        check_positions(src, "ra", "dec")
        check_unique(src, table, KIDS_CUTOUTS.key)
        return [Prepared(KIDS_CUTOUTS, table)]

    def describe(self, path: Path, prepared: list[Prepared], result: LoadResult) -> str:
        (loaded,) = prepared
        counts = loaded.table.group_by("spectype").aggregate([([], "count_all")]).to_pylist()
        text = ", ".join(
            f"{c['spectype']} {c['count_all']:,}"
            for c in sorted(counts, key=lambda c: SPECTYPE_LABELS[c["spectype"]])
        )
        rows = result.tables[KIDS_CUTOUTS.name][1]
        return (
            f"{path}: loaded {loaded.table.num_rows:,} cutouts ({text}); "
            f"kids_cutouts now holds {rows:,}"
        )
