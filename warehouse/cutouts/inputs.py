"""The cutout files of one ingest: what each one is (:class:`CutoutInput`), how paths and folders
expand to files, and how a file is read (pixels kept, or metadata only and read again later)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from warehouse.errors import CutoutError
from warehouse.images.fits import CutoutImage, read_cutout_fits

FLUXNORM_CARD = "FLUXNORM"
"""A primary-header card ``FLUXNORM = T`` says the pixels are normalised, not calibrated flux
(e.g. the real COSMOS cubes shipped with scarlet): the zeropoint is then stored as NULL, whatever
``FLUXMAG0`` says."""

# Pixel bytes held in memory between reading the files and committing them; above it, files are
# read again when their batch is built, and batches are cut at about this size.
READ_CACHE_BYTES = 512 * 2**20
BATCH_BYTES = 256 * 2**20


@dataclass
class CutoutInput:
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


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            found = sorted(
                q for q in p.iterdir() if q.is_file() and file_kind(q) in ("fits", "tar")
            )
            if not found:
                raise CutoutError(f"{p}: a folder with no .fits or .tar files in it.")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise CutoutError(f"{p}: no such file. Check the path.")
    return out


def file_kind(path: Path) -> str:
    name = path.name.lower()
    if name.endswith((".tar", ".tar.gz", ".tgz")):
        return "tar"
    if name.endswith((".fits", ".fit")):
        return "fits"
    return "other"


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


def read_input(inp: CutoutInput, keep_pixels: bool) -> None:
    cut = read_cutout_fits(inp.path)
    inp.fluxnorm = _fluxnorm(inp.path)
    inp.nbytes = sum(a.nbytes for a in (cut.image, cut.mask, cut.variance) if a is not None)
    inp.cut = cut if keep_pixels else without_pixels(cut)
    inp.has_pixels = keep_pixels


def without_pixels(cut: CutoutImage) -> CutoutImage:
    shape = cut.image.shape
    return dataclasses.replace(
        cut,
        image=np.broadcast_to(np.float32(0), shape),
        mask=None if cut.mask is None else np.broadcast_to(np.int32(0), shape),
        variance=None if cut.variance is None else np.broadcast_to(np.float32(0), shape),
    )


def reread(inp: CutoutInput) -> None:
    before = inp.cut
    read_input(inp, keep_pixels=True)
    after = inp.cut
    assert before is not None and after is not None
    if (after.band, after.shape) != (before.band, before.shape) or abs(
        after.center_ra - before.center_ra
    ) + abs(after.center_dec - before.center_dec) > 1e-9:
        raise CutoutError(f"{inp.name} changed while it was being ingested; ingest it again.")
