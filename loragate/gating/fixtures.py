"""The fixtures a gate test uses, and the answer-then-score step every gate item shares.

* ``generate_answer(messages)`` / ``generate_baseline(messages)``: the model's (the
  baseline's) :class:`~loragate.backends.base.Response`, through the response cache, with the
  config's system prompt first;
* ``gate_sample.record(passed, reason, …)``, ``canary_outcome.record(…)``,
  ``verdict_metrics.add(section, name, value)``: what a test contributes to the verdict;
* ``prompt_record`` / ``canary_record``: one parametrized item per record of the harness's
  (``@pytest.mark.harness(NAME)``) prompt file or of the canary file;
* ``model_under_test``, ``baseline_model``, ``served_model``, ``loragate_settings``.

Records travel in ``item.user_properties`` so they cross pytest-xdist workers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from loragate.config import LoragateConfig
from loragate.gating.prompts import PromptFileError, read_prompt_records
from loragate.gating.session import STASH_KEY, GateSession
from loragate.gating.verdict import CanaryOutcome, SampleOutcome

SAMPLE_KEY = "loragate.sample"
CANARY_KEY = "loragate.canary"
METRIC_KEY = "loragate.metric"
COUNT_KEY = "loragate.count"


def session_of(config: pytest.Config) -> GateSession:
    return config.stash[STASH_KEY]


# ---------------------------------------------------------------------------------------------
# Recorders


@dataclass
class SampleRecorder:
    """Records one harness sample; a failed sample then fails its test item with the reason."""

    item: pytest.Item
    harness: str | None

    def record(self, passed: bool, reason: str = "", *, sample_id: str | None = None,
               expected: str | None = None, predicted: str | None = None,
               error: bool = False, harness: str | None = None,
               evidence: dict[str, Any] | None = None) -> None:
        """``evidence``: the answer and its figures (:func:`answer_evidence`)."""
        harness = harness or self.harness
        if harness is None:
            raise ValueError(
                f"{self.item.nodeid}: no harness: mark the test with "
                "@pytest.mark.harness(NAME) or pass harness="
            )
        outcome = SampleOutcome(
            nodeid=self.item.nodeid, harness=harness, passed=bool(passed) and not error,
            reason=reason, sample_id=sample_id, expected=expected, predicted=predicted,
            error=error, **(evidence or {}),
        )
        self.item.user_properties.append((SAMPLE_KEY, asdict(outcome)))
        if error:
            pytest.fail(f"[{harness}] could not be judged: {reason}", pytrace=False)
        if not passed:
            pytest.fail(f"[{harness}] {reason or 'sample failed'}", pytrace=False)


@dataclass
class CanaryRecorder:
    item: pytest.Item

    def record(self, canary_id: str, *, model_passed: bool, baseline_passed: bool,
               model_reason: str = "", baseline_reason: str = "", kind: str = "canary",
               model_answer: str | None = None, baseline_answer: str | None = None,
               model_margins: list[float] | None = None,
               baseline_margins: list[float] | None = None, probes_note: str = "") -> None:
        """``kind``: "canary" (must pass, must not regress) or "forgetting" (the probe)."""
        state = session_of(self.item.config)
        limit = state.settings.reports.max_answer_chars
        outcome = CanaryOutcome(
            canary_id, bool(model_passed), bool(baseline_passed), model_reason,
            baseline_reason, kind=kind,
            model_answer=None if model_answer is None else cap_answer(model_answer, limit),
            baseline_answer=None if baseline_answer is None else cap_answer(baseline_answer,
                                                                            limit),
            model_margins=model_margins, baseline_margins=baseline_margins,
            probes_note=probes_note)
        self.item.user_properties.append((CANARY_KEY, asdict(outcome)))
        what = "canary" if kind == "canary" else "forgetting probe"
        if outcome.regressed:
            pytest.fail(f"{what} {canary_id} regressed: baseline passed, model failed: "
                        f"{model_reason}", pytrace=False)
        if not model_passed and kind == "canary" and state.settings.canaries.require_all:
            pytest.fail(f"canary {canary_id} failed (every canary must pass; the baseline "
                        f"fails it too): {model_reason}", pytrace=False)
        if not model_passed:
            pytest.xfail(f"{what} {canary_id}: model and baseline both fail: {model_reason}")


@dataclass
class MetricsRecorder:
    item: pytest.Item

    def add(self, section: str, name: str, value: Any) -> None:
        """Put ``value`` at ``metrics[section][name]`` in the verdict (JSON-serialisable)."""
        json.dumps(value)  # fail here, in the test, rather than at session end
        self.item.user_properties.append(
            (METRIC_KEY, {"section": section, "name": name, "value": value})
        )

    def count(self, section: str, name: str, increment: int = 1) -> None:
        """Add ``increment`` to ``metrics[section][name]``, summed over the whole session."""
        self.item.user_properties.append(
            (COUNT_KEY, {"section": section, "name": name, "value": int(increment)})
        )


@pytest.fixture
def gate_sample(request: pytest.FixtureRequest) -> SampleRecorder:
    """Record one harness sample: ``gate_sample.record(passed, reason, expected=, predicted=)``."""
    marker = request.node.get_closest_marker("harness")
    return SampleRecorder(item=request.node, harness=marker.args[0] if marker else None)


@pytest.fixture
def canary_outcome(request: pytest.FixtureRequest) -> CanaryRecorder:
    """Record one canary: ``canary_outcome.record(id, model_passed=, baseline_passed=)``."""
    return CanaryRecorder(item=request.node)


def judge_pair(record: dict[str, Any], answer: Callable[..., Any],
               baseline_answer: Callable[..., Any], recorder: CanaryRecorder,
               kind: str = "canary", backends: tuple[Any, Any] | None = None,
               system_prompt: str | None = None) -> None:
    """Answer a canary (or forgetting-probe) record with the model and the baseline, check both
    answers with the record's checks and record the pair, both answers as evidence; with
    ``backends`` (model, baseline), the record's likelihood probes are measured on both."""
    from loragate.canaries import check_canary, probe_margins

    model_text = answer(record["messages"]).text
    baseline_text = baseline_answer(record["messages"]).text
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


