"""Every input command over a corpus of broken files, each run as a real ``gwh`` process.

The corpus is built here from the data in ``tests/data`` (the real Galaxy Zoo 2 sample, real
HSC cutout FITS and MAST answers) and from the SIMULATED HSC field the other tests use (no public
forced-photometry rows exist): truncated, header-only, BOM, random bytes, a wrong first FITS
table, NULL keys, string coordinates, corrupt HDF5, truncated and empty tars. For each case the
command must end in a message (never "Traceback" or "Exception ignored"), exit non-zero where the
input is an error, print no binary garbage, and leave every file of the warehouse as it was.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loaders.hsc_ssp.cutouts import request_cutouts
from loaders.simulated.catalog import simulate_field, write_archive_csv, write_archive_fits
from tests.loaders.test_kids import simulated_kids_file
from tests.warehouse.cutouts.test_cutouts import build_warehouse, make_batch_tar
from warehouse.core import Warehouse

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
GZ2_SAMPLE = DATA / "galaxy_zoo2" / "gz2_stripe82_coadd2_sample200.csv"
MAST_HSC = DATA / "hubble_source_catalog_mast" / "hsc.json"
REAL_CUTOUT = DATA / "cutouts" / "image.fits"


@dataclass(frozen=True)
class Case:
    name: str
    argv: tuple[str, ...]
    error: bool = True  # False: the input is fine and must load
    says: str = ""  # a phrase the message must contain


def tree_hashes(root: Path) -> dict[str, str]:
    """SHA-256 of every file under ``root`` (the writer and reader lock files aside: the writer
    lock names its last holder)."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in (".lock", ".readers")
    }


def _with_null(table: pa.Table, column: str, index: int) -> pa.Table:
    values = table.column(column).to_pylist()
    values[index] = None
    i = table.column_names.index(column)
    return table.set_column(i, table.schema.field(i), pa.array(values, table.schema.field(i).type))


