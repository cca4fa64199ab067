"""The Arrow memory pool an ``hf`` export allocates from.

An ``hf`` export reads and frees hundreds of MiB of short-lived Arrow buffers: each stored row
group of images read, each row group of a shard built and encoded. pyarrow's default pool,
mimalloc, hands freed pages back to the kernel and faults them in again, each first touch
zeroing a 2 MiB huge page (``clear_page_erms`` under ``do_huge_pmd_anonymous_page`` was 20 % of
the CPU samples of a 5,000-galaxy export); jemalloc keeps them for the next buffer. Four
alternating rounds of ``bench_export.py --phase hf --n 5000``: 2.82-3.38 s against 3.27-3.58 s,
CPU 4.9-5.7 s against 5.7-6.1 s, peak RSS 1.05-1.18 GiB against 1.23-1.24 GiB; the same bytes.
The HDF5 export, which copies stored pixels without decoding them, did not change (0.74-0.80 s
both ways), so it keeps the default pool.

(A load does not use it: on a quiet machine jemalloc cost the loads more page faults than it
saved, see ``benchmarks/RESULTS.md``.)

>>> with export_pool():                                        # doctest: +SKIP
...     export_hf(...)
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
