"""``gwh sql`` output: strict JSON for every DuckDB type, tables that fit the terminal, CSV of
nested columns, Parquet that astropy and pandas read with units."""

from __future__ import annotations

import csv
import decimal
import io
import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from warehouse import api, output
from warehouse.errors import QueryError, ReadOnlyError

REPO = Path(__file__).resolve().parents[2]

EVERY_TYPE = r"""
SELECT 1.50::DECIMAL(4, 2) AS dec, 12345678901234567890.12::DECIMAL(38, 2) AS dec38,
       170141183460469231731687303715884105727::HUGEINT AS huge,
       -170141183460469231731687303715884105727::HUGEINT AS neg_huge,
       2::UHUGEINT AS uhuge, 9007199254740993::BIGINT AS id, 18446744073709551615::UBIGINT AS ubig,
       'inf'::DOUBLE AS pinf, '-inf'::FLOAT AS ninf, 'nan'::DOUBLE AS nan, NULL::DOUBLE AS null_d,
       0.1::FLOAT AS f32, 0.1::DOUBLE AS f64, DATE '2020-01-02' AS day,
       TIMESTAMP '2020-01-02 03:04:05.5' AS ts, TIMESTAMPTZ '2020-01-02 03:04:05+00' AS tstz,
       TIME '03:04:05' AS t, INTERVAL '1 month 2 days 3.25 seconds' AS iv, '\x01\xff'::BLOB AS blob,
       [1, NULL, 3] AS list, {'a': 1.5, 'b': ['x']} AS struct, MAP([1, 2], ['x', 'y']) AS map,
       'tab' || chr(9) || '"quote"' AS text, NULL::VARCHAR AS null_s, true AS yes,
       gen_random_uuid() AS uuid
"""


def refuse(name: str):
    raise ValueError(f"not JSON: {name}")


@pytest.fixture(scope="module")
def every_type():
    with duckdb.connect() as con:
        return con.sql(EVERY_TYPE).to_arrow_table()


def strict(text: str):
    return json.loads(text, parse_constant=refuse, parse_float=decimal.Decimal)


def test_json_of_every_duckdb_type_is_strict_and_exact(every_type):
    rows = strict(output.render(every_type, "json"))
    assert isinstance(rows, list) and len(rows) == 1
    r = rows[0]
    assert r["dec"] == decimal.Decimal("1.50") and r["dec38"] == decimal.Decimal(
        "12345678901234567890.12"
    )
    assert r["huge"] == 2**127 - 1 and r["neg_huge"] == -(2**127 - 1) and r["uhuge"] == 2
    assert r["id"] == 9007199254740993 and isinstance(r["id"], int)  # not 9007199254740992.0
    assert r["ubig"] == 2**64 - 1
    assert (r["pinf"], r["ninf"], r["nan"], r["null_d"]) == ("inf", "-inf", "nan", None)
    assert float(r["pinf"]) == float("inf")
    assert r["f32"] == decimal.Decimal("0.1") and r["f64"] == decimal.Decimal("0.1")
    assert r["day"] == "2020-01-02" and r["ts"] == "2020-01-02T03:04:05.500000"
    assert r["tstz"].startswith("2020-01-02T03:04:05") and r["t"] == "03:04:05"
    assert r["iv"] == "P1M2DT3.25S" and r["blob"] == "01ff"
    assert r["list"] == [1, None, 3]
    assert r["struct"] == {"a": decimal.Decimal("1.5"), "b": ["x"]}
    assert r["map"] == {"1": "x", "2": "y"}
    assert r["text"] == 'tab\t"quote"' and r["null_s"] is None and r["yes"] is True
    assert len(r["uuid"]) == 36


def test_jsonl_is_one_strict_object_per_line(every_type):
    lines = output.render(every_type, "jsonl").splitlines()
    assert len(lines) == 1 and strict(lines[0])["huge"] == 2**127 - 1
    with duckdb.connect() as con:
        empty = con.sql("SELECT 1 AS a WHERE false").to_arrow_table()
        two = con.sql("SELECT * FROM range(2) AS t(a)").to_arrow_table()
    assert output.render(empty, "json") == "[]" and output.render(empty, "jsonl") == ""
    assert [strict(x) for x in output.render(two, "jsonl").splitlines()] == [{"a": 0}, {"a": 1}]


