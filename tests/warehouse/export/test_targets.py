"""Where an export may write: ``--overwrite`` never replaces the warehouse, its files, or a
folder that is not an earlier hf export (a mistyped target was deleted whole)."""

from __future__ import annotations

import pytest

from tests.conftest import tree_snapshot
from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse.errors import ExportError
from warehouse.export import ExportOptions, export_hdf5, export_hf

OPTS = ExportOptions(size=12, overwrite=True)


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("targets") / "w", n=80)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


def _partition(wh):
    return next((wh.root / "catalogs" / "hsc_specz").resolve().rglob("Npix=*.parquet"))


@pytest.mark.parametrize(
    "target",
    [
        lambda wh: wh.root / "warehouse.duckdb",
        lambda wh: wh.root / "warehouse.toml",
        _partition,
        lambda wh: wh.root / "catalogs" / "new.h5",
        lambda wh: wh.root / "releases" / "x.h5",
    ],
    ids=["duckdb", "toml", "partition", "catalogs", "releases"],
)
def test_an_hdf5_export_never_writes_into_the_warehouse(wh, target):
    out = target(wh)
    before = tree_snapshot(wh.root)
    with pytest.raises(ExportError, match="(inside the warehouse|the warehouse.s own file)"):
        export_hdf5(wh, out, split="train", options=OPTS, progress=False)
    assert tree_snapshot(wh.root) == before
    assert wh.query("select count(*) as n from hsc_specz").to_pylist()[0]["n"] > 0


@pytest.mark.parametrize("where", ["root", "parent"])
def test_an_hf_export_never_replaces_the_warehouse_or_a_folder_holding_it(wh, where):
    out = wh.root if where == "root" else wh.root.parent
    before = tree_snapshot(wh.root)
    with pytest.raises(ExportError, match="holds the warehouse"):
        export_hf(wh, out, options=OPTS, progress=False)
    assert tree_snapshot(wh.root) == before


def test_hf_overwrite_replaces_only_an_earlier_export(wh, tmp_path):
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    (home / "data" / "x.parquet").write_bytes(b"")
    (home / "thesis.tex").write_text("chapter 1")
    with pytest.raises(ExportError, match="'thesis.tex'"):
        export_hf(wh, home, options=OPTS, progress=False)
    assert (home / "thesis.tex").read_text() == "chapter 1"

    # an earlier export is replaced, as --overwrite promises
    h5 = export_hdf5(wh, tmp_path / "t.h5", split="train", options=OPTS, progress=False)
    again = export_hdf5(wh, h5.path, split="train", options=OPTS, progress=False)
    assert again.path == h5.path and again.rows == h5.rows
    hf = export_hf(wh, tmp_path / "hf", options=OPTS, progress=False)
    again_hf = export_hf(wh, hf.path, options=OPTS, progress=False)
    assert sorted(p.name for p in again_hf.path.iterdir()) == ["README.md", "data"]


def test_the_cli_refuses_in_one_line(wh, cli):
    result = cli(
        "export", "--split", "train", "--size", "12", "--overwrite",
        "--out", wh.root / "warehouse.duckdb", env={"GWH_ROOT": str(wh.root)},
    )  # fmt: skip
    assert result.exit_code != 0
    assert "is the warehouse's own file warehouse.duckdb" in result.output
    assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
