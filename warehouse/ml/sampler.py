""":class:`SeededSampler`: a shuffle reproducible from a seed, each index once per epoch.

Epoch ``e`` draws its order from ``torch.Generator().manual_seed(seed + e)``, so a run restarted
at epoch 7 sees epoch 7's order again. With ``block`` > 1 it shuffles whole blocks of rows, then
the rows inside each block: an hf export read a row group at a time (``dataset.block_size``)
then decodes each row group once per epoch instead of once per row.
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

    def __init__(self, n: int, seed: int = 0, block: int = 1) -> None:
        require_torch()
        self.n, self.seed, self.block = int(n), int(seed), max(1, int(block))
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
        for b in torch.randperm(len(starts), generator=g).tolist():
            a = starts[b]
            size = min(self.block, self.n - a)
            yield from (a + k for k in torch.randperm(size, generator=g).tolist())
