"""The 20 must-not-regress tasks, each run on the model and on the baseline.

The plan's rule: every canary passes (``canaries.require_all``) and none regresses against the
baseline; the verdict lists each canary before/after, both answers, and an exact McNemar test
on the flips.
"""

import pytest

pytestmark = pytest.mark.canary


def test_canary(canary_record, judge_against_baseline):
    judge_against_baseline(canary_record)
