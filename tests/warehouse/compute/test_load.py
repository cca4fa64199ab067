"""``gwh load --dask``: the workers of a real LocalCluster (two processes) write the new version's
partitions; the files are byte-identical to a load on this machine and every view has the same
rows, including a spec-z group straddling a partition border. A failed or killed load on Dask
leaves the previous state, and a rerun completes it."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from loaders import registry
from tests.warehouse.compute.conftest import STRADDLE, straddling_field
from warehouse.compute import ENV_VAR, dask_client
from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.errors import ComputeError
from warehouse.store.versions import without_time_properties

CLI = Path(__file__).resolve().parents[3] / "cli.py"
VIEWS = ("hsc_forced", "hsc_specz", "deduplicated", "ml_objects")


@pytest.fixture(scope="module")
def scheduler():
    """The address of a running LocalCluster of two single-threaded worker processes."""
    with dask_client("local:2") as client:
        assert len(client.scheduler_info()["workers"]) == 2
        yield client.scheduler.address


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """The straddling field's files, and an update of 300 hsc_forced rows (new magnitudes and
    positions, without the forced2 columns the stored rows keep)."""
    folder = tmp_path_factory.mktemp("inputs")
    paths = straddling_field(folder)["paths"]
    forced = pq.read_table(paths["forced"]).slice(100, 300)
    forced = forced.set_column(
        forced.schema.get_field_index("ra"), "ra", pc.add(forced.column("ra"), 0.001)
    )
    name = "i_cmodel_mag"
    forced = forced.set_column(
        forced.schema.get_field_index(name), name, pc.add(forced.column(name), 0.25)
    )
    paths["update"] = folder / "simulated_update.parquet"
    pq.write_table(forced, paths["update"])
    return paths


STEPS = (("hsc-forced", "forced"), ("hsc-forced", "forced2"), ("hsc-specz", "specz"))


def _load(root: Path, inputs: dict[str, Path], steps, dask: str | None = None) -> list[str]:
    wh = Warehouse.open(root) if root.exists() else Warehouse.init(root, _config())
    said: list[str] = []
    for loader, key in steps:
        wh.load(registry.get(loader), [inputs[key]], echo=said.append, dask=dask)
    return said


def _config() -> Config:
    return Config(max_rows_per_partition=200)


def _files(root: Path) -> dict[str, str]:
    """SHA-256 of every file of the committed versions under catalogs/ (the links ``current``
    not followed; a killed writer's ``.tmp-*`` folders, which no reader sees, left out)."""
    out = {}
    for folder, dirs, names in os.walk(root / "catalogs"):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            path = Path(folder) / name
            if not path.is_symlink():
                data = path.read_bytes()
                if name == "hats.properties":  # written in another minute, maybe
                    data = without_time_properties(data)
                out[path.relative_to(root).as_posix()] = hashlib.sha256(data).hexdigest()
    return out


def _rows(root: Path, view: str) -> tuple[pa.Schema, str]:
    """The schema and the rows of ``view`` in order, spelled out (NaN equal to NaN)."""
    table = Warehouse.open(root).query(f"SELECT * FROM {view} ORDER BY ALL")
    return table.schema, repr(table.to_pylist())


def test_a_load_on_two_worker_processes_writes_the_same_bytes_and_views(
    tmp_path, inputs, scheduler
):
    local, on_dask = tmp_path / "local", tmp_path / "dask"
    _load(local, inputs, STEPS)
    said = _load(on_dask, inputs, STEPS, dask=scheduler)
    assert f"on the Dask cluster {scheduler} (2 worker thread(s))" in said
    files = _files(local)
    assert len(files) > 30 and any("margin" in f or "arcs" in f for f in files)
    assert _files(on_dask) == files
    for view in VIEWS:
        assert _rows(on_dask, view) == _rows(local, view), view
    # the upsert: new rows merged into the previous partitions by the workers
    _load(local, inputs, [("hsc-forced", "update")])
    said = _load(on_dask, inputs, [("hsc-forced", "update")], dask=scheduler)
    assert any("on the Dask cluster" in s for s in said)
    assert _files(on_dask) == _files(local) != files
    for view in VIEWS:
        assert _rows(on_dask, view) == _rows(local, view), view
    group = Warehouse.open(on_dask).query(
        "SELECT object_id, kept FROM deduplicated WHERE specz_name = ? ORDER BY object_id",
        [STRADDLE],
    )
    assert group.column("kept").to_pylist() == [True, False]  # A kept across the border


def test_the_scheduler_comes_from_the_environment_or_warehouse_toml(
    tmp_path, inputs, scheduler, monkeypatch
):
    monkeypatch.delenv(ENV_VAR, raising=False)
    configured = Warehouse.init(
        tmp_path / "toml", Config(max_rows_per_partition=200, dask=scheduler)
    )
    said: list[str] = []
    configured.load(registry.get("hsc-specz"), [inputs["specz"]], echo=said.append)
    assert f"on the Dask cluster {scheduler} (2 worker thread(s))" in said
    monkeypatch.setenv(ENV_VAR, scheduler)
    said = _load(tmp_path / "env", inputs, STEPS[2:])
    assert f"on the Dask cluster {scheduler} (2 worker thread(s))" in said
    assert _files(tmp_path / "env") == _files(tmp_path / "toml")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _leftovers(root: Path) -> list[str]:
    return [
        str(p)
        for table in (root / "catalogs").iterdir()
        for p in table.iterdir()
        if p.name.startswith(".")
    ]


def test_a_failed_dask_load_leaves_the_previous_state(tmp_path, inputs):
    root = tmp_path / "wh"
    _load(root, inputs, STEPS[:2])
    before, rows = _files(root), _rows(root, "hsc_forced")
    address = f"tcp://127.0.0.1:{_free_port()}"  # no scheduler there
    with pytest.raises(ComputeError, match="cannot reach a Dask scheduler") as err:
        _load(root, inputs, STEPS[2:], dask=address)
    assert "\n" not in str(err.value)
    assert _files(root) == before and _rows(root, "hsc_forced") == rows
    assert Warehouse.open(root).current_version("hsc_specz") is None
    assert not _leftovers(root)
    _load(root, inputs, STEPS[2:])  # the rerun loads it
    assert Warehouse.open(root).current_version("hsc_specz") is not None


def _gwh(*args: str, **kwargs) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("GWH_ROOT", "GWH_DASK_SCHEDULER")}
    return subprocess.Popen(
        [sys.executable, str(CLI), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the cluster's processes with it
        **kwargs,
    )


def test_killed_dask_load_leaves_the_previous_state_and_a_rerun_completes(tmp_path, inputs):
    reference, root = tmp_path / "reference", tmp_path / "wh"
    _load(reference, inputs, STEPS)
    _load(root, inputs, STEPS[:2])
    before = _files(root)
    args = ["load", "hsc-specz", str(inputs["specz"]), "--root", str(root), "--dask", "local:2"]
    proc = _gwh(*args)
    table = root / "catalogs" / "hsc_specz"
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:  # until a worker writes
        if any(p.is_file() for d in table.glob(".tmp-*") for p in d.rglob("*.parquet")):
            break
        time.sleep(0.005)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=60)
    if proc.returncode == 0:  # it committed before the kill came: the state after it
        assert _files(root) == _files(reference)
    else:
        assert _files(root) == before  # nothing of the killed load is visible
        assert Warehouse.open(root).current_version("hsc_specz") is None
    rerun = _gwh(*args)
    out, err = rerun.communicate(timeout=180)
    assert rerun.returncode == 0, err
    assert "on the Dask cluster local:2" in out and "Traceback" not in err
    assert _files(root) == _files(reference)
    assert not _leftovers(root)


