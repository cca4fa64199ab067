"""Shared fixtures: small simulated fields, warehouses, and a CLI runner."""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from loaders import registry
from loaders.simulated.catalog import simulate_field
from warehouse.config import Config
from warehouse.core import Warehouse


@pytest.fixture(scope="session")
def field():
    """A SIMULATED HSC-like field of 1,200 objects (deterministic)."""
    return simulate_field(1200, seed=7)


@pytest.fixture
def field_files(tmp_path, field):
    """The field written as Parquet exports: forced, forced2, specz."""
    paths = {}
    for name, table in (
        ("forced", field.forced),
        ("forced2", field.forced2),
        ("specz", field.specz),
    ):
        paths[name] = tmp_path / f"simulated_{name}.parquet"
        pq.write_table(table, paths[name])
    return paths


@pytest.fixture
def make_warehouse(tmp_path):
    def make(name: str = "wh", **config) -> Warehouse:
        return Warehouse.init(tmp_path / name, Config(**config) if config else None)

    return make


@pytest.fixture
def loaded(make_warehouse, field_files):
    """A warehouse with the whole simulated field loaded, partitions split small."""
    wh = make_warehouse(max_rows_per_partition=200)
    wh.load(registry.get("hsc-forced"), [field_files["forced"], field_files["forced2"]])
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    return wh


@pytest.fixture
def cli():
    """Invoke ``gwh`` in-process; returns the Result (exit_code, stdout, stderr)."""
    from cli import app

    runner = CliRunner()

    def invoke(*args: str, env: dict | None = None, input: str | None = None):
        env = {**{k: v for k, v in os.environ.items() if k != "GWH_ROOT"}, **(env or {})}
        return runner.invoke(app, [str(a) for a in args], env=env, input=input)

    return invoke


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root with its bytes, except the lock file."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }
