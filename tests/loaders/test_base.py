"""The key checks every loader makes: a key NOT NULL and never twice in one file, whether the file
is checked whole or a chunk at a time (rows named by their number in the file)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from loaders.base import KeysOfChunks, check_unique
from loaders.readers import SourceTable
from warehouse.errors import LoadError

KEY = ("object_id", "specz_name")


def _specz(ids: list[int], names: list[str]) -> pa.Table:
    return pa.table({"object_id": pa.array(ids, pa.int64()), "specz_name": names})


def test_an_object_with_two_spectra_is_not_a_repeated_key():
    # object_id repeats (two spectra of one object), the (object_id, specz_name) key does not;
    # ids near 2**63 would collide through float64
    big = 2**62 + 1
    t = _specz([big, 5, big + 1, big, 7], ["a", "a", "a", "b", "a"])
    check_unique(SourceTable(Path("s.parquet"), t, 1, "row"), t, KEY)


def test_a_repeated_key_names_its_rows():
    t = _specz([3, 9, 3, 4, 9, 3], ["a", "x", "b", "c", "y", "a"])
    with pytest.raises(LoadError, match=r"s.parquet: object_id=3, specz_name=a appears more than "
                       r"once \(row 1, row 6; 1 duplicated key"):  # fmt: skip
        check_unique(SourceTable(Path("s.parquet"), t, 1, "row"), t, KEY)


def test_unsorted_ids_with_repeats_pass_when_the_key_differs():
    rng = np.random.default_rng(3)
    ids = rng.integers(0, 5_000, 20_000)  # many repeats, in no order
    t = _specz(ids.tolist(), [str(i) for i in range(ids.size)])
    check_unique(SourceTable(Path("s.parquet"), t, 1, "row"), t, KEY)


def test_keys_of_chunks_checks_the_whole_file_and_names_lines_per_chunk():
    keys = KeysOfChunks(KEY)
    path = Path("s.csv")
    # CSV chunks: the second starts at line 40, not right after the first chunk's rows
    keys.add(SourceTable(path, _specz([1, 2, 3], ["a", "a", "a"]), 3, "line"))
    keys.add(SourceTable(path, _specz([4, 2, 5], ["a", "b", "a"]), 40, "line"))
    keys.check()  # (2, a) and (2, b) differ
    keys.add(SourceTable(path, _specz([6, 3], ["a", "a"]), 50, "line"))
    with pytest.raises(LoadError, match=r"s.csv: object_id=3, specz_name=a appears more than once "
                       r"\(line 5, line 51;"):  # fmt: skip
        keys.check()


def test_keys_of_chunks_refuses_a_null_key_in_the_chunk_that_has_it():
    keys = KeysOfChunks(KEY)
    keys.add(SourceTable(Path("s.parquet"), _specz([1, 2], ["a", "a"]), 1, "row"))
    bad = pa.table({"object_id": pa.array([3, None], pa.int64()), "specz_name": ["a", "a"]})
    with pytest.raises(LoadError, match=r"s.parquet, row 4, column object_id: the key is NULL"):
        keys.add(SourceTable(Path("s.parquet"), bad, 3, "row"))


def test_no_chunk_no_complaint():
    KeysOfChunks(KEY).check()


@pytest.mark.parametrize("chunk", [1_500, 2_500])  # 7 chunks (merged as 4+2+1) and 4
@pytest.mark.parametrize("repeat", [False, True])
def test_keys_of_chunks_finds_what_the_whole_file_check_finds(repeat, chunk):
    # object_ids repeat within and across chunks (many spectra per object), in no order; the
    # chunked check (ids sorted chunk by chunk, then merged) names the same key and rows
    rng = np.random.default_rng(7)
    ids = rng.integers(0, 3_000, 10_000)
    names = [f"s{i}" for i in range(ids.size)]
    if repeat:
        ids[9_000], names[9_000] = ids[1_234], names[1_234]
    path = Path("s.parquet")
    whole = _specz(ids.tolist(), names)
    keys = KeysOfChunks(KEY)
    for start in range(0, ids.size, chunk):
        keys.add(SourceTable(path, whole.slice(start, chunk), start + 1, "row"))
    if not repeat:
        keys.check()
        check_unique(SourceTable(path, whole, 1, "row"), whole, KEY)
        return
    with pytest.raises(LoadError) as chunked:
        keys.check()
    with pytest.raises(LoadError) as at_once:
        check_unique(SourceTable(path, whole, 1, "row"), whole, KEY)
    assert str(chunked.value) == str(at_once.value)
    assert "row 1235, row 9001;" in str(chunked.value)
