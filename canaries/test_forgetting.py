"""The forgetting probe: general-knowledge prompts the base model answers, run on the model and
on the baseline. A regression is reported (McNemar on the flips); it blocks only where the
profile sets ``canaries.forgetting_blocks``."""

import pytest

pytestmark = pytest.mark.canary


def test_forgetting(forgetting_record, judge_against_baseline):
    judge_against_baseline(forgetting_record, kind="forgetting")
