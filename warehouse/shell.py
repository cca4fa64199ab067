"""``gwh shell``: an interactive SQL prompt over the warehouse (read-only).

Statements end with ``;`` (outside quotes and comments) and may span lines; several on one line
run in order. Up-arrow recalls a whole statement (one history
entry, kept in ``~/.gwh_history`` or ``$GWH_HISTORY``), Tab completes table, view and column
names, Ctrl-C cancels the running statement (or clears a half-typed one) and Ctrl-D leaves. Each
statement goes through the same read-only guard as ``gwh sql``. Dot commands: ``.tables``,
``.schema NAME``, ``.mode table|csv|json``, ``.help``, ``.quit``. The database file also opens in
the DuckDB CLI or any DuckDB client.
"""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import duckdb
import pyarrow as pa

from warehouse import interrupts, output
from warehouse.api import first_rows, stream
from warehouse.db import quote_ident
from warehouse.errors import QueryError, WarehouseError
from warehouse.readonly import check_read_only

if TYPE_CHECKING:
    from warehouse.core import Warehouse

HELP = """\
Statements end with ';' and may span lines; several on a line run in order. Up-arrow recalls a
whole statement, Tab completes table and column names, Ctrl-C cancels a running statement,
Ctrl-D leaves. Commands:
  .tables         tables and views with descriptions
  .schema NAME    columns of a table or view
  .mode MODE      output as table, csv or json
  .quit           leave (also Ctrl-D)"""

KEYWORDS = (
    "SELECT FROM WHERE GROUP BY ORDER HAVING LIMIT OFFSET JOIN LEFT INNER ON USING AS AND OR NOT "
    "NULL IS IN BETWEEN LIKE ILIKE DISTINCT COUNT WITH UNION ALL CASE WHEN THEN ELSE END DESCRIBE "
    "SUMMARIZE EXPLAIN QUALIFY"
).split()


MORE = ".mode csv or .mode json for every row and column"
"""The table footer's hint here: the shell has no --format or --out."""


class Cancelled(Exception):
    """The user pressed Ctrl-C while a statement ran."""


def history_path() -> Path:
    return Path(os.environ.get("GWH_HISTORY") or Path.home() / ".gwh_history")


@contextlib.contextmanager
def interrupt_on_ctrl_c(con: duckdb.DuckDBPyConnection) -> Iterator[threading.Event]:
    """While inside, Ctrl-C interrupts the query running on ``con`` at once.

    DuckDB's own Ctrl-C check runs only between large units of work (seconds to minutes on a
    big join); ``con.interrupt()`` from another thread stops the query within milliseconds. The
    signal is caught by a no-op handler and reported through :func:`signal.set_wakeup_fd` to a
    watcher thread that calls ``interrupt``. Yields an event set when that happened.
    """
    hit = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield hit
        return
    r, w = os.pipe()
    os.set_blocking(w, False)
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            ready, _, _ = select.select([r], [], [], 0.05)
            if ready and bytes([signal.SIGINT]) in os.read(r, 64):
                hit.set()
                con.interrupt()

    old_handler = signal.signal(signal.SIGINT, lambda _signum, _frame: None)
    old_fd = signal.set_wakeup_fd(w, warn_on_full_buffer=False)
    watcher = threading.Thread(target=watch, name="gwh-ctrl-c", daemon=True)
    watcher.start()
    try:
        yield hit
    finally:
        stop.set()
        watcher.join()
        signal.set_wakeup_fd(old_fd)
        signal.signal(signal.SIGINT, old_handler)
        os.close(r)
        os.close(w)


def run_query(wh: Warehouse, sql: str, max_rows: int | None = None) -> tuple[pa.Table, int]:
    """Run one guarded statement: its first ``max_rows`` rows (None: all) and its row count,
    read as a stream (memory holds what is shown); Ctrl-C interrupts it and raises
    :class:`Cancelled`."""
    statement = check_read_only(sql)
    with wh.connect(shared=True) as con, interrupt_on_ctrl_c(con) as hit:
        try:
            return first_rows(stream(con, statement), max_rows)
        except (duckdb.InterruptException, KeyboardInterrupt):
            raise Cancelled() from None
        except (RuntimeError, QueryError):
            if hit.is_set():  # duckdb 2.0 reports its own Ctrl-C check this way
                raise Cancelled() from None
            raise


