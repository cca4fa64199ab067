"""Parquet files assembled from row groups encoded apart (``--format hf``).

pyarrow's Parquet writer encodes one row group at a time in one thread, and for the nested
fixed-size lists of an image column it encodes about 0.5 GB/s: the hf export's bottleneck. So
the export encodes its row groups in two threads instead (:class:`Assembler`), each into a small
Parquet file of its own in memory, and :class:`AssembledFile` appends each one's row group to
the shard in order: the bytes between a small file's leading magic and its footer are its row
group, whole, at another offset. The shard's footer is the first small file's (schema,
key-value metadata, writer) with the row groups of all, their offsets moved, their ordinals
renumbered and the row count summed. The file is byte for byte the one a single
``pq.ParquetWriter`` writing the same row groups gives (``test_assemble.py`` checks it).

The footer is Thrift's compact protocol, decoded into a plain tree and encoded back
(:mod:`warehouse.export.thrift`); nothing else of the file is read.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.export.thrift import Raw, decode, encode, entry, find

__all__ = ["AssembledFile", "Assembler"]

MAGIC = b"PAR1"
# A row group goes to its shard in writes of 1 MiB (as pyarrow writes its pages): one write of
# the whole ~34 MB row group cost the kernel 3-4 times the CPU (`bench_export.py --hf`).
WRITE_BYTES = 1 << 20
_STRUCT = 12  # a compact-protocol struct (a list's element type)

# parquet.thrift field ids of the absolute file offsets a row group carries
_FILE_NUM_ROWS, _FILE_ROW_GROUPS = 3, 4
_GROUP_COLUMNS, _GROUP_NUM_ROWS, _GROUP_FILE_OFFSET, _GROUP_ORDINAL = 1, 3, 5, 7
_CHUNK_OFFSETS = (2, 4, 6)  # file_offset, offset_index_offset, column_index_offset
_CHUNK_META = 3
_META_OFFSETS = (9, 10, 11, 14)  # data page, index page, dictionary page, bloom filter
# what of a footer is decoded: the row groups, their column chunks and the chunks' metadata
_OFFSETS: dict = {_FILE_ROW_GROUPS: {_GROUP_COLUMNS: {_CHUNK_META: {}}}}


class AssembledFile:
    """A Parquet file written row group by row group from small Parquet files (each as
    :class:`Assembler` makes them: one row group, the same schema and options), in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self._write(MAGIC)
        self.pos = len(MAGIC)
        self.footer: list | None = None
        self.groups: list[Raw] = []  # each row group's struct, encoded (few Python objects)
        self.rows = 0

    def append(self, data: memoryview) -> None:
        """Append the row group(s) of the small Parquet file ``data``."""
        data = data.cast("B") if data.format != "B" else data  # pyarrow's buffers are signed
        if bytes(data[:4]) != MAGIC or bytes(data[-4:]) != MAGIC:
            raise ValueError("not a Parquet file")
        start = len(data) - 8 - int.from_bytes(data[-8:-4], "little")
        footer, _ = decode(data, start, _OFFSETS)
        shift = self.pos - len(MAGIC)
        for group in entry(footer, _FILE_ROW_GROUPS)[2][1]:
            _move(group, shift)
            ordinal = find(group, _GROUP_ORDINAL)
            if ordinal is not None:
                ordinal[2] = len(self.groups)
            self.rows += entry(group, _GROUP_NUM_ROWS)[2]
            self.groups.append(Raw(encode(group)))
        self._write(data[len(MAGIC) : start])
        self.pos += start - len(MAGIC)
        if self.footer is None:
            entry(footer, _FILE_ROW_GROUPS)[2] = (_STRUCT, [])
            self.footer = footer

    def close(self) -> None:
        """The footer: the first file's, with every row group and their rows."""
        try:
            if self.footer is None:
                raise ValueError(f"{self.path}: no row group was appended")
            entry(self.footer, _FILE_ROW_GROUPS)[2] = (_STRUCT, self.groups)
            entry(self.footer, _FILE_NUM_ROWS)[2] = self.rows
            meta = encode(self.footer)
            self._write(meta + len(meta).to_bytes(4, "little") + MAGIC)
        finally:
            self.file.close()

    def discard(self) -> None:
        self.file.close()

    def _write(self, data) -> None:  # type: ignore[no-untyped-def]
        try:
            view = memoryview(data)
            for a in range(0, len(view), WRITE_BYTES):
                self.file.write(view[a : a + WRITE_BYTES])
        except OSError as exc:  # the file's name, for the one-line error (a full disk)
            if exc.filename is not None or exc.errno is None:
                raise
            raise OSError(exc.errno, exc.strerror, str(self.path)) from None


