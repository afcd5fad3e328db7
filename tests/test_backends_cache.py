"""Response cache: hits are identical and free, any option or model change misses."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.backends import CachedBackend, GenerationOptions, ResponseCache
from loragate.backends.base import normalize_prompt
from loragate.backends.cache import cache_key, file_digest, folder_digest
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


def test_changed_model_file_changes_its_digest(tmp_path: Path) -> None:
    model = tmp_path / "model.gguf"
    model.write_bytes(b"GGUF one")
    before = file_digest(model)
    assert file_digest(model) == before
    model.write_bytes(b"GGUF two, longer")
    assert file_digest(model) != before
    folder = tmp_path / "hf"
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"weights")
    first = folder_digest(folder)
    (folder / "model.safetensors").write_bytes(b"weights, trained")
    assert folder_digest(folder) != first


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


def test_corrupt_cache_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "broken.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(sqlite3.DatabaseError, match="broken.sqlite"):
        ResponseCache(path)
