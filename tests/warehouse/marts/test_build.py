"""ml_objects materialised as a HATS table: the same rows, column order and types as the SQL view
(the demo field, a spec-z group straddling a partition border, morphology present); read only
while its fingerprint is the current one; rebuilt by loads; the same bytes on a LocalCluster of
two worker processes. SIMULATED data."""

from __future__ import annotations

import csv
import dataclasses
import functools
import os

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.morphology import load_morphology
from tests.warehouse.compute.conftest import load_field, straddling_field
from warehouse import db
from warehouse.cleanup import collect_garbage
from warehouse.compute import dask_client, plan_partitions
from warehouse.compute.mapping import map_in_order
from warehouse.config import CONFIG_NAME
from warehouse.core import Warehouse
from warehouse.marts import build
from warehouse.marts.build import MartTask, materialise, materialise_partition
from warehouse.marts.key import MART_FILE, MARTS, fingerprint


def sql_view(wh: Warehouse) -> pa.Table:
    """ml_objects computed by the SQL view, whatever copy exists."""
    with wh.reading() as snapshot:
        tables = [t for t in wh.reader_tables(snapshot) if t.name not in MARTS]
        con = db.reader(tables, wh.config, {}, wh.allowed_directories(), models=wh.models())
        try:
            return con.sql("SELECT * FROM ml_objects").to_arrow_table()
        finally:
            con.close()


def read(wh: Warehouse) -> tuple[pa.Table, str | None]:
    """What a reader of ml_objects gets, and the copy it read (None: the SQL view)."""
    with wh.connect() as con:
        rows = con.sql("SELECT * FROM ml_objects").to_arrow_table()
        found = con.execute("SELECT value FROM gwh_meta WHERE key = 'mart:ml_objects'").fetchone()
    return rows, found[0] if found else None


def assert_same(got: pa.Table, want: pa.Table) -> None:
    """Same column names, order and types; the same rows (EXCEPT ALL both ways empty)."""
    assert got.schema.remove_metadata() == want.schema.remove_metadata()
    assert got.num_rows == want.num_rows
    con = duckdb.connect()
    con.register("got", got)
    con.register("want", want)
    for a, b in (("got", "want"), ("want", "got")):
        n = con.execute(f"SELECT count(*) FROM (SELECT * FROM {a} EXCEPT ALL SELECT * FROM {b})")
        assert n.fetchone()[0] == 0


def test_the_copy_has_the_views_rows_columns_and_units(loaded):
    want = sql_view(loaded)
    assert read(loaded)[1] is None  # nothing materialised yet: the SQL view
    result = materialise(loaded, force=True)
    assert result is not None and result.version == 1 and result.nrows == want.num_rows > 500
    got, source = read(loaded)
    assert source is not None and "catalogs/ml_objects/v000001/" in source
    assert_same(got, want)
    version = loaded.root / "catalogs" / "ml_objects" / "v000001"
    assert (loaded.root / "catalogs" / "ml_objects" / "current").resolve() == version.resolve()
    cv = loaded.current_version("ml_objects")
    assert cv is not None and cv.nrows == want.num_rows
    assert cv.schema.names[:3] == ["split", "_healpix_29", "object_id"]
    assert cv.schema.field("ra").metadata[b"unit"] == b"deg"
    assert cv.schema.field("specz_match_distance_arcsec").metadata[b"unit"] == b"arcsec"
    # partitioned like hsc_forced: each file inside one of its partitions
    spine = {(p.order, p.pixel) for p in loaded.current_version("hsc_forced").partitions}
    assert {(p.order, p.pixel) for p in cv.partitions} <= spine
    # up to date: a second call writes nothing
    assert materialise(loaded, force=True) is None


def test_a_copy_missing_a_partition_file_is_not_read_and_is_made_anew(loaded, cli):
    """One of the copy's files deleted outside gwh dropped its rows from ml_objects without a
    word. The copy is a cache of the view: missing a file, it is not read (the SQL view answers,
    exact), and gwh materialise makes it anew."""
    want = sql_view(loaded)
    materialise(loaded, force=True)
    loaded.current_version("ml_objects").files()[0].unlink()
    got, source = read(loaded)
    assert source is None  # the SQL view
    assert_same(got, want)
    r = cli("sql", "select count(*) AS n from ml_objects", "--format", "csv", "--root", loaded.root)
    assert r.exit_code == 0 and r.stdout.splitlines()[1] == str(want.num_rows)
    again = cli("materialise", "--root", loaded.root)
    assert again.exit_code == 0 and "materialised as version 2" in again.stdout, again.output
    got, source = read(loaded)
    assert source is not None and "v000002" in source
    assert_same(got, want)


