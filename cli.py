"""``gwh``: the command line of galaxy-warehouse, a thin layer over the library.

Each command parses its options, calls one library function and prints the result; a
:class:`~warehouse.errors.WarehouseError` becomes its message on stderr and exit code 1.
Run ``python cli.py --help`` or ``gwh --help``.
"""

# ruff: noqa: E402 (the signals are set before the libraries, whose imports take a while)
from __future__ import annotations

from warehouse import interrupts

interrupts.handle_start(__name__ == "__main__")

import inspect
import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from loaders import registry
from warehouse import commands
from warehouse.cli_errors import OneLineUsage, handled

_KEYWORD = inspect.Parameter.POSITIONAL_OR_KEYWORD


class _Typer(typer.Typer):
    """A Typer whose every command runs inside :func:`~warehouse.cli_errors.handled`."""

    def command(  # type: ignore[override]  # Typer's keywords passed through as they are
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        register = super().command(*args, **kwargs)

        def decorator(f: Callable[..., None]) -> Callable[..., None]:
            register(handled(f))
            return f

        return decorator


app = _Typer(
    name="gwh",
    cls=OneLineUsage,
    help="galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _group(name: str, help: str) -> _Typer:
    """A command group ``gwh <name> ...``."""
    group = _Typer(help=help, no_args_is_help=True, rich_markup_mode=None)
    app.add_typer(group, name=name)
    return group


def _print_version(value: bool) -> None:
    if value:
        from warehouse import __version__

        typer.echo(f"gwh (galaxy-warehouse) {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets."""


load_app = _group(
    "load", "Load catalog exports into the warehouse (each file once; a rerun resumes)."
)

RootOption = Annotated[
    Path | None,
    typer.Option(
        "--root",
        envvar="GWH_ROOT",
        help="Warehouse folder (default: $GWH_ROOT, else ./warehouse).",
        show_default=False,
    ),
]


def _open(root: Path | None):  # type: ignore[no-untyped-def]
    from warehouse.core import Warehouse, resolve_root

    return Warehouse.open(resolve_root(root))


ReleaseOption = Annotated[
    str | None,
    typer.Option(
        "--release",
        help="Use the frozen state of release NAME (or a packed release folder).",
        show_default=False,
    ),
]
_RELEASE_PARAM = inspect.Parameter("at_release", _KEYWORD, annotation=ReleaseOption, default=None)


def _open_at(root: Path | None, release: str | None):  # type: ignore[no-untyped-def]
    """The live warehouse, or a release of it (a name, or a packed copy's folder)."""
    if release is None:
        return _open(root)
    from warehouse.core import resolve_root
    from warehouse.release import MANIFEST, open_pack, open_release

    if (Path(release) / MANIFEST).exists():
        return open_pack(Path(release))
    return open_release(resolve_root(root), release)


@app.command()
def init(
    ctx: typer.Context,
    root_arg: Annotated[
        Path | None, typer.Argument(metavar="ROOT", help="Folder to create.")
    ] = None,
    root: RootOption = None,
) -> None:
    """Create a warehouse: warehouse.toml, warehouse.duckdb and catalogs/ (in ROOT, else
    --root, else $GWH_ROOT, else ./warehouse)."""
    from warehouse.core import Warehouse, resolve_root

    source = ctx.get_parameter_source("root")  # typer's own click: compare by name
    given = source is not None and source.name == "COMMANDLINE"  # not $GWH_ROOT
    same = root_arg is not None and root is not None and root_arg.resolve() == root.resolve()
    if root_arg is not None and root is not None and given and not same:
        raise typer.BadParameter(
            f"two folders given, {root_arg} and --root {root}: give one of them"
        )
    target = resolve_root(root_arg if root_arg is not None else root)
    Warehouse.init(target)
    typer.echo(f"created warehouse {target} (edit {target / 'warehouse.toml'} to configure)")


def _signature(
    leading: list[inspect.Parameter],
    options: Sequence[commands.Option],
    trailing: Sequence[inspect.Parameter] = (),
) -> Any:
    """A typer signature: ``leading`` parameters, the ``options``, ``--root``, ``trailing``."""
    params = list(leading)
    for o in options:
        spec = (
            typer.Option(o.flag, help=o.help, min=o.min)
            if o.flag
            else typer.Argument(metavar=o.name.upper(), help=o.help)
        )
        default = inspect.Parameter.empty if o.default is commands.REQUIRED else o.default
        params.append(
            inspect.Parameter(o.name, _KEYWORD, annotation=Annotated[o.type, spec], default=default)
        )
    params.append(inspect.Parameter("root", _KEYWORD, annotation=RootOption, default=None))
    return inspect.Signature(params + list(trailing))


def _load_verb(entry: registry.Entry) -> Callable[..., None]:
    """``gwh load <entry.name>``: files (and the entry's options) into the warehouse."""

    def run(files: list[Path], root: Path | None = None, **options: Any) -> None:
        wh = _open(root)
        load = {o.name: options.pop(o.name) for o in registry.LOAD_OPTIONS}
        loader = registry.get(entry.name, **options)
        wh.load(loader, files, echo=typer.echo, **load)
        after_load = getattr(loader, "after_load", None)
        if after_load is not None:  # e.g. galaxy-zoo matches positions to hsc_forced
            after_load(wh, typer.echo)

    files = Annotated[list[Path], typer.Argument(metavar="FILES", help=entry.files_help)]
    run.__signature__ = _signature(  # type: ignore[attr-defined]
        [inspect.Parameter("files", _KEYWORD, annotation=files)],
        entry.options + registry.LOAD_OPTIONS,
    )
    run.__doc__ = entry.help
    return run


for _entry in registry.ENTRIES:
    if not _entry.hidden:
        load_app.command(_entry.name)(_load_verb(_entry))


@app.command()
def views(
    root: RootOption = None,
    no_counts: Annotated[bool, typer.Option("--no-counts", help="Skip counting rows.")] = False,
) -> None:
    """Every table and view: row count and a one-line description."""
    wh = _open(root)
    infos = wh.views(count_rows=not no_counts)
    points_at = wh.file_points_at()
    width = max(len(v.name) for v in infos)
    for v in infos:
        rows = "-" if v.rows is None else f"{v.rows:,}"
        typer.echo(f"{v.name.ljust(width)}  {v.layer:<12} {rows:>12}  {v.description}")
        if v.reason:
            typer.echo(f"{'':<{width}}  {'':<12} {'':>12}  unavailable: {v.reason}")
    if points_at is not None and points_at != wh.root.resolve():
        typer.echo(
            f"note: {wh.db_path} still sends plain DuckDB clients to {points_at} (the folder was "
            f"moved); `gwh refresh --root {shlex.quote(str(wh.root))}` re-points it.",
            err=True,
        )


def _check_format(fmt: str) -> str:
    from warehouse.output import FORMATS

    if fmt not in FORMATS:
        raise typer.BadParameter(f"{fmt!r} is not one of {', '.join(FORMATS)}")
    return fmt


FormatOption = Annotated[
    str,
    typer.Option(
        "--format",
        "-f",
        callback=_check_format,
        help="table (fits the terminal; COLUMNS sets the width), csv, json (one JSON array of "
        "row objects) or jsonl (JSON Lines: one object per line). JSON is strict: 64-bit ids "
        'exact integers, NaN/inf/-inf as the strings "nan"/"inf"/"-inf", DECIMAL exact.',
    ),
]


def _dash_is_stdout(out: Path | None) -> Path | None:
    """``--out -``: the shell's name for stdout, where rows go without ``--out``."""
    return None if out == Path("-") else out


@app.command()
def sql(
    query: Annotated[str, typer.Argument(metavar="QUERY", help="One SQL statement (read-only).")],
    root: RootOption = None,
    fmt: FormatOption = "table",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write all rows to FILE: .parquet (units and descriptions in the field "
            "metadata; pandas, pyarrow and astropy read it), .csv (lists/structs as JSON text), "
            ".json (one JSON array of row objects) or .jsonl (JSON Lines), as --format prints "
            "them; another name takes --format csv|json|jsonl; - is stdout.",
            callback=_dash_is_stdout,
        ),
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", min=0, help="Rows shown by --format table.")
    ] = 100,
    release: ReleaseOption = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace the --out file if it exists.")
    ] = False,
) -> None:
    """Run read-only SQL: gwh sql "select split, count(*) from ml_objects group by 1"."""
    from warehouse import api, output

    wh = _open_at(root, release)
    if out is None and fmt == "table":  # holds only the rows it shows
        shown, total = api.preview(wh, query, max_rows)
        typer.echo(output.format_table(shown, max_rows, total=total))
        return
    with api.open_stream(wh, query) as rows:  # a batch at a time, never the whole result
        if out is None:
            output.print_stream(rows, fmt)  # ends quietly when the reader stops (| head)
            return
        n = output.save_stream(
            rows, out, output.column_metadata(wh), wh.layout, fmt, overwrite=overwrite
        )
    typer.echo(f"wrote {n:,} row{'' if n == 1 else 's'} to {out}")


@app.command()
def shell(root: RootOption = None) -> None:
    """Interactive SQL on the warehouse (statements end with ';', .help for commands)."""
    from warehouse.shell import run_shell

    run_shell(_open(root), sys.stdin, typer.echo)


@app.command(context_settings={"ignore_unknown_options": True})  # `gwh cone 150 -2 10`
def cone(
    ra: Annotated[float, typer.Argument(metavar="RA", help="Right ascension, degrees.")],
    dec: Annotated[float, typer.Argument(metavar="DEC", help="Declination, degrees.")],
    radius_arcsec: Annotated[
        float, typer.Argument(metavar="RADIUS_ARCSEC", help="Radius, arcsec.")
    ],
    table: Annotated[str, typer.Option("--table", help="Table to search.")] = "hsc_forced",
    root: RootOption = None,
    fmt: FormatOption = "table",
    columns: Annotated[
        str | None, typer.Option("--columns", help="Comma-separated columns to show.")
    ] = None,
) -> None:
    """Rows within RADIUS_ARCSEC of (RA, DEC), nearest first; exact at partition borders."""
    from warehouse import output

    result = _open(root).cone(ra, dec, radius_arcsec, table)
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in result.column_names]
        if unknown:
            raise typer.BadParameter(f"no column(s) {', '.join(unknown)} in {table}")
        result = result.select(wanted)
    typer.echo(output.render(result, fmt, more="use --format csv/json for everything"))


