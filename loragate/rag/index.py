"""``loragate rag index``: fill ChromaDB, the SQLite timeline and the Redis cache from ``data/rag``.

Idempotent: records are keyed by content hash, so a second run over the same corpus adds
nothing (and a changed record replaces its old version). Redis is optional: without it, or with
it down, indexing still fills the two stores and says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from loragate.exit_codes import ExitCode
from loragate.rag.chroma_store import ChromaStore, SyncResult
from loragate.rag.corpus import (
    LABELLED_FILE,
    PDCA_FILE,
    TOOL_EXAMPLES_FILE,
    TOOL_NEED_TRAIN_FILE,
    load_labelled_prompts,
    load_pdca_summaries,
    load_tool_examples,
)
from loragate.rag.embeddings import Embedder, load_embedder
from loragate.rag.redis_cache import RedisCache, check_redis_url, connect_cache
from loragate.rag.timeline import TimelineStore


@dataclass
class RagStores:
    """The three stores of one configuration, opened together."""

    embedder: Embedder
    cache: RedisCache | None
    chroma: ChromaStore
    timeline: TimelineStore

    def close(self) -> None:
        self.timeline.close()
        if self.cache is not None:
            self.cache.close()


def _rag_settings(config: Any) -> Any:
    # Accepts the whole LoragateConfig or just its ``rag`` section.
    return getattr(config, "rag", config)


def open_stores(config: Any, embedder: Embedder | None = None) -> RagStores:
    """Open (creating if needed) the stores named by ``config.rag``.

    Pass an already loaded ``embedder`` to share its weights; it gets this config's cache.
    """
    rag = _rag_settings(config)
    cache = connect_cache(rag.redis_url)
    embedder = embedder.with_cache(cache) if embedder else load_embedder(cache=cache)
    return RagStores(embedder, cache, ChromaStore(rag.chroma_dir, embedder, cache),
                     TimelineStore(rag.sqlite_path))


@dataclass(frozen=True)
class IndexReport:
    tool_examples: SyncResult
    pdcas: SyncResult
    timeline_changed: int
    timeline_total: int
    redis_url: str | None
    redis_available: bool
    embeddings_cached: int

    @property
    def added(self) -> int:
        return self.tool_examples.added + self.pdcas.added + self.timeline_changed

    def lines(self) -> list[str]:
        redis = (f"Redis {self.redis_url}: {self.embeddings_cached} embeddings cached"
                 if self.redis_available else
                 f"Redis {self.redis_url or '(not configured)'}: unavailable, nothing cached")
        return [
            f"ChromaDB tool_examples: +{self.tool_examples.added} "
            f"-{self.tool_examples.removed} = {self.tool_examples.total}",
            f"ChromaDB pdca: +{self.pdcas.added} -{self.pdcas.removed} = {self.pdcas.total}",
            f"SQLite timeline: {self.timeline_changed} new or changed = {self.timeline_total}",
            redis,
        ]


def index_all(config: Any, embedder: Embedder | None = None) -> IndexReport:
    """Fill all three stores from ``config.rag.corpus_dir``."""
    rag = _rag_settings(config)
    corpus = Path(rag.corpus_dir)
    examples = load_tool_examples(corpus / TOOL_EXAMPLES_FILE)
    pdcas = load_pdca_summaries(corpus / PDCA_FILE)
    stores = open_stores(rag, embedder)
    try:
        tools = stores.chroma.sync_tool_examples(examples)
        pdca_sync = stores.chroma.sync_pdcas(pdcas)
        changed = stores.timeline.add_pdcas(pdcas)
        available = stores.cache is not None and stores.cache.available
        if available:
            _warm_embedding_cache(stores.embedder, corpus, examples, pdcas)
        return IndexReport(
            tool_examples=tools, pdcas=pdca_sync, timeline_changed=changed,
            timeline_total=stores.timeline.count(),
            redis_url=stores.cache.url if stores.cache else None, redis_available=available,
            embeddings_cached=stores.cache.count_embeddings() if available else 0,
        )
    finally:
        stores.close()


def _warm_embedding_cache(embedder: Embedder, corpus: Path, examples: list[Any],
                          pdcas: list[Any]) -> None:
    # Everything a later process embeds at start-up: the documents and the classifier's
    # training prompts. Cached texts cost one MGET; only missing ones are encoded.
    texts = [e.request for e in examples] + [p.document for p in pdcas]
    train = corpus / TOOL_NEED_TRAIN_FILE
    if train.is_file():
        texts += [prompt for prompt, _ in load_labelled_prompts(train)]
    labelled = corpus / LABELLED_FILE
    if labelled.is_file():
        texts += [prompt for prompt, _ in load_labelled_prompts(labelled)]
    embedder.embed(sorted(set(texts)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # `loragate rag index`: the action word leaves room for other rag actions later.
    parser.add_argument("action", nargs="?", choices=["index"], default="index",
                        help="index: fill ChromaDB, SQLite and Redis from the corpus")
    parser.add_argument("--corpus-dir", type=Path, help="override rag.corpus_dir")
    parser.add_argument("--chroma-dir", type=Path, help="override rag.chroma_dir")
    parser.add_argument("--sqlite-path", type=Path, help="override rag.sqlite_path")
    parser.add_argument("--redis-url", help="override rag.redis_url (default: $REDIS_URL)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    from loragate.config import load_config

    if args.redis_url is not None:
        check_redis_url(args.redis_url, "--redis-url")
    config = load_config(args.config, check_paths=False)
    overrides = {
        name: value for name, value in (
            ("corpus_dir", args.corpus_dir), ("chroma_dir", args.chroma_dir),
            ("sqlite_path", args.sqlite_path), ("redis_url", args.redis_url),
        ) if value is not None
    }
    rag = replace_settings(config.rag, overrides)
    try:
        report = index_all(rag)
    except OSError as exc:  # a store folder or database that cannot be written
        print(f"loragate rag: {exc}", file=sys.stderr)
        return ExitCode.GATE_ERROR
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0


def replace_settings(rag: Any, overrides: dict[str, Any]) -> Any:
    """A copy of the rag settings with ``overrides`` applied (pydantic model or dataclass)."""
    if hasattr(rag, "model_copy"):
        return rag.model_copy(update=overrides)
    return replace(rag, **overrides)
