"""``gwh export --format hf --limit/--subset`` and ``gwh splits check`` from the command line."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import datasets  # noqa: E402
import h5py  # noqa: E402
import pytest  # noqa: E402

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects  # noqa: E402


@pytest.fixture(scope="module")
def wh(tmp_path_factory):
    wh = build_warehouse(tmp_path_factory.mktemp("cli-ml"), n=150)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    return wh


def test_export_hf_with_a_subset_and_limit(cli, wh, tmp_path):
    root = str(wh.root)
    out = tmp_path / "galaxies"
    r = cli(
        "export",
        "--root",
        root,
        "--all-splits",
        "--format",
        "hf",
        "--out-dir",
        out,
        "--size",
        "12",
        "--limit",
        "4",
    )
    assert r.exit_code == 0, r.output
    assert "HuggingFace datasets: train 4, validation 4, test 4" in r.output
    d = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "cache"))
    assert {s: len(d[s]) for s in d} == {"train": 4, "validation": 4, "test": 4}
    r = cli(
        "export",
        "--root",
        root,
        "--split",
        "train",
        "--out",
        tmp_path / "t.h5",
        "--size",
        "12",
        "--limit",
        "9",
    )
    assert r.exit_code == 0, r.output
    with h5py.File(tmp_path / "t.h5") as h5:
        nine = set(h5["object_id"][:].tolist())
    assert set(d["train"]["object_id"]) < nine  # nested


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--format", "hf", "--out", "x.h5"], "--format hf takes --out-dir DIR"),
        (["--format", "zarr", "--out", "x.h5"], "--format must be one of hdf5, hf"),
        (["--subset", "huge", "--out", "x.h5"], "--subset must be one of tiny (1,000)"),
    ],
)
def test_export_bad_options_are_one_line(cli, wh, args, message):
    r = cli("export", "--root", str(wh.root), *args)
    assert r.exit_code != 0 and message in r.output
    assert "Traceback" not in r.output
