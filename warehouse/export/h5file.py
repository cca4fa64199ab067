"""The HDF5 file of an export: created with the HDF5 1.8 format pinned, its rows streamed in
(:mod:`warehouse.export.stream`, :class:`warehouse.export.writer._Writer`), its attributes set,
and closed; a write that fails (a full disk) is a one-line :class:`ExportError`."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa

from warehouse import __version__
from warehouse.cutouts import CUTOUTS
from warehouse.errors import ExportError
from warehouse.export.attrs import image_units
from warehouse.export.blocks import fine_switching
from warehouse.export.early import EarlyPartition
from warehouse.export.options import ExportOptions
from warehouse.export.plan import _Plan
from warehouse.export.stream import _stream
from warehouse.export.writer import _Writer
from warehouse.images.masks import HSC_MASK_BITS

ROW_ORDER = "_healpix_29, object_id"
_ERRNO = re.compile(r"\berrno = (\d+)")


def _write(
    con,
    target: Path,
    plan: _Plan,
    cv,
    opts: ExportOptions,
    split,
    bar,
    extra: dict,
    batches: Iterator[pa.RecordBatch] | None = None,
    early: EarlyPartition | None = None,
) -> dict:
    # HDF5 1.8 format pinned (readable by any HDF5 >= 1.8, stable bytes); no object timestamps.
    h5 = h5py.File(target, "w", libver=("v108", "v108"), track_order=False)
    try:
        writer = _Writer(h5, plan, cv, opts, bar, early)
        try:
            with fine_switching():  # the writer threads hand the GIL over often (blocks.py)
                _stream(con, writer, plan, bar, batches)
        finally:
            writer.close()
        _attributes(h5, plan, opts, split, extra)
    except OSError as exc:  # h5py's own writes (the image chunks' are ExportErrors already)
        _discard(h5)
        raise _write_failed(target, exc) from None
    except BaseException:
        _discard(h5)  # the error raised is the one that stopped the export, not the close's
        raise
    try:
        h5.flush()  # a failing flush leaves every object whole (a failing close does not)
        h5.close()
    except (OSError, RuntimeError) as exc:  # the last metadata flush: a full disk
        _discard(h5)
        raise _write_failed(target, exc) from None
    return dict(sorted(writer.fit_counts.items()))


def _write_failed(target: Path, exc: BaseException) -> ExportError:
    errno = getattr(exc, "errno", None)  # h5py's messages run over several lines
    found = _ERRNO.search(str(exc))  # HDF5's driver message names it when h5py does not
    errno = errno or (int(found.group(1)) if found else None)
    reason = os.strerror(errno) if errno else (str(exc).splitlines() or ["?"])[0]
    return ExportError(
        f"{target}: writing the file failed ({reason}); free disk space or choose another "
        "--out, then export again."
    )


def _discard(h5: h5py.File) -> None:
    """Close a file being abandoned (it is removed with its temporary folder); a close that
    fails is not the error to report.

    HDF5 retries at every close the writes that failed (a compressed chunk still in its cache,
    metadata), and a close failing again leaves objects half freed: HDF5 2.0 then crashes the
    interpreter when h5py releases them, at exit. So HDF5's descriptor of the file is pointed
    at the null device first: its last writes succeed into nothing and the file closes whole.
    """
    with contextlib.suppress(Exception):
        _to_null(h5.id.get_vfd_handle())
    with contextlib.suppress(Exception):
        h5.close()


def _to_null(fd: int) -> None:
    """Make descriptor ``fd`` write to (and read from) the null device."""
    null = os.open(os.devnull, os.O_RDWR)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


def _attributes(h5, plan: _Plan, opts: ExportOptions, split: str | None, extra: dict) -> None:
    strings = h5py.string_dtype("utf-8")
    attrs = {
        "gwh_version": __version__,
        "sql": plan.base,
        "sql_params": json.dumps(plan.params),
        "split": split or "all",
        "bands": np.array(list(plan.bands), dtype=strings),
        "size": np.int64(opts.size),
        "pixel_scale": np.float64(plan.pixel_scale),
        "row_count": np.int64(plan.rows),
        "row_order": ROW_ORDER,
        "data": plan.data,
        "image_table": plan.images,
        "image_units": image_units(plan.images, plan.bands, plan.units, plan.zeropoints),
        "fit": f"centred crop or zero padding to {opts.size}x{opts.size} (fit_action per row); "
        "padded variance is inf and padded mask pixels have NO_DATA set",
        "missing_bands": "NaN image and variance, NO_DATA mask; missing_<band> datasets"
        if opts.allow_missing_bands
        else "none allowed",
        "planes": np.array(list(plan.planes), dtype=strings),
    }
    if plan.images == CUTOUTS.name or "mask" in plan.planes:
        attrs["mask_planes"] = json.dumps(HSC_MASK_BITS)
    if plan.labels:
        attrs["label_columns"] = np.array(sorted(plan.labels), dtype=strings)
    for name, label in plan.labels.items():
        attrs[f"label_mapping/{name}"] = json.dumps(label.mapping)
    attrs.update(extra)
    for key in sorted(attrs):
        h5.attrs[key] = attrs[key]
