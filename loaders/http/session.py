"""A small HTTP layer shared by the archive clients.

One :class:`ArchiveSession` per client: timeouts on every request, retries with
exponential back-off for transient failures (HTTP 5xx, connection resets, timeouts),
none for 4xx, and a clear :class:`~warehouse.errors.ArchiveError` naming the URL and
the status otherwise. Secrets handed to the session are masked in every message.

Base URLs resolve as: environment variable > ``warehouse.toml`` value > default::

    >>> base_url("hsc_ssp")  # doctest: +SKIP
    'https://hsc-release.mtk.nao.ac.jp'
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from warehouse.errors import ArchiveError, AuthenticationError
from warehouse.files import atomic_write_bytes

__all__ = [
    "DEFAULT_URLS",
    "ENV_VARS",
    "ArchiveSession",
    "Credentials",
    "RetryPolicy",
    "base_url",
    "credentials_from_env",
]

log = logging.getLogger(__name__)

DEFAULT_URLS: Mapping[str, str] = {
    "hsc_ssp": "https://hsc-release.mtk.nao.ac.jp",
    "mast": "https://mast.stsci.edu",
    "sdss": "https://skyserver.sdss.org",
}
ENV_VARS: Mapping[str, str] = {
    "hsc_ssp": "GWH_HSC_SSP_URL",
    "mast": "GWH_MAST_URL",
    "sdss": "GWH_SDSS_URL",
}

USER_AGENT = "galaxy-warehouse/0.1 (+python-requests)"
_CHUNK = 1 << 20


def base_url(service: str, config_value: str | None = None) -> str:
    """Base URL of an archive service, without a trailing slash.

    Parameters
    ----------
    service : str
        One of ``'hsc_ssp'``, ``'mast'``, ``'sdss'``.
    config_value : str, optional
        The value from ``warehouse.toml``; wins over the default.

    Returns
    -------
    str
        ``$GWH_<SERVICE>_URL`` if set and non-empty, else ``config_value``, else the default.
    """
    if service not in DEFAULT_URLS:
        raise ValueError(
            f"unknown archive service {service!r}; expected one of {sorted(DEFAULT_URLS)}"
        )
    url = os.environ.get(ENV_VARS[service]) or config_value or DEFAULT_URLS[service]
    if not url.startswith(("http://", "https://")):
        raise ValueError(
            f"base URL for {service!r} must start with http:// or https://, "
            f"got {url!r} (check ${ENV_VARS[service]} or warehouse.toml)"
        )
    return url.rstrip("/")


@dataclass(frozen=True)
class Credentials:
    """An archive account. The password never appears in ``repr`` or ``str``."""

    user: str
    password: str = field(repr=False)

    def __post_init__(self) -> None:
        if not self.user:
            raise ValueError("Credentials.user must not be empty")
        if not self.password:
            raise ValueError("Credentials.password must not be empty")

    def __repr__(self) -> str:
        return f"Credentials(user={self.user!r}, password='***')"

    __str__ = __repr__


def credentials_from_env(
    user_var: str,
    password_var: str,
    *,
    service: str,
    prompt: bool = True,
    getpass: Callable[[str], str] | None = None,
    input_: Callable[[str], str] | None = None,
) -> Credentials:
    """Read credentials from two environment variables, or prompt for the missing ones.

    Parameters
    ----------
    user_var, password_var : str
        Names of the environment variables.
    service : str
        Human name of the archive, used in prompts and messages.
    prompt : bool
        Ask on the terminal (password via :func:`getpass.getpass`) when a variable is unset.
    getpass, input_ : callable, optional
        Replacements for :func:`getpass.getpass` and :func:`input` (tests).

    Raises
    ------
    AuthenticationError
        When a value is missing and prompting is off.
    """
    import getpass as _getpass

    ask_password = getpass or _getpass.getpass
    ask_user = input_ or input
    user = os.environ.get(user_var, "")
    password = os.environ.get(password_var, "")
    try:
        if not user:
            if not prompt:
                raise AuthenticationError(
                    f"no {service} account name: set ${user_var} and ${password_var}"
                )
            user = ask_user(f"{service} account name: ").strip()
        if not password:
            if not prompt:
                raise AuthenticationError(f"no {service} password: set ${password_var}")
            password = ask_password(f"{service} password for {user}: ")
    except EOFError:  # nothing to read them from (a batch job, `< /dev/null`)
        raise AuthenticationError(
            f"no {service} credentials: set ${user_var} and ${password_var} (stdin gave none "
            "when asked)"
        ) from None
    if not user or not password:
        raise AuthenticationError(
            f"{service} credentials are empty: set ${user_var} and ${password_var}"
        )
    return Credentials(user, password)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a transient failure is retried.

    Attempt ``k`` (0-based) that fails transiently is followed by a wait of
    ``min(backoff * factor**k, max_backoff)`` seconds, up to ``attempts`` tries in all.
    """

    attempts: int = 4
    backoff: float = 1.0
    factor: float = 2.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"RetryPolicy.attempts must be >= 1, got {self.attempts}")
        if self.backoff < 0:
            raise ValueError(f"RetryPolicy.backoff must be >= 0, got {self.backoff}")
        if self.factor < 1:
            raise ValueError(f"RetryPolicy.factor must be >= 1, got {self.factor}")
        if self.max_backoff < 0:
            raise ValueError(f"RetryPolicy.max_backoff must be >= 0, got {self.max_backoff}")

    def delays(self) -> Iterator[float]:
        """Waits between attempts (``attempts - 1`` values)."""
        for k in range(self.attempts - 1):
            yield min(self.backoff * self.factor**k, self.max_backoff)


