"""Bad input: a clear message naming the file, column or row, a non-zero exit, nothing changed."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.conftest import tree_snapshot
from warehouse.simulate_catalog import write_archive_csv, write_archive_fits

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
    ("ra", "dec", "column"), [(400.0, 1.0, "ra"), (10.0, -91.0, "dec"), (10.0, "NaN", "dec")]
)
def test_position_out_of_range(cli, wh_root, tmp_path, ra, dec, column):
    path = tmp_path / "badpos.csv"
    path.write_text(HEADER + f"{BIG},10,1,22.1,f\n{BIG + 1},{ra},{dec},22.1,f\n")
    _load_fails(cli, wh_root, "hsc-forced", path, "line 3", f"{column} = ", "outside")


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
    wh.load("hsc-forced", [field_files["forced"]])  # no forced2: no sdsscentroid_flag
    wh.load("hsc-specz", [field_files["specz"]])
    result = cli("sql", "select count(*) from quality_flags", "--root", wh.root)
    assert result.exit_code == 1
    assert "g_sdsscentroid_flag" in result.stderr and "never loaded" in result.stderr
    result = cli("sql", "select split from ml_objects", "--root", wh.root)
    assert result.exit_code == 1
    assert "ml_objects is unavailable" in result.stderr and "y_sdsscentroid_flag" in result.stderr


def test_view_over_unloaded_table_says_what_to_load(cli, make_warehouse):
    wh = make_warehouse()
    result = cli("sql", "select * from hsc_specz", "--root", wh.root)
    assert result.exit_code == 1
    assert "hsc_specz has not been loaded yet" in result.stderr
    assert "gwh load hsc-specz" in result.stderr
