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
from dataclasses import asdict, replace
from typing import Any

from loragate.exit_codes import ExitCode
from loragate.gating.outcomes import (
    CANARY_KINDS,
    CanaryOutcome,
    CanarySummary,
    CheckOutcome,
    HarnessSummary,
    SampleOutcome,
    canaries_from_json,
    checks_from_json,
    flaky_items,
    group_by_prompt,
    prompt_key,
    samples_from_json,
)
from loragate.gating.statistics import (
    EPS,
    GateConfidence,
    classifier_scores,
    clustered_interval,
    f1_lower_bound,
    mcnemar_exact,
    positive_label,
    power_statement,
    summarise_probes,
    wilson_interval,
)
from loragate.harnesses.registry import GateRule

SCHEMA = "loragate.verdict/1"
# The exit status of a gate session is its verdict (docs/verdict.md). 6 is none of pytest's
# own (0-5), so a CI job can tell "the model is bad" (1) from "the gate could not run" (6).
EXIT_CLEARED = int(ExitCode.CLEARED)
EXIT_BLOCKED = int(ExitCode.BLOCKED)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_NOTHING_TO_GATE = int(ExitCode.NOTHING_TO_GATE)
EXIT_GATE_ERROR = int(ExitCode.GATE_ERROR)
EXIT_STATUS = {"cleared": EXIT_CLEARED, "blocked": EXIT_BLOCKED, "error": EXIT_GATE_ERROR}


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
    groups = group_by_prompt(samples)
    repeated = any(len(group) > 1 for group in groups.values())
    summary = HarnessSummary(
        harness=harness, gate=rule.gate, metric=rule.metric, threshold=rule.threshold,
        n=n, executed=n - skipped, passed=passed, errors=errors, skipped=skipped,
        pass_rate=pass_rate, wilson_low=low, wilson_high=high,
        score=0.0, gate_passed=False, decided_early=skipped > 0,
        prompts=len(groups), repeats=max((len(g) for g in groups.values()), default=1),
        flaky=flaky_items(groups),
    )
    if rule.metric == "pass_rate":
        summary.interval_low, summary.interval_high = low, high
    # With repeats the count that decides what the gate can reach is the prompts'.
    power = power_statement(len(groups) if repeated else n, rule.threshold, confidence,
                            rule.metric, "prompts" if repeated else "samples")
    summary.can_pass, summary.min_samples_to_pass = power.can_pass, power.min_samples_to_pass
    summary.failures_allowed, summary.power = power.failures_allowed, power.statement
    if n == 0:
        summary.reason = "no samples"
        summary.evaluated = False
        return summary
    if rule.metric == "f1":
        return _summarise_classifier(summary, samples, rule, confidence, repeated)
    # Errors count as failures in the reported figures; the best case (errors as passes) only
    # says whether they could have changed the gate.
    best_rate = (passed + errors) / n
    if repeated:
        interval = clustered_interval([(sum(s.passed for s in g), len(g))
                                       for g in groups.values()])
        summary.interval_low, summary.interval_high = interval.low, interval.high
        summary.interval_method = "wilson at the effective n (bootstrap over prompts)"
        summary.design_effect, summary.effective_n = interval.design_effect, interval.effective_n
        best_low = clustered_interval([(sum(s.passed or s.error for s in g), len(g))
                                       for g in groups.values()]).low
    else:
        best_low = wilson_interval(passed + errors, n)[0]
    value = pass_rate if confidence == "point" else summary.interval_low
    best_value = best_rate if confidence == "point" else best_low
    summary.score = 100 * pass_rate
    summary.best_score = 100 * best_rate
    _decide(summary, value, best_value, "pass rate", confidence, rule)
    return summary


def _summarise_classifier(summary: HarnessSummary, samples: list[SampleOutcome],
                          rule: GateRule, confidence: GateConfidence,
                          repeated: bool = False) -> HarnessSummary:
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
    positive = positive_label(expected, rule.positive)
    worst = [s.predicted if not s.error and s.predicted else _other(s.expected, positive)
             for s in labelled]
    best = [s.predicted if not s.error and s.predicted else s.expected for s in labelled]
    p, r, f = classifier_scores(expected, worst, positive)
    prompts = [prompt_key(s) for s in labelled] if repeated else None
    summary.precision, summary.recall, summary.f1 = p, r, f
    summary.f1_low = f1_lower_bound(expected, worst, positive, prompts=prompts)
    summary.interval_low, summary.interval_high = summary.f1_low, None
    summary.interval_method = "bootstrap over " + ("prompts" if repeated else "samples")
    best_f = classifier_scores(expected, best, positive)[2]
    value = f if confidence == "point" else summary.f1_low
    best_value = best_f if confidence == "point" else f1_lower_bound(expected, best, positive,
                                                                     prompts=prompts)
    summary.score = 100 * f
    summary.best_score = 100 * best_f
    _decide(summary, value, best_value, "F1", confidence, rule)
    return summary


