"""Training from an export: :class:`GalaxyDataset`, a map-style PyTorch ``Dataset`` over an
HDF5 export or an ``hf`` folder, and :class:`SeededSampler`, a shuffle reproducible from a seed.

PyTorch is optional (``pip install -e '.[ml]'``, the CPU wheel ``torch==2.13.0``): this package
imports without it, and using it then stops with a one-line :class:`~warehouse.errors.DatasetError`
saying what to install.

Example
-------
>>> from torch.utils.data import DataLoader  # doctest: +SKIP
>>> ds = GalaxyDataset("galaxies/", split="train", columns=["object_id", "specz_redshift"])
... # doctest: +SKIP
>>> for batch in DataLoader(ds, batch_size=64, num_workers=2,
...                         sampler=SeededSampler(len(ds), seed=0)):  # doctest: +SKIP
...     batch["image"].shape  # (64, 5, 127, 127)
"""

from warehouse.ml.dataset import INSTALL_HINT, GalaxyDataset, require_torch
from warehouse.ml.sampler import SeededSampler

__all__ = ["INSTALL_HINT", "GalaxyDataset", "SeededSampler", "require_torch"]
