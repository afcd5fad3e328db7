"""Reading the text and JSON files a user hands loragate, with one-line errors that name them.

``Path.read_text`` turns a stray Latin-1 byte into a ``UnicodeDecodeError`` traceback that
names neither the file nor where the byte is; a missing file or a folder in its place gives
an ``OSError`` traceback. These helpers raise :class:`InputFileError` instead, whose message
starts with the file's path (and the line and column, or byte offset, of the problem).
:func:`jsonl_lines` is the one JSONL reader: each stage checks the records it gets.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class InputFileError(ValueError):
    """An input file that is missing, unreadable, not UTF-8 or not the JSON it should be."""


def decode_utf8(data: bytes, name: str, *, line_first: bool = False) -> str:
    """``data`` as UTF-8 text; :class:`InputFileError` names ``name``, the line and the byte
    (``name:line: ...`` with ``line_first``, as line-oriented files are named)."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.start + 1].hex()
        if line_first:
            message = (f"{name}:{line}: not UTF-8 text: byte 0x{bad} at offset {exc.start} "
                       f"({exc.reason})")
        else:
            message = (f"{name}: not UTF-8 text: byte 0x{bad} at offset {exc.start} "
                       f"(line {line}) cannot be decoded ({exc.reason})")
        raise InputFileError(f"{message}; save the file as UTF-8") from None


def read_bytes(path: str | Path, missing: str = "no such file") -> bytes:
    """The bytes of ``path``; :class:`InputFileError` (``"<path>: <missing>"``) when it does not
    exist, and for a folder or a file that cannot be read."""
    path = Path(path)
    if not path.exists():
        raise InputFileError(f"{path}: {missing}")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder, not a file")
    if not path.is_file():
        # A FIFO would block the read until something writes to it; a device never ends.
        raise InputFileError(f"{path}: is not a regular file (a pipe, socket or device)")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise InputFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; :class:`InputFileError` for a missing, unreadable or
    undecodable file."""
    return decode_utf8(read_bytes(path), str(path))


class _NotStrictJson(ValueError):
    """JSON that Python's decoder accepts but that loses or invents data."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for key, value in pairs:
        if key in seen:
            # json.loads keeps the last value: a config block given twice would vanish silently.
            raise _NotStrictJson(f"duplicate key {key!r} in one object (JSON keeps only the "
                                 "last one; merge the two)")
        seen[key] = value
    return seen


def _no_constant(name: str) -> Any:
    raise _NotStrictJson(f"{name} is not a JSON value (write a number, or null)")


def loads_strict(text: str) -> Any:
    """``json.loads`` without its two leniencies: a key given twice in one object (all but the
    last silently dropped) and NaN/Infinity (not JSON). Raises ``ValueError``:
    ``json.JSONDecodeError`` for bad syntax, else a message naming the key or constant."""
    return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)


def parse_json(text: str, name: str) -> Any:
    """``text`` as strict JSON (:func:`loads_strict`); :class:`InputFileError` names ``name``
    with the line and column of a syntax error, or the duplicate key or constant."""
    try:
        return loads_strict(text)
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{name}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    except _NotStrictJson as exc:
        raise InputFileError(f"{name}: invalid JSON: {exc}") from None
    except RecursionError:
        raise InputFileError(f"{name}: invalid JSON: nested too deeply") from None


def read_json(path: str | Path) -> Any:
    """The JSON value in ``path`` (see :func:`read_text` and :func:`parse_json`)."""
    return parse_json(read_text(path), str(path))


@dataclass(frozen=True)
class JsonlLine:
    """One non-blank line of a JSONL file: its number, ``path:line``, and the decoded value or
    why it could not be decoded (``error``, with ``value`` None)."""

    number: int
    where: str
    value: Any = None
    error: str | None = None


def jsonl_lines(path: str | Path, what: str = "file") -> Iterator[JsonlLine]:
    """Every non-blank line of the JSONL file ``path``, decoded; a line that is not JSON comes
    with its ``error`` (callers collect or raise it: losing nothing, naming ``path:line``).

    A file that is missing (``"<path>: <what> not found"``), a folder, unreadable or not UTF-8
    (named with its line and byte) raises :class:`InputFileError`.
    """
    text = decode_utf8(read_bytes(path, f"{what} not found"), str(path), line_first=True)
    # Lines end at LF (a CR before it is JSON whitespace), not where str.splitlines() would
    # also cut: U+2028, U+2029, U+0085 and \x1c-\x1e are legal raw inside a JSON string.
    for number, line_text in enumerate(text.split("\n"), start=1):
        if not line_text.strip():
            continue
        where = f"{path}:{number}"
        try:
            yield JsonlLine(number, where, loads_strict(line_text))
        except json.JSONDecodeError as exc:
            yield JsonlLine(number, where, error=f"invalid JSON: {exc.msg} (column {exc.colno})")
        except _NotStrictJson as exc:
            yield JsonlLine(number, where, error=f"invalid JSON: {exc}")
        except RecursionError:
            yield JsonlLine(number, where, error="invalid JSON: nested too deeply")