def test_lossless_128_bit_integers_are_exact():
    # DuckDB's own Arrow export (arrow_lossless_conversion) as an opaque 16-byte extension
    with duckdb.connect() as con:
        con.execute("SET arrow_lossless_conversion = true")
        t = con.sql(
            "SELECT 340282366920938463463374607431768211455::UHUGEINT AS u, "
            "-170141183460469231731687303715884105727::HUGEINT - 1 AS h"
        ).to_arrow_table()
    r = strict(output.render(t, "json"))[0]
    assert r == {"u": 2**128 - 1, "h": -(2**127)}
    with duckdb.connect() as con:  # BIGNUM: arbitrary precision, always an opaque extension
        big = con.sql(
            f"SELECT '{3**100}'::BIGNUM AS p, '{-(7**90)}'::BIGNUM AS n, '0'::BIGNUM AS z"
        ).to_arrow_table()
    assert strict(output.render(big, "json"))[0] == {"p": 3**100, "n": -(7**90), "z": 0}
    assert str(3**100) in output.render(big, "table", max_rows=None)
    assert next(csv.DictReader(io.StringIO(output.render(t, "csv")))) == {
        "u": str(2**128 - 1),
        "h": str(-(2**127)),
    }


def test_csv_writes_nested_cells_as_json_text(every_type):
    row = next(csv.DictReader(io.StringIO(output.render(every_type, "csv"))))
    assert json.loads(row["list"]) == [1, None, 3]
    assert json.loads(row["struct"]) == {"a": 1.5, "b": ["x"]}
    assert json.loads(row["map"]) == {"1": "x", "2": "y"}
    assert row["blob"] == "01ff" and row["iv"] == "P1M2DT3.25S" and row["id"] == "9007199254740993"


def test_table_hides_columns_that_do_not_fit_and_prints_floats_at_their_precision():
    with duckdb.connect() as con:
        wide = con.sql(
            "SELECT range AS id, "
            + ", ".join(f"{k}.5::DOUBLE AS column_{k}" for k in range(60))
            + ", 0.1::FLOAT AS f32, 1/3 AS f64 FROM range(3)"
        ).to_arrow_table()
    text = output.format_table(wide, width=90)
    lines = text.splitlines()
    assert all(len(line) <= 90 for line in lines)
    assert lines[0].split()[0] == "id" and lines[0].split()[-1] == "f64"  # both ends kept
    assert "…" in lines[0]
    footer = " ".join(lines[5:])  # after the header, the rule and 3 rows; wrapped to 90
    assert "(3 rows; 63 columns, 55 hidden to fit 90 characters (select fewer columns" in footer
    assert lines[2].split()[-2:] == ["0.1", "0.3333333333333333"]  # float32 0.1, not 0.100000001
    full = output.format_table(wide, width=10_000)
    assert "…" not in full and full.endswith("(3 rows)")


def test_gwh_sql_formats_from_the_command_line(cli, loaded, tmp_path):
    root = str(loaded.root)
    ids = loaded.query("SELECT object_id FROM hsc_forced ORDER BY object_id LIMIT 5")
    expected = ids.column("object_id").to_pylist()
    q = "SELECT object_id, 1.5::DECIMAL(4,2) AS d, 'inf'::DOUBLE AS i FROM hsc_forced"
    q += " ORDER BY object_id LIMIT 5"
    r = cli("sql", q, "--format", "json", "--root", root)
    assert r.exit_code == 0, r.output
    assert [row["object_id"] for row in strict(r.stdout)] == expected
    r = cli("sql", q, "--format", "jsonl", "--root", root)
    assert [strict(x)["i"] for x in r.stdout.splitlines()] == ["inf"] * 5
    r = cli("sql", "select * from ml_objects limit 3", "--root", root, env={"COLUMNS": "100"})
    assert r.exit_code == 0, r.output
    assert all(len(line) <= 100 for line in r.stdout.splitlines())
    assert "hidden to fit 100 characters" in r.stdout
    r = cli("sql", "select [1, 2] AS l, {'a': 1} AS s", "--format", "csv", "--root", root)
    assert r.exit_code == 0 and r.stdout.splitlines()[1] == '"[1, 2]","{""a"": 1}"'
    r = cli("sql", "select [1, 2] AS l", "--out", tmp_path / "x.csv", "--root", root)
    assert r.exit_code == 0 and (tmp_path / "x.csv").read_text().splitlines()[1] == '"[1, 2]"'
    help_text = cli("sql", "--help").stdout
    assert "JSON array" in help_text and "JSON Lines" in help_text


