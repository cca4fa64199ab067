"""The Arrow memory pool a load allocates from.

A load allocates and frees hundreds of MiB of short-lived Arrow buffers (each chunk read, its
sorted copy, each row group taken and encoded). pyarrow's default pool, mimalloc, hands freed
pages back to the kernel and faults them in again, from several threads at once: on a 1.89 M-row
spec-z load that was 0.65-1.17 s of kernel CPU, 0.41-0.48 s from jemalloc (and a 10 M-row
forced load 12.1 s, 8.2 s; peak RSS 1.81 GiB, 1.76), for the same bytes written.

>>> with load_pool():                                          # doctest: +SKIP
...     batch.commit(...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

__all__ = ["load_pool"]


@contextmanager
def load_pool() -> Iterator[pa.MemoryPool]:
    """Make jemalloc pyarrow's default memory pool inside the block (where pyarrow was built
    with it, as its Linux and macOS wheels are), then put back the pool there was. Buffers
    outliving the block are freed to the pool they came from. The pool is process-wide: one
    load at a time holds the writer lock, and readers allocate from it as well meanwhile."""
    previous = pa.default_memory_pool()
    try:
        pool = pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc: as it is
        yield previous
        return
    pa.set_memory_pool(pool)
    try:
        yield pool
    finally:
        pa.set_memory_pool(previous)
