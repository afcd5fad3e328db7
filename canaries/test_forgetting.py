"""The forgetting probe: general-knowledge prompts the base model answers, run on the model and
on the baseline. A regression is reported (McNemar on the flips); it blocks only where the
profile sets ``canaries.forgetting_blocks``."""

import pytest

from loragate.canaries import check_canary

pytestmark = pytest.mark.canary


def test_forgetting(forgetting_record, generate_answer, generate_baseline, canary_outcome):
    model_text = generate_answer(forgetting_record["messages"]).text
    baseline_text = generate_baseline(forgetting_record["messages"]).text
    model = check_canary(forgetting_record, model_text)
    baseline = check_canary(forgetting_record, baseline_text)
    canary_outcome.record(forgetting_record["id"], model_passed=model.passed,
                          baseline_passed=baseline.passed, model_reason=model.summary(),
                          baseline_reason=baseline.summary(), kind="forgetting",
                          model_answer=model_text, baseline_answer=baseline_text)
