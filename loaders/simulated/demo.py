"""``gwh demo``: the embedded default, offline.

Builds a warehouse from a SIMULATED HSC-like field (see :mod:`loaders.simulated.catalog`),
written first as the archive would export it (forced as FITS with ``_isnull`` columns, forced2
and specz as CSV), then loaded through the real loaders, and prints every view with its count,
what each quality rule removes, the splits and a cone search.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

from loaders import registry
from loaders.hsc_ssp.cutouts import ingest_cutouts, request_cutouts
from loaders.simulated.catalog import simulate_field, write_archive_csv, write_archive_fits
from loaders.simulated.images import (
    load_real_noise,
    load_real_psfs,
    real_cosmos_cutouts,
    render_galaxy,
)
from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.cutouts import FLUXNORM_CARD
from warehouse.errors import WarehouseError
from warehouse.export import ExportOptions, export_hdf5
from warehouse.files import Layout, make_root
from warehouse.images.bands import HSC_PIXEL_SCALE
from warehouse.images.fits import write_cutout_fits
from warehouse.images.preview import save_gallery_png
from warehouse.morphology import measure_morphology
from warehouse.output import format_table

_BANDS = ("g", "r", "i", "z", "y")

DEMO_MARKER = ".gwh-demo"
# what the demo writes in its folder: a rerun replaces a folder holding only these
_DEMO_WRITES = frozenset({DEMO_MARKER, "inputs", "warehouse", "requests", "dataset", "gallery.png"})


_MARKER_TEXT = "made by gwh demo; rerunning the demo replaces this folder. The files it wrote:\n"


def _demo_files(root: Path) -> list[str]:
    """The files under ``root`` a demo rerun weighs (not the warehouse's lock, readers' registry
    or cache, which readers touch), relative, sorted."""
    own = ("warehouse/cache/", "warehouse/.lock", "warehouse/.readers")
    names = (p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    return sorted(n for n in names if n != DEMO_MARKER and not n.startswith(own))


def _check_replaceable(root: Path) -> None:
    """Refuse to rerun the demo over a demo folder that holds someone's work: releases (which
    are immutable) or files the demo did not write (the marker lists those it did)."""
    kept = sorted(p.name for p in root.iterdir() if p.name not in _DEMO_WRITES)
    releases = Layout(root / "warehouse").releases
    if releases.is_dir():
        kept += sorted(f"release {p.name}" for p in releases.iterdir())
    text = (root / DEMO_MARKER).read_text(encoding="utf-8", errors="replace")
    if not text.startswith(_MARKER_TEXT):  # an older demo, which did not list its files
        raise WarehouseError(
            f"{root} is a demo made by an older gwh, which did not list the files it wrote, so "
            "a rerun cannot tell them from yours. Give another ROOT, or remove the folder "
            "yourself once nothing in it is needed."
        )
    wrote = set(text[len(_MARKER_TEXT) :].splitlines())
    kept += [n for n in _demo_files(root) if n not in wrote and n.split("/")[0] in _DEMO_WRITES]
    if kept:
        shown = ", ".join(kept[:5]) + (f" and {len(kept) - 5} more" if len(kept) > 5 else "")
        raise WarehouseError(
            f"{root} is an earlier demo that now also holds {shown}; rerunning the demo would "
            "delete them. Give another ROOT, or move them out first."
        )


def run_demo(
    root: Path,
    n_objects: int = 5000,
    echo: Callable[[str], None] = print,
    n_images: int | None = None,
) -> Warehouse:
    root = Path(root)
    if n_objects < 100:
        raise WarehouseError(f"--objects must be at least 100, got {n_objects}")
    if n_images is None:  # rendering and FITS round trips cost ~0.15 s per object
        n_images = min(100, max(12, n_objects // 50))
    if not 3 <= n_images <= 1000:
        raise WarehouseError(f"--images must be between 3 and 1000, got {n_images}")
    if root.is_dir() and any(root.iterdir()):  # after every check: nothing goes for a typo
        if not (root / DEMO_MARKER).exists():
            raise WarehouseError(
                f"{root} exists and is not a demo warehouse; give another ROOT for the demo."
            )
        _check_replaceable(root)
        echo(f"== replacing the earlier demo in {root}")
        shutil.rmtree(root)
    make_root(root / "warehouse", usage="gwh demo ROOT")  # one line if a file is in the way
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
    wh.load(registry.get("hsc-forced"), [forced_path, forced2_path], echo=lambda m: echo("   " + m))
    wh.load(registry.get("hsc-specz"), [specz_path], echo=lambda m: echo("   " + m))
    cv = wh.current_version("hsc_forced")
    if cv is not None:
        orders = sorted({p.order for p in cv.partitions})
        echo(
            f"   hsc_forced: {len(cv.partitions)} HEALPix partitions at orders {orders} "
            f"(HATS catalog {cv.path.resolve().relative_to(root.resolve())})"
        )

    echo("\n== gwh views")
    for v in wh.views():
        rows = "-" if v.rows is None else f"{v.rows:,}"
        echo(f"   {v.name:<21} {rows:>8}  {v.description}")

    echo("\n== what each quality rule removes (gwh sql over quality_flags)")
    keys = ("object_id", "specz_name")
    rules = [
        c for c in wh.query("SELECT * FROM quality_flags LIMIT 0").column_names if c not in keys
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
    _demo_cutouts(wh, root, n_images, echo)
    (root / DEMO_MARKER).write_text(_MARKER_TEXT + "".join(f"{n}\n" for n in _demo_files(root)))
    shown = shlex.quote(str(wh.root))
    echo(f'\nTry: gwh sql --root {shown} "select split, count(*) from ml_objects group by 1"')
    return wh


def _indent(text: str) -> str:
    return "\n".join("   " + line for line in text.splitlines())


# --------------------------------------------------------------------------- cutouts and export

NATIVE_SIZE = 119  # 20 arcsec at 0.168"/px, as the DAS cutout service returns them
DEMO_IMAGE_SEED = 20240601
REAL_COSMOS_IDS = {"Cut_HSC": -1, "hsc_ra150.24071_dec2.06514": -2}
"""Catalog rows for the real COSMOS cutouts. Negative: labels made here, never HSC object_ids
(those are positive); their photometry is unknown, so they stay out of ml_objects."""


def _demo_cutouts(wh: Warehouse, root: Path, n_images: int, echo: Callable[[str], None]) -> None:
    """Request lists, a SIMULATED cutout service answering them as batch tars, the real ingest
    path, the two real COSMOS cutouts in this field, the HDF5 splits and a gallery."""

    requests = root / "requests"
    echo("\n== gwh cutouts request --bands grizy --size 20arcsec --out requests/")
    lists = request_cutouts(wh, requests, bands="grizy", size="20arcsec", view="ml_objects")
    n_requested = wh.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    echo(
        f"   {len(lists)} batch lists ({n_requested:,} ml_objects x 5 bands, at most 1,000 rows "
        "each) for the archive's cutout service, each with its row -> object_id mapping (.json)"
    )

    k = min(n_images, n_requested, 1000)
    echo(
        f"\n== SIMULATED cutout service: answers {k:,} rows of each band's first list (the first "
        "rows of each split, so that every split gets images)"
    )
    echo(
        "   Sersic galaxies (magnitudes from the catalog) convolved with REAL HSC PSFs, noise at "
        f'the REAL HSC variance, {NATIVE_SIZE}x{NATIVE_SIZE} px (20" at 0.168"/px), rendered '
        "at 1x oversampling (finer at the centre) to keep the demo fast; SIMULATED=T in every file"
    )
    tars, k = _simulated_service(wh, lists, k)
    echo(
        f"   wrote {', '.join(t.name for t in tars)} (members <N>-cutout-<FILTER>-<tract>-<rerun>)"
    )

    echo("\n== gwh cutouts ingest requests/cutouts-?-0000.tar   (mapping: the .json beside each)")
    ingest_cutouts(wh, tars, echo=lambda m: echo("   " + m))

    echo("\n== REAL HSC COSMOS cutouts (scarlet's test data) whose WCS centres lie in this field")
    files = _real_cosmos(wh, root / "inputs", echo)
    ingest_cutouts(wh, files, echo=lambda m: echo("   " + m))
    summary = wh.query(
        "SELECT simulated, count(*) AS objects, min(bands) AS bands, "
        "min(fit_action_127) AS fit_action_127 FROM cutouts GROUP BY 1 ORDER BY 1"
    )
    echo('   gwh sql "select simulated, count(*), ... from cutouts group by 1"')
    echo(_indent(format_table(summary)))

    _demo_morphology(wh, echo)

    sql = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
    echo(f'\n== gwh export --all-splits --out-dir dataset/ --sql "{sql}"')
    echo(f"   (the {k:,} ml_objects that have images; pixels in flux units, zero-padded to 127)")
    results = [  # `gwh export --all-splits`, leaving out a split with no images
        export_hdf5(wh, root / "dataset" / f"{s}.h5", split=s, sql=sql, progress=False)
        for s, n in _split_counts(wh, sql).items()
        if n
    ]
    real_sql = "SELECT object_id, ra, dec, tract FROM hsc_forced WHERE object_id < 0"
    echo(f'   gwh export --sql "{real_sql}" --no-mask --no-variance --out dataset/real_cosmos.h5')
    results.append(
        export_hdf5(
            wh,
            root / "dataset" / "real_cosmos.h5",
            sql=real_sql,
            options=ExportOptions(mask=False, variance=False),
            progress=False,
        )
    )
    for r in results:
        echo(
            f"   {r.path.relative_to(root)}: {r.rows:,} galaxies, image {r.rows} x 5 x 127 x 127, "
            f"data={r.data}, {r.bytes / 2**20:.1f} MiB"
        )
    gallery = _gallery(results[0].path, results[-1].path, root / "gallery.png")
    echo(f"\n== gallery of exported images: {gallery.relative_to(root)}")
    first = results[0]
    with _h5(first.path) as h5:
        oid = int(h5["object_id"][0])
    echo(f"   gwh cutouts show --root {shlex.quote(str(wh.root))} {oid} --png preview.png")


def _demo_morphology(wh: Warehouse, echo: Callable[[str], None]) -> None:
    """``gwh morphology measure`` on every ingested cutout, and what ml_objects then carries."""

    echo("\n== gwh morphology measure   (sep with the GalaxiesML Source Extractor configuration)")
    r = measure_morphology(wh, progress=False)
    echo(
        f"   morphology: {r.measured:,} imaged objects x {len(r.bands)} bands measured in "
        f"{r.seconds:.1f} s with {r.workers} worker(s) (config {r.config_hash}); "
        f"{r.band_failures} band measurement(s) NULL with a reason "
        "(the REAL COSMOS cutouts have no zeropoint: no peak surface brightness)"
    )
    summary = wh.query(
        "SELECT count(*) AS objects, round(median(i_ellipticity), 3) AS i_ellipticity, "
        "round(median(i_half_light_radius), 2) AS i_half_light_radius_px, "
        "round(median(i_sersic_index), 2) AS i_sersic_index, "
        "count(i_morph_reason) AS i_with_reason FROM ml_objects "
        "WHERE morphology_source IS NOT NULL"
    )
    echo(
        '   gwh sql "select count(*), median(i_ellipticity), ... from ml_objects where '
        'morphology_source is not null"'
    )
    echo(_indent(format_table(summary)))


def _split_counts(wh: Warehouse, sql: str) -> dict[str, int]:
    rows = wh.query(f"SELECT split, count(*) AS n FROM ({sql}) AS q GROUP BY 1").to_pylist()
    counts = {r["split"]: r["n"] for r in rows}
    return {s: counts.get(s, 0) for s in ("train", "validation", "test")}


def _simulated_service(wh: Warehouse, lists: list[Path], k: int) -> tuple[list[Path], int]:
    """Render ``k`` rows of each band's first list as the DAS service would return them (one
    tar per list, members named by list line): the first rows of each split, ~70/15/15."""
    import json
    import tarfile
    import tempfile

    import numpy as np

    firsts = [p for p in lists if p.stem.endswith("-0000")]
    mapping = json.loads(firsts[0].with_suffix(".json").read_text(encoding="utf-8"))
    listed = [row["object_id"] for row in mapping["rows"]]
    cols = ", ".join(
        ["object_id", "split", "tract", "patch_s"] + [f"{b}_cmodel_mag" for b in _BANDS]
    )
    rows = {
        r["object_id"]: r
        for r in wh.query(
            f"SELECT {cols} FROM ml_objects WHERE object_id IN (SELECT unnest(?::BIGINT[]))",
            [listed],
        ).to_pylist()
    }
    quota = {"validation": max(1, round(0.15 * k)), "test": max(1, round(0.15 * k))}
    quota["train"] = k - quota["validation"] - quota["test"]
    chosen = set()
    for oid in listed:
        if quota[rows[oid]["split"]] > 0:
            quota[rows[oid]["split"]] -= 1
            chosen.add(oid)
    ids = [oid for oid in listed if oid in chosen]
    psfs, noise = load_real_psfs(), load_real_noise()
    stamps = {}
    for oid in ids:
        row = rows[oid]
        rng = np.random.default_rng([DEMO_IMAGE_SEED, oid & 0xFFFFFFFF, oid >> 32])
        mags = {b: float(row[f"{b}_cmodel_mag"]) for b in _BANDS}
        r_half = np.exp(rng.normal(np.log(0.9) - 0.12 * (mags["i"] - 21.0), 0.35))
        image, variance = render_galaxy(
            NATIVE_SIZE,
            mags=mags,
            n=float(np.clip(np.exp(rng.normal(np.log(1.5), 0.5)), 0.5, 6.0)),
            r_half_px=float(np.clip(r_half, 0.25, 4.0)) / HSC_PIXEL_SCALE,
            ellipticity=float(rng.uniform(0.0, 0.6)),
            pos_angle_deg=float(rng.uniform(0.0, 180.0)),
            psfs=psfs,
            noise_var=noise,
            rng=rng,
            oversample=1,
        )
        stamps[oid] = (image, variance)
    tars = []
    with tempfile.TemporaryDirectory(prefix="gwh-demo-service-") as tmp:
        for list_path in firsts:
            m = json.loads(list_path.with_suffix(".json").read_text(encoding="utf-8"))
            band = _BANDS.index(m["band"])
            tar_path = list_path.with_suffix(".tar")
            with tarfile.open(tar_path, "w") as tar:
                for entry in m["rows"]:
                    oid, row = entry["object_id"], rows[entry["object_id"]]
                    if oid not in chosen:
                        continue
                    image, variance = stamps[oid]
                    member = (
                        f"arch-000000-000000/{entry['row'] + 2}-cutout-{m['filter']}-"
                        f"{row['tract']}-{m['rerun']}.fits"
                    )
                    fits_path = Path(tmp) / f"{m['band']}-{entry['row']}.fits"
                    write_cutout_fits(
                        fits_path,
                        image[band],
                        band=m["band"],
                        ra=entry["ra"],
                        dec=entry["dec"],
                        mask=np.zeros(image[band].shape, np.int32),
                        variance=variance[band],
                        tract=row["tract"],
                        patch=row["patch_s"],
                        rerun=m["rerun"],
                        simulated=True,
                    )
                    tar.add(fits_path, arcname=member)
            tars.append(tar_path)
    return tars, len(ids)


def _real_cosmos(wh: Warehouse, inputs: Path, echo: Callable[[str], None]) -> list[Path]:
    """Catalog rows (positions only) and cutout FITS files for the real cubes in this field."""
    from astropy.io import fits

    cubes = [c for c in real_cosmos_cutouts() if c["name"] in REAL_COSMOS_IDS]
    csv = inputs / "real_hsc_cosmos_positions_forced.csv"
    lines = [
        "# REAL HSC-SSP COSMOS cutouts shipped with galaxy-warehouse (scarlet test data): their",
        "# positions only. object_id: negative labels made by gwh demo, NOT HSC object_ids.",
        "# Photometry unknown: every other hsc_forced column is NULL, so these rows fail the",
        "# quality rules and stay out of ml_objects.",
        "object_id,ra,dec,tract",
    ]
    for c in cubes:
        lines.append(f"{REAL_COSMOS_IDS[c['name']]},{c['ra']!r},{c['dec']!r},9813")
    csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    wh.load(registry.get("hsc-forced"), [csv], echo=lambda m: echo("   " + m))
    files = []
    for c in cubes:
        oid = REAL_COSMOS_IDS[c["name"]]
        echo(
            f"   {c['source']}: object_id {oid} at ({c['ra']:.4f}, {c['dec']:.4f}), "
            f"{c['images'].shape[1]}x{c['images'].shape[2]} px; pixels normalised per band "
            "(no zeropoint: stored as NULL), no variance or mask"
        )
        for k, band in enumerate(_BANDS):
            path = inputs / "real_cosmos" / f"{c['name']}-HSC-{band.upper()}.fits"
            write_cutout_fits(
                path,
                c["images"][k],
                band=band,
                ra=c["ra"],
                dec=c["dec"],
                pixel_scale=c["pixel_scale"],
                tract=9813,
                simulated=False,
                overwrite=True,
            )
            with fits.open(path, mode="update") as hdul:  # FLUXMAG0 is a placeholder here
                hdul[0].header[FLUXNORM_CARD] = (True, "pixels normalised per band, not flux")
            files.append(path)
    return files


def _gallery(train: Path, real: Path, out: Path) -> Path:

    items = []
    with _h5(train) as h5:
        for i in range(min(8, h5["image"].shape[0])):
            z = float(h5["specz_redshift"][i])
            items.append((h5["image"][i], f"SIM z={z:.2f}"))
    with _h5(real) as h5:
        for i in range(h5["image"].shape[0]):
            items.append((h5["image"][i], f"REAL {int(h5['object_id'][i])}"))
    return save_gallery_png(
        items,
        _BANDS,
        out,
        ncols=5,
        title="gwh demo: SIMULATED galaxies (train.h5) and REAL HSC COSMOS cutouts",
    )


def _h5(path: Path):  # type: ignore[no-untyped-def]
    import h5py

    return h5py.File(path, "r")
