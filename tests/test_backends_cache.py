"""Response cache: hits are identical and free, any option or model change misses."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
import warnings
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.backends import CachedBackend, GenerationOptions, ResponseCache
from loragate.backends.base import Response, normalize_prompt
from loragate.backends.cache import CorruptCacheWarning, cache_key
from tests.ollama_double import ScriptedBackend

MESSAGES = [{"role": "user", "content": "say hello to the gate"}]


@pytest.fixture
def cache(tmp_path: Path) -> ResponseCache:
    with ResponseCache(tmp_path / "responses.sqlite") as opened:
        yield opened


def test_hit_returns_identical_response_without_calling_backend(cache: ResponseCache) -> None:
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    first = cached.generate(MESSAGES)
    second = cached.generate(MESSAGES)
    assert backend.calls == 1
    assert not first.cached and second.cached
    assert second == first.replace(cached=True)
    assert cache.stats().to_dict() == {"enabled": True, "hits": 1, "misses": 1,
                                       "hit_ratio": 0.5}


@pytest.mark.parametrize("change", [
    {"temperature": 0.7}, {"top_p": 0.9}, {"top_k": 7}, {"max_tokens": 3}, {"seed": 1},
    {"stop": ("x",)},
])
def test_changing_any_option_misses(cache: ResponseCache, change: dict) -> None:
    assert set(change) <= {f.name for f in dataclasses.fields(GenerationOptions)}
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    base = GenerationOptions()
    cached.generate(MESSAGES, base)
    cached.generate(MESSAGES, base.replace(**change))
    assert backend.calls == 2
    cached.generate(MESSAGES, base.replace(**change))
    assert backend.calls == 2


def test_every_option_field_is_part_of_the_key(cache: ResponseCache) -> None:
    # Guards the parametrized test above: a new option must be added there too.
    tested = {"temperature", "top_p", "top_k", "max_tokens", "seed", "stop"}
    assert {f.name for f in dataclasses.fields(GenerationOptions)} == tested


options_strategy = st.builds(
    GenerationOptions,
    temperature=st.sampled_from([0.0, 0.2, 1.0]),
    top_p=st.sampled_from([0.5, 1.0]),
    top_k=st.integers(0, 3),
    max_tokens=st.integers(1, 3),
    seed=st.integers(0, 2),
    stop=st.lists(st.sampled_from(["a", "b"]), max_size=2).map(tuple),
)


@given(options_strategy, options_strategy)
def test_cache_keys_are_equal_exactly_when_options_are(a: GenerationOptions,
                                                       b: GenerationOptions) -> None:
    prompt = normalize_prompt(MESSAGES)
    assert (cache_key("gguf", "d", prompt, a) == cache_key("gguf", "d", prompt, b)) == (a == b)


def test_other_messages_miss(cache: ResponseCache) -> None:
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    cached.generate(MESSAGES)
    cached.generate([{"role": "system", "content": "be brief"}, *MESSAGES])
    cached.generate(MESSAGES[0]["content"])  # the same text as a raw prompt is another request
    assert backend.calls == 3


def test_another_model_digest_misses(cache: ResponseCache) -> None:
    CachedBackend(ScriptedBackend(digest="model-a"), cache).generate(MESSAGES)
    other = ScriptedBackend(digest="model-b")
    response = CachedBackend(other, cache).generate(MESSAGES)
    assert other.calls == 1 and not response.cached and response.model_digest == "model-b"


def test_errors_are_not_cached(cache: ResponseCache) -> None:
    backend = ScriptedBackend(fail_times=3)  # 3 attempts all fail: an error response
    cached = CachedBackend(backend, cache)
    assert cached.generate(MESSAGES).finish_reason == "error"
    assert len(cache) == 0
    assert cached.generate(MESSAGES).ok and backend.calls == 4


def test_cache_persists_across_processes_sharing_the_file(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite"
    with ResponseCache(path) as first:
        original = CachedBackend(ScriptedBackend(), first).generate(MESSAGES)
    backend = ScriptedBackend()
    with ResponseCache(path) as second:
        again = CachedBackend(backend, second).generate(MESSAGES)
    assert backend.calls == 0 and again == original.replace(cached=True)


def test_disabled_cache_always_generates(tmp_path: Path) -> None:
    path = tmp_path / "off.sqlite"
    backend = ScriptedBackend()
    with ResponseCache(path, enabled=False) as off:
        cached = CachedBackend(backend, off)
        cached.generate(MESSAGES)
        cached.generate(MESSAGES)
        assert backend.calls == 2 and off.stats().lookups == 0 and not off.stats().enabled
    assert not path.exists()


def test_batch_answers_hits_from_cache_and_generates_only_misses(cache: ResponseCache) -> None:
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    cached.generate_batch(["a", "b"])
    responses = cached.generate_batch(["a", "c", "b", "d"], concurrency=2)
    assert [r.text.strip() for r in responses] == ["a", "c", "b", "d"]
    assert [r.cached for r in responses] == [True, False, True, False]
    assert backend.calls == 4
    assert cached.describe()["cache"]["hits"] == 2


def _filled_cache(path: Path, rows: int = 300) -> Path:
    with ResponseCache(path) as filled:
        for i in range(rows):
            filled.put(f"key-{i}", Response(text="answer " * 80 + str(i), finish_reason="stop"))
    # Fold the write-ahead log into the file, so the damage below hits real pages.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return path


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a database" * 100)


def _truncated(path: Path) -> None:
    _filled_cache(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _overwritten_page(path: Path) -> None:
    _filled_cache(path)
    data = bytearray(path.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[3 * page:4 * page] = bytes(range(256)) * (page // 256)
    path.write_bytes(bytes(data))


def _directory(path: Path) -> None:
    path.mkdir()
    (path / "something").write_text("x")


@pytest.mark.parametrize("damage", [_garbage, _truncated, _overwritten_page, _directory],
                         ids=["garbage", "truncated", "overwritten-page", "directory"])
def test_unreadable_cache_is_moved_aside_with_a_warning_and_a_fresh_one_used(
        tmp_path: Path, damage) -> None:
    path = tmp_path / "responses.sqlite"
    damage(path)
    before = path.read_bytes() if path.is_file() else None
    with pytest.warns(CorruptCacheWarning) as caught:
        cache = ResponseCache(path)
    with cache:
        message = str(caught[0].message)
        aside = [p for p in tmp_path.iterdir() if p.name.startswith("responses.sqlite.corrupt-")]
        assert len(aside) == 1
        assert re.fullmatch(r"responses\.sqlite\.corrupt-\d{8}-\d{6}", aside[0].name)
        assert f"response cache {path} is unreadable" in message
        assert f"moved it to {aside[0]}" in message and "\n" not in message
        if before is not None:
            assert aside[0].read_bytes() == before  # kept for a look, not deleted
        assert len(cache) == 0 and cache.get("key-1") is None
        backend = ScriptedBackend()
        cached = CachedBackend(backend, cache)
        cached.generate(MESSAGES)
        assert cached.generate(MESSAGES).cached and backend.calls == 1


def test_a_second_process_does_not_move_aside_the_fresh_cache(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    _garbage(path)
    with pytest.warns(CorruptCacheWarning):
        first = ResponseCache(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the fresh file is fine: no warning, nothing moved
        second = ResponseCache(path)
    first.put("k", Response(text="shared", finish_reason="stop"))
    assert second.get("k").text == "shared"
    assert len([p for p in tmp_path.iterdir() if ".corrupt-" in p.name]) == 1
    first.close()
    second.close()


class _FailingConnection:
    """A connection whose first statement finds the file corrupt, as SQLite reports it."""

    def __init__(self, code: int) -> None:
        self.code = code

    def execute(self, *args, **kwargs):
        error = sqlite3.DatabaseError("database disk image is malformed")
        error.sqlite_errorcode = self.code
        raise error

    def close(self) -> None:
        pass


def test_corruption_found_mid_run_recovers_on_the_spot(tmp_path: Path) -> None:
    path = _filled_cache(tmp_path / "responses.sqlite", rows=3)
    cache = ResponseCache(path)
    cache._conn.close()
    cache._conn = _FailingConnection(11)  # SQLITE_CORRUPT
    with pytest.warns(CorruptCacheWarning, match="moved it to"):
        assert cache.get("key-1") is None
    assert cache.stats().misses == 1
    cache.put("key-1", Response(text="again", finish_reason="stop"))
    assert cache.get("key-1").text == "again"
    cache.close()


def test_a_busy_database_is_not_mistaken_for_a_corrupt_one(tmp_path: Path) -> None:
    path = _filled_cache(tmp_path / "responses.sqlite", rows=3)
    cache = ResponseCache(path)
    cache._conn.close()
    cache._conn = _FailingConnection(5)  # SQLITE_BUSY: another worker holds the lock
    with pytest.raises(sqlite3.DatabaseError):
        cache.get("key-1")
    assert not [p for p in tmp_path.iterdir() if ".corrupt-" in p.name]


@pytest.mark.parametrize("stored", [
    "{not json", "[1, 2]", '"a string"', '{"text": 5, "finish_reason": "stop"}',
    '{"finish_reason": "stop"}', '{"text": "x", "finish_reason": "error"}',
    '{"text": "x", "finish_reason": "stop", "total_s": "slow"}',
])
def test_a_row_that_does_not_decode_is_a_miss_and_is_replaced(tmp_path: Path,
                                                               stored: str) -> None:
    path = tmp_path / "responses.sqlite"
    backend = ScriptedBackend()
    with ResponseCache(path) as cache:
        cached = CachedBackend(backend, cache)
        cached.generate(MESSAGES)
        conn = sqlite3.connect(path)
        conn.execute("UPDATE responses SET response = ?", (stored,))
        conn.commit()
        conn.close()
        again = cached.generate(MESSAGES)  # a miss: generated again, stored over the bad row
        assert not again.cached and backend.calls == 2
        assert cached.generate(MESSAGES).cached and backend.calls == 2


def test_every_response_field_has_a_stored_type_check() -> None:
    # Guards the row check: a new Response field must say what a stored row may hold there.
    from loragate.backends.cache import _FIELD_TYPES

    names = {f.name for f in dataclasses.fields(Response)}
    assert names == set(_FIELD_TYPES) | {"finish_reason"}


# -- answers generated ahead, decoding paths, a cache that cannot store -----------------------


def test_an_answer_generated_ahead_reaches_its_item_as_generated(cache: ResponseCache) -> None:
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    key = cached.key(MESSAGES)
    cached.store_generated(key, backend.generate(MESSAGES))
    first = cached.generate(MESSAGES)
    assert not first.cached and backend.calls == 1  # this run's answer, this run's timings
    assert cached.generate(MESSAGES).cached  # a later ask reuses the stored one
    assert cache.stats().hits == 1


def test_answers_generated_ahead_are_held_with_the_cache_disabled(tmp_path: Path) -> None:
    backend = ScriptedBackend()
    cached = CachedBackend(backend, ResponseCache(tmp_path / "off.sqlite", enabled=False))
    [ahead] = cached.generate_batch([MESSAGES])
    assert cached.generate(MESSAGES) == ahead and backend.calls == 1
    assert not cached.generate(MESSAGES).cached and backend.calls == 2  # nothing stored
    assert not (tmp_path / "off.sqlite").exists()


def test_batched_and_one_at_a_time_answers_are_cached_apart(cache: ResponseCache) -> None:
    backend = ScriptedBackend()
    batched = CachedBackend(backend, cache, decoding="batched")
    single = CachedBackend(backend, cache, decoding="one-at-a-time")
    assert batched.key(MESSAGES) != single.key(MESSAGES)
    assert CachedBackend(backend, cache).key(MESSAGES) == cache_key(
        backend.kind, backend.digest, normalize_prompt(MESSAGES), GenerationOptions())
    batched.generate(MESSAGES)
    assert not single.generate(MESSAGES).cached and backend.calls == 2


class _FullDisk:
    """A connection whose writes fail as SQLite's do on a full disk."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def execute(self, sql: str, *args):
        if sql.lstrip().upper().startswith("INSERT"):
            raise sqlite3.OperationalError("database or disk is full")
        return self._conn.execute(sql, *args)

    def __getattr__(self, name: str):
        return getattr(self._conn, name)


def test_a_cache_that_cannot_store_keeps_every_answer(cache: ResponseCache) -> None:
    """A full disk once turned 37 of 48 answers into errors; now the answer is kept, one
    warning names the cause, and nothing more is tried."""
    backend = ScriptedBackend()
    cached = CachedBackend(backend, cache)
    cache._conn = _FullDisk(cache._conn)
    with pytest.warns(UserWarning, match="cannot store answers .*disk is full") as caught:
        answers = [cached.generate([{"role": "user", "content": f"word {i}"}])
                   for i in range(5)]
    assert all(a.ok and a.text for a in answers)
    assert len(caught) == 1 and cache.write_failure == "database or disk is full"