def _decide(summary: HarnessSummary, value: float, best_value: float, metric: str,
            confidence: GateConfidence, rule: GateRule) -> None:
    summary.gate_passed = value >= rule.threshold - EPS
    summary.undecided = not summary.gate_passed and best_value >= rule.threshold - EPS
    bound = "" if confidence == "point" else " (lower 95% bound)"
    if confidence == "lower" and summary.design_effect is not None:
        bound = " (lower 95% bound, clustered by prompt)"
    relation = ">=" if summary.gate_passed else "<"
    summary.reason = f"{metric}{bound} {value:.3f} {relation} threshold {rule.threshold:.3f}"
    if summary.undecided:
        summary.reason += (f"; undecided: {summary.errors} sample(s) could not be judged and "
                           f"could reach {best_value:.3f}")
    if summary.decided_early:
        summary.reason += f"; gate decided early, {summary.skipped} sample(s) not run"
    if not summary.can_pass:
        summary.reason += f"; {summary.power}"


def _other(label: str | None, positive: str) -> str:
    """A label other than ``label``: the wrong answer an error counts as."""
    if label == positive:
        return f"not {positive}"
    return positive


def summarise_canaries(canaries: list[CanaryOutcome], *, require_all: bool = True,
                       kind: str = "canary", blocking: bool = True) -> CanarySummary:
    """Summarise the outcomes of one ``kind``; ``passed`` applies the rule: no regression and,
    with ``require_all``, every task passed on the model."""
    wrong = sorted({c.kind for c in canaries} - {kind})
    if wrong:
        raise ValueError(f"summarise_canaries(kind={kind!r}) got outcomes of kind {wrong}")
    failed = sorted(c.canary_id for c in canaries if not c.model_passed)
    regressions = sorted(c.canary_id for c in canaries if c.regressed)
    improvements = sorted(c.canary_id for c in canaries if c.model_passed and not c.baseline_passed)
    p_value = mcnemar_exact(len(regressions), len(improvements))
    all_passed, no_regression = not failed, not regressions
    return CanarySummary(
        kind=kind,
        n=len(canaries),
        model_passed=sum(c.model_passed for c in canaries),
        baseline_passed=sum(c.baseline_passed for c in canaries),
        failed=failed,
        regressions=regressions,
        improvements=improvements,
        mcnemar_p=p_value,
        all_passed=all_passed,
        no_regression=no_regression,
        require_all=require_all,
        blocking=blocking,
        passed=no_regression and (all_passed or not require_all),
        items=[asdict(c) | {"regressed": c.regressed} for c in sorted(canaries, key=_canary_key)],
        probes=summarise_probes(canaries),
    )


