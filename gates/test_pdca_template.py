"""Harness `pdca_template` (ship gate): one item per prompt of data/prompts/pdca_template.jsonl."""

import pytest

from loragate.gating.scoring import score_sample

pytestmark = [pytest.mark.ship_gate, pytest.mark.harness("pdca_template")]


def test_pdca_template(prompt_record, generate_answer, gate_sample):
    score_sample("pdca_template", prompt_record, generate_answer, gate_sample)
