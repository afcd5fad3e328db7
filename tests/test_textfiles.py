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


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture], max_examples=60,
          deadline=None)
@given(values=st.lists(JSON_VALUES, min_size=1, max_size=6),
       separator=st.sampled_from(["\u2028", "\u2029", "\x85", "\x1c", "\x1e", "\x0b", "\x0c"]))
def test_unicode_line_separators_inside_a_record_do_not_split_it(tmp_path: Path, values,
                                                                separator: str) -> None:
    # json.dumps(ensure_ascii=False) writes these raw; only LF ends a JSONL line.
    records = [{"text": f"a{separator}b", "value": value} for value in values]
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8", newline="")
    read = list(jsonl_lines(path))
    assert [line.value for line in read] == records
    assert [line.number for line in read] == list(range(1, len(records) + 1))


def test_crlf_line_ends_are_read_as_lf(tmp_path: Path) -> None:
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"a": 1}\r\n\r\n{"a": 2}\r\n')
    assert [(line.number, line.value) for line in jsonl_lines(path)] == [(1, {"a": 1}),
                                                                         (3, {"a": 2})]


@pytest.mark.parametrize(("text", "message"), [
    ('{"id": "a", "id": "b"}', "duplicate key 'id'"),
    ('{"x": {"k": 1, "k": 2}}', "duplicate key 'k'"),
    ('{"t": NaN}', "NaN is not a JSON value"),
    ('{"t": -Infinity}', "-Infinity is not a JSON value"),
])
def test_json_that_would_lose_or_invent_data_is_refused(tmp_path: Path, text: str,
                                                        message: str) -> None:
    from loragate.textfiles import parse_json

    path = tmp_path / "data.jsonl"
    path.write_text('{"ok": 1}\n' + text + "\n", encoding="utf-8")
    first, second = jsonl_lines(path)
    assert first.value == {"ok": 1}
    assert second.value is None and message in second.error and second.where.endswith(":2")
    with pytest.raises(InputFileError, match=f"^cfg.json: invalid JSON: .*{message}"):
        parse_json(text, "cfg.json")
