"""Input files for multi-file load tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq


def write_interleaved(table: pa.Table, folder: Path, n_files: int, seed: int) -> list[Path]:
    """``table``'s rows dealt at random into ``n_files`` Parquet files (each keeps its rows in
    table order): every file spreads over the whole field, as archive exports in parts do."""
    order = np.random.default_rng(seed).permutation(table.num_rows)
    paths = []
    for k in range(n_files):
        paths.append(folder / f"part-{k}.parquet")
        pq.write_table(table.take(pa.array(np.sort(order[k::n_files]))), paths[-1])
    return paths
