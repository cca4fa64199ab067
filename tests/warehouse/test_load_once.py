"""Load-once while the files are hashed in a thread as they are read: whether a file's SHA-256
is known before it is read (it is then not read) or only after (its rows are dropped), a file
loaded before or given twice changes nothing, and the others load as if it were not given."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.support.parts import write_interleaved
from warehouse import files as wfiles
from warehouse.core import Warehouse
from warehouse.files import file_sha256


class _Late:
    """A hash future that says it is not done yet: the file is read before it is asked."""

    def __init__(self, future):
        self._future = future

    def done(self) -> bool:
        return False

    def result(self) -> str:
        return self._future.result()


@contextlib.contextmanager
def _hashed_late(paths):
    with wfiles.background_sha256(paths) as futures:
        yield [_Late(f) for f in futures]


@contextlib.contextmanager
def _hashed_first(paths):
    with wfiles.background_sha256(paths) as futures:
        for f in futures:
            f.result()
        yield futures


def _parts(tmp_path: Path, n: int = 3) -> list[Path]:
    return write_interleaved(simulate_field(1500, seed=5).forced, tmp_path, n, seed=4)


def _content(wh: Warehouse):
    loads = wh.query("SELECT sha256, nrows FROM gwh_loads ORDER BY sha256").to_pylist()
    rows = wh.query("SELECT * FROM hsc_forced ORDER BY object_id").to_pandas()
    return loads, rows  # pandas: NaN equals NaN


def test_background_sha256_gives_each_file_its_digest(tmp_path):
    paths = _parts(tmp_path)
    with wfiles.background_sha256(paths) as futures:
        assert [f.result() for f in futures] == [file_sha256(p) for p in paths]


@pytest.mark.parametrize("hashing", [_hashed_first, _hashed_late], ids=["known", "late"])
def test_loaded_and_repeated_files_change_nothing_however_late_the_hash(
    make_warehouse, tmp_path, monkeypatch, hashing
):
    monkeypatch.setattr("warehouse.commit.background_sha256", hashing)
    a, b, c = _parts(tmp_path)
    a_copy = tmp_path / "copy-of-a.parquet"
    shutil.copyfile(a, a_copy)
    wh = make_warehouse(max_rows_per_partition=400)
    wh.load(registry.get("hsc-forced"), [a])
    messages: list[str] = []
    results = wh.load(registry.get("hsc-forced"), [a, b, a_copy, c, b], echo=messages.append)
    assert [(Path(r.file).name, r.skipped) for r in results] == [
        ("part-0.parquet", True),
        ("copy-of-a.parquet", True),
        ("part-1.parquet", True),
        ("part-1.parquet", False),
        ("part-2.parquet", False),
    ]
    assert sum("already loaded" in m for m in messages) == 2
    assert sum("given twice" in m for m in messages) == 1
    # the same warehouse as loading a, then b and c
    want = make_warehouse("want", max_rows_per_partition=400)
    want.load(registry.get("hsc-forced"), [a])
    want.load(registry.get("hsc-forced"), [b, c])
    assert _content(wh)[0] == _content(want)[0]
    assert _content(wh)[1].equals(_content(want)[1])  # DataFrame.equals
    assert wh.current_version("hsc_forced").nrows == 1500
    assert not list((wh.root / "catalogs" / "hsc_forced").glob(".tmp-*"))
