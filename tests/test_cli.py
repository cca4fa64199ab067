"""The gwh command line: every command documented, formats, shell, roots, entry points."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import resource
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from cli import app
from loaders import registry
from loaders.simulated.catalog import simulate_field
from tests.support.readonly_fs import read_only_prefix

REPO = Path(__file__).resolve().parents[1]


def _commands(typer_app, prefix=()):
    for info in typer_app.registered_commands:
        name = info.name or info.callback.__name__.replace("_", "-")
        yield prefix + (name,), info
    for group in typer_app.registered_groups:
        yield from _commands(group.typer_instance, prefix + (group.name,))


def test_every_command_has_help_text(cli):
    commands = list(_commands(app))
    assert len(commands) >= 8
    for path, info in commands:
        assert (info.help or (info.callback.__doc__ or "")).strip(), f"gwh {' '.join(path)}"
        result = cli(*path, "--help")
        assert result.exit_code == 0, path
        assert "Usage" in result.output


def test_every_group_has_help_text():
    for group in app.registered_groups:
        assert group.typer_instance.info.help, group.name


def test_init_and_root_resolution(cli, tmp_path, monkeypatch):
    result = cli("init", tmp_path / "a")
    assert result.exit_code == 0 and (tmp_path / "a" / "warehouse.toml").exists()
    again = cli("init", tmp_path / "a")
    assert again.exit_code == 1 and "already a warehouse" in again.stderr
    assert cli("views", env={"GWH_ROOT": str(tmp_path / "a")}).exit_code == 0
    monkeypatch.chdir(tmp_path)
    assert cli("init").exit_code == 0 and (tmp_path / "warehouse" / "warehouse.duckdb").exists()
    assert cli("views").exit_code == 0  # ./warehouse by default
    refused = cli("init", REPO / "warehouse")
    assert refused.exit_code == 1 and "Python package" in refused.stderr


def test_init_where_no_folder_can_be_made_is_one_line(cli, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for root in (tmp_path / "afile", tmp_path / "afile" / "wh"):
        result = cli("init", root)
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
        assert f"cannot create a warehouse at {root}: afile is a file, not a folder" in (
            result.stderr
        )
    assert (tmp_path / "afile").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_init_in_a_read_only_folder_is_one_line(tmp_path):
    (tmp_path / "ro").mkdir()
    prefix = read_only_prefix(tmp_path / "ro")
    run = subprocess.run(
        [*prefix, sys.executable, str(REPO / "cli.py"), "init", str(tmp_path / "ro" / "wh")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and "Traceback" not in run.stderr, run.stderr
    assert run.stderr.startswith(f"error: cannot create a warehouse at {tmp_path}/ro/wh: ")
    assert len(run.stderr.strip().splitlines()) == 1
    assert list((tmp_path / "ro").iterdir()) == []


def test_load_views_and_sql_formats(cli, tmp_path, field_files):
    root = tmp_path / "wh"
    assert cli("init", root).exit_code == 0
    load = cli("load", "hsc-forced", field_files["forced"], field_files["forced2"], "--root", root)
    assert load.exit_code == 0 and "hsc_forced: 1,200 new rows → 1,200" in load.output
    assert cli("load", "hsc-specz", field_files["specz"], "--root", root).exit_code == 0
    again = cli("load", "hsc-specz", field_files["specz"], "--root", root)
    assert again.exit_code == 0 and "already loaded" in again.output
    views = cli("views", "--root", root)
    for name in ("hsc_forced", "hsc_specz", "quality_flags", "deduplicated", "ml_objects"):
        assert name in views.output
    assert "1,200" in views.output

    q = "select object_id, split, ra from ml_objects order by object_id limit 5"
    table = cli("sql", q, "--root", root)
    assert table.exit_code == 0 and "object_id" in table.output and "(5 rows)" in table.output
    as_csv = cli("sql", q, "--root", root, "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(as_csv.output)))
    ids = [int(r["object_id"]) for r in rows]
    as_json = cli("sql", q, "--root", root, "--format", "json")
    records = json.loads(as_json.output)  # one JSON array (--format jsonl: one per line)
    assert [r["object_id"] for r in records] == ids  # exact 64-bit integers in JSON
    assert ids == sorted(ids) and min(ids) > 2**53
    bad = cli("sql", q, "--root", root, "--format", "xml")
    assert bad.exit_code == 2 and "xml" in bad.output

    out = tmp_path / "ml.parquet"
    saved = cli("sql", "select * from ml_objects", "--root", root, "--out", out)
    assert saved.exit_code == 0
    t = pq.read_table(out)
    assert t.column("object_id").type.bit_width == 64 and t.num_rows > 100
    out_csv = tmp_path / "ml.csv"
    assert (
        cli(
            "sql", "select object_id, split from ml_objects", "--root", root, "--out", out_csv
        ).exit_code
        == 0
    )
    assert out_csv.read_text().startswith('"object_id","split"')
    no_dir = cli("sql", "select 1", "--root", root, "--out", tmp_path / "nope" / "x.csv")
    assert no_dir.exit_code == 1 and "does not exist" in no_dir.stderr


def test_shell_reads_statements(cli, loaded):
    script = (
        ".tables\n"
        "select count(*) as n\n  from ml_objects;\n"
        ".mode csv\n"
        "select split from split_summary order by split;\n"
        "select * from nowhere;\n"
        ".schema hsc_specz\n"
        ".quit\n"
    )
    result = cli("shell", "--root", loaded.root, input=script)
    assert result.exit_code == 0
    out = result.output
    assert "ml_objects" in out and "(1 row)" in out
    assert '"split"\n"test"\n"train"\n"validation"' in out
    assert "error: Catalog Error" in out and "nowhere" in out
    assert "specz_redshift" in out


def test_cone_command(cli, loaded, field):
    ra = field.forced.column("ra")[10].as_py()
    dec = field.forced.column("dec")[10].as_py()
    result = cli(
        "cone",
        ra,
        dec,
        60,
        "--root",
        loaded.root,
        "--format",
        "csv",
        "--columns",
        "object_id,distance_arcsec",
    )
    assert result.exit_code == 0
    rows = list(csv.DictReader(io.StringIO(result.output)))
    assert int(rows[0]["object_id"]) == field.forced.column("object_id")[10].as_py()
    dists = [float(r["distance_arcsec"]) for r in rows]
    assert dists == sorted(dists) and dists[-1] <= 60
    bad = cli("cone", 400, 0, 10, "--root", loaded.root)
    assert bad.exit_code == 1 and "outside [0, 360]" in bad.stderr
    assert cli("cone", 10, 0, 10, "--table", "nope", "--root", loaded.root).exit_code == 1
    # the table's footer named --out, which cone does not have
    wide = cli("cone", ra, dec, 3600, "--root", loaded.root)
    assert wide.exit_code == 0 and "first 100 shown" in wide.stdout, wide.output
    footer = " ".join(wide.stdout.split())
    assert "use --format csv/json for everything" in footer and "--out" not in footer


def test_cone_takes_southern_declinations_as_typed(cli, tmp_path):
    """``gwh cone 150 -2 10``: a negative Dec (half the sky; HSC's XMM field) is a number,
    not an unknown option ``-2``, with options before or after it."""
    root = tmp_path / "wh"
    assert cli("init", root).exit_code == 0
    (tmp_path / "south.csv").write_text("object_id,ra,dec\n1,150.0,-2.0\n2,150.001,-2.001\n")
    assert cli("load", "hsc-forced", tmp_path / "south.csv", "--root", root).exit_code == 0
    options = ["--format", "csv", "--columns", "object_id,dec", "--root", root]
    for args in (
        ["150", "-2", "10", *options],
        [*options, "150", "-2.0", "10"],
        [*options, "--", "150", "-2", "10"],
    ):
        result = cli("cone", *args)
        assert result.exit_code == 0, result.output
        assert result.stdout.splitlines() == ['"object_id","dec"', "1,-2", "2,-2.001"]
    typo = cli("cone", "150", "-2", "10", "--tabel", "hsc_forced", "--root", root)
    assert typo.exit_code == 2 and "--tabel" in typo.stderr


def test_check_command(cli, loaded, make_warehouse, field_files):
    result = cli("check", "--root", loaded.root)
    assert result.exit_code == 0
    assert "ok" in result.output and "ml_objects__unique_object_id" in result.output
    assert result.output.splitlines()[-1].endswith(" contracts checked, 0 failed")
    assert cli("check", "--strict", "--root", loaded.root).exit_code == 0
    # only the spec-z table: the views over hsc_forced cannot run; a CI step asks --strict
    partial = make_warehouse("partial")
    partial.load(registry.get("hsc-specz"), [field_files["specz"]])
    result = cli("check", "--root", partial.root)
    assert result.exit_code == 0, result.output
    assert "unavailable      ml_objects__unique_object_id" in result.output
    last = result.output.splitlines()[-1]
    assert "unavailable, not checked (--strict fails on them)" in last, last
    strict = cli("check", "--strict", "--root", partial.root)
    assert strict.exit_code == 1 and strict.output.splitlines()[-1].endswith("not checked")


def test_demo_small(cli, tmp_path):
    demo = tmp_path / "my demo"  # a space: the commands it suggests must paste as they are
    result = cli("demo", demo, "--objects", "400")
    assert result.exit_code == 0, result.output
    assert "SIMULATED" in result.output and "ml_objects" in result.output
    assert "view contracts (sql/tests): all pass" in result.output
    suggested = [line for line in result.output.splitlines() if "gwh" in line and "--root" in line]
    assert len(suggested) == 2
    for line in suggested:
        words = shlex.split(line.split("Try:")[-1])
        assert words[words.index("--root") + 1] == str(demo / "warehouse")
    assert cli("demo", demo, "--objects", "400").exit_code == 0  # rerun replaces
    # unless the demo folder now holds someone's work: a release, a file of theirs
    (demo / "warehouse" / "releases" / "v1").mkdir(parents=True)
    (demo / "my_analysis.txt").write_text("keep")
    kept = cli("demo", demo, "--objects", "400")
    assert kept.exit_code == 1 and "my_analysis.txt, release v1" in kept.stderr, kept.stderr
    assert (demo / "my_analysis.txt").exists() and (demo / "warehouse" / "releases" / "v1").exists()
    (demo / "my_analysis.txt").unlink()
    (demo / "warehouse" / "releases" / "v1").rmdir()
    (demo / "dataset" / "mine.h5").write_bytes(b"mine")  # inside a folder the demo writes
    kept = cli("demo", demo, "--objects", "400")
    assert kept.exit_code == 1 and "dataset/mine.h5" in kept.stderr, kept.stderr
    typo = cli("demo", demo, "--objects", "50")  # a bad option deletes nothing
    assert typo.exit_code == 1 and (demo / "dataset" / "mine.h5").exists()
    # a demo made before the marker listed its files: which are the user's cannot be told
    (demo / ".gwh-demo").write_text("made by gwh demo; rerunning the demo replaces this folder\n")
    old = cli("demo", demo, "--objects", "400")
    assert old.exit_code == 1 and "made by an older gwh" in old.stderr, old.stderr
    assert (demo / "dataset" / "mine.h5").exists() and len(old.stderr.splitlines()) == 1
    other = tmp_path / "mine"
    other.mkdir()
    (other / "precious.txt").write_text("keep")
    refused = cli("demo", other)
    assert refused.exit_code == 1 and (other / "precious.txt").exists()


def test_demo_where_no_folder_can_be_made_is_one_line(cli, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    for root in (tmp_path / "afile", tmp_path / "afile" / "demo"):
        result = cli("demo", root, "--objects", "400")
        assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.exception
        assert "afile is a file, not a folder" in result.stderr
        assert "gwh demo ROOT" in result.stderr and len(result.stderr.splitlines()) == 1
    assert (tmp_path / "afile").read_text() == "not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("entry", [["gwh"], [sys.executable, str(REPO / "cli.py")]])
def test_entry_points(entry, tmp_path):
    if entry == ["gwh"]:
        exe = Path(sys.executable).parent / "gwh"
        if not exe.exists():
            pytest.skip("gwh console script not installed in this environment")
        entry = [str(exe)]
    root = tmp_path / "wh"
    done = subprocess.run(entry + ["init", str(root)], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    fail = subprocess.run(
        entry + ["sql", "select * from nope", "--root", str(root)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert fail.returncode == 1 and fail.stderr.startswith("error: ")
    assert "Traceback" not in fail.stderr


def _sql_in_background(tmp_path: Path, sql: str, *args: str) -> subprocess.Popen:
    """``gwh sql SQL ARGS`` on a new warehouse, in a process of its own that a signal can end as
    it would a terminal's (SIGINT at its default)."""
    root = tmp_path / "wh"
    entry = [sys.executable, str(REPO / "cli.py")]
    assert subprocess.run(entry + ["init", str(root)], capture_output=True).returncode == 0
    return subprocess.Popen(
        entry + ["sql", sql, *args, "--root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's
    )


def test_init_refuses_two_different_folders(cli, tmp_path):
    """``gwh init A --root B`` created A and ignored --root B without a word; $GWH_ROOT still
    yields to the folder given on the command line."""
    a, b = tmp_path / "a", tmp_path / "b"
    r = cli("init", a, "--root", b)
    assert r.exit_code == 2 and f"two folders given, {a} and --root {b}: give one" in r.output
    assert not a.exists() and not b.exists()
    r = cli("init", a, env={"GWH_ROOT": str(b)})
    assert r.exit_code == 0 and (a / "warehouse.toml").exists() and not b.exists()
    assert cli("init", "--help").stdout.startswith("Usage: gwh init [OPTIONS] [ROOT]\n")
    for args, names in (  # arguments named as the help's Arguments section and man pages do
        (("sql",), ["QUERY"]),
        (("cone",), ["RA", "DEC", "RADIUS_ARCSEC"]),
        (("load", "hsc-forced"), ["FILES"]),
        (("cutouts", "show"), ["OBJECT_ID"]),
    ):
        usage = cli(*args, "--help").stdout.splitlines()[0]
        arguments = usage.split("[OPTIONS]")[1]
        assert all(n in arguments and n.lower() not in arguments for n in names), usage
    c = tmp_path / "c"  # one folder, spelt twice: relative and absolute
    r = cli("init", os.path.relpath(c), "--root", c)
    assert r.exit_code == 0 and (c / "warehouse.toml").exists(), r.output


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        # Ctrl-C: it exited 130 without a word
        (
            signal.SIGINT,
            "interrupted (Ctrl-C): nothing half-done was kept; the warehouse holds what was "
            "committed before.\n",
        ),
        (signal.SIGTERM, "terminated (SIGTERM)\n"),  # kill, a batch system's time limit
    ],
)
def test_a_signal_mid_write_is_one_line_and_leaves_no_half_written_file(tmp_path, signum, said):
    """Ctrl-C or ``kill`` of ``gwh sql --out`` mid-write exits 128 + the signal with one line
    saying what was kept and leaves no temporary file beside the target."""
    out = tmp_path / "out"
    out.mkdir()
    sql = "select range as i, 'object ' || range as name from range(200000000)"
    proc = _sql_in_background(tmp_path, sql, "--out", str(out / "x.parquet"))
    deadline = time.monotonic() + 120
    while not any(out.iterdir()) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, f"the query ended before the signal: {proc.stderr.read()}"
    assert sorted(p.name for p in out.iterdir())[0].startswith(".x.parquet.")
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert stderr == said
    assert list(out.iterdir()) == []


