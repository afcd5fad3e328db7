"""Indexing into a real ChromaDB folder, SQLite file and Redis; retrieval of labelled queries."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from loragate.rag import corpus
from loragate.rag.index import add_arguments, index_all, open_stores, run

CORPUS_DIR = Path(__file__).resolve().parent.parent / "data" / "rag"


def test_first_index_fills_all_three_stores(rag_index) -> None:
    assert rag_index.tool_examples.added == len(corpus.TOOL_EXAMPLES)
    assert rag_index.pdcas.added == len(corpus.PDCA_SUMMARIES)
    assert rag_index.timeline_changed == len(corpus.PDCA_SUMMARIES)
    assert rag_index.redis_available
    # Documents, training and labelled prompts: everything later embedded at start-up.
    assert rag_index.embeddings_cached >= len(corpus.TOOL_EXAMPLES) + len(corpus.PDCA_SUMMARIES)


def test_second_index_adds_nothing(rag_settings, rag_embedder, rag_index) -> None:
    again = index_all(rag_settings, embedder=rag_embedder)
    assert again.added == 0
    assert again.tool_examples.removed == 0 and again.pdcas.removed == 0
    assert again.tool_examples.total == len(corpus.TOOL_EXAMPLES)
    assert again.timeline_total == len(corpus.PDCA_SUMMARIES)
    assert again.embeddings_cached == rag_index.embeddings_cached


def test_a_changed_record_replaces_its_old_version(tmp_path: Path, chroma_dir: Path,
                                                   rag_embedder) -> None:
    from loragate.config import RagSettings

    corpus_dir = tmp_path / "corpus"
    corpus.write_corpus(corpus_dir)
    settings = RagSettings(chroma_dir=chroma_dir, sqlite_path=tmp_path / "t.db",
                           redis_url=None, corpus_dir=corpus_dir)
    first = index_all(settings, embedder=rag_embedder)
    assert first.tool_examples.added == len(corpus.TOOL_EXAMPLES)
    assert not first.redis_available
    path = corpus_dir / corpus.TOOL_EXAMPLES_FILE
    lines = path.read_text().splitlines()
    record = json.loads(lines[0])
    record["request"] = "Open src/ts/layer2/DefaultUser.ts and print it"
    path.write_text("\n".join([json.dumps(record), *lines[1:]]) + "\n")
    second = index_all(settings, embedder=rag_embedder)
    assert (second.tool_examples.added, second.tool_examples.removed) == (1, 1)
    assert second.tool_examples.total == len(corpus.TOOL_EXAMPLES)


@pytest.mark.parametrize(("query", "expected_key"), corpus.RETRIEVAL_QUERIES)
def test_retrieval_returns_the_expected_example(rag_stores, query: str,
                                                expected_key: str) -> None:
    expected = next(e for e in corpus.TOOL_EXAMPLES if e.key == expected_key)
    filtered = rag_stores.chroma.query_tool_examples(query, 3, expected.tool_ecosystem)
    assert expected_key in [r.key for r in filtered]
    assert all(r.tool_ecosystem == expected.tool_ecosystem for r in filtered)
    assert filtered == sorted(filtered, key=lambda r: -r.similarity)
    unfiltered = rag_stores.chroma.query_tool_examples(query, 3)
    assert expected_key in [r.key for r in unfiltered]


def test_retrieval_top1_accuracy_on_labelled_queries(rag_stores) -> None:
    ecosystem = {e.key: e.tool_ecosystem for e in corpus.TOOL_EXAMPLES}
    top1 = [
        rag_stores.chroma.query_tool_examples(q, 1, ecosystem[k])[0].key == k
        for q, k in corpus.RETRIEVAL_QUERIES
    ]
    accuracy = sum(top1) / len(top1)
    print(f"retrieval top-1 accuracy (ecosystem-filtered): {accuracy:.3f} over {len(top1)}")
    assert accuracy >= 0.85


def test_pdca_retrieval_then_timeline_gives_the_history(rag_stores) -> None:
    hits = rag_stores.chroma.query_pdcas("what happened when Redis was killed during a run", 1)
    assert hits[0].pdca_id == "2025-09-19-UTC-1000-redis-cache-check"
    before = rag_stores.timeline.chain_before(hits[0].pdca_id)
    assert [p.pdca_id for p in before] == ["2025-09-18-UTC-0900-redis-cache-plan",
                                           "2025-09-18-UTC-1400-redis-cache-build"]
    topic_only = rag_stores.chroma.query_pdcas("constructors", 5, topic="tool-calls")
    assert {h.topic for h in topic_only} == {"tool-calls"}


def test_retrieval_results_are_cached_in_redis(rag_settings, rag_embedder, rag_index) -> None:
    stores = open_stores(rag_settings, embedder=rag_embedder)
    try:
        query = "list the files of components/Unit"
        first = stores.chroma.query_tool_examples(query, 2, "file_ops")
        hits_before = stores.cache.stats.hits
        second = stores.chroma.query_tool_examples(query, 2, "file_ops")
        assert second == first
        assert stores.cache.stats.hits == hits_before + 1
    finally:
        stores.close()


def test_cli_run_indexes_with_overrides(tmp_path: Path, rag_settings, capsys) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config")
    add_arguments(parser)
    config = tmp_path / "config" / "c.json"
    config.parent.mkdir()
    config.write_text(json.dumps({
        "model_name": "m", "output_dir": "out", "dataset_files": ["d.jsonl"],
        "eval_file": "e.jsonl",
    }))
    args = parser.parse_args([
        "index", "--config", str(config), "--corpus-dir", str(CORPUS_DIR),
        "--chroma-dir", str(tmp_path / "chroma"), "--sqlite-path", str(tmp_path / "t.db"),
        "--redis-url", rag_settings.redis_url, "--json",
    ])
    assert run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["tool_examples"]["total"] == len(corpus.TOOL_EXAMPLES)
    assert report["timeline_total"] == len(corpus.PDCA_SUMMARIES)
    assert report["redis_available"] is True


@pytest.mark.parametrize(("package_body", "message"), [
    (None, "sentence-transformers is not installed"),
    ("import a_dependency_that_is_not_there\n",
     "installed but cannot be imported: No module named 'a_dependency_that_is_not_there'"),
])
def test_an_embedding_library_that_cannot_be_imported_says_which_way(
        tmp_path, monkeypatch, package_body, message):
    import sys

    from loragate.rag.embeddings import EmbeddingModelMissing, load_embedder

    monkeypatch.delitem(sys.modules, "sentence_transformers", raising=False)
    if package_body is None:
        monkeypatch.setitem(sys.modules, "sentence_transformers", None)
    else:
        package = tmp_path / "sentence_transformers"
        package.mkdir()
        (package / "__init__.py").write_text(package_body)
        monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(EmbeddingModelMissing, match=message.replace("(", r"\(")):
        load_embedder(model_dir=tmp_path)
