"""``--dask`` through the command line: a run on a local cluster, and the one-line errors."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from warehouse.cutouts import ingest_arrays


@pytest.fixture
def imaged(loaded):
    """Six ml_objects with SIMULATED i-band cutouts (Gaussian galaxies in unit noise)."""
    ids = loaded.query("SELECT object_id FROM ml_objects ORDER BY object_id LIMIT 6")
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[:40, :40]
    g = np.exp(-((xx - 19.5) ** 2 / 8 + (yy - 19.5) ** 2 / 4))
    images = (50 * g + rng.normal(0, 1, (6, 40, 40))).astype(np.float32)
    ingest_arrays(loaded, ids.column(0).to_pylist(), {"i": images}, simulated=True, source="t")
    return loaded


def test_morphology_measure_on_a_local_cluster(cli, imaged):
    result = cli(
        "morphology", "measure", "--bands", "i", "--dask", "local:2", "--root", imaged.root
    )
    assert result.exit_code == 0, result.output
    assert "on the Dask cluster local:2 (2 worker thread(s))" in result.output
    assert "measured 6 of 6" in result.output


def test_environment_variable_names_the_scheduler(cli, imaged):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {"GWH_DASK_SCHEDULER": f"tcp://127.0.0.1:{port}"}
    result = cli("morphology", "measure", "--root", imaged.root, env=env)
    assert result.exit_code == 1
    assert f"cannot reach a Dask scheduler at 'tcp://127.0.0.1:{port}'" in result.output
    assert "Traceback" not in result.output


def test_bad_local_count_is_a_message(cli, imaged):
    result = cli("morphology", "measure", "--dask", "local:0", "--root", imaged.root)
    assert result.exit_code == 1
    assert "local:N with N >= 1" in result.output


def test_export_dask_takes_a_view_not_sql(cli, loaded, tmp_path):
    result = cli(
        "export",
        "--out",
        tmp_path / "x.h5",
        "--sql",
        "select * from ml_objects",
        "--dask",
        "local:1",
        "--root",
        loaded.root,
    )
    assert result.exit_code == 2
    assert "--dask splits the rows by partition" in result.output
