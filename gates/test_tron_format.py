"""Harness `tron_format`: one item per prompt of data/prompts/tron_format.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("tron_format")  # ship or quality gate: from the harness spec


def test_tron_format(prompt_record, generate_answer, gate_sample):
    score_sample("tron_format", prompt_record, generate_answer, gate_sample)