@app.command()
def check(
    root: RootOption = None,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also fail (exit 1) when a contract cannot run because its view is "
            "unavailable (for a CI step: nothing goes green unchecked).",
        ),
    ] = False,
) -> None:
    """Run every view contract in sql/tests (each assertion must return no rows)."""
    from warehouse.health import check_report, notes

    wh = _open(root)
    text, failed = check_report(wh.check(), strict, notes(wh))
    typer.echo(text)
    if failed:
        raise typer.Exit(1)


@app.command()
def refresh(root: RootOption = None) -> None:
    """Re-point warehouse.duckdb at the folder's current location (after moving or copying it),
    for plain DuckDB clients; gwh itself never needs it."""
    wh = _open(root)
    wh.refresh()
    typer.echo(f"{wh.db_path}: views now read {wh.catalogs_dir.resolve()}")


@app.command()
def demo(
    root_arg: Annotated[
        Path | None, typer.Argument(metavar="ROOT", help="Folder for the demo warehouse.")
    ] = None,
    n_objects: Annotated[int, typer.Option("--objects", help="Simulated objects.")] = 5000,
    n_images: Annotated[
        int | None,
        typer.Option("--images", help="Objects given simulated 5-band images (default ~2%)."),
    ] = None,
) -> None:
    """A demo warehouse made offline: a SIMULATED HSC-like field through every view and command."""
    from loaders.simulated.demo import run_demo
    from warehouse.location import DEMO_FOLDER

    run_demo(root_arg or Path(DEMO_FOLDER), n_objects=n_objects, echo=typer.echo, n_images=n_images)