@pytest.fixture
def judge_against_baseline(generate_answer, generate_baseline, canary_outcome,
                           model_under_test, baseline_model, loragate_settings
                           ) -> Callable[..., None]:
    """``judge_against_baseline(record, kind="canary")``: :func:`judge_pair` with the session's
    model and baseline."""

    def judge(record: dict[str, Any], kind: str = "canary") -> None:
        judge_pair(record, generate_answer, generate_baseline, canary_outcome, kind,
                   backends=(model_under_test, baseline_model),
                   system_prompt=loragate_settings.data_args.system_prompt)

    return judge


@pytest.fixture
def verdict_metrics(request: pytest.FixtureRequest) -> MetricsRecorder:
    """Add figures to the verdict: ``verdict_metrics.add("latency", "ttft_p50_ms", 12.3)``."""
    return MetricsRecorder(item=request.node)


@pytest.fixture(scope="session")
def loragate_settings(request: pytest.FixtureRequest) -> LoragateConfig:
    """The loragate config of this session (``--loragate-config`` or the ini's
    ``loragate_config``)."""
    return session_of(request.config).settings


# ---------------------------------------------------------------------------------------------
# Models and answers


def generation_options(config: pytest.Config, settings: LoragateConfig, repeat: int = 0):
    """The options of every gate answer; repeat ``k`` of a prompt samples with seed + k, so
    repeats are independent draws and each is cached under its own key."""
    from loragate.backends.base import GenerationOptions

    return GenerationOptions(
        temperature=config.getoption("temperature"),
        seed=config.getoption("seed") + repeat,
        max_tokens=settings.backend.max_tokens,
    )


