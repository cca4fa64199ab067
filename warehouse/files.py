"""Files on disk, one helper for each job: hashing, atomic writes, the warehouse folder layout.

Digests computed here are stored (``gwh_loads.sha256``, release manifests, cache file names,
morphology keys), so each helper keeps the exact bytes it hashes: a caller passes the same text it
always hashed, and ``tests/warehouse/test_files.py`` pins one known value of each kind.

>>> short_hash("hsc", 8)
'09abd6d0'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from warehouse.errors import NotWritableError

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = [
    "CONFIG_NAME",
    "DB_NAME",
    "PACK_MANIFEST",
    "Layout",
    "atomic_path",
    "atomic_write_bytes",
    "background_sha256",
    "file_sha256",
    "host_tag",
    "json_hash",
    "make_root",
    "missing_parent",
    "parquet_bytes",
    "publish",
    "room_in",
    "pid_alive",
    "refused_by_os",
    "sha256_hex",
    "short_hash",
    "values_hash",
    "write_parquet_atomic",
]

DB_NAME = "warehouse.duckdb"
CONFIG_NAME = "warehouse.toml"
PACK_MANIFEST = "pack.json"  # a packed release's file list (gwh release pack)


# ------------------------------------------------------------------------------------ hashing


def file_sha256(path: Path, on_bytes: Callable[[int], object] | None = None) -> str:
    """The file's SHA-256; ``on_bytes(n)`` after each block read (a progress bar's update)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
            if on_bytes is not None:
                on_bytes(len(block))
    return h.hexdigest()


@contextlib.contextmanager
def background_sha256(paths: Sequence[Path]) -> Iterator[list[Future[str]]]:
    """The SHA-256 of each file, computed in order by one thread while the caller works (e.g.
    reads the files: hashlib releases the GIL, so both cores are busy): a future per path.
    Hashes not yet started when the block ends are cancelled."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gwh-sha256")
    try:
        yield [pool.submit(file_sha256, Path(p)) for p in paths]
    finally:  # a hash still running finishes in its thread; none not yet started does
        pool.shutdown(wait=False, cancel_futures=True)


def sha256_hex(data: bytes | str) -> str:
    """SHA-256 (64 hex digits) of ``data``; text is hashed as UTF-8."""
    return hashlib.sha256(data.encode("utf-8") if isinstance(data, str) else data).hexdigest()


def short_hash(data: bytes | str, n: int = 16) -> str:
    """The first ``n`` hex digits of :func:`sha256_hex`: a short stable name."""
    return sha256_hex(data)[:n]


def json_hash(payload: Any, n: int = 16) -> str:
    """``n`` hex digits naming a JSON-able value: keys sorted, no spaces (cache file names)."""
    return short_hash(json.dumps(payload, sort_keys=True, separators=(",", ":")), n)


def values_hash(values: Iterable[Any], n: int = 16) -> str:
    """``n`` hex digits naming a sequence of values (work units, cache files): their reprs, each
    followed by the unit separator ``\\x1f``."""
    h = hashlib.sha256()
    for v in values:
        h.update(repr(v).encode())
        h.update(b"\x1f")
    return h.hexdigest()[:n]


def host_tag() -> str:
    """This machine, as 8 hex digits of the SHA-256 of its host name."""
    return short_hash(socket.gethostname(), 8)


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------ atomic writes


def atomic_write_bytes(dest: Path, chunks: Iterator[bytes] | bytes) -> Path:
    """Write ``chunks`` to ``dest`` through a temporary file in the same directory.

    Readers see either no file or the complete file, never a partial one.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            if isinstance(chunks, bytes):
                fh.write(chunks)
            else:
                for chunk in chunks:
                    fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return dest


