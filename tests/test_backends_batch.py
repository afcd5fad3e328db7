"""Answers generated several at a time: llama.cpp batches in process, threads against a server,
and the prefetch that fills the response cache ahead of the gate items."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from loragate.backends import (
    BackendError,
    CachedBackend,
    GenerationOptions,
    ResponseCache,
    open_backend,
)
from loragate.backends.gguf import GgufBackend
from loragate.backends.openai import OpenAIBackend
from loragate.backends.openai_double import OpenAIDouble, scripted_answer
from loragate.backends.prefetch import PrefetchStats, prefetch
from loragate.backends.spec import default_concurrency
from loragate.config import BackendSettings

SETTINGS = BackendSettings(n_ctx=512, n_threads=2, timeout_s=60, retries=0)
QUESTIONS = [
    "Write the PDCA title.",
    "Name the layer of the Jetty component.",
    "What does TRON decide?",
    "Create the empty constructor for Relay.",
    "Open the README of Unit.",
    "Why stop when the process rules break?",
]
SYSTEM = "You are a Web4 agent."


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]


def agreement(gguf: GgufBackend, left: list[str], right: list[str]) -> float:
    """Share of token positions (over the longer answer of each pair) holding the same token."""
    same = total = 0
    for a, b in zip(left, right, strict=True):
        ta = gguf.llama.tokenize(a.encode(), add_bos=False, special=True)
        tb = gguf.llama.tokenize(b.encode(), add_bos=False, special=True)
        same += sum(x == y for x, y in zip(ta, tb, strict=False))
        total += max(len(ta), len(tb))
    return same / total if total else 1.0


# -- gguf: sequences decoded in one llama.cpp batch -------------------------------------------
@pytest.fixture(scope="module")
def gguf(tiny_gguf: Path) -> Iterator[GgufBackend]:
    backend = open_backend(f"gguf:{tiny_gguf}", SETTINGS)
    yield backend
    backend.close()


RAW = ["The Web4 method says", "A PDCA has", "Relay component layer", "TRON wrote"]
SAMPLED = GenerationOptions(temperature=0.9, top_p=0.95, top_k=40, max_tokens=24, seed=3)


def test_greedy_batch_agrees_with_one_at_a_time(gguf: GgufBackend) -> None:
    greedy = GenerationOptions(temperature=0.0, max_tokens=24)
    prompts = [chat(q) for q in QUESTIONS] + RAW
    alone = [gguf.generate(p, greedy) for p in prompts]
    # 10 prompts through 3 streams: finished streams take the next prompt mid-batch.
    batched = gguf.generate_batch(prompts, greedy, concurrency=3)
    assert agreement(gguf, [r.text for r in alone], [r.text for r in batched]) >= 0.95
    for one, many in zip(alone, batched, strict=True):
        assert many.ok and many.prompt_tokens == one.prompt_tokens
        assert many.model_digest == one.model_digest
        assert many.ttft_s is not None and 0 < many.ttft_s <= many.total_s
        assert many.completion_tokens and many.completion_tokens <= greedy.max_tokens
        assert many.truncated == (many.finish_reason == "length")


def test_sampled_batch_agrees_with_one_at_a_time_under_the_same_seed(gguf: GgufBackend) -> None:
    # The random tiny model's greedy answers repeat one token; sampled ones do not, so this
    # is the sharper check that batched logits and per-sequence samplers match.
    prompts = [chat(q) for q in QUESTIONS] + RAW
    alone = [gguf.generate(p, SAMPLED).text for p in prompts]
    batched = [r.text for r in gguf.generate_batch(prompts, SAMPLED, concurrency=4)]
    assert len(set(batched)) == len(prompts)
    assert agreement(gguf, alone, batched) >= 0.95


def test_a_shared_system_prompt_is_read_once_and_copied(gguf: GgufBackend,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate.backends import gguf as gguf_module

    system = "You are a Web4 development agent. Follow the Web4 method: PDCA and TRON."
    prompts = [[{"role": "system", "content": system}, {"role": "user", "content": q}]
               for q in QUESTIONS]
    alone = [gguf.generate(p, SAMPLED).text for p in prompts]
    shared = [r.text for r in gguf.generate_batch(prompts, SAMPLED, concurrency=3)]
    assert gguf._batcher is not None and gguf._batcher.n_seq >= 4  # 3 streams + the prefix
    monkeypatch.setattr(gguf_module, "MIN_SHARED_PREFIX", 10**6)
    whole = [r.text for r in gguf.generate_batch(prompts, SAMPLED, concurrency=3)]
    assert agreement(gguf, alone, shared) >= 0.95
    assert agreement(gguf, whole, shared) >= 0.95


def test_sequences_of_different_lengths_keep_their_streams_packed(
        gguf: GgufBackend, monkeypatch: pytest.MonkeyPatch) -> None:
    from loragate.backends import gguf as gguf_module

    moves: list[tuple[int, int]] = []
    real_copy = gguf_module._BatchContext.copy

    def spy(self, source: int, target: int) -> None:
        moves.append((source, target))
        real_copy(self, source, target)

    monkeypatch.setattr(gguf_module._BatchContext, "copy", spy)
    # Each its own length: sequences end at different steps and leave gaps, which the
    # decoder closes by moving the last sequences' streams down.
    requests = [(p, SAMPLED.replace(max_tokens=4 + 5 * i, seed=i)) for i, p in enumerate(RAW * 2)]
    alone = [gguf.generate(p, o).text for p, o in requests]
    batched = dict(gguf.generate_each(requests, concurrency=4))
    assert moves and all(target < source for source, target in moves)
    assert agreement(gguf, alone, [batched[i].text for i in range(len(requests))]) >= 0.95


def test_sampled_batch_is_reproducible_under_the_same_seed(gguf: GgufBackend) -> None:
    requests = [(chat(QUESTIONS[0]), SAMPLED.replace(seed=seed)) for seed in range(6)]
    requests.append((chat(QUESTIONS[1]), GenerationOptions(max_tokens=16)))  # greedy among them
    first = dict(gguf.generate_each(requests, concurrency=4))
    second = dict(gguf.generate_each(requests, concurrency=4))
    assert sorted(first) == list(range(len(requests)))
    assert {i: r.text for i, r in first.items()} == {i: r.text for i, r in second.items()}
    # The seeds are honoured: the same prompt sampled six ways gives different answers.
    assert len({first[i].text for i in range(6)}) == 6


def test_batch_honours_stop_strings_and_max_tokens(gguf: GgufBackend) -> None:
    prompts = [chat(QUESTIONS[2]), chat(QUESTIONS[3])]
    free = gguf.generate_batch(prompts, SAMPLED, concurrency=2)
    assert all(r.finish_reason == "length" and r.truncated for r in free)
    assert [r.completion_tokens for r in free] == [SAMPLED.max_tokens] * 2
    words = free[0].text.split()
    stop = words[len(words) // 2]
    cut = gguf.generate_batch(prompts, SAMPLED.replace(stop=(stop,)), concurrency=2)
    assert cut[0].finish_reason == "stop" and not cut[0].truncated
    assert cut[0].text == free[0].text[: free[0].text.index(stop)]
    assert cut[0].completion_tokens < SAMPLED.max_tokens
    # The other sequence runs on alone once the first stops: a batch of another size may round
    # differently, so its sampled tokens may part from the free run's (seen with a llama.cpp
    # built here). What must hold is that no answer holds the stop string and each ends for
    # the reason it says.
    for response in cut:
        assert stop not in response.text
        stopped = response.completion_tokens < SAMPLED.max_tokens
        assert response.finish_reason == ("stop" if stopped else "length")


def test_one_failing_request_is_its_own_error(gguf: GgufBackend) -> None:
    too_long = "word " * 600  # more tokens than the 512-token context
    responses = gguf.generate_batch([chat(QUESTIONS[0]), too_long, chat(QUESTIONS[1])],
                                    GenerationOptions(max_tokens=8), concurrency=3)
    assert [r.ok for r in responses] == [True, False, True]
    assert "does not fit the context" in (responses[1].error or "")
    assert responses[0].text and responses[2].text


def test_stop_event_ends_a_batch_early(gguf: GgufBackend) -> None:
    stop = threading.Event()
    requests = [(chat(q), GenerationOptions(max_tokens=12)) for q in QUESTIONS]
    answered = []
    for index, _response in gguf.generate_each(requests, concurrency=2, stop=stop):
        answered.append(index)
        stop.set()
    assert 1 <= len(answered) <= 2
    # The batching context is left clean: the next batch answers everything.
    assert len(dict(gguf.generate_each(requests, concurrency=3))) == len(QUESTIONS)


def test_batches_from_two_threads_take_turns(gguf: GgufBackend) -> None:
    prompts = [chat(q) for q in QUESTIONS[:4]]
    expected = [r.text for r in gguf.generate_batch(prompts, SAMPLED, concurrency=4)]
    results: dict[str, list[str]] = {}

    def run(name: str) -> None:
        results[name] = [r.text for r in gguf.generate_batch(prompts, SAMPLED, concurrency=4)]

    threads = [threading.Thread(target=run, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert results == {"a": expected, "b": expected}


def test_a_batch_inside_a_batch_is_refused(gguf: GgufBackend) -> None:
    requests = [(chat(q), GenerationOptions(max_tokens=4)) for q in QUESTIONS[:3]]
    outer = gguf.generate_each(requests, concurrency=3)
    next(outer)
    with pytest.raises(BackendError, match="already being decoded"):
        list(gguf.generate_each(requests, concurrency=3))
    assert len(list(outer)) == 2


def test_gguf_describes_its_batching(gguf: GgufBackend) -> None:
    info = gguf.describe()
    assert info["in_process"] is True and "one batch" in info["concurrency_note"]
    assert gguf.effective_concurrency(8) == 8


def test_batch_applies_the_lora_adapter(tiny_gguf: Path, tiny_adapter_gguf: Path,
                                        gguf: GgufBackend) -> None:
    greedy = GenerationOptions(max_tokens=16)
    prompts = [chat(q) for q in QUESTIONS[:4]]
    with open_backend(f"gguf:{tiny_gguf}+{tiny_adapter_gguf}", SETTINGS) as adapted:
        alone = [adapted.generate(p, greedy).text for p in prompts]
        batched = [r.text for r in adapted.generate_batch(prompts, greedy, concurrency=4)]
        assert agreement(adapted, alone, batched) >= 0.95
    base = [r.text for r in gguf.generate_batch(prompts, greedy, concurrency=4)]
    assert base != batched


# -- servers: k requests in flight --------------------------------------------------------------
def test_server_answers_come_back_in_order_with_k_in_flight() -> None:
    double = OpenAIDouble(delay_s=0.05, slots=8)
    prompts = [f"question {i}" for i in range(13)]
    # Built for one request at a time, asked for 6: its connection pool must not cap that.
    with double as url, OpenAIBackend(url, "double", concurrency=1) as backend:
        responses = backend.generate_batch(prompts, GenerationOptions(max_tokens=8),
                                           concurrency=6)
    assert [r.text for r in responses] == [
        "".join(scripted_answer(p, 8, 0, [])[0]) for p in prompts]
    assert double.max_active == 6 and double.requests == 13


def test_server_concurrency_never_exceeds_k() -> None:
    double = OpenAIDouble(delay_s=0.05, slots=8)
    with double as url, OpenAIBackend(url, "double") as backend:
        list(backend.generate_each([(f"q{i}", None) for i in range(12)], concurrency=6))
        assert double.max_active == 6
        double.max_active = 0
        list(backend.generate_each([(f"r{i}", None) for i in range(12)], concurrency=3))
        assert double.max_active == 3
    assert double.requests == 24


def test_waiting_for_a_one_slot_server_is_told_apart_from_its_work() -> None:
    # One slot, four in flight: each request waits for the ones before it. The server's own
    # `timings` say how long it worked on each; the rest of the wall time is the queue.
    double = OpenAIDouble(delay_s=0.1, slots=1, timings=True)
    with double as url, OpenAIBackend(url, "double") as backend:
        responses = backend.generate_batch([f"q{i}" for i in range(4)],
                                           GenerationOptions(max_tokens=4), concurrency=4)
        alone = backend.generate("alone", GenerationOptions(max_tokens=4))
    assert sorted(r.in_flight for r in responses)[-1] >= 3
    waits = sorted(r.queue_s for r in responses)
    assert waits[-1] >= 0.25  # the last waited for about three others' 0.1 s
    for response in responses:
        # What it waited is inside its time to first token, not beside it.
        assert response.ttft_s >= response.queue_s
    assert alone.in_flight == 1 and alone.queue_s < 0.05


def test_a_server_without_timings_leaves_the_wait_unknown_not_zero() -> None:
    with OpenAIDouble() as url, OpenAIBackend(url, "double") as backend:
        response = backend.generate("q", GenerationOptions(max_tokens=4))
    assert response.queue_s is None and response.in_flight == 1


def test_server_seconds_reads_llama_cpp_timings() -> None:
    from loragate.backends.openai import server_seconds

    assert server_seconds({"prompt_ms": 120.0, "predicted_ms": 380.0}) == 0.5
    assert server_seconds({}) is None
    assert server_seconds({"prompt_ms": "x", "predicted_ms": 1}) is None


# -- prefetch ------------------------------------------------------------------------------------
def requests_for(n: int, repeats: int = 1) -> list[tuple[list[dict[str, str]], GenerationOptions]]:
    return [(chat(f"gate item {i}"), GenerationOptions(temperature=0.7, seed=42 + r,
                                                       max_tokens=16))
            for i in range(n) for r in range(repeats)]


@pytest.fixture
def cache(tmp_path: Path) -> Iterator[ResponseCache]:
    with ResponseCache(tmp_path / "responses.sqlite") as opened:
        yield opened


def test_prefetch_fills_the_cache_for_one_at_a_time_generation(cache: ResponseCache) -> None:
    double = OpenAIDouble(delay_s=0.02, slots=8)
    requests = requests_for(10, repeats=2)  # the seed differs per repeat: 20 distinct answers
    with double as url, OpenAIBackend(url, "double", concurrency=4) as server:
        cached = CachedBackend(server, cache)
        stats = prefetch(cached, requests + requests[:3], concurrency=4)
        assert (stats.requested, stats.unique, stats.generated) == (23, 20, 20)
        assert stats.already_cached == 0 and stats.errors == 0 and not stats.stopped
        assert len(stats.generated_keys) == 20 and len(cache) == 20
        assert double.requests == 20 and 2 <= double.max_active <= 4
        answers = [cached.generate(prompt, options) for prompt, options in requests]
        assert double.requests == 20  # every one-at-a-time answer came from the prefetch
        again = [cached.generate(prompt, options) for prompt, options in requests]
        assert double.requests == 20  # and a second ask from the cache
        fresh = [server.generate(prompt, options) for prompt, options in requests]
    # Generated in this run: handed over as generated; asked again: read from the cache.
    assert not any(a.cached for a in answers) and all(a.cached for a in again)
    assert [a.text for a in again] == [a.text for a in answers]
    assert [a.text for a in answers] == [f.text for f in fresh]
    assert answers[0].text != answers[1].text  # repeats with other seeds are other answers
    assert stats.tokens_per_s and stats.items_per_s and "20 generated" in stats.summary()


def test_prefetch_skips_what_the_cache_holds(cache: ResponseCache) -> None:
    with OpenAIDouble() as url, OpenAIBackend(url, "double") as server:
        cached = CachedBackend(server, cache)
        requests = requests_for(6)
        cached.generate(*requests[0])
        stats = prefetch(cached, requests, concurrency=3)
    assert (stats.already_cached, stats.generated) == (1, 5)
    assert stats.generated_keys == frozenset(cached.key(*r) for r in requests[1:])


def test_stopped_prefetch_leaves_the_finished_answers_cached(cache: ResponseCache) -> None:
    stop = threading.Event()
    seen: list[PrefetchStats] = []

    def progress(stats: PrefetchStats) -> None:
        seen.append(stats)
        if stats.generated >= 3:  # the first chunk is done
            stop.set()

    double = OpenAIDouble(delay_s=0.02, slots=8)
    requests = requests_for(12)
    with double as url, OpenAIBackend(url, "double") as server:
        cached = CachedBackend(server, cache)
        first = prefetch(cached, requests, concurrency=3, progress=progress, stop=stop)
        assert first.stopped and 3 <= first.generated <= 5  # the ones in flight finish too
        assert first.remaining == 12 - first.generated
        assert len(cache) == first.generated == double.requests
        assert {cached.key(*r) for r in requests if cache.get(cached.key(*r))} \
            == first.generated_keys
        second = prefetch(cached, requests, concurrency=3)
        assert (second.already_cached, second.generated) == (first.generated,
                                                              12 - first.generated)
        assert double.requests == 12 and not second.stopped
    assert [s.generated for s in seen] == sorted(s.generated for s in seen)


def test_backend_exception_mid_prefetch_keeps_what_finished(tmp_path: Path) -> None:
    path = tmp_path / "responses.sqlite"
    requests = requests_for(8)
    requests[5] = (chat("gate item 5 BROKEN"), requests[5][1])
    progress: list[int] = []
    # A 404 is not a sample's fault: the openai backend raises BackendError for it.
    with (OpenAIDouble(fail_marker="BROKEN", fail_status=404) as url,
          OpenAIBackend(url, "double") as server, ResponseCache(path) as cache):
        cached = CachedBackend(server, cache)
        with pytest.raises(BackendError, match="HTTP 404"):
            prefetch(cached, requests, concurrency=2,
                     progress=lambda stats: progress.append(stats.generated))
        finished = progress[-1]
        assert finished >= 4 and len(cache) == finished
    with ResponseCache(path) as reopened, OpenAIDouble() as url2, \
            OpenAIBackend(url2, "double") as server2:
        # The file is usable; another server (other digest) would not match, so compare texts.
        stored = [reopened.get(CachedBackend(server, reopened).key(*r)) for r in requests]
        held = [(r, s) for r, s in zip(requests, stored, strict=True) if s is not None]
        assert len(held) == finished
        for (prompt, options), response in held:
            assert response.text == server2.generate(prompt, options).text


def test_error_answers_are_not_cached(cache: ResponseCache) -> None:
    double = OpenAIDouble(fail_marker="REFUSE", fail_status=400)
    requests = requests_for(4)
    requests[2] = (chat("gate item REFUSE"), requests[2][1])
    with double as url, OpenAIBackend(url, "double") as server:
        cached = CachedBackend(server, cache)
        stats = prefetch(cached, requests, concurrency=4)
        assert (stats.generated, stats.errors) == (3, 1)
        assert len(cache) == 3 and cache.get(cached.key(*requests[2])) is None
        # The item gets the error held for it: the retries already ran, no second round.
        held = cached.generate(*requests[2])
        assert not held.ok and not held.cached and double.requests == 4
        again = cached.generate(*requests[2])  # held once, never cached: asked again
        assert not again.ok and double.requests == 5


def test_prefetch_progress_bar_shows_the_rates(cache: ResponseCache, capsys) -> None:
    with OpenAIDouble() as url, OpenAIBackend(url, "double") as server:
        stats = prefetch(CachedBackend(server, cache), requests_for(5), concurrency=2,
                         progress=True)
    err = capsys.readouterr().err
    assert stats.generated == 5
    assert "5/5" in err and "answer/s" in err and "tok/s" in err


def test_prefetch_into_gguf_batches_is_reused_one_at_a_time(gguf: GgufBackend,
                                                            cache: ResponseCache) -> None:
    cached = CachedBackend(gguf, cache)
    requests = [(chat(q), GenerationOptions(temperature=0.7, seed=42, max_tokens=10))
                for q in QUESTIONS]
    stats = prefetch(cached, requests, concurrency=4)
    assert stats.generated == len(QUESTIONS) and stats.completion_tokens > 0
    answers = [cached.generate(*r) for r in requests]
    # Each item gets its answer as generated in this run; a later ask reads the cache.
    assert not any(a.cached for a in answers) and cache.stats().misses == len(QUESTIONS)
    assert [cached.generate(*r) for r in requests] == [a.replace(cached=True) for a in answers]


def test_ctrl_c_mid_gguf_prefetch_keeps_the_finished_answers(gguf: GgufBackend,
                                                            cache: ResponseCache) -> None:
    cached = CachedBackend(gguf, cache)
    requests = [(chat(q), SAMPLED) for q in QUESTIONS]

    def interrupt(stats: PrefetchStats) -> None:
        if stats.generated == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        prefetch(cached, requests, concurrency=3, progress=interrupt)
    assert len(cache) == 2
    # The batching context was released: the next prefetch does the rest.
    rest = prefetch(cached, requests, concurrency=3)
    assert (rest.already_cached, rest.generated) == (2, len(QUESTIONS) - 2)
    assert not any(cached.generate(*r).cached for r in requests)  # held from both prefetches
    assert all(cached.generate(*r).cached for r in requests)


def test_default_concurrency_per_backend_kind() -> None:
    assert default_concurrency("gguf") == 8 and default_concurrency("openai") == 8
    assert default_concurrency("ollama") == 4 and default_concurrency("hf") == 1
    assert default_concurrency("scripted") == 1


def test_prefetch_with_the_cache_disabled_hands_each_answer_to_its_item_once(
        tmp_path: Path) -> None:
    """--no-cache: the answers generated ahead are not stored, but each item gets its own
    (batching stays on); nothing is generated twice, nothing is kept after."""
    double = OpenAIDouble()
    requests = requests_for(3)
    with (double as url, OpenAIBackend(url, "double") as server,
          ResponseCache(tmp_path / "off.sqlite", enabled=False) as off):
        cached = CachedBackend(server, off)
        stats = prefetch(cached, requests, concurrency=3)
        answers = [cached.generate(*request) for request in requests]
        assert stats.generated == 3 and double.requests == 3
        assert not any(a.cached for a in answers)
        cached.generate(*requests[0])
        assert double.requests == 4  # held once, not stored
    assert not (tmp_path / "off.sqlite").exists()


def test_prefetch_refuses_zero_concurrency(cache: ResponseCache) -> None:
    with (OpenAIDouble() as url, OpenAIBackend(url, "double") as server,
          pytest.raises(ValueError, match="concurrency")):
        prefetch(CachedBackend(server, cache), requests_for(1), concurrency=0)
