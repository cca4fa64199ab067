"""A real local HTTP server that replays recorded archive responses.

A :class:`ReplayServer` is a ``ThreadingHTTPServer`` on ``127.0.0.1:<free port>`` in a
background thread. Routes are plain functions ``Request -> Response`` keyed by method and
path; faults (``503`` answers, connection resets, hangs, truncated bodies) can be injected
for the first K matching requests. :func:`install_hsc_ssp` adds the HSC-SSP catalog-job and
cutout routes, replaying ``tests/data/hsc_ssp_archive/``; :func:`install_mast` (Mashup portal,
Zcut) and :func:`install_sdss` (SkyServer SQL, SAS frames) replay
``tests/data/hubble_source_catalog_mast/``, ``hst_candels_astrocut/`` and ``sdss_skyserver/``.

Use from a test::

    from tests.support.replay_server import install_hsc_ssp

    def test_something(replay_server):
        server = replay_server()             # started; stopped at teardown
        archive = install_hsc_ssp(server)    # HSC-SSP routes + state
        server.inject("status", count=2, status=503, path="/datasearch/")
        run_sql(..., base_url=server.url, credentials=archive.credentials)
        assert [r.path for r in server.requests] == [...]

Adding a route for another archive::

    @server.route("GET", "/api/v0/invoke")
    def invoke(request):
        return Response.file(DATA / "hsc.json", "application/json")
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import re
import socket
import struct
import tarfile
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import policy
from email.message import Message
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

__all__ = [
    "DATA_DIR",
    "HscSspArchive",
    "Request",
    "Response",
    "ReplayServer",
    "install_hsc_ssp",
    "install_mast",
    "install_sdss",
    "replay_server",
    "simulated_sdss_frame",
]

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "hsc_ssp_archive"


@dataclass
class Request:
    """One request as the server received it."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes
    fault: str | None = None

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body.decode("utf-8"))

    def param(self, name: str) -> str | None:
        """First value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else None

    def form(self) -> dict[str, tuple[str | None, bytes]]:
        """A multipart/form-data body as ``{field: (filename, bytes)}``."""
        ctype = self.headers.get("Content-Type", "")
        if not ctype.startswith("multipart/form-data"):
            raise ValueError(f"not multipart/form-data: {ctype!r}")
        raw = b"Content-Type: " + ctype.encode("latin-1") + b"\r\n\r\n" + self.body
        message = BytesParser(policy=policy.HTTP).parsebytes(raw)
        parts: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            payload = part.get_payload(decode=True)
            parts[str(name)] = (part.get_filename(), payload if isinstance(payload, bytes) else b"")
        return parts

    def basic_auth(self) -> tuple[str, str] | None:
        """``(user, password)`` from an ``Authorization: Basic`` header."""
        value = self.headers.get("Authorization", "")
        if not value.startswith("Basic "):
            return None
        try:
            user, _, password = base64.b64decode(value[6:]).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password


@dataclass
class Response:
    """What a route answers. ``body`` is bytes or a file to stream."""

    status: int = 200
    body: bytes | Path = b""
    content_type: str = "application/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Response:
        """A JSON answer."""
        return cls(status, json.dumps(obj).encode("utf-8"), "application/json")

    @classmethod
    def text(cls, text: str, status: int = 200) -> Response:
        """A plain-text answer."""
        return cls(status, text.encode("utf-8"), "text/plain; charset=utf-8")

    @classmethod
    def file(
        cls,
        path: Path,
        content_type: str = "application/octet-stream",
        status: int = 200,
        **headers: str,
    ) -> Response:
        """Stream a recorded file."""
        return cls(status, Path(path), content_type, dict(headers))

    def payload(self) -> bytes:
        return self.body.read_bytes() if isinstance(self.body, Path) else self.body


Handler = Callable[[Request], Response]


@dataclass
class Fault:
    """An injected failure for the next ``count`` requests whose path starts with ``path``."""

    kind: str  # 'status' | 'reset' | 'hang' | 'truncate'
    count: int
    status: int = 503
    path: str = "/"
    method: str | None = None

    def matches(self, method: str, path: str) -> bool:
        return (
            self.count > 0
            and path.startswith(self.path)
            and (self.method is None or self.method == method)
        )


class ReplayServer:
    """A local HTTP server with pluggable routes and injectable faults.

    Attributes
    ----------
    url : str
        ``http://127.0.0.1:<port>`` once started.
    requests : list of Request
        Every request received, in order (faulted ones have ``fault`` set).
    """

    FAULT_KINDS = ("status", "reset", "hang", "truncate")

    def __init__(self, *, hang_seconds: float = 5.0) -> None:
        self._routes: dict[tuple[str, str], Handler] = {}
        self._faults: list[Fault] = []
        self._lock = threading.Lock()
        self._release = threading.Event()
        self.hang_seconds = hang_seconds
        self.requests: list[Request] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- configuration ---------------------------------------------------------------------------

    def add_route(self, method: str, path: str, handler: Handler) -> None:
        """Answer ``method path`` (exact path, query ignored) with ``handler``."""
        self._routes[(method.upper(), path)] = handler

    def route(self, method: str, path: str) -> Callable[[Handler], Handler]:
        """Decorator form of :meth:`add_route`."""

        def register(handler: Handler) -> Handler:
            self.add_route(method, path, handler)
            return handler

        return register

    def inject(
        self,
        kind: str = "status",
        *,
        count: int = 1,
        status: int = 503,
        path: str = "/",
        method: str | None = None,
    ) -> None:
        """Fail the next ``count`` requests under ``path``.

        ``'status'`` answers ``status`` (default 503); ``'reset'`` drops the connection with
        a TCP reset; ``'hang'`` answers nothing until the client gives up (bounded by
        ``hang_seconds``); ``'truncate'`` sends the headers and half the body, then closes.
        """
        if kind not in self.FAULT_KINDS:
            raise ValueError(f"fault kind must be one of {self.FAULT_KINDS}, got {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, count, status, path, method))

    def calls(self, path: str, method: str | None = None) -> list[Request]:
        """Received requests for one path (faulted ones included)."""
        return [
            r for r in self.requests if r.path == path and (method is None or r.method == method)
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> ReplayServer:
        """Bind to a free port on 127.0.0.1 and serve in a daemon thread."""
        handler = type("BoundHandler", (_Handler,), {"replay": self})
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="replay-server",
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; further requests are refused."""
        self._release.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- dispatch (server threads) ---------------------------------------------------------------

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(method, path):
                    fault.count -= 1
                    return fault
        return None

    def _dispatch(self, request: Request) -> Response:
        handler = self._routes.get((request.method, request.path))
        if handler is None:
            known = sorted(f"{m} {p}" for m, p in self._routes)
            return Response.json(
                {"error": f"no route {request.method} {request.path}", "routes": known}, status=404
            )
        try:
            return handler(request)
        except Exception as exc:  # a broken route should fail the test, not hang it
            return Response.text(f"replay route raised {exc!r}", status=500)