@pytest.fixture
def loragate_repeat() -> int:
    """Which repeat of its prompt an item is (``--repeats K``); parametrized per gate item."""
    return 0


def repeat_of(item: pytest.Item) -> int:
    if isinstance(item, PluginItem):
        return item.repeat
    callspec = getattr(item, "callspec", None)
    return int(callspec.params.get("loragate_repeat", 0)) if callspec else 0


def with_system_prompt(messages: list[dict[str, str]], system_prompt: str | None
                       ) -> list[dict[str, str]]:
    """The messages as the model saw them in training: the config's system prompt first,
    unless the record brings its own (else the chat template would insert its default)."""
    if not system_prompt or (messages and messages[0].get("role") == "system"):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]


@pytest.fixture(scope="session")
def model_under_test(request: pytest.FixtureRequest) -> Any:
    """The ``--model`` backend (through the response cache unless ``--no-cache``)."""
    return session_of(request.config).backend("model")


@pytest.fixture(scope="session")
def baseline_model(request: pytest.FixtureRequest) -> Any:
    """The ``--baseline`` backend (or the config's ``canaries.baseline``)."""
    return session_of(request.config).backend("baseline")


def make_answerer(backend: Any, options: Any, metrics: MetricsRecorder, digest_name: str,
                  system_prompt: str | None) -> Callable[..., Any]:
    def answer(messages: list[dict[str, str]]):
        response = backend.generate(with_system_prompt(messages, system_prompt), options)
        metrics.add("model", digest_name, response.model_digest)
        metrics.count("cache", "hits" if response.cached else "misses")
        return response

    return answer


@pytest.fixture
def generate_answer(request, model_under_test, loragate_settings, verdict_metrics,
                    loragate_repeat):
    """``generate_answer(messages) -> Response`` from the model under test."""
    options = generation_options(request.config, loragate_settings, loragate_repeat)
    return make_answerer(model_under_test, options, verdict_metrics, "digest",
                         loragate_settings.data_args.system_prompt)


@pytest.fixture
def generate_baseline(request, baseline_model, loragate_settings, verdict_metrics):
    """``generate_baseline(messages) -> Response`` from the baseline model."""
    options = generation_options(request.config, loragate_settings)
    return make_answerer(baseline_model, options, verdict_metrics, "baseline_digest",
                         loragate_settings.data_args.system_prompt)


@pytest.fixture(scope="session")
def served_model(request: pytest.FixtureRequest, loragate_settings: LoragateConfig) -> Iterator:
    """``--model`` served the way it is deployed, for latency: a ``gguf:`` model through
    llama-cpp-python's OpenAI-compatible server on loopback (started here, stopped after), an
    ``ollama:`` or ``openai:`` model where it already runs. Never through the response cache:
    latency must be measured, not replayed."""
    from loragate.backends.serve import serve_gguf
    from loragate.backends.spec import open_backend, parse_spec

    spec_text = request.config.getoption("model")
    if not spec_text:
        pytest.skip("no --model given: the smoke tests need a model")
    spec = parse_spec(spec_text)
    settings = loragate_settings.backend
    if spec.kind != "gguf":
        backend = open_backend(spec, settings)
        yield backend
        backend.close()
        return
    alias = spec.path.stem
    with serve_gguf(spec.path, n_ctx=settings.n_ctx, n_threads=settings.n_threads,
                    model_alias=alias, lora_path=spec.adapter) as url:
        backend = open_backend(f"openai:{url}/v1#{alias}", settings)
        yield backend
        backend.close()


# ---------------------------------------------------------------------------------------------
# One item per prompt record


