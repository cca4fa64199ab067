"""Choosing the scheduler, and the one-line errors of a bad or unreachable one."""

from __future__ import annotations

import os
import socket
import sys
import time

import distributed
import pytest

from warehouse.compute import ENV_VAR, cluster, dask_client, map_in_order, resolve_address
from warehouse.compute.cluster import check_address
from warehouse.compute.mapping import cluster_mapper
from warehouse.config import Config, parse_config
from warehouse.errors import ComputeError, ConfigError


def test_option_beats_environment_beats_config():
    env = {ENV_VAR: "tcp://env:8786"}
    assert resolve_address("local:3", "tcp://cfg:1", env) == "local:3"
    assert resolve_address(None, "tcp://cfg:1", env) == "tcp://env:8786"
    assert resolve_address(None, "tcp://cfg:1", {}) == "tcp://cfg:1"
    assert resolve_address("", None, {ENV_VAR: " "}) is None


def test_none_runs_here_whatever_is_configured():
    env = {ENV_VAR: "tcp://env:8786"}
    assert resolve_address("none", "tcp://cfg:1", env) is None
    assert resolve_address(" None ", None, env) is None
    assert resolve_address(None, "tcp://cfg:1", {ENV_VAR: "none"}) is None
    assert resolve_address(None, "none", {}) is None
    assert resolve_address("local:1", "none", {ENV_VAR: "none"}) == "local:1"


def test_dask_none_loads_here_while_the_environment_names_a_dead_scheduler(
    cli, make_warehouse, field_files
):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    wh = make_warehouse(max_rows_per_partition=400)
    env = {ENV_VAR: f"tcp://127.0.0.1:{port}"}
    forced = field_files["forced"]
    failed = cli("load", "hsc-forced", forced, "--root", wh.root, env=env)
    assert failed.exit_code == 1 and f"tcp://127.0.0.1:{port}" in failed.stderr
    assert "--dask none" in failed.stderr
    assert wh.current_version("hsc_forced") is None  # nothing committed
    done = cli("load", "hsc-forced", forced, "--root", wh.root, "--dask", "none", env=env)
    assert done.exit_code == 0, done.output
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() == 1200


def _imported() -> tuple[bool, bool]:
    return "warehouse.store.tasks" in sys.modules, "duckdb" in sys.modules


def test_workers_import_what_tasks_need_before_any_task():
    with dask_client("local:2") as client:
        for _ in range(600):  # at most a minute: two processes importing on a busy machine
            ready = client.run(_imported)
            if len(ready) == 2 and all(all(v) for v in ready.values()):
                break
            time.sleep(0.1)
        assert len(ready) == 2 and all(all(v) for v in ready.values()), ready


def test_compute_section_of_warehouse_toml():
    text = Config(dask="tcp://scheduler:8786").to_toml()
    assert parse_config(text).dask == "tcp://scheduler:8786"
    assert parse_config(Config().to_toml()).dask is None  # the default leaves it commented out
    with pytest.raises(ConfigError, match=r"\[compute\] dask"):
        parse_config('[compute]\ndask = ""\n')
    with pytest.raises(ConfigError, match="unknown key"):
        parse_config('[compute]\nscheduler = "x"\n')


@pytest.mark.parametrize("address", ["local:0", "local:two", "local"])
def test_bad_local_worker_count(address):
    with pytest.raises(ComputeError, match="local:N with N >= 1"), dask_client(address):
        pass
    # the address may come from $GWH_DASK_SCHEDULER or warehouse.toml: the message says so
    with pytest.raises(ComputeError, match=r"\(--dask, \$GWH_DASK_SCHEDULER or \[compute\] dask\)"):
        check_address(address)


def test_a_local_cluster_beyond_the_machine_is_refused_before_it_starts():
    # local:100000 (a typo for a scheduler port, say) started processes until killed
    many = f"local:{max(8, 4 * (os.cpu_count() or 1)) + 1}"
    with pytest.raises(ComputeError, match="worker processes on this machine's"):
        check_address(many)


