"""A demo warehouse (as `gwh demo` builds it, small) with two releases, served once per session
by a real uvicorn server on a free port of 127.0.0.1, and a tiny HTTP client."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from loaders.simulated.demo import run_demo
from warehouse.core import Warehouse
from warehouse.release import create_release
from warehouse.web import open_site, start


@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self):  # type: ignore[no-untyped-def]
        return json.loads(self.body)


def fetch(base: str, path: str, **params: object) -> Reply:
    """GET ``base + path`` (params URL-encoded); errors are replies too."""
    url = base.rstrip("/") + path
    if params:
        url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=120) as resp:
            return Reply(resp.status, resp.read(), dict(resp.headers))
    except urllib.error.HTTPError as exc:
        return Reply(exc.code, exc.read(), dict(exc.headers))


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory) -> Path:
    """gwh demo (400 objects, 12 with SIMULATED cutouts, 2 real COSMOS cutouts), release v1,
    60 more hsc_forced objects, release v2."""
    where = tmp_path_factory.mktemp("web")
    wh = run_demo(where / "gwh-demo", n_objects=400, n_images=12, echo=lambda _m: None)
    create_release(wh, "v1", "the demo")
    extra = where / "simulated_more_forced.parquet"
    pq.write_table(simulate_field(60, seed=4242).forced, extra)
    wh.load(registry.get("hsc-forced"), [extra])
    create_release(Warehouse.open(wh.root), "v2", "60 more objects")
    return wh.root


@pytest.fixture(scope="session")
def server(demo_root):
    """The live warehouse served read-only; ``server.url`` is its base URL."""
    running = start(open_site(demo_root))
    yield running
    running.stop()


@pytest.fixture
def get(server):
    def call(path: str, **params: object) -> Reply:
        return fetch(server.url, path, **params)

    return call
