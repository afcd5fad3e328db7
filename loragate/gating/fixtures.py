"""The fixtures a gate test uses (the answer-then-score step: :mod:`loragate.gating.scoring`).

* ``generate_answer(messages)`` / ``generate_baseline(messages)``: the model's (the
  baseline's) :class:`~loragate.backends.base.Response`, through the response cache, with the
  config's system prompt first;
* ``gate_sample.record(passed, reason, …)``, ``canary_outcome.record(…)``,
  ``verdict_metrics.add(section, name, value)``: what a test contributes to the verdict;
* ``prompt_record`` / ``canary_record``: one parametrized item per record of the harness's
  (``@pytest.mark.harness(NAME)``) prompt file or of the canary file;
* ``model_under_test``, ``baseline_model``, ``served_model``, ``loragate_settings``;
* ``loragate_candidate``: the backend role of the model an item judges; with several
  ``--model`` it is parametrized, so every item that needs a model runs once per candidate.

Records travel in ``item.user_properties`` so they cross pytest-xdist workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from loragate.config import LoragateConfig
from loragate.gating.recorders import CanaryRecorder, MetricsRecorder, SampleRecorder
from loragate.gating.scoring import generation_options, judge_pair, make_answerer
from loragate.gating.session import MODEL_ROLE, session_of, spec_for


@pytest.fixture
def gate_sample(request: pytest.FixtureRequest) -> SampleRecorder:
    """Record one harness sample: ``gate_sample.record(passed, reason, expected=, predicted=)``."""
    marker = request.node.get_closest_marker("harness")
    return SampleRecorder(item=request.node, harness=marker.args[0] if marker else None)


@pytest.fixture
def canary_outcome(request: pytest.FixtureRequest) -> CanaryRecorder:
    """Record one canary: ``canary_outcome.record(id, model_passed=, baseline_passed=)``."""
    return CanaryRecorder(item=request.node)


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


@pytest.fixture
def loragate_repeat() -> int:
    """Which repeat of its prompt an item is (``--repeats K``); parametrized per gate item."""
    return 0


@pytest.fixture(scope="session")
def loragate_candidate(request: pytest.FixtureRequest) -> str:
    """The backend role of the candidate this item judges: ``model``, or ``model[NAME]`` when
    several ``--model`` are given (then parametrized by :mod:`loragate.gating.items`)."""
    return getattr(request, "param", MODEL_ROLE)


@pytest.fixture(scope="session")
def model_under_test(request: pytest.FixtureRequest, loragate_candidate: str) -> Any:
    """The ``--model`` backend (through the response cache unless ``--no-cache``)."""
    return session_of(request.config).backend(loragate_candidate)


@pytest.fixture(scope="session")
def baseline_model(request: pytest.FixtureRequest) -> Any:
    """The ``--baseline`` backend (or the config's ``canaries.baseline``)."""
    return session_of(request.config).backend("baseline")


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
def served_model(request: pytest.FixtureRequest, loragate_settings: LoragateConfig,
                 loragate_candidate: str) -> Iterator:
    """``--model`` served the way it is deployed, for latency: a ``gguf:`` model through
    llama-cpp-python's OpenAI-compatible server on loopback (started here, stopped after), an
    ``ollama:`` or ``openai:`` model where it already runs. Never through the response cache:
    latency must be measured, not replayed."""
    from loragate.backends.serve import serve_gguf
    from loragate.backends.spec import open_backend, parse_spec

    spec_text = spec_for(session_of(request.config), loragate_candidate)
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
