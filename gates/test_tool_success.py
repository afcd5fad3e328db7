"""Harness `tool_success` (quality gate): one item per prompt of data/prompts/tool_success.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = [pytest.mark.quality_gate, pytest.mark.harness("tool_success")]


def test_tool_success(prompt_record, generate_answer, gate_sample):
    score_sample("tool_success", prompt_record, generate_answer, gate_sample)