def harness_records(state: GateSession, harness: str) -> list[dict[str, Any]]:
    """The records a harness is judged on: its prompt file, capped by ``--samples`` or the
    harness's configured count."""
    gate = state.harnesses.get(harness)
    if gate is None:
        raise pytest.UsageError(
            f"harness {harness!r} is not configured (gates.harnesses in "
            f"{state.settings.source_path or 'the built-in defaults'}); "
            f"configured: {', '.join(state.harnesses) or 'none'}")
    try:
        records = read_prompt_records(gate.prompts)
    except PromptFileError as exc:
        raise pytest.UsageError(f"harness {harness!r}: {exc}") from None
    limit = state.config.getoption("samples") or gate.samples
    return records[:limit]


def canary_records(state: GateSession, kind: str = "canary") -> list[dict[str, Any]]:
    """The records of the canary file or (``kind="forgetting"``) of the forgetting probe;
    none when the config names no such file."""
    from loragate.canaries import CanaryError, load_canaries

    canaries = state.settings.canaries
    path = canaries.file if kind == "canary" else canaries.forgetting_file
    if path is None:
        return []
    try:
        return load_canaries(path)
    except CanaryError as exc:
        raise pytest.UsageError(f"canaries: {exc}") from None


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One item per record. A bad prompt or canary file is a usage error of the session (exit
    4), raised after collection: raised here, pytest would report a collection error of the
    test module instead (exit 2)."""
    state = session_of(metafunc.config)
    done: set[str] = set()
    try:
        _parametrize_records(metafunc, state, done)
    except pytest.UsageError as exc:
        state.usage_errors.append(str(exc))
        for name in ("prompt_record", "canary_record", "forgetting_record"):
            if name in metafunc.fixturenames and name not in done:
                metafunc.parametrize(name, [])


def _parametrize_records(metafunc: pytest.Metafunc, state: GateSession, done: set[str]
                         ) -> None:
    if not metafunc.config.getoption("model"):
        # Deselected by the plugin; the prompt files need not even exist without a model.
        for name in ("prompt_record", "canary_record", "forgetting_record"):
            if name in metafunc.fixturenames:
                metafunc.parametrize(name, [])
        return
    if "prompt_record" in metafunc.fixturenames:
        marker = metafunc.definition.get_closest_marker("harness")
        if marker is None or not marker.args:
            raise pytest.UsageError(f"{metafunc.definition.nodeid}: prompt_record needs "
                                    "@pytest.mark.harness(NAME)")
        records = harness_records(state, marker.args[0])
        metafunc.parametrize("prompt_record", records, ids=[r["id"] for r in records])
        done.add("prompt_record")
        repeats = metafunc.config.getoption("repeats")
        if repeats > 1 and "loragate_repeat" in metafunc.fixturenames:
            metafunc.parametrize("loragate_repeat", range(repeats),
                                 ids=[f"r{k}" for k in range(repeats)])
    for name, kind in (("canary_record", "canary"), ("forgetting_record", "forgetting")):
        if name in metafunc.fixturenames:
            records = canary_records(state, kind)
            metafunc.parametrize(name, records, ids=[r["id"] for r in records])
            done.add(name)


def messages_digest(messages: list[dict[str, str]]) -> str:
    """sha256 of the messages as canonical JSON: two runs asked the same thing iff equal."""
    payload = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cap_answer(text: str, limit: int) -> str:
    """The answer as kept in the verdict: at most ``limit`` characters, the cut marked."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… cut: {len(text) - limit} more characters]"


