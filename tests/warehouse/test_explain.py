"""DuckDB errors in the warehouse's terms."""

from __future__ import annotations

import duckdb
import pytest

from warehouse.errors import first_line, one_line
from warehouse.explain import explain_error


def test_out_of_memory_says_what_a_reader_can_do(loaded):
    """DuckDB's own advice (SET threads, SET preserve_insertion_order) is refused on a read
    path; the message says what works instead, in one line."""
    sql = "select range % 3000000 AS k, count(*) AS n from range(6000000) group by 1"
    with loaded.connect(settings={"memory_limit": "20MB", "threads": 1}) as con:
        with pytest.raises(duckdb.OutOfMemoryException) as err:
            con.execute(sql).fetchall()
        message = explain_error(err.value, con, sql)
    assert "\n" not in message and "SET" not in message
    assert message.startswith("the query ran out of memory (")
    assert "narrow it (a WHERE, a LIMIT, fewer columns)" in message


def test_first_line_of_any_exception():
    """One helper for every message cut to its first line: four copies of
    ``str(exc).splitlines()[0]`` raised an IndexError for an exception without text."""
    assert first_line(KeyError()) == "KeyError"
    assert first_line(ValueError("  first\nsecond  ")) == "first"
    assert one_line(duckdb.ParserException("Parser Error: bad\n\nLINE 2: x\n   ^")) == (
        "Parser Error: bad (at line 2 of the query)"
    )
