"""The 20 must-not-regress tasks, each run on the model and on the baseline.

A canary the baseline passes and the model fails is a regression and blocks the verdict; the
verdict lists each canary before/after and an exact McNemar test on the flips.
"""

import pytest

from loragate.canaries import check_canary

pytestmark = pytest.mark.canary


def test_canary(canary_record, generate_answer, generate_baseline, canary_outcome):
    model = check_canary(canary_record, generate_answer(canary_record["messages"]).text)
    baseline = check_canary(canary_record, generate_baseline(canary_record["messages"]).text)
    canary_outcome.record(canary_record["id"], model_passed=model.passed,
                          baseline_passed=baseline.passed, model_reason=model.summary(),
                          baseline_reason=baseline.summary())