@pytest.mark.parametrize("address", ["nonsense", "tcp://", "tcp://host", "tcp://h:port", "a b:1"])
def test_an_address_of_no_scheduler_is_refused_before_any_work(address):
    """Checked only when connecting: gwh morphology measure --dask nonsense, with nothing left
    to measure, ended with exit 0 and no word."""
    with pytest.raises(ComputeError, match="is no scheduler address: write tcp://host:port"):
        check_address(address)


@pytest.mark.parametrize(
    "address",
    ["tcp://127.0.0.1:8786", "scheduler:8786", "tls://h:1", "tcp://[::1]:8786", "ucx://h:1"],
)
def test_scheduler_addresses_pass_the_check(address):
    check_address(address)  # a malformed one raises; reaching it is the client's business


def test_unreachable_scheduler_is_one_line():
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ComputeError) as err, dask_client(f"tcp://127.0.0.1:{port}"):
        pass
    message = str(err.value)
    assert f"tcp://127.0.0.1:{port}" in message and "\n" not in message
    assert "--dask local:N" in message


def test_results_come_back_in_input_order_with_few_in_flight():
    with dask_client("local:2") as client:
        got = list(map_in_order(client, _slow_square, [5, 1, 4, 0, 3, 2], in_flight=2))
    assert got == [25, 1, 16, 0, 9, 4]


def test_a_worker_error_reaches_the_caller():
    with dask_client("local:1") as client, pytest.raises(ComputeError, match="bad item 3"):
        list(map_in_order(client, _fails_on_three, [1, 2, 3, 4]))


def _slow_square(x: int) -> int:
    time.sleep(0.05 * x)  # later items finish first when run two at a time
    return x * x


def _fails_on_three(x: int) -> int:
    if x == 3:
        raise ComputeError(f"bad item {x}")
    return x


def test_a_scheduler_address_is_used_as_given():
    with dask_client("local:1") as running:  # a scheduler to point at
        address = running.scheduler.address
        assert address.startswith("tcp://")
        with dask_client(address) as client:
            assert client.scheduler.address == address
            assert list(map_in_order(client, _slow_square, [3, 1])) == [9, 1]


def test_a_scheduler_without_workers_is_one_line_not_a_hang(monkeypatch):
    # gwh export --dask tcp://... of a scheduler whose workers were stopped waited forever
    monkeypatch.setattr(cluster, "WORKER_WAIT_S", 1.0)
    with distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=":0") as empty:
        address = empty.scheduler_address
        with pytest.raises(ComputeError, match="has no workers.*dask worker"):
            with dask_client(address):
                pass


def test_cluster_mapper_connects_only_when_it_runs_tasks():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    said: list[str] = []
    with cluster_mapper(address, said.append) as mapper:  # nothing to run: no connection
        assert mapper is not None and said == []
    with cluster_mapper(address) as mapper, pytest.raises(ComputeError, match="cannot reach"):
        assert mapper is not None
        list(mapper(_slow_square, [1]))
    with cluster_mapper("local:2", said.append) as mapper:
        assert mapper is not None
        assert list(mapper(_slow_square, [4, 0, 2])) == [16, 0, 4]
    assert said == ["on the Dask cluster local:2 (2 worker thread(s))"]


def test_a_worker_missing_a_file_names_the_shared_filesystem(tmp_path):
    gone = tmp_path / "not-on-the-workers.parquet"
    with dask_client("local:1") as client, pytest.raises(ComputeError) as err:
        list(map_in_order(client, _read, [str(gone)]))
    message = str(err.value)
    assert str(gone) in message and "shared filesystem" in message and "\n" not in message


def test_workers_dying_is_a_one_line_error():
    with dask_client("local:1") as client, pytest.raises(ComputeError) as err:
        list(map_in_order(client, _die, [1]))
    message = str(err.value)
    assert "the Dask cluster failed" in message and "KilledWorker" in message
    assert "\n" not in message


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _die(_x: int) -> None:
    os._exit(1)  # the worker process ends, as when the system kills it for memory
