"""From recorded outcomes to one deployment verdict.

Everything here is a pure function of the recorded outcomes and the gate settings, so a
verdict can be recomputed later with other thresholds (``loragate report --threshold``)
without generating anything again.

The verdict JSON (``schema: loragate.verdict/1``) is documented field by field in
``docs/verdict.md``.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from scipy.stats import binomtest
from sklearn.metrics import precision_recall_fscore_support

SCHEMA = "loragate.verdict/1"
# The exit status of a gate session is its verdict (docs/verdict.md). 6 is none of pytest's
# own (0-5), so a CI job can tell "the model is bad" (1) from "the gate could not run" (6).
EXIT_CLEARED = 0
EXIT_BLOCKED = 1
EXIT_USAGE = 4
EXIT_NOTHING_TO_GATE = 5
EXIT_GATE_ERROR = 6
EXIT_STATUS = {"cleared": EXIT_CLEARED, "blocked": EXIT_BLOCKED, "error": EXIT_GATE_ERROR}
POSITIVE_LABEL = "refuse"
GateConfidence = Literal["point", "lower"]
_EPS = 1e-9


@dataclass(frozen=True)
class SampleOutcome:
    """One harness sample: one parametrized test item."""

    nodeid: str
    harness: str
    passed: bool
    reason: str = ""
    sample_id: str | None = None
    expected: str | None = None
    predicted: str | None = None
    error: bool = False
    skipped: bool = False  # not run because the gate was already decided
    # The evidence a reviewer reads: what the model was asked and what it said.
    messages_digest: str | None = None
    answer: str | None = None  # capped at reports.max_answer_chars; the cut is marked
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    reasons: tuple[str, ...] = ()
    seed: int | None = None
    repeat: int = 0


@dataclass(frozen=True)
class CanaryOutcome:
    canary_id: str
    model_passed: bool
    baseline_passed: bool
    model_reason: str = ""
    baseline_reason: str = ""

    @property
    def regressed(self) -> bool:
        return self.baseline_passed and not self.model_passed


@dataclass(frozen=True)
class CheckOutcome:
    """A stage or smoke test (or any other test) that ran in the same session."""

    nodeid: str
    kind: str
    outcome: str  # passed | failed | skipped | error
    reason: str = ""


@dataclass(frozen=True)
class GateRule:
    gate: Literal["ship", "quality"]
    threshold: float
    metric: Literal["pass_rate", "f1"] = "pass_rate"


@dataclass
class HarnessSummary:
    harness: str
    gate: str
    metric: str
    threshold: float
    n: int
    executed: int
    passed: int
    errors: int
    skipped: int
    pass_rate: float
    wilson_low: float
    wilson_high: float
    score: float
    gate_passed: bool
    precision: float | None = None
    recall: float | None = None
    f1: float | None = None
    f1_low: float | None = None
    decided_early: bool = False
    reason: str = ""
    # Errors (samples that could not be judged) could tip the gate either way.
    undecided: bool = False
    evaluated: bool = True
    best_score: float = 0.0


@dataclass
class CanarySummary:
    n: int
    model_passed: int
    baseline_passed: int
    regressions: list[str]
    improvements: list[str]
    mcnemar_p: float | None
    passed: bool
    items: list[dict[str, Any]] = field(default_factory=list)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's implementation)."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def max_failures_allowed(n: int, threshold: float) -> int:
    """The most failed samples out of ``n`` that still meet ``threshold`` on the point estimate."""
    return n - math.ceil(threshold * n - _EPS)


def positive_label(expected: list[str]) -> str:
    """``refuse`` where it is a label (the refusal harness); else the first label in sorted
    order, so a project's own classifier harness has a stable positive class."""
    labels = sorted(set(expected))
    return POSITIVE_LABEL if POSITIVE_LABEL in labels or not labels else labels[0]


