"""Loader benchmark: galaxies/s through a PyTorch ``DataLoader`` (batch 64; 0 and 2 workers)
from ``GalaxyDataset`` over an HDF5 export and over an hf folder, against a raw NumPy memmap of
the same pixels (the ceiling), in one run; peak RSS of each.

Every image is SIMULATED (bench_export's seeded N(0, 1) noise cubes, 5 x 127 x 127 float32,
ingested as ``simulated``), for the objects of a SIMULATED HSC-like catalog. The figures are
throughputs and memory, never properties of real data. The script asserts no timing.

Each measurement runs in a fresh Python subprocess (its own wall time and ``ru_maxrss``; the
workers' memory is their own and not included). One epoch, shuffled by
``SeededSampler(len(ds), seed=0, block=ds.blocks, batch_size=64, workers=W)`` (row groups of
the hf folder whole, then rows inside them, each row group on one worker; HDF5 and the memmap
have blocks of one row: a plain shuffle), items ``image`` and ``object_id``; the memmap dataset
returns the same dict.

Usage::

    python benchmarks/bench_loader.py                 # 2,000 galaxies
    python benchmarks/bench_loader.py --n 5000 --keep
"""

from __future__ import annotations

import argparse
import json
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

BATCH = 64
SQL = "SELECT *, 'train' AS split FROM hsc_forced"


def phase_prepare(n: int, work: Path) -> dict:
    import h5py
    import numpy as np
    from bench_export import phase_build

    from warehouse.core import Warehouse
    from warehouse.export import ExportOptions, export_hdf5, export_hf

    build = phase_build(n, work, False)
    wh = Warehouse.open(work / "wh")
    opts = ExportOptions(size=127, mask=False, variance=False)
    (work / "h5").mkdir()
    export_hdf5(wh, work / "h5" / "train.h5", sql=SQL, split="train", options=opts, progress=False)
    export_hf(wh, work / "hf", sql=SQL, splits=["train"], options=opts, progress=False)
    with h5py.File(work / "h5" / "train.h5") as h5:
        images = h5["image"]
        mm = np.lib.format.open_memmap(work / "images.npy", "w+", np.float32, images.shape)
        for a in range(0, images.shape[0], 500):
            mm[a : a + 500] = images[a : a + 500]
        mm.flush()
        np.save(work / "ids.npy", h5["object_id"][:])
    return {"build_seconds": build["seconds"]}


class MemmapDataset:
    """The ceiling: the same pixels as a .npy memmap, items as GalaxyDataset gives them."""

    def __init__(self, folder: Path) -> None:
        import numpy as np

        self.folder = folder
        self.ids = np.load(folder / "ids.npy")
        self.images = None
        self.block_size = self.blocks = 1

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict:
        import numpy as np
        import torch

        if self.images is None:  # per process, as GalaxyDataset opens its files
            self.images = np.load(self.folder / "images.npy", mmap_mode="r")
        return {
            "image": torch.from_numpy(np.array(self.images[i])),
            "object_id": torch.tensor(self.ids[i]),
        }

    def __getstate__(self) -> dict:
        return {**self.__dict__, "images": None}


def phase_load(source: str, workers: int, work: Path) -> dict:
    import numpy as np
    from torch.utils.data import DataLoader

    from warehouse.ml import GalaxyDataset, SeededSampler

    if source == "memmap":
        ds = MemmapDataset(work)
    else:
        ds = GalaxyDataset(work / source, split="train")
    sampler = SeededSampler(
        len(ds), seed=0, block=ds.blocks, batch_size=BATCH, workers=max(1, workers)
    )
    loader = DataLoader(ds, batch_size=BATCH, num_workers=workers, sampler=sampler)
    started = time.perf_counter()
    seen = 0
    checksum = 0
    for batch in loader:
        seen += batch["image"].shape[0]
        checksum ^= int(np.bitwise_xor.reduce(batch["object_id"].numpy()))
    seconds = time.perf_counter() - started
    assert seen == len(ds), (seen, len(ds))
    return {"seconds": seconds, "rows": seen, "ids_xor": checksum, "block": ds.block_size}


def run(args: list[str]) -> dict:
    cmd = [sys.executable, __file__, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="galaxies")
    parser.add_argument("--tmp", default=tempfile.gettempdir(), help="where files go")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    Path(args.tmp).mkdir(parents=True, exist_ok=True)  # a new folder given as --tmp

    if args.phase:
        if args.phase == "prepare":
            result = phase_prepare(args.n, Path(args.work))
        else:
            source, workers = args.phase.split(":")
            result = phase_load(source, int(workers), Path(args.work))
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return 0

    command = "python benchmarks/bench_loader.py " + shlex.join(argv or sys.argv[1:])
    work = Path(tempfile.mkdtemp(prefix=f"gwh-bench-loader-{args.n}-", dir=args.tmp))
    results = {}
    try:
        prep = run(["--phase", "prepare", "--n", str(args.n), "--work", str(work)])
        for workers in (0, 2):
            for source in ("h5", "hf", "memmap"):
                results[(source, workers)] = run(
                    ["--phase", f"{source}:{workers}", "--work", str(work)]
                )
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    names = {"h5": "GalaxyDataset HDF5", "hf": "GalaxyDataset hf", "memmap": "NumPy memmap"}
    lines = [
        "bench_loader: DataLoader(batch 64) galaxies/s, one shuffled epoch (SeededSampler)",
        f"data     : SIMULATED noise images; {args.n:,} galaxies x 5 bands x 127 x 127 float32",
        f"command  : {command}   (build {prep['build_seconds']:.0f} s, not measured)",
        "",
        f"{'workers':>7} {'source':<20} {'seconds':>8} {'galaxies/s':>11} {'of memmap':>10} "
        f"{'peak RSS MiB':>13}",
    ]
    for (source, workers), r in results.items():
        ceiling = results[("memmap", workers)]
        lines.append(
            f"{workers:>7} {names[source]:<20} {r['seconds']:>8.2f} "
            f"{r['rows'] / r['seconds']:>11,.0f} {ceiling['seconds'] / r['seconds']:>10.0%} "
            f"{r['peak_rss_mib']:>13,.0f}"
        )
    same = len({r["ids_xor"] for r in results.values()}) == 1
    lines += [
        "",
        f"every run saw the same {args.n:,} object_ids: {same}. peak RSS = ru_maxrss of the main",
        "process (workers not included); hf reads a row group (block) at a time.",
    ]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
