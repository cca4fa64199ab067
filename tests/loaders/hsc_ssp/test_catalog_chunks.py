"""Large Parquet forced exports load a chunk at a time: the same table as a whole-file load,
the same checks (keys unique over the whole file, rows numbered in the file), and a file
refused half-way leaves nothing of itself behind."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import write_archive_fits
from warehouse.errors import LoadError


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 250)


def _content(wh):
    """The table as pandas (its equals counts NaN in the same place as equal; Arrow's not)."""
    return wh.query("SELECT * FROM hsc_forced ORDER BY object_id").to_pandas()


@pytest.mark.parametrize("row_group", [None, 100])  # one row group, or several per chunk
def test_chunked_load_equals_a_whole_file_load(
    make_warehouse, field, tmp_path, monkeypatch, row_group
):
    path = tmp_path / "forced.parquet"
    pq.write_table(field.forced, path, row_group_size=row_group)
    whole = make_warehouse("b", max_rows_per_partition=300)
    whole.load(registry.get("hsc-forced"), [path])
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 250)
    chunked = make_warehouse("a", max_rows_per_partition=300)
    chunked.load(registry.get("hsc-forced"), [path])
    parts = list(registry.get("hsc-forced").prepare_chunks(path))
    sizes = [p[0].table.num_rows for p in parts]
    assert sum(sizes) == field.forced.num_rows and max(sizes) <= 250 and len(parts) > 4
    # each chunk says it is a part (the load sorts it at once); a whole file does not
    assert all(p[0].part for p in parts)
    assert not any(p.part for p in registry.get("hsc-forced").prepare(path))
    assert _content(chunked).equals(_content(whole))


def test_a_key_repeated_in_two_chunks_is_refused_with_its_rows(
    make_warehouse, field, tmp_path, small_chunks
):
    t = field.forced
    ids = t.column("object_id").to_numpy().copy()
    ids[900] = ids[10]  # rows 11 and 901 (counted from 1), in different chunks
    bad = t.set_column(t.schema.get_field_index("object_id"), "object_id", pa.array(ids))
    pq.write_table(bad, tmp_path / "dup.parquet")
    wh = make_warehouse()
    with pytest.raises(LoadError, match=r"appears more than once \(row 11, row 901"):
        wh.load(registry.get("hsc-forced"), [tmp_path / "dup.parquet"])


def test_a_file_refused_half_way_leaves_nothing_of_itself(
    make_warehouse, field, tmp_path, small_chunks
):
    t = field.forced
    pq.write_table(t.slice(0, 600), tmp_path / "first.parquet")
    ra = t.column("ra").to_numpy().copy()
    ra[1000] = 999.0  # in the 5th chunk of the second file
    bad = t.set_column(t.schema.get_field_index("ra"), "ra", pa.array(ra))
    bad = bad.set_column(
        0, "object_id", pa.array(t.column("object_id").to_numpy() + 10**12, pa.int64())
    )
    pq.write_table(bad, tmp_path / "second.parquet")
    wh = make_warehouse()
    with pytest.raises(LoadError, match=r"second.parquet, row 1001: ra = 999.0"):
        wh.load(
            registry.get("hsc-forced"), [tmp_path / "first.parquet", tmp_path / "second.parquet"]
        )
    n = wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py()
    assert n == 600  # the first file is committed, nothing of the second
    loads = wh.query("SELECT file FROM gwh_loads").column("file").to_pylist()
    assert [p.rsplit("/", 1)[-1] for p in loads] == ["first.parquet"]
    assert not list((wh.root / "catalogs" / "hsc_forced").glob(".tmp-*"))
    assert np.isfinite(_content(wh)["ra"].to_numpy()).all()


def _specz_content(wh):
    return wh.query("SELECT * FROM hsc_specz ORDER BY object_id, specz_name").to_pandas()


@pytest.mark.parametrize("fmt", ["parquet", "fits"])
def test_a_chunked_specz_or_fits_load_equals_a_whole_file_load(
    make_warehouse, field, tmp_path, monkeypatch, fmt
):
    paths = {}
    for name, table in (("forced", field.forced), ("specz", field.specz)):
        paths[name] = tmp_path / f"{name}.{fmt}"
        if fmt == "fits":
            nulls = ("g_cmodel_mag",) if name == "forced" else ()
            write_archive_fits(table, paths[name], isnull_columns=nulls)
        else:
            pq.write_table(table, paths[name], row_group_size=100)
    whole = make_warehouse("b", max_rows_per_partition=300)
    whole.load(registry.get("hsc-forced"), [paths["forced"]])
    whole.load(registry.get("hsc-specz"), [paths["specz"]])
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 150)
    chunked = make_warehouse("a", max_rows_per_partition=300)
    chunked.load(registry.get("hsc-forced"), [paths["forced"]])
    chunked.load(registry.get("hsc-specz"), [paths["specz"]])
    for loader, n in (("hsc-forced", field.forced.num_rows), ("hsc-specz", field.specz.num_rows)):
        name = "forced" if loader == "hsc-forced" else "specz"
        parts = list(registry.get(loader).prepare_chunks(paths[name]))
        sizes = [p[0].table.num_rows for p in parts]
        assert sum(sizes) == n and max(sizes) <= 150 and len(sizes) > 1
        assert all(p[0].part for p in parts)
    assert _content(chunked).equals(_content(whole))
    assert _specz_content(chunked).equals(_specz_content(whole))


def test_a_specz_key_repeated_in_two_fits_chunks_is_refused_with_its_rows(
    make_warehouse, field, tmp_path, monkeypatch
):
    monkeypatch.setattr("loaders.hsc_ssp.catalog.CHUNK_ROWS", 50)
    t = field.specz
    assert t.num_rows > 120
    ids = t.column("object_id").to_numpy().copy()
    names = t.column("specz_name").to_pylist()
    ids[110], names[110] = ids[3], names[3]  # rows 4 and 111, in different chunks
    bad = t.set_column(t.schema.get_field_index("object_id"), "object_id", pa.array(ids))
    bad = bad.set_column(bad.schema.get_field_index("specz_name"), "specz_name", pa.array(names))
    write_archive_fits(bad, tmp_path / "dup.fits")
    wh = make_warehouse()
    with pytest.raises(LoadError, match=r"appears more than once \(row 4, row 111"):
        wh.load(registry.get("hsc-specz"), [tmp_path / "dup.fits"])
    assert wh.current_version("hsc_specz") is None
    table_dir = wh.root / "catalogs" / "hsc_specz"  # nothing of the refused file is left
    assert not table_dir.exists() or list(table_dir.iterdir()) == []
