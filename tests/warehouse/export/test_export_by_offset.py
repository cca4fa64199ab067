"""`gwh export` of uncompressed HDF5 images written by chunk offset (chunkfile.py, pages.py),
tried as a user would: from the command line, against the same export written by HDF5 itself
(``--compression lzf``: no chunk of it is written by offset), with every option that changes
which planes are copied as stored, gathered or filled; with objects lacking bands or cutouts;
from a frozen release; from a warehouse in the layout before IMAGE_LAYOUT; killed with SIGKILL
while chunks are being written; from a damaged image table; and read back by a plain h5py
process (and h5dump when installed); planes of other sizes whose bytes add up in a page are no
damage. Every image is SIMULATED seeded noise."""

from __future__ import annotations

import hashlib
import mmap
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest

from tests.warehouse.cutouts.test_cutouts import BANDS, build_warehouse
from tests.warehouse.export.test_blocks import ingest_noise, noise, rewrite_the_old_way, sha256
from tests.warehouse.export.test_chunkfile import same_values
from warehouse.core import Warehouse
from warehouse.cutouts import ingest_arrays
from warehouse.export.options import PLANES
from warehouse.export.pages import plane_offsets
from warehouse.images.fit import fit_to_size
from warehouse.store.contracts import CUTOUTS

ROOT = Path(__file__).resolve().parents[3]
S = 8
PLANE_NAMES = ("image", "variance", "mask")


@pytest.fixture(scope="module")
def field(tmp_path_factory):
    """A SIMULATED field of 300 objects, cutouts in partitions of up to 150 rows (several row
    groups of 64): all but the last 12 in sky order with five 8 x 8 bands (image, variance,
    mask), 6 with bands g and r only, 6 with no cutout; and a copy in the layout before
    IMAGE_LAYOUT (one snappy row group per partition)."""
    base = tmp_path_factory.mktemp("offset")
    wh = build_warehouse(base / "new", n=300, cutout_rows=150)
    sky = wh.query("SELECT object_id FROM hsc_forced ORDER BY _healpix_29, object_id")
    ids = sky.column("object_id").to_pylist()
    ingest_noise(wh, ids[:-12])
    ingest_noise(wh, ids[-12:-6], bands=("g", "r"))
    shutil.copytree(wh.root, base / "old" / "wh", symlinks=True)
    old = Warehouse.open(base / "old" / "wh")
    rewrite_the_old_way(old)
    return {"wh": wh, "old": old, "full": ids[:-12], "partial": ids[-12:-6], "none": ids[-6:]}


def complete_sql(field) -> str:
    return f"SELECT * FROM ml_objects WHERE object_id IN ({', '.join(map(str, field['full']))})"


def export(cli, root: Path, out: Path, *args: str) -> Path:
    result = cli("export", "--root", root, "--out", out, *args)
    assert result.exit_code == 0, result.output
    return out


def early(path: Path, plane: str = "image") -> bool:
    """Whether ``plane``'s chunks were allocated at creation (written by offset)."""
    with h5py.File(path) as h5:
        alloc = h5[plane].id.get_create_plist().get_alloc_time()
    return alloc == h5py.h5d.ALLOC_TIME_EARLY


def expected(oid: int, band: int, plane: str, size: int) -> np.ndarray:
    return fit_to_size(noise(oid, band, plane, S), size, fill=PLANES[plane][2]).array


