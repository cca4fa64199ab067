"""``gwh``: the command line of galaxy-warehouse, a thin layer over the library.

Each command parses its options, calls one library function and prints the result; a
:class:`~warehouse.errors.WarehouseError` becomes its message on stderr and exit code 1.
Run ``python cli.py --help`` or ``gwh --help``.
"""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from loaders import registry
from warehouse.errors import WarehouseError


def _handled(command: Callable[..., None]) -> Callable[..., None]:
    """The one place a :class:`WarehouseError` becomes its message on stderr and its exit code."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except WarehouseError as exc:
            typer.echo(f"error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None

    return run


class _Typer(typer.Typer):
    """A Typer whose every command runs inside :func:`_handled`."""

    def command(
        self, *args: Any, **kwargs: Any
    ) -> Callable[[Callable[..., None]], Callable[..., None]]:
        register = super().command(*args, **kwargs)

        def decorator(f: Callable[..., None]) -> Callable[..., None]:
            register(_handled(f))
            return f

        return decorator


app = _Typer(
    name="gwh",
    help="galaxy-warehouse: survey catalogs and cutouts into reproducible, versioned ML datasets.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


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


load_app = _Typer(
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
    root_arg: Annotated[
        Path | None, typer.Argument(metavar="[ROOT]", help="Folder to create.")
    ] = None,
    root: RootOption = None,
) -> None:
    """Create a warehouse: warehouse.toml, warehouse.duckdb and catalogs/."""
    from warehouse.core import Warehouse, resolve_root

    target = resolve_root(root_arg if root_arg is not None else root)
    Warehouse.init(target)
    typer.echo(f"created warehouse {target} (edit {target / 'warehouse.toml'} to configure)")


def _load_verb(entry: registry.Entry) -> Callable[..., None]:
    """``gwh load <entry.name>``: files (and the entry's options) into the warehouse."""

    def run(files: list[Path], root: Path | None = None, **options: Any) -> None:
        wh = _open(root)
        loader = registry.get(entry.name, **options)
        wh.load(loader, files, echo=typer.echo)
        after_load = getattr(loader, "after_load", None)
        if after_load is not None:  # e.g. galaxy-zoo matches positions to hsc_forced
            after_load(wh, typer.echo)

    files = Annotated[list[Path], typer.Argument(help=entry.files_help)]
    params = [inspect.Parameter("files", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=files)]
    for o in entry.options:
        option = Annotated[o.type, typer.Option(o.flag, help=o.help)]  # type: ignore[valid-type]
        params.append(
            inspect.Parameter(
                o.name,
                inspect.Parameter.POSITIONAL_OR_KEYWORD,
                annotation=option,
                default=o.default,
            )
        )
    params.append(
        inspect.Parameter(
            "root", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=RootOption, default=None
        )
    )
    run.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    run.__doc__ = entry.help
    run.__name__ = "load_" + entry.name.replace("-", "_")
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
            f"moved); `gwh refresh --root {wh.root}` re-points it.",
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


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One SQL statement (read-only).")],
    root: RootOption = None,
    fmt: FormatOption = "table",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write all rows to FILE: .parquet (units and descriptions in the field "
            "metadata; pandas, pyarrow and astropy read it) or .csv (lists/structs as JSON text).",
        ),
    ] = None,
    max_rows: Annotated[
        int, typer.Option("--max-rows", help="Rows shown by --format table.")
    ] = 100,
    release: ReleaseOption = None,
) -> None:
    """Run read-only SQL, e.g. gwh sql "select split, count(*) from ml_objects group by 1"."""
    from warehouse import output

    result = _open_at(root, release).query(query)
    if out is not None:
        output.save(result, out, output.column_metadata(_open_at(root, release)))
        typer.echo(f"wrote {result.num_rows:,} rows to {out}")
    else:
        typer.echo(output.render(result, fmt, max_rows))


@app.command()
def shell(root: RootOption = None) -> None:
    """Interactive SQL on the warehouse (statements end with ';', .help for commands)."""
    from warehouse.shell import run_shell

    run_shell(_open(root), sys.stdin, typer.echo)


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

    result = _open(root).cone(ra, dec, radius_arcsec, table)
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in result.column_names]
        if unknown:
            raise typer.BadParameter(f"no column(s) {', '.join(unknown)} in {table}")
        result = result.select(wanted)
    typer.echo(output.render(result, fmt))


