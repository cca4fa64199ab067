"""Galaxy Zoo morphology (GZ2 votes, Willett et al. 2013; GZ1 classes, Schawinski et al. 2010)
as the warehouse table ``galaxy_zoo``.

GZ1: a FITS catalogue such as ``schawinski_GZ_2010_catalogue.fits`` with ``OBJID`` (SDSS, int64),
``RA``, ``DEC``, ``REDSHIFT``, ``GZ1_MORPHOLOGY`` (0, 1, 3 or 4, kept as given), ``BPT_CLASS``,
``U``...``Z``, ``SIGMA``, ``SIGMA_ERR``, ``LOG_MSTELLAR``, ``L_O3``. That file holds one row of
arrays (one element per galaxy); a table with one galaxy per row reads as well. Names are stored
lower case (``objid``, ``gz1_morphology``); GZ1 and GZ2 rows of one ``objid`` share its row.

Input: a GZ2 table as CSV (``.csv`` or ``.csv.gz``), e.g. the Stripe 82 coadd tables or the main
sample, with ``objid`` (SDSS, or ``dr7objid``), ``ra``, ``dec``, ``total_votes``,
``total_classifications`` and, per task and answer, ``tNN_<task>_aNN_<answer>_{count, weight,
fraction, weighted_fraction, debiased, flag}``. Every column is kept, typed (counts int32,
fractions float64, flags boolean); ``objid`` is read as int64 straight from the text.

A morphology label is derived from task 1 ("smooth or features"): the answer whose GZ2 ``_flag``
is set (the paper's clean-sample flag) gives ``gz2_task1_class`` = ``smooth``,
``features_or_disk`` or ``star_or_artifact``, and ``gz2_label`` = 0, 1 or 2; a galaxy with no (or
more than one) flag set is ``uncertain``, label -1. The mapping is stored in the ``gz2_label``
field's metadata.

After loading, :func:`match_to_catalog` matches each galaxy by position to ``hsc_forced`` (when
that table is loaded): ``hsc_object_id`` and ``hsc_match_arcsec`` (NULL when nothing lies within
the radius).
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loaders.base import (
    check_positions,
    check_unique,
    require_columns,
    require_rows,
)
from loaders.images import encode_labels, label_field
from loaders.readers import SourceTable, cast_declared, check_names, one_line, read_table
from warehouse.errors import LoadError
from warehouse.files import atomic_write_bytes, file_sha256
from warehouse.loading import Prepared
from warehouse.store.contracts import GALAXY_ZOO

if TYPE_CHECKING:
    from warehouse.core import Warehouse

__all__ = [
    "GALAXY_ZOO",
    "GZ2_LABELS",
    "MatchSummary",
    "load_galaxy_zoo",
    "match_to_catalog",
]

GZ2_LABELS = {"smooth": 0, "features_or_disk": 1, "star_or_artifact": 2, "uncertain": -1}
_TASK1 = {
    "smooth": "t01_smooth_or_features_a01_smooth",
    "features_or_disk": "t01_smooth_or_features_a02_features_or_disk",
    "star_or_artifact": "t01_smooth_or_features_a03_star_or_artifact",
}
_VOTE = re.compile(r"^t\d\d_.+_a\d\d_.+_(count|weight|fraction|weighted_fraction|debiased|flag)$")


def gz2_type(name: str) -> pa.DataType | None:
    """Declared type of a GZ2 column (None: as the file has it)."""
    if name in ("objid", "dr7objid"):
        return pa.int64()
    if name in ("ra", "dec"):
        return pa.float64()
    if name in ("total_votes", "total_classifications"):
        return pa.int32()
    if name in ("sample", "gz2_class", "rastring", "decstring"):
        return pa.string()
    match = _VOTE.match(name)
    if match:
        kind = match.group(1)
        return {"count": pa.int32(), "flag": pa.bool_()}.get(kind, pa.float64())
    return None


def task1_class(table: pa.Table, what: str) -> list[str]:
    """The task-1 class of each row from the GZ2 flags (``uncertain`` unless exactly one)."""
    flags = []
    for cls, prefix in _TASK1.items():
        col = f"{prefix}_flag"
        if col not in table.column_names:
            raise LoadError(
                f"{what}: missing {col}; the task-1 label needs the GZ2 flags of all three "
                "answers (smooth, features_or_disk, star_or_artifact)."
            )
        flags.append((cls, table.column(col).fill_null(False).to_numpy(zero_copy_only=False)))
    n_set = sum(f.astype(np.int8) for _, f in flags)
    out = np.full(table.num_rows, "uncertain", dtype=object)
    for cls, f in flags:
        out[f & (n_set == 1)] = cls
    return out.tolist()


GZ1_CODES = (0, 1, 3, 4)
"""Values of ``GZ1_MORPHOLOGY`` in the Schawinski et al. (2010) catalogue, kept as they are: the
warehouse does not rename them (see the catalogue's documentation for their meaning)."""


def gz_type(name: str) -> pa.DataType | None:
    """Declared type of a GZ2 column, or of a GZ1 catalogue column (Schawinski et al. 2010)."""
    if name in ("gz1_morphology", "bpt_class"):
        return pa.int16()
    if name in ("redshift", "sigma", "sigma_err", "log_mstellar", "l_o3"):
        return pa.float64()
    return gz2_type(name)


def _read_gz1_fits(path: Path) -> SourceTable:
    """A GZ1 FITS catalogue. ``schawinski_GZ_2010_catalogue.fits`` stores ONE row whose every
    column is an array over the galaxies; a table with one galaxy per row reads as well."""
    from astropy.io import fits

    try:
        # our own handle: astropy leaves its file open when a damaged header aborts fits.open
        with open(path, "rb") as fh, fits.open(fh, memmap=False) as hdul:
            hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU)), None)
            if hdu is None:
                raise LoadError(f"{path} has no binary table HDU; give the GZ1 catalogue FITS.")
            names = check_names(hdu.columns.names, path)
            raw = [np.asarray(hdu.data[n]) for n in hdu.columns.names]
    except LoadError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise LoadError(
            f"{path} is unreadable as FITS ({type(exc).__name__}: {one_line(exc)})."
        ) from None
    if raw and all(a.ndim == 2 and a.shape[0] == 1 for a in raw):
        raw = [a[0] for a in raw]  # one row of arrays -> one galaxy per row
    lengths = {a.shape[0] for a in raw if a.ndim >= 1}
    if any(a.ndim != 1 for a in raw) or len(lengths) > 1:
        shapes = ", ".join(f"{n}{a.shape}" for n, a in zip(names, raw, strict=True))
        raise LoadError(
            f"{path}: columns must be one value per galaxy, or one row of equal-length arrays "
            f"(the GZ1 catalogue layout); got {shapes}."
        )
    arrays = {}
    for name, a in zip(names, raw, strict=True):
        if a.dtype.kind in "SU":
            a = np.char.rstrip(a.astype(str))
        elif a.dtype.byteorder not in ("=", "|"):
            a = a.astype(a.dtype.newbyteorder("="))
        arrays[name] = pa.array(a)
    table = cast_declared(pa.table(arrays), gz_type, path, row_offset=1, row_word="galaxy")
    return SourceTable(path, table, 1, "galaxy")


