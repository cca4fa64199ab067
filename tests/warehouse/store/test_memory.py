"""A load allocates from jemalloc (where pyarrow has it) and puts the default pool back."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from warehouse.store.memory import load_pool


def _has_jemalloc() -> bool:
    try:
        pa.jemalloc_memory_pool()
    except NotImplementedError:
        return False
    return True


def test_the_pool_is_jemalloc_inside_and_the_previous_one_after():
    before = pa.default_memory_pool().backend_name
    with load_pool() as pool:
        inside = pa.default_memory_pool()
        assert inside.backend_name == pool.backend_name
        if _has_jemalloc():
            assert inside.backend_name == "jemalloc"
        kept = pa.array(range(100_000))  # allocated inside, freed after: to its own pool
    assert pa.default_memory_pool().backend_name == before
    assert kept.sum().as_py() == sum(range(100_000))
    del kept


def test_the_pool_is_put_back_after_a_failure():
    before = pa.default_memory_pool().backend_name
    with pytest.raises(RuntimeError), load_pool():
        raise RuntimeError("stop")
    assert pa.default_memory_pool().backend_name == before


def test_a_load_leaves_the_default_pool_as_it_was(make_warehouse, field, tmp_path):
    path = tmp_path / "specz.parquet"
    pq.write_table(field.specz, path)
    wh = make_warehouse()
    before = pa.default_memory_pool().backend_name
    seen = []
    loader = registry.get("hsc-specz")

    class Watching:  # the registered loader, noting the pool it reads the file under
        name, description = loader.name, loader.description

        def prepare(self, p, w=None):
            seen.append(pa.default_memory_pool().backend_name)
            return loader.prepare(p, w)

    wh.load(Watching(), [path])
    assert pa.default_memory_pool().backend_name == before
    assert seen == (["jemalloc"] if _has_jemalloc() else [before])
    assert wh.query("SELECT count(*) AS n FROM hsc_specz").column("n")[0].as_py() == (
        field.specz.num_rows
    )
