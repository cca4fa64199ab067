""":class:`SeededSampler`: a shuffle reproducible from a seed, each index once per epoch.

Epoch ``e`` draws its order from a ``torch.Generator`` seeded with NumPy's ``SeedSequence([seed,
e])``, so a run restarted at epoch 7 sees epoch 7's order again, and two seeds never share an
order (with ``seed + e``, seed 0's epoch 1 was seed 1's epoch 0: runs meant as independent
repeats saw the same orders one epoch apart). With ``block`` it shuffles whole blocks of rows,
then the rows inside each block: an hf export read a row group at a time then decodes each row
group once per epoch instead of once per row. ``block=ds.blocks`` gives the dataset's own row
groups, of whatever sizes (a folder re-sharded by the Hub or by ``datasets``, a short last group
in each shard); an int cuts ``range(n)`` into blocks of that many rows, which match the row
groups only when every group but the last holds that many. With ``batch_size`` and ``workers``
(the ``DataLoader``'s), each block's rows also go to one worker only, so that two workers do not
both decode it.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

import numpy as np

from warehouse.errors import DatasetError
from warehouse.ml.dataset import require_torch

try:  # optional: pip install -e '.[ml]'
    import torch
    from torch.utils.data import Sampler
except ImportError:  # pragma: no cover - exercised without torch installed
    torch = None  # type: ignore[assignment]
    Sampler = object  # type: ignore[assignment,misc]

__all__ = ["SeededSampler"]


class SeededSampler(Sampler):  # type: ignore[misc]
    """Every index of ``range(n)`` once per epoch, in an order fixed by ``seed`` and the epoch.

    >>> list(SeededSampler(5, seed=1)) == list(SeededSampler(5, seed=1))  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        n: int,
        seed: int = 0,
        block: int | Sequence[int] = 1,
        batch_size: int = 1,
        workers: int = 1,
    ) -> None:
        require_torch()
        self.n, self.seed = _count("n", n, 0), _count("seed", seed, 0)
        self.bounds = _bounds(self.n, block)
        sizes = [b - a for a, b in zip(self.bounds, self.bounds[1:], strict=False)]
        self.block = max(sizes, default=1)
        self.batch_size = _count("batch_size", batch_size, 1)
        self.workers = _count("workers", workers, 1)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration gives (else it counts up)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(epoch_seed(self.seed, self.epoch))
        self.epoch += 1
        if self.block == 1:
            yield from torch.randperm(self.n, generator=g).tolist()
            return
        starts, ends = self.bounds[:-1], self.bounds[1:]
        blocks = []
        for b in torch.randperm(len(starts), generator=g).tolist():
            a, size = starts[b], ends[b] - starts[b]
            blocks.append([a + k for k in torch.randperm(size, generator=g).tolist()])
        if self.workers == 1:
            yield from (i for rows in blocks for i in rows)
            return
        yield from _for_workers(blocks, self.batch_size, self.workers)


def epoch_seed(seed: int, epoch: int) -> int:
    """The generator's seed for ``epoch`` of ``seed``: both mixed by NumPy's ``SeedSequence``
    (a 64-bit value), so no two (seed, epoch) pairs share it as ``seed + epoch`` did."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, np.uint64)
    return int(state[0])


def _count(name: str, value: object, least: int) -> int:
    """``value`` as an int of at least ``least`` (a whole number: 2.7 rows or a seed of 1.9 are
    refused, not truncated)."""
    try:
        number = operator.index(value)  # type: ignore[arg-type]  # numpy ints too
    except TypeError:
        number = None
    if number is None or isinstance(value, bool) or number < least:
        raise DatasetError(
            f"SeededSampler: {name} must be a whole number of at least {least}, got {value!r}"
        )
    return number


def _bounds(n: int, block: int | Sequence[int]) -> list[int]:
    """0, the first row of each later block, and ``n``: every ``block`` rows, or the row
    offsets ``block`` gives (``GalaxyDataset.blocks``; an empty row group adds nothing)."""
    try:
        size = operator.index(block)  # type: ignore[arg-type]  # numpy ints too
    except TypeError:
        try:
            bounds = [operator.index(b) for b in block]  # type: ignore[union-attr]
        except TypeError:
            raise DatasetError(
                f"SeededSampler: block must be rows per block or the dataset's block offsets "
                f"(block=ds.blocks), got {block!r}"
            ) from None
    else:
        size = _count("block", size, 1)
        return [*range(0, n, size), n] if n else [0]
    if bounds[-1:] != [n]:  # the dataset's blocks end at its length
        raise DatasetError(
            f"block offsets end at {bounds[-1] if bounds else 'nothing'}, not at n={n}: give "
            "the dataset's own, SeededSampler(len(ds), seed, block=ds.blocks)"
        )
    if bounds[0] != 0 or any(b < a for a, b in zip(bounds, bounds[1:], strict=False)):
        raise DatasetError(
            "block offsets must start at 0 and never decrease (the first row of each block, "
            "then n): give the dataset's own, block=ds.blocks"
        )
    return list(dict.fromkeys(bounds))


def _for_workers(blocks: list[list[int]], batch: int, workers: int) -> list[int]:
    """The rows of ``blocks`` in an order whose batches of ``batch`` rows keep each block on one
    ``DataLoader`` worker (which takes batch j when j % workers is its number): each block goes
    to the worker with the fewest rows so far (the first of them; in turn when the blocks are
    equal), and each worker's rows, cut into batches, are interleaved. Each row still comes
    once; only the last batches, past the shortest worker's, may mix the workers' blocks."""
    streams: list[list[int]] = [[] for _ in range(workers)]
    for rows in blocks:
        min(streams, key=len).extend(rows)  # min: the first of the shortest
    pieces = [[s[a : a + batch] for a in range(0, len(s), batch)] for s in streams]
    out: list[int] = []
    k = 0
    while all(k < len(p) and len(p[k]) == batch for p in pieces):
        for p in pieces:
            out += p[k]
        k += 1
    for p in pieces:
        for piece in p[k:]:
            out += piece
    return out
