"""kill -9 at random points of load, cutouts ingest, export and release create (issue 13).

Each command runs as a real ``gwh`` subprocess on a copy of one small warehouse and is killed
with SIGKILL after a seeded random delay inside its measured run time. Then:

* the warehouse is as before or as after the command, never in between: every table's row
  count equals its count before or after (all of them together: one commit), ``gwh check``
  passes, every release verifies, no release exists that the command did not finish;
* a rerun of the same command completes and leaves exactly the state of an uninterrupted run
  (the same row counts; an export's files byte-identical), with no leftovers.

Two delays per command, one in each half of the span from 0.3 to 1.0 of its run time, keep the
module near a minute on two idle cores.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.hsc_ssp.cutouts import request_cutouts
from loaders.simulated.catalog import simulate_field
from tests.warehouse.cutouts.test_cutouts import make_batch_tar
from warehouse.config import Config
from warehouse.core import Warehouse
from warehouse.cutouts import ingest_arrays
from warehouse.release import create_release, verify_target
from warehouse.store.contracts import base_tables

CLI = Path(__file__).resolve().parents[1] / "cli.py"
WITH_IMAGES = "SELECT * FROM ml_objects WHERE object_id IN (SELECT object_id FROM cutouts)"
COMMANDS = ("load", "ingest", "export", "release")
DELAYS = 2  # per command, in successive slices of its run time (seeded within each slice)
pytestmark = pytest.mark.slow


@dataclass
class Case:
    root: Path  # the warehouse
    inputs: Path  # files the commands read (shared, never written)
    out: Path  # export output folder
    tmp: Path  # TMPDIR of the command


def args(command: str, case: Case) -> list[str]:
    return {
        "load": ["load", "hsc-forced", str(case.inputs / "simulated_extra_forced.parquet")],
        "ingest": ["cutouts", "ingest", *sorted(map(str, (case.inputs / "tars").glob("*.tar")))],
        "export": ["export", "--all-splits", "--out-dir", str(case.out), "--sql", WITH_IMAGES]
        + ["--no-mask", "--no-variance"],
        "release": ["release", "create", "r1"],
    }[command] + ["--root", str(case.root)]


def start(command: str, case: Case) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(case.tmp)}
    env.pop("GWH_ROOT", None)
    return subprocess.Popen(
        [sys.executable, str(CLI), *args(command, case)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(command: str, case: Case) -> tuple[int, str, float]:
    t0 = time.perf_counter()
    with start(command, case) as proc:
        _, err = proc.communicate(timeout=120)
    return proc.returncode, err, time.perf_counter() - t0


def state(root: Path, check: bool = True) -> dict:
    """Row count of every loaded table, the releases with their problems, and (``check``) the
    failing contract assertions of ``gwh check``."""
    wh = Warehouse.open(root)
    counts = {}
    for name in base_tables():
        if wh.current_version(name) is not None:
            counts[name] = wh.query(f'SELECT count(*) AS n FROM "{name}"').column(0)[0].as_py()
    releases = {}
    rdir = root / "releases"
    for entry in sorted(rdir.iterdir()) if rdir.exists() else []:
        if not entry.name.startswith("."):
            releases[entry.name] = [p.problem for p in verify_target(root, entry.name)[1]]
    out = {"counts": counts, "releases": releases}
    if check:
        out["check_failures"] = [(name, n, error) for name, n, error in wh.check() if n > 0]
    return out


def digests(folder: Path) -> dict[str, str]:
    if not folder.exists():
        return {}
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def leftovers(case: Case) -> list[str]:
    """Temporary files and folders a finished run must not leave."""
    found = [str(p) for p in case.tmp.iterdir()]  # the system temporary folder
    scratch = case.root / "cache" / "tmp"  # the warehouse's own (cutout ingests)
    found += [str(p) for p in scratch.iterdir()] if scratch.exists() else []
    for folder in (case.root / "releases", case.out, *(case.root / "catalogs").iterdir()):
        if folder.is_dir():
            found += [str(p) for p in folder.iterdir() if p.name.startswith(".")]
    return found


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Path:
    """A SIMULATED warehouse (forced, forced2, specz), cutouts of 40 ml_objects and release r0;
    beside it the inputs of the load and ingest commands."""
    where = tmp_path_factory.mktemp("kill9")
    inputs = where / "inputs"
    inputs.mkdir()
    field = simulate_field(300, seed=5)
    for name, table in (("forced", field.forced), ("forced2", field.forced2)):
        pq.write_table(table, inputs / f"simulated_{name}.parquet")
    pq.write_table(field.specz, inputs / "simulated_specz.parquet")
    extra = simulate_field(300, seed=6).forced  # new objects: ids beyond the field's
    shifted = pa.array(np.asarray(extra.column("object_id")) + 10**12, pa.int64())
    extra = extra.set_column(extra.schema.get_field_index("object_id"), "object_id", shifted)
    pq.write_table(extra, inputs / "simulated_extra_forced.parquet")

    wh = Warehouse.init(where / "wh", Config(max_rows_per_partition=80))
    wh.load(
        registry.get("hsc-forced"),
        [inputs / "simulated_forced.parquet", inputs / "simulated_forced2.parquet"],
    )
    wh.load(registry.get("hsc-specz"), [inputs / "simulated_specz.parquet"])
    rows = wh.query("SELECT object_id, ra, dec FROM ml_objects ORDER BY object_id").to_pylist()
    imaged = [r["object_id"] for r in rows[:40]]
    rng = np.random.default_rng(2)
    images = {b: rng.normal(1.0, 0.1, (len(imaged), 32, 32)).astype(np.float32) for b in "grizy"}
    ingest_arrays(wh, imaged, images, simulated=True, source="kill9 test")
    create_release(wh, "r0")
    # DAS batch tars (g and r) of 30 more objects, each with its list mapping beside it: the
    # ingest extracts them into a temporary folder that a kill must not leave behind
    wanted = {r["object_id"] for r in rows[40:70]}
    for listed in request_cutouts(wh, inputs / "tars", bands="gr"):
        mapping = json.loads(listed.with_suffix(".json").read_text())
        rows_wanted = {e["row"] for e in mapping["rows"] if e["object_id"] in wanted}
        make_batch_tar([listed], rows_wanted)
    return where


def new_case(base: Path, where: Path) -> Case:
    where.mkdir(parents=True)
    shutil.copytree(base / "wh", where / "wh", symlinks=True)
    (where / "tmp").mkdir()
    return Case(where / "wh", base / "inputs", where / "out", where / "tmp")


@pytest.fixture(scope="module")
def reference(base, tmp_path_factory) -> dict:
    """Per command: the state before and after an uninterrupted run, its run time, and the
    export's file digests."""
    out = {}
    for command in COMMANDS:
        case = new_case(base, tmp_path_factory.mktemp(f"ref-{command}") / "case")
        before = state(case.root, check=False)
        code, err, seconds = run(command, case)
        assert code == 0, err
        out[command] = {
            "before": before,
            "after": state(case.root, check=False),
            "seconds": seconds,
            "files": digests(case.out),
        }
    return out


