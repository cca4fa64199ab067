"""Releases: immutable, verifiable, diffable, queryable as they were, packable."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from loaders import registry
from warehouse import db
from warehouse.errors import ReleaseError
from warehouse.release import (
    create_release,
    diff,
    list_releases,
    open_pack,
    open_release,
    pack,
    verify,
    verify_target,
)
from warehouse.store.versions import read_version


@pytest.fixture
def two_step(make_warehouse, tmp_path, field):
    """A warehouse loaded with the first 800 objects; the rest ready to load later."""
    wh = make_warehouse(max_rows_per_partition=150)
    for name, table in (
        ("a", field.forced.slice(0, 800)),
        ("b", field.forced.slice(800)),
        ("f2a", field.forced2.slice(0, 800)),
        ("f2", field.forced2.slice(800)),
        ("s", field.specz),
    ):
        pq.write_table(table, tmp_path / f"{name}.parquet")
    wh.load(registry.get("hsc-forced"), [tmp_path / "a.parquet", tmp_path / "f2a.parquet"])
    wh.load(registry.get("hsc-specz"), [tmp_path / "s.parquet"])
    return wh, tmp_path


def _ml(w):
    return {
        r["object_id"]: r["split"]
        for r in w.query("SELECT object_id, split FROM ml_objects").to_pylist()
    }


def test_create_manifest(loaded):
    path = create_release(loaded, "v1", notes="paper draft")
    m = json.loads((path / "manifest.json").read_text())
    assert m["name"] == "v1" and m["notes"] == "paper draft"
    assert m["created_utc"].endswith("Z") and m["gwh_version"]
    assert m["python"] and "duckdb" in m["libraries"]
    assert set(m["tables"]) == {"hsc_forced", "hsc_specz"}
    files = m["tables"]["hsc_forced"]["files"]
    assert any(f["path"].endswith(".parquet") for f in files)
    assert all(len(f["sha256"]) == 64 for f in files)
    assert {"collection.properties", "hsc_forced/hats.properties"} <= {f["path"] for f in files}
    assert any(f["path"].startswith("hsc_forced_10arcs/dataset/") for f in files)  # its margin
    paths = [mm["path"] for mm in m["sql"]["models"]]
    assert "marts/ml_objects.sql" in paths and "macros/split_unit.sql" in paths
    assert all(mm["text"] for mm in m["sql"]["models"])
    assert len(m["inputs"]) == 3 and all(len(i["sha256"]) == 64 for i in m["inputs"])
    assert m["counts"]["views"]["ml_objects"] == sum(m["counts"]["splits"].values()) > 0
    assert set(m["counts"]["splits"]) == {"train", "validation", "test"}
    assert m["config"]["splits"]["salt"] == "gwh-v1"
    cites = " ".join(m["citations"])
    assert "Aihara" in cites and "SDSS DR14" in cites and "GalaxiesML" in cites
    assert "VVDS" not in cites  # no simulated entry comes from VVDS
    assert m["acknowledgements"] and "Hyper Suprime-Cam" in m["acknowledgements"][0]


def test_names_are_immutable_and_validated(loaded):
    create_release(loaded, "v1")
    with pytest.raises(ReleaseError, match="already exists.*immutable"):
        create_release(loaded, "v1")
    with pytest.raises(ReleaseError, match="not a release name"):
        create_release(loaded, "../evil")
    for bad in ("v2\n", "a" * 65, "-v2"):  # a trailing newline used to pass the pattern
        with pytest.raises(ReleaseError, match="not a release name: use 1 to 64 letters"):
            create_release(loaded, bad)
    assert sorted(p.name for p in (loaded.root / "releases").iterdir()) == ["v1"]
    with pytest.raises(ReleaseError, match="no release 'v9'.*releases: v1"):
        open_release(loaded.root, "v9")


def test_later_loads_never_change_a_release(two_step):
    wh, d = two_step
    create_release(wh, "v1")
    frozen_before = open_release(wh.root, "v1")
    counts_before = frozen_before.query("SELECT count(*) AS n FROM hsc_forced").to_pylist()
    ml_before = _ml(frozen_before)
    wh.load(registry.get("hsc-forced"), [d / "b.parquet", d / "f2.parquet"])
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").to_pylist() == [{"n": 1200}]
    frozen = open_release(wh.root, "v1")
    assert frozen.query("SELECT count(*) AS n FROM hsc_forced").to_pylist() == counts_before
    assert _ml(frozen) == ml_before
    assert verify(wh.root, frozen.release_dir) == []
    # the live warehouse moved on; the frozen version is still on disk, protected
    assert (wh.root / frozen.manifest["tables"]["hsc_forced"]["path"]).exists()


def test_unchanged_partitions_are_shared(two_step):
    wh, d = two_step
    create_release(wh, "v1")
    wh.load(registry.get("hsc-specz"), [d / "s.parquet"])  # already loaded: nothing changes
    extra = pq.read_table(d / "b.parquet").slice(0, 3)
    pq.write_table(extra, d / "three.parquet")
    wh.load(registry.get("hsc-forced"), [d / "three.parquet"])
    create_release(wh, "v2")
    m1 = open_release(wh.root, "v1").manifest["tables"]
    m2 = open_release(wh.root, "v2").manifest["tables"]
    assert m1["hsc_specz"]["path"] == m2["hsc_specz"]["path"]  # same version, no copy
    v1 = wh.root / m1["hsc_forced"]["path"]
    v2 = wh.root / m2["hsc_forced"]["path"]
    inodes1 = {
        f["path"]: (v1 / f["path"]).stat().st_ino
        for f in m1["hsc_forced"]["files"]
        if f["path"].startswith("hsc_forced/dataset/") and "Npix" in f["path"]
    }
    shared = [
        p for p, ino in inodes1.items() if (v2 / p).exists() and (v2 / p).stat().st_ino == ino
    ]
    assert len(shared) >= len(inodes1) - 3 and shared
    # the three rows were loaded before with the same values: every margin file is shared too
    margin = [f["path"] for f in m1["hsc_forced"]["files"] if "_10arcs/dataset/Norder" in f["path"]]
    assert margin and all((v2 / p).stat().st_ino == (v1 / p).stat().st_ino for p in margin)


def test_verify_names_each_tampered_file(loaded, cli):
    path = create_release(loaded, "v1")
    m = json.loads((path / "manifest.json").read_text())
    base = loaded.root / m["tables"]["hsc_forced"]["path"]
    parts = [f["path"] for f in m["tables"]["hsc_forced"]["files"] if "Npix" in f["path"]]
    # files are hard links shared with the live warehouse: tamper through a copy, like an editor
    target = base / parts[0]
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0xFF
    target.unlink()
    target.write_bytes(bytes(data))
    (base / parts[1]).unlink()
    (base / "stray.txt").write_text("x")
    problems = verify(loaded.root, path)
    found = {p.path: p.problem for p in problems}
    assert "SHA-256 differs" in found[str(target)]
    assert "missing" in found[str(base / parts[1])]
    assert "not part of the release" in found[str(base / "stray.txt")]
    result = cli("release", "verify", "v1", "--root", loaded.root)
    assert result.exit_code == 1
    assert str(target) in result.stderr and "does not verify (3 problem(s))" in result.stderr


def test_release_list_names_a_damaged_manifest_and_lists_the_others(loaded, cli):
    create_release(loaded, "v1")
    path = create_release(loaded, "v2")
    (path / "manifest.json").write_text('{"name": "v2"')  # cut: was a JSONDecodeError traceback
    result = cli("release", "list", "--root", loaded.root)
    assert result.exit_code == 0 and result.exception is None
    lines = result.output.splitlines()
    assert any(line.startswith("v1 ") for line in lines)
    assert any(line.startswith("v2 ") and "damaged" in line for line in lines)


@pytest.mark.parametrize("text", ['{"name": "v1"', "[]", "{}", '{"name": "v1", "tables": 1}'])
def test_a_damaged_manifest_is_one_line_and_stops_no_writer(loaded, cli, field, tmp_path, text):
    """A cut manifest stopped every writer (load, release create: the version clean-up read it)
    with a JSONDecodeError traceback; [] and {} gave AttributeError, TypeError or KeyError
    tracebacks from refresh, release verify and sql --release."""
    path = create_release(loaded, "v1")
    held = (loaded.root / "catalogs" / "hsc_specz" / "current").resolve()
    (path / "manifest.json").write_text(text)
    for args in (["release", "verify", "v1"], ["sql", "--release", "v1", "select 1"]):
        result = cli(*args, "--root", loaded.root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert "the release is damaged" in result.stderr and "manifest.json" in result.stderr
    more = tmp_path / "more_specz.parquet"
    pq.write_table(field.specz.slice(0, 5), more)  # rows the table holds: a new version
    assert cli("load", "hsc-specz", more, "--root", loaded.root).exit_code == 0
    assert cli("refresh", "--root", loaded.root).exit_code == 0
    assert cli("release", "create", "v2", "--root", loaded.root).exit_code == 0
    # what the damaged release holds is unknown: no version is removed
    assert held.is_dir() and held != (loaded.root / "catalogs" / "hsc_specz" / "current").resolve()


def test_create_refuses_a_margin_file_cut_short_in_one_line(loaded, cli):
    cv = read_version((loaded.root / "catalogs" / "hsc_forced" / "current").resolve())
    margin = cv.margin_files()[0]
    margin.write_bytes(margin.read_bytes()[:-8])  # no footer: was frozen (hashed) as it was
    result = cli("release", "create", "v1", "--root", loaded.root)
    assert result.exit_code == 1 and result.exception is not None
    assert result.stderr.count("\n") == 1 and "no Parquet footer" in result.stderr
    assert str(margin) in result.stderr
    assert not (loaded.root / "releases" / "v1").exists()


def test_a_release_missing_a_partition_file_is_refused_not_answered_short(loaded, cli):
    """Live reads refuse a version with a partition file deleted outside gwh; a release read
    answered without its rows (4,937 of 5,002 objects) and exit 0."""
    create_release(loaded, "v1")
    cv = read_version(
        loaded.root / open_release(loaded.root, "v1").manifest["tables"]["hsc_forced"]["path"]
    )
    gone = cv.files()[0]
    gone.rename(gone.with_suffix(".moved"))
    for args in (
        ["sql", "--release", "v1", "select count(*) from hsc_forced"],
        ["splits", "check", "--release", "v1"],
    ):
        r = cli(*args, "--root", loaded.root)
        assert r.exit_code == 1 and r.stdout == "", r.output
        assert (
            f"{gone} is missing (1 of the {len(cv.partitions)} partition files of table hsc_forced)"
            in r.stderr
            and len(r.stderr.splitlines()) == 1
        ), r.stderr


def test_manifest_tampering_is_detected(loaded):
    path = create_release(loaded, "v1")
    text = (path / "manifest.json").read_text().replace('"gwh-v1"', '"gwh-v2"', 1)
    (path / "manifest.json").write_text(text)
    problems = verify(loaded.root, path)
    assert any("changed since the release was made" in p.problem for p in problems)


def test_pack_verifies_and_queries_without_the_warehouse(loaded, tmp_path, cli):
    create_release(loaded, "v1")
    before = _ml(open_release(loaded.root, "v1"))
    dest = pack(loaded.root, "v1", tmp_path / "pack")
    shutil.rmtree(loaded.root)  # the original is gone
    assert verify(dest, dest) == []
    assert verify_target(None, str(dest))[1] == []
    assert _ml(open_pack(dest)) == before
    assert (dest / "README.txt").exists() and (dest / "sql" / "marts" / "ml_objects.sql").exists()
    ok = cli("release", "verify", dest)
    assert ok.exit_code == 0 and "verifies" in ok.output
    q = cli("sql", "--release", dest, "select count(*) as n from ml_objects", "--format", "csv")
    assert q.exit_code == 0 and q.output.splitlines()[1] == str(len(before))
    # given as --root (or to gwh init) it is named for what it is, with the command that reads it
    for args in (("sql", "select 1", "--root", dest), ("init", dest)):
        wrong = cli(*args)
        assert wrong.exit_code == 1 and "is a packed release" in wrong.stderr, wrong.stderr
        assert "--release" in wrong.stderr and "gwh init" not in wrong.stderr
    # lsdb opens a packed table on its own
    import lsdb

    table_path = json.loads((dest / "manifest.json").read_text())["tables"]["hsc_forced"]["path"]
    assert len(lsdb.open_catalog(str(dest / table_path)).compute()) == 1200
    victim = next((dest / table_path).rglob("dataset/**/*.parquet"))
    victim.write_bytes(victim.read_bytes()[:-10])
    bad = cli("release", "verify", dest)
    assert bad.exit_code == 1 and str(victim) in bad.stderr


def test_verify_of_a_pack_accounts_for_every_file(loaded, tmp_path, cli):
    """pack.json was the only list of a pack's own files and nothing checked it: without it, or
    without the manifest's SHA-256 file, edited or added files verified."""
    create_release(loaded, "v1")
    clean = pack(loaded.root, "v1", tmp_path / "pack", with_splits=False)
    assert verify(clean, clean) == []

    def tampered(name, change):
        copy = tmp_path / name
        shutil.copytree(clean, copy)
        change(copy)
        return {(Path(m.path).relative_to(copy).as_posix(), m.problem) for m in verify(copy, copy)}

    def no_list_readme_edited(d):
        (d / "pack.json").unlink()
        (d / "README.txt").write_text("edited")

    got = tampered("a", no_list_readme_edited)
    assert ("pack.json", "missing (the list of packed files)") in got
    assert ("README.txt", "not part of the release (nor listed in pack.json)") in got

    def unlisted_then_edited(d):
        listing = json.loads((d / "pack.json").read_text())
        listing["files"] = [f for f in listing["files"] if f["path"] != "warehouse.toml"]
        (d / "pack.json").write_text(json.dumps(listing))
        with open(d / "warehouse.toml", "a") as fh:
            fh.write("junk = 1\n")

    got = tampered("b", unlisted_then_edited)
    assert got == {("warehouse.toml", "changed (packed file): differs from the manifest")}
    got = tampered("c", lambda d: (d / "manifest.json.sha256").unlink())
    assert got == {("manifest.json.sha256", "missing (the manifest's SHA-256)")}

    def planted(d):
        (d / "sql" / "marts" / "evil.sql").write_text("select 1")
        (d / "catalogs" / "hsc_specz" / "extra.parquet").write_bytes(b"PAR1")

    got = tampered("d", planted)
    assert {g[0] for g in got} == {"sql/marts/evil.sql", "catalogs/hsc_specz/extra.parquet"}
    bad = cli("release", "verify", tmp_path / "d")
    assert bad.exit_code == 1 and "evil.sql" in bad.stderr


