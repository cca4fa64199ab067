"""``--dask`` through the command line: a run on a local cluster, and the one-line errors."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from warehouse.cutouts import ingest_arrays

REPO = Path(__file__).resolve().parents[1]


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


@pytest.mark.slow
def test_more_local_workers_than_cores_print_nothing_of_distributed(make_warehouse, field_files):
    """``gwh load ... --dask local:8`` on a 2-core machine printed, at close, one distributed
    nanny line per worker ("Worker process still alive after 4.0 seconds, killing"): stderr of
    a run that works is now empty (distributed's records below ERROR are silenced)."""
    wh = make_warehouse()
    done = subprocess.run(
        [sys.executable, str(REPO / "cli.py"), "load", "hsc-forced", str(field_files["forced"])]
        + ["--dask", "local:8", "--root", str(wh.root)],
        capture_output=True,
        text=True,
        cwd=wh.root.parent,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "on the Dask cluster local:8 (8 worker thread(s))" in done.stdout
    assert "1,200 new rows → 1,200" in done.stdout, done.stdout
    assert done.stderr == ""