def _check_gz1(src: SourceTable) -> None:
    col = src.table.column("gz1_morphology")
    values = col.to_numpy(zero_copy_only=False)
    valid = col.is_valid().to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(~valid | ~np.isin(values, GZ1_CODES))
    if bad.size:
        i = int(bad[0])
        raise LoadError(
            f"{src.where(i)}: GZ1_MORPHOLOGY = {col[i].as_py()} is not one of "
            f"{', '.join(map(str, GZ1_CODES))} ({bad.size} such galaxies); is this the GZ1 "
            "catalogue?"
        )


class GalaxyZooLoader:
    name = "galaxy-zoo"
    description = (
        "a Galaxy Zoo 2 table (CSV: objid, ra, dec and the vote columns) or a GZ1 catalogue "
        "(FITS: OBJID, RA, DEC, GZ1_MORPHOLOGY, ...)"
    )

    def __init__(self, radius_arcsec: float = 1.0) -> None:
        _check_radius(radius_arcsec)  # before any file is read: a bad option loads nothing
        self.radius_arcsec = radius_arcsec

    def after_load(
        self, wh: Warehouse, echo: Callable[[str], None] = lambda _m: None
    ) -> MatchSummary | None:
        """Match ``galaxy_zoo`` to ``hsc_forced`` by position (when it is loaded)."""
        summary = match_to_catalog(wh, radius_arcsec=self.radius_arcsec, echo=echo)
        if summary is None:
            echo("galaxy_zoo: no hsc_forced table to match positions to (load one, then rerun).")
        return summary

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        if Path(path).suffix.lower() in (".fits", ".fit"):
            src = _read_gz1_fits(Path(path))
        else:
            src = read_table(path, gz2_type)
        table = src.table
        if "objid" not in table.column_names and "dr7objid" in table.column_names:
            table = table.rename_columns(
                ["objid" if c == "dr7objid" else c for c in table.column_names]
            )
            src = SourceTable(src.path, table, src.first_row, src.row_word)
        require_columns(src, ("objid", "ra", "dec"), "galaxy_zoo")
        require_rows(src, "galaxy_zoo")
        empty = table.column("objid").null_count
        if empty:
            first = int(np.flatnonzero(~table.column("objid").is_valid().to_numpy())[0])
            raise LoadError(
                f"{src.where(first)}: objid is empty ({empty} row(s) in all); every galaxy "
                "needs its SDSS objid."
            )
        check_positions(src, "ra", "dec")
        check_unique(src, table, GALAXY_ZOO.key)
        if "gz1_morphology" in table.column_names:  # GZ1: its class code, no GZ2 task-1 votes
            _check_gz1(src)
            return [Prepared(GALAXY_ZOO, table)]
        if Path(path).suffix.lower() in (".fits", ".fit"):  # the GZ2 flags are CSV columns
            raise LoadError(
                f"{src.path}: a GZ1 catalogue needs its GZ1_MORPHOLOGY column (0, 1, 3 or 4), "
                "which this FITS file lacks; give the Schawinski et al. (2010) catalogue, or a "
                "Galaxy Zoo 2 table as CSV."
            )
        classes = task1_class(table, str(src.path))
        labels = encode_labels(classes, GZ2_LABELS, str(src.path))
        for name in ("gz2_task1_class", "gz2_label"):
            if name in table.column_names:
                table = table.drop_columns([name])
        table = table.append_column(pa.field("gz2_task1_class", pa.string()), pa.array(classes))
        table = table.append_column(label_field("gz2_label", GZ2_LABELS, "gz2_task1_class"), labels)
        return [Prepared(GALAXY_ZOO, table)]


