"""Fuzzing the readers and the tar ingest with damaged copies of good files (hypothesis).

Each example truncates a file, overwrites some of its bytes or inserts bytes into it. Whatever
the damage, reading must either succeed (with rows that pass the loader's checks) or raise the
project's typed error (:class:`~warehouse.errors.WarehouseError`); any other exception is a bug
that would reach the user as a traceback. Bounded: a few dozen examples per reader.
"""

from __future__ import annotations

import gzip
import io
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loaders.galaxy_zoo import GalaxyZooLoader
from loaders.hsc_ssp.catalog import HscForcedLoader
from loaders.hsc_ssp.cutouts import ingest_cutouts, request_cutouts
from loaders.simulated.catalog import simulate_field, write_archive_csv, write_archive_fits
from tests.warehouse.cutouts.test_cutouts import build_warehouse, make_batch_tar
from warehouse.errors import WarehouseError

GZ2_SAMPLE = (
    Path(__file__).resolve().parent / "data" / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"
)
FUZZ = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure reproduces
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

damage = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1)),
    st.tuples(
        st.just("overwrite"),
        st.lists(
            st.tuples(st.floats(0, 1), st.binary(min_size=1, max_size=8)), min_size=1, max_size=6
        ),
    ),
    st.tuples(st.just("insert"), st.floats(0, 1), st.binary(min_size=1, max_size=40)),
)


def damaged(data: bytes, how: tuple) -> bytes:
    """``data`` truncated, overwritten in places, or with bytes inserted."""
    kind = how[0]
    if kind == "truncate":
        return data[: int(len(data) * how[1])]
    if kind == "overwrite":
        out = bytearray(data)
        for where, chunk in how[1]:
            at = min(int(len(out) * where), max(len(out) - len(chunk), 0))
            out[at : at + len(chunk)] = chunk
        return bytes(out)
    at = int(len(data) * how[1])
    return data[:at] + how[2] + data[at:]


@pytest.fixture(scope="module")
def good_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz-good")
    forced = simulate_field(40, seed=5).forced.slice(0, 25)
    files = {}
    files["csv"] = folder / "forced.csv"
    write_archive_csv(forced, files["csv"])
    files["fits"] = folder / "forced.fits"
    write_archive_fits(forced, files["fits"], isnull_columns=("g_cmodel_mag",))
    files["parquet"] = folder / "forced.parquet"
    pq.write_table(forced, files["parquet"])
    files["csv.gz"] = folder / "forced.csv.gz"
    files["csv.gz"].write_bytes(gzip.compress(files["csv"].read_bytes(), mtime=0))
    return files


def _prepare_or_typed_error(loader, path: Path) -> None:
    try:
        prepared = loader.prepare(path)
    except WarehouseError:
        return
    assert prepared and all(p.table.num_rows > 0 for p in prepared)


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "fits", "parquet"])
@FUZZ
@given(how=damage)
def test_damaged_forced_exports_load_or_raise_the_typed_error(good_files, tmp_path, kind, how):
    path = tmp_path / f"damaged.{kind}"
    path.write_bytes(damaged(good_files[kind].read_bytes(), how))
    _prepare_or_typed_error(HscForcedLoader(), path)


@FUZZ
@given(how=damage)
def test_a_damaged_galaxy_zoo_sample_loads_or_raises_the_typed_error(tmp_path, how):
    path = tmp_path / "gz2.csv"
    path.write_bytes(damaged(GZ2_SAMPLE.read_bytes(), how))
    _prepare_or_typed_error(GalaxyZooLoader(), path)


@pytest.fixture(scope="module")
def tar_setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz-tar")
    wh = build_warehouse(base / "catalog", n=40)
    lists = request_cutouts(wh, base / "lists", bands="g")
    tar = make_batch_tar(lists[:1], {0, 1}, out=base / "good.tar")
    return wh, tar, lists[0].with_suffix(".json")  # paths: hypothesis prints the arguments


@pytest.mark.parametrize("compressed", [False, True])
@settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(how=damage)
def test_a_damaged_batch_tar_ingests_or_raises_the_typed_error(
    tar_setup, tmp_path, compressed, how
):
    wh, tar, mapping = tar_setup
    good = tar.read_bytes()
    data = gzip.compress(good, mtime=0) if compressed else good
    folder = tmp_path / "in"
    folder.mkdir(exist_ok=True)
    name = "batch.tar.gz" if compressed else "batch.tar"
    (folder / name).write_bytes(damaged(data, how))
    shutil.copy(mapping, folder / "batch.json")
    try:
        ingest_cutouts(wh, [folder / name], echo=io.StringIO().write)
    except WarehouseError:
        pass
    assert not list((wh.root / "cache" / "tmp").glob("ingest-*"))  # its scratch folder is gone