def classifier_scores(expected: list[str], predicted: list[str]) -> tuple[float, float, float]:
    """Precision, recall and F1 of the positive class (:func:`positive_label`; scikit-learn).

    Binary when the labels are two at most; a third label (a prediction outside the expected
    ones) makes it the positive class's one-vs-rest scores.
    """
    positive = positive_label(expected)
    p, r, f, _ = precision_recall_fscore_support(
        expected, predicted, labels=[positive], average=None, zero_division=0
    )
    return float(p[0]), float(r[0]), float(f[0])


def f1_lower_bound(expected: list[str], predicted: list[str], confidence: float = 0.95) -> float:
    """Lower percentile bound of F1 over a seeded bootstrap (F1 has no closed-form interval)."""
    import numpy as np

    if not expected:
        return 0.0
    rng = np.random.default_rng(0)
    exp = np.array(expected)
    pred = np.array(predicted)
    scores = []
    for _ in range(1000):
        idx = rng.integers(0, len(exp), len(exp))
        scores.append(classifier_scores(list(exp[idx]), list(pred[idx]))[2])
    return float(np.quantile(scores, (1 - confidence) / 2))


def summarise_harness(
    harness: str, samples: list[SampleOutcome], rule: GateRule, confidence: GateConfidence
) -> HarnessSummary:
    n = len(samples)
    skipped = sum(s.skipped for s in samples)
    passed = sum(s.passed for s in samples)
    errors = sum(s.error for s in samples)
    # Samples skipped because the gate was decided count as not passed: the gate already could
    # not reach its threshold whatever they would have given.
    pass_rate = passed / n if n else 0.0
    low, high = wilson_interval(passed, n)
    summary = HarnessSummary(
        harness=harness, gate=rule.gate, metric=rule.metric, threshold=rule.threshold,
        n=n, executed=n - skipped, passed=passed, errors=errors, skipped=skipped,
        pass_rate=pass_rate, wilson_low=low, wilson_high=high,
        score=0.0, gate_passed=False, decided_early=skipped > 0,
    )
    if n == 0:
        summary.reason = "no samples"
        summary.evaluated = False
        return summary
    if rule.metric == "f1":
        return _summarise_classifier(summary, samples, rule, confidence)
    # Errors count as failures in the reported figures; the best case (errors as passes) only
    # says whether they could have changed the gate.
    best_rate = (passed + errors) / n
    value = pass_rate if confidence == "point" else low
    best_value = best_rate if confidence == "point" else wilson_interval(passed + errors, n)[0]
    summary.score = 100 * pass_rate
    summary.best_score = 100 * best_rate
    _decide(summary, value, best_value, "pass rate", confidence, rule)
    return summary


def _summarise_classifier(summary: HarnessSummary, samples: list[SampleOutcome],
                          rule: GateRule, confidence: GateConfidence) -> HarnessSummary:
    labelled = [s for s in samples if not s.skipped and s.expected is not None]
    judged = [s for s in labelled if not s.error]
    if not judged:
        summary.evaluated = False
        summary.undecided = summary.errors > 0
        summary.reason = ("not evaluated: every labelled sample was an error" if summary.errors
                          else "not evaluated: no sample carries an expected label")
        return summary
    expected = [s.expected for s in labelled]
    # Worst case: an error is the wrong label; best case: the right one.
    positive = positive_label(expected)
    worst = [s.predicted if not s.error and s.predicted else _other(s.expected, positive)
             for s in labelled]
    best = [s.predicted if not s.error and s.predicted else s.expected for s in labelled]
    p, r, f = classifier_scores(expected, worst)
    summary.precision, summary.recall, summary.f1 = p, r, f
    summary.f1_low = f1_lower_bound(expected, worst)
    best_f = classifier_scores(expected, best)[2]
    value = f if confidence == "point" else summary.f1_low
    best_value = best_f if confidence == "point" else f1_lower_bound(expected, best)
    summary.score = 100 * f
    summary.best_score = 100 * best_f
    _decide(summary, value, best_value, "F1", confidence, rule)
    return summary