class GalaxyZooMatchLoader:
    """Internal: adds the position match columns (written by :func:`match_to_catalog`)."""

    name = "galaxy-zoo-match"
    description = "position matches of galaxy_zoo to a catalog (written by gwh load galaxy-zoo)"

    def prepare(self, path: Path, wh: Warehouse | None = None) -> list[Prepared]:
        table = pq.read_table(path)
        return [Prepared(GALAXY_ZOO, table)]


# -- matching ------------------------------------------------------------------------------------

MATCH_ORDER = 12  # HEALPix order of the candidate search (pixels ~52 arcsec across)


@dataclass(frozen=True)
class MatchSummary:
    catalog: str
    radius_arcsec: float
    galaxies: int
    matched: int


def _check_radius(radius_arcsec: float) -> None:
    if not (0 < radius_arcsec <= 60):  # NaN too
        raise LoadError(f"match radius must be in (0, 60] arcsec, got {radius_arcsec}")


def candidate_pixels(ra: np.ndarray, dec: np.ndarray, radius_arcsec: float, order: int):  # type: ignore[no-untyped-def]
    """(row, pixel) pairs: every order-``order`` NESTED pixel touching each disc."""
    import healpy as hp

    nside = 2**order
    vecs = hp.ang2vec(ra, dec, lonlat=True)
    rows, pixels = [], []
    radius = np.radians(radius_arcsec / 3600.0)
    for i, vec in enumerate(np.atleast_2d(vecs)):
        pix = hp.query_disc(nside, vec, radius, inclusive=True, nest=True)
        rows.append(np.full(pix.size, i, dtype=np.int64))
        pixels.append(pix.astype(np.int64))
    if not rows:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(rows), np.concatenate(pixels)