def answer_evidence(response: Any, messages: list[dict[str, str]], *, limit: int,
                    seed: int | None = None) -> dict[str, Any]:
    """The fields of a sample that show what the model was asked and what it said."""
    return {
        "messages_digest": messages_digest(messages),
        "answer": cap_answer(response.text or "", limit),
        "finish_reason": response.finish_reason,
        "prompt_tokens": response.prompt_tokens,
        "completion_tokens": response.completion_tokens,
        "ttft_s": None if response.ttft_s is None else round(response.ttft_s, 4),
        "total_s": None if response.total_s is None else round(response.total_s, 4),
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
    response = generate_answer(prompt_record["messages"])
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
    result = gate.validate(response.text, prompt_record)
    reason = result.summary()
    if response.truncated:
        reason += " (answer cut at max_tokens)"
    gate_sample.record(result.passed, reason, sample_id=prompt_record["id"],
                       expected=expected, predicted=result.predicted,
                       evidence={**evidence, "reasons": tuple(result.reasons)})


class PluginItem(pytest.Item):
    """An item the plugin makes from a record when no test file covers it. ``fixturenames``
    names the fixtures a test file's item would use for the same work, so the plugin opens
    the same models and generates the same answers ahead for both."""

    fixturenames: tuple[str, ...] = ()

    def __init__(self, *, record: dict[str, Any], repeat: int = 0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record
        self.repeat = repeat

    def answerer(self, role: str, metrics: MetricsRecorder) -> Callable[..., Any]:
        state = session_of(self.config)
        settings = state.settings
        repeat = self.repeat if role == "model" else 0
        options = generation_options(self.config, settings, repeat)
        digest = "digest" if role == "model" else "baseline_digest"
        return make_answerer(state.backend(role), options, metrics, digest,
                             settings.data_args.system_prompt)


class HarnessItem(PluginItem):
    """A gate item for a configured harness that no test file covers: ``<harness>[<prompt
    id>]``, so a project with only a config, a prompt file and a validator can gate."""

    fixturenames = ("generate_answer", "prompt_record")

    def __init__(self, *, harness: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.harness = harness

    def runtest(self) -> None:
        answer = self.answerer("model", MetricsRecorder(item=self))
        score_sample(self.harness, self.record, answer,
                     SampleRecorder(item=self, harness=self.harness))

    def reportinfo(self):
        path = session_of(self.config).harnesses[self.harness].prompts
        return path, None, self.name


class CanaryItem(PluginItem):
    """A canary (or forgetting-probe) record that no test file covers: ``canary[<id>]`` or
    ``forgetting[<id>]``, judged on the model and the baseline like the test files' items."""

    fixturenames = ("generate_answer", "generate_baseline")

    def __init__(self, *, kind: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.kind = kind

    def runtest(self) -> None:
        metrics = MetricsRecorder(item=self)
        state = session_of(self.config)
        judge_pair(self.record, self.answerer("model", metrics),
                   self.answerer("baseline", metrics), CanaryRecorder(item=self), self.kind,
                   backends=(state.backend("model"), state.backend("baseline")),
                   system_prompt=state.settings.data_args.system_prompt)

    def reportinfo(self):
        canaries = session_of(self.config).settings.canaries
        return (canaries.file if self.kind == "canary" else canaries.forgetting_file), None, \
            self.name


def make_canary_items(session: pytest.Session, state: GateSession, kind: str
                      ) -> list[CanaryItem]:
    """One item per record of the canary file (``kind="canary"``) or of the forgetting probe."""
    items = []
    for record in canary_records(state, kind):
        name = f"{kind}[{record['id']}]"
        item = CanaryItem.from_parent(session, name=name, nodeid=name, kind=kind, record=record)
        item.add_marker(pytest.mark.canary)
        items.append(item)
    return items


def make_harness_items(session: pytest.Session, state: GateSession, harness: str
                       ) -> list[HarnessItem]:
    gate = state.harnesses[harness]
    marker = pytest.mark.ship_gate if gate.rule.gate == "ship" else pytest.mark.quality_gate
    repeats = state.config.getoption("repeats")
    items = []
    for record in harness_records(state, harness):
        for repeat in range(repeats):
            suffix = f"-r{repeat}" if repeats > 1 else ""
            name = f"{harness}[{record['id']}{suffix}]"
            item = HarnessItem.from_parent(session, name=name, nodeid=name, harness=harness,
                                           record=record, repeat=repeat)
            item.add_marker(marker)
            item.add_marker(pytest.mark.harness(harness))
            items.append(item)
    return items
