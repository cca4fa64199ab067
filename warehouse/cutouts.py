"""The cutout store: HSC image cutouts as one more HATS table, ``cutouts``, keyed by object_id.

Each row is one catalog object; its ``ra``/``dec`` are the matched ``hsc_forced`` object's
position, so cutout rows sit in the same HEALPix pixels as their catalog rows (NESTED, sorted by
``_healpix_29``). The table is written by the store's :func:`~warehouse.store.merge_version`, like
every other table: each ingest is an atomic new version, an object ingested again is replaced
(never duplicated), partitions it does not touch are hard links, and releases keep versions.

Columns (the one place they are named; see :data:`BAND_FIELDS` and :data:`OBJECT_FIELDS`):

* per band ``b``: ``{b}_image`` (float32 little-endian C-order bytes, exactly the FITS pixel
  values), ``{b}_variance`` (float32 bytes or null), ``{b}_mask`` (int32 bytes or null),
  ``{b}_height``, ``{b}_width``, ``{b}_zeropoint`` (null when the pixels are not calibrated
  flux), ``{b}_pixel_scale`` (arcsec/px), ``{b}_filter``, ``{b}_masked_fraction`` (pixels with a
  bad-pixel plane set, null without a mask), ``{b}_variance_present``, ``{b}_mask_present``,
  ``{b}_simulated``, ``{b}_source`` (file name or ``<tar>:<member>``), ``{b}_center_offset_arcsec``
  (cutout centre to catalog position);
* per object: ``object_id``, ``ra``, ``dec``, ``tract``, ``patch``, ``rerun`` (when known),
  ``simulated`` (any band simulated), ``bands`` (comma-separated, configured order),
  ``masked_fraction`` (the worst band), ``fit_action_127`` and ``fit_action_64`` (what reaching
  the GalaxiesML sizes does to this object: none, cropped, padded or cropped+padded).

The pixel columns are hidden from SQL: the ``cutouts`` view shows the metadata only.

Ingesting band r of an object that has g adds or replaces the r columns and keeps g (the store's
upsert keeps the columns a new row does not carry); the per-object columns are recomputed from
the stored bands and the new ones.

Examples
--------
>>> report = ingest_cutouts(wh, ["cutout-HSC-G.fits", "batch.tar"])  # doctest: +SKIP
>>> show_cutout(wh, 43158034708430172, "preview.png")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from warehouse import progress
from warehouse.core import Warehouse

if TYPE_CHECKING:  # astropy is imported only when cutouts are read: `gwh sql` stays quick
    from warehouse.images.fits import CutoutImage
from warehouse.db import quote_ident
from warehouse.errors import CutoutError, QueryError
from warehouse.files import Layout, file_sha256
from warehouse.healpix import angular_separation_deg, shift, spatial_index
from warehouse.loading import Prepared, PreparedBatch
from warehouse.scratch import remove_stale, scratch_dir
from warehouse.store.contracts import CUTOUTS

LOADER_NAME = "cutouts"

MATCH_RADIUS_ARCSEC = 0.5
"""A cutout belongs to the hsc_forced object within this distance of its WCS centre."""

MATCH_ORDER = 14
"""HEALPix order of the cells searched around a cutout centre (~13 arcsec, far above 0.5")."""

FLUXNORM_CARD = "FLUXNORM"
"""A primary-header card ``FLUXNORM = T`` says the pixels are normalised, not calibrated flux
(e.g. the real COSMOS cubes shipped with scarlet): the zeropoint is then stored as NULL, whatever
``FLUXMAG0`` says."""

GALAXIESML_SIZES = (127, 64)

BAND_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("image", pa.binary()),
    ("variance", pa.binary()),
    ("mask", pa.binary()),
    ("height", pa.int32()),
    ("width", pa.int32()),
    ("zeropoint", pa.float64()),
    ("pixel_scale", pa.float64()),
    ("filter", pa.string()),
    ("masked_fraction", pa.float64()),
    ("variance_present", pa.bool_()),
    ("mask_present", pa.bool_()),
    ("simulated", pa.bool_()),
    ("source", pa.string()),
    ("center_offset_arcsec", pa.float64()),
)
OBJECT_FIELDS: tuple[tuple[str, pa.DataType], ...] = (
    ("object_id", pa.int64()),
    ("ra", pa.float64()),
    ("dec", pa.float64()),
    ("tract", pa.int32()),
    ("patch", pa.string()),
    ("rerun", pa.string()),
    ("simulated", pa.bool_()),
    ("bands", pa.string()),
    ("masked_fraction", pa.float64()),
    *((f"fit_action_{s}", pa.string()) for s in GALAXIESML_SIZES),
)