@app.command()
def check(root: RootOption = None) -> None:
    """Run every view contract in sql/tests (each assertion must return no rows)."""
    results = _open(root).check()
    failed = 0
    for name, n, error in results:
        status = "ok" if n == 0 else ("unavailable" if error else f"FAILED ({n} rows)")
        typer.echo(f"{status:<16} {name}" + (f"  ({error})" if error else ""))
        failed += n > 0
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
        Path | None, typer.Argument(metavar="[ROOT]", help="Folder for the demo warehouse.")
    ] = None,
    n_objects: Annotated[int, typer.Option("--objects", help="Simulated objects.")] = 5000,
    n_images: Annotated[
        int | None,
        typer.Option("--images", help="Objects given simulated 5-band images (default ~2%)."),
    ] = None,
) -> None:
    """The embedded default, offline: a simulated HSC-like field through every view."""
    from loaders.simulated.demo import run_demo

    run_demo(root_arg or Path("gwh-demo"), n_objects=n_objects, echo=typer.echo, n_images=n_images)


release_app = _Typer(
    help="Immutable, verifiable releases: create, list, show, verify, diff, pack.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(release_app, name="release")


@release_app.command("create")
def release_create(
    name: Annotated[str, typer.Argument(help="Release name, e.g. v1.")],
    notes: Annotated[str, typer.Option("--notes", help="Free text kept in the manifest.")] = "",
    root: RootOption = None,
) -> None:
    """Freeze tables, cutouts, SQL and configuration as release NAME (immutable)."""
    from warehouse.release import create_release

    path = create_release(_open(root), name, notes, echo=typer.echo)
    typer.echo(f"created release {name}: {path / 'manifest.json'}")


@release_app.command("list")
def release_list(root: RootOption = None) -> None:
    """Every release with its time, splits and notes."""
    from warehouse.core import resolve_root
    from warehouse.release import list_releases

    _open(root)
    rows = list_releases(resolve_root(root))
    if not rows:
        typer.echo("no releases yet (gwh release create NAME)")
    for r in rows:
        splits = ", ".join(f"{k} {v:,}" for k, v in r["splits"].items())
        typer.echo(f"{r['name']:<16} {r['created_utc']}  {splits}  {r['notes']}")


@release_app.command("show")
def release_show(
    name: Annotated[str, typer.Argument(help="Release name or packed folder.")],
    root: RootOption = None,
) -> None:
    """The manifest of a release (without file hashes and SQL text), as JSON."""
    import json

    from warehouse.release import describe

    typer.echo(json.dumps(describe(_open_at(root, name)), indent=2))


@release_app.command("verify")
def release_verify(
    target: Annotated[str, typer.Argument(help="Release name, or the folder of a packed copy.")],
    root: RootOption = None,
) -> None:
    """Re-hash every file of a release; non-zero exit naming each mismatch."""
    from warehouse.core import resolve_root
    from warehouse.release import verify_target

    where, problems = verify_target(resolve_root(root), target)
    for p in problems:
        typer.echo(f"MISMATCH {p.path}: {p.problem}", err=True)
    if problems:
        typer.echo(
            f"error: release {target} does not verify ({len(problems)} problem(s))", err=True
        )
        raise typer.Exit(1)
    typer.echo(f"release {target} verifies: every file matches its SHA-256 ({where})")


@release_app.command("diff")
def release_diff(
    a: Annotated[str, typer.Argument(help="Older release.")],
    b: Annotated[str, typer.Argument(help="Newer release.")],
    root: RootOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole diff as JSON.")] = False,
) -> None:
    """Rows added / removed / changed per table, split moves, SQL and configuration changes."""
    import json

    from warehouse.core import resolve_root
    from warehouse.release import diff

    _open(root)
    d = diff(resolve_root(root), a, b)
    if as_json:
        typer.echo(json.dumps(d, indent=2))
        return
    typer.echo(f"release diff {a} -> {b}")
    for table, t in d["tables"].items():
        if "table" in t:
            typer.echo(f"  {table}: table {t['table']} ({t['rows']:,} rows)")
            continue
        typer.echo(
            f"  {table}: {t['rows_from']:,} -> {t['rows_to']:,} rows; +{t['added']:,} "
            f"added, -{t['removed']:,} removed, {t['changed']:,} changed"
            + (f"; columns added: {', '.join(t['columns_added'])}" if t["columns_added"] else "")
        )
    moves = d.get("split_moves", [])
    typer.echo(f"  split moves: {len(moves)}")
    for m in moves[:50]:
        typer.echo(f"    object_id {m['object_id']}: {m['from']} -> {m['to']}")
    if "split_counts" in d:
        c = d["split_counts"]
        typer.echo(f"  ml_objects: {c['entered']:,} entered, {c['left']:,} left")
    for path, text in d["sql"].items():
        typer.echo(f"  sql/{path} changed:\n{text}")
    for key, change in d["config"].items():
        typer.echo(f"  config {key}: {change['from']!r} -> {change['to']!r}")


@release_app.command("pack")
def release_pack(
    name: Annotated[str, typer.Argument(help="Release name.")],
    dest: Annotated[Path, typer.Argument(help="New folder for the standalone copy.")],
    root: RootOption = None,
) -> None:
    """A standalone copy: HATS catalogs, SQL, configuration, manifest (+ HDF5 splits)."""
    from warehouse.core import resolve_root
    from warehouse.release import pack

    _open(root)
    path = pack(resolve_root(root), name, dest, echo=typer.echo)
    typer.echo(f"packed release {name} at {path}; check it with: gwh release verify {path}")


morphology_app = _Typer(
    help="Galaxy morphology (GalaxiesML Table 1 per band) measured on the ingested cutouts.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(morphology_app, name="morphology")


@morphology_app.command("measure")
def morphology_measure(
    bands: Annotated[
        str | None, typer.Option("--bands", help="Bands to measure (default: configured).")
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option("--workers", min=1, help="Worker processes (default: every core)."),
    ] = None,
    chunk: Annotated[
        int, typer.Option("--chunk", min=1, help="Objects per commit (a rerun resumes).")
    ] = 1000,
    replace_loaded: Annotated[
        bool,
        typer.Option("--replace-loaded", help="Measure objects loaded by gwh load morphology."),
    ] = False,
    root: RootOption = None,
) -> None:
    """Measure every ingested cutout with sep (the GalaxiesML Source Extractor configuration)
    into the morphology table; objects measured with the same configuration are skipped."""
    from warehouse.morphology import measure_morphology

    r = measure_morphology(
        _open(root),
        bands=bands,
        workers=workers,
        chunk_size=chunk,
        replace_loaded=replace_loaded,
        echo=typer.echo,
    )
    rate = r.measured / r.seconds if r.seconds else 0.0
    typer.echo(
        f"morphology: measured {r.measured:,} of {r.objects:,} object(s) with cutouts "
        f"(bands {''.join(r.bands)}, config {r.config_hash}) in {r.seconds:.1f} s "
        f"({rate:.1f} galaxies/s, {r.workers} worker(s), {r.commits} commit(s)); "
        f"{r.up_to_date:,} up to date, {r.loaded_kept:,} loaded kept; "
        f"{r.band_failures:,} band measurement(s) with NULLs and a reason"
    )
    for reason, n in sorted(r.reasons.items(), key=lambda kv: -kv[1])[:5]:
        typer.echo(f"  {n:>7,}  {reason}")


cutouts_app = _Typer(
    help="HSC image cutouts: batch lists for the archive, ingest FITS and tar files, previews.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(cutouts_app, name="cutouts")


@cutouts_app.command("request")
def cutouts_request(
    out: Annotated[Path, typer.Option("--out", help="Folder for the list files and mappings.")],
    bands: Annotated[str, typer.Option("--bands", help="Bands, one list per band.")] = "grizy",
    size: Annotated[str, typer.Option("--size", help="Cutout side.")] = "20arcsec",
    view: Annotated[str, typer.Option("--view", help="Table or view to cut out.")] = "ml_objects",
    rerun: Annotated[str, typer.Option("--rerun", help="Archive rerun.")] = "pdr2_wide",
    root: RootOption = None,
) -> None:
    """Batch list files (<=1000 rows each) for the HSC-SSP cutout service, with the row ->
    object_id mapping (<list>.json) beside each."""
    from loaders.hsc_ssp_cutouts import request_cutouts

    lists = request_cutouts(_open(root), out, bands=bands, size=size, view=view, rerun=rerun)
    for path in lists:
        typer.echo(f"wrote {path} (+ {path.with_suffix('.json').name})")
    typer.echo(
        f"{len(lists)} list(s). Upload each to the DAS cutout service, then: "
        "gwh cutouts ingest TAR... (the .json beside the tar, or --list LIST)"
    )


@cutouts_app.command("ingest")
def cutouts_ingest(
    paths: Annotated[
        list[Path], typer.Argument(help="Cutout FITS files, batch tars, or folders of them.")
    ],
    lists: Annotated[
        list[Path] | None,
        typer.Option("--list", help="The list (or its .json) of each tar, in order. Repeatable."),
    ] = None,
    root: RootOption = None,
) -> None:
    """Match each cutout to its hsc_forced object (WCS centre within 0.5") and store it; files
    that do not match are listed and the exit code is 1, after the others are ingested."""
    from loaders.hsc_ssp_cutouts import ingest_cutouts

    ingest_cutouts(_open(root), paths, lists=lists or (), echo=typer.echo)


@cutouts_app.command("show")
def cutouts_show(
    object_id: Annotated[int, typer.Argument(help="The object's object_id.")],
    png: Annotated[Path, typer.Option("--png", help="Output PNG file.")],
    root: RootOption = None,
) -> None:
    """Save a readable preview (150 dpi): Lupton RGB (i, r, g) with a scale bar in arcsec,
    object id, RA/Dec and redshift, and one panel per band; SIMULATED images say so."""
    from warehouse.plots import plot_cutout

    r = plot_cutout(_open(root), object_id, png)
    typer.echo(f"wrote {r.path} ({r.pixels[0]}x{r.pixels[1]} px, {r.title})")


@app.command("export")
def export(
    split: Annotated[
        str | None, typer.Option("--split", help="train, validation or test (default: all).")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output .h5 file.")] = None,
    all_splits: Annotated[
        bool, typer.Option("--all-splits", help="train/validation/test.h5 into --out-dir.")
    ] = False,
    out_dir: Annotated[
        Path | None, typer.Option("--out-dir", help="Folder for --all-splits.")
    ] = None,
    size: Annotated[int, typer.Option("--size", help="Image side in pixels (127 or 64).")] = 127,
    view: Annotated[
        str | None, typer.Option("--view", help="View to export (default ml_objects).")
    ] = None,
    sql_text: Annotated[
        str | None, typer.Option("--sql", help="A SELECT returning object_id, instead of --view.")
    ] = None,
    bands: Annotated[
        str | None,
        typer.Option(
            "--bands",
            help="Bands in image order, e.g. grizy, ugri or f160w,f814w (default: the "
            "configured bands for cutouts, else every band of --images).",
        ),
    ] = None,
    images: Annotated[
        str,
        typer.Option(
            "--images",
            help="Image table: cutouts (HSC), kids_cutouts, sdss_cutouts or hst_cutouts.",
        ),
    ] = "cutouts",
    allow_missing_bands: Annotated[
        bool,
        typer.Option("--allow-missing-bands", help="NaN images and missing_<b> flags."),
    ] = False,
    no_mask: Annotated[bool, typer.Option("--no-mask", help="Leave out the mask.")] = False,
    no_variance: Annotated[
        bool, typer.Option("--no-variance", help="Leave out the variance.")
    ] = False,
    compression: Annotated[
        str | None, typer.Option("--compression", help="lzf or gzip (default: none).")
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            "--overwrite",
            help="Replace existing output files (--all-splits without it resumes: it keeps "
            "split files this same export already wrote and writes the missing ones).",
        ),
    ] = False,
    root: RootOption = None,
    release: ReleaseOption = None,
) -> None:
    """Write HDF5 in the GalaxiesML layout: images (N, bands, S, S) and every query column.

    Every split of one query has the same datasets: a nullable integer or boolean column is
    float64 with NaN for NULL (64-bit values beyond 2**53 stay int64), and each nullable
    integer, boolean or text column has <col>_isnull. Attributes carry units, descriptions,
    the release, data release, split settings, citations and what the pixel values are.
    """
    from warehouse.export import (
        ExportOptions,
        available_bands,
        export_all_splits,
        export_hdf5,
        parse_bands,
    )

    if view is not None and sql_text is not None:
        raise typer.BadParameter("give --view or --sql, not both")
    if all_splits and (split is not None or out is not None or out_dir is None):
        raise typer.BadParameter("--all-splits takes --out-dir DIR (and no --split or --out)")
    if not all_splits and (out is None or out_dir is not None):
        raise typer.BadParameter("give --out FILE.h5 (or --all-splits --out-dir DIR)")
    wh = _open_at(root, release)
    options = ExportOptions(
        size=size,
        bands=parse_bands(bands, available_bands(wh, images), images) if bands else None,
        allow_missing_bands=allow_missing_bands,
        mask=not no_mask,
        variance=not no_variance,
        compression=compression,
        overwrite=overwrite,
        images=images,
    )
    if all_splits:
        assert out_dir is not None
        results = export_all_splits(wh, out_dir, view=view, sql=sql_text, options=options)
    else:
        assert out is not None
        results = [export_hdf5(wh, out, split=split, view=view, sql=sql_text, options=options)]
    for r in results:
        if r.kept:
            typer.echo(f"kept {r.path}: {r.rows:,} galaxies, already written by this export")
            continue
        actions = ", ".join(f"{a} {n:,}" for a, n in r.fit_actions.items())
        missing = "".join(f"; missing {b}: {n:,}" for b, n in r.missing.items())
        typer.echo(
            f"wrote {r.path}: {r.rows:,} galaxies x {len(r.bands)} bands ({','.join(r.bands)}) x "
            f"{r.size}x{r.size} px, {r.data} images, {r.bytes / 2**20:,.1f} MiB in "
            f"{r.seconds:.1f} s ({actions}{missing})"
        )


fetch_app = _Typer(
    help="Fetch from the archives (HSC-SSP, MAST, SDSS) into the warehouse; a rerun resumes.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(fetch_app, name="fetch")


@fetch_app.command("hsc-sql")
def fetch_hsc_sql(
    release: Annotated[str, typer.Option("--release", help="pdr1, pdr2, pdr3 or pdr3-citus.")],
    out: Annotated[Path, typer.Option("--out", help="Result file, .fits or .csv.")],
    sql: Annotated[str | None, typer.Option("--sql", help="The SQL text.")] = None,
    sql_file: Annotated[
        Path | None,
        typer.Option("--sql-file", help="A file of SQL, e.g. sql/sources/galaxiesml_pdr2.sql."),
    ] = None,
    load: Annotated[
        str | None, typer.Option("--load", help="Then load it: hsc-forced or hsc-specz.")
    ] = None,
    poll_timeout: Annotated[
        float, typer.Option("--poll-timeout", help="Seconds to wait for the job.")
    ] = 600.0,
    allow_empty: Annotated[
        bool, typer.Option("--allow-empty", help="Accept a result with no rows.")
    ] = False,
    root: RootOption = None,
) -> None:
    """Run SQL as an HSC-SSP catalog job (credentials: $HSC_SSP_CAS_USER and
    $HSC_SSP_CAS_PASSWORD, else a prompt); results are cached by SQL and release."""
    from loaders.hsc_fetch import fetch_hsc_sql as fetch

    fetch(
        _open(root),
        release=release,
        out=out,
        sql=sql,
        sql_file=sql_file,
        load=load,
        poll_timeout=poll_timeout,
        allow_empty=allow_empty,
        echo=typer.echo,
    )


@fetch_app.command("hsc-cutouts")
def fetch_hsc_cutouts(
    bands: Annotated[str, typer.Option("--bands", help="Bands, one list per band.")] = "grizy",
    size: Annotated[str, typer.Option("--size", help="Cutout side.")] = "20arcsec",
    view: Annotated[str, typer.Option("--view", help="Table or view to cut out.")] = "ml_objects",
    rerun: Annotated[str, typer.Option("--rerun", help="Archive rerun.")] = "pdr2_wide",
    no_ingest: Annotated[bool, typer.Option("--no-ingest", help="Fetch the tars only.")] = False,
    root: RootOption = None,
) -> None:
    """DAS cutouts of every object of a view: batch lists of <=1000 rows, tars kept under
    ROOT/cache/hsc_cutouts (a rerun fetches only what is missing), then ingested into cutouts."""
    from loaders.hsc_fetch import fetch_hsc_cutouts as fetch

    r = fetch(
        _open(root),
        bands=bands,
        size=size,
        view=view,
        rerun=rerun,
        ingest=not no_ingest,
        echo=typer.echo,
    )
    typer.echo(
        f"{r.objects:,} objects: {r.tars_fetched} tar(s) fetched, {r.tars_ingested} ingested "
        f"({r.images:,} band images) in {r.folder}"
    )


@fetch_app.command("hubble-source-catalog")
def fetch_hubble_source_catalog(
    target: Annotated[
        str, typer.Option("--target", help="A name MAST resolves, or 'RA DEC' in degrees.")
    ],
    box_deg: Annotated[float | None, typer.Option("--box-deg", help="Box side in degrees.")] = None,
    radius_deg: Annotated[
        float | None, typer.Option("--radius-deg", help="Cone radius in degrees.")
    ] = None,
    where: Annotated[
        str | None, typer.Option("--where", help='SQL condition, e.g. "A_F555W_N >= 1".')
    ] = None,
    version: Annotated[int, typer.Option("--version", help="HSC version, 2 or 3.")] = 3,
    max_records: Annotated[
        int, typer.Option("--max-records", help="Most rows MAST may return.")
    ] = 50_000,
    pagesize: Annotated[int, typer.Option("--pagesize", help="Rows per page.")] = 50_000,
    root: RootOption = None,
) -> None:
    """Hubble Source Catalog rows (MAST, astroquery Catalogs catalog="HSC") into
    hubble_source_catalog; pages are cached, so a rerun fetches only the missing ones."""
    from loaders.mast_hsc import fetch_into_warehouse

    fetch_into_warehouse(
        _open(root),
        target,
        box_deg=box_deg,
        radius_deg=radius_deg,
        where=where,
        version=version,
        max_records=max_records,
        pagesize=pagesize,
        echo=typer.echo,
    )


@fetch_app.command("hubble-source-matches")
def fetch_hubble_source_matches(
    match_id: Annotated[int, typer.Argument(help="A MatchID of hubble_source_catalog.")],
    out: Annotated[Path, typer.Option("--out", help="File to write, .csv or .parquet.")],
    version: Annotated[int, typer.Option("--version", help="HSC version, 2 or 3.")] = 3,
    root: RootOption = None,
) -> None:
    """The individual HST detections (one per image) behind one Hubble Source Catalog match."""
    from loaders.mast_hsc import match_sources
    from warehouse import output

    table = match_sources(match_id, version=version, base_url=_open(root).config.archives.mast_url)
    output.save(table, out)
    typer.echo(f"wrote {table.num_rows:,} detections of MatchID {match_id} to {out}")


@fetch_app.command("sdss-cutouts")
def fetch_sdss_cutouts(
    labels: Annotated[
        str, typer.Option("--labels", help="Table of objects and labels.")
    ] = "galaxy_zoo",
    band: Annotated[str, typer.Option("--band", help="u, g, r, i or z.")] = "r",
    pixels: Annotated[int, typer.Option("--pixels", help="Cutout side in pixels.")] = 40,
    match_radius: Annotated[
        float, typer.Option("--match-radius", help="Arcsec to the SDSS photometric object.")
    ] = 2.0,
    data_release: Annotated[int, typer.Option("--data-release", help="SDSS DR.")] = 17,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N.")] = None,
    root: RootOption = None,
) -> None:
    """SDSS frame cutouts (astroquery SkyServer + frames) of every object of a labels table,
    into sdss_cutouts with the labels; work is kept frame by frame, a rerun resumes."""
    from loaders.sdss import fetch_sdss_cutouts as fetch

    r = fetch(
        _open(root),
        labels=labels,
        band=band,
        pixels=pixels,
        match_radius_arcsec=match_radius,
        data_release=data_release,
        limit=limit,
        echo=typer.echo,
    )
    typer.echo(
        f"{r.cutouts:,} of {r.objects:,} objects have a {pixels}x{pixels} {band} cutout "
        f"({r.frames_fetched} frame(s) fetched now; {r.no_photoobj:,} not in SDSS, "
        f"{r.off_frame:,} off their frame)"
    )


@fetch_app.command("hst-cutouts")
def fetch_hst_cutouts(
    filter_: Annotated[str, typer.Option("--filter", help="HST filter, e.g. F160W.")] = "F160W",
    labels: Annotated[
        str, typer.Option("--labels", help="Table of objects and labels.")
    ] = "galaxy_zoo",
    pixels: Annotated[int, typer.Option("--pixels", help="Cutout side in pixels.")] = 64,
    survey: Annotated[
        str | None, typer.Option("--survey", help="MAST deep-field survey (default: by filter).")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", help="Only the first N.")] = None,
    root: RootOption = None,
) -> None:
    """Cutouts of MAST's drizzled HST mosaics (astroquery Zcut) for every object of a labels
    table, into hst_cutouts with the labels; a rerun fetches only what is missing."""
    from loaders.hst import fetch_hst_cutouts as fetch

    r = fetch(
        _open(root),
        filter=filter_,
        labels=labels,
        pixels=pixels,
        survey=survey,
        limit=limit,
        echo=typer.echo,
    )
    typer.echo(
        f"{r.cutouts:,} of {r.objects:,} objects have a {pixels}x{pixels} {filter_} cutout "
        f"({r.no_coverage:,} outside the surveys, {r.no_filter:,} without {filter_})"
    )


plot_app = _Typer(
    help="PNG plots of warehouse tables: colour-magnitude diagrams and sky maps.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(plot_app, name="plot")


@plot_app.command("cmd")
def plot_cmd(
    table: Annotated[str, typer.Option("--table", help="Table or view.")],
    x: Annotated[str, typer.Option("--x", help='Colour, a SQL expression: "A_F555W - A_F814W".')],
    y: Annotated[str, typer.Option("--y", help="Magnitude, a SQL expression.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file.")],
    where: Annotated[str | None, typer.Option("--where", help="SQL condition.")] = None,
    x_label: Annotated[str | None, typer.Option("--x-label", help="Axis label.")] = None,
    y_label: Annotated[str | None, typer.Option("--y-label", help="Axis label.")] = None,
    root: RootOption = None,
) -> None:
    """A colour-magnitude diagram, points coloured by the density of sources."""
    from warehouse.plots import plot_cmd as plot

    r = plot(_open(root), table, x, y, out, where=where, x_label=x_label, y_label=y_label)
    typer.echo(f"wrote {r.path} ({r.pixels[0]}x{r.pixels[1]} px, {r.points:,} sources)")


@plot_app.command("sky")
def plot_sky(
    table: Annotated[str, typer.Option("--table", help="Table or view with positions.")],
    out: Annotated[Path, typer.Option("--out", help="PNG file.")],
    where: Annotated[str | None, typer.Option("--where", help="SQL condition.")] = None,
    order: Annotated[
        int | None, typer.Option("--order", help="HEALPix order (default: from the data).")
    ] = None,
    root: RootOption = None,
) -> None:
    """A HEALPix density map (objects per arcmin²) of a table."""
    from warehouse.plots import plot_sky as plot

    r = plot(_open(root), table, out, where=where, order=order)
    typer.echo(f"wrote {r.path} ({r.pixels[0]}x{r.pixels[1]} px, {r.points:,} objects, {r.detail})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
