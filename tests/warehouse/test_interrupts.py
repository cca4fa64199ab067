"""Ctrl-C for queries (``warehouse.interrupts``): DuckDB can take the KeyboardInterrupt of a
SIGINT that lands as a query starts and drop it; the interrupt ``gwh``'s handler records then
still stops the query, and one started after it, at once."""

from __future__ import annotations

import time

import duckdb
import pytest

from warehouse import interrupts
from warehouse.api import preview
from warehouse.core import Warehouse

LONG = "select sum(hash(i)) from range(20000000000) t(i)"  # about a minute on two cores


def test_a_recorded_ctrl_c_stops_a_query_whatever_became_of_the_exception(tmp_path):
    wh = Warehouse.init(tmp_path / "wh")
    interrupts.request()  # what the handler does; the KeyboardInterrupt itself is gone
    try:
        started = time.monotonic()
        with pytest.raises((duckdb.InterruptException, RuntimeError), match="nterrupt"):
            preview(wh, LONG, 5)
        assert time.monotonic() - started < 10
    finally:
        interrupts.clear()
    assert not interrupts.requested()
    assert preview(wh, "select 42 as x", 5)[0].column("x").to_pylist() == [42]  # runs again


@pytest.mark.parametrize("shared", [True, False])
def test_every_read_connection_is_stopped_not_only_gwh_sql(tmp_path, shared):
    """The export's plan, ``gwh cone``, the views and the web pages read through
    ``Warehouse.connect``: a recorded Ctrl-C stops their queries too."""
    wh = Warehouse.init(tmp_path / "wh")
    interrupts.request()
    try:
        started = time.monotonic()
        with (
            pytest.raises((duckdb.InterruptException, RuntimeError), match="nterrupt"),
            wh.connect(shared=shared) as con,
        ):
            con.execute(LONG).fetchall()
        assert time.monotonic() - started < 10
    finally:
        interrupts.clear()
    with wh.connect(shared=shared) as con:  # runs again, and is no longer registered after
        assert con.execute("select 42").fetchall() == [(42,)]
    assert not interrupts._RUNNING
