""":class:`SeededSampler`: a shuffle reproducible from a seed, each index once per epoch.

Epoch ``e`` draws its order from ``torch.Generator().manual_seed(seed + e)``, so a run restarted
at epoch 7 sees epoch 7's order again. With ``block`` > 1 it shuffles whole blocks of rows, then
the rows inside each block: an hf export read a row group at a time (``dataset.block_size``)
then decodes each row group once per epoch instead of once per row. With ``batch_size`` and
``workers`` (the ``DataLoader``'s), each row group's rows also go to one worker only, so that
two workers do not both decode it.
"""

from __future__ import annotations

from collections.abc import Iterator

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
        self, n: int, seed: int = 0, block: int = 1, batch_size: int = 1, workers: int = 1
    ) -> None:
        require_torch()
        self.n, self.seed, self.block = int(n), int(seed), max(1, int(block))
        self.batch_size, self.workers = max(1, int(batch_size)), max(1, int(workers))
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration gives (else it counts up)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        g = torch.Generator()
        g.manual_seed(self.seed + self.epoch)
        self.epoch += 1
        if self.block == 1:
            yield from torch.randperm(self.n, generator=g).tolist()
            return
        starts = list(range(0, self.n, self.block))
        blocks = []
        for b in torch.randperm(len(starts), generator=g).tolist():
            a = starts[b]
            size = min(self.block, self.n - a)
            blocks.append([a + k for k in torch.randperm(size, generator=g).tolist()])
        if self.workers == 1:
            yield from (i for rows in blocks for i in rows)
            return
        yield from _for_workers(blocks, self.batch_size, self.workers)


def _for_workers(blocks: list[list[int]], batch: int, workers: int) -> list[int]:
    """The rows of ``blocks`` in an order whose batches of ``batch`` rows keep each block on one
    ``DataLoader`` worker (which takes batch j when j % workers is its number): the blocks are
    dealt to the workers in turn, and each worker's rows, cut into batches, are interleaved.
    Each row still comes once; only the last, partial batches may mix the workers' blocks."""
    streams = [[i for rows in blocks[w::workers] for i in rows] for w in range(workers)]
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
