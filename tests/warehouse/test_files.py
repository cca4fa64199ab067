"""warehouse.files: the digests are stored on disk (gwh_loads, manifests, cache names), so each kind
is pinned to the value the helpers it replaced produced (loaders.readers.file_sha256,
release._sha256_text, sdss._table_digest, images.digest, hsc_ssp.fetch._digest,
mast.hubble_source_catalog._query_key, scratch.host_tag)."""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from warehouse.errors import NotWritableError
from warehouse.files import (
    Layout,
    atomic_path,
    atomic_write_bytes,
    file_sha256,
    host_tag,
    json_hash,
    out_of_room,
    parquet_bytes,
    pid_alive,
    room_in,
    sha256_hex,
    short_hash,
    values_hash,
    write_parquet_atomic,
)


def test_file_sha256_is_the_stored_value(tmp_path: Path) -> None:
    p = tmp_path / "x.bin"
    p.write_bytes(b"galaxy\n" * 1000)
    seen: list[int] = []
    got = file_sha256(p, on_bytes=seen.append)
    assert got == "581a105c42545ce44298c12cdb344b06283a5e4b003fd4b248cf6411c534037a"
    assert sum(seen) == 7000


def test_text_and_short_digests_are_the_stored_values() -> None:
    assert (
        sha256_hex("héllo\n") == "b95becd154aa095f76c4ca47a5aeb8350d6dfcb838404edfc9dae06628de938d"
    )
    assert sha256_hex("héllo\n".encode()) == sha256_hex("héllo\n")
    assert short_hash("hsc", 8) == "09abd6d0"
    assert json_hash({"b": [1, 2], "a": "x"}) == "721ef82f2d6c0997"
    assert json_hash({"b": [1, 2], "a": "x"}, 24) == "721ef82f2d6c0997bffb7a8a"
    assert values_hash([1, "a", 2.5]) == "cd8c445f3ca1067f"
    assert values_hash(iter([("sql",)])) == "79609facfa9ff87c"
    assert host_tag() == short_hash(socket.gethostname(), 8)


def test_parquet_digest_is_the_stored_value() -> None:
    t = pa.table({"object_id": pa.array([1, 2, 3], pa.int64()), "ra": [1.5, 2.5, 3.5]})
    digest = sha256_hex(parquet_bytes(t))
    assert digest == "f8c019c5a89c93319ea3b3d34e518c6dcc2826e199e4c250e11f1cd48ffde515"


def test_atomic_writes_leave_only_the_final_file(tmp_path: Path) -> None:
    out = atomic_write_bytes(tmp_path / "a" / "x.bin", iter([b"ab", b"cd"]))
    assert out.read_bytes() == b"abcd"
    t = pa.table({"x": [1]})
    write_parquet_atomic(t, tmp_path / "a" / "t.parquet")
    assert (tmp_path / "a" / "t.parquet").read_bytes() == parquet_bytes(t)
    with atomic_path(tmp_path / "b" / "y.png") as tmp:
        assert tmp.suffix == ".png" and tmp.parent == tmp_path / "b"
        tmp.write_bytes(b"png")
    assert (tmp_path / "b" / "y.png").read_bytes() == b"png"
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "b" / "z.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["t.parquet", "x.bin"]
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["y.png"]


def test_layout_spells_the_folders(tmp_path: Path) -> None:
    lay = Layout(tmp_path)
    assert lay.db == tmp_path / "warehouse.duckdb"
    assert lay.config == tmp_path / "warehouse.toml"
    assert lay.catalogs == tmp_path / "catalogs"
    assert lay.releases == tmp_path / "releases"
    assert lay.cache("sdss") == tmp_path / "cache" / "sdss"
    assert lay.scratch == tmp_path / "cache" / "tmp"


def test_pid_alive() -> None:
    assert pid_alive(os.getpid())


def test_owned_part_names_what_only_writers_change(tmp_path):
    root = tmp_path / "w"
    (root / "catalogs" / "t").mkdir(parents=True)
    (root / "link").symlink_to(root / "catalogs" / "t")
    layout = Layout(root)
    assert layout.owned_part(root) == "." and layout.owned_part(tmp_path) == "."
    assert layout.owned_part(root / "catalogs" / "t" / "x.parquet") == "catalogs/"
    assert layout.owned_part(root / "link" / "x.parquet") == "catalogs/"  # through a link
    assert layout.owned_part(root / "releases" / "v1" / "x.h5") == "releases/"
    assert layout.owned_part(root / "warehouse.duckdb") == "warehouse.duckdb"
    assert layout.owned_part(root / "warehouse.toml") == "warehouse.toml"
    assert layout.owned_part(root / "cache" / "sdss" / "x.fits") == "cache/"
    assert layout.owned_part(root / "warehouse.duckdb.wal") == "warehouse.duckdb.wal"
    # the writers' lock and the readers' registry: replacing either breaks "writers serialise"
    assert layout.owned_part(root / ".lock") == ".lock"
    assert layout.owned_part(root / ".readers") == ".readers"
    assert layout.owned_part(root / "result.csv") is None  # the folder itself is the user's
    assert layout.owned_part(tmp_path / "elsewhere.h5") is None


def test_out_of_room_names_the_cause_whichever_library_raised_it():
    full = out_of_room(OSError(errno.ENOSPC, "No space left on device", "/data/x.parquet"))
    assert full is not None
    assert str(full).startswith("writing /data/x.parquet failed: No space left on device.")
    assert "free space on that disk" in str(full)
    big = out_of_room(OSError(errno.EFBIG, "Error writing bytes to file. Detail: [errno 27]"))
    assert big is not None and "ulimit -f" in str(big)
    said = duckdb.IOException("IO Error: Could not write file 'w.duckdb': No space left on device")
    assert out_of_room(said) is not None
    assert out_of_room(OSError(errno.EACCES, "Permission denied")) is None


def test_room_in_names_the_folder_when_the_error_names_no_file(tmp_path):
    with pytest.raises(NotWritableError, match=rf"writing into {tmp_path} failed: No space left"):
        with room_in(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device")  # as pyarrow raises it
    with pytest.raises(NotWritableError, match="writing /d/x.parquet failed"):  # its own file
        with room_in(tmp_path):
            raise OSError(errno.ENOSPC, "No space left on device", "/d/x.parquet")
    with pytest.raises(KeyError), room_in(tmp_path):  # anything else passes through
        raise KeyError("x")
    assert out_of_room(ValueError("bad value")) is None
