"""One maker of gate and canary items: the records of each harness's prompt file and of the
canary files, as parameters of a test file's function (``prompt_record``, ``canary_record``,
``forgetting_record``) or, where no test file covers a harness, as the plugin's own items
(``<harness>[<id>]``, ``canary[<id>]``). Both read the same records with the same ids and
repeats and score through :mod:`loragate.gating.scoring`.

:func:`parametrize_records` is the plugin's ``pytest_generate_tests`` hook.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from loragate.gating.prompts import PromptFileError, read_prompt_source
from loragate.gating.recorders import CanaryRecorder, MetricsRecorder, SampleRecorder
from loragate.gating.scoring import generation_options, judge_pair, make_answerer, score_sample
from loragate.gating.session import MODEL_ROLE, Candidate, GateSession, session_of

CANDIDATE_PARAM = "loragate_candidate"


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
        records = read_prompt_source(gate.source)
    except PromptFileError as exc:
        raise pytest.UsageError(f"harness {harness!r}: {exc}") from None
    if not records:
        # A configured gate with nothing to judge is the data's fault, not the model's: left
        # to the verdict it would read "ship gate not evaluated", blocked.
        raise pytest.UsageError(f"harness {harness!r}: {gate.source.path}: no prompt records "
                                "(the file holds none); add prompts or remove the harness "
                                "from gates.harnesses")
    limit = state.config.getoption("samples") or gate.samples
    return records[:limit]


@dataclass(frozen=True)
class HarnessCase:
    """One gate item's parameters: a prompt record, the repeat it is, and its id."""

    record: dict[str, Any]
    repeat: int
    id: str


def harness_cases(state: GateSession, harness: str) -> list[HarnessCase]:
    """The items of a harness, prompt by prompt with each prompt's repeats together; the
    id is the record's, with ``-r<k>`` under ``--repeats`` above 1. A test file's items and
    the plugin's own are made from this one list."""
    repeats = state.config.getoption("repeats")
    return [HarnessCase(record, k, f"{record['id']}-r{k}" if repeats > 1 else record["id"])
            for record in harness_records(state, harness) for k in range(repeats)]


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


def parametrize_records(metafunc: pytest.Metafunc) -> None:
    """The plugin's ``pytest_generate_tests``: one item per record. A bad prompt or canary
    file is a usage error of the session (exit 4), raised after collection: raised here,
    pytest would report a collection error of the test module instead (exit 2)."""
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
        cases = harness_cases(state, marker.args[0])
        if "loragate_repeat" in metafunc.fixturenames:
            metafunc.parametrize(("prompt_record", "loragate_repeat"),
                                 [(c.record, c.repeat) for c in cases], ids=[c.id for c in cases])
        else:  # a test that does not generate: each record once
            cases = [c for c in cases if c.repeat == 0]
            metafunc.parametrize("prompt_record", [c.record for c in cases],
                                 ids=[c.record["id"] for c in cases])
        done.add("prompt_record")
    for name, kind in (("canary_record", "canary"), ("forgetting_record", "forgetting")):
        if name in metafunc.fixturenames:
            records = canary_records(state, kind)
            metafunc.parametrize(name, records, ids=[r["id"] for r in records])
            done.add(name)
    if state.several and CANDIDATE_PARAM in metafunc.fixturenames:
        # Session-scoped, so each candidate's model opens once whatever the item order.
        candidates = state.candidates
        metafunc.parametrize(CANDIDATE_PARAM, [c.role for c in candidates], indirect=True,
                             scope="session", ids=[c.name for c in candidates])


def candidate_of(item: pytest.Item) -> str:
    """The backend role of the candidate an item judges (``model`` when there is one)."""
    if isinstance(item, PluginItem):
        return item.candidate
    callspec = getattr(item, "callspec", None)
    return callspec.params.get(CANDIDATE_PARAM, MODEL_ROLE) if callspec else MODEL_ROLE


def _item_name(base: str, record_id: str, candidate: Candidate, several: bool) -> str:
    return f"{base}[{record_id}-{candidate.name}]" if several else f"{base}[{record_id}]"


class PluginItem(pytest.Item):
    """An item the plugin makes from a record when no test file covers it. ``fixturenames``
    names the fixtures a test file's item would use for the same work, so the plugin opens
    the same models and generates the same answers ahead for both."""

    fixturenames: tuple[str, ...] = ()

    def __init__(self, *, record: dict[str, Any], repeat: int = 0,
                 candidate: str = MODEL_ROLE, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record = record
        self.repeat = repeat
        self.candidate = candidate  # the backend role of the model judged

    def answerer(self, role: str, metrics: MetricsRecorder) -> Callable[..., Any]:
        """Answers from the candidate (``role="model"``) or from the baseline."""
        state = session_of(self.config)
        settings = state.settings
        repeat = self.repeat if role == "model" else 0
        options = generation_options(self.config, settings, repeat)
        digest = "digest" if role == "model" else "baseline_digest"
        backend = state.backend(self.candidate if role == "model" else role)
        return make_answerer(backend, options, metrics, digest,
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
                   backends=(state.backend(self.candidate), state.backend("baseline")),
                   system_prompt=state.settings.data_args.system_prompt)

    def reportinfo(self):
        canaries = session_of(self.config).settings.canaries
        return (canaries.file if self.kind == "canary" else canaries.forgetting_file), None, \
            self.name


def make_canary_items(session: pytest.Session, state: GateSession, kind: str
                      ) -> list[CanaryItem]:
    """One item per record of the canary file (``kind="canary"``) or of the forgetting probe."""
    items = []
    for candidate in state.candidates:
        for record in canary_records(state, kind):
            name = _item_name(kind, record["id"], candidate, state.several)
            item = CanaryItem.from_parent(session, name=name, nodeid=name, kind=kind,
                                          record=record, candidate=candidate.role)
            item.add_marker(pytest.mark.canary)
            items.append(item)
    return items


def make_harness_items(session: pytest.Session, state: GateSession, harness: str
                       ) -> list[HarnessItem]:
    items = []
    for candidate in state.candidates:
        for case in harness_cases(state, harness):
            name = _item_name(harness, case.id, candidate, state.several)
            item = HarnessItem.from_parent(session, name=name, nodeid=name, harness=harness,
                                           record=case.record, repeat=case.repeat,
                                           candidate=candidate.role)
            item.add_marker(pytest.mark.harness(harness))
            items.append(item)
    return items
