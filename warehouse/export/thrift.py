"""Thrift's compact protocol, as Parquet's page headers and footers use it: a struct decoded
into a plain tree (:func:`decode`) and encoded back to the same bytes (:func:`encode`).

A struct is a list of ``[field id, type, value]``; a bool field's value is in its type (1 true,
2 false), a double is its 8 bytes, a list or set is ``(element type, [values])``, a map
``(key type << 4 | value type, [(key, value)])``. :func:`fields` gives a struct as a dict.
"""

from __future__ import annotations

__all__ = ["Raw", "ThriftError", "decode", "encode", "entry", "fields", "find"]

_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT = 9, 10, 11, 12


class ThriftError(ValueError):
    """Bytes that are not the compact protocol this module reads."""


def _varint(buf, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7
        if shift > 70:
            raise ThriftError("varint too long")


def _zigzag(n: int) -> int:
    return (n >> 1) ^ -(n & 1)


def _list_head(buf, i: int) -> tuple[int, int, int]:
    """A list's (or set's) size, element type and the offset of its first element."""
    head = buf[i]
    n, inner = head >> 4, head & 0x0F
    if n == 15:  # the size follows
        n, i = _varint(buf, i + 1)
        return n, inner, i
    return n, inner, i + 1


def _skip(buf, i: int, kind: int, element: bool = False) -> int:
    """Past one value of compact type ``kind`` starting at ``i`` (``element``: in a list, where
    a bool takes a byte)."""
    if kind in (_TRUE, _FALSE):  # in the field header, or a byte in a list
        return i + 1 if element else i
    if kind == _BYTE:
        return i + 1
    if kind in (_I16, _I32, _I64):
        return _varint(buf, i)[1]
    if kind == _DOUBLE:
        return i + 8
    if kind == _BINARY:
        n, i = _varint(buf, i)
        return i + n
    if kind in (_LIST, _SET):
        n, inner, i = _list_head(buf, i)
        for _ in range(n):
            i = _skip(buf, i, inner, element=True)
        return i
    if kind == _MAP:
        n, i = _varint(buf, i)
        if n:
            types = buf[i]
            i += 1
            for _ in range(n):
                i = _skip(buf, i, types >> 4, element=True)
                i = _skip(buf, i, types & 0x0F, element=True)
        return i
    if kind == _STRUCT:
        while True:
            head = buf[i]
            i += 1
            if head == 0:
                return i
            if not head >> 4:  # the field id follows the type
                i = _varint(buf, i)[1]
            i = _skip(buf, i, head & 0x0F)
    raise ThriftError(f"thrift type {kind}")


class Raw(bytes):
    """A value kept as its encoded bytes (not decoded, encoded back as it was)."""


def decode(buf, i: int = 0, only: dict | None = None) -> tuple[list, int]:
    """The struct at ``buf[i:]`` as ``[[field, type, value], ...]`` and the offset past it.
    A bool field's value is in its type (1 true, 2 false); a double is its 8 bytes. With
    ``only``, integers are decoded and, of structs and lists, only the fields it names, each
    with its own ``only`` for the structs in it; other values are kept :class:`Raw`."""
    out: list = []
    field = 0
    while True:
        head = buf[i]
        i += 1
        if head == 0:
            return out, i
        kind, delta = head & 0x0F, head >> 4
        if delta:
            field += delta
        else:
            raw, i = _varint(buf, i)
            field = _zigzag(raw)
        if kind in (_TRUE, _FALSE):
            value = None
        elif only is None or kind in (_I16, _I32, _I64):
            value, i = _value(buf, i, kind)
        elif field in only and kind in (_STRUCT, _LIST):
            value, i = _value(buf, i, kind, only[field])
        else:
            end = _skip(buf, i, kind)
            value, i = Raw(buf[i:end]), end
        out.append([field, kind, value])


def _value(buf, i: int, kind: int, only: dict | None = None):  # type: ignore[no-untyped-def]
    if kind in (_TRUE, _FALSE, _BYTE):  # a bool inside a list is a byte
        return buf[i], i + 1
    if kind in (_I16, _I32, _I64):
        raw, i = _varint(buf, i)
        return _zigzag(raw), i
    if kind == _DOUBLE:
        return bytes(buf[i : i + 8]), i + 8
    if kind == _BINARY:
        n, i = _varint(buf, i)
        return bytes(buf[i : i + n]), i + n
    if kind in (_LIST, _SET):
        n, inner, i = _list_head(buf, i)
        items = []
        for _ in range(n):
            item, i = _value(buf, i, inner, only)
            items.append(item)
        return (inner, items), i
    if kind == _MAP:
        n, i = _varint(buf, i)
        types, pairs = 0, []
        if n:
            types = buf[i]
            i += 1
            for _ in range(n):
                k, i = _value(buf, i, types >> 4)
                v, i = _value(buf, i, types & 0x0F)
                pairs.append((k, v))
        return (types, pairs), i
    if kind == _STRUCT:
        return decode(buf, i, only)
    raise ThriftError(f"thrift compact type {kind} at byte {i}")


def encode(struct: list) -> bytes:
    """The bytes of a struct :func:`decode` gave (changed or not)."""
    out = bytearray()
    _put_struct(out, struct)
    return bytes(out)


def _put_struct(out: bytearray, struct: list) -> None:
    last = 0
    for field, kind, value in struct:
        delta = field - last
        if 0 < delta <= 15:
            out.append(delta << 4 | kind)
        else:
            out.append(kind)
            _put_varint(out, _unzig(field))
        last = field
        if kind not in (_TRUE, _FALSE):
            _put_value(out, kind, value)
    out.append(0)


def _put_value(out: bytearray, kind: int, value) -> None:  # type: ignore[no-untyped-def]
    if isinstance(value, Raw):
        out += value
    elif kind in (_TRUE, _FALSE, _BYTE):
        out.append(value)
    elif kind in (_I16, _I32, _I64):
        _put_varint(out, _unzig(value))
    elif kind == _DOUBLE:
        out += value
    elif kind == _BINARY:
        _put_varint(out, len(value))
        out += value
    elif kind in (_LIST, _SET):
        inner, items = value
        if len(items) < 15:
            out.append(len(items) << 4 | inner)
        else:
            out.append(0xF0 | inner)
            _put_varint(out, len(items))
        for item in items:
            _put_value(out, inner, item)
    elif kind == _MAP:
        types, pairs = value
        _put_varint(out, len(pairs))
        if pairs:
            out.append(types)
            for k, v in pairs:
                _put_value(out, types >> 4, k)
                _put_value(out, types & 0x0F, v)
    elif kind == _STRUCT:
        _put_struct(out, value)
    else:
        raise ThriftError(f"thrift compact type {kind}")


def _unzig(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _put_varint(out: bytearray, n: int) -> None:
    n &= (1 << 64) - 1
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)


def find(struct: list, field: int) -> list | None:
    """The ``[field, type, value]`` of ``field`` in a decoded struct (None if absent): change
    its value in place to encode another."""
    for item in struct:
        if item[0] == field:
            return item
    return None


def entry(struct: list, field: int) -> list:
    """:func:`find` of a field that must be there."""
    item = find(struct, field)
    if item is None:
        raise ThriftError(f"no field {field} in the struct")
    return item


def fields(struct: list) -> dict:
    """``{field id: value}`` of a decoded struct, a bool field as True or False."""
    return {f: (k == _TRUE if k in (_TRUE, _FALSE) else v) for f, k, v in struct}
