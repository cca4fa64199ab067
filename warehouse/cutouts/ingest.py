"""Ingest cutouts into the ``cutouts`` table: FITS files (:func:`ingest_cutouts`; containers
such as DAS batch tars are opened by the caller's ``expand``) and in-memory arrays
(:func:`ingest_arrays`)."""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from warehouse import progress
from warehouse.cutouts.inputs import (
    READ_CACHE_BYTES,
    CutoutInput,
    IngestReport,
    expand_paths,
    file_kind,
    read_input,
)
from warehouse.cutouts.match import match_inputs
from warehouse.cutouts.rows import LOADER_NAME, batches
from warehouse.errors import CutoutError, CutoutsLeftOutError
from warehouse.files import Layout
from warehouse.images.fits import CutoutImage
from warehouse.scratch import remove_stale, scratch_dir
from warehouse.store.contracts import CUTOUTS

if TYPE_CHECKING:
    from warehouse.core import Warehouse

Expand = Callable[[Path, Path, list[str]], list[CutoutInput]]
"""``expand(container, scratch_folder, problems)``: the cutout files inside a container the caller
knows (e.g. a DAS batch tar), extracted under ``scratch_folder``; a member that is not a cutout
is appended to ``problems``; an error that must stop the whole ingest is raised."""


def ingest_cutouts(
    wh: Warehouse,
    paths: Sequence[str | os.PathLike[str]],
    *,
    expand: Expand | None = None,
    echo: Callable[[str], None] = lambda _msg: None,
) -> IngestReport:
    """Ingest cutout FITS files into the ``cutouts`` table.

    Each file is read with :func:`~warehouse.images.fits.read_cutout_fits` (IMAGE, MASK,
    VARIANCE; pixels kept exactly), given its band by ``FILTER`` and its object by its WCS
    centre: the one ``hsc_forced`` object within 0.5 arcsec. A container (a DAS batch tar) is
    opened by ``expand`` (see :data:`Expand`; ``loaders.hsc_ssp.cutouts.ingest_cutouts`` passes
    the one for DAS tars), which extracts its members into a scratch folder of this ingest and
    says which object and band each one is: the row's object_id must be the WCS match and its
    band the file's FILTER.

    Policy for files that cannot be ingested (unreadable, unknown band, no or several objects
    within 0.5", disagreeing with the list, two files for one object and band): every file that
    matched is ingested and committed, then a :class:`~warehouse.errors.CutoutsLeftOutError` lists
    each file left out with the reason (the CLI exits 1). A missing path, or an error raised by
    ``expand``, stops everything before any ingest.

    Re-ingesting an object's band replaces it; other bands and objects are kept.
    """
    files = expand_paths(paths)
    bands = wh.config.bands
    report = IngestReport()
    problems = report.problems
    with ingest_workdir(wh.root) as tmp:
        inputs: list[CutoutInput] = []
        for k, path in enumerate(files):
            kind = file_kind(path)
            if kind == "tar" and expand is not None:
                inputs.extend(expand(path, tmp / f"tar{k}", problems))
            elif kind == "fits":
                inputs.append(CutoutInput(path.name, path, path.name, path))
            else:
                problems.append(
                    f"{path}: not a cutout FITS file (.fits) or batch tar (.tar); not ingested."
                )
        report.files = len(inputs)

        cached = 0
        readable: list[CutoutInput] = []
        for inp in progress.iterate(inputs, desc="reading cutouts", unit="file"):
            try:
                read_input(inp, keep_pixels=cached < READ_CACHE_BYTES)
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

        matched = match_inputs(wh, readable, problems)
        by_key: dict[tuple[int, str], list[CutoutInput]] = {}
        for inp in matched:
            by_key.setdefault((inp.object_id, inp.cut.band), []).append(inp)  # type: ignore[arg-type, union-attr]
        objects: dict[int, dict[str, CutoutInput]] = {}
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
            batches(wh, objects, bands, report),
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
        raise CutoutsLeftOutError(
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
    objects: dict[int, dict[str, CutoutInput]] = {}
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
            inp = CutoutInput(
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
        batches(wh, objects, wh.config.bands, report),
        max_rows=wh.config.cutouts_max_rows_per_partition,
    )
    if results:
        report.table_rows = results[-1].tables[CUTOUTS.name][1]
    return report