_SIGNAL_IN_A_CALLBACK = """
import os, signal, sys, time, weakref
sys.path.insert(0, sys.argv[1])
from warehouse import cli_errors, interrupts

class Box:
    pass

def command():
    box = Box()

    def callback(_ref):  # the signal's handler raises in here, where Python only prints it
        os.kill(os.getpid(), int(sys.argv[2]))
        time.sleep(0.001)

    ref = weakref.ref(box, callback)
    del box
    for _ in range(1000):
        time.sleep(0.01)
    print("the command ran to its end")

interrupts.handle_signals()
cli_errors.handled(command)()
"""


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        (signal.SIGTERM, "terminated (SIGTERM)\n"),
        (signal.SIGINT, "interrupted (Ctrl-C): nothing half-done was kept; the warehouse holds"),
    ],
)
def test_a_signal_landing_in_a_weakref_callback_still_ends_the_command(tmp_path, signum, said):
    """A signal whose handler ran inside a finalizer or weakref callback (CI saw one in
    WeakValueDictionary's) printed "Exception ignored" with a traceback, and the command went on
    to its end: it ends the command with its one line, as anywhere else."""
    script = tmp_path / "command.py"
    script.write_text(_SIGNAL_IN_A_CALLBACK)
    done = subprocess.run(
        [sys.executable, str(script), str(REPO), str(int(signum))],
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's
    )
    assert done.returncode == 128 + signum, done.stderr
    assert done.stderr.startswith(said) and "Traceback" not in done.stderr, done.stderr
    assert done.stdout == ""


