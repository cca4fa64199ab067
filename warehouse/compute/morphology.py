"""``gwh morphology measure --dask``: each worker measures objects of one cutouts partition.

A task names a cutouts partition file and some of its objects; the worker reads their pixel
columns itself from the shared filesystem (no pixels cross the network), measures them with the
same per-object code as the local path (:func:`warehouse.morphology.worker.measure_rows`) and
returns the small result rows. Results come back in partition order, so the client commits them
(one writer) as the local path does; the measured values are the same.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from warehouse.compute.mapping import map_in_order
from warehouse.morphology.worker import PIXEL_COLUMNS, Job, measure_rows

__all__ = ["TASK_OBJECTS", "measure_on_dask", "measure_partition"]

TASK_OBJECTS = 128
"""Objects per task: a few seconds of work, so two workers share even a single partition."""

_READ_BATCH = 64  # rows decoded at a time: a worker holds a few MB of pixels, never a partition


def measure_partition(path: str, ids: Sequence[int], job: Job) -> list[dict[str, Any]]:
    """Measure the objects ``ids`` of the cutouts partition file ``path`` (runs on a worker):
    their rows in file order, each as :func:`~warehouse.morphology.worker.measure_rows` gives."""
    pf = pq.ParquetFile(path)
    names = set(pf.schema_arrow.names)
    columns = ["object_id"] + [
        f"{b}_{w}" for b in job.bands for w in PIXEL_COLUMNS if f"{b}_{w}" in names
    ]
    wanted = np.asarray(sorted(ids), dtype=np.int64)
    out: list[dict[str, Any]] = []
    for batch in pf.iter_batches(batch_size=_READ_BATCH, columns=columns):
        oid = batch.column(0).to_numpy()
        hit = np.flatnonzero(np.isin(oid, wanted))
        if hit.size == 0:
            continue
        rows = batch.take(hit).to_pylist()
        out.extend(measure_rows(rows, job))
    return out


def _tasks(plan: Iterable[tuple[str, set[int]]], per_task: int) -> Iterator[tuple[str, tuple]]:
    for path, wanted in plan:
        ids = sorted(wanted)
        for i in range(0, len(ids), per_task):
            yield path, tuple(ids[i : i + per_task])


def _run(job: Job, task: tuple[str, tuple]) -> list[dict[str, Any]]:
    return measure_partition(task[0], task[1], job)


def measure_on_dask(
    client: Any,
    plan: Iterable[tuple[str, set[int]]],
    job: Job,
    per_task: int = TASK_OBJECTS,
) -> Iterator[list[dict[str, Any]]]:
    """Measured rows of every planned (cutouts partition file, object ids), task by task in
    partition order, computed on ``client``'s workers (None: in this process)."""
    yield from map_in_order(client, functools.partial(_run, job), _tasks(plan, per_task))
