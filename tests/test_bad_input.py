"""Bad input: a clear message naming the file, column or row, a non-zero exit, nothing changed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders import registry
from loaders.simulated.catalog import write_archive_csv, write_archive_fits
from tests.conftest import tree_snapshot
from warehouse.compute import plan_partitions
from warehouse.core import Warehouse
from warehouse.errors import DamagedFileError

BIG = 43158172147386355
HEADER = "object_id,ra,dec,g_cmodel_mag,g_cmodel_flag\n"


@pytest.fixture
def wh_root(loaded):
    """A loaded warehouse and a snapshot of everything it holds on disk."""
    return loaded.root


def _state(root):
    import duckdb

    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as con:
        tables = con.execute("SELECT name, version, nrows FROM gwh_tables ORDER BY 1").fetchall()
        loads = con.execute("SELECT count(*) FROM gwh_loads").fetchone()
    return tree_snapshot(root / "catalogs"), tables, loads


def _load_fails(cli, root, kind, path, *patterns):
    before = _state(root)
    result = cli("load", kind, path, "--root", root)
    assert result.exit_code == 1, result.output
    message = result.stderr
    assert message.startswith("error: ")
    assert str(path) in message
    for p in patterns:
        assert p in message, message
    assert _state(root) == before  # nothing half-written
    return message


def test_missing_required_column(cli, wh_root, tmp_path):
    path = tmp_path / "specz_no_redshift.csv"
    path.write_text("object_id,specz_name,specz_ra,specz_dec\n1,a,10,1\n")
    _load_fails(cli, wh_root, "hsc-specz", path, "missing required column(s)", "specz_redshift")


def test_missing_object_id(cli, wh_root, tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("ra,dec,g_cmodel_mag\n10,1,22\n")
    _load_fails(cli, wh_root, "hsc-forced", path, "missing required column(s) object_id")


def test_wrong_type_names_line_and_column(cli, wh_root, tmp_path):
    path = tmp_path / "badtype.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,f\n{BIG + 1},10,1,abc,f\n")
    _load_fails(cli, wh_root, "hsc-forced", path, "line 3", "column g_cmodel_mag", "'abc'")


def test_object_id_in_float_notation_is_refused(cli, wh_root, tmp_path):
    path = tmp_path / "floatid.csv"
    path.write_text(HEADER + "3.64e+16,10,1,22.1,f\n")
    _load_fails(
        cli, wh_root, "hsc-forced", path, "line 2", "column object_id", "floating-point notation"
    )


def test_object_id_stored_as_float_column_is_refused(cli, wh_root, tmp_path):
    path = tmp_path / "floatid.parquet"
    pq.write_table(
        pa.table({"object_id": [3.6e16], "ra": [10.0], "dec": [1.0], "g_cmodel_mag": [22.0]}), path
    )
    _load_fails(cli, wh_root, "hsc-forced", path, "object_id", "floating point")


def test_bad_boolean(cli, wh_root, tmp_path):
    path = tmp_path / "badbool.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,maybe\n")
    _load_fails(cli, wh_root, "hsc-forced", path, "line 2", "g_cmodel_flag", "'maybe'")


def _int_flags(flags: list[int]) -> pa.Table:
    n = len(flags)
    return pa.table(
        {
            "object_id": pa.array([BIG + i for i in range(n)], pa.int64()),
            "ra": [10.0] * n,
            "dec": [1.0] * n,
            "g_cmodel_flag": pa.array(flags, pa.int64()),
        }
    )


@pytest.mark.parametrize(
    ("suffix", "where"),
    [(".csv", "line 5"), (".fits", "row 3"), (".parquet", "row 3")],  # csv: comment, header
)
def test_a_flag_other_than_0_or_1_is_refused_from_every_format(
    cli, wh_root, tmp_path, suffix, where
):
    """Parquet and FITS cast 2, -1 or 7 to true silently, where CSV refused '2'."""
    table = _int_flags([0, 1, 2, -1, 7])
    path = tmp_path / f"intflag{suffix}"
    if suffix == ".csv":
        write_archive_csv(table, path)
    elif suffix == ".fits":
        write_archive_fits(table, path)
    else:
        pq.write_table(table, path)
    _load_fails(cli, wh_root, "hsc-forced", path, where, "column g_cmodel_flag", "2", "bool")


@pytest.mark.parametrize("suffix", [".fits", ".parquet"])
def test_integer_flags_of_0_and_1_load_as_booleans(cli, make_warehouse, tmp_path, suffix):
    wh = make_warehouse()
    path = tmp_path / f"intflag{suffix}"
    table = _int_flags([0, 1, 1])
    write_archive_fits(table, path) if suffix == ".fits" else pq.write_table(table, path)
    assert cli("load", "hsc-forced", path, "--root", wh.root).exit_code == 0
    flags = wh.query("SELECT g_cmodel_flag FROM hsc_forced ORDER BY object_id")
    assert flags.column(0).to_pylist() == [False, True, True]


def test_an_integer_into_a_stored_boolean_column_is_refused(cli, make_warehouse, tmp_path):
    """A column no loader declares takes its type from the first file (here boolean); a later
    file's integers convert only as 0 and 1."""
    wh = make_warehouse()
    first = tmp_path / "first.csv"
    first.write_text(HEADER.replace("g_cmodel_flag", "my_ok") + f"{BIG},10,1,22.1,true\n")
    assert cli("load", "hsc-forced", first, "--root", wh.root).exit_code == 0
    later = tmp_path / "later.parquet"
    pq.write_table(_int_flags([1, 5]).rename_columns(["object_id", "ra", "dec", "my_ok"]), later)
    _load_fails(cli, wh.root, "hsc-forced", later, "column my_ok", "5", "only 0 and 1")


