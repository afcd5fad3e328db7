"""The bundled data: deterministic, distinct, leak-free, and every answer passes its harness."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from loragate.cli import main
from loragate.data.generate import HARNESS_MAKERS, generate, refactor_sample, split_pools, write_all
from loragate.harnesses.registry import score

REPO = Path(__file__).resolve().parents[1]


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


@pytest.fixture(scope="module")
def files():
    return generate(seed=42)


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    write_all(tmp_path / "a", seed=7)
    write_all(tmp_path / "b", seed=7)
    write_all(tmp_path / "c", seed=8)
    a = (tmp_path / "a" / "guardrails.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "guardrails.jsonl").read_bytes()
    assert a != (tmp_path / "c" / "guardrails.jsonl").read_bytes()


def test_committed_data_is_the_generators_output(capsys):
    assert main(["data", "generate", "--out", str(REPO / "data"), "--check"]) == 0, (
        capsys.readouterr().out)


def test_no_two_training_samples_are_the_same(files):
    prompts = [normalise(r["instruction"] + r["input"])
               for name, records in files.items() if "/" not in name and name != "canaries.jsonl"
               for r in records]
    assert len(prompts) == len(set(prompts))


def test_no_held_out_prompt_is_in_training(files):
    training = {normalise(r["instruction"] + r["input"])
                for name, records in files.items()
                if "/" not in name and name not in ("eval.jsonl", "canaries.jsonl")
                for r in records}
    held_out = [normalise(r["messages"][-1]["content"])
                for name, records in files.items() if name.startswith("prompts/")
                for r in records]
    held_out += [normalise(r["instruction"]) for r in files["eval.jsonl"]]
    held_out += [normalise(r["messages"][-1]["content"]) for r in files["canaries.jsonl"]]
    assert not training & set(held_out)


def test_prompt_sets_have_100_each_and_refusal_is_balanced(files):
    for harness in HARNESS_MAKERS:
        assert len(files[f"prompts/{harness}.jsonl"]) == 100
    labels = [r["expected"] for r in files["prompts/refusal.jsonl"]]
    assert labels.count("refuse") == labels.count("comply") == 50
    assert len(files["canaries.jsonl"]) == 20


@pytest.mark.parametrize("harness", sorted(HARNESS_MAKERS))
def test_every_generated_answer_passes_its_own_harness(harness):
    train, _ = split_pools()
    rng = random.Random(harness)
    make = HARNESS_MAKERS[harness]
    for _ in range(60):
        _, answer, context = make(rng, train)
        checks = ("pdca_schema", "pdca_template") if harness.startswith("pdca") else (harness,)
        for check in checks:
            result = score(check, answer, context)
            assert result.passed, (check, result.reasons, answer[:300])


def test_refactor_answers_pass_and_their_input_fails():
    train, _ = split_pools()
    rng = random.Random(0)
    for _ in range(20):
        request, answer, _ = refactor_sample(rng, train)
        assert score("empty_constructor", answer).passed
        broken = request.split("```typescript\n", 1)[1]
        assert not score("empty_constructor", f"```typescript\n{broken}").passed


def test_training_files_are_in_the_plans_form(files):
    for name in ("style_core.jsonl", "guardrails.jsonl", "eval.jsonl"):
        for record in files[name]:
            assert set(record) == {"instruction", "input", "output"}
            assert record["output"].strip()
    json.dumps(files)  # serialisable


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="scale must be one of"):
        generate(scale="huge")