def test_json_out_writes_the_text_format_json_prints(cli, loaded, tmp_path):
    """``--out x.json`` is one JSON array of row objects and ``x.jsonl`` JSON Lines, the very
    text ``--format json``/``jsonl`` prints (it was refused: "must end in .csv or .parquet");
    another name takes an explicit --format, and a --format the name contradicts is refused."""
    root = str(loaded.root)
    q = "SELECT object_id, ra, 'nan'::DOUBLE AS x FROM hsc_forced ORDER BY object_id LIMIT 4"
    ids = [r["object_id"] for r in loaded.query(q).to_pylist()]
    for suffix, fmt in ((".json", "json"), (".jsonl", "jsonl"), (".ndjson", "jsonl")):
        out = tmp_path / f"x{suffix}"
        r = cli("sql", q, "--out", out, "--root", root)
        assert r.exit_code == 0 and r.stdout == f"wrote 4 rows to {out}\n", r.output
        printed = cli("sql", q, "--format", fmt, "--root", root).stdout
        assert out.read_text(encoding="utf-8") == printed
        text = out.read_text(encoding="utf-8")
        rows = strict(text) if fmt == "json" else [strict(x) for x in text.splitlines()]
        assert [row["object_id"] for row in rows] == ids and rows[0]["x"] == "nan"
    assert pd.read_json(tmp_path / "x.jsonl", lines=True, dtype=False)["object_id"].tolist() == ids
    empty = "SELECT object_id FROM hsc_forced WHERE false"
    assert cli("sql", empty, "--out", tmp_path / "e.json", "--root", root).exit_code == 0
    assert cli("sql", empty, "--out", tmp_path / "e.jsonl", "--root", root).exit_code == 0
    assert (tmp_path / "e.json").read_text() == "[]\n" and (tmp_path / "e.jsonl").read_text() == ""
    r = cli("sql", q, "--format", "csv", "--out", tmp_path / "x.txt", "--root", root)
    assert r.exit_code == 0 and (tmp_path / "x.txt").read_text().startswith('"object_id","ra"')
    r = cli("sql", q, "--format", "json", "--out", tmp_path / "y.csv", "--root", root)
    assert r.exit_code == 1 and r.stderr == (
        f"error: --out {tmp_path / 'y.csv'} writes csv but --format json was given: drop "
        "--format, or name the file .json\n"
    )
    r = cli("sql", q, "--out", tmp_path / "y.txt", "--root", root)
    assert r.exit_code == 1 and "or give --format csv|json|jsonl" in r.stderr
    assert not (tmp_path / "y.csv").exists() and not (tmp_path / "y.txt").exists()


def test_out_keeps_an_existing_file_unless_overwrite(cli, loaded, tmp_path):
    """``gwh sql --out mine.csv`` replaced the user's file without a word (``gwh export``
    refuses an existing file); now it is one line and the file is kept, --overwrite replaces."""
    mine = tmp_path / "mine" / "mine.csv"
    mine.parent.mkdir()
    mine.write_text("keep\n")
    r = cli("sql", "select 1 AS a", "--out", mine, "--root", str(loaded.root))
    assert r.exit_code == 1 and r.stderr == (
        f"error: --out {mine} already exists; give --overwrite to replace it, or another file "
        "name.\n"
    )
    assert mine.read_text() == "keep\n" and list(mine.parent.iterdir()) == [mine]
    r = cli("sql", "select 1 AS a", "--out", mine, "--overwrite", "--root", str(loaded.root))
    assert r.exit_code == 0 and mine.read_text() == '"a"\n1\n'
    assert r.stdout == f"wrote 1 row to {mine}\n"


