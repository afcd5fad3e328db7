"""What a gate test contributes to the verdict: a sample, a canary pair, a metric.

Each recorder appends to ``item.user_properties`` (so records cross pytest-xdist workers);
the plugin reads them back at the end of the session (:mod:`loragate.gating.plugin`).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import pytest

from loragate.gating.outcomes import CanaryOutcome, SampleOutcome
from loragate.gating.session import session_of

SAMPLE_KEY = "loragate.sample"
CANARY_KEY = "loragate.canary"
METRIC_KEY = "loragate.metric"
COUNT_KEY = "loragate.count"
# A cause that stops a whole gate (a judge model that cannot be opened), raised inside one item:
# it travels like a sample so the controller names it once, with or without xdist workers.
GATE_ERROR_KEY = "loragate.gate_error"


@dataclass
class SampleRecorder:
    """Records one harness sample; a failed sample then fails its test item with the reason."""

    item: pytest.Item
    harness: str | None

    def gate_error(self, message: str) -> None:
        """Name a cause that stops the whole gate (the verdict lists it once, however many
        samples it hit); the sample itself is still recorded with :meth:`record`."""
        self.item.user_properties.append((GATE_ERROR_KEY, message))

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
            reason=reason, sample_id=sample_id or prompt_id(self.item), expected=expected,
            predicted=predicted,
            error=error, **(evidence or {}),
        )
        self.item.user_properties.append((SAMPLE_KEY, asdict(outcome)))
        if error:
            said = reason if reason.startswith("could not be judged") else (
                f"could not be judged: {reason}")
            pytest.fail(f"[{harness}] {said}", pytrace=False)
        if not passed:
            pytest.fail(f"[{harness}] {reason or 'sample failed'}", pytrace=False)


def prompt_id(item: pytest.Item) -> str | None:
    """The id of the prompt record a gate item judges (the plugin's own items carry their
    record, a test file's are parametrized with it): what pairs its outcome with another
    run's (or another candidate's) outcome on the same prompt."""
    record = getattr(item, "record", None)
    callspec = getattr(item, "callspec", None)
    if record is None and callspec is not None:
        record = callspec.params.get("prompt_record")
    return record.get("id") if isinstance(record, dict) else None


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


def cap_answer(text: str, limit: int) -> str:
    """The answer as kept in the verdict: at most ``limit`` characters, the cut marked."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… cut: {len(text) - limit} more characters]"
