"""Harness `empty_constructor`: one item per prompt of its prompt set."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("empty_constructor")  # ship or quality gate: from the harness spec


def test_empty_constructor(prompt_record, generate_answer, gate_sample):
    score_sample("empty_constructor", prompt_record, generate_answer, gate_sample)