# Pixel bytes held in memory between reading the files and committing them; above it, files are
# read again when their batch is built, and batches are cut at about this size.
READ_CACHE_BYTES = 512 * 2**20
BATCH_BYTES = 256 * 2**20


def band_column(band: str, what: str) -> str:
    """``band_column("g", "image") == "g_image"``: the one rule naming per-band columns."""
    return f"{band}_{what}"


def combine_fit_actions(actions: Sequence[str]) -> str:
    """One action for an object from its bands' :func:`fit_to_size` actions."""
    cropped = any("cropped" in a for a in actions)
    padded = any("padded" in a for a in actions)
    return {
        (False, False): "none",
        (True, False): "cropped",
        (False, True): "padded",
        (True, True): "cropped+padded",
    }[(cropped, padded)]


def fit_action_of(shapes: Sequence[tuple[int, int]], size: int) -> str:
    """What :func:`fit_to_size` does to planes of these (H, W) shapes at ``size``."""
    from warehouse.images.fit import fit_to_size

    return combine_fit_actions(
        [fit_to_size(np.zeros(shape, np.int8), size).action for shape in shapes]
    )


# --------------------------------------------------------------------------- request


def request_cutouts(
    wh: Warehouse,
    out_dir: str | os.PathLike[str],
    *,
    bands: str | Sequence[str] = "grizy",
    size: str | float = "20arcsec",
    view: str = "ml_objects",
    rerun: str = "pdr2_wide",
    max_rows: int = 1000,
) -> list[Path]:
    """Write the archive's batch list files (at most ``max_rows`` rows each, one filter each)
    for every object of ``view``, ordered by object_id, each with its row -> object_id mapping
    (``<list>.json``) beside it.

    Upload each list to the DAS cutout service (or ``fetch_batch``) and give the tar back to
    :func:`ingest_cutouts`; the mapping is found beside the tar or passed with ``lists=``.
    """
    from loaders.hsc_ssp_cutouts import write_batch_lists

    try:
        rows = wh.query(f"SELECT object_id, ra, dec FROM {quote_ident(view)} ORDER BY object_id")
    except QueryError as exc:
        raise CutoutError(f"cannot list the objects of {view}: {exc}") from None
    for name in ("object_id", "ra", "dec"):
        if name not in rows.column_names:  # pragma: no cover - the SELECT names them
            raise CutoutError(f"{view} has no column {name}")
    if rows.num_rows == 0:
        raise CutoutError(f"{view} has no rows: nothing to request.")
    triples = zip(
        rows.column("object_id").to_pylist(),
        rows.column("ra").to_pylist(),
        rows.column("dec").to_pylist(),
        strict=True,
    )
    try:
        return write_batch_lists(
            triples, bands=bands, size=size, rerun=rerun, out_dir=out_dir, max_rows=max_rows
        )
    except ValueError as exc:
        raise CutoutError(f"cannot write cutout lists: {exc}") from None


# --------------------------------------------------------------------------- ingest


@dataclass
class _Input:
    """One cutout FITS file to ingest: a file given, or a member of a batch tar."""

    name: str  # as reported to the user
    path: Path  # on disk (an extracted member for tars)
    source: str  # stored in {b}_source
    container: Path  # the file the user gave (the tar for members)
    container_sha: str | None = None  # known already (in-memory arrays); else hashed from disk
    expected_id: int | None = None  # from the list mapping, for tar members
    expected_band: str | None = None
    cut: CutoutImage | None = None
    has_pixels: bool = False  # False: metadata only, the pixels are read again when committed
    fluxnorm: bool = False
    nbytes: int = 0
    object_id: int | None = None
    ra: float = 0.0
    dec: float = 0.0
    offset_arcsec: float = 0.0


@dataclass
class IngestReport:
    """What :func:`ingest_cutouts` did: images ingested, objects touched, the table after, and
    every file it did not ingest with the reason."""

    files: int = 0
    images: int = 0
    objects: int = 0
    table_rows: int = 0
    problems: list[str] = field(default_factory=list)


