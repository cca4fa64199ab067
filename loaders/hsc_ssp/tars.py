"""Batch tars of the DAS cutout service: member names, safe extraction and the
mapping of each member back to its object.

A member is named ``arch-<YYMMDD-HHMMSS>/<N>-cutout-<FILTER>-<tract>-<rerun>.fits``, where ``N``
is the list line (the header is line 1, so list row = ``N - 2``); the mapping file beside the list
(``<list>.json``) names the object of each row.
"""

from __future__ import annotations

import contextlib
import gzip
import logging
import os
import re
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from loaders.hsc_ssp.das import read_mapping
from warehouse.errors import CutoutError

log = logging.getLogger(__name__)

_MEMBER = re.compile(r"^(?P<line>\d+)-cutout-(?P<filter>.+?)-(?P<tract>\d+)-(?P<rerun>.+)\.fits$")


def parse_member_name(name: str) -> tuple[int, str, int, str]:
    """``(row_index, filter, tract, rerun)`` from a batch tar member name.

    >>> parse_member_name("arch-181021-121648/2-cutout-HSC-I-8523-pdr2_wide.fits")
    (0, 'HSC-I', 8523, 'pdr2_wide')
    """
    base = PurePosixPath(name).name
    match = _MEMBER.match(base)
    if not match:
        raise CutoutError(
            f"tar member {name!r} is not named '<N>-cutout-<FILTER>-<tract>-<rerun>.fits'"
        )
    line = int(match["line"])
    if line < 2:
        raise CutoutError(f"tar member {name!r} names list line {line}; data lines start at 2")
    return line - 2, match["filter"], int(match["tract"]), match["rerun"]


def _check_member(member: tarfile.TarInfo, root: Path) -> Path | None:
    name = member.name
    if member.issym() or member.islnk():
        raise CutoutError(f"refusing tar member {name!r}: it is a link (to {member.linkname!r})")
    if not (member.isfile() or member.isdir()):
        raise CutoutError(
            f"refusing tar member {name!r}: not a regular file or directory "
            "(device, FIFO or other special file)"
        )
    posix = PurePosixPath(name)
    if not name or posix.is_absolute() or name.startswith("\\") or re.match(r"^[A-Za-z]:", name):
        raise CutoutError(f"refusing tar member {name!r}: absolute path")
    if ".." in posix.parts or "\\" in name or "\x00" in name:
        raise CutoutError(f"refusing tar member {name!r}: it climbs out of the destination")
    target = (root / Path(*posix.parts)).resolve()
    if root not in target.parents and not (member.isdir() and target == root):
        raise CutoutError(f"refusing tar member {name!r}: it resolves outside {root}")
    return None if member.isdir() else target


def safe_extract(tar_path: str | os.PathLike[str], dest: str | os.PathLike[str]) -> list[Path]:
    """Extract the regular files of a tar under ``dest``; nothing is written elsewhere.

    Every member is checked before anything is written: absolute names, ``..``, links
    (symbolic or hard), devices and FIFOs are refused with a :class:`CutoutError` naming the
    member. Files are written atomically, with no permission bits or owners from the tar.

    Returns
    -------
    list of Path
        The extracted files, in tar order.
    """
    root = Path(dest)
    root.mkdir(parents=True, exist_ok=True)
    root = root.resolve()
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # EOFError: gzip cut short
        raise _unreadable_tar(tar_path, exc) from None
    with tar, _damaged_tar(tar_path):
        members = _members(tar, tar_path)
        try:
            plan = [(m, t) for m in members if (t := _check_member(m, root)) is not None]
        except CutoutError as exc:  # name the tar: a command may be given many
            raise CutoutError(f"{tar_path}: {exc}") from None
        written: list[Path] = []
        for member, target in plan:
            source = tar.extractfile(member)
            if source is None:  # pragma: no cover - regular files always have data
                raise CutoutError(f"tar member {member.name!r} has no data")
            target.parent.mkdir(parents=True, exist_ok=True)
            # re-check after creating parents: a directory may have been swapped for a link
            if root not in target.resolve().parents:
                raise CutoutError(
                    f"refusing tar member {member.name!r}: it resolves outside {root}"
                )
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
            try:
                with os.fdopen(fd, "wb") as out, source:
                    shutil.copyfileobj(source, out, 1 << 20)
                os.replace(tmp, target)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            written.append(target)
    return written


