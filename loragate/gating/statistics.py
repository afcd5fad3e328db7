"""The statistics a verdict is made of: Wilson intervals (closed form), the power of a sample
count, the interval of a pass rate over repeated prompts, classifier scores and their
bootstrap bound, the exact McNemar test on flips and the paired likelihood-probe shifts.

Pure functions of counts and labels; :mod:`loragate.gating.verdict` applies them to the rule
and :mod:`loragate.gating.compare` to two runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from scipy.stats import binomtest, norm
from sklearn.metrics import precision_recall_fscore_support

if TYPE_CHECKING:
    from loragate.gating.outcomes import CanaryOutcome

# The positive class of verdicts written before a rule named its own (the refusal harness's).
LEGACY_POSITIVE_LABEL = "refuse"
GateConfidence = Literal["point", "lower"]
EPS = 1e-9
_BOOTSTRAP_ROUNDS = 2000


def mcnemar_exact(pass_to_fail: int, fail_to_pass: int) -> float | None:
    """Two-sided exact McNemar p-value on the discordant pairs (under H0 they split 50/50);
    None when there are none."""
    flips = pass_to_fail + fail_to_pass
    if flips == 0:
        return None
    return float(binomtest(pass_to_fail, flips, 0.5).pvalue)


def wilson_interval(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion."""
    return wilson_bounds(successes / n if n else 0.0, n, confidence)


def wilson_bounds(rate: float, n: float, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson interval from a rate and a sample count that may be fractional (an effective
    count, see :func:`clustered_interval`); the closed form scipy's ``binomtest`` uses too."""
    if n <= 0:
        return (0.0, 1.0)
    z = _z(confidence)
    z2 = z * z
    centre = (rate + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(max(rate * (1 - rate), 0.0) / n + z2 / (4 * n * n))
    return (max(0.0, centre - half), min(1.0, centre + half))


def _z(confidence: float) -> float:
    """The two-sided normal quantile of ``confidence`` (1.96 for 0.95)."""
    return float(norm.ppf(0.5 + confidence / 2))


def max_failures_allowed(n: int, threshold: float) -> int:
    """The most failed samples out of ``n`` that still meet ``threshold`` on the point estimate."""
    return n - math.ceil(threshold * n - EPS)


def min_samples_to_pass(threshold: float, confidence: GateConfidence,
                        metric: str = "pass_rate") -> int | None:
    """The smallest sample count whose best possible run meets ``threshold``; None if none does.

    On the point estimate one all-passing sample does. Under ``lower`` a pass rate needs the
    Wilson lower bound of n of n, n / (n + z^2), to reach the threshold: n >= z^2 t / (1 - t),
    73 for 0.95, never for 1.0. F1 under ``lower`` is judged on a bootstrap whose lower bound is
    1.0 for an all-correct run of any size, so one sample does (see :func:`power_statement`).
    """
    if threshold > 1 + EPS:
        return None
    if confidence == "point" or metric == "f1" or threshold <= EPS:
        return 1
    if threshold >= 1 - EPS:
        return None
    n = max(1, math.ceil(_z(0.95) ** 2 * threshold / (1 - threshold) - 1e-6))
    # The closed form above is approximate at the boundary; settle on the exact figure the
    # gate compares.
    while wilson_interval(n, n)[0] < threshold - EPS:
        n += 1
    while n > 1 and wilson_interval(n - 1, n - 1)[0] >= threshold - EPS:
        n -= 1
    return n


def failures_allowed(n: int, threshold: float, confidence: GateConfidence) -> int | None:
    """The most failing samples out of ``n`` that can still pass a pass-rate gate; None if even
    ``n`` of ``n`` cannot."""
    if n <= 0:
        return None
    failures = max_failures_allowed(n, threshold)
    if confidence == "lower":
        while failures >= 0 and wilson_interval(n - failures, n)[0] < threshold - EPS:
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


def positive_label(expected: list[str], declared: str | None = None) -> str:
    """The rule's declared positive class (the harness's first label); for a verdict recorded
    before rules named one, ``refuse`` where it is a label, else the first in sorted order."""
    if declared is not None:
        return declared
    labels = sorted(set(expected))
    return LEGACY_POSITIVE_LABEL if LEGACY_POSITIVE_LABEL in labels or not labels else labels[0]


def classifier_scores(expected: list[str], predicted: list[str], positive: str
                      ) -> tuple[float, float, float]:
    """Precision, recall and F1 of the ``positive`` class (scikit-learn).

    Binary when the labels are two at most; a third label (a prediction outside the expected
    ones) makes it the positive class's one-vs-rest scores.
    """
    p, r, f, _ = precision_recall_fscore_support(
        expected, predicted, labels=[positive], average=None, zero_division=0
    )
    return float(p[0]), float(r[0]), float(f[0])


def f1_lower_bound(expected: list[str], predicted: list[str], positive: str,
                   confidence: float = 0.95, prompts: list[str] | None = None) -> float:
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
        return _f1_prompt_bootstrap(exp, pred, positive, prompts, rng, confidence)
    scores = []
    for _ in range(1000):
        idx = rng.integers(0, len(exp), len(exp))
        scores.append(classifier_scores(list(exp[idx]), list(pred[idx]), positive)[2])
    return float(np.quantile(scores, (1 - confidence) / 2))


def _f1_prompt_bootstrap(exp: Any, pred: Any, positive: str, prompts: list[str], rng: Any,
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
        scores.append(classifier_scores(list(exp[idx]), list(pred[idx]), positive)[2])
    return float(np.quantile(scores, (1 - confidence) / 2))


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
