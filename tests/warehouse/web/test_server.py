"""The server's background work (warehouse/web/server.py)."""

from __future__ import annotations

import shutil
import threading

from warehouse.web import open_site
from warehouse.web.server import prewarm


def test_prewarm_of_a_damaged_warehouse_leaves_the_error_to_the_pages(loaded, tmp_path):
    """A margin file deleted outside gwh: the thread that computes the first pages ahead
    leaves the error to the pages (one line each) instead of printing a traceback."""
    root = tmp_path / "damaged"
    shutil.copytree(loaded.root, root, symlinks=True)
    next(root.glob("catalogs/hsc_forced/v*/hsc_forced_*arcs/dataset/Norder=*/*/*.parquet")).unlink()
    failures: list[threading.ExceptHookArgs] = []
    hook, threading.excepthook = threading.excepthook, failures.append
    try:
        site = open_site(root)
        prewarm(site).join(timeout=120)
    finally:
        threading.excepthook = hook
    assert failures == [], [f.exc_value for f in failures]