def test_a_copy_with_a_file_cut_short_is_not_read_and_is_made_anew(loaded, cli):
    """A file of the copy cut short failed every query of ml_objects, and gwh materialise said
    "nothing to do (its copy is current)": stuck. It is a damaged cache, read no more."""
    want = sql_view(loaded)
    materialise(loaded, force=True)
    cut = loaded.current_version("ml_objects").files()[0]
    os.truncate(cut, cut.stat().st_size // 2)
    got, source = read(loaded)
    assert source is None
    assert_same(got, want)
    r = cli("check", "--root", loaded.root)
    assert r.exit_code == 0 and f"{cut} is damaged (no Parquet footer" in r.stdout, r.output
    again = cli("materialise", "--root", loaded.root)
    assert again.exit_code == 0 and "materialised as version 2" in again.stdout, again.output
    assert read(loaded)[1] is not None


def test_gwh_check_notes_a_copy_it_does_not_read_and_passes(loaded, cli):
    """gwh check refused the whole warehouse ("restore it from a backup") for a file of the copy
    while every read answered, exactly, from the SQL view. The copy is a cache: check says it is
    not read and what makes it anew, and passes."""
    materialise(loaded, force=True)
    missing = loaded.current_version("ml_objects").files()[0]
    missing.unlink()
    r = cli("check", "--root", loaded.root)
    assert r.exit_code == 0, r.output
    notes = [line for line in r.stdout.splitlines() if line.startswith("note")]
    assert len(notes) == 1, r.stdout  # the stored views' mismatch is this one's doing
    assert "ml_objects is answered by its SQL view" in notes[0]
    assert f"{missing} is missing" in notes[0] and "`gwh materialise`" in notes[0]
    assert cli("materialise", "--root", loaded.root).exit_code == 0
    r = cli("check", "--root", loaded.root)
    assert r.exit_code == 0 and "note" not in r.stdout, r.stdout


def test_gwh_check_notes_a_copy_of_another_state_and_a_moved_folder(loaded, cli, tmp_path):
    materialise(loaded, force=True)
    toml = loaded.root / CONFIG_NAME
    toml.write_text(toml.read_text().replace('salt = "', 'salt = "changed-'), encoding="utf-8")
    r = cli("check", "--root", loaded.root)
    assert r.exit_code == 0, r.output
    assert "copy was computed from another state" in r.stdout, r.stdout
    assert cli("materialise", "--root", loaded.root).exit_code == 0
    moved = tmp_path / "moved"
    os.rename(loaded.root, moved)
    r = cli("check", "--root", moved)
    notes = [line for line in r.stdout.splitlines() if line.startswith("note")]
    assert r.exit_code == 0 and len(notes) == 1, r.stdout
    assert "built for another state (the folder moved" in notes[0] and "`gwh refresh`" in notes[0]
    assert cli("refresh", "--root", moved).exit_code == 0
    r = cli("check", "--root", moved)
    assert r.exit_code == 0 and "note" not in r.stdout, r.stdout


def test_the_copy_is_a_valid_hats_catalog_lsdb_opens(loaded):
    validation = pytest.importorskip("hats.io.validation")
    lsdb = pytest.importorskip("lsdb")
    materialise(loaded, force=True)
    current = loaded.root / "catalogs" / "ml_objects" / "current"
    assert validation.is_valid_catalog(str(current / "ml_objects"), strict=True)
    frame = lsdb.open_catalog(current).compute()
    assert len(frame) == loaded.current_version("ml_objects").nrows


def test_a_changed_setting_gives_the_sql_view_until_rebuilt(loaded):
    materialise(loaded, force=True)
    old, _ = read(loaded)
    toml = loaded.root / CONFIG_NAME
    toml.write_text(toml.read_text().replace('salt = "', 'salt = "changed-'), encoding="utf-8")
    wh = Warehouse.open(loaded.root)
    got, source = read(wh)
    assert source is None  # the copy's fingerprint is not the current one
    assert_same(got, sql_view(wh))
    assert got.column("split").to_pylist() != old.column("split").to_pylist()
    result = materialise(wh, force=True)
    assert result is not None and result.version == 2
    got, source = read(wh)
    assert source is not None and "v000002" in source
    assert_same(got, sql_view(wh))
    with wh.writing():
        collect_garbage(wh)
    assert sorted(p.name for p in (wh.catalogs_dir / "ml_objects").glob("v*")) == ["v000002"]


def test_fingerprint_follows_what_the_view_reads(loaded):
    with loaded.reading() as snapshot:
        tables = loaded.reader_tables(snapshot)
    models = loaded.models()
    key = fingerprint("ml_objects", loaded.config, tables, models)
    # a table ml_objects does not read (cutouts) keeps it; one it reads changes it
    cutouts = next(t for t in tables if t.name == "cutouts")
    moved = [
        t if t is not cutouts else db.BaseTable("cutouts", "", "/x/v000009/d/*.parquet", (), "")
        for t in tables
    ]
    assert fingerprint("ml_objects", loaded.config, moved, models) == key
    forced = next(t for t in tables if t.name == "hsc_forced")
    newer = [
        t
        if t is not forced
        else db.BaseTable("hsc_forced", "", t.glob.replace("v000001", "v000002"), t.columns, "")
        for t in tables
    ]
    assert fingerprint("ml_objects", loaded.config, newer, models) != key


def test_a_straddling_spec_z_group_is_resolved_as_in_the_view(tmp_path):
    planted = straddling_field(tmp_path)
    wh = load_field(tmp_path / "wh", planted["paths"])
    want = sql_view(wh)
    assert materialise(wh, force=True) is not None
    got, source = read(wh)
    assert source is not None
    assert_same(got, want)
    ids = got.column("object_id").to_pylist()
    assert planted["ids"]["A"] in ids and planted["ids"]["B"] not in ids


def test_a_group_wider_than_the_margin_keeps_the_sql_view_per_partition(tmp_path):
    planted = straddling_field(tmp_path)
    wh = load_field(tmp_path / "wh", planted["paths"], margin_arcsec=0.5)
    said: list[str] = []
    assert materialise(wh, map, force=True, echo=said.append) is None  # per partition: refused
    assert "not materialised" in said[0] and "margin" in said[0]
    assert read(wh)[1] is None
    assert not list((wh.catalogs_dir / "ml_objects").glob("v*"))
    # one query of the whole view (no mapper) needs no margin
    want = sql_view(wh)
    assert materialise(wh, force=True) is not None
    got, source = read(wh)
    assert source is not None
    assert_same(got, want)


def test_loads_rebuild_the_copy_and_morphology_joins_it(make_warehouse, field_files, monkeypatch):
    monkeypatch.setattr(build, "MIN_ROWS", 0)  # the demo field is small
    wh = make_warehouse(max_rows_per_partition=200)
    said: list[str] = []
    wh.load(registry.get("hsc-forced"), [field_files["forced"], field_files["forced2"]])
    assert not (wh.catalogs_dir / "ml_objects").exists()  # no spec-z, no ml_objects to copy
    wh.load(registry.get("hsc-specz"), [field_files["specz"]], echo=said.append)
    assert any("ml_objects: materialised as version 1" in m for m in said)
    got, source = read(wh)
    assert source is not None and "v000001" in source
    assert_same(got, sql_view(wh))
    assert got.column("morphology_source").null_count == got.num_rows  # no morphology yet
    ids = got.column("object_id").to_pylist()[:3]
    path = field_files["forced"].parent / "morph.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["object_id", "i_ellipticity"])
        w.writerows([[i, 0.1 * n] for n, i in enumerate(ids)])
    load_morphology(wh, [path])
    got, source = read(wh)
    assert source is not None and "v000002" in source
    assert_same(got, sql_view(wh))
    assert got.column("morphology_source").null_count == got.num_rows - 3
    # the superseded copy is gone; nothing changed, nothing rebuilt
    assert sorted(p.name for p in (wh.catalogs_dir / "ml_objects").glob("v*")) == ["v000002"]
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    assert "v000002" in (read(wh)[1] or "")


def test_small_loads_keep_the_sql_view(loaded):
    assert loaded.current_version("hsc_forced").nrows < build.MIN_ROWS
    assert read(loaded)[1] is None
    assert not (loaded.catalogs_dir / "ml_objects").exists()


def test_a_release_freezes_the_copy_and_reads_it(loaded):
    from warehouse.release import create_release, open_pack, open_release, pack, verify

    materialise(loaded, force=True)
    want, _ = read(loaded)
    create_release(loaded, "v1")
    frozen = open_release(loaded.root, "v1")
    files = frozen.manifest["tables"]["ml_objects"]["files"]
    assert MART_FILE in {f["path"] for f in files}
    assert verify(loaded.root, loaded.layout.releases / "v1") == []
    # the live copy moves on (a new salt); the release keeps reading its own
    toml = loaded.root / CONFIG_NAME
    toml.write_text(toml.read_text().replace('salt = "', 'salt = "later-'), encoding="utf-8")
    wh = Warehouse.open(loaded.root)
    materialise(wh, force=True)
    with wh.writing():
        collect_garbage(wh)
    assert (wh.catalogs_dir / "ml_objects" / "v000001").is_dir()  # the release holds it
    with frozen.connect() as con:
        got = con.sql("SELECT * FROM ml_objects").to_arrow_table()
        source = con.execute("SELECT value FROM gwh_meta WHERE key = 'mart:ml_objects'").fetchone()
    assert source is not None and "v000001" in source[0]
    assert_same(got, want)
    assert frozen.manifest["counts"]["views"]["ml_objects"] == want.num_rows
    # a packed copy, opened on its own, reads its copy of the copy
    pack(loaded.root, "v1", loaded.root.parent / "packed", with_splits=False)
    packed = open_pack(loaded.root.parent / "packed")
    with packed.connect() as con:
        got = con.sql("SELECT * FROM ml_objects").to_arrow_table()
        source = con.execute("SELECT value FROM gwh_meta WHERE key = 'mart:ml_objects'").fetchone()
    assert source is not None and str(loaded.root.parent / "packed") in source[0]
    assert_same(got, want)
    # a copy the views no longer read (the settings changed since) is not frozen
    toml.write_text(toml.read_text().replace('salt = "', 'salt = "again-'), encoding="utf-8")
    create_release(Warehouse.open(loaded.root), "v2")
    assert "ml_objects" not in open_release(loaded.root, "v2").manifest["tables"]


def _files(folder) -> dict[str, bytes]:
    return {os.path.relpath(p, folder): p.read_bytes() for p in sorted(folder.rglob("*.parquet"))}


def test_per_partition_here_and_on_a_local_cluster_write_the_one_query_bytes(tmp_path):
    planted = straddling_field(tmp_path)
    wh = load_field(tmp_path / "wh", planted["paths"])
    assert materialise(wh, force=True) is not None  # one query, streamed, cut at the borders
    catalog = wh.catalogs_dir / "ml_objects" / "v000001" / "ml_objects"
    with wh.reading():
        plan = plan_partitions(wh)
        plan = dataclasses.replace(
            plan, tables=tuple(t for t in plan.tables if t.name not in MARTS)
        )
        tasks = [MartTask(plan, p, str(tmp_path / "here")) for p in plan.partitions]
        here = [materialise_partition(t) for t in tasks]
        with dask_client("local:2") as client:
            assert len(client.scheduler_info()["workers"]) == 2
            mapper = functools.partial(map_in_order, client)
            tasks = [MartTask(plan, p, str(tmp_path / "dask")) for p in plan.partitions]
            there = list(mapper(materialise_partition, tasks))
    assert here == there and sum(p.nrows for p in here) > 500
    assert len(_files(catalog)) > 5
    assert _files(tmp_path / "here") == _files(tmp_path / "dask") == _files(catalog)


def test_streamed_files_are_the_per_partition_bytes_over_many_row_groups(tmp_path, monkeypatch):
    # row groups of 16 rows: the one query writes each file a row group at a time as its rows
    # stream in, the per-partition task writes the partition whole; the bytes are the same
    small = dataclasses.replace(build.SPEC.layout, row_group_rows=16)
    monkeypatch.setattr(build, "SPEC", dataclasses.replace(build.SPEC, layout=small))
    wh = load_field(tmp_path / "wh", straddling_field(tmp_path)["paths"])
    assert materialise(wh, force=True) is not None
    catalog = wh.catalogs_dir / "ml_objects" / "v000001" / "ml_objects"
    with wh.reading():
        plan = plan_partitions(wh)
        plan = dataclasses.replace(
            plan, tables=tuple(t for t in plan.tables if t.name not in MARTS)
        )
        here = [
            materialise_partition(MartTask(plan, p, str(tmp_path / "here")))
            for p in plan.partitions
        ]
    files = _files(catalog)
    assert files == _files(tmp_path / "here") and len(files) > 5
    groups = [pq.ParquetFile(catalog / name).metadata.num_row_groups for name in files]
    assert max(groups) > 3 and sum(p.nrows for p in here) > 500


def test_gwh_materialise(cli, loaded):
    result = cli("materialise", "--root", loaded.root)
    assert result.exit_code == 0, result.output
    assert "ml_objects: materialised as version 1" in result.output
    assert read(loaded)[1] is not None
    again = cli("materialise", "--root", loaded.root)
    assert again.exit_code == 0 and "nothing to do" in again.output


def test_gwh_materialise_says_why_ml_objects_is_unavailable(cli, make_warehouse, field_files):
    """Without forced2's flags it said "nothing to do (its copy is current, or its tables are
    not loaded)" and exit 0: neither was the reason."""
    from loaders import registry

    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    result = cli("materialise", "--root", wh.root)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr.startswith("error: cannot materialise: ml_objects is unavailable: ")
    assert "sdsscentroid_flag" in result.stderr and not (wh.catalogs_dir / "ml_objects").exists()
