"""Re-judging a recorded verdict with today's judges, from the answers it holds: no model is
loaded and nothing is generated.

Each sample's answer is validated again by its harness (the prompt record read from the
config's prompt file, for its context), each canary's two answers by the canary file's current
check; then the verdict is recomputed with the recorded rules. An answer the verdict holds only
in part (cut at ``reports.max_answer_chars``) cannot be re-judged: its sample keeps the recorded
judgement and is counted in ``kept``. The result says what changed, sample by sample.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from loragate.gating.document import VerdictDocument, recorded_canary_settings
from loragate.gating.outcomes import CanaryOutcome, CanarySummary, canaries_from_json
from loragate.gating.verdict import compute_verdict

_CUT = re.compile(r"\n\[… cut: \d+ more characters\]\Z")


@dataclass
class RejudgeReport:
    judged: int = 0
    kept: list[str] = field(default_factory=list)  # ids whose answer was cut in the verdict
    flips: list[str] = field(default_factory=list)  # "id: pass -> fail"

    def summary(self) -> str:
        text = f"re-judged {self.judged} answers, {len(self.flips)} changed"
        if self.kept:
            text += (f"; {len(self.kept)} kept their recorded judgement (answer cut in the "
                     "verdict)")
        return text


def _whole(answer: str | None) -> str | None:
    """The answer, or None when the verdict holds only part of it."""
    if answer is None or _CUT.search(answer):
        return None
    return answer


def _records_by_id(settings: Any, harness: str) -> dict[str, dict[str, Any]]:
    from loragate.gating.prompts import harness_source, read_prompt_source

    source = harness_source(settings, harness)
    if not source.path.exists():
        return {}
    return {str(r.get("id")): r for r in read_prompt_source(source)}


def _validators(settings: Any, names: set[str]) -> dict[str, Any]:
    from loragate.harnesses.registry import BUILTINS, run_validator
    from loragate.judges import validator_of

    found = {}
    for name in sorted(names):
        spec = (settings.gates.spec(name) if name in settings.gates.harnesses
                else BUILTINS.get(name))
        if spec is None:
            raise KeyError(f"harness '{name}' of the verdict is neither built in nor in the "
                           "config; give the project's config with --config")
        function = validator_of(spec, settings)
        found[name] = lambda text, record, f=function: run_validator(f, text, record)
    return found


def rejudge(document: VerdictDocument, settings: Any
            ) -> tuple[VerdictDocument, RejudgeReport]:
    """``document`` re-judged with the current judges (see the module docstring)."""
    report = RejudgeReport()
    samples = document.samples
    validators = _validators(settings, {s.harness for s in samples})
    records = {name: _records_by_id(settings, name) for name in validators}
    rejudged = []
    for sample in samples:
        answer = _whole(sample.answer)
        if sample.error or sample.skipped or sample.answer is None:
            rejudged.append(sample)
            continue
        if answer is None:
            report.kept.append(sample.sample_id or sample.nodeid)
            rejudged.append(sample)
            continue
        record = dict(records[sample.harness].get(str(sample.sample_id), {}))
        if sample.expected is not None:
            record.setdefault("expected", sample.expected)
        result = validators[sample.harness](answer, record)
        report.judged += 1
        if result.passed != sample.passed:
            report.flips.append(f"{sample.harness}[{sample.sample_id}]: "
                                f"{_word(sample.passed)} -> {_word(result.passed)}")
        rejudged.append(replace(sample, passed=result.passed, reason=result.summary(),
                                predicted=result.predicted, reasons=tuple(result.reasons)))
    canaries = (_rejudge_canaries(document.canaries, settings, report)
                + _rejudge_canaries(document.forgetting, settings, report))
    require_all, forgetting_blocks = recorded_canary_settings(document, None, None)
    judgement = compute_verdict(
        rejudged, document.rules, canaries=canaries, checks=document.checks,
        overall_target=document.overall.target, confidence=document.gate_confidence,
        errors=document.gate_errors, require_all=require_all,
        forgetting_blocks=forgetting_blocks,
        # A session that aborted judged nothing: re-judging cannot make it a finding.
        aborted=document.verdict == "error" and not document.samples)
    updated = document.judged_with(
        judgement, samples=sorted(rejudged, key=lambda s: s.nodeid),
        judges=_calibrations(settings, rejudged, canaries, validators),
        reverdicted_from=document.inputs_hash)
    return updated, report


def _calibrations(settings: Any, samples: list[Any], canaries: list[CanaryOutcome],
                  validators: dict[str, Any]) -> dict[str, Any]:
    """Today's judges' figures: the recorded ones measured the judges the answers were judged
    with before, and a reader must see how far the judges behind the new verdict can be
    trusted."""
    from loragate.judges import session_calibrations

    # session_calibrations measures through a validator only the harnesses a judge model
    # decides, as configured; every other harness by its own validator.
    gated = sorted({s.harness for s in samples})
    canaries_run = any(o.kind == "canary" for o in canaries)
    return session_calibrations(settings, gated, canaries_run, validators)


def _rejudge_canaries(section: CanarySummary | None, settings: Any,
                      report: RejudgeReport) -> list[CanaryOutcome]:
    from loragate.canaries import check_canary, load_canaries

    outcomes = canaries_from_json(None if section is None else asdict(section))
    if not outcomes:
        return []
    canaries = settings.canaries
    path = canaries.file if outcomes[0].kind == "canary" else canaries.forgetting_file
    current = {str(r["id"]): r for r in load_canaries(path)} if path else {}
    rejudged = []
    for outcome in outcomes:
        record = current.get(outcome.canary_id)
        model, baseline = _whole(outcome.model_answer), _whole(outcome.baseline_answer)
        if record is None or model is None or baseline is None:
            report.kept.append(outcome.canary_id)
            rejudged.append(outcome)
            continue
        on_model, on_baseline = check_canary(record, model), check_canary(record, baseline)
        report.judged += 2
        for who, before, after in (("model", outcome.model_passed, on_model.passed),
                                   ("baseline", outcome.baseline_passed, on_baseline.passed)):
            if before != after:
                report.flips.append(f"{outcome.kind}[{outcome.canary_id}] on the {who}: "
                                    f"{_word(before)} -> {_word(after)}")
        rejudged.append(replace(outcome, model_passed=on_model.passed,
                                baseline_passed=on_baseline.passed,
                                model_reason=on_model.summary(),
                                baseline_reason=on_baseline.summary()))
    return rejudged


def _word(passed: bool) -> str:
    return "pass" if passed else "fail"
