"""Running the app: one uvicorn process bound to 127.0.0.1 unless told otherwise.

>>> serve(Path("gwh-demo/warehouse"))  # doctest: +SKIP
serving gwh-demo/warehouse at http://127.0.0.1:8765/ (Ctrl-C stops)
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import uvicorn

from warehouse.core import Warehouse
from warehouse.errors import ServeError, WarehouseError
from warehouse.web import data
from warehouse.web.app import create_app
from warehouse.web.gallery import GalleryQuery, gallery
from warehouse.web.images import RGB, cutout_pngs, sky_png
from warehouse.web.site import QUERY_TIMEOUT_S, Site, open_site, site_for

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A listening socket, or a one-line error saying what to change."""
    if not 0 <= port <= 65535:  # getaddrinfo would take it modulo 65536
        raise ServeError(f"--port {port}: a port is 0 (any free port) to 65535, e.g. 8765")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(
            f"--host {host}: not an address of this machine ({exc.strerror})"
        ) from None
    family, _type, _proto, _name, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        hint = "another program (a gwh serve?) uses it; pass --port N" if port else ""
        raise ServeError(
            f"cannot listen on {host}:{port}: {exc.strerror}; {hint}".rstrip("; ")
        ) from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


@dataclass
class Running:
    """A server started by :func:`start` (tests, benchmarks): its URL and how to stop it."""

    url: str
    site: Site
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.site.close()


class _Server(uvicorn.Server):
    """uvicorn's server that, told to stop (Ctrl-C, SIGTERM), interrupts the statements still
    running: uvicorn waits for the requests in flight, and a query would hold the stop for up
    to its --timeout."""

    def __init__(self, config: uvicorn.Config, site: Site) -> None:
        super().__init__(config)
        self.site = site

    def handle_exit(self, sig, frame) -> None:  # type: ignore[no-untyped-def]
        super().handle_exit(sig, frame)
        # from a thread: the signal may land while this thread holds the site's lock
        threading.Thread(target=self.site.close, name="gwh-serve-stop", daemon=True).start()


def _server(site: Site) -> uvicorn.Server:
    config = uvicorn.Config(create_app(site), log_level="warning", access_log=False, lifespan="off")
    return _Server(config, site)


def _url(host: str, sock: socket.socket) -> str:
    port = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/"


def start(site: Site, host: str = DEFAULT_HOST, port: int = 0) -> Running:
    """Serve ``site`` from a background thread (port 0: any free port); returns when it listens."""
    sock = bind(host, port)
    server = _server(site)
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name="gwh-serve", daemon=True
    )
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    if not server.started:
        raise ServeError(f"the server on {host}:{port} did not start")
    return Running(_url(host, sock), site, server, thread)


def prewarm(site: Site) -> threading.Thread:
    """Compute in the background what the first visitor would wait for: the overview, the
    units, the first gallery page's source and thumbnails, the sky maps. Errors are left for
    the pages to show."""

    def sky_maps() -> None:  # the splits, too, are read in this thread (a damaged file: skip)
        for s in data.splits(site):
            if not site.closed:
                sky_png(site, s)

    def work() -> None:
        steps: list[Callable[[], object]] = [
            lambda: data.overview(site),
            lambda: data.units(site),
            lambda: _first_gallery_page(site),
            sky_maps,
        ]
        for step in steps:
            if site.closed:
                return
            try:
                step()
            except WarehouseError:
                continue

    thread = threading.Thread(target=work, name="gwh-serve-prewarm", daemon=True)
    thread.start()
    return thread


def _first_gallery_page(site: Site) -> None:
    page = gallery(site, GalleryQuery())
    cutout_pngs(site, [o["object_id"] for o in page["objects"]], RGB, "asinh", False)


def run(
    site: Site,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> None:
    """Serve ``site`` in this thread until Ctrl-C; a host other than loopback is warned about."""
    sock = bind(host, port)
    if not is_loopback(host):
        warn(
            f"warning: --host {host} lets anyone who can reach this machine on port "
            f"{sock.getsockname()[1]} read the warehouse (gwh serve has no login); the default "
            f"{DEFAULT_HOST} keeps it on this machine."
        )
    what = f"release {site.release} of {site.wh.root}" if site.release else str(site.wh.root)
    echo(f"serving {what} read-only at {_url(host, sock)} (Ctrl-C stops)")
    warming = prewarm(site)
    try:
        _server(site).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on: a normal stop
        echo("stopped")
    finally:
        site.close()
        warming.join()  # its step ends (DuckDB must not run while the interpreter exits)
        sock.close()


def serve(
    root: Path,
    release: str | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    *,
    query_timeout: float = QUERY_TIMEOUT_S,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> None:
    """Open the warehouse at ``root`` (or its release) read-only and serve it until Ctrl-C."""
    run(open_site(root, release, query_timeout), host, port, echo=echo, warn=warn)


def serve_command(
    wh: Warehouse,
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    timeout: float = QUERY_TIMEOUT_S,
    echo: Callable[[str], None] = print,
    warn: Callable[[str], None] = print,
) -> None:
    """``gwh serve``: ``wh`` is the warehouse at --root, or its --release."""
    if not 0 < timeout < float("inf"):  # NaN too: it turned the limit off
        raise ServeError(f"--timeout must be a positive number of seconds, got {timeout:g}")
    run(site_for(wh, timeout), host, port, echo=echo, warn=warn)
