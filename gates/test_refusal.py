"""Harness `refusal`: one item per prompt of data/prompts/refusal.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("refusal")  # ship or quality gate: from the harness spec


def test_refusal(prompt_record, generate_answer, gate_sample):
    score_sample("refusal", prompt_record, generate_answer, gate_sample)
