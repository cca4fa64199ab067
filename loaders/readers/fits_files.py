"""FITS exports: the table HDU that holds the needed columns, the archive's ``<col>_isnull``
companions turned into NULLs, 64-bit integers kept exact."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from loaders.readers.common import (
    check_names,
    normalise_name,
    one_line,
)
from warehouse.errors import LoadError


def read_fits(path: Path, required: tuple[str, ...] = ()) -> pa.Table:
    tables = list(read_fits_chunks(path, required, rows=None))
    return tables[0]


def fits_rows(path: Path, required: tuple[str, ...] = ()) -> tuple[int, list[str]] | None:
    """Rows and (normalised) column names of the table :func:`read_fits` reads, from its
    header (None: not a readable FITS file; reading it says what is wrong)."""
    try:
        with _fits_errors(path), open(path, "rb") as fh:
            from astropy.io import fits

            with fits.open(fh, memmap=True) as hdul:
                hdu = _data_table(path, hdul, required)
                return int(hdu.header["NAXIS2"]), check_names(hdu.columns.names, path)
    except LoadError:
        return None


def read_fits_chunks(
    path: Path,
    required: tuple[str, ...] = (),
    rows: int | None = None,
    columns: list[str] | None = None,
) -> Iterator[pa.Table]:
    """The table :func:`read_fits` reads, ``rows`` rows at a time (None: whole), only
    ``columns`` (normalised names) if given: the file is memory-mapped, so a load holds one
    chunk, not the file."""
    from astropy.io import fits

    with contextlib.ExitStack() as stack:
        with _fits_errors(path):
            # our own handle: astropy leaves its file open when a damaged header aborts fits.open
            fh = stack.enter_context(open(path, "rb"))
            hdul = stack.enter_context(fits.open(fh, memmap=rows is not None))
            hdu = _data_table(path, hdul, required)
            data = hdu.data
            names = check_names(hdu.columns.names, path)
            wanted = None if columns is None else set(columns) | {f"{c}_isnull" for c in columns}
            picked = [
                (raw, name, col)
                for raw, name, col in zip(hdu.columns.names, names, hdu.columns, strict=True)
                if wanted is None or name in wanted
            ]
            n = len(data)
        step = rows or max(n, 1)
        for start in range(0, max(n, 1), step):
            with _fits_errors(path):
                part = data[start : start + step]
                table = _with_nulls(
                    {name: _fits_column(np.asarray(part[raw]), col) for raw, name, col in picked}
                )
            yield table


@contextlib.contextmanager
def _fits_errors(path: Path) -> Iterator[None]:
    """astropy's warnings as errors, and any failure as a one-line LoadError."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield
    except LoadError:
        raise
    except Exception as exc:  # astropy raises many types for damaged files
        raise LoadError(
            f"{path} is unreadable or truncated as FITS ({type(exc).__name__}: {one_line(exc)}). "
            "Download or export it again."
        ) from None


def _with_nulls(arrays: dict) -> pa.Table:
    """<col>_isnull columns mark NULLs in the archive's FITS output: apply them, drop them."""
    nulls = {n[: -len("_isnull")]: a for n, a in arrays.items() if n.endswith("_isnull")}
    out = {}
    for name, arr in arrays.items():
        if name.endswith("_isnull") and name[: -len("_isnull")] in arrays:
            continue
        mask = nulls.get(name)
        if mask is not None:
            mask = np.asarray(mask, dtype=bool)
            out[name] = pa.array(arr, mask=mask if mask.any() else None)
        else:
            out[name] = pa.array(arr)
    return pa.table(out)


def _data_table(path: Path, hdul, required: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The table HDU to load: the only one, else the only one holding every required column.

    Never the first table by default: a file whose first table is a small metadata table would
    load the wrong rows silently.
    """
    from astropy.io import fits

    tables = [(i, h) for i, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU)]
    if not tables:
        raise LoadError(f"{path} has no binary table HDU. Export the table as FITS again.")
    if len(tables) == 1:
        return tables[0][1]
    wanted = {normalise_name(c) for c in required}
    fits_ok = [(i, h) for i, h in tables if wanted <= {normalise_name(n) for n in h.columns.names}]
    if len(fits_ok) == 1 and wanted:
        return fits_ok[0][1]
    found = "; ".join(
        f"HDU {i} {h.name or '(no name)'}: {h.header.get('NAXIS2', '?')} rows, columns "
        f"{', '.join(h.columns.names[:5])}{', ...' if len(h.columns.names) > 5 else ''}"
        for i, h in tables
    )
    raise LoadError(
        f"{path} has {len(tables)} table HDUs and {len(fits_ok) or 'none'} of them hold all of "
        f"{', '.join(required) or 'the required columns'} ({found}). Write the data table "
        "alone to a file and load that."
    )


def _fits_column(values: np.ndarray, col) -> np.ndarray | list:  # type: ignore[no-untyped-def]
    if values.ndim > 1:
        raise LoadError(
            f"column {col.name} holds arrays (shape {values.shape[1:]}); only scalar columns load."
        )
    if values.dtype.kind == "S":
        return [v.decode("utf-8", "replace").rstrip() for v in values]
    if values.dtype.kind == "U":
        return [v.rstrip() for v in values]
    if values.dtype.byteorder not in ("=", "|"):
        values = values.astype(values.dtype.newbyteorder("="))
    return values