class _Handler(BaseHTTPRequestHandler):
    replay: ReplayServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._serve("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._serve("POST")

    def _serve(self, method: str) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(method, parts.path, parse_qs(parts.query), self.headers, body)
        fault = self.replay._take_fault(method, parts.path)
        request.fault = fault.kind if fault else None
        self.replay.requests.append(request)
        if fault is not None and fault.kind == "reset":
            self._reset()
            return
        if fault is not None and fault.kind == "hang":
            self.replay._release.wait(self.replay.hang_seconds)
            self.close_connection = True
            return
        if fault is not None and fault.kind == "status":
            self._send(Response.text(f"injected fault: HTTP {fault.status}", fault.status))
            return
        response = self.replay._dispatch(request)
        if fault is not None and fault.kind == "truncate":
            data = response.payload()
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self._reset()
            return
        self._send(response)

    def _send(self, response: Response) -> None:
        data = response.payload()
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(data)))
        for key, value in response.headers.items():
            self.send_header(key, value)
        if response.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        for start in range(0, len(data), 64 * 1024):
            self.wfile.write(data[start : start + 64 * 1024])

    def _reset(self) -> None:
        # SO_LINGER 0: close() sends RST, the client sees "connection reset by peer"
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass


# -- HSC-SSP ---------------------------------------------------------------------------------------