@pytest.mark.parametrize(
    ("sig", "k"),
    [*((signal.SIGKILL, k) for k in range(DELAYS)), (signal.SIGTERM, DELAYS - 1)],
    ids=[*(f"kill9-{k}" for k in range(DELAYS)), f"term-{DELAYS - 1}"],
)
@pytest.mark.parametrize("command", COMMANDS)
def test_kill_9_leaves_before_or_after_and_a_rerun_completes(
    command, sig, k, base, reference, tmp_path
):
    """SIGKILL, and SIGTERM (a batch system's time limit), which also cleans up on the way out."""
    ref = reference[command]
    assert ref["before"] != ref["after"] or command == "export"
    case = new_case(base, tmp_path / "case")
    lo = 0.3 + 0.7 * k / DELAYS
    delay = random.Random(f"{command}:{k}").uniform(lo, lo + 0.7 / DELAYS) * ref["seconds"]
    with start(command, case) as proc:
        time.sleep(delay)
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
        finished = proc.returncode == 0
    if sig == signal.SIGTERM:
        # -15: the signal came while Python was still importing gwh, before its handler
        assert proc.returncode in (0, 128 + signal.SIGTERM, -signal.SIGTERM), stderr
        assert "Traceback" not in stderr, stderr
        assert not leftovers(case), f"terminated after {delay:.2f} s: {leftovers(case)}"

    now = state(case.root)
    assert not now.pop("check_failures"), f"gwh check fails after a kill at {delay:.2f} s"
    assert now in (ref["before"], ref["after"]), f"killed after {delay:.2f} s: {now}"
    assert all(not problems for problems in now["releases"].values()), now["releases"]

    code, err, _ = run(command, case)
    if command == "release" and now == ref["after"]:
        # the kill came after the commit: the release exists, is immutable and verifies
        assert code == 1 and "already exists" in err, err
    else:
        assert code == 0, f"rerun after a kill at {delay:.2f} s (finished: {finished}): {err}"
    assert "Traceback" not in err
    assert state(case.root, check=False) == ref["after"]
    assert digests(case.out) == ref["files"]
    assert not leftovers(case), leftovers(case)
