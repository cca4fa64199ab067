"""Catalog SQL results on disk: :func:`run_sql` runs a job only when its result is not cached
already (the cache key is the SHA-256 of normalised SQL, release and format), checks what the
archive sent (a FITS or CSV file, not an error page; rows unless an empty result is allowed) and
renames it into place; :func:`preview_sql` asks the archive to check SQL without running it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from loaders.hsc_ssp.sql_jobs import (
    OUT_FORMATS,
    CatalogJobClient,
    Preview,
    cache_key,
    check_format,
    hsc_ssp_credentials,
    normalize_sql,
)
from loaders.http.session import (
    Credentials,
    RetryPolicy,
)
from warehouse.errors import ArchiveError, AuthenticationError
from warehouse.files import atomic_write_bytes, file_sha256

__all__ = ["cached_result", "preview_sql", "result_row_count", "run_sql"]

log = logging.getLogger(__name__)


def result_row_count(path: Path, out_format: str) -> int:
    """Number of data rows in a downloaded result file.

    FITS: the rows of the first table HDU (0 if there is none). CSV: non-comment lines,
    less one header line (a single line counts as a header if none of its fields is numeric).
    """
    path = Path(path)
    if check_format(out_format) == "fits":
        from astropy.io import fits

        with fits.open(path, memmap=False, lazy_load_hdus=True) as hdul:
            for hdu in hdul[1:]:
                if isinstance(hdu, fits.BinTableHDU | fits.TableHDU):
                    return int(hdu.header.get("NAXIS2", 0))
        return 0
    lines = [
        ln
        for ln in path.read_text("utf-8", "replace").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    if len(lines) == 1:
        return 0 if not any(_is_number(v) for v in lines[0].split(",")) else 1
    return max(len(lines) - 1, 0)


def _is_number(text: str) -> bool:
    try:
        float(text.strip())
    except ValueError:
        return False
    return True


def _check_download(path: Path, out_format: str, job_id: int) -> None:
    with open(path, "rb") as fh:
        head = fh.read(80)
    if out_format == "fits" and not head.startswith(b"SIMPLE  ="):
        text = " ".join(head.decode("ascii", "replace").split())
        raise ArchiveError(
            f"HSC-SSP catalog job {job_id}: the download is not a FITS file "
            f"(starts with {text[:60]!r}); try again or use out_format='csv'."
        )
    if not head:
        raise ArchiveError(f"HSC-SSP catalog job {job_id}: the download is empty (0 bytes).")


def _empty_error(path: Path, sql: str) -> ArchiveError:
    return ArchiveError(
        f"HSC-SSP query returned no rows (cached at {path}): {normalize_sql(sql)[:200]}. "
        "Check the region and cuts, or pass allow_empty=True if an empty result is expected."
    )


def cached_result(
    sql: str, release: str, out_format: str, cache_dir: str | os.PathLike[str]
) -> Path:
    """Where :func:`run_sql` caches the result of ``sql`` (it may not be there yet)."""
    return Path(cache_dir) / f"{cache_key(sql, release, out_format)}{OUT_FORMATS[out_format]}"


def run_sql(
    sql: str,
    *,
    release: str,
    out_format: str = "fits",
    cache_dir: str | os.PathLike[str],
    credentials: Credentials | None = None,
    base_url: str | None = None,
    poll_timeout: float = 600.0,
    max_interval: float = 60.0,
    allow_empty: bool = False,
    delete_job: bool = True,
    prompt: bool = True,
    sleep: Callable[[float], None] = time.sleep,
    retry: RetryPolicy | None = None,
) -> Path:
    """Run SQL on the HSC-SSP archive and return the path of the cached result file.

    Parameters
    ----------
    sql : str
        The query, e.g. ``SELECT ... FROM pdr2_wide.forced JOIN pdr2_wide.specz USING
        (object_id)``.
    release : str
        ``'pdr1'``, ``'pdr2'``, ``'pdr3'`` or ``'pdr3-citus'``.
    out_format : str
        ``'fits'`` (default; keeps int64 ``object_id`` exact) or ``'csv'``.
    cache_dir : path
        Where results live, as ``<sha256>.<ext>`` plus a ``<sha256>.json`` record of the
        query (never the credentials).
    credentials : Credentials, optional
        Only needed on a cache miss; default from the environment or a prompt.
    base_url : str, optional
        Archive host from ``warehouse.toml``; ``$GWH_HSC_SSP_URL`` wins over it.
    poll_timeout : float
        Seconds to wait for the job before cancelling it.
    allow_empty : bool
        Accept a result with zero rows instead of raising.
    delete_job : bool
        Delete the job from the archive after the download.

    Returns
    -------
    Path
        ``cache_dir/<sha256>.fits`` (or ``.csv``).

    Raises
    ------
    AuthenticationError
        The archive refused the credentials.
    ArchiveError
        The job failed (server message and job id), timed out, the archive is unreachable,
        or the result is empty and ``allow_empty`` is false.
    """
    dest = cached_result(sql, release, out_format, cache_dir)
    key, cache = dest.stem, dest.parent
    if dest.is_file():
        log.info("HSC-SSP: cache hit %s", dest.name)
        if not allow_empty and result_row_count(dest, out_format) == 0:
            raise _empty_error(dest, sql)
        return dest

    cache.mkdir(parents=True, exist_ok=True)
    creds = credentials or hsc_ssp_credentials(prompt=prompt)
    staging = cache / f".{key}.{os.getpid()}.{secrets.token_hex(4)}.download"
    with CatalogJobClient(creds, base_url=base_url, sleep=sleep, retry=retry) as client:
        job = client.submit(sql, release=release, out_format=out_format)
        job_id = job["id"]
        try:
            if job.get("status") == "error":
                message = client.session.redact(str(job.get("error") or "no message"))
                raise ArchiveError(
                    f"HSC-SSP catalog job {job_id} failed: {message}. "
                    "Fix the SQL (try preview_sql) and run it again."
                )
            if job.get("status") != "done":
                client.wait(job_id, poll_timeout=poll_timeout, max_interval=max_interval)
        except AuthenticationError:
            raise
        except ArchiveError:
            if delete_job:
                client.delete_quietly(job_id)  # a failed job still counts against the quota
            raise
        try:
            client.download(job_id, staging)
            _check_download(staging, out_format, job_id)
            rows = result_row_count(staging, out_format)
            record = {
                "sql": normalize_sql(sql),
                "release": release,
                "out_format": out_format,
                "job_id": job_id,
                "rows": rows,
                "bytes": staging.stat().st_size,
                "sha256": file_sha256(staging),
                "fetched_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "archive": client.api_url,
            }
            os.replace(staging, dest)
        finally:
            with contextlib.suppress(FileNotFoundError):
                staging.unlink()
        atomic_write_bytes(
            cache / f"{key}.json", (json.dumps(record, indent=2, sort_keys=True) + "\n").encode()
        )
        if delete_job:
            client.delete_quietly(job_id)
    log.info("HSC-SSP: job %s -> %s (%d rows)", job_id, dest.name, rows)
    if not allow_empty and rows == 0:
        raise _empty_error(dest, sql)
    return dest


def preview_sql(
    sql: str,
    *,
    release: str,
    credentials: Credentials | None = None,
    base_url: str | None = None,
    prompt: bool = True,
    retry: RetryPolicy | None = None,
) -> Preview:
    """Preview a query (about 10 rows as strings); never cached."""
    creds = credentials or hsc_ssp_credentials(prompt=prompt)
    with CatalogJobClient(creds, base_url=base_url, retry=retry) as client:
        return client.preview(sql, release=release)
