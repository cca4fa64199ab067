"""``gwh serve`` as a user runs it: the real command in a subprocess, on a free port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from warehouse.release import create_release

REPO = Path(__file__).resolve().parents[1]


def _serve(*args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "GWH_ROOT"}
    return subprocess.Popen(
        [sys.executable, str(REPO / "cli.py"), "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=REPO,
    )


def _url(proc: subprocess.Popen) -> str:
    line = (
        proc.stdout.readline()
    )  # "serving ... read-only at http://127.0.0.1:PORT/ (Ctrl-C stops)"
    assert " read-only at http://" in line, line + proc.stderr.read()
    return line.split(" at ", 1)[1].split()[0]


def _get_json(url: str):  # type: ignore[no-untyped-def]
    with urllib.request.urlopen(url, timeout=120) as resp:
        return json.loads(resp.read())


def _stop(proc: subprocess.Popen) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)  # Ctrl-C
    try:
        _out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    return proc.returncode, err


def test_serve_the_live_warehouse_and_a_release(loaded):
    create_release(loaded, "v1", "first")
    proc = _serve("--root", str(loaded.root), "--port", "0")
    try:
        url = _url(proc)
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        views = {v["name"]: v["rows"] for v in _get_json(url + "api/overview")["views"]}
        assert views["hsc_forced"] == 1200
        assert [r["name"] for r in _get_json(url + "api/releases")] == ["v1"]
    finally:
        code, err = _stop(proc)
    assert code == 0 and "Traceback" not in err
    proc = _serve("--root", str(loaded.root), "--release", "v1", "--port", "0")
    try:
        url = _url(proc)
        assert _get_json(url + "api/overview")["release"] == "v1"
    finally:
        _stop(proc)


def test_host_other_than_loopback_is_warned_about(loaded):
    proc = _serve("--root", str(loaded.root), "--port", "0", "--host", "0.0.0.0")
    try:
        url = _url(proc)
        port = url.rsplit(":", 1)[1].strip("/")
        assert _get_json(f"http://127.0.0.1:{port}/api/releases") == []
    finally:
        code, err = _stop(proc)
    assert "warning: --host 0.0.0.0 lets anyone who can reach this machine" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (("--root", "/nonexistent/gwh"), "/nonexistent/gwh is not a warehouse"),
        (("--release", "v9"), "no release 'v9'"),
        (("--timeout", "0"), "--timeout must be a positive number of seconds"),
        (("--timeout", "nan"), "--timeout must be a positive number of seconds, got nan"),
        (("--timeout", "inf"), "--timeout must be a positive number of seconds, got inf"),
    ],
)
def test_bad_options_are_one_line_errors(loaded, args, says):
    full = ("--root", str(loaded.root), "--port", "0", *args)
    if args[0] == "--root":
        full = ("--port", "0", *args)
    proc = _serve(*full)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and says in err and "Traceback" not in err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_a_stop_does_not_wait_for_a_running_query(loaded):
    """SIGTERM (or Ctrl-C) let a running query go on to its --timeout before the server
    stopped: a stop now interrupts it."""
    import threading
    import time

    slow = "SELECT max(md5(range::VARCHAR)) FROM range(100000000000)"
    proc = _serve("--root", str(loaded.root), "--port", "0", "--timeout", "600")
    try:
        url = _url(proc)
        query = url + "api/sql?" + urllib.parse.urlencode({"q": slow})
        asked = threading.Thread(target=_quietly, args=(query,), daemon=True)
        asked.start()
        time.sleep(2)  # the query is running
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _out, err = proc.communicate(timeout=120)  # not the 600 s the query could run
    finally:
        proc.kill()
    assert time.monotonic() - started < 60, "the stop waited for the query"
    assert "Traceback" not in err, err


def _quietly(url: str) -> None:
    try:
        urllib.request.urlopen(url, timeout=700).close()
    except OSError:  # the server stopped under it: this side does not matter
        pass