CATALOG_API = "/datasearch/api/catalog_jobs/"
SUBMIT_KEYS = {"credential", "clientVersion", "catalog_job", "nomail", "skip_syntax_check"}
JOB_KEYS = {"sql", "out_format", "include_metainfo_to_body", "release_version"}
LIST_HEADER = [
    "#?",
    "ra",
    "dec",
    "sw",
    "sh",
    "filter",
    "rerun",
    "image",
    "variance",
    "mask",
    "type",
]


@dataclass
class _Job:
    record: dict[str, Any]
    polls: int = 0
    cancelled: bool = False
    deleted: bool = False


class HscSspArchive:
    """State and routes of a replayed HSC-SSP archive (catalog jobs and DAS cutouts).

    Parameters
    ----------
    server : ReplayServer
    user, password : str
        The one account the archive accepts.
    polls_until_done : int
        ``status`` answers ``'running'`` this many times, then ``'done'``.
    job_error : str, optional
        Finish jobs with status ``'error'`` and this message instead of ``'done'``.
    auth_failure : {'http401', 'json'}
        How a wrong password is answered: HTTP 401, or a 200 JSON ``{"error": ...}``.
    result : Path
        File streamed by ``download`` (default: the recorded FITS result).
    uncovered : callable, optional
        ``(ra, dec) -> bool``; rows for which it is true get no cutout in a batch tar.
    """

    TRACT = 8523  # from the recorded das_search answer for (34.0, -5.0)
    ARCHIVE_STAMP = "181021-121648"  # the recorded job's created_at, 2018-10-21T12:16:48

    def __init__(
        self,
        server: ReplayServer,
        *,
        user: str = "hsc-test-user",
        password: str = "s3cret-Pa55-for-tests",
        polls_until_done: int = 2,
        job_error: str | None = None,
        auth_failure: str = "http401",
        result: Path = DATA_DIR / "response_query_region.fits",
        uncovered: Callable[[float, float], bool] | None = None,
    ) -> None:
        self.server = server
        self.user = user
        self.password = password
        self.polls_until_done = polls_until_done
        self.job_error = job_error
        self.auth_failure = auth_failure
        self.result = Path(result)
        self.uncovered = uncovered
        self.recorded_job = json.loads((DATA_DIR / "response_query_region_async.dat").read_text())
        self.jobs: dict[int, _Job] = {}
        self.next_id = int(self.recorded_job["id"])
        self.protocol_errors: list[str] = []
        self.lists: list[str] = []
        for verb in ("submit", "status", "download", "cancel", "delete", "preview"):
            server.add_route("POST", CATALOG_API + verb, getattr(self, f"_{verb}"))
        for release in ("pdr1", "pdr2", "pdr3"):
            path = f"/das_cutout/{release}/cgi-bin/cutout"
            server.add_route("GET", path, self._cutout_get)
            server.add_route("POST", path, self._cutout_list)

    @property
    def credentials(self) -> Any:
        """The accepted account as :class:`loaders.http.session.Credentials`."""
        from loaders.http.session import Credentials

        return Credentials(self.user, self.password)

    def cancelled(self) -> list[int]:
        """Ids of jobs a client cancelled."""
        return [i for i, job in self.jobs.items() if job.cancelled]

    def deleted(self) -> list[int]:
        """Ids of jobs a client deleted."""
        return [i for i, job in self.jobs.items() if job.deleted]

    # -- helpers ---------------------------------------------------------------------------------

    def _reject(self, message: str, status: int = 400) -> Response:
        self.protocol_errors.append(message)
        return Response.json({"error": message}, status=status)

    def _denied(self) -> Response:
        # the archive's own client reads HTTP 401 as "invalid id or password"
        if self.auth_failure == "json":
            return Response.json({"error": "invalid account name or password"})
        return Response.text("invalid id or password", status=401)

    def _body(
        self, request: Request, keys: set[str]
    ) -> tuple[dict[str, Any] | None, Response | None]:
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            return None, self._reject("Content-Type must be application/json")
        try:
            body = request.json()
        except ValueError:
            return None, self._reject("body is not JSON")
        if not isinstance(body, dict) or set(body) != keys:
            got = sorted(body) if isinstance(body, dict) else type(body).__name__
            return None, self._reject(f"body keys {got} != {sorted(keys)}")
        if not isinstance(body["clientVersion"], int | float | str):
            return None, self._reject("clientVersion missing")
        cred = body["credential"]
        if not isinstance(cred, dict) or set(cred) != {"account_name", "password"}:
            return None, self._reject("credential must be {account_name, password}")
        if cred != {"account_name": self.user, "password": self.password}:
            return None, self._denied()
        return body, None

    def _job_for(self, body: dict[str, Any]) -> tuple[_Job | None, Response | None]:
        job = self.jobs.get(body["id"])
        if job is None or job.deleted:
            return None, self._reject(f"no job {body['id']!r}", status=404)
        return job, None

    # -- catalog jobs ----------------------------------------------------------------------------

    def _submit(self, request: Request) -> Response:
        body, err = self._body(request, SUBMIT_KEYS)
        if err:
            return err
        assert body is not None
        job = body["catalog_job"]
        if not isinstance(job, dict) or set(job) != JOB_KEYS:
            return self._reject(f"catalog_job keys must be {sorted(JOB_KEYS)}")
        if job["out_format"] not in ("fits", "csv") or job["release_version"] not in (
            "pdr1",
            "pdr2",
            "pdr3",
            "pdr3-citus",
        ):
            return self._reject("bad out_format or release_version")
        if body["nomail"] is not True or body["skip_syntax_check"] is not True:
            return self._reject("nomail and skip_syntax_check must be true")
        record = dict(
            self.recorded_job,
            id=self.next_id,
            status="running",
            sql=job["sql"],
            out_format=job["out_format"],
            release_version=job["release_version"],
        )
        self.jobs[self.next_id] = _Job(record)
        self.next_id += 1
        return Response.json(record)

    def _status(self, request: Request) -> Response:
        body, err = self._body(request, {"credential", "clientVersion", "id"})
        if err:
            return err
        assert body is not None
        job, err = self._job_for(body)
        if err:
            return err
        assert job is not None
        job.polls += 1
        if job.cancelled:
            job.record["status"] = "cancelled"
        elif job.polls >= self.polls_until_done:
            job.record["status"] = "error" if self.job_error else "done"
            job.record["error"] = self.job_error
        return Response.json(job.record)

    def _download(self, request: Request) -> Response:
        body, err = self._body(request, {"credential", "clientVersion", "id"})
        if err:
            return err
        assert body is not None
        job, err = self._job_for(body)
        if err:
            return err
        assert job is not None
        if job.record["status"] != "done":
            return self._reject(f"job {body['id']} is {job.record['status']}", status=406)
        return Response.file(self.result, "application/fits")

    def _cancel(self, request: Request) -> Response:
        return self._mark(request, "cancelled")

    def _delete(self, request: Request) -> Response:
        return self._mark(request, "deleted")

    def _mark(self, request: Request, what: str) -> Response:
        body, err = self._body(request, {"credential", "clientVersion", "id"})
        if err:
            return err
        assert body is not None
        job, err = self._job_for(body)
        if err:
            return err
        assert job is not None
        setattr(job, what, True)
        return Response.json(job.record)

    def _preview(self, request: Request) -> Response:
        body, err = self._body(request, {"credential", "clientVersion", "catalog_job"})
        if err:
            return err
        assert body is not None
        if set(body["catalog_job"]) != {"sql", "release_version"}:
            return self._reject("preview catalog_job must be {sql, release_version}")
        from astropy.io import fits

        with fits.open(self.result, memmap=False) as hdul:
            table = hdul[1].data
            names = list(table.columns.names)
            rows = [[str(v) for v in row] for row in table[:10]]
            count = len(table)
        return Response.json({"result": {"fields": names, "rows": rows, "count": count}})

    # -- cutouts ---------------------------------------------------------------------------------

    def _cutout_auth(self, request: Request) -> Response | None:
        if request.basic_auth() != (self.user, self.password):
            return Response.text("Unauthorized", status=401)
        return None

    def _cutout_get(self, request: Request) -> Response:
        denied = self._cutout_auth(request)
        if denied:
            return denied
        need = ("ra", "dec", "sw", "sh", "type", "filter", "rerun")
        missing = [k for k in need if request.param(k) is None]
        if missing:
            return self._reject(f"missing parameters {missing}")
        ra, dec = float(request.param("ra") or 0), float(request.param("dec") or 0)
        if self.uncovered and self.uncovered(ra, dec):
            return Response.text("no data at this position", status=404)
        return Response.file(DATA_DIR / "image.fits", "application/fits")

    def _cutout_list(self, request: Request) -> Response:
        denied = self._cutout_auth(request)
        if denied:
            return denied
        try:
            form = request.form()
        except ValueError as exc:
            return self._reject(str(exc))
        if "list" not in form:
            return self._reject(f"multipart field 'list' missing (got {sorted(form)})")
        text = form["list"][1].decode("ascii")
        self.lists.append(text)
        lines = text.splitlines()
        if not lines or lines[0].split() != LIST_HEADER:
            return self._reject(f"bad list header {lines[:1]!r}")
        rows = [(n, line.split()) for n, line in enumerate(lines[1:], start=2) if line.strip()]
        if len(rows) > 1000:
            return self._reject(f"too many rows: {len(rows)} > 1000")
        if any(len(fields) != len(LIST_HEADER) - 1 for _, fields in rows):
            return self._reject("a list row does not have 10 fields")
        if len({fields[4] for _, fields in rows}) > 1:
            return self._reject("one filter per list")
        buffer = io.BytesIO()
        image = (DATA_DIR / "image.fits").read_bytes()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for n, fields in rows:
                ra, dec, filt, rerun = float(fields[0]), float(fields[1]), fields[4], fields[5]
                if self.uncovered and self.uncovered(ra, dec):
                    continue
                info = tarfile.TarInfo(
                    f"arch-{self.ARCHIVE_STAMP}/{n}-cutout-{filt}-{self.TRACT}-{rerun}.fits"
                )
                info.size = len(image)
                info.mtime = 1540124208
                tar.addfile(info, io.BytesIO(image))
        name = f"arch-{self.ARCHIVE_STAMP}.tar"
        return Response(
            200,
            buffer.getvalue(),
            "application/x-tar",
            {"Content-Disposition": f'attachment; filename="{name}"'},
        )


