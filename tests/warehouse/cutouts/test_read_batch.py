"""read_cutouts: several objects' cutouts in one pass give exactly what read_cutout gives."""

from __future__ import annotations

import numpy as np
import pytest

from loaders.simulated.demo import run_demo
from warehouse.cutouts import read_cutout, read_cutouts


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    where = tmp_path_factory.mktemp("read_batch")
    return run_demo(where / "gwh-demo", n_objects=300, n_images=5, echo=lambda _m: None)


def test_batch_equals_one_by_one(demo):
    ids = demo.query("SELECT object_id FROM cutouts ORDER BY object_id").column(0).to_pylist()
    batch = read_cutouts(demo, [*ids, 12345])  # 12345 has no cutouts: left out
    assert sorted(batch) == ids
    for oid in ids:
        one = read_cutout(demo, oid)
        got = batch[oid]
        assert np.array_equal(one.images, got.images, equal_nan=True)
        assert (one.mask is None) == (got.mask is None)
        if one.mask is not None:
            assert np.array_equal(one.mask, got.mask)
        assert one.present == got.present and one.simulated == got.simulated
        assert one.metadata == got.metadata and one.zeropoints == got.zeropoints
    assert read_cutouts(demo, []) == {}


def test_only_the_planes_asked_for(demo):
    ids = demo.query("SELECT object_id FROM cutouts ORDER BY object_id").column(0).to_pylist()
    full = read_cutouts(demo, ids)
    images_only = read_cutouts(demo, ids, planes=("image",))
    with_mask = read_cutouts(demo, ids, planes=("image", "mask"))
    for oid in ids:
        assert np.array_equal(full[oid].images, images_only[oid].images, equal_nan=True)
        assert images_only[oid].variance is None and images_only[oid].mask is None
        assert with_mask[oid].variance is None
        if full[oid].mask is not None:
            assert np.array_equal(full[oid].mask, with_mask[oid].mask)
        assert images_only[oid].metadata == full[oid].metadata