def test_the_load_verbs_take_dask_and_check_it_first(tmp_path, inputs):
    root = tmp_path / "wh"
    Warehouse.init(root, _config())
    shown = _gwh("load", "hsc-forced", "--help")
    out, _ = shown.communicate(timeout=60)
    assert "--dask" in out and "GWH_DASK_SCHEDULER" in out
    forced = str(inputs["forced"])
    bad = _gwh("load", "hsc-forced", forced, "--root", str(root), "--dask", "local:0")
    _, err = bad.communicate(timeout=60)
    assert bad.returncode == 1 and "local:N with N >= 1" in err and "Traceback" not in err
    assert Warehouse.open(root).current_version("hsc_forced") is None


def test_without_distributed_dask_says_how_to_install_it(tmp_path, inputs):
    root = tmp_path / "wh"
    Warehouse.init(root, _config())
    script = (
        "import sys; sys.modules['distributed'] = None\n"  # as if it were not installed
        f"sys.argv = ['gwh'] + sys.argv[1:]; sys.path.insert(0, {str(CLI.parent)!r})\n"
        "import cli; cli.app()"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, "load", "hsc-forced", str(inputs["forced"])]
        + ["--root", str(root), "--dask", "local:2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stderr
    assert "pip install -e '.[dask]'" in done.stderr and "Traceback" not in done.stderr
    assert Warehouse.open(root).current_version("hsc_forced") is None
