"""Prompt records from where teams keep them: JSONL, CSV, a `datasets` folder, with Jinja2
templates and shared variables; every problem names the file and the line (or row)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loragate.gating.prompts import PromptFileError, PromptSource, read_prompt_source
from tests.test_gating_project import user_project, verdict_of

pytest_plugins = ["tests.test_gating_project"]  # the ollama_model fixture
SCHEMA = "CREATE TABLE t (a INT);"


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(rows)
    return path


def test_a_csv_row_becomes_a_record_through_the_columns_and_templates(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "q.csv", [["qid", "question", "label"],
                                          ["a1", "How many rows?", "SELECT"],
                                          ["a2", "Which, if any, columns?", "SELECT"]])
    source = PromptSource(path, columns={"id": "qid", "prompt": "question"},
                          template="Schema:\n{{ schema }}\n\n{{ prompt }}",
                          system="Answer with SQL for {{ vars.dialect }}.",
                          variables={"schema": SCHEMA, "dialect": "SQLite"})
    first, second = read_prompt_source(source)
    assert first["id"] == "a1" and first["label"] == "SELECT"
    assert first["messages"] == [
        {"role": "system", "content": "Answer with SQL for SQLite."},
        {"role": "user", "content": f"Schema:\n{SCHEMA}\n\nHow many rows?"}]
    assert second["messages"][-1]["content"].endswith("Which, if any, columns?")


def test_rows_without_an_id_are_numbered_and_blank_rows_skipped(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "plain.csv", [["prompt"], ["one"], [""], ["two"]])
    records = read_prompt_source(PromptSource(path))
    assert [r["id"] for r in records] == ["plain-1", "plain-3"]
    assert [r["messages"] for r in records] == [[{"role": "user", "content": "one"}],
                                               [{"role": "user", "content": "two"}]]


def test_a_jsonl_record_with_messages_is_kept_and_one_without_is_rendered(
        tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "m", "messages": [{"role": "user", "content": "as written"}]},
        {"id": "t", "topic": "joins"}]) + "\n")
    records = read_prompt_source(PromptSource(path, template="Explain {{ topic }}."))
    assert [r["messages"][-1]["content"] for r in records] == ["as written", "Explain joins."]


def test_a_jsonl_record_with_a_prompt_and_no_template_gets_the_default_one(
        tmp_path: Path) -> None:
    # As docs/harnesses.md says for any source: `{{ prompt }}` is the user message.
    path = tmp_path / "plain.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "prompt": "Name a colour.", "expected_keys": ["x"]},
        {"id": "m", "messages": [{"role": "user", "content": "as written"}]}]) + "\n")
    first, second = read_prompt_source(PromptSource(path))
    assert first["messages"] == [{"role": "user", "content": "Name a colour."}]
    assert first["expected_keys"] == ["x"] and second["messages"][0]["content"] == "as written"
    path.write_text(json.dumps({"id": "b", "question": "no prompt field"}) + "\n")
    with pytest.raises(PromptFileError, match=r"plain.jsonl:1: field 'messages' must be"):
        read_prompt_source(PromptSource(path))


@pytest.mark.parametrize(("rows", "source", "message"), [
    ([["qid", "q"], ["x", "y"]], {"columns": {"prompt": "question"}},
     r"q.csv:2: no column 'question' \(mapped to 'prompt'\); the columns are \['q', 'qid'\]"),
    ([["id", "prompt"], ["a", "b", "c"]], {}, r"q.csv:2: 2 columns expected"),
    ([["id", "prompt"], ["a", "x"], ["a", "y"]], {}, r"q.csv:3: duplicate id 'a' \(first at "),
    ([["id", "text"], ["a", "x"]], {},
     r"q.csv:2: the user template cannot be filled: 'prompt' is undefined \(this record has: "
     r"id, text\)"),
    ([["id", "prompt"], ["a", "x"]], {"template": "{{ prompt "},
     r"q.csv: the harness's template is not a valid template"),
    ([["id", "id", "prompt"], ["a", "a", "x"]], {}, r"q.csv:1: column\(s\) named twice"),
    ([], {}, r"q.csv:1: no header row"),
])
def test_a_bad_csv_or_template_names_the_file_and_line(tmp_path: Path, rows, source,
                                                        message) -> None:
    path = write_csv(tmp_path / "q.csv", rows)
    with pytest.raises(PromptFileError, match=message):
        read_prompt_source(PromptSource(path, **source))


def test_a_csv_that_is_not_utf8_names_line_and_byte(tmp_path: Path) -> None:
    path = tmp_path / "latin.csv"
    path.write_bytes("id,prompt\na,caf\xe9\n".encode("latin-1"))
    with pytest.raises(PromptFileError, match=r"latin.csv:2: not UTF-8 text: byte 0xe9"):
        read_prompt_source(PromptSource(path))


def test_a_datasets_folder_is_a_source(tmp_path: Path) -> None:
    from datasets import Dataset, DatasetDict

    rows = {"qid": ["d1", "d2"], "question": ["first?", "second?"], "n": [1, 2]}
    Dataset.from_dict(rows).save_to_disk(str(tmp_path / "ds"))
    records = read_prompt_source(PromptSource(tmp_path / "ds", columns={"id": "qid"},
                                              template="Q{{ n }}: {{ question }}"))
    assert [r["messages"][0]["content"] for r in records] == ["Q1: first?", "Q2: second?"]
    assert records[1]["n"] == 2
    DatasetDict({"test": Dataset.from_dict(rows)}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(PromptFileError, match=r"dd: a DatasetDict; name one split's folder: "
                                              r".*dd/test"):
        read_prompt_source(PromptSource(tmp_path / "dd"))
    assert len(read_prompt_source(PromptSource(tmp_path / "dd" / "test",
                                               columns={"id": "qid", "prompt": "question"}))
               ) == 2


CELL = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00\r"),
               max_size=40)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cells=st.lists(st.tuples(CELL, CELL), min_size=1, max_size=8))
def test_any_csv_cells_reach_the_prompt_as_written(tmp_path: Path, cells) -> None:
    """Commas, quotes and line breaks inside cells survive, and each record is named by
    the line its row starts on."""
    rows = [["topic", "prompt"], *[list(pair) for pair in cells]]
    path = write_csv(tmp_path / "p.csv", rows)
    records = read_prompt_source(PromptSource(path, template="{{ topic }}|{{ prompt }}"))
    kept = [pair for pair in cells if any(value.strip() for value in pair)]
    assert [r["messages"][0]["content"] for r in records] == [f"{a}|{b}" for a, b in kept]


def test_a_project_gates_csv_prompts_with_a_template_and_a_schema_file(pytester,
                                                                       ollama_model) -> None:
    project = user_project(pytester, validator="return 'TABLE' in text")
    write_csv(project / "prompts" / "questions.csv",
              [["qid", "question"], ["q1", "count rows"], ["q2", "list columns"]])
    (project / "schema.sql").write_text(SCHEMA)
    config = json.loads((project / "loragate.json").read_text())
    config["gates"]["harnesses"]["echo_check"].update(
        prompts="prompts/questions.csv", columns={"id": "qid", "prompt": "question"},
        template="{{ schema }} {{ prompt }}")
    config["gates"]["template_files"] = {"schema": "schema.sql"}
    (project / "loragate.json").write_text(json.dumps(config))
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == 0, result.stdout.str()[-2000:]
    samples = verdict_of(project)["samples"]
    assert [s["sample_id"] for s in samples] == ["q1", "q2"]
    assert samples[0]["messages"] == [{"role": "user",
                                       "content": f"{SCHEMA} count rows"}]
