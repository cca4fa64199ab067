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
