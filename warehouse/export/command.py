"""``gwh export``: the options as the command line gives them, checked, then
:func:`~warehouse.export.hdf5.export_hdf5` or :func:`~warehouse.export.hdf5.export_all_splits`,
and a line per file written or kept."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from warehouse.compute.cluster import dask_client, resolve_address
from warehouse.errors import ExportError, UsageError
from warehouse.export.columns import available_bands
from warehouse.export.hdf5 import export_all_splits, export_hdf5
from warehouse.export.hf import HfResult, export_hf
from warehouse.export.options import ExportOptions, ExportResult, parse_bands
from warehouse.files import missing_parent

if TYPE_CHECKING:
    from warehouse.core import Warehouse


def export_command(
    wh: Warehouse,
    *,
    split: str | None = None,
    out: Path | None = None,
    all_splits: bool = False,
    out_dir: Path | None = None,
    view: str | None = None,
    sql: str | None = None,
    bands: str | None = None,
    images: str = "cutouts",
    format: str = "hdf5",
    dask: str | None = None,
    echo: Callable[[str], None],
    **options: object,
) -> list[ExportResult]:
    """``options``: the other fields of :class:`ExportOptions` (size, mask, variance, limit,
    subset, ...). ``format``: ``hdf5`` (files) or ``hf`` (a HuggingFace datasets folder)."""
    if view is not None and sql is not None:
        raise UsageError("give --view or --sql, not both")
    if format != "hf" and all_splits and (split is not None or out is not None or out_dir is None):
        raise UsageError("--all-splits takes --out-dir DIR (and no --split or --out)")
    if format == "hf" and (out is not None or (all_splits and split is not None)):
        raise UsageError("--format hf takes --out-dir DIR (--all-splits, or one --split)")
    if format != "hf" and not all_splits and (out is None or out_dir is not None):
        raise UsageError("give --out FILE.h5 (or --all-splits --out-dir DIR)")
    for path, option in ((out, "--out"), (out_dir, "--out-dir")):  # never made, as sql --out
        if path is not None and (missing := missing_parent(path, option)) is not None:
            raise ExportError(missing)
    chosen = parse_bands(bands, available_bands(wh, images), images) if bands is not None else None
    settings = ExportOptions(bands=chosen, images=images, **options)  # type: ignore[arg-type]
    if format not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if format == "hf":
        if resolve_address(dask, None, {}) is not None:  # --dask none: this machine, as hf runs
            raise UsageError("--format hf runs on this machine; --dask writes HDF5")
        if out_dir is None:
            raise UsageError("--format hf writes a folder: give --out-dir DIR")
        splits = (split,) if split else None
        result = export_hf(wh, out_dir, splits=splits, view=view, sql=sql, options=settings)
        echo(describe_hf(result))
        return []
    address = resolve_address(dask, wh.config.dask)
    if sql is not None or settings.limit is not None:  # not split by partition: one machine
        if dask is not None:
            raise UsageError(
                "--dask splits the rows by partition: it takes --view, not --sql or --limit"
            )
        address = None
    with contextlib.ExitStack() as stack:
        client = None if address is None else stack.enter_context(dask_client(address))
        if out_dir is not None:
            results = export_all_splits(
                wh, out_dir, view=view, sql=sql, options=settings, client=client
            )
        else:
            assert out is not None
            results = [
                export_hdf5(
                    wh, out, split=split, view=view, sql=sql, options=settings, client=client
                )
            ]
    for r in results:
        echo(describe(r))
    return results


FORMATS = ("hdf5", "hf")


def _images(data: str) -> str:
    """What the images are (``data``: simulated, real, mixed or none), for a summary line."""
    if data == "none":  # --allow-missing-bands, and not one object has a cutout
        return (
            "no images (none of the objects has a cutout, so every image is NaN; ingest their "
            "cutouts with gwh cutouts request and gwh cutouts ingest, then export again)"
        )
    return f"{data} images"


def describe_hf(r: HfResult) -> str:
    """One line on an hf folder written."""
    splits = ", ".join(f"{s} {n:,}" for s, n in r.rows.items())
    return (
        f"wrote {r.path} (HuggingFace datasets: {splits} galaxies x {len(r.bands)} bands x "
        f"{r.size}x{r.size} px, {_images(r.data)}, {len(r.files)} Parquet files, "
        f"{r.bytes / 2**20:,.1f} MiB in {r.seconds:.1f} s); open it with "
        f"datasets.load_dataset({str(r.path)!r})"
    )


def describe(r: ExportResult) -> str:
    """One line on a file written (or kept, when ``--all-splits`` resumes)."""
    if r.kept:
        return f"kept {r.path}: {r.rows:,} galaxies, already written by this export"
    said = {"none": f"already {r.size}x{r.size}"}  # fit_action "none": nothing to fit
    actions = ", ".join(f"{said.get(a, a)} {n:,}" for a, n in r.fit_actions.items())
    missing = "".join(f"; missing {b}: {n:,}" for b, n in r.missing.items())
    return (
        f"wrote {r.path}: {r.rows:,} galaxies x {len(r.bands)} bands ({','.join(r.bands)}) x "
        f"{r.size}x{r.size} px, {_images(r.data)}, {r.bytes / 2**20:,.1f} MiB in "
        f"{r.seconds:.1f} s ({actions}{missing})"
    )