def publish(src: Path, dest: Path, replace: bool) -> bool:
    """Rename ``src`` onto ``dest`` in one step; unless ``replace``, never over a file that
    appeared meanwhile (e.g. another run's: two exports to one name both checked before
    either finished). False: ``dest`` exists and ``src`` was not moved."""
    if replace:
        os.replace(src, dest)
        return True
    try:
        os.link(src, dest)  # fails if dest exists, atomically
    except FileExistsError:
        return False
    except OSError:  # no hard links here (some network or FUSE file systems)
        if dest.exists():
            return False
        os.replace(src, dest)
        return True
    os.unlink(src)
    return True


def publish_folder(src: Path, dest: Path) -> bool:
    """Rename the folder ``src`` onto ``dest`` in one step, where ``dest`` is missing or an
    empty folder; never over one that was filled meanwhile (e.g. by another run to the same
    name, both checked before either finished). False: ``dest`` is not empty, ``src`` stays."""
    try:
        os.replace(src, dest)  # refused (atomically) onto a folder that is not empty
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
            raise
        return False
    return True


def missing_parent(out: Path, option: str = "--out") -> str | None:
    """What to say when the folder ``out`` would be written in does not exist (None: it does):
    an output option never creates folders, so a typo in one is caught, not a tree of them."""
    parent = Path(out).parent
    if parent.is_dir():
        return None
    if parent.exists():
        return f"{option} {out}: {parent} is not a folder; give a path in a folder."
    return f"{option} {out}: folder {parent} does not exist; create it first."


@contextlib.contextmanager
def atomic_path(out: Path) -> Iterator[Path]:
    """A temporary path beside ``out`` (``.<name>.<pid>.tmp<suffix>``, keeping the suffix so
    writers that go by it still work); renamed onto ``out`` when the block ends without error,
    removed either way."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp{out.suffix}")
    try:
        yield tmp
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)


_NO_ROOM = {
    errno.ENOSPC: "free space on that disk",
    errno.EDQUOT: "free space in your quota",
    errno.EFBIG: "raise the file-size limit (ulimit -f)",
}


def out_of_room(exc: BaseException, into: Path | None = None) -> NotWritableError | None:
    """The one line for a write that failed for want of room (a full disk, a quota, the
    file-size limit), whichever library raised it (DuckDB says so only in its message); None
    for any other error. It names the file the error names, else the folder ``into`` the write
    went. gwh's writes are atomic, so the advice is to make room and rerun."""
    code = exc.errno if isinstance(exc, OSError) else None
    if code not in _NO_ROOM:
        code = next((c for c in _NO_ROOM if os.strerror(c) in str(exc)), None)
    if code is None:
        return None
    if isinstance(exc, OSError) and exc.filename:
        where = f" {exc.filename}"
    else:
        where = f" into {into}" if into is not None else ""
    return NotWritableError(
        f"writing{where} failed: {os.strerror(code)}. Nothing half-written was kept: "
        f"{_NO_ROOM[code]}, then run the command again."
    )


_REFUSED = {
    errno.EACCES: "check its permissions, or give a path you may write to",
    errno.EPERM: "check its permissions, or give a path you may write to",
    errno.EROFS: "give a path on a writable file system",
    errno.EEXIST: "remove it, or give another path",
    errno.ENOENT: "check the path (a folder on it may not exist yet)",
    errno.EISDIR: "it is a folder: give a file path",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
}


def refused_by_os(exc: BaseException) -> NotWritableError | None:
    """The one line for a file operation the system refused (permissions, a read-only file
    system, a file in the way or missing) naming the path, for errors no command turned into
    its own message; None for any other error."""
    if not isinstance(exc, OSError) or exc.errno not in _REFUSED or not exc.filename:
        return None
    path = Path(os.fsdecode(exc.filename))
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and not path.exists():
        path = path.parent  # a new (often temporary) file could not be made in its folder
    return NotWritableError(f"{path}: {os.strerror(exc.errno)}: {_REFUSED[exc.errno]}.")


