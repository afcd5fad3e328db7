"""The answer-then-score step every gate item shares, whoever made the item (a test file's
parametrized function or the plugin's own :mod:`loragate.gating.items`): the messages as the
model sees them, the answer through the backend, the evidence kept, the validator's judgment
recorded; a canary judged on the model and the baseline."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest

from loragate.backends.faults import BackendError
from loragate.config import LoragateConfig
from loragate.gating.recorders import CanaryRecorder, MetricsRecorder, SampleRecorder, cap_answer
from loragate.gating.session import GateCannotRun, session_of
from loragate.harnesses.model_judge import JudgeAnswerError
from loragate.harnesses.refusal_model import JudgeUnavailable
from loragate.harnesses.registry import ValidatorResultError, ValidatorTimeout

# What keeps a sample from being judged, as opposed to judged and failed.
UNJUDGEABLE = (GateCannotRun, JudgeAnswerError, ValidatorTimeout, ValidatorResultError,
               BackendError, JudgeUnavailable)
# Of those, what no sample of the gate can get past: named once in the verdict.
STOPS_THE_GATE = (GateCannotRun, JudgeUnavailable)


def generation_options(config: pytest.Config, settings: LoragateConfig, repeat: int = 0):
    """The options of every gate answer; repeat ``k`` of a prompt samples with seed + k, so
    repeats are independent draws and each is cached under its own key."""
    from loragate.backends.base import GenerationOptions

    return GenerationOptions(
        temperature=config.getoption("temperature"),
        seed=config.getoption("seed") + repeat,
        max_tokens=settings.backend.max_tokens,
    )


def repeat_of(item: pytest.Item) -> int:
    """Which repeat of its prompt ``item`` is: a plugin item carries it (``repeat``), a test
    file's item has it as its ``loragate_repeat`` parameter."""
    repeat = getattr(item, "repeat", None)
    if isinstance(repeat, int):
        return repeat
    callspec = getattr(item, "callspec", None)
    return int(callspec.params.get("loragate_repeat", 0)) if callspec else 0


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str | None
                       ) -> list[dict[str, str]]:
    """The messages as the model saw them in training: the config's system prompt first,
    unless the record brings its own (else the chat template would insert its default)."""
    if not system_prompt or (messages and messages[0].get("role") == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


def make_answerer(backend: Any, options: Any, metrics: MetricsRecorder, digest_name: str,
                  system_prompt: str | None) -> Callable[..., Any]:
    def answer(messages: list[dict[str, str]]):
        response = backend.generate(with_system_prompt(messages, system_prompt), options)
        metrics.add("model", digest_name, response.model_digest)
        metrics.count("cache", "hits" if response.cached else "misses")
        return response

    return answer


def messages_digest(messages: list[dict[str, str]]) -> str:
    """sha256 of the messages as canonical JSON: two runs asked the same thing iff equal."""
    payload = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def answer_evidence(response: Any, messages: list[dict[str, str]], *, limit: int,
                    seed: int | None = None) -> dict[str, Any]:
    """The fields of a sample that show what the model was asked and what it said."""
    return {
        "messages_digest": messages_digest(messages),
        "messages": [{"role": m.get("role", ""), "content": cap_answer(m.get("content", ""), limit)}
                     for m in messages],
        "answer": cap_answer(response.text or "", limit),
        "finish_reason": response.finish_reason,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "ttft_s": None if response.ttft_s is None else round(response.ttft_s, 4),
        "total_s": None if response.total_s is None else round(response.total_s, 4),
        "in_flight": getattr(response, "in_flight", None),
        "queue_s": getattr(response, "queue_s", None),
        # A cached answer's timings are those of the run that generated it, not this one's.
        "cached": bool(getattr(response, "cached", False)),
        "seed": seed,
    }


def score_sample(harness: str, prompt_record: dict[str, Any], generate_answer: Callable,
                 gate_sample: SampleRecorder) -> None:
    """Generate the answer to one prompt, validate it with the configured harness, and record
    the sample's outcome. A generation that failed is an error, never a failed sample."""
    state = session_of(gate_sample.item.config)
    gate = state.harnesses[harness]
    expected = prompt_record.get("expected") if gate.rule.metric == "f1" else None
    expected = expected if isinstance(expected, str) else None
    not_generated: str | None = None
    try:
        response = generate_answer(prompt_record["messages"])
    except BackendError as exc:
        # The server, not the model: one line for the sample, the gate cannot decide.
        not_generated = f"generation error: {brief(exc)}"
    if not_generated is not None:
        gate_sample.record(False, not_generated, error=True, sample_id=prompt_record["id"],
                           expected=expected)
        return
    repeat = repeat_of(gate_sample.item)
    evidence = answer_evidence(response, with_system_prompt(
        prompt_record["messages"], state.settings.data_args.system_prompt),
        limit=state.settings.reports.max_answer_chars,
        seed=state.config.getoption("seed") + repeat)
    evidence["repeat"] = repeat
    if response.error:
        gate_sample.record(False, f"generation error: {response.error}", error=True,
                           sample_id=prompt_record["id"], expected=expected, evidence=evidence)
        return
    failure: str | None = None
    try:
        result = gate.validate(response.text, prompt_record)
    except UNJUDGEABLE as exc:
        # The judge, not the answer, failed: an error of the sample in one line (no traceback
        # per sample), so the gate is undecided rather than failed.
        if isinstance(exc, STOPS_THE_GATE):
            gate_sample.gate_error(str(exc))
        failure = f"could not be judged: {brief(exc)}"
    except Exception as exc:  # noqa: BLE001 - a validator's bug is the sample's error
        failure = (f"could not be judged: the validator raised {type(exc).__name__}: "
                   f"{brief(exc)}{raised_at(exc)}")
    if failure is not None:
        # Recorded outside the handler: a failure raised inside it prints the exception
        # chain ("During handling of the above exception ...") for every sample.
        gate_sample.record(False, failure, error=True, sample_id=prompt_record["id"],
                           expected=expected, evidence=evidence)
        return
    reason = result.summary()
    if response.truncated:
        reason += " (answer cut at max_tokens)"
    gate_sample.record(result.passed, reason, sample_id=prompt_record["id"],
                       expected=expected, predicted=result.predicted,
                       evidence={**evidence, "reasons": tuple(result.reasons)})


BRIEF_CHARS = 400


def brief(exc: BaseException) -> str:
    """An exception's message in at most BRIEF_CHARS characters (a validator may raise with
    the whole answer in its message), the cut marked."""
    text = str(exc)
    return text if len(text) <= BRIEF_CHARS else f"{text[:BRIEF_CHARS]}… [cut]"


def raised_at(exc: BaseException) -> str:
    """`` (at FILE:LINE in FUNCTION)`` of the innermost frame that raised ``exc``: where to
    look, in one line instead of a traceback per sample."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" (at {last.filename}:{last.lineno} in {last.name})"


def judge_pair(record: dict[str, Any], answer: Callable[..., Any],
               baseline_answer: Callable[..., Any], recorder: CanaryRecorder,
               kind: str = "canary", backends: tuple[Any, Any] | None = None,
               system_prompt: str | None = None) -> None:
    """Answer a canary (or forgetting-probe) record with the model and the baseline, check both
    answers with the record's checks and record the pair, both answers as evidence; with
    ``backends`` (model, baseline), the record's likelihood probes are measured on both."""
    from loragate.canaries import check_canary, probe_margins

    responses = {"model": answer(record["messages"]),
                 "baseline": baseline_answer(record["messages"])}
    for who, response in responses.items():
        if response.error:
            # A server that failed is not an answer: checked, an empty model answer would be a
            # regression and an empty baseline answer an improvement, neither of them true.
            pytest.fail(f"{kind} {record['id']} could not be judged: the {who}'s answer "
                        f"failed: {response.error}", pytrace=False)
    model_text, baseline_text = responses["model"].text, responses["baseline"].text
    model = check_canary(record, model_text)
    baseline = check_canary(record, baseline_text)
    margins: tuple[list[float] | None, list[float] | None] = (None, None)
    note = ""
    if backends is not None and record.get("probes"):
        (model_margins, model_note), (base_margins, base_note) = (
            probe_margins(record, backend, system_prompt) for backend in backends)
        note = model_note or base_note
        # Paired or not at all: a margin without its baseline twin shows no shift.
        margins = (model_margins, base_margins) if not note else (None, None)
    recorder.record(record["id"], model_passed=model.passed, baseline_passed=baseline.passed,
                    model_reason=model.summary(), baseline_reason=baseline.summary(),
                    kind=kind, model_answer=model_text, baseline_answer=baseline_text,
                    model_margins=margins[0], baseline_margins=margins[1], probes_note=note)