def _expand(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and _kind(q) in ("fits", "tar"))
            if not found:
                raise CutoutError(f"{p}: a folder with no .fits or .tar files in it.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise CutoutError(f"{p}: no such file. Check the path.")
    return out


def _kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if name.endswith((".fits", ".fit")):
        return "fits"
    return "other"


def _tar_stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _mapping_for(tar: Path, given: Path | None) -> Path:
    """The mapping JSON of a batch tar: the one given (list .txt or its .json), else
    ``<tar stem>.json`` beside the tar (``fetch_batch`` names a tar after its list)."""
    from loaders.hsc_ssp_cutouts import mapping_path

    if given is not None:
        candidate = given if given.suffix.lower() == ".json" else mapping_path(given)
        if not candidate.is_file():
            raise CutoutError(
                f"{given}: no mapping file {candidate.name} beside the list; it is written by "
                "`gwh cutouts request` next to each list."
            )
        return candidate
    candidate = tar.with_name(_tar_stem(tar) + ".json")
    if not candidate.is_file():
        raise CutoutError(
            f"{tar}: cannot tell which objects its cutouts are: no list mapping {candidate.name} "
            "beside it. Pass the list that requested it with --list LIST (the .txt or its "
            ".json), or put the mapping beside the tar."
        )
    return candidate


def _tar_inputs(tar: Path, mapping: Path, dest: Path, problems: list[str]) -> list[_Input]:
    from loaders.hsc_ssp_cutouts import members_to_objects, safe_extract
    from warehouse.images.bands import band_from_filter

    extracted = safe_extract(tar, dest)  # refuses links, absolute names and '..' first
    if not extracted:
        problems.append(f"{tar}: the tar holds no files (an empty batch); nothing to ingest.")
        return []
    expected = {
        str(PurePosixPath(m)): (oid, band) for m, oid, band in members_to_objects(tar, mapping)
    }
    root = dest.resolve()
    inputs: list[_Input] = []
    for path in extracted:
        member = path.resolve().relative_to(root).as_posix()
        if member not in expected:
            problems.append(f"{tar}:{member}: not a cutout FITS member; not ingested.")
            continue
        oid, band = expected[member]
        try:
            band = band_from_filter(band)
        except ValueError:
            pass
        inputs.append(
            _Input(
                name=f"{tar}:{member}",
                path=path,
                source=f"{tar.name}:{member}",
                container=tar,
                expected_id=oid,
                expected_band=band,
            )
        )
    return inputs


def _fluxnorm(path: Path) -> bool:
    """The primary header's ``FLUXNORM`` card, read from the raw 80-character cards (a second
    astropy parse of every file would cost as much as the rest of the read)."""
    key = FLUXNORM_CARD.ljust(8).encode("ascii")
    with open(path, "rb") as fh:
        while block := fh.read(2880):
            for i in range(0, len(block) - 79, 80):
                card = block[i : i + 80]
                if card[:8] == key and card[8:10] == b"= ":
                    return card[10:].split(b"/")[0].strip() == b"T"
                if card[:8] == b"END     ":
                    return False
    return False


def _read(inp: _Input, keep_pixels: bool) -> None:
    from warehouse.images.fits import read_cutout_fits

    cut = read_cutout_fits(inp.path)
    inp.fluxnorm = _fluxnorm(inp.path)
    inp.nbytes = sum(a.nbytes for a in (cut.image, cut.mask, cut.variance) if a is not None)
    inp.cut = cut if keep_pixels else _without_pixels(cut)
    inp.has_pixels = keep_pixels


def _without_pixels(cut: CutoutImage) -> CutoutImage:
    import dataclasses

    shape = cut.image.shape
    return dataclasses.replace(
        cut,
        image=np.broadcast_to(np.float32(0), shape),
        mask=None if cut.mask is None else np.broadcast_to(np.int32(0), shape),
        variance=None if cut.variance is None else np.broadcast_to(np.float32(0), shape),
    )


def _candidates(wh: Warehouse, ra: np.ndarray, dec: np.ndarray) -> pa.Table:
    """hsc_forced rows in the HEALPix cells around the given centres (and their neighbours)."""
    import healpy as hp

    cells = spatial_index(ra, dec) >> shift(MATCH_ORDER)
    neighbours = hp.get_all_neighbours(2**MATCH_ORDER, cells, nest=True)
    wanted = np.unique(np.concatenate([cells, np.asarray(neighbours).ravel()]))
    wanted = wanted[wanted >= 0]
    try:
        return wh.query(
            "SELECT object_id, ra, dec, _healpix_29 >> ? AS cell FROM hsc_forced "
            "WHERE (_healpix_29 >> ?) IN (SELECT unnest(?::BIGINT[])) ORDER BY object_id",
            [shift(MATCH_ORDER), shift(MATCH_ORDER), wanted.tolist()],
        )
    except QueryError as exc:
        raise CutoutError(
            f"cutouts are matched to hsc_forced objects by position, and hsc_forced cannot be "
            f"read: {exc}"
        ) from None


def _match(wh: Warehouse, inputs: list[_Input], problems: list[str]) -> list[_Input]:
    """Give each input its hsc_forced object (unique within 0.5"), or report it."""
    if not inputs:
        return []
    ra = np.array([i.cut.center_ra for i in inputs])  # type: ignore[union-attr]
    dec = np.array([i.cut.center_dec for i in inputs])  # type: ignore[union-attr]
    cand = _candidates(wh, ra, dec)
    c_id = cand.column("object_id").to_numpy()
    c_ra = cand.column("ra").to_numpy(zero_copy_only=False)
    c_dec = cand.column("dec").to_numpy(zero_copy_only=False)
    c_cell = cand.column("cell").to_numpy()
    order = np.argsort(c_cell, kind="stable")
    c_cell_sorted = c_cell[order]
    cells = spatial_index(ra, dec) >> shift(MATCH_ORDER)
    import healpy as hp

    neighbours = np.asarray(hp.get_all_neighbours(2**MATCH_ORDER, cells, nest=True))
    matched = []
    for k, inp in enumerate(inputs):
        near_cells = np.unique(np.append(neighbours[:, k], cells[k]))
        idx = np.concatenate(
            [
                order[
                    np.searchsorted(c_cell_sorted, c, "left") : np.searchsorted(
                        c_cell_sorted, c, "right"
                    )
                ]
                for c in near_cells
                if c >= 0
            ]
        )
        dist = angular_separation_deg(c_ra[idx], c_dec[idx], ra[k], dec[k]) * 3600.0
        inside = np.flatnonzero(dist <= MATCH_RADIUS_ARCSEC)
        inside = inside[np.lexsort((c_id[idx][inside], dist[inside]))]
        where = f"cutout centre ({ra[k]:.6f}, {dec[k]:.6f})"
        if inside.size == 0:
            problems.append(
                f"{inp.name}: no hsc_forced object within {MATCH_RADIUS_ARCSEC} arcsec of the "
                f"{where}; load the catalog rows of this object first. Not ingested."
            )
            continue
        ids = [int(c_id[idx][j]) for j in inside]
        pick = inside[0]
        if len(ids) > 1:
            if inp.expected_id is not None and inp.expected_id in ids:
                pick = inside[ids.index(inp.expected_id)]  # the list that asked for it decides
            else:
                listed = ", ".join(
                    f"{i} at {dist[j]:.3f} arcsec" for i, j in zip(ids, inside, strict=True)
                )
                problems.append(
                    f"{inp.name}: ambiguous: {len(ids)} hsc_forced objects within "
                    f"{MATCH_RADIUS_ARCSEC} arcsec of the {where} ({listed}). Not ingested."
                )
                continue
        oid = int(c_id[idx][pick])
        if inp.expected_id is not None and oid != inp.expected_id:
            problems.append(
                f"{inp.name}: its list row asked for object_id {inp.expected_id}, but the "
                f"{where} matches object_id {oid}; wrong list mapping? Not ingested."
            )
            continue
        if inp.expected_band is not None and inp.cut.band != inp.expected_band:  # type: ignore[union-attr]
            problems.append(
                f"{inp.name}: its list asked for band {inp.expected_band}, but the file's "
                f"FILTER is {inp.cut.filter_name}. Not ingested."  # type: ignore[union-attr]
            )
            continue
        inp.object_id = oid
        inp.ra = float(c_ra[idx][pick])
        inp.dec = float(c_dec[idx][pick])
        inp.offset_arcsec = float(dist[pick])
        matched.append(inp)
    return matched


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
    oid: int, items: dict[str, _Input], stored: dict | None, bands: Sequence[str]
) -> dict:
    """Per-object columns, from the new bands and those already stored."""
    from warehouse.images.masks import masked_fraction

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


