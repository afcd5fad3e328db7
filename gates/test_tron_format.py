"""Harness `tron_format` (quality gate): one item per prompt of data/prompts/tron_format.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = [pytest.mark.quality_gate, pytest.mark.harness("tron_format")]


def test_tron_format(prompt_record, generate_answer, gate_sample):
    score_sample("tron_format", prompt_record, generate_answer, gate_sample)