_BLOCK = tarfile.BLOCKSIZE
_COMPRESSED = (b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00")  # gzip, bzip2, xz: their streams check


def _members(tar: tarfile.TarFile, tar_path: str | os.PathLike[str]) -> list[tarfile.TarInfo]:
    """Every member of ``tar``; a plain tar must end with its end-of-archive blocks (two of
    zeros). A download cut exactly between two members reads as a whole, shorter tar: it
    ingested the members before the cut with exit 0 and the rest were never said missing."""
    members = tar.getmembers()
    with open(tar_path, "rb") as raw:
        if members and not raw.read(6).startswith(_COMPRESSED):
            last = members[-1]
            end = last.offset_data + -(-last.size // _BLOCK) * _BLOCK
            raw.seek(end)
            if raw.read(2 * _BLOCK) != bytes(2 * _BLOCK):
                raise tarfile.ReadError(f"it stops after member {last.name!r}, with no end blocks")
    return members


def _unreadable_tar(tar_path: str | os.PathLike[str], exc: BaseException) -> CutoutError:
    """A tar that does not open: the archive's error page, another format, or a damaged file."""
    reason = str(exc).replace("\n", " ").strip() or type(exc).__name__
    if "could not be opened successfully" in reason:  # tarfile lists every method it tried
        reason = "not a tar, .tar.gz, .tar.bz2 or .tar.xz file"
    return CutoutError(
        f"cannot open cutout tar {tar_path}: {reason}. It may be an error page or a damaged "
        "download; fetch it again."
    )


@contextlib.contextmanager
def _damaged_tar(tar_path: str | os.PathLike[str]) -> Iterator[None]:
    """Reading errors of a truncated or corrupt tar (or its gzip stream) as one message."""
    try:
        yield
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise CutoutError(
            f"{tar_path}: the tar is truncated or damaged ({exc or type(exc).__name__}); "
            "nothing was ingested from it. Download it again."
        ) from None


def members_to_objects(
    tar_path: str | os.PathLike[str],
    mapping: str | os.PathLike[str] | Mapping[str, Any],
) -> list[tuple[str, int, str]]:
    """``(member name, object_id, band)`` for every cutout FITS in a batch tar.

    ``mapping`` is the list's mapping file (or its loaded dict). Members that are not
    ``.fits`` files are skipped with a log message; a ``.fits`` member whose row is not in
    the mapping, or whose filter or rerun differs from the list's, is a :class:`CutoutError`.
    """
    data = read_mapping(mapping)
    rows = data["rows"]
    result: list[tuple[str, int, str]] = []
    try:
        tar = tarfile.open(tar_path, "r:*")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:  # EOFError: gzip cut short
        raise _unreadable_tar(tar_path, exc) from None
    with tar, _damaged_tar(tar_path):
        members = _members(tar, tar_path)
    for member in members:
        if member.isdir():
            continue
        if not member.name.endswith(".fits"):
            log.info("HSC-SSP cutouts: skipping tar member %s", member.name)
            continue
        row, filt, _tract, rerun = parse_member_name(member.name)
        if row >= len(rows):
            raise CutoutError(
                f"tar member {member.name!r} names list row {row}, but the "
                f"list has {len(rows)} rows; wrong mapping file?"
            )
        if filt != data["filter"] or rerun != data.get("rerun", rerun):
            raise CutoutError(
                f"tar member {member.name!r} is {filt}/{rerun}, but the list "
                f"was {data['filter']}/{data.get('rerun')}; wrong mapping?"
            )
        result.append((member.name, int(rows[row]["object_id"]), str(data["band"])))
    return result