def test_verify_of_a_folder_that_is_no_pack_says_so(loaded, tmp_path, cli):
    """release verify /etc said "'/etc' is not a release name", though a pack's folder is
    accepted: it now says what the folder lacks."""
    folder = tmp_path / "not a pack"
    folder.mkdir()
    r = cli("release", "verify", folder, "--root", loaded.root)
    assert r.exit_code == 1 and len(r.stderr.splitlines()) == 1
    assert f"{folder} is not a packed release: it has no manifest.json" in r.stderr


def test_pack_refuses_the_warehouse_and_missing_folders_in_one_line(loaded, tmp_path, cli):
    create_release(loaded, "v1")
    root = loaded.root
    # packed in there; in the root itself (warehouse/packx) too, though the README said outside
    for inside in (root / "catalogs" / "x", root / "releases" / "p", root / "packx"):
        with pytest.raises(ReleaseError, match="inside the warehouse"):
            pack(root, "v1", inside)
        assert not inside.exists()
    with pytest.raises(ReleaseError, match="does not exist; create it first"):
        pack(root, "v1", tmp_path / "no" / "such" / "pack")  # its folders were created
    assert not (tmp_path / "no").exists()
    unwritable = cli("release", "pack", "v1", "/proc/pack", "--root", root)
    assert unwritable.exit_code == 1 and "cannot write" in unwritable.stderr  # not a traceback
    (tmp_path / "a_file").write_text("mine")
    on_file = cli("release", "pack", "v1", tmp_path / "a_file", "--root", root)
    assert on_file.exit_code == 1 and on_file.stderr.count("\n") == 1  # NotADirectoryError
    assert "is a file" in on_file.stderr and (tmp_path / "a_file").read_text() == "mine"