@pytest.mark.parametrize(
    "options",
    [
        ("--size", "8"),  # S x S: copied as stored from the pages
        ("--size", "8", "--split", "train"),  # rows scattered in the files
        ("--size", "6"),  # cropped
        ("--size", "12"),  # padded
        ("--size", "8", "--no-mask", "--no-variance"),
        ("--size", "8", "--no-variance"),  # image and the int32 mask
        ("--size", "8", "--bands", "yig"),  # a subset of the bands, reordered
    ],
)
def test_the_export_by_offset_holds_what_hdf5_writes_itself(field, cli, tmp_path, options):
    wh, old = field["wh"], field["old"]
    sql = ("--sql", complete_sql(field))
    plain = export(cli, wh.root, tmp_path / "plain.h5", *sql, *options)
    lzf = export(cli, wh.root, tmp_path / "lzf.h5", *sql, *options, "--compression", "lzf")
    before = export(cli, old.root, tmp_path / "old.h5", *sql, *options)  # pyarrow decodes
    assert early(plain) and not early(lzf)
    assert sha256(plain) == sha256(before)
    with h5py.File(plain) as a, h5py.File(lzf) as b:
        same_values(a, b, compressed=frozenset(PLANE_NAMES))
        planes = [p for p in PLANE_NAMES if p in a]
        bands = options[options.index("--bands") + 1] if "--bands" in options else BANDS
        size = int(options[1])
        ids = a["object_id"][:].tolist()
        assert ids and set(ids) <= set(field["full"])
        assert list(a.attrs["bands"]) == list(bands)
        for plane in planes:
            dset = a[plane]
            assert dset.dtype == PLANES[plane][0] and dset.chunks == (1, len(bands), size, size)
            assert dset.compression is None and dset.id.get_num_chunks() == len(ids)
            values = dset[()]
            for j, oid in enumerate(ids):
                for k, band in enumerate(bands):
                    want = expected(oid, BANDS.index(band), plane, size)
                    assert np.array_equal(values[j, k], want), (oid, band, plane)


def test_objects_lacking_bands_or_cutouts_get_the_fill_values(field, cli, tmp_path):
    wh = field["wh"]
    sql = ("--sql", "SELECT * FROM hsc_forced", "--size", "8", "--allow-missing-bands")
    plain = export(cli, wh.root, tmp_path / "plain.h5", *sql)
    lzf = export(cli, wh.root, tmp_path / "lzf.h5", *sql, "--compression", "lzf")
    with h5py.File(plain) as a, h5py.File(lzf) as b:
        same_values(a, b, compressed=frozenset(PLANE_NAMES))
        row = {oid: j for j, oid in enumerate(a["object_id"][:].tolist())}
        assert len(row) == 300
        image, variance, mask = a["image"][()], a["variance"][()], a["mask"][()]
        for oid in field["partial"]:
            j = row[oid]
            assert np.array_equal(image[j, 1], noise(oid, 1, "image"))  # r is there
            assert np.isnan(image[j, 2:]).all() and np.isnan(variance[j, 2:]).all()
            assert (mask[j, 2:] == PLANES["mask"][1]).all()
            assert a["missing_i"][j] and not a["missing_g"][j]
        for oid in field["none"]:
            j = row[oid]
            assert np.isnan(image[j]).all() and (mask[j] == PLANES["mask"][1]).all()
            assert all(a[f"missing_{b}"][j] for b in BANDS)
        j = row[field["full"][0]]
        assert np.array_equal(mask[j, 4], noise(field["full"][0], 4, "mask"))
        assert not np.isnan(image[j]).any()
        assert np.isnan(a["image"].fillvalue) and a["mask"].fillvalue == PLANES["mask"][1]


def test_objects_without_a_cutout_are_a_one_line_error_without_the_flag(field, cli, tmp_path):
    out = tmp_path / "x.h5"
    sql = f"SELECT * FROM hsc_forced WHERE object_id IN ({field['full'][0]}, {field['none'][0]})"
    result = cli("export", "--root", field["wh"].root, "--sql", sql, "--size", "8", "--out", out)
    assert result.exit_code != 0
    assert "no cutout" in result.output and str(field["none"][0]) in result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    assert list(tmp_path.iterdir()) == []


def test_an_export_from_a_frozen_release_equals_the_live_one(field, cli, tmp_path):
    root = tmp_path / "wh"
    shutil.copytree(field["wh"].root, root, symlinks=True)
    assert cli("release", "create", "v1", "--root", root).exit_code == 0
    args = ("--sql", complete_sql(field), "--size", "8", "--split", "validation")
    live = export(cli, root, tmp_path / "live.h5", *args)
    frozen = export(cli, root, tmp_path / "frozen.h5", *args, "--release", "v1")
    assert early(frozen)
    with h5py.File(frozen) as a, h5py.File(live) as b:
        assert a.attrs["release"] == "v1"
        assert np.array_equal(a["object_id"][()], b["object_id"][()])
        for plane in PLANE_NAMES:
            assert np.array_equal(a[plane][()], b[plane][()]), plane


