"""A verdict as Inspect eval logs: one log per harness, readable by ``inspect_ai``'s own reader
and viewer (``inspect view``), so a team that reviews evaluations in Inspect sees loragate's.

Built with ``inspect_ai``'s log types and written by its ``write_eval_log`` (the optional extra
``loragate[inspect]``): the format is theirs, never re-implemented here. Each sample keeps its
messages, the model's answer, and the judge's pass/fail ("C"/"I") with its reasons; a
classifier harness's samples also carry the expected and predicted labels. The log's headline
metric is the harness's gate metric (pass rate, or F1) with the gate's threshold and result in
the log's metadata.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loragate.gating.document import VerdictDocument
from loragate.gating.outcomes import SampleOutcome

CORRECT, INCORRECT = "C", "I"


class InspectUnavailable(RuntimeError):
    """inspect_ai is not installed."""


def inspect_log_module() -> Any:
    """``inspect_ai.log``, or :class:`InspectUnavailable` saying what to install."""
    try:
        import inspect_ai.log as log
    except ImportError:
        raise InspectUnavailable("writing Inspect logs needs inspect_ai: pip install "
                                 "'loragate[inspect]'") from None
    return log


def _messages(sample: SampleOutcome) -> list[Any]:
    from inspect_ai.model import ChatMessageAssistant, ChatMessageSystem, ChatMessageUser

    kinds = {"system": ChatMessageSystem, "user": ChatMessageUser,
             "assistant": ChatMessageAssistant}
    return [kinds[m["role"]](content=m["content"]) for m in sample.messages or []
            if m.get("role") in kinds]


def _sample(sample: SampleOutcome, model: str, index: int) -> Any:
    from inspect_ai.model import ModelOutput
    from inspect_ai.scorer import Score

    log = inspect_log_module()
    messages = _messages(sample)
    prompt = next((m.text for m in reversed(messages) if m.role == "user"), sample.nodeid)
    answer = sample.answer or ""
    output = ModelOutput.from_content(
        model, answer, stop_reason="max_tokens" if sample.finish_reason == "length" else "stop",
        error=sample.reason if sample.error else None)
    score = Score(value=CORRECT if sample.passed else INCORRECT, answer=sample.predicted,
                  explanation="; ".join(sample.reasons) or sample.reason,
                  metadata={"expected": sample.expected, "predicted": sample.predicted,
                            "error": sample.error, "skipped": sample.skipped})
    return log.EvalSample(
        id=sample.sample_id or sample.nodeid, epoch=sample.repeat + 1, input=messages or prompt,
        target=sample.expected or "", messages=[*messages, output.message], output=output,
        scores={sample.harness: score},
        metadata={"nodeid": sample.nodeid, "cached": sample.cached, "seed": sample.seed,
                  "ttft_s": sample.ttft_s, "total_s": sample.total_s, "index": index})


def harness_log(document: VerdictDocument, harness: str) -> Any:
    """One harness of ``document`` as an Inspect ``EvalLog``."""
    log = inspect_log_module()
    summary = document.harnesses[harness]
    rule = document.thresholds.get(harness)
    model = document.model.spec or "unknown"
    samples = [s for s in document.samples if s.harness == harness]
    metric = "f1" if rule is not None and rule.metric == "f1" else "accuracy"
    value = summary.f1 if metric == "f1" else summary.pass_rate
    metrics = {metric: log.EvalMetric(name=metric, value=value or 0.0)}
    if summary.wilson_low is not None and metric == "accuracy":
        metrics["wilson_low"] = log.EvalMetric(name="wilson_low", value=summary.wilson_low)
    return log.EvalLog(
        status="success" if summary.evaluated and not summary.undecided else "error",
        eval=log.EvalSpec(
            created=document.created_at or "1970-01-01T00:00:00+00:00",
            task=f"loragate/{harness}", dataset=log.EvalDataset(name=harness,
                                                                samples=len(samples)),
            model=model, config=log.EvalConfig(),
            metadata={"loragate_version": document.loragate_version,
                      "inputs_hash": document.inputs_hash, "data_hash": document.data_hash,
                      "gate": summary.gate, "threshold": summary.threshold,
                      "gate_passed": summary.gate_passed, "reason": summary.reason,
                      "verdict": document.verdict}),
        results=log.EvalResults(
            total_samples=len(samples), completed_samples=summary.executed,
            scores=[log.EvalScore(name=harness, scorer="loragate", metrics=metrics)]),
        samples=[_sample(s, model, i) for i, s in enumerate(samples)])


def write_inspect_logs(document: VerdictDocument, folder: Path) -> list[Path]:
    """Write one Inspect log per harness of ``document`` into ``folder`` (JSON format)."""
    log = inspect_log_module()
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for harness in sorted(document.harnesses):
        path = folder / f"{harness}.json"
        log.write_eval_log(harness_log(document, harness), str(path), format="json")
        written.append(path)
    return written
