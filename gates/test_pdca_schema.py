"""Harness `pdca_schema`: one item per prompt of data/prompts/pdca_schema.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("pdca_schema")  # ship or quality gate: from the harness spec


def test_pdca_schema(prompt_record, generate_answer, gate_sample):
    score_sample("pdca_schema", prompt_record, generate_answer, gate_sample)
