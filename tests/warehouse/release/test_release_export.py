"""Exports from a release rebuild the same bytes, in fresh processes, whatever came later."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import (
    build_warehouse,
    copy_warehouse,
    ingest_coded,
    objects,
)
from warehouse.core import Warehouse
from warehouse.export import export_hdf5
from warehouse.release import create_release, pack, verify

REPO = Path(__file__).resolve().parents[3]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    """A warehouse with cutouts for every ml_objects row, frozen as release v1."""
    wh = build_warehouse(tmp_path_factory.mktemp("release-export"))
    ingest_coded(wh, [r[0] for r in objects(wh)])
    create_release(wh, "v1")
    return wh


def _export_in_fresh_process(root: Path, out: Path, *extra: str) -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(REPO / "cli.py"),
            "export",
            "--root",
            str(root),
            "--release",
            "v1",
            "--split",
            "test",
            "--out",
            str(out),
            *extra,
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def test_two_processes_write_identical_bytes(released, tmp_path):
    a, b = tmp_path / "a.h5", tmp_path / "b.h5"
    _export_in_fresh_process(released.root, a)
    _export_in_fresh_process(released.root, b)
    assert sha256(a) == sha256(b)
    live = export_hdf5(released, tmp_path / "live.h5", split="test", progress=False)
    # the release is the warehouse as it was: the same datasets and attributes, except the
    # attributes that name where it came from
    with h5py.File(a) as h5, h5py.File(live.path) as h5_live:
        assert h5.attrs["split"] == "test" and h5["image"].shape[0] > 0
        assert h5.attrs["release"] == "v1" and h5_live.attrs["release"].startswith("none")
        assert sorted(h5) == sorted(h5_live)
        for name in h5:
            assert np.array_equal(
                h5[name][:], h5_live[name][:], equal_nan=h5[name].dtype.kind == "f"
            ), name
            assert dict(h5[name].attrs) == dict(h5_live[name].attrs), name
        differ = {k for k in h5.attrs if not np.array_equal(h5.attrs[k], h5_live.attrs[k])}
        assert differ == {"release", "export_sha256"}


def test_release_export_ignores_later_changes(released, tmp_path):
    before = tmp_path / "before.h5"
    _export_in_fresh_process(released.root, before)
    wh = copy_warehouse(released, tmp_path / "moved")
    text = (wh.root / "warehouse.toml").read_text().replace('salt = "gwh-v1"', 'salt = "later"')
    (wh.root / "warehouse.toml").write_text(text)
    moved = Warehouse.open(wh.root)
    live = export_hdf5(moved, tmp_path / "live.h5", split="test", progress=False)
    assert sha256(live.path) != sha256(before)  # the live splits changed with the salt
    after = tmp_path / "after.h5"
    _export_in_fresh_process(moved.root, after)
    assert sha256(after) == sha256(before)


def test_pack_holds_verified_hdf5_splits(released, tmp_path):
    dest = pack(released.root, "v1", tmp_path / "pack")
    files = json.loads((dest / "pack.json").read_text())["files"]
    splits = sorted(f["path"] for f in files if f["path"].endswith(".h5"))
    assert splits == ["splits/test.h5", "splits/train.h5", "splits/validation.h5"]
    assert verify(dest, dest) == []
    # a pack's split is exactly what `gwh export --release` writes with --allow-missing-bands
    release_test = tmp_path / "release_test.h5"
    _export_in_fresh_process(released.root, release_test, "--allow-missing-bands")
    assert sha256(dest / "splits" / "test.h5") == sha256(release_test)
    with open(dest / "splits" / "train.h5", "r+b") as fh:
        fh.seek(4096)
        byte = fh.read(1)
        fh.seek(4096)
        fh.write(bytes([byte[0] ^ 0xFF]))
    problems = verify(dest, dest)
    assert [p.problem for p in problems] == ["changed (packed file): SHA-256 differs"]
    assert problems[0].path.endswith("splits/train.h5")
