"""The one JSONL reader: every non-blank line comes back once, decoded or with its error,
named ``path:line``; a file that cannot be read at all names itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.textfiles import InputFileError, jsonl_lines

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner,
                                                                max_size=3),
    max_leaves=8)
GARBAGE = st.sampled_from(["{", "{'single': 'quotes'}", "[1, 2", "nan-ish", "{\"a\": }"])
LINES = st.lists(st.one_of(JSON_VALUES.map(json.dumps), GARBAGE, st.just("   ")), max_size=12)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60,
          deadline=None)
@given(lines=LINES)
def test_every_line_comes_back_once_decoded_or_with_its_error(tmp_path: Path,
                                                              lines: list[str]) -> None:
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = list(jsonl_lines(path))
    expected = [(number, text) for number, text in enumerate(lines, start=1) if text.strip()]
    assert [line.number for line in read] == [number for number, _ in expected]
    for line, (number, text) in zip(read, expected, strict=True):
        assert line.where == f"{path}:{number}"
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            assert line.error is not None and line.error.startswith("invalid JSON")
        else:
            assert line.error is None and line.value == value


def test_a_missing_file_a_folder_and_a_latin1_byte_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputFileError, match=r"nope\.jsonl: canary file not found"):
        list(jsonl_lines(tmp_path / "nope.jsonl", "canary file"))
    with pytest.raises(InputFileError, match="is a folder"):
        list(jsonl_lines(tmp_path))
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes(b'{"a": 1}\n{"b": "caf\xe9"}\n')
    with pytest.raises(InputFileError,
                       match=r"latin1\.jsonl:2: not UTF-8 text: byte 0xe9 at offset 19"):
        list(jsonl_lines(latin1))
