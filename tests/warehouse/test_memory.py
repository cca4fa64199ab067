"""An hf export allocates its Arrow buffers from jemalloc (where pyarrow has it) and puts the
default pool back after, also after a failure."""

from __future__ import annotations

import pyarrow as pa
import pytest

from tests.warehouse.export.test_export_by_offset import complete_sql, field  # noqa: F401
from warehouse.errors import ExportError
from warehouse.export import ExportOptions, export_hf
from warehouse.memory import export_pool


def _jemalloc() -> pa.MemoryPool | None:
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return None


def test_the_pool_is_jemalloc_inside_and_the_previous_one_after():
    before = pa.default_memory_pool().backend_name
    with export_pool() as pool:
        inside = pa.default_memory_pool()
        assert inside.backend_name == pool.backend_name
        if _jemalloc() is not None:
            assert inside.backend_name == "jemalloc"
        kept = pa.array(range(100_000))  # allocated inside, freed after: to its own pool
    assert pa.default_memory_pool().backend_name == before
    assert kept.sum().as_py() == sum(range(100_000))
    del kept


def test_the_pool_is_put_back_after_a_failure():
    before = pa.default_memory_pool().backend_name
    with pytest.raises(RuntimeError), export_pool():
        raise RuntimeError("stop")
    assert pa.default_memory_pool().backend_name == before


def test_an_hf_export_allocates_from_jemalloc_and_leaves_the_default_pool(field, tmp_path):  # noqa: F811
    jemalloc = _jemalloc()
    if jemalloc is None:
        pytest.skip("this pyarrow was built without jemalloc")
    wh, sql = field["wh"], complete_sql(field)
    before = pa.default_memory_pool().backend_name
    allocations = jemalloc.num_allocations()
    opts = ExportOptions(size=8)
    result = export_hf(wh, tmp_path / "d", sql=sql, options=opts, progress=False, splits=["train"])
    assert result.rows["train"] > 0
    assert jemalloc.num_allocations() > allocations  # its buffers came from jemalloc
    assert pa.default_memory_pool().backend_name == before
    with pytest.raises(ExportError):  # a refused export puts the pool back too
        export_hf(wh, tmp_path / "e", sql="SELECT 1 AS x", options=opts, progress=False)
    assert pa.default_memory_pool().backend_name == before
