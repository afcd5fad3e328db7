"""ChromaDB stores for tool call examples and PDCA summaries, in one persistent folder.

Embeddings are computed by loragate's :class:`~loragate.rag.embeddings.Embedder` (so they go
through the Redis cache and never through Chroma's own downloading default) and handed to
Chroma with each record and query. Record ids are content hashes: syncing the same corpus
twice adds nothing, and a changed record replaces its old version.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from loragate.rag.corpus import PdcaSummary, ToolExample
from loragate.rag.embeddings import Embedder
from loragate.rag.redis_cache import RedisCache

TOOL_COLLECTION = "tool_examples"
PDCA_COLLECTION = "pdca"


@dataclass(frozen=True)
class SyncResult:
    added: int
    removed: int
    total: int


@dataclass(frozen=True)
class RetrievedExample:
    id: str
    key: str
    tool_ecosystem: str
    request: str
    tool: str
    arguments: dict[str, Any]
    similarity: float

    @property
    def call_json(self) -> str:
        return json.dumps({"tool": self.tool, "arguments": self.arguments}, ensure_ascii=False)


@dataclass(frozen=True)
class RetrievedPdca:
    id: str
    pdca_id: str
    title: str
    topic: str
    date: str
    document: str
    similarity: float


def _chroma_client(path: Path) -> Any:
    import chromadb
    from chromadb.config import Settings

    path.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(
        path=str(path), settings=Settings(anonymized_telemetry=False, allow_reset=False)
    )


class ChromaStore:
    """The ``tool_examples`` and ``pdca`` collections of one Chroma folder."""

    def __init__(self, path: Path | str, embedder: Embedder,
                 cache: RedisCache | None = None) -> None:
        self.path = Path(path)
        self.embedder = embedder
        self.cache = cache
        self._client = _chroma_client(self.path)
        # embedding_function=None: Chroma's default would try to download an ONNX model.
        self.tools = self._client.get_or_create_collection(
            TOOL_COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )
        self.pdcas = self._client.get_or_create_collection(
            PDCA_COLLECTION, embedding_function=None, metadata={"hnsw:space": "cosine"}
        )

    # -- writing ----------------------------------------------------------------------------

    def sync_tool_examples(self, examples: Sequence[ToolExample]) -> SyncResult:
        records = {
            e.id: (e.request, {"key": e.key, "tool_ecosystem": e.tool_ecosystem, "tool": e.tool,
                               "arguments": json.dumps(e.arguments, sort_keys=True)})
            for e in examples
        }
        return self._sync(self.tools, records)

    def sync_pdcas(self, pdcas: Sequence[PdcaSummary]) -> SyncResult:
        records = {
            p.id: (p.document, {"pdca_id": p.pdca_id, "title": p.title, "topic": p.topic,
                                "date": p.date})
            for p in pdcas
        }
        return self._sync(self.pdcas, records)

    def _sync(self, collection: Any,
              records: dict[str, tuple[str, dict[str, Any]]]) -> SyncResult:
        """Make the collection hold exactly ``records``; embeds only the new ones."""
        existing = set(collection.get(include=[])["ids"])
        new_ids = sorted(set(records) - existing)
        stale_ids = sorted(existing - set(records))
        if stale_ids:
            collection.delete(ids=stale_ids)
        if new_ids:
            documents = [records[i][0] for i in new_ids]
            collection.add(
                ids=new_ids, documents=documents, metadatas=[records[i][1] for i in new_ids],
                embeddings=self.embedder.embed(documents),
            )
        return SyncResult(added=len(new_ids), removed=len(stale_ids), total=collection.count())

    # -- reading ----------------------------------------------------------------------------

    def query_tool_examples(self, query: str, n: int,
                            ecosystem: str | None = None) -> list[RetrievedExample]:
        where = {"tool_ecosystem": ecosystem} if ecosystem else None
        rows = self._query(self.tools, query, n, where)
        return [
            RetrievedExample(
                id=r["id"], key=r["metadata"]["key"],
                tool_ecosystem=r["metadata"]["tool_ecosystem"], request=r["document"],
                tool=r["metadata"]["tool"], arguments=json.loads(r["metadata"]["arguments"]),
                similarity=r["similarity"],
            )
            for r in rows
        ]

    def query_pdcas(self, query: str, n: int, topic: str | None = None) -> list[RetrievedPdca]:
        where = {"topic": topic} if topic else None
        return [
            RetrievedPdca(id=r["id"], pdca_id=r["metadata"]["pdca_id"],
                          title=r["metadata"]["title"], topic=r["metadata"]["topic"],
                          date=r["metadata"]["date"], document=r["document"],
                          similarity=r["similarity"])
            for r in self._query(self.pdcas, query, n, where)
        ]

    def fingerprint(self, collection: Any) -> str:
        """A hash of the collection's ids: it changes whenever its content does."""
        ids = sorted(collection.get(include=[])["ids"])
        return hashlib.sha256("\n".join(ids).encode()).hexdigest()[:16]

    def _query(self, collection: Any, query: str, n: int,
               where: dict[str, Any] | None) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        key = None
        if self.cache is not None:
            key = self.cache.result_key(collection.name, self.fingerprint(collection),
                                        self.embedder.model_id, query, n, where)
            cached = self.cache.get_result(key)
            if cached is not None:
                return cached
        rows = self._query_chroma(collection, query, n, where)
        if key is not None:
            self.cache.set_result(key, rows)
        return rows

    def _query_chroma(self, collection: Any, query: str, n: int,
                      where: dict[str, Any] | None) -> list[dict[str, Any]]:
        count = collection.count()
        if count == 0:
            return []
        result = collection.query(
            query_embeddings=self.embedder.embed([query]), n_results=min(n, count), where=where,
            include=["documents", "metadatas", "distances"],
        )
        return [
            {"id": i, "document": doc, "metadata": dict(meta), "similarity": 1.0 - float(dist)}
            for i, doc, meta, dist in zip(result["ids"][0], result["documents"][0],
                                          result["metadatas"][0], result["distances"][0],
                                          strict=True)
        ]

    def counts(self) -> dict[str, int]:
        return {TOOL_COLLECTION: self.tools.count(), PDCA_COLLECTION: self.pdcas.count()}


def retrieved_as_dict(item: RetrievedExample | RetrievedPdca) -> dict[str, Any]:
    return asdict(item)
