"""astroquery clients pointed at a configurable host, with timeouts and retries.

astroquery is the client of MAST and SDSS here; this module adds what the warehouse needs
around it, the same guarantees :mod:`loaders.http.session` gives the HSC-SSP clients:

* **Base URLs.** astroquery's MAST classes compute their endpoints once, at import, from
  ``astroquery.mast.conf.server`` (class attributes such as ``PortalAPI.MAST_REQUEST_URL``), so
  changing ``conf.server`` later has no effect. :func:`mast_catalogs` and :func:`mast_zcut` build
  private instances and set those attributes on the instance. astroquery's SDSS class reads
  ``astroquery.sdss.conf.skyserver_baseurl`` / ``sas_baseurl`` at call time, so
  :func:`sdss_urls` sets them for the duration of a call.
* **Timeouts.** astroquery's MAST portal sends requests with no socket timeout; the session
  built here gives every request one (:class:`TimeoutSession`).
* **Retries.** :func:`with_retries` retries transient failures (HTTP 5xx, connection resets,
  timeouts) with exponential back-off per :class:`~loaders.http.session.RetryPolicy`; a 4xx or a
  service error is an :class:`~warehouse.errors.ArchiveError` at once.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
import urllib.error
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import requests

from loaders.http import session as http
from loaders.http.session import RetryPolicy
from warehouse.errors import ArchiveError

__all__ = [
    "TimeoutSession",
    "mast_base_url",
    "mast_catalogs",
    "mast_zcut",
    "sdss_urls",
    "with_retries",
]

log = logging.getLogger(__name__)
T = TypeVar("T")


class TimeoutSession(requests.Session):
    """A :class:`requests.Session` that gives every request a timeout.

    astroquery passes ``timeout=None`` explicitly for many calls; that is replaced too.
    """

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.default_timeout = timeout

    def request(self, method, url, *args, **kwargs):  # type: ignore[no-untyped-def, override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self.default_timeout
        return super().request(method, url, *args, **kwargs)


class _Transient(Exception):
    pass


def _classify(exc: BaseException, what: str) -> BaseException:
    """A :class:`_Transient` to retry, or the :class:`ArchiveError` to raise."""
    if isinstance(exc, requests.HTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status >= 500:
            return _Transient(f"{what} answered HTTP {status}")
        text = " ".join(exc.response.text[:300].split()) or "<empty body>"
        return ArchiveError(f"{what} answered HTTP {status}: {text}")
    if isinstance(exc, urllib.error.HTTPError):
        if exc.code >= 500:
            return _Transient(f"{what} answered HTTP {exc.code}")
        return ArchiveError(f"{what} answered HTTP {exc.code} {exc.reason}")
    if isinstance(exc, requests.Timeout | socket.timeout | TimeoutError):
        return _Transient(f"{what} timed out")
    if isinstance(exc, requests.ConnectionError | urllib.error.URLError | ConnectionError):
        reason = getattr(exc, "reason", None) or type(exc).__name__
        return _Transient(f"{what} failed: {reason}")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError | EOFError):
        return _Transient(f"{what} broke off while reading the answer")
    return exc


def _release(exc: BaseException) -> None:
    """Close the connection an HTTP error still holds (urllib keeps the socket open)."""
    with contextlib.suppress(Exception):
        if isinstance(exc, urllib.error.HTTPError):
            exc.close()
        elif isinstance(exc, requests.HTTPError) and exc.response is not None:
            exc.response.close()


def with_retries(
    call: Callable[[], T],
    *,
    what: str,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``call()``, retrying transient network failures with back-off.

    Parameters
    ----------
    call : callable
        One request (or one astroquery call that makes one logical request).
    what : str
        Names the request in messages, e.g. ``"MAST Mashup (Mast.Hsc.Db.v3, page 2)"``.

    Raises
    ------
    ArchiveError
        A 4xx answer, or every attempt failed transiently.
    """
    policy = retry or RetryPolicy()
    delays = policy.delays()
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except ArchiveError:
            raise
        except Exception as exc:  # astroquery and urllib raise many types; sort them here
            classified = _classify(exc, what)
            _release(exc)
            if not isinstance(classified, _Transient):
                if classified is exc:
                    raise
                raise classified from None
            delay = next(delays, None)
            if delay is None:
                raise ArchiveError(
                    f"{classified} (gave up after {attempt} attempt{'s' if attempt > 1 else ''})."
                    " The archive may be down; try again later or check the base URL."
                ) from None
            log.warning("%s; retry %d in %.1f s", classified, attempt, delay)
            sleep(delay)


# -- MAST ------------------------------------------------------------------------------------------


def mast_base_url(config_value: str | None = None) -> str:
    """``$GWH_MAST_URL``, else ``warehouse.toml``'s ``mast_url``, else https://mast.stsci.edu."""
    return http.base_url("mast", config_value)


def _share_session(query: Any, timeout: float | tuple[float, float]) -> TimeoutSession:
    session = TimeoutSession(timeout)
    session.headers.update(query._session.headers)  # keep astroquery's User-Agent
    query._session = session
    query._portal_api_connection._session = session
    query._service_api_connection._session = session
    return session


def mast_catalogs(
    base_url: str, *, timeout: float | tuple[float, float] = (15.0, 300.0), poll_limit: float = 600
) -> Any:
    """An ``astroquery.mast.CatalogsClass`` whose Mashup (portal) calls go to ``base_url``.

    ``poll_limit`` bounds astroquery's own wait on a Mashup request that answers ``EXECUTING``.
    """
    from astroquery.mast import CatalogsClass

    catalogs = CatalogsClass()
    _share_session(catalogs, timeout)
    portal = catalogs._portal_api_connection
    portal.MAST_REQUEST_URL = f"{base_url}/api/v0/invoke"
    portal.COLUMNS_CONFIG_URL = f"{base_url}/portal/Mashup/Mashup.asmx/columnsconfig"
    portal.MAST_DOWNLOAD_URL = f"{base_url}/api/v0.1/Download/file"
    portal.MAST_BUNDLE_URL = f"{base_url}/api/v0.1/Download/bundle"
    portal.TIMEOUT = poll_limit
    portal._column_configs = {}  # per instance: the class-level dict is shared process-wide
    return catalogs


def mast_zcut(base_url: str, *, timeout: float | tuple[float, float] = (15.0, 300.0)) -> Any:
    """An ``astroquery.mast.ZcutClass`` (deep-field cutouts) whose calls go to ``base_url``."""
    from astroquery.mast import ZcutClass

    zcut = ZcutClass()
    _share_session(zcut, timeout)
    service = zcut._service_api_connection
    service.SERVICE_URL = base_url
    # set_service_params rebuilds REQUEST_URL (<base>/zcut/api/v0.1/) from SERVICE_URL
    service.set_service_params(dict(service.SERVICES), "zcut")
    service.TIMEOUT = timeout[1] if isinstance(timeout, tuple) else timeout
    return zcut


# -- SDSS ------------------------------------------------------------------------------------------


@contextlib.contextmanager
def sdss_urls(skyserver: str, sas: str) -> Iterator[None]:
    """Point ``astroquery.sdss`` at ``skyserver`` (SQL) and ``sas`` (frames) inside the block."""
    from astroquery.sdss import conf

    with conf.set_temp("skyserver_baseurl", skyserver), conf.set_temp("sas_baseurl", sas):
        yield
