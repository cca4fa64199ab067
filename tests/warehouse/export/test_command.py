"""``gwh export``'s options as the command line gives them (warehouse/export/command.py)."""

from __future__ import annotations

import pytest

from warehouse.errors import ExportError, UsageError, WarehouseError
from warehouse.export.command import export_command


@pytest.mark.parametrize(
    ("target", "format"),
    [({"out": "none/x.h5"}, "hdf5"), ({"all_splits": True, "out_dir": "none/dir"}, "hdf5"),
     ({"out_dir": "none/dir", "split": "train"}, "hf")],
)  # fmt: skip
def test_an_output_in_a_missing_folder_is_refused_and_no_folder_made(
    make_warehouse, tmp_path, target, format
):
    """As ``gwh sql --out`` and ``gwh plot --out``: a typo in a path is not a tree of folders.
    ``--out-dir`` itself may be new (it is made), not its parent."""
    wh = make_warehouse()
    given = {k: tmp_path / v if isinstance(v, str) else v for k, v in target.items()}
    with pytest.raises(ExportError, match=r"folder .*none does not exist; create it first"):
        export_command(wh, format=format, echo=print, **given)
    assert not (tmp_path / "none").exists()


def test_hf_takes_dask_none_as_this_machine(make_warehouse, tmp_path):
    """``--dask none`` means "run here, whatever is configured": hf runs here anyway, so it is
    not refused as a Dask export (a real scheduler address still is)."""
    wh = make_warehouse()
    hf = {"format": "hf", "out_dir": tmp_path / "g", "split": "train", "echo": print}
    with pytest.raises(UsageError, match="--dask writes HDF5"):
        export_command(wh, dask="local:2", **hf)
    with pytest.raises(WarehouseError) as raised:  # an empty warehouse: nothing to export
        export_command(wh, dask="none", **hf)
    assert "--dask" not in str(raised.value)
