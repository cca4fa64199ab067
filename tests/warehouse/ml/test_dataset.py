"""GalaxyDataset over HDF5 and hf exports: items equal the files, DataLoader workers (fork and
spawn) see every object once, pickling, reproducible shuffles, the README's training loop."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import h5py
import pytest
import torch
from torch.utils.data import DataLoader

from tests.warehouse.cutouts.test_cutouts import build_warehouse, ingest_coded, objects
from warehouse.core import Warehouse
from warehouse.errors import DatasetError
from warehouse.export import ExportOptions, export_all_splits, export_hdf5, export_hf
from warehouse.ml import GalaxyDataset, SeededSampler

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    base = tmp_path_factory.mktemp("ml")
    wh = build_warehouse(base / "w", n=150)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    opts = ExportOptions(size=12)
    export_all_splits(wh, base / "h5", options=opts, progress=False)
    export_hf(wh, base / "hf", options=opts, progress=False)
    return base


@pytest.mark.parametrize("fmt", ["h5", "hf"])
def test_items_are_the_exported_rows(exports, fmt):
    ds = GalaxyDataset(exports / fmt, split="train", columns=["object_id", "specz_redshift"])
    with h5py.File(exports / "h5" / "train.h5") as h5:
        assert len(ds) == h5["object_id"].shape[0] > 20
        for i in (0, 7, len(ds) - 1):
            item = ds[i]
            assert item["image"].dtype == torch.float32 and item["image"].shape == (5, 12, 12)
            assert torch.equal(item["image"], torch.from_numpy(h5["image"][i]))
            assert item["object_id"].dtype == torch.int64
            assert int(item["object_id"]) == int(h5["object_id"][i])  # exact, 64-bit
            assert float(item["specz_redshift"]) == float(h5["specz_redshift"][i])
    with pytest.raises(IndexError):
        ds[len(ds)]
    for bad in ("0", 1.5):  # was "'<=' not supported between 'int' and 'str'"
        with pytest.raises(TypeError, match="a GalaxyDataset index is a whole number"):
            ds[bad]
    assert int(ds[torch.tensor(3)]["object_id"]) == int(ds[3]["object_id"])
    doubled = GalaxyDataset(
        exports / fmt, split="train", transform=lambda d: {**d, "image": d["image"] * 2}
    )
    assert torch.equal(doubled[3]["image"], ds[3]["image"] * 2)


@pytest.mark.parametrize("context", ["fork", "spawn"])
@pytest.mark.parametrize("fmt", ["h5", "hf"])
def test_two_workers_see_every_object_once_per_epoch(exports, fmt, context):
    ds = GalaxyDataset(exports / fmt, split="validation")
    ds[0]  # a handle open in the parent must not leak into the workers
    sampler = SeededSampler(len(ds), seed=3, block=ds.block_size)
    loader = DataLoader(
        ds, batch_size=4, num_workers=2, sampler=sampler, multiprocessing_context=context
    )
    with h5py.File(exports / "h5" / "validation.h5") as h5:
        expected = Counter(h5["object_id"][:].tolist())
    for _epoch in range(2):
        seen = Counter()
        for batch in loader:
            assert batch["image"].shape[1:] == (5, 12, 12)
            seen.update(batch["object_id"].tolist())
        assert seen == expected  # every id exactly once


def test_pickles_without_handles_and_reopens(exports):
    ds = GalaxyDataset(exports / "hf", split="test", columns=["object_id", "split"])
    first = ds[0]
    blob = pickle.dumps(ds)
    assert len(blob) < 20_000  # paths and sizes, not data or handles
    again = pickle.loads(blob)
    assert torch.equal(again[0]["image"], first["image"]) and again[0]["split"] == "test"


def test_seeded_sampler_is_reproducible_and_complete():
    a, b = SeededSampler(100, seed=5), SeededSampler(100, seed=5)
    first, second = list(a), list(a)
    assert first == list(b) and second == list(b)  # epoch by epoch
    assert first != second and sorted(first) == list(range(100))
    a.set_epoch(0)
    assert list(a) == first
    blocks = list(SeededSampler(103, seed=1, block=10))
    assert sorted(blocks) == list(range(103))
    assert all(len({i // 10 for i in blocks[k : k + 10]}) <= 2 for k in range(0, 100, 10))


def test_two_seeds_never_share_an_epochs_order():
    """The generator was seeded with seed + epoch: seed 0's epoch 1 was seed 1's epoch 0, so
    runs meant as independent repeats saw the same orders one epoch apart."""
    orders = {}
    for seed in range(4):
        sampler = SeededSampler(50, seed=seed)
        for epoch in range(4):
            orders[(seed, epoch)] = tuple(sampler)
    assert len(set(orders.values())) == len(orders)
    big = SeededSampler(10, seed=2**70)  # any non-negative seed (was an OverflowError)
    assert sorted(big) == list(range(10))


@pytest.mark.parametrize(
    "kwargs,name",
    [
        ({"n": -1}, "n"),
        ({"n": 2.7}, "n"),
        ({"n": 10, "seed": -3}, "seed"),
        ({"n": 10, "seed": 1.9}, "seed"),
        ({"n": 10, "batch_size": 0}, "batch_size"),
        ({"n": 10, "workers": 0}, "workers"),
        ({"n": 10, "block": 0}, "block"),
        ({"n": 10, "block": -2}, "block"),
        ({"n": 10, "block": "ab"}, "block"),
    ],
)
def test_bad_sampler_arguments_are_refused_at_once(kwargs, name):
    """They were quietly made 1 or truncated, or failed later with Python's own error."""
    with pytest.raises(DatasetError, match=f"SeededSampler: {name} must be"):
        SeededSampler(**kwargs)


