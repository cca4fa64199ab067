"""The warehouse side of HSC-SSP cutouts: batch lists for a view's objects
(:func:`request_cutouts`, ``gwh cutouts request``) and batch tars or FITS files matched and stored
in the cutouts table (:func:`ingest_cutouts`, ``gwh cutouts ingest``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from loaders.hsc_ssp.das import mapping_path, write_batch_lists
from loaders.hsc_ssp.tars import members_to_objects, safe_extract
from warehouse.cutouts import CutoutInput, IngestReport, expand_paths, file_kind
from warehouse.cutouts import ingest_cutouts as warehouse_ingest
from warehouse.db import quote_ident
from warehouse.errors import CutoutError, QueryError
from warehouse.images.bands import band_from_filter

if TYPE_CHECKING:
    from warehouse.core import Warehouse


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
    wh.layout.refuse_owned(Path(out_dir), "--out")
    try:
        columns = wh.query(f"SELECT * FROM {quote_ident(view)} LIMIT 0").column_names
    except QueryError as exc:
        raise CutoutError(f"cannot list the objects of {view}: {exc}") from None
    lacking = [c for c in ("object_id", "ra", "dec") if c not in columns]
    if lacking:
        raise CutoutError(
            f"{view} has no {' or '.join(lacking)} column: cutouts are requested at each "
            "object's position; give a view that has them (--view ml_objects, hsc_forced)."
        )
    try:
        rows = wh.query(f"SELECT object_id, ra, dec FROM {quote_ident(view)} ORDER BY object_id")
    except QueryError as exc:
        raise CutoutError(f"cannot list the objects of {view}: {exc}") from None
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


def ingest_cutouts(
    wh: Warehouse,
    paths: Sequence[str | os.PathLike[str]],
    *,
    lists: Sequence[str | os.PathLike[str]] = (),
    echo: Callable[[str], None] = lambda _msg: None,
) -> IngestReport:
    """Ingest cutout FITS files and DAS batch tars (:func:`warehouse.cutouts.ingest_cutouts`).

    A tar's members (``<N>-cutout-<FILTER>-<tract>-<rerun>.fits``, list row N-2) are extracted
    with :func:`safe_extract` (nothing is written outside the ingest's scratch folder) and checked
    against the list mapping (``lists``, paired with the tars in order, else ``<tar stem>.json``
    beside the tar): the row's object_id must be the WCS match and its band the file's FILTER.
    A tar without its list mapping, a wrong mapping or an unsafe tar stop everything before any
    ingest.
    """
    tars = [p for p in expand_paths(paths) if file_kind(p) == "tar"]
    if lists and len(lists) != len(tars):
        raise CutoutError(
            f"{len(lists)} --list file(s) for {len(tars)} tar(s): give one list per tar, in the "
            "same order, or none (then each tar's <stem>.json beside it is used)."
        )
    given = dict(zip(tars, [Path(p) for p in lists], strict=True)) if lists else {}

    def expand(tar: Path, dest: Path, problems: list[str]) -> list[CutoutInput]:
        return tar_inputs(tar, mapping_for(tar, given.get(tar)), dest, problems)

    return warehouse_ingest(wh, paths, expand=expand, echo=echo)


def tar_stem(path: Path) -> str:
    name = path.name
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def mapping_for(tar: Path, given: Path | None) -> Path:
    """The mapping JSON of a batch tar: the one given (list .txt or its .json), else
    ``<tar stem>.json`` beside the tar (``fetch_batch`` names a tar after its list)."""
    if given is not None:
        candidate = given if given.suffix.lower() == ".json" else mapping_path(given)
        if not candidate.is_file():
            raise CutoutError(
                f"{given}: no mapping file {candidate.name} beside the list; it is written by "
                "`gwh cutouts request` next to each list."
            )
        return candidate
    candidate = tar.with_name(tar_stem(tar) + ".json")
    if not candidate.is_file():
        raise CutoutError(
            f"{tar}: cannot tell which objects its cutouts are: no list mapping {candidate.name} "
            "beside it. Pass the list that requested it with --list LIST (the .txt or its "
            ".json), or put the mapping beside the tar."
        )
    return candidate


def tar_inputs(tar: Path, mapping: Path, dest: Path, problems: list[str]) -> list[CutoutInput]:
    """The cutout members of a batch tar, extracted under ``dest``, each with the object and band
    its list row requested; members that are not cutouts go to ``problems``."""
    extracted = safe_extract(tar, dest)  # refuses links, absolute names and '..' first
    if not extracted:
        problems.append(f"{tar}: the tar holds no files (an empty batch); nothing to ingest.")
        return []
    expected = {
        str(PurePosixPath(m)): (oid, band) for m, oid, band in members_to_objects(tar, mapping)
    }
    root = dest.resolve()
    inputs: list[CutoutInput] = []
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
            CutoutInput(
                name=f"{tar}:{member}",
                path=path,
                source=f"{tar.name}:{member}",
                container=tar,
                expected_id=oid,
                expected_band=band,
            )
        )
    return inputs


def request_command(
    wh: Warehouse, *, out_dir: Path, echo: Callable[[str], None], **options: Any
) -> None:
    """``gwh cutouts request``: :func:`request_cutouts`, and what to do with the lists."""
    lists = request_cutouts(wh, out_dir, **options)
    for path in lists:
        echo(f"wrote {path} (+ {path.with_suffix('.json').name})")
    echo(
        f"{len(lists)} list(s). Upload each to the DAS cutout service, then: "
        "gwh cutouts ingest TAR... (the .json beside the tar, or --list LIST)"
    )


def ingest_command(
    wh: Warehouse,
    *,
    paths: Sequence[Path],
    lists: Sequence[Path] | None = None,
    echo: Callable[[str], None],
) -> None:
    """``gwh cutouts ingest``: :func:`ingest_cutouts` of files, tars and folders."""
    ingest_cutouts(wh, paths, lists=lists or (), echo=echo)