class Completer:
    """Tab completion over the names of tables, views, their columns and SQL keywords."""

    def __init__(self, names: dict[str, list[str]]):
        self.tables = sorted(names)
        self.columns = sorted({c for cols in names.values() for c in cols})
        self.by_table = names
        self._matches: list[str] = []

    @classmethod
    def for_warehouse(cls, wh: Warehouse) -> Completer:
        names: dict[str, list[str]] = {}
        try:
            with wh.connect(shared=True) as con:
                for name in con.execute(
                    "SELECT name FROM gwh_models WHERE kind <> 'macro' AND available"
                ).fetchall():
                    names[name[0]] = []
                rows = con.execute(
                    "SELECT table_name, column_name FROM duckdb_columns() "
                    "WHERE NOT internal ORDER BY table_name, column_index"
                ).fetchall()
        except WarehouseError:
            return cls({})
        for table, column in rows:
            names.setdefault(table, []).append(column)
        return cls(names)

    def candidates(self, text: str) -> list[str]:
        if "." in text:  # table.column
            table, _, prefix = text.rpartition(".")
            return [f"{table}.{c}" for c in self.by_table.get(table, []) if c.startswith(prefix)]
        low = text.lower()
        words = [*self.tables, *self.columns]
        found = [w for w in words if w.lower().startswith(low)]
        found += [k for k in KEYWORDS if k.lower().startswith(low)]
        if text[:1].islower():
            found = [w.lower() if w in KEYWORDS else w for w in found]
        return sorted(dict.fromkeys(found))

    def complete(self, text: str, state: int) -> str | None:
        if state == 0:
            self._matches = self.candidates(text)
        return self._matches[state] if state < len(self._matches) else None


def _setup_readline(wh: Warehouse) -> Callable[[str], None]:
    """Line editing, whole-statement history and Tab completion; returns ``remember(stmt)``."""
    try:
        import readline
    except ImportError:  # pragma: no cover - no readline on this platform
        return lambda _statement: None
    readline.set_auto_history(False)  # one history entry per statement, not per line
    path = history_path()
    for entry in _read_history(path):
        readline.add_history(entry)
    readline.set_completer(Completer.for_warehouse(wh).complete)
    readline.set_completer_delims(" \t\n()[],;=<>+-*/|'\"")
    readline.parse_and_bind("tab: complete")

    def remember(statement: str) -> None:
        readline.add_history(statement)
        try:
            with open(path, "a", encoding="utf-8") as fh:
                fh.write(_escape(statement) + "\n")
        except OSError:
            pass  # no writable home: history lasts for this session only

    return remember


def _escape(statement: str) -> str:
    """One line per statement in the history file (readline's own format splits them)."""
    return statement.replace("\\", "\\\\").replace("\n", "\\n")


def _unescape(line: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), line)


def _read_history(path: Path, keep: int = 1000) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    return [_unescape(line) for line in lines[-keep:] if line]


