"""What a folder a user named holds, and the line that says so (warehouse.location)."""

from __future__ import annotations

import pytest

from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.errors import NotAWarehouseError, WarehouseError
from warehouse.location import new_warehouse_refusal, not_a_warehouse, warehouse_near


@pytest.fixture
def places(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    demo = tmp_path / "my demo"  # as gwh demo lays it out: the warehouse inside
    Warehouse.init(demo / "warehouse")
    pack = tmp_path / "packs" / "v1"  # a packed release: pack.json, no warehouse.duckdb
    (pack / "catalogs").mkdir(parents=True)
    (pack / "pack.json").write_text("{}")
    (pack / "warehouse.toml").write_text("")
    return demo, pack


def test_a_path_near_a_warehouse_names_it(places):
    demo, pack = places
    wh = demo / "warehouse"
    for near in (demo, wh / "warehouse.duckdb", wh / "catalogs"):
        assert warehouse_near(near) == wh.absolute()
        said = not_a_warehouse(near)
        assert "pass --root 'my demo/warehouse'" in said and "gwh init" not in said
    for inside in (pack / "catalogs", pack.parent):
        said = not_a_warehouse(inside)
        assert "packed release" in said and "--release packs/v1" in said, said
    with pytest.raises(NotAWarehouseError, match="packed release"):
        Warehouse.open(pack)


def test_a_package_folder_and_paths_from_the_root_folder_are_said_plainly(
    places, tmp_path, monkeypatch
):
    """In a checkout of gwh, ./warehouse (the default --root) is the Python package: gwh sql
    said "Run `gwh init warehouse` first", which init refuses. From /, an absolute --root was
    named back relative (tmp/...)."""
    package = tmp_path / "checkout" / "warehouse"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    said = not_a_warehouse(package)
    assert "is a Python package folder, not a warehouse" in said and "gwh init" not in said
    monkeypatch.chdir("/")
    demo, _pack = places
    assert f"pass --root '{demo.absolute() / 'warehouse'}'" in not_a_warehouse(demo)


def test_init_never_nests_a_warehouse_in_or_around_another(places):
    demo, pack = places
    assert "holds the warehouse" in new_warehouse_refusal(demo)  # would shadow it
    assert "is inside the warehouse" in new_warehouse_refusal(demo / "warehouse" / "sub")
    assert "is inside the packed release" in new_warehouse_refusal(pack / "sub")
    assert "packed release" in new_warehouse_refusal(pack)
    assert "already a warehouse" in new_warehouse_refusal(demo / "warehouse")
    with pytest.raises(WarehouseError, match="holds the warehouse"):
        Warehouse.init(demo)
    assert new_warehouse_refusal(demo.parent / "elsewhere") is None


def test_a_warehouse_without_its_settings_says_what_init_would_do(places):
    demo, _pack = places
    wh = demo / "warehouse"
    (wh / "warehouse.toml").unlink()
    said = not_a_warehouse(wh)
    assert "no warehouse.toml, its settings" in said and "would write the defaults" in said


def test_settings_written_before_init_are_kept_by_init(tmp_path, cli):
    """A folder holding only a warehouse.toml was a dead end: gwh views said it had no
    warehouse.toml, gwh init that it was already a warehouse."""
    root = tmp_path / "mine"
    root.mkdir()
    text = Config.default().to_toml().replace('salt = "gwh-v1"', 'salt = "my-salt"')
    assert 'salt = "my-salt"' in text
    (root / "warehouse.toml").write_text(text)
    said = cli("views", "--root", root)
    assert said.exit_code == 1 and f"run `gwh init {root}`" in said.stderr, said.output
    assert cli("init", root).exit_code == 0
    assert (root / "warehouse.toml").read_text() == text
    assert Warehouse.open(root).config.splits.salt == "my-salt"
    # tables but no warehouse.duckdb: the committed state is lost, not to be made anew
    (root / "warehouse.duckdb").unlink()
    (root / "catalogs" / "hsc_forced" / "v000001").mkdir(parents=True)
    said = cli("views", "--root", root)
    assert said.exit_code == 1 and "restore it from a backup" in said.stderr, said.output
    assert "already a warehouse" in cli("init", root).stderr