def _band_values(inp: _Input) -> dict:
    from warehouse.images.masks import masked_fraction

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
    objects: list[tuple[int, dict[str, _Input]]],
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


def ingest_cutouts(
    wh: Warehouse,
    paths: Sequence[str | os.PathLike[str]],
    *,
    lists: Sequence[str | os.PathLike[str]] = (),
    echo: Callable[[str], None] = lambda _msg: None,
) -> IngestReport:
    """Ingest cutout FITS files and DAS batch tars into the ``cutouts`` table.

    Each file is read with :func:`~warehouse.images.fits.read_cutout_fits` (IMAGE, MASK,
    VARIANCE; pixels kept exactly), given its band by ``FILTER`` and its object by its WCS
    centre: the one ``hsc_forced`` object within 0.5 arcsec. A tar's members
    (``<N>-cutout-<FILTER>-<tract>-<rerun>.fits``, list row N-2) are extracted with
    ``safe_extract`` (nothing is written outside a temporary folder) and checked against the list
    mapping (``lists``, paired with the tars in order, else ``<tar stem>.json`` beside the tar):
    the row's object_id must be the WCS match and its band the file's FILTER.

    Policy for files that cannot be ingested (unreadable, unknown band, no or several objects
    within 0.5", disagreeing with the list, two files for one object and band): every file that
    matched is ingested and committed, then a :class:`CutoutError` lists each file left out with
    the reason (the CLI exits 1). A missing path, a tar without its list mapping, a wrong mapping
    or an unsafe tar stop everything before any ingest.

    Re-ingesting an object's band replaces it; other bands and objects are kept.
    """
    files = _expand(paths)
    tars = [p for p in files if _kind(p) == "tar"]
    if lists and len(lists) != len(tars):
        raise CutoutError(
            f"{len(lists)} --list file(s) for {len(tars)} tar(s): give one list per tar, in the "
            "same order, or none (then each tar's <stem>.json beside it is used)."
        )
    given = dict(zip(tars, [Path(p) for p in lists], strict=True)) if lists else {}
    bands = wh.config.bands
    report = IngestReport()
    problems = report.problems
    with ingest_workdir(wh.root) as tmp:
        inputs: list[_Input] = []
        for k, path in enumerate(files):
            kind = _kind(path)
            if kind == "tar":
                mapping = _mapping_for(path, given.get(path))
                inputs.extend(_tar_inputs(path, mapping, tmp / f"tar{k}", problems))
            elif kind == "fits":
                inputs.append(_Input(path.name, path, path.name, path))
            else:
                problems.append(
                    f"{path}: not a cutout FITS file (.fits) or batch tar (.tar); not ingested."
                )
        report.files = len(inputs)

        cached = 0
        readable: list[_Input] = []
        for inp in progress.iterate(inputs, desc="reading cutouts", unit="file"):
            try:
                _read(inp, keep_pixels=cached < READ_CACHE_BYTES)
            except CutoutError as exc:
                problems.append(f"{inp.name}: {_strip_path(str(exc), inp.path)} Not ingested.")
                continue
            assert inp.cut is not None
            if inp.cut.band not in bands:
                problems.append(
                    f"{inp.name}: band {inp.cut.band} ({inp.cut.filter_name}) is not one of the "
                    f"configured bands {', '.join(bands)} (warehouse.toml). Not ingested."
                )
                continue
            cached += inp.nbytes if inp.has_pixels else 0
            readable.append(inp)

        matched = _match(wh, readable, problems)
        by_key: dict[tuple[int, str], list[_Input]] = {}
        for inp in matched:
            by_key.setdefault((inp.object_id, inp.cut.band), []).append(inp)  # type: ignore[arg-type, union-attr]
        objects: dict[int, dict[str, _Input]] = {}
        grouped = 0  # files beyond the first in a refused group (one problem line each group)
        for (oid, band), group in sorted(by_key.items()):
            if len(group) > 1:
                grouped += len(group) - 1
                names = ", ".join(i.name for i in group)
                problems.append(
                    f"object_id {oid} band {band}: {len(group)} files ({names}); which one to "
                    "keep is yours to say: ingest only one of them. None ingested."
                )
                continue
            objects.setdefault(oid, {})[band] = group[0]

        results = wh.ingest_prepared(
            LOADER_NAME,
            _batches(wh, objects, bands, report),
            max_rows=wh.config.cutouts_max_rows_per_partition,
        )
        if not results and not problems:
            echo("no cutout files to ingest; the warehouse is unchanged")
        if results:
            report.table_rows = results[-1].tables[CUTOUTS.name][1]
            echo(
                f"ingested {report.images:,} band image(s) of {report.objects:,} object(s) in "
                f"{len(results)} commit(s); cutouts now holds {report.table_rows:,} objects"
            )
    if problems:
        shown = "\n  ".join(problems[:50])
        more = f"\n  ... and {len(problems) - 50} more" if len(problems) > 50 else ""
        raise CutoutError(
            f"{len(problems) + grouped} file(s) not ingested"
            + (f" ({report.images} band image(s) of the others were)" if report.images else "")
            + f":\n  {shown}{more}"
        )
    return report


