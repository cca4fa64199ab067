"""HSC-SSP CAS catalog SQL jobs (``/datasearch/api/catalog_jobs/``).

Every call is a JSON POST carrying ``credential`` and ``clientVersion``; a job is
submitted, polled until ``done`` or ``error``, downloaded, then deleted from the archive.
Results are cached on disk under the SHA-256 of (normalised SQL, release, format), so a
rebuild reads the cache and needs no credentials.

Empty results are an error by default (:class:`~warehouse.errors.ArchiveError` saying so);
pass ``allow_empty=True`` to accept an explicitly empty result file.

Examples
--------
>>> path = run_sql(  # doctest: +SKIP
...     "SELECT object_id, ra, dec FROM pdr2_wide.forced WHERE coneSearch(coord, 34, -5, 6)",
...     release="pdr2", cache_dir="warehouse-data/cache/hsc_ssp")
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loaders.http import session as http
from loaders.http.session import (
    ArchiveSession,
    Credentials,
    RetryPolicy,
    credentials_from_env,
)
from warehouse import progress
from warehouse.errors import ArchiveError, AuthenticationError
from warehouse.files import sha256_hex

__all__ = [
    "CLIENT_VERSION",
    "OUT_FORMATS",
    "RELEASES",
    "CatalogJobClient",
    "Preview",
    "cache_key",
    "hsc_ssp_credentials",
    "normalize_sql",
]

log = logging.getLogger(__name__)

API_PATH = "/datasearch/api/catalog_jobs/"
CLIENT_VERSION = 20190514.1
RELEASES = ("pdr1", "pdr2", "pdr3", "pdr3-citus")
OUT_FORMATS = {"fits": ".fits", "csv": ".csv"}
USER_VAR = "HSC_SSP_CAS_USER"
PASSWORD_VAR = "HSC_SSP_CAS_PASSWORD"
AUTH_HINT = f"Check ${USER_VAR} and ${PASSWORD_VAR} (your HSC-SSP archive account)."
_AUTH_WORDS = re.compile(r"password|credential|account|unauthori[sz]ed|login|log in", re.I)


def hsc_ssp_credentials(
    *,
    prompt: bool = True,
    getpass: Callable[[str], str] | None = None,
    input_: Callable[[str], str] | None = None,
) -> Credentials:
    """HSC-SSP account from ``$HSC_SSP_CAS_USER`` / ``$HSC_SSP_CAS_PASSWORD``, else a prompt."""
    return credentials_from_env(
        USER_VAR, PASSWORD_VAR, service="HSC-SSP", prompt=prompt, getpass=getpass, input_=input_
    )


def normalize_sql(sql: str) -> str:
    """SQL with whitespace runs collapsed outside quotes and trailing ``;`` removed.

    Text inside ``'...'`` literals and ``"..."`` identifiers is kept byte for byte, so two
    queries normalise equal only if the archive would read them the same way.

    >>> normalize_sql("SELECT  a\\n FROM t WHERE s = 'x  y' ;")
    "SELECT a FROM t WHERE s = 'x  y'"
    """
    out: list[str] = []
    quote: str | None = None
    pending_space = False
    for ch in sql:
        if quote is not None:
            out.append(ch)
            if ch == quote:  # a doubled quote re-opens at the next char, which is fine
                quote = None
            continue
        if ch.isspace():
            pending_space = True
            continue
        if pending_space and out:
            out.append(" ")
        pending_space = False
        out.append(ch)
        if ch in ("'", '"'):
            quote = ch
    text = "".join(out).strip()
    while text.endswith(";"):
        text = text[:-1].rstrip()
    if not text:
        raise ValueError("SQL is empty")
    return text


def _check_release(release: str) -> str:
    if release not in RELEASES:
        raise ValueError(f"release must be one of {', '.join(RELEASES)}; got {release!r}")
    return release


def check_format(out_format: str) -> str:
    if out_format not in OUT_FORMATS:
        raise ValueError(f"out_format must be one of {', '.join(OUT_FORMATS)}; got {out_format!r}")
    return out_format


def cache_key(sql: str, release: str, out_format: str) -> str:
    """SHA-256 (hex) of the normalised SQL, the release and the output format."""
    payload = json.dumps(
        {
            "sql": normalize_sql(sql),
            "release": _check_release(release),
            "out_format": check_format(out_format),
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return sha256_hex(payload)


@dataclass(frozen=True)
class Preview:
    """First rows of a query as the archive's preview returns them (values are strings)."""

    fields: list[str]
    rows: list[list[str | None]]  # NULL values come back as None
    count: int

    @property
    def truncated(self) -> bool:
        """True when the query has more rows than the preview shows."""
        return self.count > len(self.rows)