def _decide(summary: HarnessSummary, value: float, best_value: float, metric: str,
            confidence: GateConfidence, rule: GateRule) -> None:
    summary.gate_passed = value >= rule.threshold - _EPS
    summary.undecided = not summary.gate_passed and best_value >= rule.threshold - _EPS
    bound = "" if confidence == "point" else " (lower 95% bound)"
    relation = ">=" if summary.gate_passed else "<"
    summary.reason = f"{metric}{bound} {value:.3f} {relation} threshold {rule.threshold:.3f}"
    if summary.undecided:
        summary.reason += (f"; undecided: {summary.errors} sample(s) could not be judged and "
                           f"could reach {best_value:.3f}")
    if summary.decided_early:
        summary.reason += f"; gate decided early, {summary.skipped} sample(s) not run"


def _other(label: str | None, positive: str = POSITIVE_LABEL) -> str:
    """A label other than ``label``: the wrong answer an error counts as."""
    if label == positive:
        return "comply" if positive == POSITIVE_LABEL else f"not {positive}"
    return positive


def summarise_canaries(canaries: list[CanaryOutcome]) -> CanarySummary:
    regressions = sorted(c.canary_id for c in canaries if c.regressed)
    improvements = sorted(c.canary_id for c in canaries if c.model_passed and not c.baseline_passed)
    flips = len(regressions) + len(improvements)
    # Exact McNemar test: under H0 the discordant pairs split 50/50.
    p_value = float(binomtest(len(regressions), flips, 0.5).pvalue) if flips else None
    return CanarySummary(
        n=len(canaries),
        model_passed=sum(c.model_passed for c in canaries),
        baseline_passed=sum(c.baseline_passed for c in canaries),
        regressions=regressions,
        improvements=improvements,
        mcnemar_p=p_value,
        passed=not regressions,
        items=[asdict(c) | {"regressed": c.regressed} for c in sorted(canaries, key=_canary_key)],
    )


def _canary_key(c: CanaryOutcome) -> str:
    return c.canary_id


def compute_verdict(
    samples: list[SampleOutcome],
    rules: dict[str, GateRule],
    *,
    canaries: list[CanaryOutcome] | None = None,
    checks: list[CheckOutcome] | None = None,
    overall_target: float = 90.0,
    confidence: GateConfidence = "point",
    errors: list[str] | None = None,
) -> dict[str, Any]:
    """The verdict section of the JSON: per-harness summaries, overall score, blocking reasons.

    ``blocked`` when the model was judged and failed; ``error`` when nothing failed for sure
    but samples or items that could not be judged (``errors``, error samples) leave a gate
    undecided; else ``cleared``.
    """
    by_harness: dict[str, list[SampleOutcome]] = {}
    # Sorted so the result does not depend on arrival order (xdist workers finish in any order).
    for sample in sorted(samples, key=lambda s: s.nodeid):
        by_harness.setdefault(sample.harness, []).append(sample)
    blocking: list[str] = []
    undecided: list[str] = list(errors or [])
    harnesses: dict[str, HarnessSummary] = {}
    for name, rule in rules.items():
        harness_samples = by_harness.get(name, [])
        if not harness_samples:
            if rule.gate == "ship":
                blocking.append(f"ship gate '{name}' was not evaluated (no samples)")
            continue
        harnesses[name] = summarise_harness(name, harness_samples, rule, confidence)
    for name in sorted(set(by_harness) - set(rules)):
        blocking.append(f"harness '{name}' has samples but no gate settings")
    for summary in harnesses.values():
        if summary.gate != "ship" or summary.gate_passed:
            continue
        if summary.undecided:
            undecided.append(f"ship gate '{summary.harness}' undecided: {summary.reason}")
        elif not summary.evaluated:
            blocking.append(f"ship gate '{summary.harness}' was {summary.reason}")
        else:
            blocking.append(f"ship gate '{summary.harness}' failed: {summary.reason}")
    scored = [h for h in harnesses.values() if h.evaluated]
    overall = sum(h.score for h in scored) / len(scored) if scored else 0.0
    best_overall = sum(h.best_score for h in scored) / len(scored) if scored else 0.0
    overall_passed = bool(scored) and overall >= overall_target - _EPS
    if not overall_passed:
        reason = f"overall score {overall:.1f} < target {overall_target:.1f}"
        if scored and best_overall >= overall_target - _EPS:
            undecided.append(f"{reason}, undecided: errors could lift it to {best_overall:.1f}")
        elif scored or not any(h.undecided for h in harnesses.values()):
            blocking.append(reason)
    canary_summary = summarise_canaries(canaries) if canaries else None
    if canary_summary and not canary_summary.passed:
        blocking.append(f"canary regression(s): {', '.join(canary_summary.regressions)}")
    failed_checks = [c for c in checks or [] if c.outcome in ("failed", "error")]
    blocking.extend(f"{c.kind} check failed: {c.nodeid}: {c.reason}" for c in failed_checks)
    verdict = "blocked" if blocking else ("error" if undecided else "cleared")
    return {
        "harnesses": {name: asdict(h) for name, h in sorted(harnesses.items())},
        "overall": {"score": overall, "target": overall_target, "passed": overall_passed},
        "canaries": asdict(canary_summary) if canary_summary else None,
        "checks": [asdict(c) for c in sorted(checks or [], key=lambda c: c.nodeid)],
        "gate_confidence": confidence,
        "verdict": verdict,
        "blocking_reasons": blocking,
        "undecided_reasons": undecided,
    }


