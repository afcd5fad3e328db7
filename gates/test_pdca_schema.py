"""Harness `pdca_schema` (ship gate): one item per prompt of data/prompts/pdca_schema.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = [pytest.mark.ship_gate, pytest.mark.harness("pdca_schema")]


def test_pdca_schema(prompt_record, generate_answer, gate_sample):
    score_sample("pdca_schema", prompt_record, generate_answer, gate_sample)