def canary_blocking_reasons(canaries: CanarySummary | None,
                            forgetting: CanarySummary | None) -> list[str]:
    """Why the canary rule or a blocking forgetting probe stops the verdict, part by part."""
    reasons: list[str] = []
    if canaries is not None:
        if canaries.require_all:
            reasons += [f"canary {cid} failed (require_all)" for cid in canaries.failed]
        if canaries.regressions:
            reasons.append(f"canary regression(s): {', '.join(canaries.regressions)}")
    if forgetting is not None and forgetting.blocking and forgetting.regressions:
        reasons.append(f"forgetting probe regression(s): {', '.join(forgetting.regressions)}")
    return reasons


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
    require_all: bool = True,
    forgetting_blocks: bool = False,
) -> dict[str, Any]:
    """The verdict section of the JSON: per-harness summaries, overall score, blocking reasons.

    ``blocked`` when the model was judged and failed; ``error`` when nothing failed for sure
    but samples or items that could not be judged (``errors``, error samples) leave a gate
    undecided; else ``cleared``.

    ``canaries`` holds both kinds of outcome: the canaries (the plan's rule: every one passes
    when ``require_all``, none regresses) and the forgetting probe (reported; it blocks on a
    regression only with ``forgetting_blocks``).
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
    overall_passed = bool(scored) and overall >= overall_target - EPS
    if not overall_passed:
        reason = f"overall score {overall:.1f} < target {overall_target:.1f}"
        if scored and best_overall >= overall_target - EPS:
            undecided.append(f"{reason}, undecided: errors could lift it to {best_overall:.1f}")
        elif scored or not any(h.undecided for h in harnesses.values()):
            blocking.append(reason)
    by_kind = {kind: [c for c in canaries or [] if c.kind == kind] for kind in CANARY_KINDS}
    canary_summary = summarise_canaries(by_kind["canary"], require_all=require_all) \
        if by_kind["canary"] else None
    forgetting_summary = summarise_canaries(
        by_kind["forgetting"], require_all=False, kind="forgetting",
        blocking=forgetting_blocks) if by_kind["forgetting"] else None
    blocking += canary_blocking_reasons(canary_summary, forgetting_summary)
    failed_checks = [c for c in checks or [] if c.outcome in ("failed", "error")]
    blocking.extend(f"{c.kind} check failed: {c.nodeid}: {c.reason}" for c in failed_checks)
    verdict = "blocked" if blocking else ("error" if undecided else "cleared")
    return {
        "harnesses": {name: asdict(h) for name, h in sorted(harnesses.items())},
        "overall": {"score": overall, "target": overall_target, "passed": overall_passed},
        "canaries": asdict(canary_summary) if canary_summary else None,
        "forgetting": asdict(forgetting_summary) if forgetting_summary else None,
        "checks": [asdict(c) for c in sorted(checks or [], key=lambda c: c.nodeid)],
        "gate_confidence": confidence,
        "verdict": verdict,
        "blocking_reasons": blocking,
        "undecided_reasons": undecided,
    }


def inputs_hash(data_hash: str, rules: dict[str, GateRule], overall_target: float,
                canary_rule: dict[str, bool] | None = None) -> str:
    """Hash of the data and the rules (thresholds, target, canary rule) a verdict was made
    with."""
    payload = json.dumps(
        {
            "data": data_hash,
            "rules": {k: asdict(v) for k, v in sorted(rules.items())},
            "overall_target": overall_target,
            **({"canary_rule": canary_rule} if canary_rule else {}),
        },
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def rules_from_json(thresholds: dict[str, Any]) -> dict[str, GateRule]:
    return {name: GateRule(**value) for name, value in thresholds.items()}


def recorded_canary_settings(document: dict[str, Any], require_all: bool | None,
                              forgetting_blocks: bool | None) -> tuple[bool, bool]:
    """The canary settings a recomputed verdict uses: the ones given, else the recorded ones,
    else the defaults (a verdict older than the settings records neither)."""
    if require_all is None:
        require_all = (document.get("canaries") or {}).get("require_all", True)
    if forgetting_blocks is None:
        forgetting_blocks = (document.get("forgetting") or {}).get("blocking", False)
    return bool(require_all), bool(forgetting_blocks)


def reverdict(document: dict[str, Any], *, thresholds: dict[str, float] | None = None,
              overall_target: float | None = None,
              confidence: GateConfidence | None = None, require_all: bool | None = None,
              forgetting_blocks: bool | None = None) -> dict[str, Any]:
    """Recompute a verdict document from its recorded samples with changed settings (canary
    settings left as None: as recorded, or the defaults for an older verdict)."""
    rules = rules_from_json(document["thresholds"])
    for name, value in (thresholds or {}).items():
        if name not in rules:
            raise KeyError(f"no harness '{name}' in this verdict; known: {sorted(rules)}")
        rules[name] = replace(rules[name], threshold=value)
    target = document["overall"]["target"] if overall_target is None else overall_target
    conf = confidence or document.get("gate_confidence", "point")
    require_all, forgetting_blocks = recorded_canary_settings(document, require_all,
                                                               forgetting_blocks)
    recomputed = compute_verdict(
        samples_from_json(document["samples"]), rules,
        canaries=canaries_from_json(document.get("canaries"))
        + canaries_from_json(document.get("forgetting")),
        checks=checks_from_json(document.get("checks")),
        overall_target=target, confidence=conf,
        errors=document.get("gate_errors"),
        require_all=require_all, forgetting_blocks=forgetting_blocks,
    )
    updated = dict(document)
    updated.update(recomputed)
    if document.get("verdict") == "error" and not document.get("samples"):
        # An aborted session judged nothing: other thresholds cannot make that a finding.
        updated.update(verdict="error", blocking_reasons=[])
    updated["exit_status"] = EXIT_STATUS[updated["verdict"]]
    updated["thresholds"] = {k: asdict(v) for k, v in sorted(rules.items())}
    updated["inputs_hash"] = inputs_hash(
        document.get("data_hash", ""), rules, target,
        {"require_all": require_all, "forgetting_blocks": forgetting_blocks})
    updated["reverdicted_from"] = document.get("inputs_hash")
    return updated