class _WhoReads(torch.utils.data.Dataset):
    """Item i: (i, the number of the DataLoader worker that read it)."""

    def __len__(self) -> int:
        return 103

    def __getitem__(self, i: int) -> tuple[int, int]:
        info = torch.utils.data.get_worker_info()
        return i, -1 if info is None else info.id


@pytest.mark.parametrize("workers", [1, 2])
def test_seeded_sampler_keeps_each_block_on_one_worker(workers):
    sampler = SeededSampler(103, seed=2, block=10, batch_size=4, workers=workers)
    loader = DataLoader(_WhoReads(), batch_size=4, num_workers=workers, sampler=sampler)
    readers: dict[int, set[int]] = {}
    seen = []
    for index, worker in loader:
        for i, w in zip(index.tolist(), worker.tolist(), strict=True):
            readers.setdefault(i // 10, set()).add(w)
            seen.append(i)
    assert sorted(seen) == list(range(103))  # each index once
    mixed = [b for b, ws in readers.items() if len(ws) > 1]
    assert len(readers) == 11 and len(mixed) <= workers - 1  # only in the last batches
    # without batch_size and workers, two workers share most blocks
    plain = DataLoader(
        _WhoReads(), batch_size=4, num_workers=2, sampler=SeededSampler(103, seed=2, block=10)
    )
    spread: dict[int, set[int]] = {}
    for index, worker in plain:
        for i, w in zip(index.tolist(), worker.tolist(), strict=True):
            spread.setdefault(i // 10, set()).add(w)
    assert sum(len(ws) > 1 for ws in spread.values()) > 5


def test_a_file_of_every_split_gives_the_asked_splits_rows(exports, tmp_path):
    """An ``--sql`` export over ml_objects holds every split in one file (attribute ``all``,
    a ``split`` column): split="test" gave all its rows, the train objects included."""
    wh = Warehouse.open(exports / "w" / "wh")
    every = tmp_path / "every.h5"
    export_hdf5(wh, every, sql="SELECT * FROM ml_objects", options=ExportOptions(size=12))
    with h5py.File(every) as h5:
        assert h5.attrs["split"] == "all" and len(set(h5["split"][:].tolist())) == 3
    total = 0
    for split in ("train", "validation", "test"):
        ds = GalaxyDataset(every, split=split, columns=["object_id", "split"])
        total += len(ds)
        with h5py.File(exports / "h5" / f"{split}.h5") as h5:
            assert len(ds) == h5["object_id"].shape[0]
            assert [int(ds[i]["object_id"]) for i in range(len(ds))] == h5["object_id"][:].tolist()
            assert torch.equal(ds[len(ds) - 1]["image"], torch.from_numpy(h5["image"][-1]))
        assert {ds[i]["split"] for i in range(len(ds))} == {split}
    everything = GalaxyDataset(every)
    assert len(everything) == total and everything.split == "all"  # no split: every row


def test_unknown_column_and_split_are_one_line(exports):
    with pytest.raises(DatasetError, match="no column nope; it has"):
        GalaxyDataset(exports / "hf", split="train", columns=["nope"])
    with pytest.raises(DatasetError, match="holds no train split"):
        GalaxyDataset(exports, split="train")
    with pytest.raises(DatasetError, match="split must be one of"):
        GalaxyDataset(exports / "h5", split="dev")
    # a split file read as another split would train on the wrong objects without a word
    with pytest.raises(DatasetError, match="holds the test split, not train"):
        GalaxyDataset(exports / "h5" / "test.h5", split="train")
    assert GalaxyDataset(exports / "h5" / "test.h5").split == "test"  # no split: the file's
    shard = sorted((exports / "hf" / "data").glob("train-*.parquet"))[0]
    with pytest.raises(DatasetError, match="is not an HDF5 export.*give the folder"):
        GalaxyDataset(shard)  # was h5py's OSError 'file signature not found'
    # one column name given as a string is that column, not its letters
    one = GalaxyDataset(exports / "hf", split="train", columns="specz_redshift")
    assert one.columns == ("image", "specz_redshift")


def test_without_torch_the_error_says_what_to_install():
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "import warehouse.ml as ml\n"
        "try:\n    ml.GalaxyDataset('x')\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert out.stdout.strip().startswith("DatasetError PyTorch is not installed: pip install -e")
    assert "'.[ml]'" in out.stdout


def test_the_readme_training_loop_runs(exports, tmp_path):
    readme = (REPO / "README.md").read_text()
    block = re.search(r"<!-- training-loop -->\n```python\n(.*?)```", readme, re.S)
    assert block is not None, "README has the training-loop example"
    code = block.group(1)
    assert len(code.strip().splitlines()) <= 15
    (tmp_path / "galaxies").symlink_to(exports / "hf")  # the example reads galaxies/
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert re.search(r"epoch 1 loss \d", out.stdout), out.stdout


NULLS_SQL = (
    "SELECT object_id, split, ra, dec,"
    " CASE WHEN object_id % 3 = 0 THEN NULL ELSE 9223372036854775000 + object_id % 700 END"
    " AS big_id,"
    " CASE WHEN object_id % 3 = 1 THEN NULL ELSE object_id % 7 END AS small_int,"
    " CASE WHEN object_id % 3 = 2 THEN NULL ELSE object_id % 2 = 0 END AS flag,"
    " CASE WHEN object_id % 3 = 0 THEN NULL ELSE 'x' || object_id % 5 END AS label,"
    " CASE WHEN split = 'test' THEN NULL ELSE 1 END AS null_in_test"
    " FROM ml_objects"
)


@pytest.fixture(scope="module")
def null_exports(tmp_path_factory):
    base = tmp_path_factory.mktemp("ml_nulls")
    wh = build_warehouse(base / "w", n=150)
    ingest_coded(wh, [r[0] for r in objects(wh)])
    opts = ExportOptions(size=8, mask=False, variance=False)
    export_all_splits(wh, base / "h5", sql=NULLS_SQL, options=opts, progress=False)
    export_hf(wh, base / "hf", sql=NULLS_SQL, options=opts, progress=False)
    truth = {r["object_id"]: r for r in wh.query(NULLS_SQL).to_pylist()}
    return base, truth


@pytest.mark.parametrize("fmt", ["h5", "hf"])
def test_nulls_and_ids_near_2_63_read_the_same_from_both_formats(null_exports, fmt):
    base, truth = null_exports
    cols = ["object_id", "big_id", "big_id_isnull", "small_int", "flag", "label"]
    cols += ["label_isnull", "null_in_test"]
    for split in ("train", "test"):
        ds = GalaxyDataset(base / fmt, split=split, columns=cols)
        assert len(ds) > 3
        for i in range(len(ds)):
            item = ds[i]
            want = truth[int(item["object_id"])]
            assert item["big_id"].dtype == torch.int64  # beyond 2**53: exact int64, 0 at NULL
            assert int(item["big_id"]) == (want["big_id"] or 0)
            assert bool(item["big_id_isnull"]) is (want["big_id"] is None)
            assert item["small_int"].dtype == torch.float64  # NaN at NULL
            if want["small_int"] is None:
                assert torch.isnan(item["small_int"])
            else:
                assert float(item["small_int"]) == want["small_int"]
            assert item["flag"].dtype == torch.float64
            assert item["label"] == (want["label"] or "")  # text: "" at NULL, as in HDF5
            assert bool(item["label_isnull"]) is (want["label"] is None)
            # nullable anywhere in the export: float64 in every split, as the HDF5 file has it
            assert item["null_in_test"].dtype == torch.float64
        batch = next(iter(DataLoader(ds, batch_size=len(ds))))  # every column collates
        assert batch["big_id"].dtype == torch.int64 and len(batch["label"]) == len(ds)


def _worker_of(item: dict) -> dict:
    info = torch.utils.data.get_worker_info()
    return {**item, "worker": -1 if info is None else info.id}


def test_seeded_sampler_follows_row_groups_of_unequal_sizes(exports, tmp_path):
    """An hf folder whose row groups differ in size (re-sharded as the Hub or ``datasets`` do:
    a short last group in each shard). ``SeededSampler(..., block=ds.block_size)`` cut
    ``range(n)`` every ``block_size`` rows, which crossed the row groups after the first short
    one: the shuffled rows of a block then alternated between two row groups (each decoded
    again and again) and two workers shared a group. ``block=ds.blocks`` follows the groups:
    every index exactly once per epoch, the same order for the same seed, each row group one
    contiguous run, read by one worker."""
    import bisect

    import pyarrow.parquet as pq

    table = pq.read_table(sorted((exports / "hf" / "data").glob("train-*.parquet"))[0])
    data = tmp_path / "hf" / "data"
    data.mkdir(parents=True)
    cut = table.num_rows * 2 // 3
    pq.write_table(table.slice(0, cut), data / "train-00000-of-00002.parquet", row_group_size=8)
    pq.write_table(table.slice(cut), data / "train-00001-of-00002.parquet", row_group_size=5)
    ds = GalaxyDataset(tmp_path / "hf", split="train", columns=["object_id"])
    sizes = [
        pq.ParquetFile(f).metadata.row_group(g).num_rows
        for f in sorted(data.glob("*.parquet"))
        for g in range(pq.ParquetFile(f).metadata.num_row_groups)
    ]
    assert len(set(sizes)) > 2 and ds.block_size == 8  # unequal: 8s, a short one, 5s, ...
    assert list(ds.blocks) == [sum(sizes[:k]) for k in range(len(sizes) + 1)]
    n = len(ds)

    def runs(order: list[int]) -> int:
        groups = [bisect.bisect_right(ds.blocks, i) - 1 for i in order]
        return 1 + sum(a != b for a, b in zip(groups, groups[1:], strict=False))

    old = list(SeededSampler(n, seed=4, block=ds.block_size))
    assert runs(old) > len(sizes)  # the row groups the fixed-size blocks crossed
    sampler = SeededSampler(n, seed=4, block=ds.blocks)
    epochs = [list(sampler), list(sampler)]
    again = SeededSampler(n, seed=4, block=ds.blocks)
    assert [list(again), list(again)] == epochs  # same seed, same orders, epoch by epoch
    assert epochs[0] != epochs[1]
    for order in epochs:
        assert sorted(order) == list(range(n))  # every index exactly once
        assert runs(order) == len(sizes)  # each row group read once, in one run

    ids = table.column("object_id").to_pylist()
    loader = DataLoader(
        GalaxyDataset(tmp_path / "hf", split="train", columns=["object_id"], transform=_worker_of),
        batch_size=4,
        num_workers=2,
        sampler=SeededSampler(n, seed=4, block=ds.blocks, batch_size=4, workers=2),
    )
    for _epoch in range(2):
        readers: dict[int, set[int]] = {}
        seen = Counter()
        for batch in loader:
            for oid, w in zip(batch["object_id"].tolist(), batch["worker"].tolist(), strict=True):
                seen[oid] += 1
                readers.setdefault(bisect.bisect_right(ds.blocks, ids.index(oid)) - 1, set()).add(w)
        assert seen == Counter(ids)  # every object exactly once per epoch
        mixed = sum(len(ws) > 1 for ws in readers.values())
        assert mixed <= 2  # only in the last batches
    with pytest.raises(DatasetError, match="block offsets end at"):
        SeededSampler(n + 1, block=ds.blocks)
    h5 = GalaxyDataset(exports / "h5", split="train")
    assert h5.blocks == tuple(range(len(h5) + 1)) and h5.block_size == 1