def run_shell(wh: Warehouse, stdin: TextIO, echo: Callable[[str], None]) -> None:
    interactive = stdin.isatty()
    remember: Callable[[str], None] = lambda _statement: None  # noqa: E731
    if interactive:
        remember = _setup_readline(wh)
        echo(
            f"galaxy-warehouse shell on {wh.root} (read-only). .help for commands, .quit to leave."
        )
    mode = "table"
    buffer: list[str] = []

    def lines() -> Iterator[str]:
        while True:
            if interactive:
                try:
                    yield input("gwh> " if not buffer else "...> ")
                except EOFError:
                    echo("")
                    return
                except KeyboardInterrupt:  # Ctrl-C at the prompt: drop the half-typed statement
                    interrupts.clear()  # the shell goes on: its next queries are not stopped
                    echo("^C")
                    buffer.clear()
            else:
                line = stdin.readline()
                if not line:
                    return
                yield line.rstrip("\n")

    for line in lines():
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            remember(stripped)
            parts = stripped.split()
            cmd = parts[0]
            if cmd in (".quit", ".exit"):
                return
            if cmd == ".help":
                echo(HELP)
            elif cmd == ".tables":
                _guarded(lambda: _tables(wh, echo), echo)
            elif cmd == ".schema" and len(parts) == 2:
                _run(
                    wh,
                    "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                    f"{quote_ident(parts[1])})",
                    "table",
                    echo,
                )
            elif cmd == ".mode" and len(parts) == 2 and parts[1] in output.FORMATS:
                mode = parts[1]
            else:
                echo(f"error: unknown command {stripped!r}; .help lists the commands")
            continue
        if not stripped and not buffer:
            continue
        buffer.append(line)
        statements, rest = split_statements("\n".join(buffer))
        buffer.clear()
        if has_code(rest):
            buffer.append(rest)
        for statement in statements:
            remember(statement + ";")
            _run(wh, statement, mode, echo)
    if buffer and not interactive:  # piped SQL may leave off the last ';'
        _run(wh, buffer[0].strip(), mode, echo)
    elif buffer:  # Ctrl-D leaves: a half-typed statement is not run
        echo("(the statement not ended with ';' was not run)")


def _tokens(text: str) -> Iterator[tuple[str, int, int]]:
    """(kind, start, end) of ``text``'s quoted strings and identifiers ('quote'), comments
    ('comment'), top-level semicolons ('end') and everything else ('code'), in order. A quote
    or block comment left open runs to the end."""
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'\"":
            j = i + 1
            while j < n and not (text[j] == c and text[j + 1 : j + 2] != c):
                j += 2 if text[j] == c else 1  # a doubled quote is one quote character
            yield "quote", i, min(j + 1, n)
            i = j + 1
        elif text.startswith("--", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            yield "comment", i, j
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            yield "comment", i, j
            i = j
        elif c == ";":
            yield "end", i, i + 1
            i += 1
        else:
            yield "code", i, i + 1
            i += 1


def has_code(text: str) -> bool:
    """``text`` holds more than whitespace and comments."""
    return any(
        kind == "quote" or (kind == "code" and not text[a:b].isspace())
        for kind, a, b in _tokens(text)
    )


def split_statements(text: str) -> tuple[list[str], str]:
    """The statements ``text`` ends with ``;`` (quotes and comments respected; empty ones
    dropped), and what follows the last ``;``.

    >>> split_statements("select 1; /* a; note */ select ';' as s; select")
    (['select 1', "/* a; note */ select ';' as s"], ' select')
    """
    out, start = [], 0
    for kind, a, _b in _tokens(text):
        if kind == "end":
            out.append(text[start:a].strip())
            start = a + 1
    return [s for s in out if has_code(s)], text[start:]


def _tables(wh: Warehouse, echo: Callable[[str], None]) -> None:
    for v in wh.views(count_rows=False):
        echo(f"{v.name:<20} {v.description}")


def _guarded(action: Callable[[], None], echo: Callable[[str], None]) -> None:
    try:
        action()
    except WarehouseError as exc:
        echo(f"error: {exc}")
    except KeyboardInterrupt:
        interrupts.clear()
        echo("cancelled")


def _run(wh: Warehouse, statement: str, mode: str, echo: Callable[[str], None]) -> None:
    try:
        if mode == "table":  # holds only the rows it shows
            shown, total = run_query(wh, statement, 100)
            echo(output.format_table(shown, 100, total=total, more=MORE))
        else:
            echo(output.render(run_query(wh, statement)[0], mode))
    except Cancelled:
        echo("cancelled (Ctrl-C); the warehouse is unchanged.")
    except KeyboardInterrupt:  # while the reader connection was being built
        interrupts.clear()
        echo("cancelled")
    except WarehouseError as exc:
        echo(f"error: {exc}")
