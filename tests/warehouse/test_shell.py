"""``gwh shell`` driven through a real pseudo-terminal, as a person types into it."""

from __future__ import annotations

import os
import pty
import re
import select
import sys
import time
from pathlib import Path

import pytest

from warehouse.shell import Completer, _escape, _unescape

REPO = Path(__file__).resolve().parents[2]
LONG_QUERY = (
    "select sum(a.range * b.range) from range(100000000) a, range(100) b "
    "where (a.range + b.range) % 7 = 3;"
)


class Terminal:
    """``gwh shell`` on a pty: write keys, read what the terminal shows."""

    def __init__(self, root: Path, history: Path):
        env = {**os.environ, "GWH_HISTORY": str(history), "TERM": "xterm", "COLUMNS": "200"}
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: the shell itself
            os.chdir(REPO)
            os.execve(sys.executable, [sys.executable, "cli.py", "shell", "--root", str(root)], env)
        self.seen = ""

    def expect(self, text: str, timeout: float = 60) -> str:
        """Everything shown up to and including ``text``."""
        end = time.monotonic() + timeout
        while text not in self.seen:
            if time.monotonic() > end:
                raise AssertionError(f"{text!r} not shown within {timeout}s; shown: {self.seen!r}")
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    self.seen += os.read(self.fd, 65536).decode("utf-8", "replace")
                except OSError:  # the shell exited
                    break
        if text not in self.seen:
            raise AssertionError(f"{text!r} not shown; the shell ended: {self.seen!r}")
        at = self.seen.index(text) + len(text)
        shown, self.seen = self.seen[:at], self.seen[at:]
        return shown

    def type(self, keys: str) -> None:
        os.write(self.fd, keys.encode())

    def close(self) -> int:
        self.type("\x04")  # Ctrl-D
        end = time.monotonic() + 30
        while time.monotonic() < end:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                os.close(self.fd)
                return os.waitstatus_to_exitcode(status)
            ready, _, _ = select.select([self.fd], [], [], 0.1)
            if ready:
                try:
                    os.read(self.fd, 65536)
                except OSError:
                    pass
        os.kill(self.pid, 9)
        raise AssertionError("the shell did not leave on Ctrl-D")


@pytest.fixture
def terminal(loaded, tmp_path):
    term = Terminal(loaded.root, tmp_path / "history")
    term.expect("gwh> ")
    yield term
    if term.fd >= 0:
        try:
            term.close()
        except (AssertionError, OSError):
            pass


def test_up_arrow_recalls_the_whole_statement(terminal, tmp_path, loaded):
    n = loaded.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    terminal.type("select count(*) as n\r")
    terminal.expect("...> ")
    terminal.type("from ml_objects;\r")
    first = terminal.expect("gwh> ")
    assert f"{n}" in first
    terminal.type("\x1b[A")  # Up: the whole two-line statement comes back as one entry
    terminal.type("\r")
    again = terminal.expect("gwh> ")
    assert "select count(*) as n" in again and "from ml_objects;" in again
    assert f"{n}" in again
    assert terminal.close() == 0
    terminal.fd = -1
    history = (tmp_path / "history").read_text(encoding="utf-8").splitlines()
    assert history == ["select count(*) as n\\nfrom ml_objects;"] * 2
    assert _unescape(history[0]) == "select count(*) as n\nfrom ml_objects;"


def test_ctrl_c_cancels_the_statement_not_the_shell(terminal):
    terminal.type(LONG_QUERY + "\r")
    time.sleep(3)  # the query is running
    started = time.monotonic()
    terminal.type("\x03")
    shown = terminal.expect("gwh> ", timeout=30)
    assert "cancelled" in shown
    assert time.monotonic() - started < 30
    terminal.type("select 40 + 2 as answer;\r")
    assert "42" in terminal.expect("gwh> ")


def test_ctrl_c_at_the_prompt_drops_the_half_typed_statement(terminal):
    terminal.type("select 1 as a,\r")
    terminal.expect("...> ")
    # Python's readline notices a signal only once it waits for a key: one that lands between
    # the prompt and that wait is seen at the next key. No person is that fast; a test is.
    time.sleep(1)
    terminal.type("\x03")
    terminal.expect("gwh> ")
    terminal.type("select 7 as b;\r")
    shown = terminal.expect("gwh> ")
    assert "7" in shown and "syntax" not in shown.lower()
    # a query of a second or so runs whole: the Ctrl-C ended the line, not every query after it
    terminal.type("select count(*) as n from range(300000000) t(i) where i % 7 = 3;\r")
    shown = terminal.expect("gwh> ")
    assert "42857143" in shown and "cancelled" not in shown, shown


