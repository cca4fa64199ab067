"""Ingest benchmark: `gwh load` against the pyarrow read+write ceiling of the same files.

For each size N it generates a SIMULATED HSC-like forced table (``bench_core``'s generator, 116
columns) twice: as one archive-like Parquet file, and as ``--files`` files whose rows interleave
over the whole footprint (every file covers every partition). Each phase runs in a fresh Python
subprocess (its wall time and its ``ru_maxrss`` are its own), with pyarrow, pyarrow.dataset and
pandas imported before its timer starts:

* ``ceiling``: pyarrow reads the file(s) and writes the rows to one Parquet file with the
  settings the store uses (snappy, dictionary for strings only, statistics, 100k-row groups);
* ``load``: ``Warehouse.load(registry.get("hsc-forced"), files)`` into a new warehouse: read,
  validate, spatial index, partition, margins, commit (seconds and rows/s of the ingest; the
  ml_objects materialisation a load ends with, when its inputs changed, is timed apart in the
  notes);
* the same for ``hsc-specz`` (the spec-z table of the same objects) onto the loaded warehouse;
* optionally ``hats-import`` (2 dask workers) over the one file: the peer.

It prints figures and asserts nothing on time. Run it under ``flock /tmp/bench.lock``::

    flock /tmp/bench.lock python benchmarks/bench_ingest.py --rows 1000000
    flock /tmp/bench.lock python benchmarks/bench_ingest.py --rows 1000000,3000000,10000000
    flock /tmp/bench.lock python benchmarks/bench_ingest.py --rows 3000000 --hats-import
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

ROW_GROUP = 100_000


# --------------------------------------------------------------------------- phases (children)


def _generate(work: Path, rows: int, layout: str, files: int, seed: int) -> dict:
    import bench_core

    cfg = {
        "rows": rows,
        "seed": seed,
        "specz_fraction": 0.15,
        "layout": layout,
        "file_rows": math.ceil(rows / files),
    }
    return bench_core.phase_generate(cfg, work)


def _ceiling(files: list[str], out: Path) -> dict:
    import pyarrow as pa
    import pyarrow.parquet as pq

    t0, cpu0 = time.perf_counter(), _cpu()
    writer, rows = None, 0
    for path in files:
        table = pq.read_table(path)
        if writer is None:
            strings = [f.name for f in table.schema if pa.types.is_string(f.type)]
            writer = pq.ParquetWriter(
                out,
                table.schema,
                compression="snappy",
                use_dictionary=strings or False,
                write_statistics=True,
            )
        writer.write_table(table, row_group_size=ROW_GROUP)
        rows += table.num_rows
        del table
    assert writer is not None
    writer.close()
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    size = out.stat().st_size
    out.unlink()
    return {"rows": rows, "seconds": seconds, "cpu_seconds": cpu, "bytes": size}


def _cpu() -> float:
    """CPU seconds of this process so far, every thread (user + system)."""
    t = os.times()
    return t.user + t.system


def _load(root: Path, loader: str, files: list[str], fresh: bool) -> dict:
    from loaders import registry
    from warehouse import Warehouse, commit

    if fresh:
        shutil.rmtree(root, ignore_errors=True)
        wh = Warehouse.init(root)
    else:
        wh = Warehouse.open(root)
    # A load ends by materialising ml_objects (warehouse.marts) when its inputs changed: timed
    # apart (it still runs), so the ingest itself can be set against its ceiling.
    marts = [0.0, 0.0]  # seconds, CPU seconds
    materialise = commit._materialise

    def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
        t, c = time.perf_counter(), _cpu()
        try:
            return materialise(*args, **kwargs)
        finally:
            marts[0] += time.perf_counter() - t
            marts[1] += _cpu() - c

    commit._materialise = timed
    t0, cpu0 = time.perf_counter(), _cpu()
    wh.load(registry.get(loader), files)
    seconds, cpu = time.perf_counter() - t0, _cpu() - cpu0
    table = "hsc_forced" if loader == "hsc-forced" else "hsc_specz"
    cv = wh.current_version(table)
    assert cv is not None
    margin_rows = 0
    if cv.margin is not None:
        import pyarrow.parquet as pq

        margin_rows = pq.read_metadata(cv.margin / "dataset" / "_metadata").num_rows
    return {
        "rows": cv.nrows,
        "seconds": seconds - marts[0],
        "cpu_seconds": cpu - marts[1],
        "total_seconds": seconds,
        "marts_seconds": marts[0],
        "partitions": len(cv.partitions),
        "margin_rows": margin_rows,
    }


def _hats_import(work: Path, files: list[str]) -> dict:
    import bench_core

    (work / "results").mkdir(exist_ok=True)
    (work / "results" / "generate.json").write_text(json.dumps({"forced_files": files}))
    from warehouse.config import Config

    out = bench_core.phase_hats_import({"max_rows": Config.default().max_rows_per_partition}, work)
    shutil.rmtree(work / "hats_import_out", ignore_errors=True)
    shutil.rmtree(work / "hats_import_tmp", ignore_errors=True)
    return out


def child(spec: dict) -> None:
    kind = spec["kind"]
    work = Path(spec["work"])
    # Libraries are imported before any timer starts, in every phase: pyarrow imports
    # pyarrow.dataset and pandas on first use (pq.read_table, ChunkedArray), a few tenths of a
    # second that neither the ceiling nor a load should count.
    import pandas  # noqa: F401
    import pyarrow.dataset  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    if kind == "generate":
        out = _generate(work, spec["rows"], spec["layout"], spec["files"], spec["seed"])
    elif kind == "ceiling":
        out = _ceiling(spec["files"], work / "ceiling.parquet")
    elif kind == "load":
        root = work / "wh"
        if spec.get("onto"):  # a copy of a loaded warehouse (versions are never modified)
            shutil.rmtree(root, ignore_errors=True)
            shutil.copytree(spec["onto"], root, symlinks=True, copy_function=os.link)
            (root / "warehouse.duckdb").unlink()
            shutil.copy2(Path(spec["onto"]) / "warehouse.duckdb", root / "warehouse.duckdb")
        out = _load(root, spec["loader"], spec["files"], spec["fresh"])
    elif kind == "hats-import":
        out = _hats_import(work, spec["files"])
    else:
        raise SystemExit(f"unknown phase {kind}")
    out["ru_maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["children_maxrss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    Path(spec["result"]).write_text(json.dumps(out))


# --------------------------------------------------------------------------- driver


def run(spec: dict, work: Path) -> dict | None:
    result = work / f"result-{time.monotonic_ns()}.json"
    spec = {**spec, "result": str(result)}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps(spec)], cwd=ROOT, check=False
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        print(f"  phase {spec['kind']} FAILED (exit {proc.returncode})", file=sys.stderr)
        return None
    out = json.loads(result.read_text())
    out["wall_seconds"] = wall
    return out


def best_of(repeat: int, ceiling: dict, load: dict, work: Path) -> tuple[dict | None, ...]:
    """The ceiling and the load run in turns ``repeat`` times: the fastest run of each (this
    machine is shared; both get the same treatment), with the largest peak RSS of all; the
    load's ``rounds`` has each round's ceiling over load (the ratio run by run)."""
    cs: list[dict] = []
    ls: list[dict] = []
    rounds: list[float] = []
    for _ in range(repeat):
        for spec, out in ((ceiling, cs), (load, ls)):
            r = run(spec, work)
            if r is not None:
                out.append(r)
        if cs and ls and len(cs) == len(ls):
            rounds.append(cs[-1]["seconds"] / ls[-1]["seconds"])
    picked = []
    for runs in (cs, ls):
        if not runs:
            picked.append(None)
            continue
        best = dict(min(runs, key=lambda r: r["seconds"]))
        best["ru_maxrss_mib"] = max(r["ru_maxrss_mib"] for r in runs)
        best["runs"] = len(runs)
        picked.append(best)
    if picked[1] is not None and len(rounds) > 1:
        picked[1]["rounds"] = rounds
    return tuple(picked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000", help="comma-separated sizes (default 1M)")
    parser.add_argument("--files", type=int, default=20, help="interleaved files (default 20)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--hats-import", action="store_true", help="also run hats-import")
    parser.add_argument("--no-specz", action="store_true", help="skip the hsc-specz loads")
    parser.add_argument("--tmp", default="/tmp", help="parent of the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument(
        "--repeat", type=int, default=1, help="runs of each ceiling and load: the fastest counts"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    Path(args.tmp).mkdir(parents=True, exist_ok=True)  # a new folder given as --tmp
    if args.child:
        child(json.loads(args.child))
        return 0

    sizes = [int(s) for s in args.rows.split(",") if s.strip()]
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    base = Path(tempfile.mkdtemp(prefix="gwh-bench-ingest-", dir=args.tmp))
    rev = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    lines = [
        f"command: {command}",
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"python {platform.python_version()}; code {rev}",
        "data: SIMULATED HSC-like forced table (116 columns) and its spec-z table (bench_core)",
        f"timing: the fastest of {max(1, args.repeat)} run(s) of each ceiling and load, in turns; "
        f"load average at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}",
        "",
        f"{'case':<44}{'rows':>12}{'seconds':>9}{'rows/s':>11}{'vs ceiling':>11}"
        f"{'peak RSS':>10}  notes",
        "-" * 110,
    ]
    try:
        for n in sizes:
            one, mix = base / f"one-{n}", base / f"mix-{n}"
            g1 = run({"kind": "generate", "work": str(one), "rows": n, "layout": "sky",
                      "files": 1, "seed": args.seed}, one)  # fmt: skip
            g2 = run({"kind": "generate", "work": str(mix), "rows": n, "layout": "mixed",
                      "files": args.files, "seed": args.seed}, mix)  # fmt: skip
            if g1 is None or g2 is None:
                lines.append(f"N={n:,}: generation FAILED")
                continue
            files1, files2 = g1["forced_files"], g2["forced_files"]
            k = max(1, args.repeat)
            c1, l1 = best_of(k, {"kind": "ceiling", "work": str(one), "files": files1},
                             {"kind": "load", "work": str(one), "loader": "hsc-forced",
                              "files": files1, "fresh": True}, one)  # fmt: skip
            c2, l2 = best_of(k, {"kind": "ceiling", "work": str(mix), "files": files2},
                             {"kind": "load", "work": str(mix), "loader": "hsc-forced",
                              "files": files2, "fresh": True}, mix)  # fmt: skip

            def row(label: str, r: dict | None, ceiling: dict | None, note: str = "") -> None:
                if r is None:
                    lines.append(f"{label:<44}{'FAILED':>12}")
                    return
                frac = f"{ceiling['seconds'] / r['seconds']:.0%}" if ceiling else ""
                if "cpu_seconds" in r:  # of the fastest run: how many cores it kept busy
                    cpu = r["cpu_seconds"]
                    note += f"; CPU {cpu:.2f} s ({cpu / r['seconds']:.1f} cores)"
                if "rounds" in r:  # the kernel's share moves from run to run on a VM
                    each = ", ".join(f"{x:.0%}" for x in r["rounds"])
                    note += f"; run by run {each} (median {statistics.median(r['rounds']):.0%})"
                if r.get("marts_seconds", 0) >= 0.005:
                    note += f"; then ml_objects materialised in {r['marts_seconds']:.2f} s"
                lines.append(
                    f"{label:<44}{r['rows']:>12,}{r['seconds']:>9.2f}"
                    f"{r['rows'] / r['seconds']:>11,.0f}{frac:>11}"
                    f"{r['ru_maxrss_mib']:>8,.0f}Mi  {note}"
                )

            mib = g1["input_bytes"] / 2**20
            row(f"pyarrow read+write, 1 file ({mib:,.0f} MiB)", c1, None, "the ceiling")
            note = f"{l1['partitions']} partitions, margin {l1['margin_rows']:,} rows" if l1 else ""
            row("gwh load hsc-forced, 1 file", l1, c1, note)
            row(f"pyarrow read+write, {len(files2)} interleaved files", c2, None, "the ceiling")
            ratio = ""
            if l1 and l2:
                per_row = (l2["seconds"] / l2["rows"]) / (l1["seconds"] / l1["rows"])
                ratio = f"per-row cost {per_row:.2f}x one file"
            row(f"gwh load hsc-forced, {len(files2)} files", l2, c2, ratio)
            if not args.no_specz:
                sz = g1["specz_files"]
                base_wh = one / "forced-only"
                shutil.rmtree(base_wh, ignore_errors=True)
                os.rename(one / "wh", base_wh)  # the last forced load, kept for each spec-z run
                spec_dir = one / "specz"
                spec_dir.mkdir(exist_ok=True)
                c3, l3 = best_of(k, {"kind": "ceiling", "work": str(spec_dir), "files": sz},
                                 {"kind": "load", "work": str(spec_dir), "loader": "hsc-specz",
                                  "files": sz, "fresh": False, "onto": str(base_wh)},
                                 spec_dir)  # fmt: skip
                row("pyarrow read+write, spec-z file", c3, None, "the ceiling")
                row("gwh load hsc-specz, 1 file", l3, c3, "onto the loaded warehouse")
            if args.hats_import:
                hi = run({"kind": "hats-import", "work": str(one), "files": files1}, one)
                if hi is not None:
                    hi["ru_maxrss_mib"] = max(hi["ru_maxrss_mib"], hi["children_maxrss_mib"])
                row("hats-import, 1 file (2 dask workers)", hi, c1, "wall incl. cluster start")
            lines.append("")
            shutil.rmtree(one, ignore_errors=True) if not args.keep else None
            shutil.rmtree(mix, ignore_errors=True) if not args.keep else None
        lines.append(f"load average at end {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        print("\n".join(lines))
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
