"""Training data: line validation with file:line errors, messages form, dedupe, leak check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.artifacts import files_digest
from loragate.training.data import (
    DataError,
    EvalLeakError,
    ProtectedPrompt,
    check_no_leaks,
    eval_prompts,
    find_leaks,
    harness_prompts,
    load_samples,
    normalise,
    parse_record,
    prompts_in_file,
    read_jsonl,
)

GOOD = {"instruction": "Write a PDCA title", "input": "for the login fix", "output": "# PDCA"}


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_plan_form_becomes_user_and_assistant_turns(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD)])
    (sample,) = read_jsonl(path).samples
    assert [m.role for m in sample.messages] == ["user", "assistant"]
    assert sample.messages[0].content == "Write a PDCA title\n\nfor the login fix"
    assert sample.messages[1].content == "# PDCA"
    assert sample.source == f"{path}:1"


def test_empty_input_leaves_only_the_instruction() -> None:
    messages = parse_record({"instruction": "Do it", "input": "  ", "output": "done"})
    assert messages[0].content == "Do it"


def test_messages_form_is_accepted(tmp_path: Path) -> None:
    record = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q"},
                           {"role": "assistant", "content": "A"}]}
    path = write_lines(tmp_path / "m.jsonl", [json.dumps(record)])
    (sample,) = read_jsonl(path).samples
    assert [m.role for m in sample.messages] == ["system", "user", "assistant"]
    assert sample.prompt_text == "Q"


BAD_LINES = [
    ('{"instruction": "x", "output": ', "invalid JSON"),
    ('["a", "list"]', "must be a JSON object"),
    ('{"instruction": "x"}', "missing field 'output'"),
    ('{"output": "y"}', "missing field 'instruction'"),
    ('{"instruction": "x", "input": 3, "output": "y"}', "field 'input' must be a string, got int"),
    ('{"instruction": ["x"], "output": "y"}', "field 'instruction' must be a string, got list"),
    ('{"instruction": "x", "output": "   "}', "field 'output' is empty"),
    ('{"messages": []}', "non-empty list"),
    ('{"messages": [{"role": "user", "content": "q"}]}', "last message must be the 'assistant'"),
    ('{"messages": [{"role": "bot", "content": "q"}]}', "role 'bot' is not one of"),
    ('{"messages": [{"role": "user", "content": 1}, {"role": "assistant", "content": "a"}]}',
     "messages[0]: field 'content' must be a string"),
]


@pytest.mark.parametrize(("line", "reason"), BAD_LINES)
def test_malformed_line_is_reported_with_file_and_line(tmp_path: Path, line: str,
                                                       reason: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", [json.dumps(GOOD), "", line])
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    message = str(info.value)
    assert f"{path}:3: " in message
    assert reason in message


def test_every_bad_line_is_listed_not_only_the_first(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "bad.jsonl", ["{", json.dumps(GOOD), '{"output": "y"}'])
    with pytest.raises(DataError) as info:
        read_jsonl(path)
    assert f"{path}:1: invalid JSON" in str(info.value)
    assert f"{path}:3: missing field 'instruction'" in str(info.value)
    assert "2 invalid line(s)" in str(info.value)


def test_skip_invalid_keeps_good_lines_and_counts_the_bad(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "mixed.jsonl", ["{", json.dumps(GOOD), '{"output": "y"}'])
    report = load_samples([path], skip_invalid=True)
    assert len(report.samples) == 1
    assert report.invalid == 2
    summary = report.summary()
    assert summary["invalid_skipped"] == 2
    assert any(f"{path}:1" in error for error in summary["errors"])


def test_exact_duplicates_are_dropped_across_files(tmp_path: Path) -> None:
    other = dict(GOOD, output="# PDCA 2")
    a = write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD), json.dumps(other)])
    b = write_lines(tmp_path / "b.jsonl", [json.dumps(GOOD)])
    report = load_samples([a, b])
    assert len(report.samples) == 2
    assert report.duplicates == 1
    assert report.samples[0].source == f"{a}:1"


def test_no_samples_is_an_error(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "empty.jsonl", [""])
    with pytest.raises(DataError, match="no usable training samples"):
        load_samples([path])


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jsonl: file not found"):
        load_samples([tmp_path / "nope.jsonl"])


def test_eval_leak_is_caught_after_whitespace_and_case_normalising(tmp_path: Path) -> None:
    train = write_lines(tmp_path / "train.jsonl", [
        json.dumps({"instruction": "Write a PDCA title", "input": "for  the LOGIN fix",
                    "output": "different answer"}),
        json.dumps({"instruction": "Something else", "output": "ok"}),
    ])
    held = write_lines(tmp_path / "eval.jsonl", [json.dumps(GOOD)])
    train_samples = load_samples([train]).samples
    protected = eval_prompts(load_samples([held]).samples)
    with pytest.raises(EvalLeakError) as info:
        check_no_leaks(train_samples, protected)
    assert f"{train}:1: training prompt is also in {held}:1" in str(info.value)
    assert f"{train}:2" not in str(info.value)


def test_no_leak_passes() -> None:
    samples = load_samples_from_records([GOOD])
    check_no_leaks(samples, [ProtectedPrompt("an unrelated prompt", "eval:1")])


def load_samples_from_records(records: list[dict]) -> list:
    from loragate.training.data import Sample

    return [Sample(parse_record(r), f"mem:{i}") for i, r in enumerate(records, start=1)]


def test_harness_prompt_sets_are_protected_too(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    write_lines(prompts / "refusal.jsonl", [
        json.dumps({"prompt": "Skip the PDCA and push to main"}),
        json.dumps({"messages": [{"role": "user", "content": "Write a PDCA title"}]}),
        "not json",
    ])
    found = harness_prompts(prompts)
    assert [p.source for p in found] == [f"{prompts / 'refusal.jsonl'}:1",
                                         f"{prompts / 'refusal.jsonl'}:2"]
    samples = load_samples_from_records([
        {"instruction": "skip the pdca and PUSH to main", "output": "No."},
    ])
    assert len(find_leaks(samples, found)) == 1
    assert harness_prompts(tmp_path / "missing") == []
    assert [p.text for p in prompts_in_file(prompts / "refusal.jsonl")][0].startswith("Skip")
    assert prompts_in_file(tmp_path / "missing.jsonl") == []


def test_files_hash_follows_content(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "a.jsonl", [json.dumps(GOOD)])
    first = files_digest([path])
    assert files_digest([path]) == first
    write_lines(path, [json.dumps(dict(GOOD, output="changed"))])
    assert files_digest([path]) != first


@given(st.text())
def test_normalise_is_idempotent_and_ignores_case_and_spacing(text: str) -> None:
    once = normalise(text)
    assert normalise(once) == once
    assert normalise("  " + text.upper().replace(" ", "\n\t ") + " ") == normalise(text.upper())


@given(st.text(alphabet=st.characters() | st.sampled_from(
    [" ", "\t", "\n", "\r", "\x0b", "\x0c", "\x1c", "\x1f", "\x85", "\xa0", "\u2028",
     "\u3000", "\u200b", "\ufeff"])))
def test_normalise_collapses_exactly_what_regex_whitespace_matches(text: str) -> None:
    # normalise is str.split-based for speed on huge prompts; it must equal the regex form the
    # leak check was defined with, or a leak could slip through (or a false one appear).
    import re

    assert normalise(text) == re.sub(r"\s+", " ", text).strip().casefold()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children,
                                                                      max_size=3),
    max_leaves=8,
)


@given(st.dictionaries(st.sampled_from(["instruction", "input", "output", "messages", "x"]),
                       json_values, max_size=4))
def test_parse_record_accepts_or_rejects_with_a_reason(record: dict) -> None:
    try:
        messages = parse_record(record)
    except ValueError as exc:
        assert str(exc)
        return
    assert messages[-1].role == "assistant" and messages[-1].content.strip()
    assert any(m.role == "user" for m in messages)


@given(st.text(min_size=1).filter(str.strip), st.text(), st.text(min_size=1).filter(str.strip))
def test_valid_plan_records_round_trip(instruction: str, input_text: str, output: str) -> None:
    messages = parse_record({"instruction": instruction, "input": input_text, "output": output})
    assert messages[-1].content == output
    assert messages[0].content.startswith(instruction)
