"""Step 4: deployment smoke tests against the served model.

Latency targets come from the config's ``smoke`` section; a missed target fails the test and
the verdict says by how much. Figures (p50/p95 of time to first token and total time over
repeated calls) go into the verdict's ``latency`` metrics; the load test's into ``load``.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from loragate.backends.base import GenerationOptions
from loragate.canaries import keyword_in
from loragate.gating.scoring import with_system_prompt
from loragate.harnesses.tools import call_reasons, find_calls
from loragate.smoke import LatencySeries, check_target

pytestmark = pytest.mark.smoke

SMOKE_FILE = Path(__file__).resolve().parents[1] / "data" / "smoke.jsonl"
OPTIONS = GenerationOptions(temperature=0.0, seed=0, max_tokens=128)


def smoke_records(kind: str) -> list[dict]:
    records = [json.loads(line) for line in SMOKE_FILE.read_text().splitlines() if line.strip()]
    return [r for r in records if r["kind"] == kind]


def test_trained_knowledge_without_rag(served_model, loragate_settings, verdict_metrics):
    targets = loragate_settings.smoke
    series = LatencySeries()
    answers: dict[str, str] = {}
    # Round after round over the questions: each call shares with the one before only the
    # system prompt, as a deployed server's requests do (one question asked twice in a row
    # would be served from its own cached prompt: a best case, not a deployment).
    for _ in range(targets.repeats):
        for record in smoke_records("knowledge"):
            messages = with_system_prompt(record["messages"],
                                          loragate_settings.data_args.system_prompt)
            response = served_model.generate(messages, OPTIONS)
            assert response.ok, f"{record['id']}: {response.error}"
            series.add(response.ttft_s, response.total_s)
            answers[record["id"]] = response.text
    missing = [f"{record['id']}: none of {record['keywords']}"
               for record in smoke_records("knowledge")
               # Whole words, the canaries' rule: "init" is not found inside "initial".
               if not any(keyword_in(k, answers[record["id"]]) for k in record["keywords"])]
    series.record(verdict_metrics, "knowledge")
    assert not missing, f"knowledge keywords missing: {missing}"
    check_target("knowledge p95 time to first token", series.ttft_p95_ms,
                 targets.ttft_ms_knowledge, verdict_metrics)


def test_historical_reference_through_sqlite_and_chroma(served_model, deployed_rag_stores,
                                                        loragate_settings, verdict_metrics):
    targets = loragate_settings.smoke
    from loragate.rag.corpus import PDCA_FILE, load_pdca_summaries

    record = smoke_records("history")[0]
    latest = max(load_pdca_summaries(loragate_settings.rag.corpus_dir / PDCA_FILE),
                 key=lambda p: len(deployed_rag_stores.timeline.chain_before(p.pdca_id)))
    topic = latest.topic
    series = LatencySeries()
    for _ in range(targets.repeats):
        start = time.perf_counter()
        history = deployed_rag_stores.timeline.chain_before(latest.pdca_id)
        related = deployed_rag_stores.chroma.query_pdcas(topic, 2, topic=topic)
        context = "\n".join(f"- {p.pdca_id} ({p.date}): {p.title}" for p in history)
        context += "\n" + "\n".join(f"- related: {p.title}" for p in related)
        messages = [{"role": "system", "content": f"Earlier PDCAs on '{topic}':\n{context}"},
                    *record["messages"]]
        retrieval_s = time.perf_counter() - start
        response = served_model.generate(messages, OPTIONS)
        assert response.ok, response.error
        # Retrieval counts: it is what a user waits for before the first token.
        series.add(retrieval_s + response.ttft_s, retrieval_s + response.total_s)
    assert history, f"no PDCA chain before {latest.pdca_id} in the SQLite timeline"
    assert [p.date for p in history] == sorted(p.date for p in history), "chain out of order"
    series.record(verdict_metrics, "history")
    check_target("history p95 time to first token (retrieval included)", series.ttft_p95_ms,
                 targets.total_ms_history, verdict_metrics)


def test_tool_query_with_rag_injection_yields_a_valid_call(served_model, deployed_rag_stores,
                                                           loragate_settings, verdict_metrics):
    from loragate.base_model import load_tokenizer, resolve_base_model
    from loragate.rag.prompt_builder import ToolAwarePromptBuilder

    targets = loragate_settings.smoke
    tokenizer = load_tokenizer(resolve_base_model(loragate_settings))
    builder = ToolAwarePromptBuilder.from_corpus(
        deployed_rag_stores.chroma, loragate_settings.rag.corpus_dir, tokenizer,
        budget_tokens=loragate_settings.rag.context_budget_tokens,
        n_examples=loragate_settings.rag.n_examples)
    series = LatencySeries()
    problems: dict[str, str] = {}
    for _ in range(targets.repeats):  # rounds over the requests, as for knowledge
        for record in smoke_records("tool"):
            request = record["messages"][-1]["content"]
            start = time.perf_counter()
            built = builder.build(request)
            retrieval_s = time.perf_counter() - start
            assert built.needs_tool, f"{record['id']}: the builder did not see a tool request"
            response = served_model.generate(built.messages, OPTIONS)
            assert response.ok, response.error
            series.add(retrieval_s + response.ttft_s, retrieval_s + response.total_s)
            calls = [found.call for found in find_calls(response.text)
                     if found.call is not None]
            valid = [c for c in calls if not call_reasons(c)]
            if not valid or valid[0].tool != record["expect_tool"]:
                problems[record["id"]] = (
                    f"{record['id']}: expected a valid {record['expect_tool']} call, got "
                    f"{[c.tool for c in calls]}: {response.text[:200]!r}")
    series.record(verdict_metrics, "tool")
    assert not problems, "; ".join(problems.values())
    check_target("tool query p95 total time (retrieval included)", series.total_p95_ms,
                 targets.total_ms_tool, verdict_metrics)


def test_bounded_concurrent_load(served_model, loragate_settings, verdict_metrics):
    targets = loragate_settings.smoke
    prompts = [r["messages"] for r in smoke_records("knowledge")]
    options = GenerationOptions(temperature=0.0, seed=0, max_tokens=32)
    deadline = time.monotonic() + targets.load_time_limit_s

    def one(index: int):
        if time.monotonic() > deadline:
            return None  # over the time limit: not sent
        return served_model.generate(prompts[index % len(prompts)], options)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=targets.load_concurrency) as pool:
        results = list(pool.map(one, range(targets.load_requests)))
    elapsed = time.perf_counter() - start
    sent = [r for r in results if r is not None]
    errors = [r for r in sent if not r.ok]
    series = LatencySeries()
    for r in sent:
        if r.ok:
            series.add(r.ttft_s, r.total_s)
    load = {
        "requests": len(sent), "concurrency": targets.load_concurrency,
        "throughput_rps": round(len(sent) / elapsed, 3),
        "p95_total_ms": series.total_p95_ms, "error_rate": len(errors) / max(len(sent), 1),
        "not_sent_time_limit": len(results) - len(sent),
    }
    for name, value in load.items():
        verdict_metrics.add("load", name, value)
    assert not errors, f"{len(errors)} of {len(sent)} requests failed: {errors[0].error}"
    assert len(sent) == targets.load_requests, (
        f"only {len(sent)} of {targets.load_requests} requests fit in "
        f"{targets.load_time_limit_s} s")
