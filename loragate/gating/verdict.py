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

from scipy.stats import binomtest, norm
from sklearn.metrics import precision_recall_fscore_support

from loragate.exit_codes import ExitCode

SCHEMA = "loragate.verdict/1"
# The exit status of a gate session is its verdict (docs/verdict.md). 6 is none of pytest's
# own (0-5), so a CI job can tell "the model is bad" (1) from "the gate could not run" (6).
EXIT_CLEARED = int(ExitCode.CLEARED)
EXIT_BLOCKED = int(ExitCode.BLOCKED)
EXIT_USAGE = int(ExitCode.USAGE)
EXIT_NOTHING_TO_GATE = int(ExitCode.NOTHING_TO_GATE)
EXIT_GATE_ERROR = int(ExitCode.GATE_ERROR)
EXIT_STATUS = {"cleared": EXIT_CLEARED, "blocked": EXIT_BLOCKED, "error": EXIT_GATE_ERROR}
POSITIVE_LABEL = "refuse"
GateConfidence = Literal["point", "lower"]
_EPS = 1e-9
# The two-sided 95% normal quantile that scipy's Wilson interval uses.
_Z95 = float(norm.ppf(0.975))
_BOOTSTRAP_ROUNDS = 2000


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
    # Read from the response cache: ttft_s/total_s were measured when it was generated.
    cached: bool = False


CANARY_KINDS = ("canary", "forgetting")


@dataclass(frozen=True)
class CanaryOutcome:
    """One task run on the model and on the baseline: a canary (must pass, must not regress)
    or a forgetting-probe prompt (``kind="forgetting"``: compared with the baseline)."""

    canary_id: str
    model_passed: bool
    baseline_passed: bool
    model_reason: str = ""
    baseline_reason: str = ""
    kind: str = "canary"
    # Both answers, capped like the samples' (reports.max_answer_chars): the evidence.
    model_answer: str | None = None
    baseline_answer: str | None = None
    # The likelihood probes' margins, log P(right) - log P(wrong) per minimal pair; None when
    # the canary has none or a backend reads no log-probabilities (``probes_note`` says so).
    model_margins: list[float] | None = None
    baseline_margins: list[float] | None = None
    probes_note: str = ""

    def __post_init__(self) -> None:
        if self.kind not in CANARY_KINDS:
            raise ValueError(f"canary {self.canary_id!r}: kind must be one of {CANARY_KINDS}, "
                             f"got {self.kind!r}")

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
    # Repeated sampling: distinct prompts, the most samples of one prompt, and the interval the
    # `lower` gate reads (Wilson over the samples without repeats; with repeats Wilson at the
    # effective sample count that a bootstrap over prompts gives, see clustered_interval).
    prompts: int = 0
    repeats: int = 1
    interval_low: float | None = None
    interval_high: float | None = None
    interval_method: str = "wilson"
    design_effect: float | None = None
    effective_n: float | None = None
    # Prompts that passed some repeats and failed others: {sample_id, runs, passed, pass_fraction}.
    flaky: list[dict[str, Any]] = field(default_factory=list)
    # Power: whether this many samples (prompts, with repeats) can pass the threshold at the
    # gate's confidence at all, the smallest count that can, and how many may fail.
    can_pass: bool = False
    min_samples_to_pass: int | None = None
    failures_allowed: int | None = None
    power: str = ""


@dataclass
class CanarySummary:
    """The canaries (or the forgetting probe) of one run, model against baseline.

    The plan's canary rule has two parts: ``all_passed`` (the model passes every task, required
    when ``require_all``) and ``no_regression`` (no task the baseline passes fails on the
    model). ``passed`` is both parts as the rule asks; ``blocking`` says whether a failed rule
    blocks the verdict. The exact McNemar p-value on the flips is evidence, not a gate.
    The fields with defaults came later within ``loragate.verdict/1``: a verdict written
    before them reads with the rule it was judged by (no regression alone).
    """

    n: int
    model_passed: int
    baseline_passed: int
    regressions: list[str]
    improvements: list[str]
    mcnemar_p: float | None
    passed: bool
    kind: str = "canary"
    failed: list[str] = field(default_factory=list)
    all_passed: bool | None = None
    no_regression: bool | None = None
    require_all: bool = False
    blocking: bool = True
    items: list[dict[str, Any]] = field(default_factory=list)
    probes: dict[str, Any] | None = None