KILLED = """
import os, signal, sys
sys.argv = ["gwh", *sys.argv[1:]]
real, calls = os.pwritev, []
def pwritev(*args):  # the third chunk write never happens: SIGKILL, as a crash would
    calls.append(1)
    if len(calls) == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return real(*args)
os.pwritev = pwritev
import cli
cli.main()
"""


def test_a_kill_while_chunks_are_written_leaves_no_target_and_the_rerun_is_whole(
    field, cli, tmp_path
):
    wh = field["wh"]
    args = ("--sql", complete_sql(field), "--size", "8")
    (tmp_path / "ref").mkdir()  # gwh export makes no folder for --out
    reference = export(cli, wh.root, tmp_path / "ref" / "x.h5", *args)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GWH_PROGRESS": "0"}
    env.pop("GWH_ROOT", None)
    command = [sys.executable, "-c", KILLED, "export", "--root", str(wh.root), *args]
    proc = subprocess.run(
        [*command, "--out", str(out / "x.h5")], env=env, capture_output=True, timeout=120
    )
    assert proc.returncode == -9, proc.stderr.decode()
    left = [p.name for p in out.iterdir()]
    assert "x.h5" not in left and len(left) == 1 and ".gwh-tmp-" in left[0]
    export(cli, wh.root, out / "x.h5", *args)  # cleans what the killed export left
    assert [p.name for p in out.iterdir()] == ["x.h5"]
    assert sha256(out / "x.h5") == sha256(reference)


LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))
sys.argv = ["gwh", *sys.argv[1:]]
import cli
cli.main()
"""


def test_a_file_that_cannot_fit_is_refused_before_writing_in_one_line(field, tmp_path):
    """The image chunks, allocated at creation, would take the file past what the process may
    write (as a full disk would stop it): one line before any pixel is written, nothing left,
    no crash of HDF5's last flush at exit."""
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT), "GWH_PROGRESS": "0"}
    env.pop("GWH_ROOT", None)
    args = ("--sql", complete_sql(field), "--size", "8", "--out", str(out / "x.h5"))
    proc = subprocess.run(
        [sys.executable, "-c", LIMITED, "export", "--root", str(field["wh"].root), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ulimit -f" in lines[0], lines
    assert lines[0].startswith(f"error: {out / 'x.h5'}: ")  # the --out file, not the temporary
    assert list(out.iterdir()) == []


def damage_a_length_prefix(root: Path) -> str:
    """Flip bytes of the stored length before some object's g_image plane, in a partition file
    whose planes are copied as stored (its hard link to earlier versions broken first); the
    object's id."""
    cv = Warehouse.open(root).current_version(CUTOUTS.name)
    assert cv is not None
    for path in cv.files():
        pf = pq.ParquetFile(path)
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ) as buf:
            found = plane_offsets(pf, buf, [f"{b}_image" for b in BANDS], S * S * 4)
        if found is None or pf.metadata.num_rows < 20:
            continue
        oid = pf.read(columns=["object_id"]).column("object_id")[10].as_py()
        data = bytearray(Path(path).read_bytes())
        at = int(found["g_image"][10]) - 4
        data[at : at + 2] = bytes(x ^ 0x5A for x in data[at : at + 2])
        Path(path).unlink()
        Path(path).write_bytes(bytes(data))
        return oid
    raise AssertionError("no partition stored as uncompressed pages")


@pytest.mark.parametrize("size", ["8", "6"])  # copied as stored; decoded by pyarrow and cropped
def test_a_damaged_stored_length_is_a_one_line_error_and_no_file(field, cli, tmp_path, size):
    root = tmp_path / "wh"
    shutil.copytree(field["wh"].root, root, symlinks=True)
    oid = damage_a_length_prefix(root)
    assert oid in field["full"]
    out = tmp_path / "out"
    out.mkdir()
    args = ("--sql", complete_sql(field), "--size", size, "--out", out / "x.h5")
    result = cli("export", "--root", root, *args)
    assert result.exit_code != 0 and isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "is damaged" in lines[0]
    assert ".parquet" in lines[0] and "Traceback" not in result.output
    assert list(out.iterdir()) == []  # no target, no temporary file


@pytest.mark.parametrize("fmt", ["hdf5", "hf"])
def test_a_cutouts_file_cut_in_its_middle_is_a_one_line_error_naming_it(field, cli, tmp_path, fmt):
    """Bytes lost inside a cutouts file whose footer survived: the plan's DuckDB read named
    the file without saying it was damaged, or (a page header landing on other bytes) named
    no file at all."""
    root = tmp_path / "wh"
    shutil.copytree(field["wh"].root, root, symlinks=True)
    cv = Warehouse.open(root).current_version(CUTOUTS.name)
    assert cv is not None
    path = Path(max(cv.files(), key=lambda f: Path(f).stat().st_size))
    data = path.read_bytes()
    footer = 8 + int.from_bytes(data[-8:-4], "little")
    path.unlink()  # break its hard link to earlier versions
    path.write_bytes(data[: (len(data) - footer) // 2] + data[-footer:])
    out = tmp_path / "out"
    out.mkdir()
    target = ("--out", out / "x.h5")
    if fmt == "hf":
        target = ("--format", "hf", "--out-dir", out / "d")
    result = cli("export", "--root", root, "--sql", complete_sql(field), "--size", "8", *target)
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert f"{path.name} is damaged" in lines[0], lines
    assert list(out.iterdir()) == []


READER = """
import hashlib, sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as h5:
    for name in ("image", "variance", "mask", "object_id"):
        print(name, hashlib.sha256(np.ascontiguousarray(h5[name][()]).tobytes()).hexdigest())
"""


def test_a_plain_h5py_process_and_h5dump_read_the_file(field, cli, tmp_path):
    args = ("--sql", complete_sql(field), "--size", "8")
    path = export(cli, field["wh"].root, tmp_path / "x.h5", *args)
    proc = subprocess.run(
        [sys.executable, "-c", READER, str(path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    with h5py.File(path) as h5:
        want = {}
        for name in ("image", "variance", "mask", "object_id"):
            data = np.ascontiguousarray(h5[name][()])
            want[name] = hashlib.sha256(data.tobytes()).hexdigest()
    got = dict(line.split() for line in proc.stdout.splitlines())
    assert got == want
    if shutil.which("h5dump") is None:
        pytest.skip("h5dump (Debian hdf5-tools) is not installed")
    head = subprocess.run(["h5dump", "-H", str(path)], capture_output=True, text=True, timeout=60)
    assert head.returncode == 0 and "H5T_IEEE_F32LE" in head.stdout and "/image" not in head.stderr
    cell = subprocess.run(
        ["h5dump", "-d", "image", "-s", "0,1,2,3", "-c", "1,1,1,1", "-m", "%.9g", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cell.returncode == 0
    with h5py.File(path) as h5:
        value = float(h5["image"][0, 1, 2, 3])
    assert f"(0,1,2,3): {value:.9g}" in cell.stdout


def test_planes_of_other_sizes_adding_up_in_a_page_are_no_damage(tmp_path, cli):
    """A valid table whose row group holds 8x7, 8x8 and 8x9 planes in a row (their bytes add up
    to three 8x8 planes): the 8x8 objects export as stored, not as 'damaged'."""
    wh = build_warehouse(tmp_path / "mixed", n=60, cutout_rows=300)
    sky = wh.query("SELECT object_id FROM hsc_forced ORDER BY _healpix_29, object_id")
    ids = sky.column("object_id").to_pylist()
    for sel, width in (([ids[0]], 7), ([ids[2]], 9), ([ids[1], *ids[3:]], 8)):
        planes = {
            b: np.stack([np.resize(noise(i, k, "image"), (8, width)) for i in sel])
            for k, b in enumerate(BANDS)
        }
        ingest_arrays(wh, sel, planes, simulated=True, source="seeded noise test arrays")
    sql = f"SELECT * FROM hsc_forced WHERE object_id IN ({ids[1]}, {ids[5]})"
    args = ("--sql", sql, "--size", "8", "--no-mask", "--no-variance")
    path = export(cli, wh.root, tmp_path / "x.h5", *args)
    with h5py.File(path) as h5:
        for j, oid in enumerate(h5["object_id"][:].tolist()):
            assert np.array_equal(h5["image"][j, 0], noise(oid, 0, "image"))