def _cut(src: Path, dest: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dest.write_bytes(data[: int(len(data) * fraction)])
    return dest


def build_corpus(folder: Path, wh_root: Path) -> list[Case]:
    """Write the broken files into ``folder``; return the commands to run on them."""
    from astropy.io import fits

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(13)
    field = simulate_field(60, seed=3)
    forced = field.forced.slice(0, 30)
    cases: list[Case] = []

    def load(kind: str, path: Path, says: str = "", error: bool = True) -> None:
        cases.append(Case(f"{kind}:{path.name}", ("load", kind, str(path)), error, says))

    # -- HSC forced / specz
    p = folder / "null_id.csv"
    write_archive_csv(_with_null(forced, "object_id", 5), p)
    load("hsc-forced", p, "line 8, column object_id")
    p = folder / "null_id.fits"
    write_archive_fits(_with_null(forced, "object_id", 5), p, isnull_columns=("object_id",))
    load("hsc-forced", p, "row 6, column object_id")
    p = folder / "null_id.parquet"
    pq.write_table(_with_null(forced, "object_id", 5), p)
    load("hsc-forced", p, "row 6, column object_id")
    for column in ("object_id", "specz_name"):
        p = folder / f"specz_null_{column}.parquet"
        pq.write_table(_with_null(field.specz.slice(0, 10), column, 3), p)
        load("hsc-specz", p, f"column {column}")
    p = folder / "header_only.csv"
    write_archive_csv(forced.slice(0, 0), p)
    load("hsc-forced", p, "no data rows")
    p = folder / "specz_header_only.csv"
    write_archive_csv(field.specz.slice(0, 0), p)
    load("hsc-specz", p, "no data rows")
    p = folder / "zero_rows.parquet"
    pq.write_table(forced.slice(0, 0), p)
    load("hsc-forced", p, "no data rows")
    whole = folder / "whole.csv"
    write_archive_csv(forced, whole)
    p = folder / "cut_after_delimiter.csv"
    text = whole.read_bytes().rstrip(b"\n")
    p.write_bytes(text[: text.rfind(b",") + 1])
    load("hsc-forced", p, "truncated")
    p = _cut(whole, folder / "cut_mid_row.csv", 0.8)
    load("hsc-forced", p, "line")
    p = folder / "open_quote.csv"
    p.write_text('object_id,ra,dec,patch_s\n43158172147386355,10,1,"4,')
    load("hsc-forced", p, "quoted value")
    p = folder / "forced.csv.gz"
    packed = gzip.compress((folder / "whole.csv").read_bytes())
    p.write_bytes(packed[: len(packed) // 2])
    load("hsc-forced", p, "gzip")
    p = folder / "random.csv"
    p.write_bytes(rng.bytes(4000))
    load("hsc-forced", p, "not UTF-8")
    p = folder / "random_text.csv"
    p.write_text("".join(rng.choice(list('abc,;"\n 01'), 3000)))
    load("hsc-forced", p)
    p = folder / "random.fits"
    p.write_bytes(rng.bytes(5760))
    load("hsc-forced", p, "unreadable or truncated")
    full_fits = folder / "full.fits"
    write_archive_fits(forced, full_fits)
    p = _cut(full_fits, folder / "truncated.fits", 0.6)
    load("hsc-forced", p, "truncated")
    full_pq = folder / "full.parquet"
    pq.write_table(forced, full_pq)
    p = _cut(full_pq, folder / "truncated.parquet", 0.7)
    load("hsc-forced", p, "truncated")
    with fits.open(full_fits) as hdul:
        data = hdul[1].copy()
        small = fits.BinTableHDU(data.data[:5], name="SUMMARY")
        data.name = "DATA"
        fits.HDUList([fits.PrimaryHDU(), small, data]).writeto(folder / "two_tables.fits")
        meta = fits.BinTableHDU.from_columns(
            [fits.Column(name="nrows", format="K", array=np.array([30]))], name="META"
        )
        fits.HDUList([fits.PrimaryHDU(), meta, hdul[1].copy()]).writeto(folder / "data_second.fits")
    load("hsc-forced", folder / "two_tables.fits", "HDU 1 SUMMARY: 5 rows")
    p = folder / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + whole.read_bytes())
    load("hsc-forced", p, error=False)
    load("hsc-forced", folder / "data_second.fits", error=False)

    # -- Galaxy Zoo 2 (the real sample)
    lines = GZ2_SAMPLE.read_text(encoding="utf-8").splitlines(keepends=True)
    header_end = next(i for i, line in enumerate(lines) if not line.startswith("#")) + 1
    p = folder / "gz2_header_only.csv"
    p.write_text("".join(lines[:header_end]))
    load("galaxy-zoo", p, "no data rows")
    p = _cut(GZ2_SAMPLE, folder / "gz2_truncated.csv", 0.5)
    load("galaxy-zoo", p)
    p = folder / "gz2_random.csv"
    p.write_bytes(rng.bytes(3000))
    load("galaxy-zoo", p, "not UTF-8")

    # -- KiDS cutouts (HDF5)
    simulated_kids_file(folder / "kids.h5", "GALAXY", 6)
    p = _cut(folder / "kids.h5", folder / "kids_truncated.h5", 0.5)
    load("kids-cutouts", p)
    raw = bytearray((folder / "kids.h5").read_bytes())
    raw[2048:6144] = rng.bytes(4096)
    p = folder / "kids_corrupt.h5"
    p.write_bytes(bytes(raw))
    load("kids-cutouts", p)
    p = folder / "kids_string_coords.h5"
    with h5py.File(p, "w") as fh:
        group = fh.create_group("cutouts")
        group["image"] = np.zeros((3, 36, 36, 4), np.float32)
        group["SPECTYPE"] = np.array([b"GALAXY"] * 3)
        group["RA"] = np.array([b"10:00:00", b"10:00:01", b"10:00:02"])
        group["DEC"] = np.array([b"+01:00:00", b"+01:00:01", b"+01:00:02"])
    load("kids-cutouts", p, "not as numbers")
    p = folder / "kids_random.h5"
    p.write_bytes(rng.bytes(3000))
    load("kids-cutouts", p)
    p = folder / "kids_empty.h5"
    with h5py.File(p, "w") as fh:
        group = fh.create_group("cutouts")
        group["image"] = np.zeros((0, 36, 36, 4), np.float32)
        group["SPECTYPE"] = np.array([], dtype="S6")
        group["RA"], group["DEC"] = np.zeros(0), np.zeros(0)
    load("kids-cutouts", p)

    # -- morphology and the Hubble Source Catalog
    p = folder / "morph_header_only.csv"
    p.write_text("object_id,g_ellipticity\n")
    load("morphology", p, "no data rows")
    p = folder / "morph_random.csv"
    p.write_bytes(rng.bytes(2000))
    load("morphology", p, "not UTF-8")
    p = _cut(MAST_HSC, folder / "mast_truncated.json", 0.5)
    load("hubble-source-catalog", p)
    p = folder / "mast_random.parquet"
    p.write_bytes(rng.bytes(2000))
    load("hubble-source-catalog", p)

    # -- cutout ingest: batch tars and FITS
    lists = request_cutouts(Warehouse.open(wh_root), folder / "lists", bands="g")
    tar = make_batch_tar(lists[:1], {0, 1, 2}, out=folder / "lists" / "good.tar")
    mapping = lists[0].with_suffix(".json")

    def ingest(path: Path, says: str = "") -> None:
        shutil.copy(mapping, path.parent / (path.name.split(".")[0] + ".json"))
        cases.append(Case(f"ingest:{path.name}", ("cutouts", "ingest", str(path)), True, says))

    ingest(_cut(tar, folder / "lists" / "trunc.tar", 0.5), "truncated or damaged")
    # cut between two members, or before the end blocks: it read as a whole, shorter tar and
    # ingested the members before the cut with exit 0
    with tarfile.open(tar) as whole:
        members = whole.getmembers()
    last = members[-1]
    ends = {
        "cut_at_member.tar": members[1].offset,
        "no_end_blocks.tar": last.offset_data + -(-last.size // tarfile.BLOCKSIZE) * 512,
    }
    for name, end in ends.items():
        (folder / "lists" / name).write_bytes(tar.read_bytes()[:end])
        ingest(folder / "lists" / name, "stops after member")
    gz = folder / "lists" / "truncgz.tar.gz"
    packed = gzip.compress(tar.read_bytes())
    gz.write_bytes(packed[: len(packed) // 2])
    ingest(gz, "truncated or damaged")
    empty = folder / "lists" / "empty.tar"
    tarfile.open(empty, "w").close()
    ingest(empty, "holds no files")
    p = folder / "lists" / "random.tar"
    p.write_bytes(rng.bytes(3000))
    ingest(p)
    p = folder / "cutout_random.fits"
    p.write_bytes(rng.bytes(2880))
    cases.append(Case("ingest:random.fits", ("cutouts", "ingest", str(p))))
    p = _cut(REAL_CUTOUT, folder / "cutout_truncated.fits", 0.5)
    cases.append(Case("ingest:truncated.fits", ("cutouts", "ingest", str(p))))
    return cases


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    base = tmp_path_factory.mktemp("corpus")
    wh = build_warehouse(base / "catalog", n=80)
    return wh.root, build_corpus(base / "files", wh.root)


def _gwh(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(REPO / "cli.py"), *args],
        capture_output=True,
        text=True,
        errors="backslashreplace",
        cwd=REPO,
        timeout=120,
    )


@pytest.mark.slow
def test_no_command_prints_a_traceback_and_errors_change_nothing(corpus, tmp_path):
    root, cases = corpus
    assert len(cases) >= 35
    failures = []
    for case in cases:
        if not case.error:
            continue
        before = tree_hashes(root)
        done = _gwh(*case.argv, "--root", str(root))
        out = done.stdout + done.stderr
        problems = []
        if "Traceback" in out or "Exception ignored" in out:
            problems.append("traceback")
        if done.returncode == 0:
            problems.append("exit 0")
        if not done.stderr.startswith("error: "):
            problems.append("no 'error: ' message")
        if Path(case.argv[-1]).name not in done.stderr:  # ingest names files, load paths
            problems.append("file not named")
        if case.argv[0] == "load" and done.stderr.strip().count("\n"):
            problems.append("more than one line")  # ingest lists each file left out, one a line
        if case.says and case.says not in done.stderr:
            problems.append(f"missing {case.says!r}")
        if not all(c.isprintable() or c in "\n\t" for c in out) or "\\x" in out:
            problems.append("binary garbage")
        if tree_hashes(root) != before:
            problems.append("warehouse changed")
        if problems:
            failures.append(f"{case.name}: {', '.join(problems)}\n    {out.strip()[-600:]}")
    assert not failures, "\n".join(failures)


def test_the_good_files_of_the_corpus_load(corpus, tmp_path):
    root, cases = corpus
    copy = tmp_path / "wh"
    shutil.copytree(root, copy, symlinks=True)
    for case in (c for c in cases if not c.error):
        done = _gwh(*case.argv, "--root", str(copy))
        assert done.returncode == 0, done.stderr
        assert "Traceback" not in done.stdout + done.stderr
        assert "loaded" in done.stdout
