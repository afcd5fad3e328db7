"""The 20 must-not-regress tasks, each run on the model and on the baseline.

The plan's rule: every canary passes (``canaries.require_all``) and none regresses against the
baseline; the verdict lists each canary before/after, both answers, and an exact McNemar test
on the flips.
"""

import pytest

from loragate.canaries import check_canary

pytestmark = pytest.mark.canary


def test_canary(canary_record, generate_answer, generate_baseline, canary_outcome):
    model_text = generate_answer(canary_record["messages"]).text
    baseline_text = generate_baseline(canary_record["messages"]).text
    model = check_canary(canary_record, model_text)
    baseline = check_canary(canary_record, baseline_text)
    canary_outcome.record(canary_record["id"], model_passed=model.passed,
                          baseline_passed=baseline.passed, model_reason=model.summary(),
                          baseline_reason=baseline.summary(), model_answer=model_text,
                          baseline_answer=baseline_text)
