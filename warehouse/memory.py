"""The Arrow memory pool an export allocates from.

An export reads and frees hundreds of MiB of short-lived Arrow buffers: each stored row group
of images read, each catalog batch converted, each row group of an ``hf`` shard built and
encoded. pyarrow's default pool, mimalloc, hands freed pages back to the kernel and faults them
in again, each first touch zeroing a 2 MiB huge page (``clear_page_erms`` under
``do_huge_pmd_anonymous_page`` was 20 % of the CPU samples of a 5,000-galaxy ``hf`` export);
jemalloc keeps them for the next buffer. Alternating runs of ``bench_export.py --phase hf
--n 5000``: 2.65-3.18 s against 3.24-4.19 s, peak RSS 1.0-1.1 GiB against 1.2 GiB; HDF5
0.75-0.77 s against 0.81-0.86 s. The bytes written are the same.

(A load does not use it: on a quiet machine jemalloc cost the loads more page faults than it
saved, see ``benchmarks/RESULTS.md``.)

>>> with export_pool():                                        # doctest: +SKIP
...     export_hdf5(...)
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pyarrow as pa

__all__ = ["export_pool"]


@contextmanager
def export_pool() -> Iterator[pa.MemoryPool]:
    """Make jemalloc pyarrow's default memory pool inside the block (where pyarrow was built
    with it, as its Linux and macOS wheels are), then put back the pool there was. Buffers
    outliving the block are freed to the pool they came from. The pool is process-wide: other
    threads allocate from it meanwhile, which is harmless."""
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