def inputs_hash(data_hash: str, rules: dict[str, GateRule], overall_target: float) -> str:
    """Hash of the data and the thresholds a verdict was made with."""
    payload = json.dumps(
        {
            "data": data_hash,
            "rules": {k: asdict(v) for k, v in sorted(rules.items())},
            "overall_target": overall_target,
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def rules_from_json(thresholds: dict[str, Any]) -> dict[str, GateRule]:
    return {name: GateRule(**value) for name, value in thresholds.items()}


def samples_from_json(items: list[dict[str, Any]]) -> list[SampleOutcome]:
    known = set(SampleOutcome.__dataclass_fields__)
    return [SampleOutcome(**{k: (tuple(v) if k == "reasons" else v)
                             for k, v in item.items() if k in known}) for item in items]


def canaries_from_json(section: dict[str, Any] | None) -> list[CanaryOutcome]:
    if not section:
        return []
    fields = {"canary_id", "model_passed", "baseline_passed", "model_reason", "baseline_reason"}
    return [
        CanaryOutcome(**{k: v for k, v in item.items() if k in fields})
        for item in section["items"]
    ]


def checks_from_json(items: list[dict[str, Any]] | None) -> list[CheckOutcome]:
    return [CheckOutcome(**item) for item in items or []]


def reverdict(document: dict[str, Any], *, thresholds: dict[str, float] | None = None,
              overall_target: float | None = None,
              confidence: GateConfidence | None = None) -> dict[str, Any]:
    """Recompute a verdict document from its recorded samples with changed settings."""
    rules = rules_from_json(document["thresholds"])
    for name, value in (thresholds or {}).items():
        if name not in rules:
            raise KeyError(f"no harness '{name}' in this verdict; known: {sorted(rules)}")
        rules[name] = GateRule(rules[name].gate, value, rules[name].metric)
    target = document["overall"]["target"] if overall_target is None else overall_target
    conf = confidence or document.get("gate_confidence", "point")
    recomputed = compute_verdict(
        samples_from_json(document["samples"]), rules,
        canaries=canaries_from_json(document.get("canaries")),
        checks=checks_from_json(document.get("checks")),
        overall_target=target, confidence=conf,
        errors=document.get("gate_errors"),
    )
    updated = dict(document)
    updated.update(recomputed)
    updated["thresholds"] = {k: asdict(v) for k, v in sorted(rules.items())}
    updated["inputs_hash"] = inputs_hash(document.get("data_hash", ""), rules, target)
    updated["reverdicted_from"] = document.get("inputs_hash")
    return updated