def test_tab_completes_table_and_column_names(terminal, loaded):
    n = loaded.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    terminal.type("select count(*) from ml_obj\t;\r")
    shown = terminal.expect("gwh> ")
    assert "ml_objects;" in shown and f"{n}" in shown
    # specz_reds completes to specz_redshift (the common prefix of it and specz_redshift_err)
    terminal.type("select max(specz_reds\t) as z from ml_objects;\r")
    shown = terminal.expect("gwh> ")
    z = loaded.query("SELECT max(specz_redshift) AS z FROM ml_objects").column("z")[0].as_py()
    assert "(1 row)" in shown and "error" not in shown and f"{z:.6f}"[:6] in shown


def test_each_statement_goes_through_the_guard(terminal, loaded):
    terminal.type(f"copy ml_objects to '{loaded.root}/x.csv';\r")
    assert "COPY is not allowed" in terminal.expect("gwh> ")
    terminal.type("select * from read_text('/etc/passwd');\r")
    assert "outside the warehouse" in terminal.expect("gwh> ")
    assert not (loaded.root / "x.csv").exists()


def test_completion_candidates(loaded):
    c = Completer.for_warehouse(loaded)
    assert "ml_objects" in c.candidates("ml_obj")
    assert "specz_redshift" in c.candidates("specz_reds")
    assert c.candidates("ml_objects.specz_redshift_e") == ["ml_objects.specz_redshift_err"]
    assert "select" in c.candidates("sel") and "SELECT" in c.candidates("SEL")


@pytest.mark.parametrize("text", ["a\nb", "x \\n y", "back\\slash\n", ""])
def test_history_escaping_round_trips(text):
    assert "\n" not in _escape(text) and _unescape(_escape(text)) == text


def test_piped_statements(cli, loaded):
    result = cli(
        "shell",
        "--root",
        loaded.root,
        input="select 1 as one;\ncopy ml_objects to 'x.csv';\nselect 2\n  as two;\n",
    )
    assert result.exit_code == 0
    assert "one" in result.stdout and "two" in result.stdout
    assert "COPY is not allowed" in result.stdout


def test_statements_end_at_semicolons_outside_comments_and_quotes(cli, loaded):
    """A comment after ';' joined the next statement to it ("2 statements given", the second
    lost); two statements on one line were refused; a ';' in a comment ended the statement."""
    result = cli(
        "shell",
        "--root",
        loaded.root,
        input=(
            "select 1 as one; -- a note\nselect 42 as x;\n"
            "select 2 as two; select ';' as three;\n"
            "select 5 as five -- not the end;\n;\n"
            "/* only a comment; */\n"
        ),
    )
    assert result.exit_code == 0, result.output
    assert "statements given" not in result.stdout and "error" not in result.stdout
    for name in ("one", "x", "two", "three", "five"):
        assert re.search(rf"^\s*{name}\s*$", result.stdout, re.M), (name, result.stdout)
    assert "\n42\n" in result.stdout and "\n;\n" in result.stdout


def test_the_footer_names_what_the_shell_has(cli, loaded):
    result = cli("shell", "--root", loaded.root, input="select * from range(150);\n")
    assert "(150 rows, first 100 shown; .mode csv or .mode json for every" in result.stdout
    assert "--out" not in result.stdout and "--format" not in result.stdout


def test_ctrl_d_leaves_without_running_a_half_typed_statement(terminal):
    terminal.type("select 99 as half\r")
    terminal.expect("...> ")
    terminal.type("\x04")
    shown = terminal.expect("was not run")
    assert "----" not in shown and "Error" not in shown, shown


def test_table_mode_holds_only_the_rows_it_shows(loaded):
    """A statement over a survey table prints its first 100 rows without holding the result:
    300 M BIGINT rows (2.4 GB as Arrow) under 2.5 GB of address space for the whole process."""
    import subprocess

    script = (
        "import io, resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2_500_000_000, 2_500_000_000))\n"
        "from warehouse.core import Warehouse\n"
        "from warehouse.shell import run_shell\n"
        f"wh = Warehouse.open({str(loaded.root)!r})\n"
        "run_shell(wh, io.StringIO('select range AS n from range(300000000);\\n'), print)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-500:]
    assert "(300,000,000 rows, first 100 shown" in run.stdout, run.stdout[-500:]
    assert run.stdout.splitlines()[101] == "99"


def test_an_error_while_the_rows_stream_leaves_the_shell_running(cli, loaded):
    q = "select case when range = 500000 then error('boom') else range end AS x from range(1000000)"
    result = cli("shell", "--root", loaded.root, input=f"{q};\nselect 40 + 2 AS answer;\n")
    assert result.exit_code == 0 and isinstance(result.exception, SystemExit | None)
    assert "error: " in result.stdout and "boom" in result.stdout and "42" in result.stdout
