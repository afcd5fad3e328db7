"""What a gate session records: one outcome per sample, canary and check, and the summaries
the verdict makes of them, each read back from a verdict file by the same dataclass."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    # The messages exactly as the model got them (the config's system prompt included), each
    # content capped like the answer: what was asked, not only a digest of it.
    messages: list[dict[str, str]] | None = field(default=None, hash=False)
    answer: str | None = None  # capped at reports.max_answer_chars; the cut is marked
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float | None = None
    in_flight: int | None = None  # this client's open requests when it was sent
    queue_s: float | None = None  # waiting for the server, apart from its work
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


def checks_from_json(items: list[dict[str, Any]] | None) -> list[CheckOutcome]:
    return [CheckOutcome(**item) for item in items or []]


@dataclass
class SessionRecords:
    """What one gate session recorded, apart from what it holds open: the items planned per
    harness, the failures so far (for ``--fail-fast-gates``), every outcome and metric, and
    why the gate could not run."""

    planned: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    samples: dict[str, SampleOutcome] = field(default_factory=dict)
    canaries: dict[str, CanaryOutcome] = field(default_factory=dict)
    checks: dict[str, CheckOutcome] = field(default_factory=dict)
    metrics: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Why the gate could not run (a model that went away, a cache that broke): an error
    # verdict names these, so an infrastructure failure never reads as a model failure.
    fatal: list[str] = field(default_factory=list)
    aborted: bool = False  # the session stopped before any sample (the model did not open)

    @property
    def judged_anything(self) -> bool:
        return bool(self.samples or self.canaries)
