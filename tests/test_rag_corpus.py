"""The RAG corpus: generated deterministically, committed as generated, loaders reject bad lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from loragate.rag import corpus
from loragate.rag.corpus import CorpusError

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "rag"


def test_committed_corpus_is_what_the_generator_writes(tmp_path: Path) -> None:
    written = corpus.write_corpus(tmp_path)
    for path in written:
        committed = CORPUS_DIR / path.name
        assert committed.is_file(), f"{committed} missing: run python -m loragate.rag.corpus"
        assert committed.read_text(encoding="utf-8") == path.read_text(encoding="utf-8"), (
            f"{committed} differs from the generator: run python -m loragate.rag.corpus"
        )
    # Nothing committed that the generator no longer writes (a stale file would be indexed).
    generated = {path.name for path in written}
    assert set(corpus.corpus_files()) == generated
    stale = {path.name for path in CORPUS_DIR.glob("*.jsonl")} - generated
    assert not stale, f"committed corpus files the generator does not write: {sorted(stale)}"


def test_tool_examples_cover_every_ecosystem_with_unique_keys_and_ids() -> None:
    examples = corpus.load_tool_examples(CORPUS_DIR / corpus.TOOL_EXAMPLES_FILE)
    assert {e.tool_ecosystem for e in examples} == set(corpus.TOOL_ECOSYSTEMS)
    assert len({e.key for e in examples}) == len(examples)
    assert len({e.id for e in examples}) == len(examples)
    run_commands = [e for e in examples if e.tool == "run_command"]
    assert {e.tool_ecosystem for e in run_commands} == {"git", "npm", "web4_cli"}
    # Web4's command rules: non-interactive forms only.
    commands = [e.arguments["command"] for e in run_commands]
    assert "git pull --no-edit" in commands
    assert not any(c.strip() in ("git pull", "npm install") for c in commands)
    assert all("--" not in c for c in commands if c.startswith("web4tscomponent"))


def test_labelled_set_is_balanced_and_held_out_from_training() -> None:
    labelled = corpus.load_labelled_prompts(CORPUS_DIR / corpus.LABELLED_FILE)
    assert len(labelled) >= 100
    positives = sum(label for _, label in labelled)
    assert abs(positives - (len(labelled) - positives)) <= len(labelled) * 0.1
    train = {p for p, _ in corpus.load_labelled_prompts(CORPUS_DIR / corpus.TOOL_NEED_TRAIN_FILE)}
    train |= {e.request for e in corpus.TOOL_EXAMPLES}
    leaked = [p for p, _ in labelled if p in train]
    assert leaked == []
    assert len({p for p, _ in labelled}) == len(labelled)


def test_retrieval_queries_name_existing_examples() -> None:
    keys = {e.key for e in corpus.TOOL_EXAMPLES}
    assert {k for _, k in corpus.RETRIEVAL_QUERIES} <= keys


def test_pdca_breadcrumbs_point_both_ways() -> None:
    by_id = {p.pdca_id: p for p in corpus.load_pdca_summaries(CORPUS_DIR / corpus.PDCA_FILE)}
    for pdca in by_id.values():
        if pdca.precedes:
            assert by_id[pdca.precedes].follows == pdca.pdca_id
        if pdca.follows:
            assert by_id[pdca.follows].precedes == pdca.pdca_id


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"prompt": "a", "needs_tool": true}\nnot json\n', ":2: invalid JSON"),
        ('{"prompt": "a"}\n', ":1: missing field(s) ['needs_tool']"),
        ('[1, 2]\n', ":1: expected a JSON object"),
        ('{"prompt": "a", "needs_tool": "yes"}\n', "field 'needs_tool'"),
    ],
)
def test_bad_labelled_lines_name_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "labelled.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError) as err:
        corpus.load_labelled_prompts(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_unknown_ecosystem_and_tool_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "examples.jsonl"
    path.write_text('{"key": "k", "tool_ecosystem": "cargo", "request": "r", '
                    '"tool": "run_command", "arguments": {"command": "cargo build"}}\n')
    with pytest.raises(CorpusError, match="tool_ecosystem.*cargo"):
        corpus.load_tool_examples(path)
    path.write_text('{"key": "k", "tool_ecosystem": "git", "request": "r", '
                    '"tool": "shell", "arguments": {}}\n')
    with pytest.raises(CorpusError, match="field 'tool'.*shell"):
        corpus.load_tool_examples(path)
    with pytest.raises(CorpusError, match="not found"):
        corpus.load_tool_examples(tmp_path / "absent.jsonl")
