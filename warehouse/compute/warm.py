"""What every Dask worker imports before its first task, so that no task waits for it.

Unpickling a task imports the module of its function; without this, the first task on each
worker would also wait for DuckDB, pyarrow, healpy (which brings matplotlib and astropy) and the
warehouse's own modules: seconds on a busy machine. :func:`warm` is submitted to every worker
when a client connects (:func:`warehouse.compute.cluster.dask_client`); unpickling it imports
this module, so the workers import while the client is still reading its inputs.
"""

from __future__ import annotations

import os

import duckdb  # noqa: F401
import pyarrow.parquet  # noqa: F401

from warehouse import db  # noqa: F401  (the partition reader's views)
from warehouse.store import tasks  # noqa: F401  (partition writes: the store, healpy)

__all__ = ["warm"]


def warm() -> int:
    """Nothing to do: importing this module was the work. The worker's process id."""
    return os.getpid()
