"""The Redis cache against a real redis-server: round trips, and a server killed mid-run."""

from __future__ import annotations

import uuid
import warnings
from pathlib import Path

import numpy as np
import pytest

from loragate.rag import corpus
from loragate.rag.chroma_store import ChromaStore
from loragate.rag.redis_cache import (
    RedisCache,
    RedisUnavailableWarning,
    RedisUrlError,
    check_redis_url,
    connect_cache,
    resolve_redis_url,
)
from loragate.rag.redis_server import RedisServer, free_loopback_port


def _namespace() -> str:
    return f"test-{uuid.uuid4().hex[:8]}"


def test_server_starts_on_loopback_and_stops() -> None:
    server = RedisServer().start()
    try:
        assert server.url.startswith("redis://127.0.0.1:")
        assert RedisCache(server.url).available
    finally:
        server.stop()
    assert not server.running


def test_embeddings_and_results_round_trip(redis_url: str) -> None:
    cache = RedisCache(redis_url, namespace=_namespace())
    vectors = [np.arange(4, dtype=np.float32), np.ones(4, dtype=np.float32)]
    assert cache.get_embeddings("m", ["a", "b"]) == [None, None]
    cache.set_embeddings("m", ["a", "b"], vectors)
    got = cache.get_embeddings("m", ["b", "a", "c"])
    np.testing.assert_array_equal(got[0], vectors[1])
    np.testing.assert_array_equal(got[1], vectors[0])
    assert got[2] is None
    assert cache.get_embeddings("other-model", ["a"]) == [None]
    key = cache.result_key("tool_examples", "q", 3)
    cache.set_result(key, [{"id": "x", "similarity": 0.5}])
    assert cache.get_result(key) == [{"id": "x", "similarity": 0.5}]
    assert cache.count_embeddings() == 2


def test_url_resolution_prefers_config_then_env(monkeypatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://127.0.0.1:1/0")
    assert resolve_redis_url("redis://h:2/0") == "redis://h:2/0"
    assert resolve_redis_url(None) == "redis://127.0.0.1:1/0"
    monkeypatch.delenv("REDIS_URL")
    assert connect_cache(None) is None


def test_unreachable_redis_warns_once_and_misses(recwarn) -> None:
    cache = RedisCache(f"redis://127.0.0.1:{free_loopback_port()}/0", retry_after_s=0)
    for _ in range(3):
        assert cache.get_embeddings("m", ["a"]) == [None]
        cache.set_embeddings("m", ["a"], [np.zeros(2, dtype=np.float32)])
    caught = [w for w in recwarn if issubclass(w.category, RedisUnavailableWarning)]
    assert len(caught) == 1
    assert "retrieval continues without the cache" in str(caught[0].message)


def test_redis_killed_mid_run_degrades_with_one_warning(chroma_dir, rag_embedder) -> None:
    server = RedisServer().start()
    try:
        cache = RedisCache(server.url, namespace=_namespace(), retry_after_s=0.2)
        store = ChromaStore(chroma_dir, rag_embedder.with_cache(cache), cache)
        store.sync_tool_examples(corpus.TOOL_EXAMPLES)
        queries = [q for q, _ in corpus.RETRIEVAL_QUERIES]
        expected = {q: k for q, k in corpus.RETRIEVAL_QUERIES}
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            answers = {}
            for i, query in enumerate(queries):
                if i == len(queries) // 2:
                    server.kill()
                # Every query is answered, before and after the kill.
                answers[query] = store.query_tool_examples(query, 3)
            # Past retry_after_s the cache tries Redis again: still the same one outage.
            import time

            time.sleep(0.3)
            answers[queries[0]] = store.query_tool_examples(queries[0], 3)
        assert all(len(a) == 3 for a in answers.values())
        assert all(expected[q] in [r.key for r in a] for q, a in answers.items())
        ours = [w for w in caught if issubclass(w.category, RedisUnavailableWarning)]
        assert len(ours) == 1, [str(w.message) for w in ours]
        assert cache.stats.errors >= 1
    finally:
        server.stop()


def test_missing_redis_server_binary_is_a_clear_error(monkeypatch) -> None:
    from loragate.rag import redis_server

    monkeypatch.setattr(redis_server.shutil, "which", lambda name: None)
    with pytest.raises(redis_server.RedisServerError, match="apt-get install -y redis-server"):
        RedisServer().start()


@pytest.mark.parametrize("value,problem", [
    ("localhost:6379", "it has no scheme:// part"),
    ("http://x", "scheme 'http' is not one of redis, rediss, unix"),
    ("not a url at all", "it has no scheme:// part"),
    ("redis://127.0.0.1:port/0", "its port is not a number"),
    ("redis://127.0.0.1:70000/0", "its port is not a number"),
    ("redis://127.0.0.1:6379/cache", "the database after the host must be a number"),
    ("unix://", "a unix:// URL needs the socket's path"),
])
def test_a_redis_url_that_is_not_one_names_the_variable_and_value(monkeypatch, value,
                                                                  problem) -> None:
    monkeypatch.setenv("REDIS_URL", value)
    with pytest.raises(RedisUrlError) as info:
        connect_cache(None)
    message = str(info.value)
    assert message.startswith(f"REDIS_URL={value!r} is not a Redis URL: {problem}")
    assert "\n" not in message
    with pytest.raises(RedisUrlError, match=r"^rag\.redis_url="):
        resolve_redis_url(value)


@pytest.mark.parametrize("value", ["redis://127.0.0.1:6379/0", "redis://", "rediss://h:1/2",
                                   "unix:///run/redis.sock", "redis://:secret@h:6380"])
def test_real_redis_urls_pass_the_check(value) -> None:
    assert check_redis_url(value, "REDIS_URL") == value


def test_rag_index_with_a_bad_redis_url_is_a_usage_error_naming_it(monkeypatch, capsys) -> None:
    from loragate.cli import main

    monkeypatch.setenv("REDIS_URL", "localhost:6379")
    config = str(Path(__file__).resolve().parents[1] / "config" / "tiny_cpu.json")
    assert main(["rag", "index", "--config", config]) == 4
    err = capsys.readouterr().err
    assert "REDIS_URL='localhost:6379' is not a Redis URL" in err and "Traceback" not in err
    assert main(["rag", "index", "--config", config, "--redis-url", "http://x"]) == 4
    assert "--redis-url='http://x'" in capsys.readouterr().err
