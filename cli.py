"""``gwh``: the command line of galaxy-warehouse, a thin layer over the library.

Each command parses its options, calls one library function and prints the result; a
:class:`~warehouse.errors.WarehouseError` becomes its message on stderr and exit code 1.
Run ``python cli.py --help`` or ``gwh --help``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from warehouse.errors import WarehouseError

app = typer.Typer(
    name="gwh",
    help="galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
load_app = typer.Typer(
    help="Load catalog exports into the warehouse (each file once; a rerun resumes).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(load_app, name="load")

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="GWH_ROOT",
        help="Warehouse folder (default: $GWH_ROOT, else ./warehouse).",
        show_default=False,
    ),
]


def _fail(exc: WarehouseError) -> None:
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(exc.exit_code)


def _open(root: Path | None):  # type: ignore[no-untyped-def]
    from warehouse.core import Warehouse, resolve_root

    return Warehouse.open(resolve_root(root))


@app.command()
def init(
    root_arg: Annotated[
        Path | None, typer.Argument(metavar="[ROOT]", help="Folder to create.")
    ] = None,
    root: RootOption = None,
) -> None:
    """Create a warehouse: warehouse.toml, warehouse.duckdb and catalogs/."""
    from warehouse.core import Warehouse, resolve_root

    target = resolve_root(root_arg if root_arg is not None else root)
    try:
        Warehouse.init(target)
    except WarehouseError as exc:
        _fail(exc)
    typer.echo(f"created warehouse {target} (edit {target / 'warehouse.toml'} to configure)")


def _load(loader: str, files: list[Path], root: Path | None) -> None:
    try:
        wh = _open(root)
        wh.load(loader, files, echo=typer.echo)
    except WarehouseError as exc:
        _fail(exc)


FilesArg = Annotated[list[Path], typer.Argument(help="Export files (.fits, .csv, .parquet).")]


@load_app.command("hsc-forced")
def load_hsc_forced(files: FilesArg, root: RootOption = None) -> None:
    """An export of pdr2_wide.forced, forced2, or the paper's forced JOIN specz query."""
    _load("hsc-forced", files, root)


@load_app.command("hsc-specz")
def load_hsc_specz(files: FilesArg, root: RootOption = None) -> None:
    """An export of pdr2_wide.specz."""
    _load("hsc-specz", files, root)


@app.command()
def views(
    root: RootOption = None,
    no_counts: Annotated[bool, typer.Option("--no-counts", help="Skip counting rows.")] = False,
) -> None:
    """Every table and view: row count and a one-line description."""
    try:
        infos = _open(root).views(count_rows=not no_counts)
    except WarehouseError as exc:
        _fail(exc)
    width = max(len(v.name) for v in infos)
    for v in infos:
        rows = "-" if v.rows is None else f"{v.rows:,}"
        typer.echo(f"{v.name.ljust(width)}  {v.layer:<12} {rows:>12}  {v.description}")
        if v.reason:
            typer.echo(f"{'':<{width}}  {'':<12} {'':>12}  unavailable: {v.reason}")


def _check_format(fmt: str) -> str:
    from warehouse.output import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


FormatOption = Annotated[
    str, typer.Option("--format", "-f", callback=_check_format, help="table, csv or json.")
]


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    root: RootOption = None,
    fmt: FormatOption = "table",
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write to FILE (.csv or .parquet).")
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows shown by --format table.")
    ] = 100,
) -> None:
    """Run read-only SQL, e.g. gwh sql "select split, count(*) from ml_objects group by 1"."""
    from warehouse import output

    try:
        result = _open(root).query(query)
        if out is not None:
            output.save(result, out)
            typer.echo(f"wrote {result.num_rows:,} rows to {out}")
        else:
            typer.echo(output.render(result, fmt, max_rows))
    except WarehouseError as exc:
        _fail(exc)


@app.command()
def shell(root: RootOption = None) -> None:
    """Interactive SQL on the warehouse (statements end with ';', .help for commands)."""
    from warehouse.shell import run_shell

    try:
        run_shell(_open(root), sys.stdin, typer.echo)
    except WarehouseError as exc:
        _fail(exc)


@app.command()
def cone(
    ra: Annotated[float, typer.Argument(help="Right ascension, degrees.")],
    dec: Annotated[float, typer.Argument(help="Declination, degrees.")],
    radius_arcsec: Annotated[float, typer.Argument(help="Radius, arcsec.")],
    table: Annotated[str, typer.Option("--table", help="Table to search.")] = "hsc_forced",
    root: RootOption = None,
    fmt: FormatOption = "table",
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated columns to show.")
    ] = None,
) -> None:
    """Rows within RADIUS_ARCSEC of (RA, DEC), nearest first; exact at partition borders."""
    from warehouse import output

    try:
        result = _open(root).cone(ra, dec, radius_arcsec, table)
        if columns:
            wanted = [c.strip() for c in columns.split(",") if c.strip()]
            unknown = [c for c in wanted if c not in result.column_names]
            if unknown:
                raise typer.BadParameter(f"no column(s) {', '.join(unknown)} in {table}")
            result = result.select(wanted)
        typer.echo(output.render(result, fmt))
    except WarehouseError as exc:
        _fail(exc)


@app.command()
def check(root: RootOption = None) -> None:
    """Run every view contract in sql/tests (each assertion must return no rows)."""
    try:
        results = _open(root).check()
    except WarehouseError as exc:
        _fail(exc)
    failed = 0
    for name, n, error in results:
        status = "ok" if n == 0 else ("unavailable" if error else f"FAILED ({n} rows)")
        typer.echo(f"{status:<16} {name}" + (f"  ({error})" if error else ""))
        failed += n > 0
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    root_arg: Annotated[
        Path | None, typer.Argument(metavar="[ROOT]", help="Folder for the demo warehouse.")
    ] = None,
    n_objects: Annotated[int, typer.Option("--objects", help="Simulated objects.")] = 5000,
) -> None:
    """The embedded default, offline: a simulated HSC-like field through every view."""
    from warehouse.demo import run_demo

    try:
        run_demo(root_arg or Path("gwh-demo"), n_objects=n_objects, echo=typer.echo)
    except WarehouseError as exc:
        _fail(exc)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
