"""Harness `tool_success`: one item per prompt of data/prompts/tool_success.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("tool_success")  # ship or quality gate: from the harness spec


def test_tool_success(prompt_record, generate_answer, gate_sample):
    score_sample("tool_success", prompt_record, generate_answer, gate_sample)
