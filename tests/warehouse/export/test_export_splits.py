"""The splits of one export read together (HF ``datasets``), carry provenance and units, and a
killed ``export --all-splits`` resumes to the same bytes."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse.cutouts import ingest_arrays
from warehouse.errors import ExportError
from warehouse.export import (
    ExportOptions,
    clean_stale_temporaries,
    export_all_splits,
    export_hdf5,
)
from warehouse.files import host_tag

REPO = Path(__file__).resolve().parents[3]
SPLITS = ("train", "validation", "test")
# NULLs only in train: an integer, a boolean and a text column
NULLS_IN_TRAIN = (
    "SELECT *, CASE WHEN split = 'train' AND object_id % 2 = 0 THEN NULL ELSE tract END "
    "AS tract_n, CASE WHEN split = 'train' AND object_id % 2 = 0 THEN NULL ELSE isprimary END "
    "AS primary_n, CASE WHEN split = 'train' AND object_id % 2 = 0 THEN NULL ELSE patch_s END "
    "AS patch_n FROM ml_objects"
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("export-splits"))
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


def test_three_splits_load_together_in_datasets_with_nulls_kept(populated, tmp_path):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / "ds"
    export_all_splits(populated, out, sql=NULLS_IN_TRAIN, options=ExportOptions(size=8))
    names = {}
    for s in SPLITS:
        with h5py.File(out / f"{s}.h5") as h5:
            names[s] = sorted(h5)
            assert h5["tract_n"].dtype == np.float64 and h5["primary_n"].dtype == np.float64
            assert h5["object_id"].dtype == np.int64  # never NULL: exact int64
            if s != "train":  # no NULL in this split, yet the same datasets
                assert not h5["tract_n_isnull"][:].any()
                assert not np.isnan(h5["tract_n"][:]).any()
    assert names["train"] == names["validation"] == names["test"]
    assert {"tract_n_isnull", "primary_n_isnull", "patch_n_isnull"} <= set(names["train"])

    ds = datasets.load_dataset(
        "hdf5",
        data_files={s: str(out / f"{s}.h5") for s in SPLITS},
        cache_dir=str(tmp_path / "hf"),
    )
    train = (
        ds["train"]
        .select_columns(["object_id", "tract", "tract_n", "primary_n", "patch_n", "tract_n_isnull"])
        .to_pandas()
    )
    null = train["object_id"] % 2 == 0
    assert null.any() and (~null).any()
    assert train.loc[null, "tract_n"].isna().all()  # NaN, never a number
    assert train.loc[null, "primary_n"].isna().all()
    assert train.loc[null, "tract_n_isnull"].all() and not train.loc[~null, "tract_n_isnull"].any()
    assert (train.loc[~null, "tract_n"] == train.loc[~null, "tract"]).all()
    assert (train.loc[null, "patch_n"] == "").all()  # text: "" plus patch_n_isnull
    for s in ("validation", "test"):
        other = ds[s].to_pandas()
        assert len(other) > 0 and not other["tract_n"].isna().any()
        assert (other["tract_n"] == other["tract"]).all()
    ids = set(ds["train"]["object_id"]) | set(ds["validation"]["object_id"])
    expected = populated.query("SELECT object_id FROM ml_objects WHERE split <> 'test'")
    assert ids == set(expected.column("object_id").to_pylist())  # exact 64-bit ids


def test_units_descriptions_and_provenance_attributes(populated, tmp_path):
    r = export_hdf5(populated, tmp_path / "t.h5", split="test", options=ExportOptions(size=8))
    with h5py.File(r.path) as h5:
        a = dict(h5.attrs)
        assert h5["g_cmodel_mag"].attrs["unit"] == "mag"
        assert "cmodel" in h5["g_cmodel_mag"].attrs["description"]
        assert h5["ra"].attrs["unit"] == "deg" and h5["g_cmodel_flux"].attrs["unit"] == "nJy"
        assert h5["object_id"].attrs["description"].startswith("Unique ID")
        assert h5["zeropoint"].attrs["unit"] == "mag" and "description" in h5["image"].attrs
    assert a["release"].startswith("none") and a["split_salt"] == populated.config.splits.salt
    assert json.loads(a["split_fractions"]) == {"train": 0.7, "validation": 0.15, "test": 0.15}
    assert a["split_mode"] == "object"
    cites = " ".join(a["citation"])
    assert "PASJ 70, S4" in cites and "PASJ 70, S8" in cites and "PASJ 71, 114" in cites
    assert "GalaxiesML" in cites
    assert "Hyper Suprime-Cam" in a["acknowledgement"]
    assert a["image_units"].endswith(
        "flux with AB zeropoint 27 (magnitude = 27 - 2.5 log10(pixel value)); never rescaled"
    )
    assert len(a["export_sha256"]) == 64


def test_image_units_say_when_pixels_are_not_calibrated(tmp_path):
    wh = build_warehouse(tmp_path / "base", n=40)
    ids = [r[0] for r in objects(wh)]
    shape = (8, 8)
    arrays = {b: np.ones((len(ids), *shape), np.float32) for b in "grizy"}
    ingest_arrays(wh, ids, arrays, zeropoint=None, simulated=True, source="no zeropoint")
    r = export_hdf5(
        wh, tmp_path / "a.h5", options=ExportOptions(size=8, variance=False, mask=False)
    )
    with h5py.File(r.path) as h5:
        units = h5.attrs["image_units"]
        assert np.isnan(h5["zeropoint"][:]).all()
    assert "NOT calibrated flux" in units and "zeropoint 27" not in units
    # half of them calibrated: the file says which are
    ingest_arrays(
        wh,
        ids[::2],
        {b: a[::2] for b, a in arrays.items()},
        zeropoint=27.0,
        simulated=True,
        source="zeropoint 27",
    )
    r = export_hdf5(
        wh, tmp_path / "b.h5", options=ExportOptions(size=8, variance=False, mask=False)
    )
    with h5py.File(r.path) as h5:
        units = h5.attrs["image_units"]
    assert "AB zeropoint 27" in units and "where it is NaN the pixels are NOT calibrated" in units


def test_release_name_is_recorded(tmp_path):
    from warehouse.release import create_release, open_release

    wh = build_warehouse(tmp_path / "base", n=40)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    create_release(wh, "v1")
    frozen = open_release(wh.root, "v1")
    r = export_hdf5(frozen, tmp_path / "r.h5", split="train", options=ExportOptions(size=8))
    with h5py.File(r.path) as h5:
        assert h5.attrs["release"] == "v1"


KILLED_EXPORT = """
import sys, time
from pathlib import Path
from warehouse.core import Warehouse
from warehouse import export as ex
from warehouse.export.writer import _Writer