def test_a_pack_another_pack_fills_meanwhile_is_kept(loaded, tmp_path, monkeypatch):
    """Two packs to one folder, both checked while it was empty: the one that finishes second
    fails in one line and the first one's pack stays whole."""
    import warehouse.release.packing as packing

    create_release(loaded, "v1")
    dest = tmp_path / "pack"
    dest.mkdir()  # empty: allowed
    fill = packing._fill

    def other_pack_finishes_first(*args, **kwargs):  # type: ignore[no-untyped-def]
        fill(*args, **kwargs)
        (dest / "pack.json").write_text("the other pack's")

    monkeypatch.setattr(packing, "_fill", other_pack_finishes_first)
    with pytest.raises(ReleaseError, match="filled by another pack while this one ran"):
        pack(loaded.root, "v1", dest, with_splits=False)
    assert [p.name for p in dest.iterdir()] == ["pack.json"]
    assert (dest / "pack.json").read_text() == "the other pack's"
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".pack")]  # nor a temporary


def test_diff_rows_and_split_moves(two_step, cli):
    wh, d = two_step
    create_release(wh, "v1")
    wh.load(registry.get("hsc-forced"), [d / "b.parquet", d / "f2.parquet"])
    create_release(wh, "v2")
    out = diff(wh.root, "v1", "v2")
    f = out["tables"]["hsc_forced"]
    assert (f["added"], f["removed"], f["changed"]) == (400, 0, 0)
    assert f["columns_added"] == [] and f["rows_to"] == 1200
    assert out["tables"]["hsc_specz"]["same_version"]
    assert out["split_moves"] == []  # adding rows never moves an object
    text = (wh.root / "warehouse.toml").read_text().replace('salt = "gwh-v1"', 'salt = "new"')
    (wh.root / "warehouse.toml").write_text(text)
    from warehouse.core import Warehouse

    create_release(Warehouse.open(wh.root), "v3")
    out = diff(wh.root, "v2", "v3")
    assert out["split_moves"] and all(m["from"] != m["to"] for m in out["split_moves"])
    assert out["config"]["splits.salt"] == {"from": "gwh-v1", "to": "new"}
    shown = cli("release", "diff", "v2", "v3", "--root", wh.root)
    assert shown.exit_code == 0 and "split moves:" in shown.output and "splits.salt" in shown.output
    moves = len(out["split_moves"])
    assert moves > 50  # a new salt moves most objects; 50 are listed, and the cut is said
    assert sum(line.startswith("    object_id ") for line in shown.output.splitlines()) == 50
    assert f"    ... and {moves - 50:,} more (--json lists every move)\n" in shown.output


