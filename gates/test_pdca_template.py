"""Harness `pdca_template`: one item per prompt of data/prompts/pdca_template.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = pytest.mark.harness("pdca_template")  # ship or quality gate: from the harness spec


def test_pdca_template(prompt_record, generate_answer, gate_sample):
    score_sample("pdca_template", prompt_record, generate_answer, gate_sample)