class _Transient(Exception):
    """Internal: a failure worth retrying; carries the user-facing message."""


def secret_forms(secret: str) -> set[str]:
    """Every way ``secret`` can appear in text a server echoes back.

    Raw; JSON-escaped (``\\"``, ``\\\\``, ``\\uXXXX`` for non-ASCII, and once more for a
    JSON string inside JSON); Python ``repr``; URL-encoded with :func:`urllib.parse.quote` and
    :func:`~urllib.parse.quote_plus` (UTF-8 bytes, upper- and lower-case hex); base64 of
    the UTF-8 bytes.

    >>> sorted(secret_forms('a"b'))[:3]
    ['YSJi', 'a"b', 'a%22b']
    """
    if not secret:
        return set()
    forms = {secret, repr(secret)[1:-1]}
    forms |= {base64.b64encode(b).decode() for b in _encodings(secret)}
    for ascii_only in (True, False):
        once = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {once, json.dumps(once, ensure_ascii=ascii_only)[1:-1]}
    for encoded in (
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret),
        urllib.parse.quote_plus(secret, safe=""),
    ):
        forms |= {encoded, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), encoded)}
    return {f for f in forms if f}


def _encodings(text: str) -> list[bytes]:
    """UTF-8, and Latin-1 when it fits: ``requests`` encodes a basic-auth ``str`` as Latin-1."""
    out = [text.encode("utf-8")]
    with contextlib.suppress(UnicodeEncodeError):
        out.append(text.encode("latin-1"))
    return out


def basic_auth_forms(user: str, password: str) -> set[str]:
    """The ``Authorization: Basic`` value of ``user:password`` (base64, as requests sends it)."""
    forms = set()
    for token in _encodings(f"{user}:{password}"):
        encoded = base64.b64encode(token).decode()
        forms |= {encoded, encoded.rstrip("=")}
    return forms


