"""A write that HDF5 itself fails partway through (a disk filling during the export; here the
process's file-size limit, ``ulimit -f``, which fails the same writes with EFBIG): `gwh export`
prints one line naming the --out file, exits 1, leaves nothing behind, and the interpreter
exits cleanly (HDF5 used to retry the failed writes when the abandoned file was closed and
crash when h5py released its objects). Covered: compressed images (HDF5 writes their
chunks) and catalog datasets written after the image chunks of an uncompressed export.
Every image is SIMULATED seeded noise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse
from tests.warehouse.export.test_blocks import ingest_noise, sha256
from warehouse.core import Warehouse

ROOT = Path(__file__).resolve().parents[3]

LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
limit = int(sys.argv.pop(1))
resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
sys.argv = ["gwh", *sys.argv[1:]]
import cli
cli.main()
"""


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> Warehouse:
    """300 SIMULATED objects, every one with five 8 x 8 bands (image, variance, mask)."""
    wh = build_warehouse(tmp_path_factory.mktemp("h5file"), n=300, cutout_rows=150)
    ids = wh.query("SELECT object_id FROM hsc_forced").column("object_id").to_pylist()
    ingest_noise(wh, ids)
    return wh


def limited(wh: Warehouse, limit: int, out: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GWH_PROGRESS": "0"}
    env.pop("GWH_ROOT", None)
    command = [sys.executable, "-c", LIMITED, str(limit), "export", "--root", str(wh.root)]
    return subprocess.run(
        [*command, "--sql", "SELECT * FROM ml_objects", *args, "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_line_and_nothing_left(proc: subprocess.CompletedProcess, out: Path) -> None:
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1, (proc.returncode, proc.stdout + proc.stderr)  # not -11
    assert lines == [
        f"error: {out}: writing the file failed (File too large); free disk space or choose "
        "another --out, then export again."
    ], lines
    assert list(out.parent.iterdir()) == []  # no file, no temporary folder


@pytest.mark.parametrize("compression", ["lzf", "gzip"])
def test_compressed_chunks_failing_partway_are_one_line_and_a_clean_exit(wh, tmp_path, compression):
    out = tmp_path / "out" / "x.h5"
    out.parent.mkdir()
    # ~1 MB of images at most: HDF5 fails a chunk's write (and its retries at the close)
    proc = limited(wh, 100_000, out, "--size", "8", "--compression", compression)
    assert_one_line_and_nothing_left(proc, out)


def test_catalog_writes_failing_after_the_image_chunks_are_one_line(wh, cli, tmp_path):
    """The image chunks (allocated at creation, written by offset) fit under the limit; the
    catalog datasets HDF5 places after them do not."""
    reference = tmp_path / "ref.h5"
    args = ("--sql", "SELECT * FROM ml_objects", "--size", "8")
    result = cli("export", "--root", wh.root, *args, "--out", reference)
    assert result.exit_code == 0, result.output
    with h5py.File(reference) as h5:
        ends = []
        for plane in ("image", "variance", "mask"):
            dset = h5[plane]
            infos = [dset.id.get_chunk_info(i) for i in range(dset.id.get_num_chunks())]
            ends.append(max(i.byte_offset + i.size for i in infos))
    out = tmp_path / "out" / "x.h5"
    out.parent.mkdir()
    proc = limited(wh, max(ends) + 256, out, "--size", "8")
    assert_one_line_and_nothing_left(proc, out)
    result = cli("export", "--root", wh.root, *args, "--out", out)  # no limit: the same file
    assert result.exit_code == 0, result.output
    assert sha256(out) == sha256(reference)


def test_an_hf_shard_failing_partway_is_one_line_naming_it_and_nothing_is_left(wh, tmp_path):
    """The hf shards are assembled from row groups encoded in threads; a write failing there
    (the limit, as a full disk) is one line naming the shard, and the folder is not made."""
    out = tmp_path / "out" / "hf"
    out.parent.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GWH_PROGRESS": "0"}
    env.pop("GWH_ROOT", None)
    command = [sys.executable, "-c", LIMITED, "100000", "export", "--root", str(wh.root)]
    proc = subprocess.run(
        [*command, "--format", "hf", "--size", "8", "--out-dir", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, (proc.returncode, lines)
    assert lines[0].startswith(f"error: writing {out.parent}/.hf.gwh-tmp-"), lines
    assert "-00000-of-00001.parquet failed: File too large." in lines[0], lines
    assert list(out.parent.iterdir()) == []