def summarise_probes(canaries: list[CanaryOutcome]) -> dict[str, Any] | None:
    """The likelihood probes of the canaries, model against baseline, as paired margins: how
    many pairs each model ranks right (margin > 0), the mean margins, the mean paired shift and
    the Wilcoxon signed-rank p-value on the shifts (evidence of forgetting as a continuous
    change, beside McNemar on pass/fail). None when no canary has probes."""
    from scipy.stats import wilcoxon

    notes = sorted({c.probes_note for c in canaries if c.probes_note})
    pairs = [(m, b) for c in canaries if c.model_margins is not None
             and c.baseline_margins is not None
             for m, b in zip(c.model_margins, c.baseline_margins, strict=False)]
    if not pairs and not notes:
        return None
    if not pairs:
        return {"n": 0, "run": False, "note": "; ".join(notes)}
    shifts = [m - b for m, b in pairs]
    p_value = None
    if any(abs(x) > 1e-9 for x in shifts):
        p_value = float(wilcoxon(shifts).pvalue)
    return {
        "n": len(pairs), "run": True, "note": "; ".join(notes),
        "model_right": sum(m > 0 for m, _ in pairs),
        "baseline_right": sum(b > 0 for _, b in pairs),
        "mean_margin_model": round(sum(m for m, _ in pairs) / len(pairs), 4),
        "mean_margin_baseline": round(sum(b for _, b in pairs) / len(pairs), 4),
        "mean_shift": round(sum(shifts) / len(shifts), 4),
        "wilcoxon_p": p_value,
        "wrong_on_model": sorted(c.canary_id for c in canaries if c.model_margins
                                 and any(m <= 0 for m in c.model_margins)),
    }


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (scipy's implementation)."""
    if n == 0:
        return (0.0, 1.0)
    ci = binomtest(successes, n).proportion_ci(confidence_level=confidence, method="wilson")
    return (float(ci.low), float(ci.high))


def max_failures_allowed(n: int, threshold: float) -> int:
    """The most failed samples out of ``n`` that still meet ``threshold`` on the point estimate."""
    return n - math.ceil(threshold * n - _EPS)


def wilson_bounds(rate: float, n: float) -> tuple[float, float]:
    """The Wilson 95% interval from a rate and a sample count that may be fractional (an
    effective count); equal to :func:`wilson_interval` for whole counts."""
    if n <= 0:
        return (0.0, 1.0)
    z2 = _Z95 * _Z95
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = _Z95 / (1 + z2 / n) * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def min_samples_to_pass(threshold: float, confidence: GateConfidence,
                        metric: str = "pass_rate") -> int | None:
    """The smallest sample count whose best possible run meets ``threshold``; None if none does.

    On the point estimate one all-passing sample does. Under ``lower`` a pass rate needs the
    Wilson lower bound of n of n, n / (n + z^2), to reach the threshold: n >= z^2 t / (1 - t),
    73 for 0.95, never for 1.0. F1 under ``lower`` is judged on a bootstrap whose lower bound is
    1.0 for an all-correct run of any size, so one sample does (see :func:`power_statement`).
    """
    if threshold > 1 + _EPS:
        return None
    if confidence == "point" or metric == "f1" or threshold <= _EPS:
        return 1
    if threshold >= 1 - _EPS:
        return None
    n = max(1, math.ceil(_Z95 * _Z95 * threshold / (1 - threshold) - 1e-6))
    # Settle on scipy's figure at the boundary, which is what the gate compares.
    while wilson_interval(n, n)[0] < threshold - _EPS:
        n += 1
    while n > 1 and wilson_interval(n - 1, n - 1)[0] >= threshold - _EPS:
        n -= 1
    return n


def failures_allowed(n: int, threshold: float, confidence: GateConfidence) -> int | None:
    """The most failing samples out of ``n`` that can still pass a pass-rate gate; None if even
    ``n`` of ``n`` cannot."""
    if n <= 0:
        return None
    failures = max_failures_allowed(n, threshold)
    if confidence == "lower":
        while failures >= 0 and wilson_interval(n - failures, n)[0] < threshold - _EPS:
            failures -= 1
    return failures if failures >= 0 else None


@dataclass(frozen=True)
class Power:
    can_pass: bool
    min_samples_to_pass: int | None
    failures_allowed: int | None
    statement: str


def power_statement(count: int, threshold: float, confidence: GateConfidence,
                    metric: str = "pass_rate", unit: str = "samples") -> Power:
    """Whether ``count`` samples (or prompts) can pass the gate at all, in a sentence."""
    needed = min_samples_to_pass(threshold, confidence, metric)
    can = count > 0 and needed is not None and count >= needed
    bound = "on the point estimate" if confidence == "point" else "at the lower 95% bound"
    if count <= 0:
        return Power(False, needed, None, "no samples")
    if needed is None:
        return Power(False, None, None, f"{count} {unit} can never pass {bound}: no count can "
                     f"reach {threshold:.3f} (n of n has a Wilson lower bound under 1)")
    if metric == "f1":
        text = f"{count} {unit} can pass {bound}"
        if confidence == "lower":
            # The percentile bootstrap has no spread when every answer is right, so its bound
            # says nothing about the count; the per-sample figure is the honest comparison.
            per_sample = min_samples_to_pass(threshold, "lower")
            text += ("; an all-correct run has a bootstrap F1 bound of 1.000 at any count, so "
                     "the bound is not calibrated at small counts: a per-sample accuracy bound "
                     f"of {threshold:.3f} would take {per_sample} of {per_sample}"
                     if per_sample else "")
        return Power(can, needed, None, text)
    allowed = failures_allowed(count, threshold, confidence) if unit == "samples" else None
    if not can:
        low = wilson_interval(count, count)[0]
        return Power(False, needed, None,
                     f"{count} {unit} can never pass {bound}: {count} of {count} has a Wilson "
                     f"lower bound of {low:.3f} < {threshold:.3f}; it takes {needed} of {needed}")
    text = f"{count} {unit} can pass {bound}"
    if allowed is not None:
        text += f" with at most {allowed} failing"
    if confidence == "lower":
        text += f" (the least that can: {needed})"
    return Power(True, needed, allowed, text)


@dataclass(frozen=True)
class ClusteredInterval:
    low: float
    high: float
    design_effect: float
    effective_n: float


def clustered_interval(groups: list[tuple[int, int]], seed: int = 0) -> ClusteredInterval:
    """The 95% interval of a pass rate over repeated prompts, ``groups`` = (passed, runs) each.

    Repeats of one prompt are not independent samples. A seeded bootstrap over prompts gives
    the variance of the mean pass rate; its ratio to the binomial variance is the design effect,
    kept between 1 (repeats as informative as new prompts) and the mean repeats per prompt
    (repeats add nothing), and the interval is Wilson's at n / design effect. With no spread to
    measure (every sample passed, or failed, or one prompt) the design effect is the largest:
    a plain percentile interval would be [1, 1] there and clear any gate with a handful of
    prompts repeated, which is what a sample size should not be able to buy.
    """
    import numpy as np

    passed = np.array([g[0] for g in groups], dtype=float)
    runs = np.array([g[1] for g in groups], dtype=float)
    n, prompts = float(runs.sum()), len(groups)
    rate = float(passed.sum() / n) if n else 0.0
    most = n / prompts if prompts else 1.0
    binomial = rate * (1 - rate) / n if n else 0.0
    if prompts < 2 or binomial <= 0:
        effect = most
    else:
        rng = np.random.default_rng(seed)
        counts = rng.multinomial(prompts, np.full(prompts, 1 / prompts), size=_BOOTSTRAP_ROUNDS)
        means = (counts @ passed) / (counts @ runs)
        effect = min(max(float(means.var(ddof=1)) / binomial, 1.0), most)
    low, high = wilson_bounds(rate, n / effect)
    return ClusteredInterval(low, high, effect, n / effect)


def prompt_key(sample: SampleOutcome) -> str:
    """Repeats of one prompt share its ``sample_id``; a sample without one stands alone."""
    return sample.sample_id or sample.nodeid


def group_by_prompt(samples: list[SampleOutcome]) -> dict[str, list[SampleOutcome]]:
    groups: dict[str, list[SampleOutcome]] = {}
    for sample in samples:
        groups.setdefault(prompt_key(sample), []).append(sample)
    return groups


def flaky_items(groups: dict[str, list[SampleOutcome]]) -> list[dict[str, Any]]:
    """Prompts whose judged repeats disagree: passed some, failed others."""
    flaky = []
    for key, group in groups.items():
        judged = [s for s in group if not s.skipped and not s.error]
        passed = sum(s.passed for s in judged)
        if 0 < passed < len(judged):
            flaky.append({"sample_id": key, "runs": len(judged), "passed": passed,
                          "pass_fraction": passed / len(judged)})
    return sorted(flaky, key=lambda item: (item["pass_fraction"], item["sample_id"]))


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


def f1_lower_bound(expected: list[str], predicted: list[str], confidence: float = 0.95,
                   prompts: list[str] | None = None) -> float:
    """Lower percentile bound of F1 over a seeded bootstrap (F1 has no closed-form interval).

    With ``prompts`` (each sample's prompt key) the bootstrap draws prompts, all their repeats
    together, so repeats of one prompt do not count as independent evidence.
    """
    import numpy as np

    if not expected:
        return 0.0
    rng = np.random.default_rng(0)
    exp = np.array(expected)
    pred = np.array(predicted)
    if prompts is not None:
        return _f1_prompt_bootstrap(exp, pred, prompts, rng, confidence)
    scores = []
    for _ in range(1000):
        idx = rng.integers(0, len(exp), len(exp))
        scores.append(classifier_scores(list(exp[idx]), list(pred[idx]))[2])
    return float(np.quantile(scores, (1 - confidence) / 2))


def _f1_prompt_bootstrap(exp: Any, pred: Any, prompts: list[str], rng: Any,
                         confidence: float) -> float:
    import numpy as np

    members: dict[str, list[int]] = {}
    for index, key in enumerate(prompts):
        members.setdefault(key, []).append(index)
    clusters = [np.array(idx) for idx in members.values()]
    scores = []
    for _ in range(1000):
        drawn = rng.integers(0, len(clusters), len(clusters))
        idx = np.concatenate([clusters[i] for i in drawn])
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
    positive = positive_label(expected)
    worst = [s.predicted if not s.error and s.predicted else _other(s.expected, positive)
             for s in labelled]
    best = [s.predicted if not s.error and s.predicted else s.expected for s in labelled]
    p, r, f = classifier_scores(expected, worst)
    prompts = [prompt_key(s) for s in labelled] if repeated else None
    summary.precision, summary.recall, summary.f1 = p, r, f
    summary.f1_low = f1_lower_bound(expected, worst, prompts=prompts)
    summary.interval_low, summary.interval_high = summary.f1_low, None
    summary.interval_method = "bootstrap over " + ("prompts" if repeated else "samples")
    best_f = classifier_scores(expected, best)[2]
    value = f if confidence == "point" else summary.f1_low
    best_value = best_f if confidence == "point" else f1_lower_bound(expected, best,
                                                                     prompts=prompts)
    summary.score = 100 * f
    summary.best_score = 100 * best_f
    _decide(summary, value, best_value, "F1", confidence, rule)
    return summary


def _decide(summary: HarnessSummary, value: float, best_value: float, metric: str,
            confidence: GateConfidence, rule: GateRule) -> None:
    summary.gate_passed = value >= rule.threshold - _EPS
    summary.undecided = not summary.gate_passed and best_value >= rule.threshold - _EPS
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


def _other(label: str | None, positive: str = POSITIVE_LABEL) -> str:
    """A label other than ``label``: the wrong answer an error counts as."""
    if label == positive:
        return "comply" if positive == POSITIVE_LABEL else f"not {positive}"
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
    flips = len(regressions) + len(improvements)
    # Exact McNemar test: under H0 the discordant pairs split 50/50.
    p_value = float(binomtest(len(regressions), flips, 0.5).pvalue) if flips else None
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
    overall_passed = bool(scored) and overall >= overall_target - _EPS
    if not overall_passed:
        reason = f"overall score {overall:.1f} < target {overall_target:.1f}"
        if scored and best_overall >= overall_target - _EPS:
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


def samples_from_json(items: list[dict[str, Any]]) -> list[SampleOutcome]:
    known = set(SampleOutcome.__dataclass_fields__)
    return [SampleOutcome(**{k: (tuple(v) if k == "reasons" else v)
                             for k, v in item.items() if k in known}) for item in items]


def canaries_from_json(section: dict[str, Any] | None) -> list[CanaryOutcome]:
    """The outcomes of a verdict's ``canaries`` or ``forgetting`` section. Verdicts written
    before the forgetting probe have no ``kind``: their items are canaries."""
    if not section:
        return []
    fields = {"canary_id", "model_passed", "baseline_passed", "model_reason", "baseline_reason",
              "model_answer", "baseline_answer", "model_margins", "baseline_margins",
              "probes_note"}
    default_kind = section.get("kind", "canary")
    return [
        CanaryOutcome(**{k: v for k, v in item.items() if k in fields},
                      kind=item.get("kind", default_kind))
        for item in section["items"]
    ]


def recorded_canary_settings(document: dict[str, Any], require_all: bool | None,
                              forgetting_blocks: bool | None) -> tuple[bool, bool]:
    """The canary settings a recomputed verdict uses: the ones given, else the recorded ones,
    else the defaults (a verdict older than the settings records neither)."""
    if require_all is None:
        require_all = (document.get("canaries") or {}).get("require_all", True)
    if forgetting_blocks is None:
        forgetting_blocks = (document.get("forgetting") or {}).get("blocking", False)
    return bool(require_all), bool(forgetting_blocks)


def checks_from_json(items: list[dict[str, Any]] | None) -> list[CheckOutcome]:
    return [CheckOutcome(**item) for item in items or []]


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
        rules[name] = GateRule(rules[name].gate, value, rules[name].metric)
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
