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
from dataclasses import asdict
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from loragate.exit_codes import ExitCode
from loragate.gating.outcomes import (
    CANARY_KINDS,
    CanaryOutcome,
    CanarySummary,
    CheckOutcome,
    HarnessSummary,
    SampleOutcome,
    flaky_items,
    group_by_prompt,
    prompt_key,
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


class Overall(BaseModel):
    score: float
    target: float
    passed: bool


class Judgement(BaseModel):
    """What the rule decided from the outcomes: the per-harness summaries, the overall score,
    the canaries, the verdict with its reasons and its exit status. The verdict document
    (:class:`loragate.gating.document.VerdictDocument`) is this and what was judged."""

    model_config = ConfigDict(extra="forbid")

    verdict: Literal["cleared", "blocked", "error"] = Field(
        description="`blocked` when the model was judged and failed (a ship gate failed or was "
        "not evaluated, the overall score is under target, a canary failed (with "
        "`require_all`) or regressed, a blocking forgetting probe regressed, a check failed); "
        "else `error` when samples or items that could not be judged leave a gate undecided "
        "(errors counted as passes would clear it, counted as failures would not), or when the "
        "session stopped before judging anything; else `cleared`")
    blocking_reasons: list[str] = Field(
        default_factory=list, description="one line per reason the verdict is `blocked`")
    undecided_reasons: list[str] = Field(
        default_factory=list,
        description="one line per gate that errors left undecided, or why nothing could be "
        "judged (the reasons the verdict is `error`)")
    gate_confidence: Literal["point", "lower"] = Field(
        "point",
        description="`point` or `lower`: whether gates were judged on the point estimate or "
        "the interval's lower bound")
    harnesses: dict[str, HarnessSummary] = Field(
        description="per harness: `n` (samples), `executed`, `passed`, `errors` (samples "
        "whose generation or scoring raised; counted as not passed in `pass_rate` and "
        "`score`), `undecided` (the errors could tip the gate), `evaluated` (false for F1 with "
        "no judged sample: \"not evaluated\"), `best_score` (the score with errors counted as "
        "passes), `skipped` (not run after the gate was decided by `--fail-fast-gates`; they "
        "count as not passed), `pass_rate`, `wilson_low`/`wilson_high` (Wilson 95% interval), "
        "`precision`/`recall`/`f1`/`f1_low` (classifier harnesses, of the rule's `positive` "
        "class; `f1_low` is the 2.5% bootstrap percentile), `score` (pass rate or F1, × 100), "
        "`gate_passed`, `decided_early`, `reason`; and the power and repeats fields below")
    overall: Overall = Field(description="`score` (mean of the harness scores), `target`, "
                             "`passed`")
    canaries: CanarySummary | None = Field(
        None,
        description="the plan's canary rule: `n`, `model_passed`, `baseline_passed`, `failed` "
        "(ids the model fails), `regressions` (ids the baseline passes and the model fails), "
        "`improvements`, `mcnemar_p` (exact McNemar test on the discordant pairs, evidence "
        "only), `all_passed`, `no_regression`, `require_all` (every canary must pass: "
        "`canaries.require_all`, on by default), `passed` (no regression and, with "
        "`require_all`, all passed), `items` (each canary before/after, with both answers "
        "`model_answer`/`baseline_answer`, the likelihood probes' `model_margins`/"
        "`baseline_margins`), `probes` (the minimal pairs each model ranks right, mean margins, "
        "the mean paired shift and its Wilcoxon p-value; reported, not gated); null when no "
        "canary ran")
    forgetting: CanarySummary | None = Field(
        None,
        description="the forgetting probe (general knowledge, model against baseline), the "
        "same fields; `blocking` is `canaries.forgetting_blocks` (off by default: reported "
        "only); null when it did not run")
    checks: list[CheckOutcome] = Field(
        default_factory=list,
        description="stage (Step 1/2) and smoke tests of the session: `nodeid`, `kind`, "
        "`outcome`, `reason`")

    exit_status: int | None = Field(
        None, description="the exit status of this verdict (see below), always the "
        "`verdict`'s: a file cannot say `blocked` with 0")

    @model_validator(mode="after")
    def _exit_status_of_the_verdict(self) -> Judgement:
        if self.exit_status is None:
            self.exit_status = EXIT_STATUS[self.verdict]
        elif self.exit_status != EXIT_STATUS[self.verdict]:
            raise ValueError(f"exit_status {self.exit_status} is not the status of verdict "
                             f"{self.verdict!r} ({EXIT_STATUS[self.verdict]})")
        return self


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
    aborted: bool = False,
) -> Judgement:
    """Decide the verdict: per-harness summaries, overall score, blocking reasons.

    ``blocked`` when the model was judged and failed; ``error`` when nothing failed for sure
    but samples or items that could not be judged (``errors``, error samples) leave a gate
    undecided, or when the session was ``aborted`` before judging anything (what the gates
    would say for want of samples is then no finding about the model); else ``cleared``.

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
    if aborted:
        verdict, blocking, undecided = "error", [], list(errors or [])
    return Judgement(
        harnesses=dict(sorted(harnesses.items())),
        overall=Overall(score=overall, target=overall_target, passed=overall_passed),
        canaries=canary_summary, forgetting=forgetting_summary,
        checks=sorted(checks or [], key=lambda c: c.nodeid),
        gate_confidence=confidence, verdict=verdict,
        blocking_reasons=blocking, undecided_reasons=undecided)


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
