"""``gwh shell``: an interactive SQL prompt over the warehouse (read-only).

Statements end with ``;``. Dot commands: ``.tables``, ``.schema NAME``, ``.mode table|csv|json``,
``.help``, ``.quit``. The database file also opens in the DuckDB CLI or any DuckDB client.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TextIO

from warehouse import output
from warehouse.errors import WarehouseError

HELP = """\
Statements end with ';' and may span lines. Commands:
  .tables         tables and views with descriptions
  .schema NAME    columns of a table or view
  .mode MODE      output as table, csv or json
  .quit           leave (also Ctrl-D)"""


def run_shell(wh, stdin: TextIO, echo: Callable[[str], None]) -> None:  # type: ignore[no-untyped-def]
    interactive = stdin.isatty()
    if interactive:
        try:
            import readline  # noqa: F401  (line editing and history for input())
        except ImportError:
            pass
        echo(
            f"galaxy-warehouse shell on {wh.root} (read-only). .help for commands, .quit to leave."
        )
    mode = "table"
    buffer: list[str] = []

    def lines():  # type: ignore[no-untyped-def]
        while True:
            if interactive:
                try:
                    yield input("gwh> " if not buffer else "...> ")
                except EOFError:
                    return
            else:
                line = stdin.readline()
                if not line:
                    return
                yield line.rstrip("\n")

    for line in lines():
        stripped = line.strip()
        if not buffer and stripped.startswith("."):
            parts = stripped.split()
            cmd = parts[0]
            if cmd in (".quit", ".exit"):
                return
            if cmd == ".help":
                echo(HELP)
            elif cmd == ".tables":
                for v in wh.views(count_rows=False):
                    echo(f"{v.name:<20} {v.description}")
            elif cmd == ".schema" and len(parts) == 2:
                _run(
                    wh,
                    "SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM "
                    f"{_ident(parts[1])})",
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
        if stripped.endswith(";"):
            statement = "\n".join(buffer).strip().rstrip(";")
            buffer.clear()
            _run(wh, statement, mode, echo)
    if buffer:
        _run(wh, "\n".join(buffer).strip().rstrip(";"), mode, echo)


def _ident(name: str) -> str:
    from warehouse.db import quote_ident

    return quote_ident(name)


def _run(wh, statement: str, mode: str, echo: Callable[[str], None]) -> None:  # type: ignore[no-untyped-def]
    try:
        echo(output.render(wh.query(statement), mode))
    except WarehouseError as exc:
        echo(f"error: {exc}")
