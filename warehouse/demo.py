"""``gwh demo``: the embedded default, offline.

Builds a warehouse from a SIMULATED HSC-like field (see :mod:`warehouse.simulate_catalog`),
written first as the archive would export it (forced as FITS with ``_isnull`` columns, forced2
and specz as CSV), then loaded through the real loaders, and prints every view with its count,
what each quality rule removes, the splits and a cone search.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.errors import WarehouseError
from warehouse.output import format_table
from warehouse.simulate_catalog import simulate_field, write_archive_csv, write_archive_fits

DEMO_MARKER = ".gwh-demo"


def run_demo(root: Path, n_objects: int = 5000, echo: Callable[[str], None] = print) -> Warehouse:
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        if not (root / DEMO_MARKER).exists():
            raise WarehouseError(
                f"{root} exists and is not a demo warehouse; give another ROOT for the demo."
            )
        shutil.rmtree(root)
    if n_objects < 100:
        raise WarehouseError(f"--objects must be at least 100, got {n_objects}")
    root.mkdir(parents=True)
    (root / DEMO_MARKER).write_text("made by gwh demo; rerunning the demo replaces this folder\n")
    echo(f"== galaxy-warehouse demo in {root}")
    echo(
        f"   SIMULATED HSC-like field: {n_objects:,} objects "
        "(real PDR2 column names; not real data)"
    )

    field = simulate_field(n_objects)
    inputs = root / "inputs"
    inputs.mkdir()
    forced_path = inputs / "simulated_pdr2_wide_forced.fits"
    forced2_path = inputs / "simulated_pdr2_wide_forced2.csv"
    specz_path = inputs / "simulated_pdr2_wide_specz.csv"
    write_archive_fits(
        field.forced, forced_path, isnull_columns=tuple(f"{b}_cmodel_mag" for b in "grizy")
    )
    write_archive_csv(
        field.forced2, forced2_path, sql="SELECT object_id, ... FROM pdr2_wide.forced2"
    )
    write_archive_csv(field.specz, specz_path, sql="SELECT * FROM pdr2_wide.specz")
    echo(f"   wrote archive-style exports to {inputs}/")

    # A small partition threshold so the demo shows adaptive HEALPix partitioning.
    wh = Warehouse.init(root / "warehouse", Config(max_rows_per_partition=max(500, n_objects // 6)))
    echo("\n== gwh load hsc-forced / hsc-specz")
    wh.load("hsc-forced", [forced_path, forced2_path], echo=lambda m: echo("   " + m))
    wh.load("hsc-specz", [specz_path], echo=lambda m: echo("   " + m))
    cv = wh.current_version("hsc_forced")
    if cv is not None:
        orders = sorted({p.order for p in cv.partitions})
        echo(
            f"   hsc_forced: {len(cv.partitions)} HEALPix partitions at orders {orders} "
            f"(HATS catalog {cv.path.relative_to(root)})"
        )

    echo("\n== gwh views")
    for v in wh.views():
        rows = "-" if v.rows is None else f"{v.rows:,}"
        echo(f"   {v.name:<18} {rows:>8}  {v.description}")

    echo("\n== what each quality rule removes (gwh sql over quality_flags)")
    rules = [
        "no_cmodel_flag",
        "no_pixelflags_edge",
        "no_pixelflags_interpolatedcenter",
        "no_pixelflags_saturatedcenter",
        "no_pixelflags_crcenter",
        "no_pixelflags_bad",
        "no_sdsscentroid_flag",
        "detected_all_bands",
        "cmodel_mag_in_range",
        "specz_secure",
        "specz_err_in_range",
        "specz_not_sentinel",
        "redshift_in_range",
        "specz_err_relative",
        "passes_all",
    ]
    counts = wh.query(
        "SELECT count(*) AS candidates, "
        + ", ".join(f"count(*) FILTER (WHERE NOT {r}) AS {r}" for r in rules)
        + " FROM quality_flags"
    ).to_pylist()[0]
    echo(f"   {counts.pop('candidates'):,} candidates (object x spec-z entry); failing each rule:")
    for rule, n in counts.items():
        echo(f"   {rule:<34} {n:>7,}")
    dedup = wh.query(
        "SELECT coalesce(duplicate_rule, 'kept') AS outcome, count(*) AS n FROM deduplicated "
        "GROUP BY 1 ORDER BY 1"
    )
    echo("\n== deduplication of quality-passed candidates")
    echo(_indent(format_table(dedup)))
    echo('\n== gwh sql "select * from split_summary"')
    echo(_indent(format_table(wh.query("SELECT * FROM split_summary"))))
    ra, dec = field.forced.column("ra")[0].as_py(), field.forced.column("dec")[0].as_py()
    echo(f"\n== gwh cone {ra:.5f} {dec:.5f} 30")
    near = wh.cone(ra, dec, 30.0).select(
        ["object_id", "ra", "dec", "i_cmodel_mag", "distance_arcsec"]
    )
    echo(_indent(format_table(near, max_rows=8)))
    failures = [(n, k) for n, k, _e in wh.check() if k]
    echo(
        "\n== view contracts (sql/tests): "
        + ("all pass" if not failures else f"FAILED: {failures}")
    )
    echo(f'\nTry: gwh sql --root {wh.root} "select split, count(*) from ml_objects group by 1"')
    return wh


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())