def test_another_error_in_a_weakref_callback_is_still_reported_as_python_does(tmp_path):
    """The hook that sends a swallowed signal again leaves every other "Exception ignored"
    as Python prints it, and the command goes on."""
    script = tmp_path / "command.py"
    script.write_text(
        _SIGNAL_IN_A_CALLBACK.replace(
            "os.kill(os.getpid(), int(sys.argv[2]))", "raise ValueError('from the callback')"
        ).replace("range(1000)", "range(10)")
    )
    done = subprocess.run(
        [sys.executable, str(script), str(REPO), "0"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "Exception ignored in" in done.stderr and "ValueError: from the callback" in done.stderr
    assert done.stdout == "the command ran to its end\n"


@pytest.mark.parametrize(
    ("signum", "said"),
    [
        (
            signal.SIGINT,
            "interrupted (Ctrl-C): nothing half-done was kept; the warehouse holds what was "
            "committed before.\n",
        ),
        (signal.SIGTERM, "terminated (SIGTERM)\n"),
    ],
)
@pytest.mark.skipif(
    not Path("/proc/self/maps").exists(), reason="watches the imports in /proc/<pid>/maps"
)
def test_a_signal_while_gwh_starts_is_its_one_line(tmp_path, signum, said):
    """Ctrl-C or kill in the first third of a second, while gwh imports its libraries, printed
    Python's traceback of whatever import it landed in (exit 1 or killed by the signal)."""
    root = tmp_path / "wh"
    entry = [sys.executable, str(REPO / "cli.py")]
    assert subprocess.run(entry + ["init", str(root)], capture_output=True).returncode == 0
    proc = subprocess.Popen(
        entry + ["sql", "select 1", "--root", str(root)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # as a terminal's
    )
    maps = Path(f"/proc/{proc.pid}/maps")
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:  # DuckDB is being imported
        with contextlib.suppress(OSError):
            if "_duckdb" in maps.read_text():
                break
        time.sleep(0.001)
    assert proc.poll() is None, f"gwh ended before the signal: {proc.stderr.read()}"
    proc.send_signal(signum)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, stderr
    assert stderr == said


def test_ctrl_c_stops_a_long_query_at_once(tmp_path):
    """Ctrl-C while DuckDB computes (no row printed yet, minutes of work left) ends the query
    and the command with the one line, not after the query finishes."""
    sql = "select sum(hash(i)) from range(200000000000) t(i)"  # ~10 minutes on two cores
    proc = _sql_in_background(tmp_path, sql)
    try:
        # inside the query: its threads add CPU time beyond the start-up's (~2 s)
        deadline = time.monotonic() + 60
        while _cpu_seconds(proc.pid) < 4 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None, f"the query ended before the signal: {proc.stderr.read()}"
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)  # it stops in well under a second
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130, stderr
    assert stderr.startswith("interrupted (Ctrl-C)") and stderr.count("\n") == 1, stderr


def _cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_load_out_of_room_is_one_line_and_keeps_the_warehouse(tmp_path, field_files):
    """A load that meets the file-size limit (as a full disk) says so in one line, with no
    second error from a writer closed at exit, and the warehouse stays as it was; a rerun
    with room loads the file."""
    root = tmp_path / "wh"
    entry = [sys.executable, str(REPO / "cli.py")]

    def gwh(*args, limit=None):
        def limited():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        return subprocess.run(
            [*entry, *args, "--root", str(root)],
            capture_output=True,
            text=True,
            preexec_fn=limited if limit else None,
        )

    assert subprocess.run(entry + ["init", str(root)], capture_output=True).returncode == 0
    assert gwh("load", "hsc-forced", str(field_files["forced"])).returncode == 0
    big = tmp_path / "big.parquet"
    pq.write_table(simulate_field(60_000, seed=11).forced, big)
    before = gwh("sql", "select count(*), sum(object_id) from hsc_forced").stdout

    failed = gwh("load", "hsc-forced", str(big), limit=2_000_000)
    assert failed.returncode == 1, failed.stderr
    said = f"error: writing into {root} failed: File too large."  # which warehouse
    assert failed.stderr.startswith(said), failed.stderr
    assert "ulimit -f" in failed.stderr and len(failed.stderr.splitlines()) == 1, failed.stderr
    assert gwh("sql", "select count(*), sum(object_id) from hsc_forced").stdout == before
    assert gwh("check").returncode == 0

    again = gwh("load", "hsc-forced", str(big))
    assert again.returncode == 0, again.stderr
    assert gwh("sql", "select count(*), sum(object_id) from hsc_forced").stdout != before


@pytest.mark.parametrize(
    "args,said",
    [
        (["cone", "abc", "0", "10"], "error: Invalid value for 'RA'"),
        (["sqll"], "error: No such command 'sqll'. Did you mean 'sql', 'shell'? See gwh --help."),
        (["sql"], "error: Missing argument 'QUERY'. See gwh sql --help."),
        (["sql", "--tabel", "x", "select 1"], "error: No such option: --tabel"),
        (["cutouts", "shw"], "error: No such command 'shw'. Did you mean 'show'?"),
        (["export", "--size", "abc", "--split", "train"], "See gwh export --help."),
    ],
)
def test_a_usage_error_is_one_line_exit_2(cli, loaded, args, said):
    """Click printed the usage, a hint, a blank line and the error: four lines for a typo,
    where every other error of gwh is one line."""
    result = cli(*args, "--root", loaded.root)
    assert result.exit_code == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1 and said in result.stderr, result.stderr


def test_a_command_or_group_alone_still_prints_its_help(cli):
    for args in ([], ["cutouts"]):
        result = cli(*args)
        assert result.exit_code == 2 and "Commands:" in result.output, result.output


def _suggested(text: str) -> list[str]:
    """The gwh command a message suggests, split as a shell splits it."""
    import re

    match = re.search(r"`(gwh [^`]*)`|check it with: (gwh .*)$", text.strip())
    assert match, text
    return shlex.split(match.group(1) or match.group(2))[1:]


def test_commands_gwh_suggests_paste_into_a_shell_with_spaces_in_paths(cli, tmp_path, field_files):
    made = tmp_path / "my wh"
    assert cli("init", made).exit_code == 0
    assert cli("load", "hsc-forced", field_files["forced"], "--root", made).exit_code == 0
    assert cli("load", "hsc-specz", field_files["specz"], "--root", made).exit_code == 0
    assert cli("release", "create", "v1", "--root", made).exit_code == 0
    moved = tmp_path / "moved wh"
    made.rename(moved)
    views = cli("views", "--root", moved)
    assert views.exit_code == 0 and "re-points it" in views.stderr
    assert cli(*_suggested(views.stderr)).exit_code == 0  # gwh refresh --root '.../moved wh'
    assert "re-points it" not in cli("views", "--root", moved).stderr
    pack = cli("release", "pack", "v1", tmp_path / "pack dir", "--root", moved)
    assert pack.exit_code == 0, pack.output
    verify = cli(*_suggested(pack.stdout.strip().splitlines()[-1]))
    assert verify.exit_code == 0 and "verifies" in verify.stdout
    missing = cli("views", "--root", tmp_path / "no wh")
    assert missing.exit_code == 1
    assert cli(*_suggested(missing.stderr)).exit_code == 0  # gwh init '.../no wh'
