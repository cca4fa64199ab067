"""kill -9 of ``gwh morphology measure`` ends its worker pool too (forkserver and workers), and
a rerun completes the measurement (issue 13 §6).

The command runs as a real subprocess on a warehouse of simulated cutouts; its descendants are
read from /proc while it works, so the test runs on Linux only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from warehouse.cutouts import ingest_arrays

pytestmark = pytest.mark.skipif(
    not Path("/proc/self/stat").exists(), reason="reads process trees from /proc (Linux)"
)

CLI = Path(__file__).resolve().parents[1] / "cli.py"
N_OBJECTS = 150


def parents() -> dict[int, int]:
    """pid -> parent pid of every process, from /proc."""
    out = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as fh:
                fields = fh.read().rsplit(b")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if fields[0] not in (b"Z", b"X"):  # zombies have ended; only their parent must reap
            out[int(entry.name)] = int(fields[1])
    return out


def descendants(pid: int) -> set[int]:
    tree = parents()
    found, todo = set(), [pid]
    while todo:
        p = todo.pop()
        for child, parent in tree.items():
            if parent == p and child not in found:
                found.add(child)
                todo.append(child)
    return found


def measure(root: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(CLI), "morphology", "measure", "--workers", "2", "--chunk", "25"],
        env={**os.environ, "GWH_ROOT": str(root)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture
def imaged(loaded):
    """The simulated field with 64x64 simulated cutouts of N_OBJECTS objects in 5 bands."""
    ids = loaded.query(
        "SELECT object_id FROM hsc_forced ORDER BY object_id LIMIT ?", [N_OBJECTS]
    ).column(0)
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:64, :64]
    blob = np.exp(-((xx - 32) ** 2 + (yy - 32) ** 2) / 20.0).astype(np.float32)
    images = {
        b: (blob * 5 + rng.normal(0, 0.1, (N_OBJECTS, 64, 64))).astype(np.float32) for b in "grizy"
    }
    ingest_arrays(loaded, ids.to_pylist(), images, simulated=True, source="test")
    return loaded


def test_kill_9_of_measure_ends_its_workers_and_a_rerun_completes(imaged):
    proc = measure(imaged.root)
    seen: set[int] = set()
    deadline = time.monotonic() + 60
    try:
        # wait until the workers run: the forkserver's children (grandchildren of the command)
        while time.monotonic() < deadline and proc.poll() is None:
            family = descendants(proc.pid)
            seen |= family
            workers = [p for p in family if parents().get(p) not in (proc.pid, None)]
            if len(workers) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"finished before its workers were seen: {proc.stderr.read()}"
        assert len(seen) >= 3, seen  # forkserver (and resource tracker) + 2 workers
        time.sleep(0.3)  # let the workers take tasks
        seen |= descendants(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    survivors = set(seen)
    until = time.monotonic() + 5
    while survivors and time.monotonic() < until:
        survivors &= set(parents())
        time.sleep(0.1)
    for pid in survivors:  # do not leave them behind for the rest of the suite
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"processes of the killed command still running: {sorted(survivors)}"

    rerun = measure(imaged.root)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "Traceback" not in err
    n = imaged.query("SELECT count(*) FROM morphology WHERE morphology_source IS NOT NULL")
    assert n.column(0)[0].as_py() == N_OBJECTS
    assert f"of {N_OBJECTS:,} object(s) with cutouts" in out
