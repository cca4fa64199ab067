"""The first image partition of an export read while the export is planned
(warehouse/export/early.py): what it reads is what the export would read itself, it answers
only for its own file, and a file it cannot read leaves the export to read (and report) it."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq

from tests.warehouse.export.test_blocks import BANDS, S, stores  # noqa: F401
from warehouse.cutouts import CUTOUTS, band_column
from warehouse.export.early import EarlyPartition, first_path, shape_columns
from warehouse.export.pages import plane_offsets


def test_the_first_partition_in_sky_order_is_read_as_the_export_reads_it(stores):  # noqa: F811
    wh, _old, _base = stores
    cv = wh.current_version(CUTOUTS.name)
    path = first_path(cv)
    assert path is not None and len(cv.partitions) > 1
    lows = {cv.path / p.relpath: p.h29_range()[0] for p in cv.partitions}
    assert lows[path] == min(lows.values())
    got = EarlyPartition(path, BANDS, S).get(path)
    assert got is not None
    part, meta, found = got
    names = set(pq.ParquetFile(path).schema_arrow.names)
    want = pq.read_table(path, columns=["object_id", *shape_columns(BANDS, names)])
    assert meta.equals(want)
    columns = [band_column(b, "image") for b in BANDS]
    expected = plane_offsets(part.pf, part.mapped(), columns, S * S * 4)
    assert (found is None) == (expected is None)  # None here: some planes are 11 x 11
    assert expected is None or all(np.array_equal(found[c], expected[c]) for c in columns)
    other = next(p for p in lows if p != path)
    assert EarlyPartition(path, BANDS, S).get(other) is None  # only its own file


def test_a_file_it_cannot_read_is_left_to_the_export(stores, tmp_path):  # noqa: F811
    wh, _old, _base = stores
    path = first_path(wh.current_version(CUTOUTS.name))
    assert path is not None
    broken = tmp_path / path.name
    shutil.copyfile(path, broken)
    with open(broken, "r+b") as f:
        f.truncate(broken.stat().st_size // 2)  # no footer
    assert EarlyPartition(broken, BANDS, S).get(broken) is None
