"""A release records its named subsets and the splits' leakage report; release diff shows how
they changed; an export --subset of the release selects the recorded objects."""

from __future__ import annotations

import json

import h5py
import numpy as np

from tests.warehouse.cutouts.test_cutouts import ingest_coded
from tests.warehouse.splits.test_check import _two_in_different_splits, build
from warehouse.cutouts import ingest_arrays
from warehouse.export import ExportOptions, export_hdf5
from warehouse.export.subsets import SUBSETS, ids_sha256
from warehouse.release import create_release, diff, diff_lines, open_release


def test_manifest_leakage_and_subsets_and_their_diff(tmp_path, cli):
    probe = build(tmp_path / "probe", {})
    a, b = _two_in_different_splits(probe)
    north = (a["ra"], a["dec"] + 2.0 / 3600)
    wh = build(tmp_path / "w", {b["object_id"]: north})
    ingest_coded(
        wh, [r["object_id"] for r in wh.query("SELECT object_id FROM ml_objects").to_pylist()]
    )
    create_release(wh, "v1")
    m1 = open_release(wh.root, "v1").manifest
    leak = m1["leakage"]
    assert leak["neighbours"].get("train/test", 0) >= 1 and leak["radius_arcsec"] == 5.0
    assert leak["identical_pairs"] == {} and leak["unexpected"] is False
    assert set(m1["subsets"]) == set(SUBSETS)
    tiny = m1["subsets"]["tiny"]["splits"]["test"]
    n_test = wh.query("SELECT count(*) AS n FROM ml_objects WHERE split = 'test'")
    assert tiny["rows"] == n_test.column("n")[0].as_py()  # fewer than 1,000: all of them

    # an export of the release with the subset selects exactly the recorded objects
    frozen = open_release(wh.root, "v1")
    out = export_hdf5(
        frozen,
        tmp_path / "t.h5",
        split="test",
        options=ExportOptions(size=12, subset="tiny"),
        progress=False,
    )
    with h5py.File(out.path) as h5:
        assert ids_sha256(h5["object_id"][:].tolist()) == tiny["object_ids_sha256"]
        assert h5.attrs["release"] == "v1" and h5.attrs["subset"] == "tiny"

    same = {band: np.full((2, 12, 12), 7.0, np.float32) for band in "grizy"}
    ingest_arrays(wh, [a["object_id"], b["object_id"]], same, simulated=True, source="dup")
    create_release(wh, "v2")
    d = diff(wh.root, "v1", "v2")
    assert d["leakage"]["identical_pairs"] == {"from": {}, "to": {"train/test": 1}}
    assert d["subsets"]["tiny"]["test"]["same_objects"] is True
    text = "\n".join(diff_lines(d))
    assert "identical pixel arrays: none -> train/test 1" in text
    assert "neighbours in different splits: train/test" in text
    r = cli("release", "diff", "v1", "v2", "--root", str(wh.root))
    assert r.exit_code == 0 and "leakage (gwh splits check, radius 5.0 -> 5.0 arcsec)" in r.output
    shown = cli("release", "show", "v2", "--root", str(wh.root))
    assert shown.exit_code == 0
    manifest = json.loads(shown.output)  # show prints the manifest's leakage and subsets too
    assert manifest["leakage"]["identical_pairs"] == {"train/test": 1}
    assert manifest["subsets"]["tiny"]["splits"]["test"] == tiny