real = _Writer.write_partition

def slow(self, k, rows, ids):
    if self.plan.params == ["validation"]:
        Path(sys.argv[3]).touch()  # mid-validation: train.h5 is finished, validation is not
        time.sleep(120)
    return real(self, k, rows, ids)

_Writer.write_partition = slow
ex.export_all_splits(Warehouse.open(sys.argv[1]), sys.argv[2],
                     options=ex.ExportOptions(size=8), progress=False)
"""


def test_killed_all_splits_export_resumes_to_the_same_bytes(populated, tmp_path, cli):
    out, marker = tmp_path / "ds", tmp_path / "marker"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(KILLED_EXPORT),
            str(populated.root),
            str(out),
            str(marker),
        ],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, "the export ended before it was killed"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    left = sorted(p.name for p in out.iterdir())
    assert "train.h5" in left and "validation.h5" not in left
    assert any(".gwh-tmp-" in n for n in left)  # the killed writer's partial folder
    train_before = sha256(out / "train.h5")

    result = cli(
        "export", "--all-splits", "--out-dir", out, "--size", "8", "--root", populated.root
    )
    assert result.exit_code == 0, result.output
    assert f"kept {out / 'train.h5'}" in result.output
    assert "wrote" in result.output and "Traceback" not in result.output
    assert sorted(p.name for p in out.iterdir()) == ["test.h5", "train.h5", "validation.h5"]
    assert sha256(out / "train.h5") == train_before

    clean = export_all_splits(populated, tmp_path / "clean", options=ExportOptions(size=8))
    for r in clean:
        assert sha256(r.path) == sha256(out / r.path.name), r.path.name

    # a file of another export (other options) is not "resumed": it needs --overwrite
    (out / "test.h5").unlink()
    with pytest.raises(ExportError, match="not written by this export.*Use --overwrite"):
        export_all_splits(populated, out, options=ExportOptions(size=16))
    assert not (out / "test.h5").exists()  # checked before anything was written
    result = cli(
        "export", "--all-splits", "--out-dir", out, "--size", "16", "--root", populated.root
    )
    assert result.exit_code == 1 and "Use --overwrite" in result.output
    export_all_splits(populated, out, options=ExportOptions(size=16, overwrite=True))
    with h5py.File(out / "train.h5") as h5:
        assert h5["image"].shape[-1] == 16


def test_stale_temporaries_of_dead_writers_only_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = host_tag()
    stale = tmp_path / f".train.h5.gwh-tmp-{host}-{dead.pid}-abc"
    live = tmp_path / f".test.h5.gwh-tmp-{host}-{os.getpid()}-def"
    other_host = tmp_path / f".x.h5.gwh-tmp-00000000-{dead.pid}-ghi"
    unrelated = tmp_path / ".train.h5.something"
    for p in (stale, live, other_host, unrelated):
        p.mkdir()
        (p / "train.h5").write_bytes(b"partial")
    assert clean_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and live.exists() and other_host.exists() and unrelated.exists()