def test_out_dash_is_stdout(cli, loaded, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("sql", "select 1 AS a", "--out", "-", "--format", "jsonl", "--root", str(loaded.root))
    assert r.exit_code == 0 and r.stdout == '{"a": 1}\n' and not (tmp_path / "-").exists()


def test_parquet_out_has_units_and_reads_in_astropy_and_pandas(cli, loaded, tmp_path):
    from astropy.table import Table

    out = tmp_path / "x.parquet"
    q = (
        "SELECT object_id, ra, g_cmodel_mag, g_cmodel_flux, "
        "CASE WHEN object_id % 2 = 0 THEN NULL ELSE 'name' END AS maybe_name "
        "FROM hsc_forced ORDER BY object_id LIMIT 6"
    )
    r = cli("sql", q, "--out", out, "--root", str(loaded.root))
    assert r.exit_code == 0, r.output
    schema = pq.read_schema(out)
    assert schema.field("g_cmodel_mag").metadata[b"unit"] == b"mag"
    assert schema.field("ra").metadata[b"unit"] == b"deg"
    assert b"cmodel" in schema.field("g_cmodel_mag").metadata[b"description"]
    expected = loaded.query(q).to_pylist()

    t = Table.read(out)  # failed on NULL strings before
    assert str(t["g_cmodel_mag"].unit) == "mag" and str(t["g_cmodel_flux"].unit) == "nJy"
    assert "cmodel" in t["g_cmodel_mag"].description
    assert t["object_id"].tolist() == [row["object_id"] for row in expected]

    df = pd.read_parquet(out)
    assert df["object_id"].tolist() == [row["object_id"] for row in expected]
    assert [None if pd.isna(v) else v for v in df["maybe_name"]] == [
        row["maybe_name"] for row in expected
    ]


def test_catalog_tables_carry_units_and_descriptions_in_their_parquet(loaded):
    for table, column, unit in (
        ("hsc_forced", "g_cmodel_mag", b"mag"),
        ("hsc_forced", "g_cmodel_flux", b"nJy"),
        ("hsc_specz", "specz_ra", b"deg"),
    ):
        cv = loaded.current_version(table)
        for path in (cv.files()[0], cv.path / "dataset" / "_common_metadata"):
            meta = pq.read_schema(path).field(column).metadata
            assert meta[b"unit"] == unit and meta[b"description"], (table, column, path)


def test_parquet_out_writes_what_parquet_has_no_type_for_as_text(tmp_path):
    with duckdb.connect() as con:
        t = con.sql(
            "SELECT INTERVAL 1 DAY AS iv, '123456789012345678901234567890123'::BIGNUM AS big, "
            "[1, 2] AS l UNION ALL SELECT NULL, NULL, NULL"
        ).to_arrow_table()
    output.save(t, tmp_path / "x.parquet")
    rows = pq.read_table(tmp_path / "x.parquet").to_pylist()
    assert rows == [
        {"iv": "P1D", "big": "123456789012345678901234567890123", "l": [1, 2]},
        {"iv": None, "big": None, "l": None},
    ]
    with pytest.raises(output.QueryError, match=r"must end in .csv, .parquet, .json \(one"):
        output.save(t, tmp_path / "x.txt")


def test_out_never_writes_into_the_warehouse_data(cli, loaded, tmp_path):
    """``gwh sql`` is a reader: ``--out`` naming a file of the warehouse's catalogs (or its
    releases) is refused, or a partition file of the current version (hard-linked into a
    release) would be replaced by the result and the table silently lose rows."""
    root = loaded.root
    assert cli("release", "create", "v1", "--root", str(root)).exit_code == 0
    part = sorted((root / "catalogs" / "hsc_specz" / "current").rglob("Npix=*.parquet"))[0]
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
    rows = loaded.query("select count(*) AS n from hsc_specz").column("n")[0].as_py()
    through_link = root / "catalogs" / "hsc_specz" / "current" / ".." / "new.csv"
    release = root / "releases" / "v1" / "x.csv"
    for out in (part, root / "catalogs" / "x.parquet", through_link, release):
        r = cli("sql", "select 1 AS a", "--out", out, "--root", str(root))
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception
        assert r.stderr.startswith(f"error: --out {out} is inside the warehouse's ")
        assert "write it elsewhere" in r.stderr
    lock = root / ".lock"  # replaced, a second writer would run beside a load holding it
    r = cli("sql", "select 1 AS a", "--out", lock, "--format", "csv", "--root", str(root))
    assert r.stderr.startswith(f"error: --out {lock} is the warehouse's own file .lock, "), r.stderr
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == before
    assert cli("release", "verify", "v1", "--root", str(root)).exit_code == 0
    assert loaded.query("select count(*) AS n from hsc_specz").column("n")[0].as_py() == rows
    beside = root / "result.csv"  # the warehouse folder itself is the user's
    assert cli("sql", "select 1 AS a", "--out", beside, "--root", str(root)).exit_code == 0


def test_max_rows_below_zero_is_a_usage_error(cli, loaded):
    r = cli("sql", "select 1", "--max-rows", "-5", "--root", str(loaded.root))
    assert r.exit_code == 2 and "--max-rows" in r.stderr and r.stdout == ""
    r = cli("sql", "select * from range(3)", "--max-rows", "0", "--root", str(loaded.root))
    assert r.exit_code == 0 and "(3 rows, first 0 shown" in r.stdout


def test_table_format_holds_only_the_rows_it_shows(loaded, tmp_path):
    """``gwh sql "select * from hsc_forced"`` on a survey table prints 100 rows: it must not
    hold the whole result in memory to do so. 300 M rows of BIGINT are 2.4 GB as Arrow; the
    process may use 2.5 GB of address space in all (Python, DuckDB, the libraries)."""
    script = (
        "import resource, sys\n"
        "resource.setrlimit(resource.RLIMIT_AS, (2_500_000_000, 2_500_000_000))\n"
        "sys.argv = ['gwh', 'sql', 'select range AS n from range(300000000)', '--root', "
        f"{str(loaded.root)!r}]\n"
        "from cli import main\n"
        "main()\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert run.returncode == 0, run.stderr[-500:]
    lines = run.stdout.splitlines()
    assert lines[:3] == [" n", "--", " 0"] and lines[101] == "99"
    assert "(300,000,000 rows, first 100 shown" in run.stdout


def test_preview_counts_every_row_and_keeps_the_first(loaded):
    shown, total = api.preview(loaded, "select range AS n from range(10) order by n", 3)
    assert total == 10 and shown.column("n").to_pylist() == [0, 1, 2]
    shown, total = api.preview(loaded, "select object_id from hsc_forced where false", 100)
    assert total == 0 and shown.num_rows == 0 and shown.column_names == ["object_id"]
    text = output.format_table(shown, 100, total=total)
    assert text.endswith("(0 rows)")
    with pytest.raises(ReadOnlyError):
        api.preview(loaded, "copy hsc_forced to 'x.csv'", 3)


def test_an_error_while_the_rows_stream_is_one_line(cli, loaded):
    """DuckDB reports an error raised after the first batches through pyarrow's stream."""
    q = "select case when range = 500000 then error('boom') else range end AS x from range(1000000)"
    with pytest.raises(QueryError, match="boom"):
        api.preview(loaded, q, 10)
    r = cli("sql", q, "--root", str(loaded.root))
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception
    assert r.stderr.startswith("error: ") and "boom" in r.stderr


def _batches(table: pa.Table, rows: int) -> pa.RecordBatchReader:
    """``table`` as a stream of batches of ``rows`` rows, as DuckDB hands a result over."""
    return pa.RecordBatchReader.from_batches(table.schema, table.to_batches(max_chunksize=rows))


def test_streamed_formats_are_the_text_render_gives(every_type):
    """gwh sql --format csv/json/jsonl print a batch at a time: the same text as the whole
    result rendered at once (csv's last newlines stripped as render does), for no rows too."""
    many = pa.concat_tables([every_type.drop_columns(["uuid"])] * 7)
    trailing_null = pa.table({"z": pa.array([1, None, None], pa.int64())})
    for table in (many, many.slice(0, 0), trailing_null):
        for fmt in ("csv", "json", "jsonl"):
            got: list[str] = []
            output.write_stream(_batches(table, 3), fmt, got.append)
            assert "".join(got) == output.render(table, fmt) + "\n", (fmt, table.num_rows)
            assert len(got) > 2 or table.num_rows < 7, fmt  # written as the batches came


def test_streamed_parquet_is_the_file_of_the_whole_table(tmp_path, monkeypatch):
    """--out x.parquet writes a batch at a time: the same bytes as the whole table in one
    write (row groups cut as pyarrow cuts them), text lengths in astropy's header over every
    batch (spilled beside the output first, then removed)."""
    from astropy.table import Table

    from warehouse.output import saving

    table = pa.table(
        {
            "object_id": pa.array([2**62 + i for i in range(10)], pa.int64()),
            "name": pa.array(["a", None, "b" * 9, "c", "d", "é" * 3, "", None, "x", "y"]),
            "blob": pa.array([b"\x00"] * 9 + [b"\x01" * 5]),
        }
    )
    info = {"object_id": {"description": "id"}}
    monkeypatch.setattr(saving, "ROW_GROUP_ROWS", 4)
    output.save_stream(_batches(table, 3), tmp_path / "streamed.parquet", info)
    with pq.ParquetWriter(
        tmp_path / "whole.parquet",
        pq.read_schema(tmp_path / "streamed.parquet"),
        compression="snappy",
    ) as writer:
        writer.write_table(saving.with_metadata(table, info), row_group_size=4)
    streamed = (tmp_path / "streamed.parquet").read_bytes()
    assert streamed == (tmp_path / "whole.parquet").read_bytes()
    assert pq.ParquetFile(tmp_path / "streamed.parquet").metadata.num_row_groups == 3
    meta = pq.read_schema(tmp_path / "streamed.parquet").metadata
    assert meta[b"table::len::name"] == b"9" and meta[b"table::len::blob"] == b"5"
    read = Table.read(tmp_path / "streamed.parquet")
    assert list(read["name"])[:3] == ["a", "None", "b" * 9] and read["name"].dtype.str == "<U9"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["streamed.parquet", "whole.parquet"]


def test_an_error_while_csv_json_or_out_stream_is_one_line_and_leaves_no_file(cli, loaded):
    q = "select case when range = 500000 then error('boom') else range end AS x from range(1000000)"
    out = loaded.root.parent / "x.parquet"
    for args in (["-f", "csv"], ["-f", "json"], ["--out", out], ["--out", out.with_suffix(".csv")]):
        r = cli("sql", q, *args, "--root", str(loaded.root))
        assert r.exit_code == 1 and isinstance(r.exception, SystemExit), (args, r.exception)
        assert r.stderr.startswith("error: ") and "boom" in r.stderr, r.stderr
        assert len(r.stderr.splitlines()) == 1, r.stderr
    assert not [p for p in loaded.root.parent.iterdir() if p.name.startswith(("x.", ".x."))]


def _gwh_with_its_reader_gone(loaded, args: list[str], first_line: bytes | None) -> None:
    """Run ``gwh ARGS --root ROOT`` with its output read up to ``first_line`` (None: nothing),
    then closed, as ``| head`` does: it must end quietly, exit 0, nothing on stderr."""
    script = (
        "import sys\n"
        f"sys.argv = ['gwh', *{args!r}, '--root', {str(loaded.root)!r}]\n"
        "from cli import main\n"
        "main()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO
    ) as run:
        assert run.stdout is not None
        if first_line is not None:
            assert run.stdout.readline() == first_line
        run.stdout.close()
        assert run.wait(timeout=300) == 0
        assert run.stderr is not None and run.stderr.read() == b""


def test_a_reader_that_stops_early_ends_the_stream_quietly(loaded):
    """``gwh sql -f csv ... | head -1``: the rest is not wanted; exit 0, nothing on stderr (the
    whole text printed at once never met the closed pipe; a stream does)."""
    sql = "select range AS n from range(3000000)"
    _gwh_with_its_reader_gone(loaded, ["sql", "-f", "csv", sql], b'"n"\n')


@pytest.mark.parametrize("command", [["views"], ["cone", "150", "2", "3600"]])
def test_any_command_whose_reader_stops_ends_quietly(loaded, command):
    """``gwh views | head -1`` exited 1 with a BrokenPipeError now and then (when the pipe was
    closed before gwh wrote its lines): only gwh sql's stream ended quietly."""
    _gwh_with_its_reader_gone(loaded, command, None)  # its first write meets a closed pipe
