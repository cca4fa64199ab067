"""HSC-SSP image cutouts from the DAS cutout service.

Two ways in: a single GET per cutout (:func:`fetch_cutout`), or a batch list upload
(:func:`write_batch_lists` then :func:`fetch_batch`) that returns a tar of FITS files whose
member names ``arch-<YYMMDD-HHMMSS>/<N>-cutout-<FILTER>-<tract>-<rerun>.fits`` encode the
list line ``N`` (the header is line 1, so list row = ``N - 2``). Each list file has a
mapping file beside it (``<list>.json``) recording row -> object_id, band, ra, dec, so
:func:`members_to_objects` can name every cutout by its object.

Examples
--------
>>> lists = write_batch_lists([(37485259083748138, 33.99899148, -5.00015651)],
...                           bands="gri", size="20arcsec", rerun="pdr2_wide",
...                           out_dir="cutouts/lists")  # doctest: +SKIP
>>> tar = fetch_batch(lists[0], "cutouts/tars")  # doctest: +SKIP
>>> files = safe_extract(tar, "cutouts/fits")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import numbers
import os
import re
import secrets
import tarfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loaders.hsc_ssp.sql_jobs import AUTH_HINT, hsc_ssp_credentials
from loaders.http import session as http
from loaders.http.session import (
    ArchiveSession,
    Credentials,
    RetryPolicy,
)
from warehouse.errors import CutoutError
from warehouse.files import atomic_write_bytes

if TYPE_CHECKING:
    pass

__all__ = [
    "FILTERS",
    "LIST_COLUMNS",
    "MAX_ROWS",
    "cutout_url",
    "fetch_batch",
    "fetch_cutout",
    "filter_name",
    "mapping_path",
    "read_mapping",
    "write_batch_lists",
]

log = logging.getLogger(__name__)

MAX_ROWS = 1000
LIST_COLUMNS = ("ra", "dec", "sw", "sh", "filter", "rerun", "image", "variance", "mask", "type")
FILTERS: Mapping[str, str] = {
    "g": "HSC-G",
    "r": "HSC-R",
    "i": "HSC-I",
    "z": "HSC-Z",
    "y": "HSC-Y",
}
RELEASE_OF_RERUN = re.compile(r"^(pdr\d+)_")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)(arcsec|asec|arcmin|amin|deg)?$")
_LIST_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
_ARCSEC_PER = {None: 1.0, "arcsec": 1.0, "asec": 1.0, "arcmin": 60.0, "amin": 60.0, "deg": 3600.0}
MAX_SIDE_ARCSEC = 3 * 4200 * 0.168
"""The largest cutout the DAS gives: about 3 x 3 patches of 4200 px at 0.168"/px (2116.8")."""


def filter_name(band: str) -> str:
    """Archive filter name of a band: ``'g'`` -> ``'HSC-G'``; ``'HSC-I2'`` passes through."""
    if band in FILTERS:
        return FILTERS[band]
    upper = band.upper()
    if upper.startswith(("HSC-", "NB")) and re.fullmatch(r"[A-Z0-9-]+", upper):
        return upper
    raise ValueError(
        f"unknown HSC band {band!r}; use one of {', '.join(FILTERS)} or an "
        "archive filter name such as 'HSC-I2'"
    )


def _size_text(size: str | float) -> str:
    if isinstance(size, numbers.Real) and not isinstance(size, bool):
        if not (math.isfinite(size) and size > 0):
            raise ValueError(f"cutout size must be a positive number of arcsec, got {size!r}")
        return _within_service(f"{float(size):g}arcsec", float(size))
    if isinstance(size, str) and (m := _SIZE.fullmatch(size)):
        if float(m.group(1)) <= 0:  # the service would be asked for 0 x 0 cutouts
            raise ValueError(f"cutout size must be more than 0, got {size!r}")
        return _within_service(size, float(m.group(1)) * _ARCSEC_PER[m.group(2)])
    raise ValueError(
        f"cutout size must be arcsec as a number or text like '20arcsec', "
        f"'0.5arcmin', '0.00833deg'; got {size!r}"
    )


def _within_service(text: str, arcsec: float) -> str:
    """``text`` when the DAS can cut a square of ``arcsec`` (else every row of every list would
    come back as a service error)."""
    if arcsec > MAX_SIDE_ARCSEC:
        raise ValueError(
            f"cutout size {text} is larger than the DAS cuts (about 3 x 3 patches, "
            f"{MAX_SIDE_ARCSEC:g}arcsec); ask for at most that"
        )
    return text


def _semi_text(side: str) -> str:
    """The service's ``sw``/``sh`` for a square cutout of ``side`` (``_size_text``'s text): the
    DAS reads them as the SEMI-width and SEMI-height (unagi's ``w_half``/``h_half``), so a
    20"x20" cutout (GalaxiesML: 119 px at 0.168"/px) is ``sw = sh = 10arcsec``."""
    m = _SIZE.fullmatch(side)
    assert m is not None  # _size_text checked it
    half = f"{float(m.group(1)) / 2:.12f}".rstrip("0").rstrip(".")  # never 5e-05: fixed point
    return f"{half}{m.group(2) or ''}"


def _check_coord(ra: Any, dec: Any) -> tuple[float, float]:
    ra_f, dec_f = float(ra), float(dec)
    if not (math.isfinite(ra_f) and 0.0 <= ra_f < 360.0):
        raise ValueError(f"ra must be in [0, 360) degrees, got {ra!r}")
    if not (math.isfinite(dec_f) and -90.0 <= dec_f <= 90.0):
        raise ValueError(f"dec must be in [-90, 90] degrees, got {dec!r}")
    return ra_f, dec_f


def _object_id(value: Any) -> int:
    # a float object_id has already lost digits (HSC ids are ~3.7e16 > 2**53)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise ValueError(
            f"object_id must be an integer (int64), got {value!r} of type {type(value).__name__}"
        )
    return int(value)


def _onoff(flag: bool) -> str:
    return "on" if flag else "off"


def _truefalse(flag: bool) -> str:
    return "true" if flag else "false"


# -- single cutouts ------------------------------------------------------------------------------


def cutout_url(release: str = "pdr2", base_url: str | None = None) -> str:
    """URL of the DAS cutout CGI for a release, e.g. ``.../das_cutout/pdr2/cgi-bin/cutout``.

    ``base_url`` is the host from ``warehouse.toml``; ``$GWH_HSC_SSP_URL`` wins over it.
    """
    if not re.fullmatch(r"pdr\d+", release):
        raise ValueError(f"release must look like 'pdr2' or 'pdr3', got {release!r}")
    host = http.base_url("hsc_ssp", base_url)
    return f"{host}/das_cutout/{release}/cgi-bin/cutout"


def _release_of(rerun: str) -> str:
    match = RELEASE_OF_RERUN.match(rerun)
    if not match:
        raise ValueError(f"cannot tell the release of rerun {rerun!r}; pass release=")
    return match.group(1)


def _staging(dest: Path) -> Path:
    # unique per process, so two runs fetching the same file never share a temporary
    return dest.with_name(f".{dest.name}.{os.getpid()}.{secrets.token_hex(4)}.download")


def _session(
    credentials: Credentials | None,
    retry: RetryPolicy | None,
    sleep: Callable[[float], None],
    timeout: float | tuple[float, float],
) -> tuple[ArchiveSession, Credentials]:
    creds = credentials or hsc_ssp_credentials()
    session = ArchiveSession(
        "HSC-SSP",
        timeout=timeout,
        retry=retry,
        secrets=(creds.password,),
        sleep=sleep,
        auth_hint=AUTH_HINT,
    )
    return session, creds


def fetch_cutout(
    ra: float,
    dec: float,
    dest: str | os.PathLike[str],
    *,
    band: str,
    size: str | float = "20arcsec",
    rerun: str = "pdr2_wide",
    release: str | None = None,
    image: bool = True,
    mask: bool = True,
    variance: bool = True,
    credentials: Credentials | None = None,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | tuple[float, float] = (15.0, 120.0),
) -> Path:
    """Download one coadd cutout (FITS: IMAGE, MASK, VARIANCE HDUs) to ``dest`` atomically.

    Raises
    ------
    AuthenticationError
        The archive refused the credentials.
    CutoutError
        The answer is not a FITS file (e.g. the position is outside the survey).
    ArchiveError
        HTTP failure after retries.
    """
    ra_f, dec_f = _check_coord(ra, dec)
    semi = _semi_text(_size_text(size))
    params = {
        "ra": repr(ra_f),
        "dec": repr(dec_f),
        "sw": semi,
        "sh": semi,
        "type": "coadd",
        "image": _onoff(image),
        "mask": _onoff(mask),
        "variance": _onoff(variance),
        "filter": filter_name(band),
        "rerun": rerun,
    }
    url = cutout_url(release or _release_of(rerun), base_url)
    dest = Path(dest)
    staging = _staging(dest)
    session, creds = _session(credentials, retry, sleep, timeout)
    with session:
        try:
            session.download("GET", url, staging, params=params, auth=(creds.user, creds.password))
            with open(staging, "rb") as fh:
                head = fh.read(80)
            if not head.startswith(b"SIMPLE  ="):
                text = " ".join(head.decode("ascii", "replace").split())[:60]
                raise CutoutError(
                    f"HSC-SSP cutout at ra={ra_f}, dec={dec_f}, {params['filter']}, {rerun} is "
                    f"not a FITS file (starts with {text!r}); is the position in the survey?"
                )
            os.replace(staging, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
    return dest


# -- batch lists ---------------------------------------------------------------------------------


def mapping_path(list_path: str | os.PathLike[str]) -> Path:
    """The mapping file written beside a list file: ``<list stem>.json``."""
    p = Path(list_path)
    return p.with_suffix(".json")


def write_batch_lists(
    rows: Iterable[tuple[int, float, float]],
    bands: Sequence[str] | str,
    size: str | float,
    rerun: str,
    out_dir: str | os.PathLike[str],
    max_rows: int = MAX_ROWS,
    *,
    image: bool = True,
    variance: bool = True,
    mask: bool = True,
    prefix: str = "cutouts",
) -> list[Path]:
    """Write DAS batch list files (one filter each, at most ``max_rows`` rows) and mappings.

    Parameters
    ----------
    rows : iterable of (object_id, ra, dec)
        ``object_id`` must be an integer (a float has lost digits); coordinates in degrees.
    bands : sequence of str
        Bands such as ``'gri'`` or ``['g', 'HSC-I2']``; one list per band and chunk.
    size : str or float
        Cutout side, e.g. ``'20arcsec'`` or ``20`` (arcsec); square cutouts, asked for as
        ``sw = sh = side / 2`` (the service reads them as semi-width and semi-height).
    rerun : str
        E.g. ``'pdr2_wide'``.
    out_dir : path
        Where ``<prefix>-<band>-<chunk:04d>.txt`` and ``.json`` files go.
    max_rows : int
        Rows per list, at most 1000 (the service's limit).

    Returns
    -------
    list of Path
        The list files, band by band, chunk by chunk. The mapping of each is
        :func:`mapping_path` of it: JSON with ``band``, ``filter``, ``rerun``, ``size`` and
        ``rows``: ``[{"row": i, "object_id": ..., "ra": ..., "dec": ...}, ...]``.
    """
    if not 1 <= max_rows <= MAX_ROWS:
        raise ValueError(f"max_rows must be between 1 and {MAX_ROWS}, got {max_rows}")
    if not _LIST_NAME.match(prefix):
        raise ValueError(f"prefix must be letters, digits, '_', '.', '-'; got {prefix!r}")
    if not re.fullmatch(r"[A-Za-z0-9_]+", rerun):
        raise ValueError(f"rerun must look like 'pdr2_wide', got {rerun!r}")
    side = _size_text(size)
    semi = _semi_text(side)
    # 'gri' means three bands, 'HSC-I2' one
    if isinstance(bands, str):
        band_list = list(bands) if all(b in FILTERS for b in bands) else [bands]
    else:
        band_list = list(bands)
    if not band_list:
        raise ValueError("bands must not be empty")
    if len(set(band_list)) != len(band_list):
        raise ValueError(f"bands contain duplicates: {band_list}")
    checked = [(_object_id(oid), *_check_coord(ra, dec)) for oid, ra, dec in rows]
    if not checked:
        raise ValueError("rows is empty: nothing to cut out")
    filters = [filter_name(band) for band in band_list]  # an unknown band before any folder

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    header = "\t".join(("#?", *LIST_COLUMNS))
    flags = (_truefalse(image), _truefalse(variance), _truefalse(mask), "coadd")
    written: list[Path] = []
    for band, filt in zip(band_list, filters, strict=True):
        for chunk, start in enumerate(range(0, len(checked), max_rows)):
            part = checked[start : start + max_rows]
            lines = [header]
            lines += [
                "\t".join((repr(ra), repr(dec), semi, semi, filt, rerun, *flags))
                for _, ra, dec in part
            ]
            list_path = out / f"{prefix}-{band}-{chunk:04d}.txt"
            mapping = {
                "list": list_path.name,
                "band": band,
                "filter": filt,
                "rerun": rerun,
                "size": side,
                "first_line": 2,
                "rows": [
                    {"row": i, "object_id": oid, "ra": ra, "dec": dec}
                    for i, (oid, ra, dec) in enumerate(part)
                ],
            }
            atomic_write_bytes(list_path, ("\n".join(lines) + "\n").encode("ascii"))
            atomic_write_bytes(
                mapping_path(list_path), (json.dumps(mapping, indent=1) + "\n").encode("utf-8")
            )
            written.append(list_path)
    return written


def read_mapping(mapping: str | os.PathLike[str] | Mapping[str, Any]) -> dict[str, Any]:
    """Load (or validate) a mapping written by :func:`write_batch_lists`."""
    if isinstance(mapping, Mapping):
        data = dict(mapping)
    else:
        try:
            data = json.loads(Path(mapping).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise CutoutError(f"cannot read cutout mapping {mapping}: {exc}") from None
    where = "the cutout mapping" if isinstance(mapping, Mapping) else f"cutout mapping {mapping}"
    rows = data.get("rows") if isinstance(data, dict) else None
    if not isinstance(rows, list) or "filter" not in data or "band" not in data:
        raise CutoutError(
            f"{where} lacks 'rows', 'band' or 'filter': it is not the .json `gwh cutouts "
            "request` writes beside each list; give that file (--list), or request again."
        )
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or row.get("row") != i:
            got = row.get("row") if isinstance(row, dict) else row
            raise CutoutError(f"{where}: row {i} is numbered {got!r}")
    return data


def _tar_complete(path: Path) -> bool:
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                if member.isfile():
                    fh = tar.extractfile(member)
                    if fh is not None:
                        while fh.read(1 << 20):
                            pass
        return True
    except (tarfile.TarError, OSError, EOFError):
        return False


def fetch_batch(
    list_path: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    release: str | None = None,
    credentials: Credentials | None = None,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
    timeout: float | tuple[float, float] = (15.0, 1800.0),
    overwrite: bool = False,
) -> Path:
    """Upload a list file and save the returned tar as ``out_dir/<list stem>.tar``.

    Resumable: a tar already there that reads to the end is kept and no request is made
    (a damaged one is fetched again). The release defaults to the one of the list's rerun.

    Raises
    ------
    AuthenticationError, ArchiveError
        HTTP failures (after retries for transient ones).
    CutoutError
        The list is too long or mixes filters, or the answer is not a tar.
    """
    list_path = Path(list_path)
    dest = Path(out_dir) / f"{list_path.stem}.tar"
    if dest.is_file() and not overwrite:
        if _tar_complete(dest):
            log.info("HSC-SSP cutouts: %s already fetched", dest.name)
            return dest
        log.warning("HSC-SSP cutouts: %s is damaged; fetching it again", dest)

    lines = [ln for ln in list_path.read_text("ascii").splitlines() if ln.strip()]
    body = [ln.split("\t") for ln in lines[1:]]
    if not lines or lines[0].split("\t")[0] != "#?":
        raise CutoutError(f"{list_path} is not a DAS list file (first line must start '#?')")
    if len(body) > MAX_ROWS:
        raise CutoutError(
            f"{list_path} has {len(body)} rows; the service takes at most "
            f"{MAX_ROWS}. Rewrite it with write_batch_lists."
        )
    columns = lines[0].split("\t")[1:]
    filters = {row[columns.index("filter")] for row in body} if "filter" in columns else set()
    if len(filters) > 1:
        raise CutoutError(f"{list_path} mixes filters {sorted(filters)}; use one per list")
    if release is None:
        reruns = {row[columns.index("rerun")] for row in body} if "rerun" in columns else set()
        if len(reruns) != 1:
            raise CutoutError(f"{list_path}: cannot tell the release; pass release=")
        release = _release_of(reruns.pop())

    url = cutout_url(release, base_url)
    staging = _staging(dest)
    session, creds = _session(credentials, retry, sleep, timeout)
    with session, open(list_path, "rb") as fh:
        try:
            session.download(
                "POST",
                url,
                staging,
                files={"list": (list_path.name, fh, "text/plain")},
                auth=(creds.user, creds.password),
            )
            if not tarfile.is_tarfile(staging):
                with open(staging, "rb") as got:
                    text = " ".join(got.read(200).decode("ascii", "replace").split())[:120]
                raise CutoutError(
                    f"HSC-SSP cutout service answered {list_path.name} with "
                    f"something that is not a tar: {session.redact(text)!r}"
                )
            os.replace(staging, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
    return dest