@contextlib.contextmanager
def room_in(folder: Path) -> Iterator[None]:
    """Inside, a write that fails for want of room raises :func:`out_of_room`'s line, naming
    ``folder`` when the error itself names no file (pyarrow's and DuckDB's often do not)."""
    try:
        yield
    except NotWritableError:
        raise
    except Exception as exc:
        error = out_of_room(exc, folder)
        if error is None:
            raise
        raise error from None


def make_root(root: Path, usage: str = "gwh init PATH") -> None:
    """Create a warehouse folder and its ``catalogs/``, or say in one line why that cannot be
    (``usage``: the command to give a folder to)."""
    try:
        Layout(root).catalogs.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in [root, *root.parents] if p.exists() and not p.is_dir()), root)
        raise NotWritableError(
            f"cannot create a warehouse at {root}: {blocker.name} is a file, not a folder. "
            f"Give a folder ({usage})."
        ) from None
    except OSError as exc:
        raise NotWritableError(
            f"cannot create a warehouse at {root}: {exc.strerror}. Give a folder you can write "
            f"to ({usage})."
        ) from None


def parquet_bytes(table: pa.Table, compression: str = "snappy") -> bytes:
    """``table`` as the bytes of one Parquet file."""
    # pyarrow only when a table is written: importing warehouse.files stays light
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression=compression)
    return buffer.getvalue()


def write_parquet_atomic(table: pa.Table, path: Path) -> Path:
    """``table`` as a snappy Parquet file at ``path``, written atomically."""
    return atomic_write_bytes(path, parquet_bytes(table))


# ---------------------------------------------------------------------------- folder layout


@dataclass(frozen=True)
class Layout:
    """Where things live under a warehouse root: the one place the folder names are spelled.

    >>> Layout(Path("w")).cache("sdss").as_posix()
    'w/cache/sdss'
    """

    root: Path

    @property
    def db(self) -> Path:
        return self.root / DB_NAME

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def catalogs(self) -> Path:
        return self.root / "catalogs"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    def cache(self, name: str) -> Path:
        """A source's download cache, ``cache/<name>`` (not created here)."""
        return self.root / "cache" / name

    @property
    def scratch(self) -> Path:
        """Scratch space for running work, ``cache/tmp``."""
        return self.cache("tmp")

    def owned_part(self, path: Path) -> str | None:
        """The part of the warehouse that writing ``path`` would replace, which only gwh's
        writers change: ``"."`` when ``path`` is the warehouse or a folder holding it, else
        ``catalogs/``, ``releases/``, ``cache/``, or a file of the root's own (``warehouse.duckdb``
        and its ``.wal``, ``warehouse.toml``, and the dot-files such as ``.lock`` and ``.readers``
        that serialise writers and keep readers' versions). None: another file of the root, or
        a path outside it."""
        target = path.parent.resolve() / path.name
        root = self.root.resolve()
        if root.is_relative_to(target):
            return "."
        for own, name in (
            (self.catalogs, "catalogs/"),
            (self.releases, "releases/"),
            (self.root / "cache", "cache/"),
        ):
            if target.is_relative_to(own.resolve()):
                return name
        if target.parent != root:
            return None
        own_files = (DB_NAME, f"{DB_NAME}.wal", CONFIG_NAME)
        return target.name if target.name in own_files or target.name.startswith(".") else None

    def refuse_owned(self, path: Path, option: str) -> None:
        """Refuse an output ``path`` (given as ``option``) that :meth:`owned_part` says only
        gwh's writers change (a plot or a batch list written into ``catalogs/`` or a release)."""
        part = self.owned_part(Path(path))
        if part is not None:
            raise NotWritableError(
                f"{option} {path} {self.owned_phrase(part)}, which only gwh's writers change; "
                "write it elsewhere."
            )

    @staticmethod
    def owned_phrase(part: str) -> str:
        """How a refusal says what a target is, from :meth:`owned_part`'s answer."""
        if part == ".":
            return "holds the warehouse"
        if part.endswith("/"):
            return f"is inside the warehouse's {part}"
        return f"is the warehouse's own file {part}"