def match_to_catalog(
    wh,  # type: ignore[no-untyped-def]
    *,
    catalog: str = "hsc_forced",
    radius_arcsec: float = 1.0,
    echo: Callable[[str], None] = lambda _m: None,
) -> MatchSummary | None:
    """Match every galaxy of ``galaxy_zoo`` to the nearest ``catalog`` object within the radius.

    Exact at HEALPix borders: candidates come from every pixel touching each disc. Ties go to
    the smaller object_id. Returns None when ``catalog`` or ``galaxy_zoo`` is not loaded.
    """
    import duckdb

    _check_radius(radius_arcsec)
    if catalog != "hsc_forced":
        raise LoadError(f"galaxy_zoo is matched to hsc_forced only, not {catalog!r}")
    if wh.current_version("galaxy_zoo") is None or wh.current_version(catalog) is None:
        return None
    gz = wh.query("SELECT objid, ra, dec FROM galaxy_zoo ORDER BY objid")
    ra = gz.column("ra").to_numpy(zero_copy_only=False)
    dec = gz.column("dec").to_numpy(zero_copy_only=False)
    rows, pixels = candidate_pixels(ra, dec, radius_arcsec, MATCH_ORDER)
    cands = pa.table(
        {
            "objid": pc.take(gz.column("objid"), pa.array(rows)),
            "gz_ra": pc.take(gz.column("ra"), pa.array(rows)),
            "gz_dec": pc.take(gz.column("dec"), pa.array(rows)),
            "pix": pa.array(pixels, pa.int64()),
        }
    )
    shift = 2 * (29 - MATCH_ORDER)
    with wh.connect(read_only=True) as con:
        con.register("gwh_gz_candidates", cands)
        try:
            matched = con.sql(
                "SELECT c.objid, o.object_id AS hsc_object_id, "
                "angular_distance_arcsec(c.gz_ra, c.gz_dec, o.ra, o.dec) AS hsc_match_arcsec "
                f"FROM gwh_gz_candidates c JOIN hsc_forced o ON (o._healpix_29 >> {shift}) = c.pix "
                "WHERE angular_distance_arcsec(c.gz_ra, c.gz_dec, o.ra, o.dec) <= ? "
                "QUALIFY row_number() OVER (PARTITION BY c.objid "
                "ORDER BY hsc_match_arcsec, o.object_id) = 1",
                params=[radius_arcsec],
            ).to_arrow_table()
        except duckdb.Error as exc:
            raise LoadError(f"matching galaxy_zoo to {catalog} failed: {exc}") from None
    by_id = {r["objid"]: (r["hsc_object_id"], r["hsc_match_arcsec"]) for r in matched.to_pylist()}
    ids = gz.column("objid").to_pylist()
    out = pa.table(
        {
            "objid": pa.array(ids, pa.int64()),
            "hsc_object_id": pa.array([by_id.get(i, (None, None))[0] for i in ids], pa.int64()),
            "hsc_match_arcsec": pa.array(
                [by_id.get(i, (None, None))[1] for i in ids], pa.float64()
            ),
        }
    )
    buffer = io.BytesIO()
    pq.write_table(out, buffer)
    folder = wh.layout.cache("galaxy_zoo")
    tmp = atomic_write_bytes(folder / "match.parquet.tmp", buffer.getvalue())
    final = folder / f"match-{catalog}-{file_sha256(tmp)[:16]}.parquet"
    tmp.replace(final)
    wh.load(GalaxyZooMatchLoader(), [final], echo=lambda _m: None)
    summary = MatchSummary(catalog, radius_arcsec, len(ids), len(by_id))
    echo(
        f"galaxy_zoo: {summary.matched:,} of {summary.galaxies:,} galaxies matched to {catalog} "
        f"within {radius_arcsec:g} arcsec (hsc_object_id, hsc_match_arcsec)"
    )
    return summary


def load_galaxy_zoo(
    wh,  # type: ignore[no-untyped-def]
    files: list[Path],
    *,
    radius_arcsec: float = 1.0,
    echo: Callable[[str], None] = lambda _m: None,
) -> MatchSummary | None:
    """Load GZ2 files into ``galaxy_zoo``, then match the table to ``hsc_forced`` if loaded."""
    loader = GalaxyZooLoader(radius_arcsec)
    wh.load(loader, files, echo=echo)
    return loader.after_load(wh, echo)
