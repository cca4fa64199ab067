"""The command surface as data: each ``gwh`` verb of the library, its options and the function
it runs. ``cli.py`` turns every :class:`Command` here (and those of ``loaders.registry``) into a
typer command, so the options, their help and the call are written once, in the library.

A command's function is called as ``function(wh, **options)``, with ``echo=`` too if it takes
one. It returns None (exit code 0), an exit code, or a result whose ``summary()`` is printed.
``wh`` is what :attr:`Command.opens` says:

- ``"warehouse"``: the warehouse at ``--root``;
- ``"release"``: the same, or with ``--release NAME`` the frozen state of that release;
- ``"target"``: the first argument names a release or a packed release folder, opened read-only;
- ``"root"``: the root folder itself (a :class:`~pathlib.Path`; it need not be a warehouse).

>>> [c.name for c in COMMANDS if c.name.startswith("release")][:3]
['release create', 'release list', 'release show']
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["COMMANDS", "DASK_OPTION", "REQUIRED", "Command", "Option", "run"]

REQUIRED: Any = ...
"""The default of an :class:`Option` the user must give."""


@dataclass(frozen=True)
class Option:
    """A keyword argument of a command's function (or of a loader class), offered as ``flag``
    (``--radius``; ``--x/--no-x`` for a switch), or as a positional argument if ``flag`` is
    empty."""

    name: str
    type: Any  # a type or a union such as ``Path | None``
    default: Any
    flag: str
    help: str
    min: int | None = None  # the smallest value a number may take (a usage error below it)


@dataclass(frozen=True)
class Command:
    """``gwh <name>`` (``"group verb"`` for a verb of a group) running ``target``
    (``"module:function"``, imported when the command runs, so ``gwh --help`` stays fast)."""

    name: str
    target: str
    help: str
    options: tuple[Option, ...] = ()
    opens: str = "warehouse"

    def __post_init__(self) -> None:
        if self.opens not in ("warehouse", "release", "target", "root"):
            raise ValueError(f"Command {self.name!r}: opens={self.opens!r} is not a known mode")


def run(
    command: Command,
    wh: Any,
    echo: Callable[[str], None],
    warn: Callable[[str], None] | None = None,
    **options: Any,
) -> int:
    """Run ``command`` on ``wh`` (see the module doc); the exit code. ``echo`` (messages) and
    ``warn`` (problems, for stderr) go to a function that takes them."""
    module, _, name = command.target.partition(":")
    function = getattr(importlib.import_module(module), name)
    takes = inspect.signature(function).parameters
    for key, value in (("echo", echo), ("warn", warn or echo)):
        if key in takes:
            options[key] = value
    result = function(wh, **options)
    if isinstance(result, int) and not isinstance(result, bool):
        return result
    summary = getattr(result, "summary", None)
    if callable(summary):
        echo(summary())
    return 0


# -- the commands ----------------------------------------------------------------------------------

_RELEASE = "warehouse.release.commands"
_DASK_HELP = (
    "Run on a Dask cluster: local:N (N worker processes here) or a scheduler address such as "
    "tcp://host:8786 (default $GWH_DASK_SCHEDULER, else [compute] dask in warehouse.toml); "
    "none: run here alone, whatever those say."
)
DASK_OPTION = Option("dask", str | None, None, "--dask", _DASK_HELP)
"""``--dask ADDRESS`` of the ``gwh load <name>`` verbs (:data:`loaders.registry.LOAD_OPTIONS`)."""


def _options(*specs: tuple[Any, ...]) -> tuple[Option, ...]:
    return tuple(Option(*spec) for spec in specs)


COMMANDS: tuple[Command, ...] = (
    Command(
        "serve",
        "warehouse.web.server:serve_command",
        "Look at the warehouse in a browser, read-only: open http://127.0.0.1:8765/ for the\n"
        "overview (counts, quality cuts, dedup, splits, sky maps), SQL with paged results and\n"
        "downloads, each object's rules and cutouts, a cutout gallery for any query, releases;\n"
        "the JSON behind the pages is under /api/. Ctrl-C stops it.",
        _options(
            ("port", int, 8765, "--port", "Port to listen on (0: any free port).", 0),
            (
                "host",
                str,
                "127.0.0.1",
                "--host",
                "Address to listen on; 0.0.0.0 lets other machines read the warehouse (a warning "
                "says so: there is no login).",
            ),
            ("timeout", float, 30.0, "--timeout", "Seconds a query may run before it stops."),
        ),
        opens="release",
    ),
    Command(
        "export",
        "warehouse.export.command:export_command",
        "Write HDF5 in the GalaxiesML layout: images (N, bands, S, S) and every query column.\n\n"
        "Every split of one query has the same datasets: a nullable integer or boolean column is\n"
        "float64 with NaN for NULL (64-bit values beyond 2**53 stay int64), and each nullable\n"
        "integer, boolean or text column has <col>_isnull. Attributes carry units, descriptions,\n"
        "the release, data release, split settings, citations and what the pixel values are.",
        _options(
            ("split", str | None, None, "--split", "train, validation or test (default: all)."),
            ("out", Path | None, None, "--out", "Output .h5 file."),
            ("all_splits", bool, False, "--all-splits", "train/validation/test.h5 into --out-dir."),
            ("out_dir", Path | None, None, "--out-dir", "Folder for --all-splits."),
            (
                "size",
                int,
                127,
                "--size",
                "Image side in pixels: 127 or 64 as GalaxiesML, or any other (e.g. 36 for KiDS); "
                "reached by a centred crop or zero padding.",
            ),
            ("view", str | None, None, "--view", "View to export (default ml_objects)."),
            ("sql", str | None, None, "--sql", "A SELECT returning object_id, instead of --view."),
            (
                "bands",
                str | None,
                None,
                "--bands",
                "Bands in image order, e.g. grizy, ugri or f160w,f814w (default: the configured "
                "bands for cutouts, else every band of --images).",
            ),
            (
                "images",
                str,
                "cutouts",
                "--images",
                "Image table: cutouts (HSC), kids_cutouts, sdss_cutouts or hst_cutouts.",
            ),
            (
                "allow_missing_bands",
                bool,
                False,
                "--allow-missing-bands",
                "NaN images and missing_<b> flags.",
            ),
            ("mask", bool, True, "--mask/--no-mask", "Write the mask (--no-mask leaves it out)."),
            (
                "variance",
                bool,
                True,
                "--variance/--no-variance",
                "Write the variance (--no-variance leaves it out).",
            ),
            ("compression", str | None, None, "--compression", "lzf or gzip (default: none)."),
            (
                "overwrite",
                bool,
                False,
                "--overwrite",
                "Replace existing output files (--all-splits without it resumes: it keeps split "
                "files this same export already wrote and writes the missing ones).",
            ),
            ("dask", str | None, None, "--dask", _DASK_HELP),
            (
                "format",
                str,
                "hdf5",
                "--format",
                "hdf5 (GalaxiesML files) or hf (a HuggingFace datasets folder in --out-dir).",
            ),
            (
                "limit",
                int | None,
                None,
                "--limit",
                "At most N objects per split, the first in the split hash order (nested, stable).",
                1,
            ),
            (
                "subset",
                str | None,
                None,
                "--subset",
                "tiny (1,000), small (10,000) or medium "
                "(100,000) objects per split: a named --limit.",
            ),
        ),
        opens="release",
    ),
    Command(
        "splits check",
        "warehouse.splits.check:check_command",
        "Objects in different splits that leak: sky neighbours closer than --radius (counts per\n"
        "split pair, the closest pairs), cutout footprints overlapping another split's, identical\n"
        "pixel arrays. Exit 1 when the healpix split mode should have prevented what it found.",
        _options(
            ("radius", str, "5arcsec", "--radius", "Neighbour radius, e.g. 5arcsec or 0.1arcmin."),
            ("examples", int, 10, "--examples", "Closest pairs shown per check.", 0),
            ("as_json", bool, False, "--json", "Print the whole report as JSON."),
        ),
        opens="release",
    ),
    Command(
        "release create",
        f"{_RELEASE}:create_command",
        "Freeze tables, cutouts, SQL and configuration as release NAME (immutable).",
        _options(
            ("name", str, REQUIRED, "", "Release name, e.g. v1."),
            ("notes", str, "", "--notes", "Free text kept in the manifest."),
        ),
    ),
    Command(
        "release list", f"{_RELEASE}:list_command", "Every release with its time, splits and notes."
    ),
    Command(
        "release show",
        f"{_RELEASE}:show_command",
        "The manifest of a release (without file hashes and SQL text), as JSON.",
        _options(("name", str, REQUIRED, "", "Release name or packed folder.")),
        opens="target",
    ),
    Command(
        "release verify",
        f"{_RELEASE}:verify_command",
        "Re-hash every file of a release; non-zero exit naming each mismatch.",
        _options(("target", str, REQUIRED, "", "Release name, or the folder of a packed copy.")),
        opens="root",
    ),
    Command(
        "release diff",
        f"{_RELEASE}:diff_command",
        "Rows added / removed / changed per table, split moves, SQL and configuration changes.",
        _options(
            ("a", str, REQUIRED, "", "Older release."),
            ("b", str, REQUIRED, "", "Newer release."),
            ("as_json", bool, False, "--json", "Print the whole diff as JSON."),
        ),
    ),
    Command(
        "release pack",
        f"{_RELEASE}:pack_command",
        "A standalone copy: HATS catalogs, SQL, configuration, manifest (+ HDF5 splits).",
        _options(
            ("name", str, REQUIRED, "", "Release name."),
            ("dest", Path, REQUIRED, "", "New folder for the standalone copy."),
        ),
    ),
    Command(
        "morphology measure",
        "warehouse.morphology:measure_morphology",
        "Measure every ingested cutout with sep (the GalaxiesML Source Extractor configuration)\n"
        "into the morphology table; objects measured with the same configuration are skipped.",
        _options(
            ("bands", str | None, None, "--bands", "Bands to measure (default: configured)."),
            (
                "workers",
                int | None,
                None,
                "--workers",
                "Worker processes (default: every core).",
                1,
            ),
            ("chunk_size", int, 1000, "--chunk", "Objects per commit (a rerun resumes).", 1),
            (
                "replace_loaded",
                bool,
                False,
                "--replace-loaded",
                "Measure objects loaded by gwh load morphology.",
            ),
            ("dask", str | None, None, "--dask", _DASK_HELP),
        ),
    ),
    Command(
        "materialise",
        "warehouse.marts.command:materialise_command",
        "Materialise ml_objects as a HATS table (catalogs/ml_objects) for the current tables,\n"
        "SQL and warehouse.toml, so queries of it read the copy. A load does it by itself once\n"
        "hsc_forced is large; run this after editing warehouse.toml (until then the view is\n"
        "computed from the tables, never stale).",
        _options(("dask", str | None, None, "--dask", _DASK_HELP)),
    ),
    Command(
        "cutouts show",
        "warehouse.plots:plot_cutout",
        "Save a readable preview (150 dpi): Lupton RGB (i, r, g) with a scale bar in arcsec,\n"
        "object id, RA/Dec and redshift, and one panel per band; SIMULATED images say so.",
        _options(
            ("object_id", int, REQUIRED, "", "The object's object_id."),
            ("out", Path, REQUIRED, "--png", "Output PNG file."),
        ),
    ),
    Command(
        "plot cmd",
        "warehouse.plots:plot_cmd",
        "A colour-magnitude diagram, points coloured by the density of sources.",
        _options(
            ("table", str, REQUIRED, "--table", "Table or view."),
            ("x", str, REQUIRED, "--x", 'Colour, a SQL expression: "A_F555W - A_F814W".'),
            ("y", str, REQUIRED, "--y", "Magnitude, a SQL expression."),
            ("out", Path, REQUIRED, "--out", "PNG file."),
            ("where", str | None, None, "--where", "SQL condition."),
            ("x_label", str | None, None, "--x-label", "Axis label."),
            ("y_label", str | None, None, "--y-label", "Axis label."),
        ),
    ),
    Command(
        "plot sky",
        "warehouse.plots:plot_sky",
        "A HEALPix density map (objects per arcmin²) of a table.",
        _options(
            ("table", str, REQUIRED, "--table", "Table or view with positions."),
            ("out", Path, REQUIRED, "--out", "PNG file."),
            ("where", str | None, None, "--where", "SQL condition."),
            ("order", int | None, None, "--order", "HEALPix order (default: from the data)."),
        ),
    ),
)
