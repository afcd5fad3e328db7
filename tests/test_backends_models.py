"""Every backend on the tiny random-init Llama: as a GGUF in process, behind the Ollama
double, behind llama-cpp-python's own server, and in transformers with and without a peft
adapter. A 2-layer hidden-64 model generates in milliseconds, so these run by default."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from loragate.backends import (
    CachedBackend,
    GenerationOptions,
    Message,
    ResponseCache,
    open_backend,
)
from loragate.backends.gguf import GgufBackend
from loragate.backends.hf import HfBackend
from loragate.backends.ollama import OllamaBackend
from loragate.backends.openai import OpenAIBackend
from loragate.backends.serve import serve_gguf
from loragate.config import BackendSettings
from tests.ollama_double import OllamaDouble

SETTINGS = BackendSettings(n_ctx=512, n_threads=2, timeout_s=60, retries=1)
CHAT = [{"role": "system", "content": "You are a Web4 agent."},
        {"role": "user", "content": "Write the PDCA title."}]
RAW = "The Web4 method says"
GREEDY = GenerationOptions(temperature=0.0, seed=7, max_tokens=12)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def gguf_backend(tiny_gguf: Path) -> Iterator[GgufBackend]:
    backend = open_backend(f"gguf:{tiny_gguf}", SETTINGS)
    yield backend
    backend.close()


# -- gguf in process -------------------------------------------------------------------------
def test_gguf_greedy_with_fixed_seed_gives_the_same_text_twice(gguf_backend) -> None:
    first = gguf_backend.generate(CHAT, GREEDY)
    second = gguf_backend.generate(CHAT, GREEDY)
    assert first.text and first.text == second.text
    assert first.completion_tokens == second.completion_tokens
    assert first.prompt_tokens and first.prompt_tokens > 5
    assert first.ttft_s is not None and 0 < first.ttft_s <= first.total_s


def test_gguf_sampling_is_reproducible_under_the_same_seed(gguf_backend) -> None:
    sampled = GenerationOptions(temperature=1.0, top_k=0, seed=11, max_tokens=12)
    first = gguf_backend.generate(RAW, sampled)
    assert gguf_backend.generate(RAW, sampled).text == first.text
    others = {gguf_backend.generate(RAW, sampled.replace(seed=s)).text for s in range(12, 16)}
    assert others - {first.text}, "another seed should give another sample"


def test_gguf_cut_at_max_tokens_is_marked_truncated(gguf_backend) -> None:
    response = gguf_backend.generate(RAW, GenerationOptions(max_tokens=4))
    assert response.finish_reason == "length" and response.truncated
    assert response.completion_tokens == 4


@pytest.mark.parametrize("kind", ["gguf", "hf"])
def test_stop_strings_cut_the_answer_before_them(kind, gguf_backend, tiny_llama_dir) -> None:
    backend = gguf_backend if kind == "gguf" else HfBackend(tiny_llama_dir)
    full = backend.generate(RAW, GREEDY).text
    words = full.split()
    stop = words[len(words) // 2]
    prefix = full[: full.index(stop)]
    stopped = backend.generate(RAW, GREEDY.replace(stop=(stop,)))
    assert stopped.text == prefix and stopped.finish_reason == "stop" and not stopped.truncated


def test_gguf_uses_the_chat_template_stored_in_the_gguf(gguf_backend, tiny_llama_dir) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    expected = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=True,
                                             return_dict=True)["input_ids"]
    tokens, _ = gguf_backend.prompt_tokens(tuple(Message(**m) for m in CHAT))
    assert tokens == list(expected)
    assert gguf_backend.describe()["chat_template"] == "gguf"


def test_gguf_takes_threads_and_context_from_settings(gguf_backend) -> None:
    llama = gguf_backend.llama
    assert llama.n_ctx() == SETTINGS.n_ctx
    assert llama.context_params.n_threads == SETTINGS.n_threads
    assert llama.context_params.n_threads_batch == SETTINGS.n_threads
    assert gguf_backend.describe()["n_ctx"] == SETTINGS.n_ctx


def test_gguf_digest_is_the_files_sha256(gguf_backend, tiny_gguf) -> None:
    assert gguf_backend.digest == _sha256(tiny_gguf)
    assert gguf_backend.generate(RAW, GREEDY).model_digest == _sha256(tiny_gguf)


def test_gguf_with_lora_adapter_changes_digest_and_text(gguf_backend, tiny_gguf,
                                                        tiny_adapter_gguf) -> None:
    with open_backend(f"gguf:{tiny_gguf}+{tiny_adapter_gguf}", SETTINGS) as adapted:
        assert adapted.adapter == tiny_adapter_gguf
        assert adapted.digest not in (gguf_backend.digest, _sha256(tiny_adapter_gguf))
        assert adapted.generate(RAW, GREEDY).text != gguf_backend.generate(RAW, GREEDY).text


def test_cache_misses_for_another_model_file(tmp_path, gguf_backend, tiny_gguf_q8) -> None:
    with ResponseCache(tmp_path / "c.sqlite") as cache:
        CachedBackend(gguf_backend, cache).generate(RAW, GREEDY)
        with open_backend(f"gguf:{tiny_gguf_q8}", SETTINGS, cache=cache) as quantized:
            assert not quantized.generate(RAW, GREEDY).cached
            assert quantized.generate(RAW, GREEDY).cached
        assert CachedBackend(gguf_backend, cache).generate(RAW, GREEDY).cached
        assert cache.stats().misses == 2 and cache.stats().hits == 2


# -- ollama: the official client against the double answering from the gguf backend --------
def test_ollama_backend_matches_the_gguf_it_serves(gguf_backend, tiny_gguf) -> None:
    direct_chat = gguf_backend.generate(CHAT, GREEDY)
    direct_raw = gguf_backend.generate(RAW, GenerationOptions(max_tokens=5))
    with OllamaDouble({"tiny": gguf_backend}) as host:
        backend = open_backend("ollama:tiny", SETTINGS)
        assert isinstance(backend, OllamaBackend)
        backend = OllamaBackend("tiny", host=host, timeout_s=30)
        chat = backend.generate(CHAT, GREEDY)
        raw = backend.generate(RAW, GenerationOptions(max_tokens=5))
        batch = backend.generate_batch([CHAT, CHAT], GREEDY, concurrency=2)
    assert chat.text == direct_chat.text
    assert (chat.prompt_tokens, chat.completion_tokens) == (direct_chat.prompt_tokens,
                                                            direct_chat.completion_tokens)
    assert chat.model_digest == _sha256(tiny_gguf)
    assert raw.text == direct_raw.text and raw.truncated
    assert [r.text for r in batch] == [direct_chat.text] * 2


# -- openai: llama-cpp-python's own server on loopback ----------------------------------------
@pytest.fixture(scope="module")
def llama_server(tiny_gguf: Path) -> Iterator[str]:
    with serve_gguf(tiny_gguf, n_ctx=512, n_threads=2, model_alias="tiny") as url:
        yield url


def test_openai_backend_against_llama_cpp_server(llama_server, gguf_backend) -> None:
    backend = open_backend(f"openai:{llama_server}/v1#tiny", SETTINGS)
    assert isinstance(backend, OpenAIBackend)
    with backend:
        raw = backend.generate(RAW, GREEDY)
        chat = backend.generate(CHAT, GREEDY)
        cut = backend.generate(RAW, GenerationOptions(max_tokens=3))
        batch = backend.generate_batch([RAW, RAW, RAW], GREEDY, concurrency=3)
        digest = backend.digest
    assert raw.text == gguf_backend.generate(RAW, GREEDY).text
    assert chat.text == gguf_backend.generate(CHAT, GREEDY).text
    assert raw.ttft_s is not None and raw.completion_tokens
    assert cut.truncated and cut.finish_reason == "length" and cut.completion_tokens == 3
    assert [r.text for r in batch] == [raw.text] * 3
    assert len(digest) == 64 and raw.model_digest == digest


def test_serve_gguf_stops_the_server_on_exit(tiny_gguf) -> None:
    import httpx

    with serve_gguf(tiny_gguf, n_ctx=256, n_threads=1) as url:
        assert httpx.get(f"{url}/v1/models").status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/v1/models", timeout=2)


# -- hf: transformers, with and without a peft adapter ------------------------------------------
def _direct_greedy(model, tokenizer, max_new_tokens: int) -> str:
    import torch

    inputs = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True,
                                           return_tensors="pt", return_dict=True)
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[-1]:], skip_special_tokens=True)


def test_hf_greedy_matches_transformers_directly(tiny_llama_dir) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    backend = open_backend(f"hf:{tiny_llama_dir}", SETTINGS)
    assert isinstance(backend, HfBackend)
    response = backend.generate(CHAT, GREEDY)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    assert response.text == _direct_greedy(model, tokenizer, GREEDY.max_tokens)
    assert response.text and response.truncated and response.completion_tokens == 12
    assert response.ttft_s is not None and response.ttft_s <= response.total_s


def test_hf_with_adapter_matches_peft_directly(tiny_llama_dir, tiny_adapter_dir) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapted = open_backend(f"hf:{tiny_llama_dir}+{tiny_adapter_dir}", SETTINGS)
    plain = HfBackend(tiny_llama_dir)
    response = adapted.generate(CHAT, GREEDY)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_dir)
    base = AutoModelForCausalLM.from_pretrained(tiny_llama_dir, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, tiny_adapter_dir).eval()
    assert response.text == _direct_greedy(model, tokenizer, GREEDY.max_tokens)
    assert response.text != plain.generate(CHAT, GREEDY).text
    assert adapted.digest != plain.digest
