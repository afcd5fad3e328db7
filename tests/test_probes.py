"""Knowledge read from the model's own likelihoods: minimal pairs scored on the GGUF that
ships, paired against the baseline, "not run" where a backend reads no log-probabilities."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from loragate.backends import open_backend
from loragate.backends.base import Message
from loragate.backends.gguf import GgufBackend
from loragate.canaries import CanaryError, probe_margins, validate_record
from loragate.config import BackendSettings
from loragate.gating.outcomes import CanaryOutcome
from loragate.gating.statistics import summarise_probes
from loragate.gating.verdict import summarise_canaries

SETTINGS = BackendSettings(n_ctx=512, n_threads=2, timeout_s=60, retries=0)
CONTEXT = (Message("user", "Which test framework do Web4 components use?"),)
RECORD = {"id": "c06", "task": "vitest", "messages": [{"role": "user", "content":
          "Which test framework do Web4 components use?"}], "check": {"keywords": ["vitest"]},
          "probes": [{"right": "Vitest.", "wrong": "Jest."}]}


@pytest.fixture(scope="module")
def gguf(tiny_gguf: Path) -> Iterator[GgufBackend]:
    backend = open_backend(f"gguf:{tiny_gguf}", SETTINGS)
    yield backend
    backend.close()


def reference_loglikelihood(path: Path, backend: GgufBackend, continuation: str) -> float:
    """The same quantity through llama-cpp-python's own API (logits_all), token by token."""
    from llama_cpp import Llama

    context, _ = backend.prompt_tokens(CONTEXT)
    answer = backend.llama.tokenize(continuation.encode(), add_bos=False, special=False)
    llm = Llama(model_path=str(path), n_ctx=512, n_threads=2, logits_all=True, verbose=False)
    try:
        llm.eval(context + answer)
        total = 0.0
        for offset, token in enumerate(answer):
            row = [float(x) for x in llm.scores[len(context) - 1 + offset]]
            top = max(row)
            total += row[token] - top - math.log(sum(math.exp(x - top) for x in row))
        return total
    finally:
        llm.close()


def test_gguf_loglikelihood_matches_llama_cpp_logits_all(gguf, tiny_gguf):
    for continuation in ("Vitest.", "Jest is used."):
        ours = gguf.loglikelihood(CONTEXT, continuation)
        assert ours < 0
        assert ours == pytest.approx(reference_loglikelihood(tiny_gguf, gguf, continuation),
                                     abs=1e-3)


def test_a_margin_is_right_minus_wrong_and_swaps_sign(gguf):
    (margin,), note = probe_margins(RECORD, gguf)
    swapped = dict(RECORD, probes=[{"right": "Jest.", "wrong": "Vitest."}])
    (opposite,), _ = probe_margins(swapped, gguf)
    assert not note and margin == pytest.approx(-opposite, abs=1e-3)


def test_generation_still_works_after_a_probe(gguf):
    gguf.loglikelihood(CONTEXT, "Vitest.")
    assert gguf.generate("The Web4 method says").text is not None


def test_a_backend_without_log_probabilities_is_not_run_never_passed():
    class Server:
        kind = "openai"

    margins, note = probe_margins(RECORD, Server())
    assert margins is None and note.startswith("not run") and "openai" in note


@pytest.mark.parametrize(("probes", "message"), [
    ([], "non-empty list"),
    ([{"right": "a"}], "probes.0"),
    ([{"right": "a", "wrong": "a"}], "the same"),
])
def test_malformed_probes_name_the_field(probes, message):
    with pytest.raises(CanaryError, match=message):
        validate_record(dict(RECORD, probes=probes), "canaries.jsonl:6")


def outcome(cid: str, model: list[float] | None, base: list[float] | None,
            note: str = "") -> CanaryOutcome:
    return CanaryOutcome(cid, True, True, model_margins=model, baseline_margins=base,
                         probes_note=note)


def test_probes_are_summarised_as_paired_margins():
    summary = summarise_probes([outcome("c01", [2.0, -1.0], [1.0, 0.5]),
                                outcome("c02", [3.0], [0.0]), outcome("c03", None, None)])
    assert summary["n"] == 3 and summary["model_right"] == 2
    assert summary["baseline_right"] == 2
    assert summary["mean_shift"] == pytest.approx((1.0 - 1.5 + 3.0) / 3, abs=1e-4)
    assert summary["wrong_on_model"] == ["c01"]
    assert 0 < summary["wilcoxon_p"] <= 1


def test_probes_not_run_are_said_so_in_the_canary_summary():
    summary = summarise_canaries([outcome("c01", None, None, "not run: the openai backend "
                                                              "gives no prompt log-probabilities")])
    assert summary.probes == {"n": 0, "run": False, "note": "not run: the openai backend gives "
                                                            "no prompt log-probabilities"}
    assert summarise_canaries([outcome("c01", None, None)]).probes is None


def test_the_report_line_names_both_models():
    from loragate.gating.formatting import probe_line

    line = probe_line(summarise_probes([outcome("c01", [2.0], [1.0]),
                                        outcome("c02", [-1.0], [0.5])]))
    assert "model ranks 1/2" in line and "baseline 2/2" in line and "Wilcoxon" in line


def test_report_compare_shows_each_runs_probes():
    from loragate.gating.formatting import summary_line

    probes = summarise_probes([outcome("c01", [2.0], [1.0])])
    run = {"verdict": "blocked", "overall": 40.0, "latency": {}, "forgetting": None,
           "canaries": {"n": 1, "model_passed": 1, "baseline_passed": 1, "failed": [],
                        "regressions": [], "probes": probes}}
    assert "likelihood probes: model ranks 1/1" in summary_line("tuned", run)


def test_hf_and_gguf_read_the_same_likelihood_of_one_model(gguf, tiny_llama_dir):
    """The tiny model in transformers and as its f16 GGUF: the same log-likelihood of a
    continuation, within f16 rounding."""
    from loragate.backends.hf import HfBackend

    hf = HfBackend(tiny_llama_dir)
    for continuation in ("Vitest.", "Jest is used."):
        assert hf.loglikelihood(CONTEXT, continuation) == pytest.approx(
            gguf.loglikelihood(CONTEXT, continuation), abs=0.05)
    (margin,), note = probe_margins(RECORD, hf)
    assert not note and isinstance(margin, float)
