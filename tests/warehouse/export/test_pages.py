"""Where stored planes lie in an image table's partition file (warehouse/export/pages.py): the
offsets found from the Parquet page headers hold exactly the bytes pyarrow decodes, in files
the store writes (IMAGE_LAYOUT) and in files pyarrow writes with other page options; anything
that is not uncompressed PLAIN pages of equal-sized non-NULL values gives None."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse, objects
from tests.warehouse.export.test_blocks import ingest_noise
from warehouse.export.pages import lengths_match, plane_offsets
from warehouse.store.contracts import CUTOUTS

S = 8


def mapped(path: Path) -> mmap.mmap:
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)


def assert_offsets_hold_the_values(path: Path, columns: list[str], nbytes: int) -> None:
    pf = pq.ParquetFile(path)
    buf = mapped(path)
    found = plane_offsets(pf, buf, columns, nbytes)
    assert found is not None
    table = pf.read(columns=columns)
    for c in columns:
        assert lengths_match(buf, found[c], nbytes)
        values = table.column(c).to_pylist()
        assert len(found[c]) == len(values) == pf.metadata.num_rows
        for at, value in zip(found[c].tolist(), values, strict=True):
            assert buf[at : at + nbytes] == value


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Cutouts partitions of up to 300 objects (several row groups of 64) of 8 x 8 planes."""
    base = tmp_path_factory.mktemp("pages")
    wh = build_warehouse(base / "w", n=200, cutout_rows=300)
    ingest_noise(wh, [r[0] for r in objects(wh, view="hsc_forced")])
    cv = wh.current_version(CUTOUTS.name)
    return [Path(f) for f in cv.files()], base


def test_offsets_of_the_stores_planes_hold_the_bytes_pyarrow_reads(store):
    files, _base = store
    assert any(pq.read_metadata(f).num_row_groups > 1 for f in files)
    for f in files:
        columns = [f"{b}_{p}" for b in ("g", "y") for p in ("image", "variance")]
        assert_offsets_hold_the_values(f, columns, S * S * 4)


def test_compressed_planes_other_sizes_and_missing_columns_give_none(store):
    files, _base = store
    pf = pq.ParquetFile(files[0])
    buf = mapped(files[0])
    assert plane_offsets(pf, buf, ["g_mask"], S * S * 4) is None  # snappy
    assert plane_offsets(pf, buf, ["g_image"], S * S * 4 + 4) is None  # not that size
    assert plane_offsets(pf, buf, ["g_image", "no_such_column"], S * S * 4) is None
    assert plane_offsets(pf, buf, ["ra"], 8) is None  # not a byte array


def planes_table(
    n: int, nbytes: int, nulls: bool = False, sizes: bool = False, pairs: bool = False
) -> pa.Table:
    rng = np.random.default_rng(5)
    values = [rng.bytes(nbytes + (4 if sizes and k == 3 else 0)) for k in range(n)]
    if pairs:  # sizes nbytes - 4 and nbytes + 4 in turn: the page adds up all the same
        values = [rng.bytes(nbytes + (4 if k % 2 else -4)) for k in range(n)]
    if nulls:
        values[2] = None
    return pa.table({"id": np.arange(n), "plane": pa.array(values, pa.binary())})


@pytest.mark.parametrize("version", ["1.0", "2.0"])
@pytest.mark.parametrize("statistics", [False, True])
def test_pages_of_either_version_with_or_without_statistics(tmp_path, version, statistics):
    path = tmp_path / f"p{version}{statistics}.parquet"
    pq.write_table(
        planes_table(300, 40),
        path,
        compression="none",
        use_dictionary=False,
        data_page_version=version,
        data_page_size=1000,  # many pages per column chunk
        write_statistics=statistics,  # page headers then hold min/max byte strings
        row_group_size=128,
    )
    assert pq.read_metadata(path).num_row_groups == 3
    assert_offsets_hold_the_values(path, ["plane"], 40)


@pytest.mark.parametrize(
    ("how", "table"),
    [
        ("snappy", planes_table(50, 40)),
        ("dictionary", planes_table(50, 40)),
        ("none", planes_table(50, 40, nulls=True)),
        ("none", planes_table(50, 40, sizes=True)),
    ],
)
def test_files_not_plain_uncompressed_and_equal_give_none(tmp_path, how, table):
    path = tmp_path / "x.parquet"
    compression = "none" if how == "dictionary" else how
    pq.write_table(table, path, compression=compression, use_dictionary=how == "dictionary")
    assert plane_offsets(pq.ParquetFile(path), mapped(path), ["plane"], 40) is None


def test_values_of_other_sizes_adding_up_are_caught_by_their_lengths(tmp_path):
    path = tmp_path / "pairs.parquet"
    pq.write_table(planes_table(50, 40, pairs=True), path, compression="none", use_dictionary=False)
    buf = mapped(path)
    found = plane_offsets(pq.ParquetFile(path), buf, ["plane"], 40)
    assert found is not None  # the page's size cannot tell
    assert not lengths_match(buf, found["plane"], 40)
    assert lengths_match(buf, found["plane"][:0], 40)
