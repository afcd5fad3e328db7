"""A cheap structural check of a GGUF file: header, metadata and tensor table, no tensor data.

A truncated download or a half-copied file fails only when llama.cpp maps it, deep inside a
gate run and with a message that does not name the file; ``gguf.GGUFReader`` would find it but
turns every metadata value (a 49k-entry vocabulary) into Python objects first, which takes
seconds. This walks the header and the tensor table through ``mmap`` (only the pages holding
them are read: a few MB of a multi-GB file), computes where the last tensor's bytes end and
compares that with the file's size.

The layout (GGUF v2/v3, little- or big-endian): magic ``GGUF``, version (u32), tensor count
(u64), metadata count (u64); each metadata entry is a key (u64 length + UTF-8 bytes), a value
type (u32) and the value; each tensor entry is a name, the number of dimensions (u32), the
dimensions (u64 each), the ggml type (u32) and the offset of its data (u64) from the start of
the data section, which begins at the next multiple of ``general.alignment`` (default 32).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

GGUF_MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
SUPPORTED_VERSIONS = (2, 3)
# Metadata value types: the fixed-size ones as struct codes; 8 is a string, 9 an array.
_SCALAR_CODES = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q",
                 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9
# The metadata values the check itself needs; every other value is skipped, not decoded.
_MAX_ARRAY_DEPTH = 16
_KEPT_KEYS = frozenset({"general.alignment", "general.type", "general.architecture"})


class GgufFileError(ValueError):
    """A file that is not a usable GGUF; the message says what is wrong (not which spec)."""


@dataclass(frozen=True)
class GgufLayout:
    """What the check read: enough to say what the file is and that its data is all there."""

    version: int
    tensor_count: int
    general_type: str | None
    architecture: str | None
    data_end: int
    file_size: int


class _Truncated(Exception):
    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what)
        self.what = what
        self.offset = offset


class _Cursor:
    """Reads the fields in order from a buffer; running past its end raises ``_Truncated``."""

    def __init__(self, buffer: mmap.mmap, order: str) -> None:
        self.buffer = buffer
        self.size = len(buffer)
        self.order = order
        self.pos = 0

    def skip(self, count: int, what: str) -> int:
        start = self.pos
        if count < 0 or start + count > self.size:
            raise _Truncated(what, start)
        self.pos = start + count
        return start

    def number(self, code: str, what: str) -> int | float | bool:
        start = self.skip(struct.calcsize(code), what)
        return struct.unpack_from(self.order + code, self.buffer, start)[0]

    def string(self, what: str, keep: bool = True) -> str | None:
        length = int(self.number("Q", what))
        start = self.skip(length, what)
        if not keep:
            return None
        return bytes(self.buffer[start:start + length]).decode("utf-8", "replace")


def check_gguf_file(path: str | Path) -> GgufLayout:
    """Check that ``path`` is a complete GGUF; raise :class:`GgufFileError` saying why not.

    Reads the header and tensor table only, so it costs milliseconds on any file size.
    """
    path = Path(path)
    if not path.exists():
        raise GgufFileError("file not found")
    if not path.is_file():
        raise GgufFileError("is not a regular file")
    try:
        with open(path, "rb") as handle:
            size = path.stat().st_size
            if size == 0:
                raise GgufFileError("is empty (0 bytes)")
            head = handle.read(4)
            if head != GGUF_MAGIC:
                raise GgufFileError(
                    f"is not a GGUF file (starts with {head!r}, expected {GGUF_MAGIC!r})"
                )
            with mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
                return _read_layout(buffer, size)
    except OSError as exc:
        raise GgufFileError(f"cannot be read ({exc.strerror or exc})") from None


def _read_layout(buffer: mmap.mmap, size: int) -> GgufLayout:
    order, version = _byte_order(buffer)
    cursor = _Cursor(buffer, order)
    cursor.pos = 8
    try:
        tensor_count = int(cursor.number("Q", "the header"))
        kv_count = int(cursor.number("Q", "the header"))
        kept = _read_metadata(cursor, kv_count)
        offsets_end = _read_tensor_table(cursor, tensor_count)
    except _Truncated as short:
        raise GgufFileError(
            f"is truncated: the file ends inside {short.what} (at byte {short.offset} of "
            f"{size}); the download or copy did not finish"
        ) from None
    alignment = kept.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0:
        raise GgufFileError(f"has an invalid general.alignment ({alignment!r})")
    data_start = -(-cursor.pos // alignment) * alignment
    data_end = data_start + offsets_end
    if data_end > size:
        raise GgufFileError(
            f"is truncated: its tensor data ends at byte {data_end} but the file has {size} "
            f"bytes ({data_end - size} missing); the download or copy did not finish"
        )
    general_type = kept.get("general.type")
    architecture = kept.get("general.architecture")
    return GgufLayout(
        version=version, tensor_count=tensor_count,
        general_type=general_type if isinstance(general_type, str) else None,
        architecture=architecture if isinstance(architecture, str) else None,
        data_end=data_end, file_size=size,
    )


def _byte_order(buffer: mmap.mmap) -> tuple[str, int]:
    if len(buffer) < 8:
        raise GgufFileError(f"is truncated: {len(buffer)} bytes, shorter than a GGUF header")
    little, big = struct.unpack_from("<I", buffer, 4)[0], struct.unpack_from(">I", buffer, 4)[0]
    # A big-endian GGUF (s390x builds) stores the version byte-swapped; a version is small.
    for order, version in (("<", little), (">", big)):
        if version in SUPPORTED_VERSIONS:
            return order, version
    shown = little if little < big else big
    raise GgufFileError(
        f"has GGUF version {shown}, which llama.cpp does not read "
        f"(supported: {', '.join(map(str, SUPPORTED_VERSIONS))})"
    )


def _read_metadata(cursor: _Cursor, count: int) -> dict[str, object]:
    kept: dict[str, object] = {}
    for index in range(count):
        what = f"metadata entry {index + 1} of {count}"
        key = cursor.string(what) or ""
        value_type = int(cursor.number("I", what))
        value = _read_value(cursor, value_type, what, keep=key in _KEPT_KEYS)
        if key in _KEPT_KEYS:
            kept[key] = value
    return kept


def _read_value(cursor: _Cursor, value_type: int, what: str, keep: bool, depth: int = 0) -> object:
    if value_type in _SCALAR_CODES:
        return cursor.number(_SCALAR_CODES[value_type], what)
    if value_type == _STRING:
        return cursor.string(what, keep)
    if value_type == _ARRAY:
        item_type = int(cursor.number("I", what))
        count = int(cursor.number("Q", what))
        if item_type in _SCALAR_CODES:
            cursor.skip(count * struct.calcsize(_SCALAR_CODES[item_type]), what)
        elif item_type == _STRING:
            _skip_strings(cursor, count, what)
        elif item_type == _ARRAY:
            # Each item is at least 12 bytes, so a corrupt count runs off the end quickly; a
            # corrupt chain of arrays in arrays would otherwise recurse past Python's limit.
            if depth >= _MAX_ARRAY_DEPTH:
                raise GgufFileError(f"is corrupt: {what} nests arrays over {depth} deep")
            for _ in range(count):
                _read_value(cursor, item_type, what, keep=False, depth=depth + 1)
        else:
            raise GgufFileError(f"is corrupt: {what} has an array of unknown type {item_type}")
        return None
    raise GgufFileError(f"is corrupt: {what} has unknown value type {value_type}")


def _skip_strings(cursor: _Cursor, count: int, what: str) -> None:
    # The vocabulary and merges are arrays of ~50k-150k strings: one tight loop here instead
    # of a method call per string makes the check several times faster. Each string is at
    # least its 8-byte length, so a corrupt count runs off
    # the end of the file quickly.
    buffer, size, length_format = cursor.buffer, cursor.size, cursor.order + "Q"
    pos = cursor.pos
    for _ in range(count):
        if pos + 8 > size:
            raise _Truncated(what, pos)
        pos += 8 + struct.unpack_from(length_format, buffer, pos)[0]
        if pos > size:
            raise _Truncated(what, pos)
    cursor.pos = pos


def _read_tensor_table(cursor: _Cursor, count: int) -> int:
    """The end of the last tensor's data, counted from the start of the data section."""
    sizes = _quant_sizes()
    end = 0
    for index in range(count):
        what = f"tensor entry {index + 1} of {count}"
        cursor.string(what, keep=False)
        n_dims = int(cursor.number("I", what))
        if n_dims > 8:  # ggml's GGML_MAX_DIMS is 4; anything near this is garbage
            raise GgufFileError(f"is corrupt: {what} claims {n_dims} dimensions")
        elements = 1
        for _ in range(n_dims):
            elements *= int(cursor.number("Q", what))
        ggml_type = int(cursor.number("I", what))
        offset = int(cursor.number("Q", what))
        block, type_size = sizes.get(ggml_type, (1, 0))  # an unknown type: its offset only
        end = max(end, offset + elements // block * type_size)
    return end


def _quant_sizes() -> dict[int, tuple[int, int]]:
    """ggml type id -> (elements per block, bytes per block), from the ``gguf`` package."""
    from gguf.constants import GGML_QUANT_SIZES

    return {int(kind): (int(block), int(size)) for kind, (block, size) in
            GGML_QUANT_SIZES.items()}