def test_unreadable_file(cli, wh_root, tmp_path):
    path = tmp_path / "garbage.fits"
    path.write_bytes(b"this is not a FITS file at all\n" * 100)
    _load_fails(cli, wh_root, "hsc-forced", path, "unreadable or truncated")


def test_unknown_file_type(cli, wh_root, tmp_path):
    path = tmp_path / "table.xlsx"
    path.write_bytes(b"PK")
    _load_fails(cli, wh_root, "hsc-forced", path, "unknown file type")


def test_truncated_csv(cli, wh_root, tmp_path, field):
    path = tmp_path / "truncated.csv"
    write_archive_csv(field.forced.slice(0, 20), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - len(data) // 7])  # cut inside the last row
    _load_fails(cli, wh_root, "hsc-forced", path, "truncated", "line")


def test_truncated_fits(cli, wh_root, tmp_path, field):
    path = tmp_path / "truncated.fits"
    write_archive_fits(field.forced.slice(0, 200), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    _load_fails(cli, wh_root, "hsc-forced", path, "unreadable or truncated")


def test_truncated_parquet(cli, wh_root, tmp_path, field):
    path = tmp_path / "truncated.parquet"
    pq.write_table(field.forced.slice(0, 200), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    _load_fails(cli, wh_root, "hsc-forced", path, "unreadable or truncated")


@pytest.mark.parametrize(
    ("ra", "dec", "said"),
    [
        (400.0, 1.0, "ra = 400.0 is outside [0, 360] degrees"),
        (10.0, -91.0, "dec = -91.0 is outside [-90, 90] degrees"),
        (10.0, "NaN", "dec is NaN"),
        (10.0, "", "dec is NULL (empty)"),
    ],
)
def test_position_out_of_range(cli, wh_root, tmp_path, ra, dec, said):
    path = tmp_path / "badpos.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,f\n{BIG + 1},{ra},{dec},22.1,f\n")
    _load_fails(cli, wh_root, "hsc-forced", path, "line 3", said, "needs a position")


def test_duplicate_object_id_in_one_file(cli, wh_root, tmp_path):
    path = tmp_path / "dups.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,f\n{BIG + 5},10,1,22.1,f\n{BIG},10.2,1,23.1,f\n")
    _load_fails(
        cli,
        wh_root,
        "hsc-forced",
        path,
        f"object_id={BIG}",
        "line 2",
        "line 4",
        "appears more than once",
    )


def test_missing_file(cli, wh_root, tmp_path):
    result = cli("load", "hsc-forced", tmp_path / "nope.fits", "--root", wh_root)
    assert result.exit_code == 1 and "no such file" in result.stderr


def test_a_folder_is_named_as_a_folder_with_the_files_it_holds(cli, wh_root, tmp_path, field):
    folder = tmp_path / "my exports"
    folder.mkdir()
    for i in range(3):
        pq.write_table(field.forced.slice(i * 10, 10), folder / f"part{i}.parquet")
    (folder / "notes.txt").write_text("x")
    (folder / "sub").mkdir()
    message = _load_fails(cli, wh_root, "hsc-forced", folder, "is a folder", "3 .parquet")
    assert "no such file" not in message and len(message.splitlines()) == 1
    assert "gwh load hsc-forced 'HERE'/*.parquet".replace("HERE", str(folder)) in message
    empty = tmp_path / "empty"
    empty.mkdir()
    _load_fails(cli, wh_root, "hsc-forced", empty, "is a folder", "no files")


def test_a_pipe_is_named_as_one(cli, wh_root, tmp_path):
    """``gwh load hsc-specz <(zcat x.csv.gz)`` gives /dev/fd/63, a pipe: a load reads its file
    twice (its hash, then its rows), so it must be a file."""
    import os

    fifo = tmp_path / "stream.csv"
    os.mkfifo(fifo)
    message = _load_fails(cli, wh_root, "hsc-specz", fifo, "not a regular file", "to a file first")
    assert "no such file" not in message


def test_a_truncated_partition_file_is_one_line_for_every_reader(cli, loaded, tmp_path):
    """A partition file cut short outside gwh (a full disk, a bad copy): every reader, in place
    or on a moved copy (whose views are rebuilt over that file), names it in one line."""
    import shutil

    first = sorted((loaded.root / "catalogs" / "hsc_forced" / "current").rglob("Npix=*.parquet"))[0]
    data = first.read_bytes()
    first.unlink()  # the file may be a hard link shared with another version
    first.write_bytes(data[: len(data) // 2])
    moved = tmp_path / "moved"
    shutil.copytree(loaded.root, moved, symlinks=True)
    for root in (loaded.root, moved):
        for args in (["views"], ["sql", "SELECT count(*) FROM hsc_forced"]):
            result = cli(*args, "--root", root)
            assert result.exit_code == 1, (args, result.output)
            assert isinstance(result.exception, SystemExit), (args, result.exception)
            assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
            assert first.name in result.stderr and "damaged" in result.stderr, result.stderr
        checked = cli("check", "--root", root)  # a check over lost data does not pass
        assert checked.exit_code == 1, checked.output
        assert checked.stderr.startswith("error: ") and len(checked.stderr.splitlines()) == 1
        assert first.name in checked.stderr and "damaged" in checked.stderr, checked.stderr


def test_a_truncated_partition_found_while_rows_stream_is_named_as_damaged(cli, loaded):
    """Not the file the view's schema comes from: DuckDB reads it only as the rows stream."""
    last = sorted((loaded.root / "catalogs" / "hsc_forced" / "current").rglob("Npix=*.parquet"))
    last = [p for p in last if "/hsc_forced/dataset/" in p.as_posix()][-1]
    data = last.read_bytes()
    last.unlink()
    last.write_bytes(data[: len(data) // 2])
    late = "SELECT range AS x FROM range(3000000) UNION ALL SELECT object_id FROM hsc_forced"
    for sql in ("SELECT * FROM hsc_forced", late):  # the error before / after the first rows
        result = cli("sql", sql, "--root", loaded.root)  # table format
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert last.name in result.stderr and "damaged" in result.stderr, result.stderr
        shell = cli("shell", "--root", loaded.root, input=f"{sql};\n")
        assert last.name in shell.output and "damaged" in shell.output, shell.output


def _cut_in_its_middle(root):
    """hsc_forced's last partition file with half the bytes before its footer lost (a bad
    copy), the footer kept."""
    files = sorted((root / "catalogs" / "hsc_forced" / "current").rglob("Npix=*.parquet"))
    cut = [p for p in files if "/hsc_forced/dataset/" in p.as_posix()][-1]
    data = cut.read_bytes()
    footer = 8 + int.from_bytes(data[-8:-4], "little")
    cut.unlink()  # the file may be a hard link shared with another version
    cut.write_bytes(data[: (len(data) - footer) // 2] + data[-footer:])
    return cut


def test_a_partition_file_cut_in_its_middle_is_named_as_damaged(cli, loaded):
    """Bytes lost inside a file whose footer survived (a bad copy): DuckDB's errors named the
    file without saying it was damaged, or named no file at all."""
    last = _cut_in_its_middle(loaded.root)
    for args in (["sql", "SELECT * FROM hsc_forced"], ["views"], ["check"]):
        # gwh check passed over it (its contracts "unavailable", exit 0) and gwh views said
        # "Prefetch registered requested for bytes outside file", naming no file
        result = cli(*args, "--root", loaded.root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert last.name in result.stderr and "damaged" in result.stderr, result.stderr
        assert "footer names bytes past its end" in result.stderr, result.stderr


def test_partition_readers_name_a_file_cut_in_its_middle(loaded):
    """The per-partition readers (gwh ... --dask, run here in this process) said "partition
    N/M: Invalid Input Error: ... bytes outside file" or a Thrift error, naming no file."""
    cut = _cut_in_its_middle(loaded.root)
    said = _partition_readers_say(loaded, "hsc_forced")
    assert f"{cut.name} is damaged (its footer names bytes past its end)" in said


def _partition_readers_say(wh, view: str) -> str:
    """The error of reading ``view`` partition by partition, as --dask workers do (in this
    process)."""
    from warehouse.compute.partitions import view_rows

    with wh.reading():
        plan = plan_partitions(wh, check=False)
        with pytest.raises(DamagedFileError) as caught:
            for _ in view_rows(plan, view, None):
                pass
    return str(caught.value)


def test_a_deleted_partition_file_is_one_line_not_fewer_rows(cli, loaded, tmp_path):
    """The views read a glob: a partition file deleted outside gwh silently dropped its rows
    from every count (4213 objects became 4159, exit 0)."""
    import shutil

    root = tmp_path / "copy"  # a folder this test process has never read
    shutil.copytree(loaded.root, root, symlinks=True)
    current = root / "catalogs" / "hsc_specz" / "current"
    gone = sorted((current / "hsc_specz" / "dataset").rglob("Npix=*.parquet"))[-1]
    gone.unlink()
    for args in (["sql", "SELECT count(*) FROM hsc_specz"], ["views"]):
        result = cli(*args, "--root", root)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert gone.name in result.stderr and "missing" in result.stderr, result.stderr
        assert "hsc_specz" in result.stderr


def _cut_margin_file(root):
    """A margin file of hsc_forced (read only by partition readers), as a user may damage it."""
    current = root / "catalogs" / "hsc_forced" / "current"
    return sorted((current / "hsc_forced_10arcs" / "dataset").rglob("Npix=*.parquet"))[0]


def test_a_deleted_margin_file_is_one_line_for_readers_and_check(cli, loaded, tmp_path):
    """Partition readers skipped a partition without a margin file: a deleted one silently
    dropped the rows near its edges from per-partition answers."""
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(loaded.root, root, symlinks=True)
    gone = _cut_margin_file(root)
    gone.unlink()
    for args in (["sql", "SELECT count(*) FROM hsc_forced"], ["check"]):
        result = cli(*args, "--root", root)
        assert result.exit_code == 1, (args, result.output)
        assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
        assert gone.name in result.stderr and "missing" in result.stderr, result.stderr
        assert "margin files of table hsc_forced" in result.stderr
    wh = Warehouse.open(root)
    with pytest.raises(DamagedFileError, match="missing"), wh.reading():
        plan_partitions(wh)


def test_a_truncated_margin_file_is_damaged_for_check_and_partition_readers(cli, loaded):
    cut = _cut_margin_file(loaded.root)
    data = cut.read_bytes()
    cut.unlink()  # the file may be a hard link shared with another version
    cut.write_bytes(data[: len(data) // 2])
    result = cli("check", "--root", loaded.root)
    assert result.exit_code == 1, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    assert cut.name in result.stderr and "damaged" in result.stderr, result.stderr
    with loaded.reading(), pytest.raises(DamagedFileError, match=f"{cut.name} is damaged"):
        plan_partitions(loaded)


def test_unknown_table_in_sql(cli, wh_root):
    result = cli("sql", "select * from galaxies", "--root", wh_root)
    assert result.exit_code == 1
    assert "galaxies does not exist" in result.stderr
    assert "gwh views" in result.stderr


def test_not_a_warehouse(cli, tmp_path):
    result = cli("views", "--root", tmp_path / "empty")
    assert result.exit_code == 1
    assert "is not a warehouse" in result.stderr and "gwh init" in result.stderr


def test_rule_whose_columns_were_never_loaded(cli, make_warehouse, field_files):
    wh = make_warehouse()
    wh.load(registry.get("hsc-forced"), [field_files["forced"]])  # no forced2: no sdsscentroid_flag
    wh.load(registry.get("hsc-specz"), [field_files["specz"]])
    result = cli("sql", "select count(*) from quality_flags", "--root", wh.root)
    assert result.exit_code == 1
    assert "g_sdsscentroid_flag" in result.stderr and "never loaded" in result.stderr
    result = cli("sql", "select split from ml_objects", "--root", wh.root)
    assert result.exit_code == 1
    assert "ml_objects is unavailable" in result.stderr and "y_sdsscentroid_flag" in result.stderr


def test_a_band_no_column_has_names_the_setting(cli, loaded):
    """bands = [..., "q"] in warehouse.toml: it said q_cmodel_flag and the others "were never
    loaded. Load an export that has them", not that the setting names a band the data lacks."""
    toml = loaded.root / "warehouse.toml"
    toml.write_text(toml.read_text().replace('"y"]', '"q"]'), encoding="utf-8")
    result = cli("sql", "select count(*) from ml_objects", "--root", loaded.root)
    assert result.exit_code == 1 and "never loaded" not in result.stderr, result.stderr
    assert "needs band(s) q, which [warehouse] bands in warehouse.toml lists" in result.stderr


def test_quality_cuts_over_fewer_bands_are_noted_by_check(cli, loaded):
    """bands = ["g", "r", "i"] cut the quality rules to three bands without a word: objects
    with z or y flags set came into ml_objects."""
    before = loaded.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py()
    toml = loaded.root / "warehouse.toml"
    toml.write_text(toml.read_text().replace(', "z", "y"]', "]"), encoding="utf-8")
    after = Warehouse.open(loaded.root)
    assert after.query("SELECT count(*) AS n FROM ml_objects").column("n")[0].as_py() > before
    result = cli("check", "--root", loaded.root)
    assert result.exit_code == 0, result.output
    assert "the quality cuts apply to bands g,r,i ([warehouse] bands" in result.stdout
    assert "not the g,r,i,z,y of GalaxiesML" in result.stdout


def test_view_over_unloaded_table_says_what_to_load(cli, make_warehouse):
    wh = make_warehouse()
    result = cli("sql", "select * from hsc_specz", "--root", wh.root)
    assert result.exit_code == 1
    assert "hsc_specz has not been loaded yet" in result.stderr
    assert "gwh load hsc-specz" in result.stderr
    # DESCRIBE runs nothing: it showed one column "unavailable" of type NULL and no reason
    result = cli("sql", "describe hsc_specz", "--format", "csv", "--root", wh.root)
    assert (
        result.exit_code == 0
        and "unavailable: hsc_specz has not been loaded yet. Run `gwh load hsc-specz FILE`."
        in result.stdout
    )
    con = duckdb.connect(str(wh.db_path), read_only=True)  # a plain client sees it too
    try:
        (name,) = [row[0] for row in con.execute("DESCRIBE ml_objects").fetchall()]
    finally:
        con.close()
    assert (
        name == "unavailable: hsc_forced has not been loaded yet. Run `gwh load hsc-forced FILE`."
    )


# --------------------------------------------------------------------------- issue 13: keys


def _with_null(table: pa.Table, column: str, index: int) -> pa.Table:
    values = table.column(column).to_pylist()
    values[index] = None
    i = table.column_names.index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


@pytest.mark.parametrize(
    ("suffix", "where"),
    [(".csv", "line 8"), (".fits", "row 6"), (".parquet", "row 6")],  # csv: 1 comment + header
)
def test_a_null_object_id_is_refused_naming_file_column_and_line(
    cli, wh_root, tmp_path, field, suffix, where
):
    table = _with_null(field.forced.slice(0, 20), "object_id", 5)
    path = tmp_path / f"null_id{suffix}"
    if suffix == ".csv":
        write_archive_csv(table, path)
    elif suffix == ".fits":
        write_archive_fits(table, path, isnull_columns=("object_id",))
    else:
        pq.write_table(table, path)
    _load_fails(cli, wh_root, "hsc-forced", path, where, "column object_id", "NULL")


@pytest.mark.parametrize("column", ["object_id", "specz_name"])
def test_a_null_in_the_specz_key_is_refused(cli, wh_root, tmp_path, field, column):
    """NULLs in (object_id, specz_name) used to make unrelated rows replace each other."""
    path = tmp_path / "specz_null_key.parquet"
    pq.write_table(_with_null(field.specz.slice(0, 10), column, 3), path)
    _load_fails(cli, wh_root, "hsc-specz", path, "row 4", f"column {column}", "NULL")


# --------------------------------------------------------------------------- empty files


def test_a_header_only_file_changes_nothing_and_later_files_with_its_columns_load(
    cli, make_warehouse, tmp_path, field
):
    wh = make_warehouse()  # empty: the header-only file would have been the table's first
    forced = field.forced.slice(0, 30)
    noted = forced.append_column("my_note", pa.array([f"n{i}" for i in range(30)]))
    empty = tmp_path / "header_only.csv"
    write_archive_csv(noted.slice(0, 0), empty)
    _load_fails(cli, wh.root, "hsc-forced", empty, "no data rows", "unchanged")
    assert wh.query("SELECT count(*) AS n FROM gwh_loads").column("n")[0].as_py() == 0
    assert not (wh.root / "catalogs" / "hsc_forced").exists()

    full = tmp_path / "full.csv"
    write_archive_csv(noted, full)
    assert cli("load", "hsc-forced", full, "--root", wh.root).exit_code == 0
    stored = wh.current_version("hsc_forced").schema
    assert stored.field("my_note").type == pa.string()
    assert not any(pa.types.is_null(f.type) for f in stored)

    # an upsert of the same objects replaces the values (this crashed on a null-typed column)
    changed = noted.set_column(
        noted.column_names.index("my_note"), "my_note", pa.array([f"m{i}" for i in range(30)])
    )
    again = tmp_path / "again.csv"
    write_archive_csv(changed, again)
    assert cli("load", "hsc-forced", again, "--root", wh.root).exit_code == 0
    notes = wh.query("SELECT DISTINCT substr(my_note, 1, 1) AS c FROM hsc_forced").column("c")
    assert notes.to_pylist() == ["m"]
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() == 30


def test_a_zero_row_parquet_is_refused(cli, wh_root, tmp_path, field):
    path = tmp_path / "zero.parquet"
    pq.write_table(field.forced.slice(0, 0), path)
    _load_fails(cli, wh_root, "hsc-forced", path, "no data rows")


def test_an_all_empty_undeclared_column_takes_its_type_from_later_data(
    cli, make_warehouse, tmp_path, field
):
    """A column with no values has Arrow type null; it must never become the stored type."""
    wh = make_warehouse()
    forced = field.forced.slice(0, 10)
    first = tmp_path / "first.csv"
    write_archive_csv(forced.append_column("comment", pa.nulls(10, pa.string())), first)
    assert cli("load", "hsc-forced", first, "--root", wh.root).exit_code == 0
    assert "comment" not in wh.current_version("hsc_forced").schema.names
    second = tmp_path / "second.csv"
    write_archive_csv(forced.append_column("comment", pa.array(["ok"] * 10)), second)
    assert cli("load", "hsc-forced", second, "--root", wh.root).exit_code == 0
    assert wh.current_version("hsc_forced").schema.field("comment").type == pa.string()


# --------------------------------------------------------------------------- CSV shape


def test_a_csv_with_a_byte_order_mark_loads_like_one_without(cli, make_warehouse, tmp_path, field):
    plain, bom = tmp_path / "plain.csv", tmp_path / "bom.csv"
    write_archive_csv(field.forced.slice(0, 25), plain)
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    rows = []
    for name, path in (("a", plain), ("b", bom)):
        wh = make_warehouse(name)
        result = cli("load", "hsc-forced", path, "--root", wh.root)
        assert result.exit_code == 0, result.output
        rows.append(wh.query("SELECT * EXCLUDE (_healpix_29) FROM hsc_forced ORDER BY object_id"))
    assert repr(rows[0].to_pylist()) == repr(rows[1].to_pylist())  # NaN == NaN here


def test_a_csv_cut_after_its_last_delimiter_is_refused(cli, wh_root, tmp_path, field):
    path = tmp_path / "cut.csv"
    write_archive_csv(field.forced.slice(0, 20), path)
    data = path.read_bytes().rstrip(b"\n")
    path.write_bytes(data[: data.rfind(b",") + 1])  # the last value would become NULL
    _load_fails(cli, wh_root, "hsc-forced", path, "line 22", "without a newline", "truncated")


def test_a_csv_ending_inside_a_quoted_value_is_refused(cli, wh_root, tmp_path):
    path = tmp_path / "open_quote.csv"
    path.write_text("object_id,ra,dec,patch_s\n" + f'{BIG},10,1,"4,6"\n{BIG + 1},10,1,"4,')
    _load_fails(cli, wh_root, "hsc-forced", path, "line 3", "quoted value", "truncated")


def test_a_complete_last_line_without_a_newline_loads(cli, make_warehouse, tmp_path):
    wh = make_warehouse()
    path = tmp_path / "no_final_newline.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,f\n{BIG + 1},10.5,1,22.2,t")
    result = cli("load", "hsc-forced", path, "--root", wh.root)
    assert result.exit_code == 0, result.output
    flags = wh.query("SELECT g_cmodel_flag FROM hsc_forced ORDER BY object_id").column(0)
    assert flags.to_pylist() == [False, True]


def test_a_malformed_row_names_its_real_line(cli, wh_root, tmp_path):
    path = tmp_path / "malformed.csv"
    path.write_text(
        "# comment\n" + HEADER + f"{BIG},10,1,22.1,f\n{BIG + 1},10,1\n{BIG + 2},10,1,2,f\n"
    )
    message = _load_fails(cli, wh_root, "hsc-forced", path, "line 4", "expected 5 columns, got 3")
    assert "line ?" not in message


def test_random_bytes_named_csv_is_a_clear_error(cli, wh_root, tmp_path):
    path = tmp_path / "random.csv"
    path.write_bytes(bytes(range(256)) * 20)
    message = _load_fails(cli, wh_root, "hsc-forced", path, "not UTF-8 text")
    assert message.isprintable() or message.strip().isprintable()


def test_a_truncated_csv_gz_is_a_clear_error(cli, wh_root, tmp_path, field):
    import gzip

    plain = tmp_path / "forced.csv"
    write_archive_csv(field.forced, plain)
    packed = gzip.compress(plain.read_bytes())
    path = tmp_path / "forced.csv.gz"
    path.write_bytes(packed[: len(packed) * 2 // 3])
    _load_fails(cli, wh_root, "hsc-forced", path, "gzip stream is truncated")


# --------------------------------------------------------------------------- FITS table choice


def _two_table_fits(path, first: pa.Table, second: pa.Table) -> None:
    from astropy.io import fits

    a, b = path.with_suffix(".a.fits"), path.with_suffix(".b.fits")
    write_archive_fits(first, a)
    write_archive_fits(second, b)
    with fits.open(a) as ha, fits.open(b) as hb:
        one, two = ha[1].copy(), hb[1].copy()
        one.name, two.name = "SUMMARY", "DATA"
        fits.HDUList([fits.PrimaryHDU(), one, two]).writeto(path)
    a.unlink()
    b.unlink()


def test_fits_whose_first_table_is_not_the_data_loads_the_data_table(
    cli, make_warehouse, tmp_path, field
):
    path = tmp_path / "two_tables.fits"
    summary = pa.table({"nrows": pa.array([300], pa.int64()), "note": ["summary"]})
    _two_table_fits(path, summary, field.forced.slice(0, 300))
    wh = make_warehouse()
    result = cli("load", "hsc-forced", path, "--root", wh.root)
    assert result.exit_code == 0, result.output
    assert wh.query("SELECT count(*) AS n FROM hsc_forced").column("n")[0].as_py() == 300


def test_fits_with_two_candidate_tables_is_refused_naming_them(cli, wh_root, tmp_path, field):
    path = tmp_path / "ambiguous.fits"
    _two_table_fits(path, field.forced.slice(0, 5), field.forced.slice(5, 300))
    _load_fails(cli, wh_root, "hsc-forced", path, "HDU 1 SUMMARY: 5 rows", "HDU 2 DATA: 300 rows")


def test_a_path_next_to_a_warehouse_names_it_and_never_advises_init(cli, wh_root, monkeypatch):
    root = wh_root.resolve()
    # the folder holding the warehouse, the database file, a folder inside it
    for near in (root.parent, root / "warehouse.duckdb", root / "catalogs"):
        result = cli("views", "--root", near)
        assert result.exit_code == 1
        assert f"is not a warehouse, but {root} is a warehouse: pass --root" in result.stderr
        assert "gwh init" not in result.stderr
    # run from inside the warehouse, the default ./warehouse is not there: --root . is meant
    monkeypatch.chdir(root)
    result = cli("views")  # it said "warehouse is not a warehouse, but ..."
    assert result.exit_code == 1 and "pass --root . " in result.stderr
    assert result.stderr.startswith("error: warehouse does not exist, but ")
    # and gwh init refuses to nest a new warehouse inside it
    result = cli("init", root / "nested")
    assert result.exit_code == 1 and f"inside the warehouse {root}" in result.stderr
    assert not (root / "nested").exists()


def test_the_default_root_beside_the_demo_names_the_demo(cli, tmp_path, monkeypatch):
    """`gwh demo` then `gwh sql ...` as the README goes: ./warehouse is not there, the demo is
    at gwh-demo/warehouse. It said "Run `gwh init warehouse` first"."""
    Warehouse.init(tmp_path / "gwh-demo" / "warehouse")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("GWH_ROOT", raising=False)
    result = cli("sql", "select 1")
    assert result.exit_code == 1 and "gwh init" not in result.stderr, result.stderr
    assert "gwh-demo/warehouse is a warehouse: pass --root gwh-demo/warehouse" in result.stderr


def _retyped(root, index: int, bad_row: int | None = None):
    """hsc_forced's partition file ``index`` (in the views' order) rewritten outside gwh with
    g_cmodel_mag as text (a pandas round trip gone wrong), row ``bad_row``'s value not a
    number."""
    files = sorted((root / "catalogs" / "hsc_forced" / "current").rglob("Npix=*.parquet"))
    path = [p for p in files if "/hsc_forced/dataset/" in p.as_posix()][index]
    table = pq.read_table(path)
    i = table.schema.get_field_index("g_cmodel_mag")
    text = [str(v) for v in table.column(i).to_pylist()]
    if bad_row is not None:
        text[bad_row] = "x"
    path.unlink()  # the file may be a hard link shared with another version
    pq.write_table(table.set_column(i, "g_cmodel_mag", pa.array(text)), path)
    return path


_RETYPED = "its column g_cmodel_mag is string where its table's is float"


def test_a_partition_file_rewritten_with_other_types_is_named(cli, loaded):
    """DuckDB binds a view's types from its first file: with g_cmodel_mag as text there, every
    view over it failed with a multi-line "Binder Error: No function matches ... isfinite(VARCHAR)"
    (gwh check: 10 contracts "unavailable", exit 0), naming no file."""
    first = _retyped(loaded.root, 0)
    for args in (
        ["sql", "SELECT avg(g_cmodel_mag) FROM hsc_forced"],
        ["sql", "SELECT count(*) FROM ml_objects"],
        ["check"],
    ):
        result = cli(*args, "--root", loaded.root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert f"{first.name} is damaged ({_RETYPED})" in result.stderr, result.stderr


def test_a_later_file_with_other_types_is_named_by_every_reader(cli, loaded):
    """A file after the first is cast to the first one's types: a value that is no number said
    "Conversion Error: Could not convert string 'x' to FLOAT", naming no file, and the
    per-partition readers (--dask) the same."""
    last = _retyped(loaded.root, -1, bad_row=0)
    result = cli("sql", "SELECT count(*) FROM ml_objects", "--root", loaded.root)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert f"{last.name} is damaged ({_RETYPED})" in result.stderr, result.stderr
    assert f"{last.name} is damaged ({_RETYPED})" in _partition_readers_say(loaded, "ml_objects")


def test_a_query_of_the_wrong_type_is_not_blamed_on_a_file(cli, loaded):
    """The check behind the two tests above runs on DuckDB's binding and cast errors, which a
    user's own query also raises: with every file whole, DuckDB's message is kept."""
    for sql in ("SELECT avg(specz_name) FROM hsc_specz", "SELECT CAST('x' AS FLOAT)"):
        result = cli("sql", sql, "--root", loaded.root)
        assert result.exit_code == 1, result.output
        assert "damaged" not in result.stderr and "Error" in result.stderr, result.stderr


def test_a_view_export_loaded_back_is_refused_not_shadowing_the_views(cli, wh_root, tmp_path):
    """`gwh sql --out` of ml_objects loaded as hsc-forced stored split, morphology_source and
    specz_match_distance_arcsec in hsc_forced: ml_objects then had split (the loaded values,
    NULL for most objects) and split_1 (its own), and an export by split read the loaded one."""
    out = tmp_path / "ml_objects.parquet"
    sql = "SELECT * FROM ml_objects ORDER BY object_id LIMIT 10"
    assert cli("sql", sql, "--out", out, "--root", wh_root).exit_code == 0
    before = _state(wh_root)
    result = cli("load", "hsc-forced", out, "--root", wh_root)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert "would give ml_objects a second column of a name it has" in result.stderr
    assert re.search(r" (\w+) and \1_1: drop them from the file", result.stderr), result.stderr
    assert _state(wh_root) == before  # nothing half-written, the file not recorded as loaded
    # the same rows without the views' columns load, and a new column of no view is kept
    own = pq.read_table(out).select(
        [c for c in pq.read_schema(out).names if c in _state_columns(wh_root, "hsc_forced")]
    )
    pq.write_table(own.append_column("my_note", pa.array(["x"] * own.num_rows)), out)
    assert cli("load", "hsc-forced", out, "--root", wh_root).exit_code == 0
    said = cli("sql", "SELECT split, my_note FROM ml_objects LIMIT 1", "--root", wh_root)
    assert said.exit_code == 0 and "split_1" not in said.stdout, said.output


def _state_columns(root, table: str) -> set[str]:
    return set(Warehouse.open(root).query(f"SELECT * FROM {table} LIMIT 0").column_names)


def test_a_path_the_system_refuses_is_one_line_not_a_traceback(cli, wh_root, tmp_path):
    """Outputs no command checked itself: an existing file (gwh cutouts request's FileExistsError)
    and, with write permission denied, an unwritable folder (PermissionError tracebacks from
    gwh plot, cutouts show, cutouts request and export)."""
    import sys

    taken = tmp_path / "list.csv"
    taken.write_text("mine")
    result = cli("cutouts", "request", "--out", taken, "--root", wh_root)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr == f"error: {taken}: File exists: remove it, or give another path.\n"
    assert taken.read_text() == "mine"
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    # root ignores permissions: drop the capabilities that let it (a user's view of the folder)
    as_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        as_user = []
    for args in (
        ["plot", "sky", "--table", "hsc_forced", "--out", locked / "sky.png"],
        ["cutouts", "request", "--out", locked / "lists"],
    ):
        done = subprocess.run(
            [*as_user, sys.executable, "-m", "cli", *map(str, args), "--root", str(wh_root)],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert done.returncode == 1, (args, done.stderr)
        assert done.stderr.startswith(f"error: {locked}") and len(done.stderr.splitlines()) == 1
    assert list(locked.iterdir()) == []


def test_plots_and_batch_lists_are_never_written_into_the_warehouses_own_parts(cli, wh_root):
    """gwh sql --out, export and release pack refused these targets; gwh plot, cutouts show
    --png and cutouts request --out wrote into catalogs/ and releases/ (a request into
    releases/v1 changed a release that `release verify` still passed)."""
    before = _state(wh_root)
    catalogs, releases = wh_root / "catalogs", wh_root / "releases"
    for args, option, target in (
        (["plot", "sky", "--table", "hsc_forced"], "--out", catalogs / "sky.png"),
        (["cutouts", "request"], "--out", catalogs / "lists"),
        (["cutouts", "request"], "--out", releases / "v9"),
    ):
        result = cli(*args, option, target, "--root", wh_root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert f"{option} {target} is inside the warehouse's" in result.stderr, result.stderr
    assert _state(wh_root) == before and not releases.exists()


def test_two_columns_of_one_name_are_refused_where_they_cannot_be_held(cli, wh_root, tmp_path):
    """--out x.parquet failed with a pyarrow ValueError traceback; -f json printed an object with
    a repeated key ({"a": 1, "a": 2}), which JSON readers collapse to one value."""
    sql = "SELECT 1 AS a, 2 AS a"
    for args in (["--out", tmp_path / "x.parquet"], ["-f", "json"], ["-f", "jsonl"]):
        result = cli("sql", sql, *args, "--root", wh_root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert "returns two columns named a, which" in result.stderr and "AS a_2" in result.stderr
    assert not (tmp_path / "x.parquet").exists()
    shown = cli("sql", sql, "-f", "csv", "--root", wh_root)  # a CSV header may repeat a name
    assert shown.exit_code == 0 and shown.stdout.splitlines() == ['"a","a"', "1,2"]


def test_a_load_onto_a_damaged_or_deleted_partition_names_it(cli, wh_root, field, tmp_path):
    """gwh sql named the file; gwh load merging into it printed pyarrow's ArrowInvalid ("Parquet
    magic bytes not found") or, deleted, a FileNotFoundError traceback."""
    more = tmp_path / "more_specz.parquet"  # new spec-z entries of held objects: merged in
    rows = field.specz.slice(0, 5)
    names = pa.array([f"{n}-new" for n in rows.column("specz_name").to_pylist()])
    pq.write_table(
        rows.set_column(rows.schema.get_field_index("specz_name"), "specz_name", names), more
    )
    current = wh_root / "catalogs" / "hsc_specz" / "current" / "hsc_specz" / "dataset"
    victim = sorted(current.rglob("Npix=*.parquet"))[0]
    data = victim.read_bytes()
    victim.unlink()  # the file may be a hard link shared with another version
    victim.write_bytes(data[: len(data) // 2])
    for how in ("is damaged (", "missing"):
        before = _state(wh_root)
        result = cli("load", "hsc-specz", more, "--root", wh_root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert f"{victim.name} " in result.stderr and how in result.stderr, result.stderr
        assert _state(wh_root) == before
        victim.unlink(missing_ok=True)  # next: the file deleted


def test_a_query_that_does_not_parse_is_one_line_with_its_line(cli, wh_root):
    """DuckDB's parser error came with its excerpt and a caret: four lines on stderr (and in
    the web app's JSON)."""
    result = cli("sql", "select 1,\n from where", "--root", wh_root)
    assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
    assert result.stderr == (
        'error: Parser Error: syntax error at or near "where" (at line 2 of the query)\n'
    )


def test_a_damaged_warehouse_duckdb_is_named_as_damaged(cli, wh_root):
    """An empty or cut warehouse.duckdb said "If a DuckDB client holds it open for writing,
    reopen it read-only", which no user could act on."""
    db_file = wh_root / "warehouse.duckdb"
    whole = db_file.read_bytes()
    for cut in (b"", whole[:5000]):
        db_file.write_bytes(cut)
        result = cli("views", "--root", wh_root)
        assert result.exit_code == 1 and len(result.stderr.splitlines()) == 1, result.output
        assert f"{db_file} is damaged (" in result.stderr and "Restore it" in result.stderr
        assert "read-only" not in result.stderr


def test_cutout_requests_and_export_bands_are_checked_before_anything_is_made(
    cli, wh_root, tmp_path
):
    """cutouts request --view of a view with no positions gave DuckDB's binder error, --bands q
    left an empty --out folder behind, and export --bands '' exported every band."""
    result = cli(
        "cutouts", "request", "--out", tmp_path / "a", "--view", "hsc_specz", "--root", wh_root
    )
    assert result.exit_code == 1 and "hsc_specz has no ra or dec column" in result.stderr
    result = cli("cutouts", "request", "--out", tmp_path / "b", "--bands", "q", "--root", wh_root)
    assert result.exit_code == 1 and "unknown HSC band 'q'" in result.stderr
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    for empty, said in (("", "--bands names no band"), (",", "has an empty band name")):
        result = cli(
            "export",
            "--split",
            "test",
            "--out",
            tmp_path / "x.h5",
            "--bands",
            empty,
            "--root",
            wh_root,
        )
        assert result.exit_code == 1 and said in result.stderr, result.output


def test_a_home_folder_astropy_cannot_search_is_no_traceback(wh_root, tmp_path):
    """astropy looks for its configuration under HOME when first used; a HOME the user cannot
    search (another user's, as with sudo -u or in a container) made every command that reads
    through astropy end in a PermissionError traceback."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop the capability that ignores permissions")
    home = tmp_path / "home"
    (home / ".astropy" / "config").mkdir(parents=True)
    home.chmod(0o000)
    as_user = ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASTROPY_", "XDG_"))}
    env.update(HOME=str(home), TMPDIR=str(tmp_path))
    try:
        done = subprocess.run(
            [*as_user, sys.executable, "-m", "cli", "sql", "select 1 AS one", "--root", wh_root],
            capture_output=True,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parents[1],
        )
    finally:
        home.chmod(0o755)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    assert done.stdout.splitlines()[0].strip() == "one"
    assert (tmp_path / f"gwh-astropy-{os.getuid()}" / "config").is_dir()