def install_hsc_ssp(server: ReplayServer, **options: Any) -> HscSspArchive:
    """Add the HSC-SSP routes to ``server``; see :class:`HscSspArchive` for ``options``."""
    return HscSspArchive(server, **options)


# -- MAST (Mashup portal, Zcut) and SDSS (SkyServer SQL, SAS frames) ------------------------------

MAST_DIR = DATA_DIR.parent / "hubble_source_catalog_mast"
HST_DIR = DATA_DIR.parent / "hst_candels_astrocut"
SDSS_DIR = DATA_DIR.parent / "sdss_skyserver"
HST_FILE = HST_DIR / "candels_gn_30mas_189.492060_62.206150_100.0pix-x-100.0pix_astrocut.fits"
HST_CENTER = (189.49206, 62.20615)  # RA_OBJ / DEC_OBJ of the recorded cutout


class MastArchive:
    """Replayed MAST: the Mashup portal (``/api/v0/invoke``, ``columnsconfig``) and Zcut.

    ``Mast.Hsc.Db.v2/v3`` answer the recorded ``hsc.json`` rows, paged as the request asks
    (``pagesize``, ``page``) and cut to ``params.nr``; ``Mast.HscMatches.Db.v3`` answers
    ``matchid.json`` for the recorded MatchID and no rows otherwise; ``Mast.Name.Lookup`` answers
    the recorded resolver JSON. Zcut lists the recorded surveys near the recorded cutout and
    answers ``astrocut`` with the recorded FITS (zipped) for ``candels_gn_30mas`` there.
    ``calls`` keeps every Mashup request (service, params, page, pagesize).
    """

    RECORDED_MATCHID = "82371983"

    def __init__(self, server: ReplayServer) -> None:
        self.server = server
        self.calls: list[dict[str, Any]] = []
        self.protocol_errors: list[str] = []
        server.add_route("POST", "/api/v0/invoke", self._invoke)
        server.add_route("POST", "/portal/Mashup/Mashup.asmx/columnsconfig", self._columns)
        server.add_route("POST", "/zcut/api/v0.1/survey", self._survey)
        server.add_route("POST", "/zcut/api/v0.1/astrocut", self._astrocut)

    def pages(self, service: str = "Mast.Hsc.Db.v3") -> list[int]:
        """Pages asked of ``service``, in order."""
        return [c["page"] for c in self.calls if c["service"] == service]

    def _invoke(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8"))
        if "request" not in form:
            self.protocol_errors.append("invoke without a 'request' form field")
            return Response.json({"status": "ERROR", "msg": "no request"}, status=400)
        mashup = json.loads(form["request"][0])
        self.calls.append(mashup)
        service, params = mashup.get("service"), mashup.get("params", {})
        if service in ("Mast.Hsc.Db.v3", "Mast.Hsc.Db.v2"):
            recorded = json.loads((MAST_DIR / "hsc.json").read_text())
            return Response.json(self._paged(recorded, mashup, params.get("nr")))
        if service == "Mast.HscMatches.Db.v3":
            recorded = json.loads((MAST_DIR / "matchid.json").read_text())
            if str(params.get("input")) != self.RECORDED_MATCHID:
                recorded["data"] = []
            return Response.json(self._paged(recorded, mashup, None))
        if service == "Mast.Name.Lookup":
            return Response.file(MAST_DIR / "resolver.json", "application/json")
        return Response.json({"status": "ERROR", "msg": f"unknown service {service}"})

    @staticmethod
    def _paged(recorded: dict[str, Any], mashup: dict[str, Any], nr: Any) -> dict[str, Any]:
        rows = recorded["data"][: int(nr)] if nr else recorded["data"]
        size = int(mashup.get("pagesize") or 50000)
        page = int(mashup.get("page") or 1)
        pages = max((len(rows) + size - 1) // size, 1)
        chunk = rows[(page - 1) * size : page * size]
        paging = {
            "page": page,
            "pageSize": size,
            "pagesFiltered": pages,
            "rows": len(chunk),
            "rowsFiltered": len(rows),
            "rowsTotal": len(rows),
        }
        return dict(recorded, data=chunk, paging=paging)

    def _columns(self, request: Request) -> Response:
        if not parse_qs(request.body.decode("utf-8")).get("colConfigId"):
            self.protocol_errors.append("columnsconfig without colConfigId")
        return Response.file(MAST_DIR / "columnsconfig.json", "application/json")

    @staticmethod
    def _near(form: dict[str, list[str]]) -> bool:
        ra, dec = float(form["ra"][0]), float(form["dec"][0])
        return abs(ra - HST_CENTER[0]) < 0.01 and abs(dec - HST_CENTER[1]) < 0.01

    def _survey(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8"))
        if not self._near(form):
            return Response.json({"surveys": []})
        return Response.file(MAST_DIR / "zcut_survey.json", "application/json")

    def _astrocut(self, request: Request) -> Response:
        form = parse_qs(request.body.decode("utf-8"))
        need = ("ra", "dec", "x", "y", "units")
        if any(k not in form for k in need):
            self.protocol_errors.append(f"astrocut without {need}: {sorted(form)}")
            return Response.json({"msg": "bad request"}, status=400)
        survey = form.get("survey", [""])[0]
        if not self._near(form) or survey not in ("", "candels_gn_30mas"):
            return Response.json({"msg": "No cutouts for this position and survey."})
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr(HST_FILE.name, HST_FILE.read_bytes())
        return Response(200, buffer.getvalue(), "application/zip")


def install_mast(server: ReplayServer) -> MastArchive:
    """Add the MAST routes to ``server``; point clients at it with ``$GWH_MAST_URL``."""
    return MastArchive(server)


def simulated_sdss_frame(
    run: int,
    camcol: int,
    field: int,
    band: str,
    center: tuple[float, float] = (2.02345, 14.83982),
    shape: tuple[int, int] = (300, 400),
) -> bytes:
    """A SIMULATED SDSS frame (bz2 FITS): no real SDSS frame is available to the tests.

    HDU 0 is float32 with a TAN WCS at 0.396"/px centred on ``center``; pixel (x, y) holds
    ``1000 * y + x`` (exact in float32), so a test knows which pixel a cutout copied.
    """
    import bz2

    from astropy.io import fits

    ny, nx = shape
    y, x = np.mgrid[0:ny, 0:nx]
    hdu = fits.PrimaryHDU((1000.0 * y + x).astype(np.float32))
    h = hdu.header
    h["HIERARCH SIMULATED"] = (True, "not an SDSS observation: made by the tests")
    h["COMMENT"] = "SIMULATED frame for offline tests of gwh fetch sdss-cutouts"
    h["RUN"], h["CAMCOL"], h["FIELD"], h["FILTER"] = run, camcol, field, band
    h["BUNIT"] = "nanomaggy"
    h["CTYPE1"], h["CTYPE2"] = "RA---TAN", "DEC--TAN"
    h["CRVAL1"], h["CRVAL2"] = center
    h["CRPIX1"], h["CRPIX2"] = (nx + 1) / 2.0, (ny + 1) / 2.0
    h["CD1_1"], h["CD1_2"], h["CD2_1"], h["CD2_2"] = -0.396 / 3600, 0.0, 0.0, 0.396 / 3600
    buffer = io.BytesIO()
    fits.HDUList([hdu]).writeto(buffer)
    return bz2.compress(buffer.getvalue())


class SdssArchive:
    """Replayed SDSS: SkyServer SQL (``/dr<N>/en/tools/search/x_results.aspx``) answering the
    recorded ``xid_im.txt`` rows inside the boxes the query asks for, and SAS frames
    (``/sas/dr<N>/eboss/photoObj/frames/...``) for the recorded runs, SIMULATED
    (:func:`simulated_sdss_frame`). ``queries`` keeps every SQL text received."""

    COLUMNS = "SELECT p.ra, p.dec, p.objid, p.run, p.rerun, p.camcol, p.field FROM PhotoObj AS p"
    BOX = re.compile(r"p\.ra BETWEEN (\S+) AND (\S+) AND p\.dec BETWEEN (\S+) AND (\S+)\)")

    def __init__(
        self, server: ReplayServer, *, data_release: int = 17, bands: str = "ugriz"
    ) -> None:
        self.server = server
        self.queries: list[str] = []
        self.frames: list[str] = []
        self.protocol_errors: list[str] = []
        lines = (SDSS_DIR / "xid_im.txt").read_text().splitlines()
        self.header = lines[1]
        self.rows = [line.split(",") for line in lines[2:] if line.strip()]
        server.add_route("GET", f"/dr{data_release}/en/tools/search/x_results.aspx", self._sql)
        for row in self.rows:
            run, rerun, camcol, field = (int(v) for v in row[3:7])
            for band in bands:
                path = (
                    f"/sas/dr{data_release}/eboss/photoObj/frames/{rerun}/{run}/{camcol}/"
                    f"frame-{band}-{run:06d}-{camcol}-{field:04d}.fits.bz2"
                )
                server.add_route("GET", path, self._frame(run, camcol, field, band))

    def _sql(self, request: Request) -> Response:
        cmd = (request.param("cmd") or "").strip()
        self.queries.append(cmd)
        if request.param("format") != "csv" or not cmd.startswith(self.COLUMNS):
            self.protocol_errors.append(f"unexpected SkyServer request {cmd[:80]!r}")
            return Response.text("error_message: the replay knows only the frame lookup query")
        boxes = [tuple(float(v) for v in m) for m in self.BOX.findall(cmd)]
        keep = [
            r
            for r in self.rows
            if any(a <= float(r[0]) <= b and c <= float(r[1]) <= d for a, b, c, d in boxes)
        ]
        text = "#Table1\n" + self.header + "\n" + "".join(",".join(r) + "\n" for r in keep)
        return Response.text(text)

    def _frame(self, run: int, camcol: int, field: int, band: str) -> Handler:
        def handler(request: Request) -> Response:
            self.frames.append(request.path)
            return Response(
                200, simulated_sdss_frame(run, camcol, field, band), "application/x-bzip2"
            )

        return handler


def install_sdss(server: ReplayServer, **options: Any) -> SdssArchive:
    """Add the SDSS routes to ``server``; point clients at it with ``$GWH_SDSS_URL`` (frames
    then come from ``<that URL>/sas``)."""
    return SdssArchive(server, **options)


@pytest.fixture
def replay_server() -> Iterator[Callable[..., ReplayServer]]:
    """Factory fixture: ``replay_server(**kw)`` starts a :class:`ReplayServer`.

    Every server it started is stopped at teardown.
    """
    started: list[ReplayServer] = []

    def start(**kwargs: Any) -> ReplayServer:
        server = ReplayServer(**kwargs).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