class CatalogJobClient:
    """Client of the CAS catalog job API.

    Parameters
    ----------
    credentials : Credentials
        HSC-SSP account; the password is masked in every message.
    base_url : str, optional
        Host from ``warehouse.toml``, e.g. ``https://hsc-release.mtk.nao.ac.jp``;
        ``$GWH_HSC_SSP_URL`` still wins (see :func:`loaders.http.session.base_url`).
    sleep : callable
        Waits between polls and between retries (tests inject a recorder).
    retry : RetryPolicy, optional
        Retries for transient HTTP failures.
    timeout : float or (float, float)
        Per-request timeouts in seconds.
    """

    def __init__(
        self,
        credentials: Credentials,
        *,
        base_url: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        timeout: float | tuple[float, float] = (15.0, 300.0),
    ) -> None:
        self._credentials = credentials
        self.api_url = http.base_url("hsc_ssp", base_url) + API_PATH
        self._sleep = sleep
        self.session = ArchiveSession(
            "HSC-SSP",
            timeout=timeout,
            retry=retry,
            secrets=(credentials.password,),
            sleep=sleep,
            auth_hint=AUTH_HINT,
        )

    def __repr__(self) -> str:
        return f"CatalogJobClient(api_url={self.api_url!r}, user={self._credentials.user!r})"

    def __enter__(self) -> CatalogJobClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the HTTP session."""
        self.session.close()

    # -- protocol ------------------------------------------------------------------------------

    def _body(self, **fields: Any) -> dict[str, Any]:
        return {
            "credential": {
                "account_name": self._credentials.user,
                "password": self._credentials.password,
            },
            "clientVersion": CLIENT_VERSION,
            **fields,
        }

    def _post_json(self, verb: str, *, need_json: bool = True, **fields: Any) -> Any:
        url = self.api_url + verb
        response = self.session.request("POST", url, json=self._body(**fields))
        try:
            payload = response.json()
        except ValueError:
            if not need_json:
                return None
            raise ArchiveError(
                f"HSC-SSP archive: POST {url} did not return JSON: {self.session.excerpt(response)}"
            ) from None
        if isinstance(payload, dict) and payload.get("error") and "id" not in payload:
            message = self.session.redact(str(payload["error"]))
            cls = AuthenticationError if _AUTH_WORDS.search(message) else ArchiveError
            extra = f" {AUTH_HINT}" if cls is AuthenticationError else ""
            raise cls(f"HSC-SSP archive: {verb} failed: {message}.{extra}")
        return payload

    def _job(self, verb: str, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict) or "id" not in payload or "status" not in payload:
            raise ArchiveError(
                f"HSC-SSP archive: {verb} returned no job record "
                f"(got {type(payload).__name__}); is the base URL right?"
            )
        return payload

    def submit(self, sql: str, *, release: str, out_format: str = "fits") -> dict[str, Any]:
        """Submit a job; returns the job record (``id``, ``status``, ...)."""
        job = {
            "sql": sql,
            "out_format": check_format(out_format),
            "include_metainfo_to_body": True,
            "release_version": _check_release(release),
        }
        record = self._job(
            "submit",
            self._post_json("submit", catalog_job=job, nomail=True, skip_syntax_check=True),
        )
        log.info("HSC-SSP: submitted catalog job %s (%s, %s)", record["id"], release, out_format)
        return record

    def status(self, job_id: int) -> dict[str, Any]:
        """The job record as the archive sees it now."""
        return self._job("status", self._post_json("status", id=job_id))

    def wait(
        self, job_id: int, *, poll_timeout: float = 600.0, max_interval: float = 60.0
    ) -> dict[str, Any]:
        """Poll until the job is ``done``: waits of 1, 2, 4, ... s capped at ``max_interval``.

        ``poll_timeout`` bounds the total waiting time. A ``KeyboardInterrupt`` (or a timeout)
        cancels the remote job first.

        Raises
        ------
        ArchiveError
            The job ended in ``error`` (message and job id given), or did not finish in time.
        """
        if poll_timeout <= 0:
            raise ValueError(f"poll_timeout must be > 0 seconds, got {poll_timeout}")
        waited, interval = 0.0, 1.0
        shown = progress.status(f"HSC-SSP catalog job {job_id}")  # state and elapsed time
        shown.set("submitted")
        try:
            while True:
                delay = min(interval, max_interval, poll_timeout - waited)
                self._sleep(delay)
                waited += delay
                job = self.status(job_id)
                state = job.get("status")
                shown.set(str(state))
                if state == "done":
                    return job
                if state == "error":
                    message = self.session.redact(str(job.get("error") or "no message"))
                    raise ArchiveError(
                        f"HSC-SSP catalog job {job_id} failed: {message}. "
                        "Fix the SQL (try preview_sql) and run it again."
                    )
                if state in ("cancelled", "canceled", "deleted"):
                    raise ArchiveError(
                        f"HSC-SSP catalog job {job_id} was {state} on the "
                        "archive side; run it again."
                    )
                if waited >= poll_timeout:
                    self._cancel_quietly(job_id)
                    raise ArchiveError(
                        f"HSC-SSP catalog job {job_id} was not done after {waited:g} s "
                        f"(last status {state!r}); it was cancelled. Raise poll_timeout."
                    )
                interval *= 2
        except KeyboardInterrupt:
            log.warning("HSC-SSP: interrupted; cancelling catalog job %s", job_id)
            self._cancel_quietly(job_id)
            raise
        finally:
            shown.close()

    def download(self, job_id: int, dest: Path) -> Path:
        """Stream the result of a finished job to ``dest`` (atomic)."""
        return self.session.download(
            "POST", self.api_url + "download", Path(dest), json=self._body(id=job_id)
        )

    def cancel(self, job_id: int) -> None:
        """Ask the archive to stop a job."""
        self._post_json("cancel", need_json=False, id=job_id)

    def delete(self, job_id: int) -> None:
        """Remove a job and its result from the archive."""
        self._post_json("delete", need_json=False, id=job_id)

    def delete_quietly(self, job_id: int) -> None:
        """:meth:`delete`, logging (not raising) a failure."""
        try:
            self.delete(job_id)
        except ArchiveError as exc:
            log.warning("HSC-SSP: could not delete job %s: %s", job_id, exc)

    def _cancel_quietly(self, job_id: int) -> None:
        try:
            self.cancel(job_id)
        except ArchiveError as exc:
            log.warning("HSC-SSP: could not cancel job %s: %s", job_id, exc)

    def preview(self, sql: str, *, release: str) -> Preview:
        """The archive's quick preview (about 10 rows, values as strings)."""
        payload = self._post_json(
            "preview", catalog_job={"sql": sql, "release_version": _check_release(release)}
        )
        try:
            result = payload["result"]
            fields = [f["name"] if isinstance(f, dict) else str(f) for f in result["fields"]]
            rows = [[None if v is None else str(v) for v in row] for row in result["rows"]]
            count = int(result.get("count", len(rows)))
        except (KeyError, TypeError, ValueError) as exc:
            raise ArchiveError(
                f"HSC-SSP archive: preview answer is not the expected "
                f"{{result: {{fields, rows, count}}}} ({exc!r})"
            ) from None
        return Preview(fields=fields, rows=rows, count=count)


# -- results -------------------------------------------------------------------------------------
