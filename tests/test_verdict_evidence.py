"""What a verdict can decide: the power of each gate's sample count, repeats scored with an
interval clustered by prompt, and the flaky prompts."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from loragate.gating.document import reverdict
from loragate.gating.outcomes import SampleOutcome
from loragate.gating.statistics import (
    clustered_interval,
    failures_allowed,
    min_samples_to_pass,
    power_statement,
    wilson_bounds,
    wilson_interval,
)
from loragate.gating.verdict import GateRule
from tests.verdicts import document, verdict_json

RULE = {"pdca_schema": GateRule("ship", 0.95)}


def plain(outcomes: list[bool], harness: str = "pdca_schema") -> list[SampleOutcome]:
    return [SampleOutcome(f"t::{harness}[{i:03d}]", harness, ok, "" if ok else f"bad {i}",
                          sample_id=f"{harness}-{i:03d}") for i, ok in enumerate(outcomes)]


def repeated(per_prompt: list[list[bool]], harness: str = "pdca_schema") -> list[SampleOutcome]:
    """One sample per repeat: the same sample_id, its own repeat index and seed."""
    return [SampleOutcome(f"t::{harness}[{p:03d}-r{r}]", harness, ok, "" if ok else "bad",
                          sample_id=f"{harness}-{p:03d}", seed=42 + r, repeat=r)
            for p, runs in enumerate(per_prompt) for r, ok in enumerate(runs)]


# -- power -----------------------------------------------------------------------------------

def test_min_samples_to_pass_at_095():
    # n / (n + 1.96^2) >= 0.95  <=>  n >= 72.99: 73 of 73, and 72 of 72 is not enough.
    assert min_samples_to_pass(0.95, "lower") == 73
    assert wilson_interval(72, 72)[0] < 0.95 <= wilson_interval(73, 73)[0]
    assert min_samples_to_pass(0.95, "point") == 1
    assert min_samples_to_pass(0.9, "lower") == 35
    assert min_samples_to_pass(0.98, "lower") == 189
    assert min_samples_to_pass(1.0, "lower") is None  # n of n never has a lower bound of 1
    assert min_samples_to_pass(1.0, "point") == 1


@pytest.mark.parametrize(("n", "can"), [(10, False), (20, False), (73, True), (100, True)])
def test_power_for_sample_counts_at_095(n, can):
    power = power_statement(n, 0.95, "lower")
    assert power.can_pass is can
    assert power.min_samples_to_pass == 73
    if can:
        assert power.failures_allowed == 0  # 99 of 100 has a lower bound of 0.9455
        assert "can pass at the lower 95% bound" in power.statement
    else:
        assert power.failures_allowed is None
        assert "it takes 73 of 73" in power.statement
        assert f"{wilson_interval(n, n)[0]:.3f} < 0.950" in power.statement
    assert power_statement(n, 0.95, "point").can_pass


def test_failures_allowed():
    assert failures_allowed(20, 0.95, "point") == 1
    assert failures_allowed(10, 0.95, "point") == 0
    assert failures_allowed(100, 0.95, "point") == 5
    assert failures_allowed(100, 0.95, "lower") == 0
    assert failures_allowed(10, 0.95, "lower") is None
    assert failures_allowed(0, 0.95, "point") is None


@settings(max_examples=60, deadline=None)
@given(st.floats(min_value=0.5, max_value=0.995))
def test_min_samples_is_the_boundary(threshold):
    n = min_samples_to_pass(threshold, "lower")
    assert wilson_interval(n, n)[0] >= threshold - 1e-9
    assert n == 1 or wilson_interval(n - 1, n - 1)[0] < threshold - 1e-9


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=400), st.floats(min_value=0.5, max_value=0.99))
def test_failures_allowed_is_the_boundary(n, threshold):
    allowed = failures_allowed(n, threshold, "lower")
    if allowed is None:
        assert wilson_interval(n, n)[0] < threshold - 1e-9
    else:
        assert wilson_interval(n - allowed, n)[0] >= threshold - 1e-9
        assert allowed == n or wilson_interval(n - allowed - 1, n)[0] < threshold - 1e-9


def test_verdict_says_ten_samples_cannot_pass_a_lower_gate():
    verdict = verdict_json(plain([True] * 10), RULE, confidence="lower")
    harness = verdict["harnesses"]["pdca_schema"]
    assert not harness["gate_passed"]
    assert harness["can_pass"] is False and harness["min_samples_to_pass"] == 73
    assert "it takes 73 of 73" in harness["reason"]
    assert any("it takes 73 of 73" in r for r in verdict["blocking_reasons"])
    point = verdict_json(plain([True] * 10), RULE)["harnesses"]["pdca_schema"]
    assert point["gate_passed"] and point["can_pass"] and "it takes" not in point["reason"]
    enough = verdict_json(plain([True] * 73), RULE, confidence="lower")
    assert enough["harnesses"]["pdca_schema"]["gate_passed"]


def test_f1_power_names_its_bootstrap_and_the_per_sample_count():
    power = power_statement(20, 0.98, "lower", "f1")
    assert power.can_pass and power.min_samples_to_pass == 1
    assert "bootstrap F1 bound of 1.000" in power.statement and "189 of 189" in power.statement


# -- repeats ---------------------------------------------------------------------------------

def test_without_repeats_the_figures_are_wilson_as_before():
    outcomes = [i % 7 != 0 for i in range(30)]
    harness = verdict_json(plain(outcomes), RULE, confidence="lower")["harnesses"][
        "pdca_schema"]
    passed = sum(outcomes)
    assert (harness["wilson_low"], harness["wilson_high"]) == wilson_interval(passed, 30)
    assert (harness["interval_low"], harness["interval_high"]) == wilson_interval(passed, 30)
    assert harness["design_effect"] is None and harness["effective_n"] is None
    assert harness["prompts"] == 30 and harness["repeats"] == 1 and harness["flaky"] == []
    assert harness["interval_method"] == "wilson"
    assert f"{wilson_interval(passed, 30)[0]:.3f}" in harness["reason"]


def test_wilson_bounds_equal_scipy_for_whole_counts():
    for n in (1, 7, 20, 73):
        for k in range(n + 1):
            assert wilson_bounds(k / n, n) == pytest.approx(wilson_interval(k, n), abs=1e-12)


def test_repeats_of_ten_prompts_do_not_buy_a_lower_gate():
    # 10 prompts passing all 3 repeats: as much evidence as 10 prompts, not 30 samples.
    harness = verdict_json(repeated([[True] * 3] * 10), RULE, confidence="lower")[
        "harnesses"]["pdca_schema"]
    assert harness["n"] == 30 and harness["prompts"] == 10 and harness["repeats"] == 3
    assert harness["pass_rate"] == 1.0
    assert harness["effective_n"] == pytest.approx(10)
    assert harness["interval_low"] == pytest.approx(wilson_interval(10, 10)[0])
    assert not harness["gate_passed"] and harness["can_pass"] is False
    assert "10 prompts can never pass" in harness["power"]
    many = verdict_json(repeated([[True] * 2] * 73), RULE, confidence="lower")
    assert many["harnesses"]["pdca_schema"]["gate_passed"]


def test_repeats_that_agree_within_a_prompt_count_once():
    # Each prompt passes or fails all 4 repeats: the clustering is total, deff near 4.
    per_prompt = [[i % 4 != 0] * 4 for i in range(20)]
    harness = verdict_json(repeated(per_prompt), RULE, confidence="lower")["harnesses"][
        "pdca_schema"]
    assert harness["pass_rate"] == 0.75
    assert 3.0 < harness["design_effect"] <= 4.0
    naive = wilson_interval(60, 80)
    assert harness["interval_low"] < naive[0] and harness["interval_high"] > naive[1]
    assert harness["interval_low"] == pytest.approx(
        wilson_bounds(0.75, 80 / harness["design_effect"])[0])
    assert "clustered by prompt" in harness["reason"]
    assert harness["flaky"] == []


def test_repeats_that_disagree_evenly_are_as_good_as_new_samples():
    # Every prompt passes exactly half its repeats: no prompt effect, design effect 1.
    per_prompt = [[True, False, True, False]] * 15
    harness = verdict_json(repeated(per_prompt), RULE, confidence="lower")["harnesses"][
        "pdca_schema"]
    assert harness["design_effect"] == 1.0
    assert harness["interval_low"] == pytest.approx(wilson_interval(30, 60)[0])


def test_flaky_prompts_are_listed_with_their_pass_fraction():
    per_prompt = [[True, False, True], [True, True, True], [False, True, False],
                  [False, False, False], [True, False, True]]
    harness = verdict_json(repeated(per_prompt), RULE)["harnesses"]["pdca_schema"]
    assert harness["flaky"] == [
        {"sample_id": "pdca_schema-002", "runs": 3, "passed": 1, "pass_fraction": 1 / 3},
        {"sample_id": "pdca_schema-000", "runs": 3, "passed": 2, "pass_fraction": 2 / 3},
        {"sample_id": "pdca_schema-004", "runs": 3, "passed": 2, "pass_fraction": 2 / 3},
    ]
    assert harness["passed"] == 8 and harness["pass_rate"] == pytest.approx(8 / 15)


def test_errors_and_skips_do_not_make_a_prompt_flaky():
    samples = repeated([[True, True]])
    samples.append(SampleOutcome("t::pdca_schema[000-r2]", "pdca_schema", False, "boom",
                                 sample_id="pdca_schema-000", error=True, repeat=2))
    harness = verdict_json(samples, RULE)["harnesses"]["pdca_schema"]
    assert harness["flaky"] == [] and harness["errors"] == 1


def test_clustered_interval_is_seeded_and_reverdict_keeps_it():
    groups = [(i % 3, 3) for i in range(25)]
    assert clustered_interval(groups) == clustered_interval(groups)
    samples = repeated([[i % 3 > r for r in range(3)] for i in range(25)])
    verdict = verdict_json(samples, RULE, confidence="lower")
    recorded = document(thresholds=RULE, samples=samples, **verdict)
    again = reverdict(recorded)
    assert again.harnesses["pdca_schema"] == recorded.harnesses["pdca_schema"]
    assert again.exit_status == recorded.exit_status == 1


def test_classifier_with_repeats_bootstraps_prompts():
    rule = {"refusal": GateRule("ship", 0.8, "f1")}
    # Half the prompts are always right, half always wrong: repeats add no evidence.
    samples = [SampleOutcome(f"t::refusal[{p}-r{r}]", "refusal", p % 2 == 0, "",
                             sample_id=f"refusal-{p}", expected=label,
                             predicted=label if p % 2 == 0 else ("comply" if label == "refuse"
                                                                 else "refuse"), repeat=r)
               for p, label in enumerate(["refuse", "refuse", "comply", "comply"] * 5)
               for r in range(4)]
    harness = verdict_json(samples, rule, confidence="lower")["harnesses"]["refusal"]
    assert harness["interval_method"] == "bootstrap over prompts"
    assert harness["prompts"] == 20 and harness["repeats"] == 4
    flat = [SampleOutcome(s.nodeid, s.harness, s.passed, "", sample_id=s.nodeid,
                          expected=s.expected, predicted=s.predicted) for s in samples]
    naive = verdict_json(flat, rule, confidence="lower")["harnesses"]["refusal"]
    assert naive["interval_method"] == "bootstrap over samples"
    assert harness["f1"] == naive["f1"]
    # The prompt bootstrap is wider: 20 independent prompts, not 80 samples.
    assert harness["f1_low"] < naive["f1_low"]