def test_diff_reports_sql_changes(loaded, tmp_path, monkeypatch):
    create_release(loaded, "v1")
    sql_copy = tmp_path / "sql"
    shutil.copytree(db.sql_root(), sql_copy)
    view = sql_copy / "intermediate" / "quality_flags.sql"
    view.write_text(view.read_text().replace("specz_redshift < 9.999", "specz_redshift < 9.0"))
    monkeypatch.setattr(db, "sql_root", lambda: sql_copy)
    from warehouse.core import Warehouse

    create_release(Warehouse.open(loaded.root), "v2")
    out = diff(loaded.root, "v1", "v2")
    assert list(out["sql"]) == ["intermediate/quality_flags.sql"]
    assert (
        "-        coalesce(specz.specz_redshift < 9.999"
        in out["sql"]["intermediate/quality_flags.sql"]
    )


def test_interrupted_create_leaves_no_release(loaded, monkeypatch):
    real_rename = os.rename

    def interrupted(src, dst):
        if "releases" in str(dst):
            raise KeyboardInterrupt
        return real_rename(src, dst)

    monkeypatch.setattr(os, "rename", interrupted)
    with pytest.raises(KeyboardInterrupt):
        create_release(loaded, "v1")
    monkeypatch.setattr(os, "rename", real_rename)
    releases = loaded.root / "releases"
    assert list(releases.iterdir()) == []
    assert list_releases(loaded.root) == []
    create_release(loaded, "v1")
    assert [r["name"] for r in list_releases(loaded.root)] == ["v1"]


def test_release_cli_commands(loaded, cli):
    assert cli("release", "list", "--root", loaded.root).output.startswith("no releases")
    made = cli("release", "create", "v1", "--notes", "n", "--root", loaded.root)
    assert made.exit_code == 0 and "created release v1" in made.output
    again = cli("release", "create", "v1", "--root", loaded.root)
    assert again.exit_code == 1 and "immutable" in again.stderr
    listed = cli("release", "list", "--root", loaded.root)
    assert listed.output.startswith("v1") and "train" in listed.output
    shown = cli("release", "show", "v1", "--root", loaded.root)
    assert json.loads(shown.output)["name"] == "v1"
    ok = cli("release", "verify", "v1", "--root", loaded.root)
    assert ok.exit_code == 0
    q = cli("sql", "--release", "v1", "--root", loaded.root, "select count(*) from ml_objects")
    assert q.exit_code == 0
    missing = cli("sql", "--release", "v7", "--root", loaded.root, "select 1")
    assert missing.exit_code == 1 and "no release 'v7'" in missing.stderr