def mask_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each form of each secret (longest first) replaced by ``***``."""
    forms: set[str] = set()
    for secret in secrets:
        forms |= secret_forms(secret)
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


class ArchiveSession:
    """A ``requests`` session with timeouts, retries and secret-free error messages.

    Parameters
    ----------
    service : str
        Human name of the archive, used in messages (e.g. ``'HSC-SSP'``).
    timeout : float or (float, float)
        Connect and read timeouts in seconds for every request.
    retry : RetryPolicy
        Retry policy for transient failures.
    secrets : sequence of str
        Strings masked as ``***`` in every message this session produces.
    sleep : callable
        Used to wait between retries; tests pass a recorder.
    auth_hint : str
        Appended to the message of a 401/403 (say which variables hold the credentials).

    Examples
    --------
    >>> with ArchiveSession("HSC-SSP") as s:  # doctest: +SKIP
    ...     r = s.request("GET", "https://hsc-release.mtk.nao.ac.jp/")
    """

    def __init__(
        self,
        service: str,
        *,
        timeout: float | tuple[float, float] = (15.0, 300.0),
        retry: RetryPolicy | None = None,
        secrets: Sequence[str] = (),
        sleep: Callable[[float], None] = time.sleep,
        auth_hint: str = "",
        session: requests.Session | None = None,
    ) -> None:
        self.service = service
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._secrets = tuple(s for s in secrets if s)
        self._sleep = sleep
        self.auth_hint = auth_hint
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = USER_AGENT

    def __repr__(self) -> str:
        return f"ArchiveSession(service={self.service!r}, retry={self.retry!r})"

    def __enter__(self) -> ArchiveSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pooled connections."""
        self._session.close()

    def redact(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``, in every encoding it may take.

        A server that echoes the request puts the password back raw, JSON-escaped, URL-encoded
        or, with basic auth, inside a base64 ``user:password``: see :func:`secret_forms`.
        """
        return mask_secrets(text, self._secrets)

    # -- requests ------------------------------------------------------------------------------

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """Send a request and return a successful (2xx/3xx) response, fully read.

        Transient failures are retried per :attr:`retry`; ``kwargs`` go to
        :meth:`requests.Session.request` (``json``, ``data``, ``files``, ``params``, ``auth``).
        File objects in ``files`` are rewound before each attempt.

        Raises
        ------
        AuthenticationError
            On HTTP 401 or 403.
        ArchiveError
            On any other 4xx, or when every attempt failed transiently.
        """

        def consume(response: requests.Response) -> requests.Response:
            _ = response.content  # read now, so a broken body is retried here
            return response

        return self._with_retries(method, url, consume, kwargs)

    def download(self, method: str, url: str, dest: Path, **kwargs: Any) -> Path:
        """Stream a response body to ``dest`` atomically, retrying the whole transfer.

        A connection dropped mid-body counts as transient, like a 5xx.
        """
        dest = Path(dest)

        def consume(response: requests.Response) -> Path:
            return atomic_write_bytes(dest, response.iter_content(_CHUNK))

        kwargs["stream"] = True
        return self._with_retries(method, url, consume, kwargs)

    def _with_retries(
        self,
        method: str,
        url: str,
        consume: Callable[[requests.Response], Any],
        kwargs: dict[str, Any],
    ) -> Any:
        kwargs.setdefault("timeout", self.timeout)
        delays = self.retry.delays()
        attempt = 0
        while True:
            attempt += 1
            try:
                return self._attempt(method, url, consume, kwargs)
            except _Transient as exc:
                delay = next(delays, None)
                if delay is None:
                    raise ArchiveError(
                        f"{self.service} archive: {exc} (gave up after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''}). The archive may be down; try again "
                        "later or check the base URL."
                    ) from None
                log.warning("%s: %s; retry %d in %.1f s", self.service, exc, attempt, delay)
                self._sleep(delay)

    def _attempt(
        self,
        method: str,
        url: str,
        consume: Callable[[requests.Response], Any],
        kwargs: dict[str, Any],
    ) -> Any:
        for value in (kwargs.get("files") or {}).values():
            fobj = value[1] if isinstance(value, tuple) else value
            if hasattr(fobj, "seek"):
                fobj.seek(0)
        auth = kwargs.get("auth")
        if isinstance(auth, tuple) and len(auth) == 2:  # basic auth: mask its header value too
            user, password = (str(a) for a in auth)
            extra = (password, *basic_auth_forms(user, password))
            self._secrets = tuple(dict.fromkeys(self._secrets + extra))
            # requests encodes str credentials as Latin-1 and fails on anything else: send
            # those as UTF-8 (RFC 7617's charset) rather than crash
            kwargs = {**kwargs, "auth": tuple(_encodings(a)[-1] for a in (user, password))}
        shown = self.redact(url)
        try:
            response = self._session.request(method, url, **kwargs)
        except requests.Timeout as exc:
            raise _Transient(f"{method} {shown} timed out ({type(exc).__name__})") from None
        except requests.ConnectionError as exc:
            raise _Transient(f"{method} {shown} failed: {self._reason(exc)}") from None
        with response:
            log.debug("%s %s -> %d", method, shown, response.status_code)
            status = response.status_code
            if status >= 500:
                raise _Transient(
                    f"{method} {shown} answered HTTP {status} {response.reason or ''}".rstrip()
                )
            if status in (401, 403):
                hint = f" {self.auth_hint}" if self.auth_hint else ""
                raise AuthenticationError(
                    f"{self.service} archive refused the credentials: {method} {shown} "
                    f"answered HTTP {status}.{hint}"
                )
            if status >= 400:
                raise ArchiveError(
                    f"{self.service} archive: {method} {shown} answered HTTP {status}: "
                    f"{self.excerpt(response)}"
                )
            try:
                return consume(response)
            except (
                requests.ConnectionError,
                requests.exceptions.ChunkedEncodingError,
                requests.Timeout,
            ) as exc:
                raise _Transient(
                    f"{method} {shown} broke off while reading the body: {self._reason(exc)}"
                ) from None

    def excerpt(self, response: requests.Response, limit: int = 300) -> str:
        """The start of a response body as text, secrets masked."""
        try:
            text = response.content.decode("utf-8", "replace")
        except requests.RequestException:
            text = "<unreadable body>"
        # mask the whole body before cutting or folding it: a cut could split a secret
        text = " ".join(self.redact(text).split())
        return self.redact(text)[:limit] or "<empty body>"

    def _reason(self, exc: BaseException) -> str:
        # requests nests the root cause (e.g. ConnectionResetError) several levels deep
        root: BaseException = exc
        while root.__context__ is not None and root.__context__ is not root:
            root = root.__context__
        name = type(root).__name__
        return self.redact(f"{type(exc).__name__} ({name})")