WORKDIR_PREFIX = "ingest-"


@contextlib.contextmanager
def ingest_workdir(root: Path) -> Iterator[Path]:
    """A scratch folder for extracted tar members, ``<root>/cache/tmp/ingest-<host>-<pid>-...``.

    It sits inside the warehouse rather than in the system temp folder, so a killed ingest
    cannot fill ``/tmp`` unnoticed: each run first removes the folders whose owner process is
    gone (:func:`warehouse.scratch.remove_stale`), then removes its own when it ends.
    """
    parent = Layout(Path(root)).scratch
    remove_stale(parent, WORKDIR_PREFIX)
    with scratch_dir(parent, WORKDIR_PREFIX) as path:
        yield path


def _strip_path(message: str, path: Path) -> str:
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


def _batches(
    wh: Warehouse,
    objects: dict[int, dict[str, _Input]],
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
                        _reread(objects[oid][b])
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
                    inp.cut, inp.has_pixels = _without_pixels(inp.cut), False  # type: ignore[arg-type]


def ingest_arrays(
    wh: Warehouse,
    object_ids: Sequence[int],
    images: Mapping[str, np.ndarray],
    *,
    simulated: bool,
    source: str,
    variance: Mapping[str, np.ndarray] | None = None,
    mask: Mapping[str, np.ndarray] | None = None,
    zeropoint: float | None = 27.0,
    pixel_scale: float = 0.168,  # HSC coadds
) -> IngestReport:
    """Ingest in-memory cutouts of objects known by object_id (no WCS to match): simulations,
    benchmarks, converted image tables.

    ``images[b]`` is (N, H, W) for band ``b``, row k belonging to ``object_ids[k]``; ``variance``
    and ``mask`` likewise (float32, int32). Positions come from ``hsc_forced``: an object_id not
    there is an error naming it. ``source`` names the data in ``{b}_source`` and ``gwh_loads``
    (with the SHA-256 of the arrays). ``zeropoint=None`` marks pixels that are not calibrated
    flux. Everything commits as one version (or a few, for large inputs).
    """
    import hashlib

    from warehouse.images.fits import CutoutImage

    ids = [int(i) for i in object_ids]
    if len(set(ids)) != len(ids):
        raise CutoutError("object_ids lists an object twice; give each object once.")
    bands = [b for b in wh.config.bands if b in images]
    unknown = [b for b in images if b not in wh.config.bands]
    if unknown or not bands:
        raise CutoutError(
            f"bands {', '.join(unknown) or '(none)'}: give images for the configured bands "
            f"{', '.join(wh.config.bands)}."
        )
    digest = hashlib.sha256()
    for plane in (images, variance or {}, mask or {}):
        for b in sorted(plane):
            arr = np.asarray(plane[b])
            if arr.ndim != 3 or arr.shape[0] != len(ids):
                raise CutoutError(
                    f"{b}: arrays must be (N, H, W) with N = {len(ids)} objects, got {arr.shape}"
                )
            digest.update(np.ascontiguousarray(arr).tobytes())
    found = wh.query(
        "SELECT object_id, ra, dec FROM hsc_forced WHERE object_id IN (SELECT unnest(?::BIGINT[]))",
        [ids],
    ).to_pylist()
    where = {r["object_id"]: (r["ra"], r["dec"]) for r in found}
    missing = [i for i in ids if i not in where]
    if missing:
        raise CutoutError(
            f"{len(missing)} object_id(s) are not in hsc_forced (e.g. {missing[:5]}); load their "
            "catalog rows first: cutouts take the position of their catalog object."
        )
    sha = digest.hexdigest()
    objects: dict[int, dict[str, _Input]] = {}
    for k, oid in enumerate(ids):
        ra, dec = where[oid]
        for b in bands:
            var = None if variance is None or b not in variance else variance[b][k]
            msk = None if mask is None or b not in mask else mask[b][k]
            cut = CutoutImage(
                band=b,
                filter_name=f"HSC-{b.upper()}" if b in "grizy" else b,
                image=np.asarray(images[b][k], dtype=np.float32),
                mask=None if msk is None else np.asarray(msk, dtype=np.int32),
                variance=None if var is None else np.asarray(var, dtype=np.float32),
                zeropoint=27.0 if zeropoint is None else float(zeropoint),
                pixel_scale=float(pixel_scale),
                center_ra=float(ra),
                center_dec=float(dec),
                simulated=bool(simulated),
            )
            inp = _Input(
                name=f"{source}[{k}]",
                path=Path(source),
                source=source,
                container=Path(source),
                container_sha=sha,
                cut=cut,
                has_pixels=True,
                fluxnorm=zeropoint is None,
                object_id=oid,
                ra=float(ra),
                dec=float(dec),
            )
            inp.nbytes = sum(a.nbytes for a in (cut.image, cut.mask, cut.variance) if a is not None)
            objects.setdefault(oid, {})[b] = inp
    report = IngestReport(files=0)
    results = wh.ingest_prepared(
        LOADER_NAME,
        _batches(wh, objects, wh.config.bands, report),
        max_rows=wh.config.cutouts_max_rows_per_partition,
    )
    if results:
        report.table_rows = results[-1].tables[CUTOUTS.name][1]
    return report


def _reread(inp: _Input) -> None:
    before = inp.cut
    _read(inp, keep_pixels=True)
    after = inp.cut
    assert before is not None and after is not None
    if (after.band, after.shape) != (before.band, before.shape) or abs(
        after.center_ra - before.center_ra
    ) + abs(after.center_dec - before.center_dec) > 1e-9:
        raise CutoutError(f"{inp.name} changed while it was being ingested; ingest it again.")


# --------------------------------------------------------------------------- reading back


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


def decode_plane(blob: bytes, height: int, width: int, what: str) -> np.ndarray:
    """A stored plane as its (H, W) array: float32 for image/variance, int32 for mask."""
    dtype = "<i4" if what == "mask" else "<f4"
    arr = np.frombuffer(blob, dtype=dtype)
    if arr.size != height * width:
        raise CutoutError(
            f"stored {what} holds {arr.size} values, expected {height}x{width}; the cutouts "
            "table is damaged: ingest the object again."
        )
    return arr.reshape(height, width)


def read_cutout(wh: Warehouse, object_id: int, bands: Sequence[str] | None = None) -> StoredCutout:
    """Read one object's stored cutouts (all planes) back as arrays."""
    import pyarrow.parquet as pq

    from warehouse.images.fit import fit_to_size

    bands = tuple(bands or wh.config.bands)
    cv = wh.current_version(CUTOUTS.name)
    if cv is None:
        raise CutoutError("no cutouts have been ingested yet. Run `gwh cutouts ingest FILE`.")
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


def show_cutout(
    wh: Warehouse, object_id: int, png: str | os.PathLike[str], bands: Sequence[str] | None = None
) -> Path:
    """Save a preview PNG of one object (:func:`warehouse.plots.plot_cutout`): a Lupton RGB
    composite (i, r, g) with a scale bar, the object's id, position and redshift, one panel per
    band with a colour bar in the stored pixel units. Missing bands are drawn blank and named;
    simulated images say SIMULATED."""
    from warehouse.plots import plot_cutout

    return plot_cutout(wh, object_id, png, bands).path