release_app = _group(
    "release", "Immutable, verifiable releases: create, list, show, verify, diff, pack."
)
morphology_app = _group(
    "morphology",
    "Galaxy morphology (GalaxiesML Table 1 per band) measured on the ingested cutouts.",
)
cutouts_app = _group(
    "cutouts",
    "HSC image cutouts: batch lists for the archive, ingest FITS and tar files, previews.",
)
fetch_app = _group(
    "fetch", "Fetch from the archives (HSC-SSP, MAST, SDSS) into the warehouse; a rerun resumes."
)
plot_app = _group("plot", "PNG plots of warehouse tables: colour-magnitude diagrams and sky maps.")
splits_app = _group("splits", "Checks on the train/validation/test splits: leakage on the sky.")
_GROUPS = {"release": release_app, "morphology": morphology_app, "cutouts": cutouts_app}
_GROUPS |= {"fetch": fetch_app, "plot": plot_app, "splits": splits_app, "": app}


def _command_verb(command: commands.Command) -> Callable[..., None]:
    """A typer command for a :class:`warehouse.commands.Command`: open what it works on (see
    ``Command.opens``), run it, exit with its code."""

    def run(root: Path | None = None, **options: Any) -> None:
        from warehouse.core import resolve_root

        release = options.pop("at_release", None)  # --release of opens="release"
        if command.opens == "root":
            on: Any = resolve_root(root)
        elif command.opens == "target":
            on = _open_at(root, options[command.options[0].name])
        else:
            on = _open_at(root, release)
        code = commands.run(command, on, typer.echo, lambda m: typer.echo(m, err=True), **options)
        if code:
            raise typer.Exit(code)

    extra = [_RELEASE_PARAM] if command.opens == "release" else []
    run.__signature__ = _signature([], command.options, extra)  # type: ignore[attr-defined]
    run.__doc__ = command.help
    return run


for _command in commands.COMMANDS + registry.COMMANDS:
    _group_name, _, _verb = _command.name.rpartition(" ")
    _GROUPS[_group_name].command(_verb)(_command_verb(_command))


def main() -> None:
    interrupts.handle_signals()
    try:
        app()
    finally:  # the command has ended: a Ctrl-C now would only kill the interpreter's shutdown
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # (joining threads), by signal, unsaid


if __name__ == "__main__":
    main()
