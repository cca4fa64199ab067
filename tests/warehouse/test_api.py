"""The library's front door: ``from warehouse import Warehouse``, the README's example run as
written, results as Arrow, pandas and astropy (with units), ``gwh --version``."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pytest

import warehouse
from loaders.simulated.demo import run_demo
from warehouse.api import to_astropy

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_example() -> str:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"^## From Python\n.*?^```python\n(.*?)^```", text, re.S | re.M)
    assert found, "README.md has no python block under '## From Python'"
    return found.group(1)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A small demo warehouse at <dir>/gwh-demo/warehouse, as `gwh demo` makes it."""
    where = tmp_path_factory.mktemp("api")
    run_demo(where / "gwh-demo", n_objects=400, n_images=6, echo=lambda _m: None)
    return where


def test_the_readme_example_runs_as_written(demo_dir, monkeypatch, capsys):
    monkeypatch.chdir(demo_dir)
    exec(compile(readme_example(), "README.md", "exec"), {})
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("[{'split': 'test', 'n': ")
    assert out[1].endswith(" mag")  # the unit of i_cmodel_mag, traced through ml_objects
    assert out[3].startswith("test.h5 ") and int(out[3].split()[1]) >= 1
    assert "ml_object does not exist" in out[4] and "ml_objects" in out[4]
    assert (demo_dir / "test.h5").stat().st_size > 0


def test_query_helpers_keep_nulls_ids_and_units(demo_dir):
    wh = warehouse.Warehouse.open(demo_dir / "gwh-demo" / "warehouse")
    sql = (
        "select object_id, ra, i_cmodel_mag, specz_redshift, "
        "case when object_id % 2 = 0 then null else 1 end as odd from ml_objects order by 1"
    )
    arrow = wh.query(sql)
    df = wh.query_df(sql)
    assert df["object_id"].tolist() == arrow.column("object_id").to_pylist()  # exact int64
    assert str(df["odd"].dtype) == "Int32" and df["odd"].isna().any()
    t = wh.query_table(sql)
    assert str(t["i_cmodel_mag"].unit) == "mag" and str(t["ra"].unit) in ("deg", "degree")
    assert t["odd"].mask.any() and t["object_id"].tolist() == df["object_id"].tolist()
    assert len(t) == arrow.num_rows


def test_to_astropy_masks_nulls_and_keeps_unknown_units():
    table = pa.table(
        {
            "id": pa.array([1, None], pa.int64()),
            "name": pa.array(["a", None]),
            "flux": pa.array([1.5, None], pa.float32()),
        }
    )
    t = to_astropy(table, {"flux": "nJy", "id": "not_a_unit"})
    assert list(t["id"].mask) == [False, True] and list(t["name"].mask) == [False, True]
    assert str(t["flux"].unit) == "nJy" and list(t["flux"].mask) == [False, True]
    assert str(t["id"].unit) == "not_a_unit"


def test_public_names_and_errors():
    from warehouse import QueryError, Warehouse, WarehouseError, export_hdf5

    assert issubclass(QueryError, WarehouseError) and callable(export_hdf5)
    assert callable(Warehouse.open) and callable(Warehouse.init)
    for name in warehouse.__all__:
        value = getattr(warehouse, name)
        if name.endswith("Error"):  # every error a user can act on, catchable as one
            assert issubclass(value, WarehouseError), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        warehouse.nope  # noqa: B018


def test_fresh_interpreter_imports_without_loading_the_library():
    code = (
        "import sys, warehouse; assert 'duckdb' not in sys.modules; "
        "from warehouse import Warehouse; assert 'duckdb' in sys.modules; "
        "assert 'loaders' not in sys.modules; print(Warehouse.__name__)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "Warehouse"


def test_version(cli):
    res = cli("--version")
    assert (
        res.exit_code == 0
        and res.stdout.strip() == f"gwh (galaxy-warehouse) {warehouse.__version__}"
    )
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", warehouse.__version__)