def _move(group: list, shift: int) -> None:
    """Every absolute file offset of row group ``group`` moved by ``shift`` bytes."""
    _shift(group, (_GROUP_FILE_OFFSET,), shift)
    for chunk in entry(group, _GROUP_COLUMNS)[2][1]:
        _shift(chunk, _CHUNK_OFFSETS, shift)
        meta = find(chunk, _CHUNK_META)
        if meta is not None:
            _shift(meta[2], _META_OFFSETS, shift)


def _shift(struct: list, fields: tuple[int, ...], shift: int) -> None:
    for item in struct:
        if item[0] in fields and item[2]:  # 0: not set (Arrow leaves file_offset 0)
            item[2] += shift


class Assembler:
    """Tables encoded as row groups ``workers`` at a time (pyarrow encodes without the GIL),
    each appended to its :class:`AssembledFile` by the thread that encoded it, in the order
    they were submitted."""

    def __init__(self, schema: pa.Schema, options: dict, workers: int) -> None:
        self.schema, self.options = schema, options
        self.free: queue.SimpleQueue = queue.SimpleQueue()  # buffers to encode into again
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="gwh-encode")
        self.turn = threading.Condition()
        self.submitted = self.appended = 0
        self.failed = False

    def submit(self, table: pa.Table, file: AssembledFile, last: bool) -> Future:
        """Encode ``table`` and append it to ``file`` after every table submitted before it;
        ``last``: then close ``file``. The future is done once the table's arrays are free."""
        self.submitted += 1
        return self.pool.submit(self._run, table, file, last, self.submitted - 1)

    def _run(self, table: pa.Table, file: AssembledFile, last: bool, index: int) -> None:
        try:
            buf, data = self._encode(table)
            del table
            with self.turn:
                self.turn.wait_for(lambda: self.appended == index or self.failed)
                if self.failed:
                    return
                file.append(data)
                if last:
                    file.close()
                self.appended += 1
                self.turn.notify_all()
            if buf is not None:
                self.free.put(buf)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """No table is appended any more (after a failure)."""
        with self.turn:
            self.failed = True
            self.turn.notify_all()

    def close(self) -> None:
        self.pool.shutdown(wait=True)

    def _encode(self, table: pa.Table) -> tuple[pa.Buffer | None, memoryview]:
        """``table`` as a one-row-group Parquet file in memory, in a buffer reused from one row
        group to the next (fresh ones would fault their pages in again): the buffer (None if
        not reusable) and the file's bytes within it."""
        need = table.nbytes + table.num_columns * 4096 + (1 << 20)
        try:
            buf = self.free.get_nowait()
        except queue.Empty:
            buf = None
        if buf is None or buf.size < need:
            buf = pa.allocate_buffer(need)
        sink = pa.FixedSizeBufferWriter(buf)
        try:
            with pq.ParquetWriter(sink, self.schema, **self.options) as writer:
                writer.write_table(table, row_group_size=max(1, table.num_rows))
        except OSError:  # larger than foreseen (it never has been): encode it unbounded
            self.free.put(buf)
            grown = pa.BufferOutputStream()
            with pq.ParquetWriter(grown, self.schema, **self.options) as writer:
                writer.write_table(table, row_group_size=max(1, table.num_rows))
            return None, memoryview(grown.getvalue())
        return buf, memoryview(buf)[: sink.tell()]
