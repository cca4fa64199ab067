"""loaders/http/session.py against a real local HTTP server with injected faults."""

from __future__ import annotations

import pytest
import requests

from loaders.http.session import (
    ArchiveSession,
    Credentials,
    RetryPolicy,
    base_url,
    credentials_from_env,
)
from tests.support import replay_server as support
from tests.support.replay_server import ReplayServer, Response
from warehouse.errors import ArchiveError, AuthenticationError
from warehouse.files import atomic_write_bytes

replay_server = support.replay_server  # the fixture factory

SECRET = "pw-never-shown-4711"


class Sleeps(list):
    """A ``sleep`` replacement that records the requested waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def server(replay_server) -> ReplayServer:
    srv = replay_server(hang_seconds=3.0)
    srv.add_route("GET", "/ping", lambda req: Response.text("pong"))
    srv.add_route("GET", "/missing", lambda req: Response.text("no such thing", 404))
    srv.add_route("GET", "/locked", lambda req: Response.text("go away", 401))
    srv.add_route("POST", "/echo", lambda req: Response.text(f"bad: {req.body.decode()}", 400))
    srv.add_route("GET", "/blob", lambda req: Response(200, bytes(range(256)) * 4096))
    return srv


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def session(sleeps: Sleeps, attempts: int = 4, **kw) -> ArchiveSession:
    return ArchiveSession(
        "Test", retry=RetryPolicy(attempts=attempts), sleep=sleeps, secrets=(SECRET,), **kw
    )


# -- base_url --------------------------------------------------------------------------------------


def test_base_url_precedence_env_over_config_over_default(monkeypatch):
    monkeypatch.delenv("GWH_HSC_SSP_URL", raising=False)
    assert base_url("hsc_ssp") == "https://hsc-release.mtk.nao.ac.jp"
    assert base_url("hsc_ssp", "http://mirror.example/") == "http://mirror.example"
    monkeypatch.setenv("GWH_HSC_SSP_URL", "http://127.0.0.1:8080/")
    assert base_url("hsc_ssp", "http://mirror.example") == "http://127.0.0.1:8080"
    assert base_url("hsc_ssp") == "http://127.0.0.1:8080"


@pytest.mark.parametrize("service,var", [("mast", "GWH_MAST_URL"), ("sdss", "GWH_SDSS_URL")])
def test_base_url_other_services_have_their_own_variable(monkeypatch, service, var):
    monkeypatch.delenv(var, raising=False)
    assert base_url(service).startswith("https://")
    monkeypatch.setenv(var, "http://localhost:1")
    assert base_url(service, "http://other") == "http://localhost:1"


def test_base_url_rejects_unknown_service_and_bad_scheme(monkeypatch):
    monkeypatch.delenv("GWH_HSC_SSP_URL", raising=False)
    with pytest.raises(ValueError, match="unknown archive service 'kids'"):
        base_url("kids")
    with pytest.raises(ValueError, match="must start with http"):
        base_url("hsc_ssp", "ftp://example")


# -- retries ---------------------------------------------------------------------------------------


def test_503_is_retried_with_exponential_backoff_then_succeeds(server, sleeps):
    server.inject("status", count=2, status=503, path="/ping")
    with session(sleeps) as s:
        assert s.request("GET", server.url + "/ping").text == "pong"
    assert sleeps == [1.0, 2.0]
    assert [r.fault for r in server.calls("/ping")] == ["status", "status", None]


def test_gives_up_after_the_configured_attempts(server, sleeps):
    server.inject("status", count=10, status=502, path="/ping")
    with session(sleeps, attempts=3) as s, pytest.raises(ArchiveError) as info:
        s.request("GET", server.url + "/ping")
    message = str(info.value)
    assert f"GET {server.url}/ping answered HTTP 502" in message
    assert "gave up after 3 attempts" in message
    assert len(server.calls("/ping")) == 3
    assert sleeps == [1.0, 2.0]


def test_backoff_is_capped():
    policy = RetryPolicy(attempts=6, backoff=1.0, factor=3.0, max_backoff=10.0)
    assert list(policy.delays()) == [1.0, 3.0, 9.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="attempts must be >= 1"):
        RetryPolicy(attempts=0)


def test_4xx_is_not_retried_and_names_url_and_status(server, sleeps):
    with session(sleeps) as s, pytest.raises(ArchiveError) as info:
        s.request("GET", server.url + "/missing")
    assert not isinstance(info.value, AuthenticationError)
    assert f"{server.url}/missing answered HTTP 404: no such thing" in str(info.value)
    assert len(server.calls("/missing")) == 1
    assert sleeps == []


def test_401_is_an_authentication_error_with_the_hint(server, sleeps):
    with session(sleeps, auth_hint="Set $X.") as s, pytest.raises(AuthenticationError) as info:
        s.request("GET", server.url + "/locked")
    assert "refused the credentials" in str(info.value)
    assert "HTTP 401" in str(info.value) and "Set $X." in str(info.value)
    assert sleeps == []


def test_connection_reset_is_retried(server, sleeps):
    server.inject("reset", count=1, path="/ping")
    with session(sleeps) as s:
        assert s.request("GET", server.url + "/ping").text == "pong"
    assert sleeps == [1.0]
    assert len(server.calls("/ping")) == 2


def test_timeout_is_retried(server, sleeps):
    server.inject("hang", count=1, path="/ping")
    with session(sleeps, timeout=(2.0, 0.2)) as s:
        assert s.request("GET", server.url + "/ping").text == "pong"
    assert sleeps == [1.0]


def test_unreachable_host_gives_a_clear_error(server, sleeps):
    url = server.url
    server.stop()
    with session(sleeps, attempts=2) as s, pytest.raises(ArchiveError) as info:
        s.request("GET", url + "/ping")
    assert f"GET {url}/ping failed: ConnectionError" in str(info.value)
    assert "gave up after 2 attempts" in str(info.value)


def test_download_truncated_mid_body_is_retried_and_written_whole(server, sleeps, tmp_path):
    server.inject("truncate", count=1, path="/blob")
    dest = tmp_path / "blob.bin"
    with session(sleeps) as s:
        s.download("GET", server.url + "/blob", dest)
    assert dest.read_bytes() == bytes(range(256)) * 4096
    assert sleeps == [1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["blob.bin"]  # no temp file left


def test_download_failure_leaves_no_partial_file(server, sleeps, tmp_path):
    server.inject("truncate", count=5, path="/blob")
    dest = tmp_path / "blob.bin"
    with session(sleeps, attempts=2) as s, pytest.raises(ArchiveError, match="broke off"):
        s.download("GET", server.url + "/blob", dest)
    assert list(tmp_path.iterdir()) == []


def test_secrets_are_masked_in_error_messages(server, sleeps):
    with session(sleeps) as s, pytest.raises(ArchiveError) as info:
        s.request("POST", server.url + "/echo", data=f"password={SECRET}")
    assert SECRET not in str(info.value)
    assert "password=***" in str(info.value)


# -- credentials and files -------------------------------------------------------------------------


def test_credentials_repr_hides_the_password():
    creds = Credentials("alice", SECRET)
    assert SECRET not in repr(creds) and SECRET not in str(creds) and SECRET not in f"{creds}"
    assert "alice" in repr(creds)
    with pytest.raises(ValueError, match="password must not be empty"):
        Credentials("alice", "")


def test_credentials_from_env_then_prompt(monkeypatch):
    monkeypatch.setenv("T_USER", "alice")
    monkeypatch.setenv("T_PASS", SECRET)
    assert credentials_from_env("T_USER", "T_PASS", service="T") == Credentials("alice", SECRET)

    monkeypatch.delenv("T_PASS")
    asked: list[str] = []

    def fake_getpass(prompt: str) -> str:
        asked.append(prompt)
        return "typed-secret"

    creds = credentials_from_env("T_USER", "T_PASS", service="T", getpass=fake_getpass)
    assert creds.password == "typed-secret" and asked == ["T password for alice: "]
    with pytest.raises(AuthenticationError, match=r"set \$T_PASS"):
        credentials_from_env("T_USER", "T_PASS", service="T", prompt=False)

    def closed(_prompt: str) -> str:  # stdin at its end: a batch job, `< /dev/null`
        raise EOFError

    monkeypatch.delenv("T_USER")
    with pytest.raises(AuthenticationError, match=r"set \$T_USER and \$T_PASS \(stdin gave none"):
        credentials_from_env("T_USER", "T_PASS", service="T", input_=closed)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    def chunks():
        yield b"partial"
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(tmp_path / "out.bin", chunks())
    assert list(tmp_path.iterdir()) == []
    atomic_write_bytes(tmp_path / "out.bin", b"whole")
    assert (tmp_path / "out.bin").read_bytes() == b"whole"


def test_session_is_a_requests_session_with_our_user_agent(server, sleeps):
    with session(sleeps) as s:
        s.request("GET", server.url + "/ping")
    assert server.calls("/ping")[0].headers["User-Agent"].startswith("galaxy-warehouse/")
    assert isinstance(s._session, requests.Session)


# -- secrets in every encoding (issue 13 §7) -------------------------------------------------------

HARD_PASSWORDS = [
    'quo"te',
    "back\\slash",
    "pässwörd-ñ",
    "spa ce+plus&amp/sl=eq%",
    "日本語のパスワード",
    'all"of\\them é+&/',
]


def _echo_everything(req) -> Response:
    """A server that puts the request back into its error page, as some do (kept short: the
    message shows the start of the page only)."""
    from urllib.parse import quote, urlencode

    parts = [
        req.headers.get("Authorization", ""),
        urlencode(req.query, doseq=True),
        urlencode(req.query, doseq=True, quote_via=quote),
        req.body.decode("utf-8", "replace"),
    ]
    return Response.text("bad request: " + " | ".join(p for p in parts if p), 400)


@pytest.mark.parametrize("password", HARD_PASSWORDS)
@pytest.mark.parametrize("how", ["json", "form", "params", "basic-auth"])
def test_a_password_echoed_back_in_any_encoding_is_masked(replay_server, sleeps, password, how):
    from loaders.http.session import basic_auth_forms, secret_forms

    server = replay_server()
    server.add_route("POST", "/echo-all", _echo_everything)
    kwargs = {
        "json": {"json": {"credential": {"account_name": "alice", "password": password}}},
        "form": {"data": {"user": "alice", "password": password}},
        "params": {"params": {"user": "alice", "password": password}},
        "basic-auth": {"auth": ("alice", password)},
    }[how]
    s = ArchiveSession("Test", retry=RetryPolicy(attempts=1), sleep=sleeps, secrets=(password,))
    with s, pytest.raises(ArchiveError) as info:
        s.request("POST", server.url + "/echo-all", **kwargs)
    message = str(info.value)
    assert "***" in message
    # the server did echo it (so the test can fail), and nothing of it is left in the message
    echoed = server.requests[-1]
    assert echoed.body or echoed.query or echoed.headers.get("Authorization")
    for form in secret_forms(password) | basic_auth_forms("alice", password):
        assert form not in message, (form, message)


def test_the_catalog_job_client_masks_a_json_escaped_password_in_the_archive_error(
    replay_server, sleeps
):
    from loaders.hsc_ssp.sql_jobs import CatalogJobClient
    from loaders.http.session import secret_forms

    password = 'p"w\\ü+ /&'
    server = replay_server()
    server.add_route(
        "POST",
        "/datasearch/api/catalog_jobs/submit",
        lambda req: Response.json({"error": f"cannot parse {req.body.decode()}"}),
    )
    client = CatalogJobClient(Credentials("alice", password), base_url=server.url)
    with client, pytest.raises(ArchiveError) as info:
        client.submit("SELECT 1", release="pdr2")
    assert "***" in str(info.value)
    for form in secret_forms(password):
        assert form not in str(info.value), form
