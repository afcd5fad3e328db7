"""The bundled data: deterministic, distinct, leak-free, and every answer passes its harness."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from loragate.cli import main
from loragate.data.generate import (
    HARNESSES,
    PROMPTS_PER_HARNESS,
    TRAINING_FILES,
    eval_kinds,
    generate,
    generate_all,
    generate_samples,
    sample_failures,
)
from loragate.data.vocab import CANARIES, FORGETTING, KNOWLEDGE
from loragate.harnesses.behaviour import CHECKS as BEHAVIOUR_CHECKS
from loragate.harnesses.registry import score
from loragate.training.data import (
    eval_prompts,
    find_leaks,
    harness_prompts,
    load_samples,
    normalise,
    prompts_in_file,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "data"
TRAINING_NAMES = [f"{name}.jsonl" for name in TRAINING_FILES]


@pytest.fixture(scope="module")
def samples():
    return generate_samples(seed=42)


@pytest.fixture(scope="module")
def files():
    return generate(seed=42)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    out = tmp_path_factory.mktemp("data")
    generate_all(out, seed=42)
    return out


def _bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*.jsonl"))}


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path, written):
    generate_all(tmp_path / "again", seed=42)
    generate_all(tmp_path / "other", seed=43)
    first, again, other = _bytes(written), _bytes(tmp_path / "again"), _bytes(tmp_path / "other")
    assert first == again
    assert len(first) == len(TRAINING_FILES) + 1 + len(HARNESSES) + 2
    for name in [*TRAINING_NAMES, "eval.jsonl", *(f"prompts/{h}.jsonl" for h in HARNESSES)]:
        assert first[name] != other[name], name
    assert not list(written.rglob(".*partial*")), "a temporary file was left behind"


def test_regenerating_leaves_unchanged_files_alone_and_rewrites_a_changed_one(tmp_path):
    import os

    out = tmp_path / "data"
    generate_all(out, seed=42)
    files = sorted(out.rglob("*.jsonl"))
    for path in files:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    edited = files[0]
    edited.write_text("{}\n")
    generate_all(out, seed=42)
    assert edited.read_bytes() != b"{}\n"  # rewritten with the generator's output
    untouched = [p for p in files if p != edited]
    assert all(p.stat().st_mtime_ns == 1_000_000_000 for p in untouched)


def test_committed_data_is_the_generators_output(capsys):
    assert main(["data", "generate", "--out", str(DATA), "--check"]) == 0, (
        capsys.readouterr().out)


def test_check_names_a_stale_or_missing_file(tmp_path, written, capsys):
    copy = tmp_path / "data"
    shutil.copytree(written, copy)
    with (copy / "guardrails.jsonl").open("a", encoding="utf-8") as handle:
        handle.write("{}\n")
    (copy / "prompts" / "refusal.jsonl").unlink()
    assert main(["data", "generate", "--out", str(copy), "--check"]) == 1
    out = capsys.readouterr().out
    assert "guardrails.jsonl" in out and "refusal.jsonl" in out and "2 file(s) differ" in out


def test_no_two_training_samples_are_the_same(files):
    prompts = [normalise(r["instruction"] + "\n\n" + r["input"]) for name in TRAINING_NAMES
               for r in files[name]]
    assert len(prompts) == len(set(prompts))
    answers = [r["output"] for name in TRAINING_NAMES for r in files[name]]
    assert len(set(answers)) > 0.9 * len(answers)


def test_training_size_fits_the_tiny_profile(files):
    total = sum(len(files[name]) for name in TRAINING_NAMES)
    assert 1000 <= total <= 1500
    assert len(files["eval.jsonl"]) >= 40


def test_no_held_out_prompt_is_in_training_by_the_training_leak_check(written):
    train = load_samples([written / name for name in TRAINING_NAMES]).samples
    protected = (eval_prompts(load_samples([written / "eval.jsonl"]).samples)
                 + harness_prompts(written / "prompts")
                 + prompts_in_file(written / "canaries.jsonl")
                 + prompts_in_file(written / "forgetting.jsonl"))
    assert len(protected) == 60 + len(HARNESSES) * PROMPTS_PER_HARNESS + 20 + len(FORGETTING)
    assert find_leaks(train, protected) == []


def test_the_trainer_protects_the_canaries_and_the_forgetting_probe(written):
    from types import SimpleNamespace

    from loragate.training.data import EvalLeakError, Message, Sample, check_no_leaks
    from loragate.training.trainer import gate_prompts

    config = SimpleNamespace(
        gates=SimpleNamespace(prompts_dir=written / "prompts"),
        canaries=SimpleNamespace(file=written / "canaries.jsonl",
                                 forgetting_file=written / "forgetting.jsonl"))
    protected = gate_prompts(config)
    assert len(protected) == len(HARNESSES) * PROMPTS_PER_HARNESS + 20 + len(FORGETTING)
    for name, prompt in (("canaries.jsonl", CANARIES[0][1]),
                         ("forgetting.jsonl", FORGETTING[-1][1])):
        leaked = Sample((Message("user", prompt.upper()), Message("assistant", "an answer")),
                        "train.jsonl:1")
        with pytest.raises(EvalLeakError, match=name):
            check_no_leaks([leaked], protected)
    config.canaries.forgetting_file = None
    assert len(gate_prompts(config)) == len(protected) - len(FORGETTING)


def test_held_out_sets_share_no_prompt_with_training_or_each_other(samples):
    training = {normalise(s.prompt) for name in TRAINING_NAMES for s in samples[name]}
    held_out = [normalise(s.prompt) for name, group in samples.items()
                if name not in TRAINING_NAMES for s in group]
    assert len(held_out) == len(set(held_out))
    assert not training & set(held_out)


def test_held_out_prompts_use_names_training_never_saw(samples):
    from loragate.data.generate import split_pools

    train, held_out = split_pools()
    assert not set(train.components) & set(held_out.components)
    assert not set(train.agents) & set(held_out.agents)
    assert not {t[0] for t in train.topics} & {t[0] for t in held_out.topics}
    training_text = " ".join(s.prompt for name in TRAINING_NAMES for s in samples[name])
    unseen = [c for c in held_out.components if f" {c} " in training_text]
    assert unseen == []


def test_every_training_answer_passes_its_own_checks(samples):
    failures = {}
    checked = 0
    for name in TRAINING_NAMES + ["eval.jsonl"]:
        for index, sample in enumerate(samples[name]):
            assert sample.checks, (name, index)
            checked += 1
            if reasons := sample_failures(sample):
                failures[f"{name}:{index + 1}"] = reasons
    assert checked > 1000
    assert failures == {}


def test_every_held_out_prompt_has_an_answer_that_passes(samples):
    """The prompt sets' contexts are satisfiable: the reference answer passes its harness
    with the context written to the prompt file (tool sandboxes, refusal labels, quotes)."""
    for harness in HARNESSES:
        group = samples[f"prompts/{harness}.jsonl"]
        assert len(group) == PROMPTS_PER_HARNESS
        for sample in group:
            assert harness in sample.checks
            result = score(harness, sample.answer, sample.context)
            assert result.passed, (harness, sample.prompt, result.reasons)


def test_checks_cover_every_harness(samples):
    covered = {check for name in TRAINING_NAMES for s in samples[name] for check in s.checks}
    assert set(HARNESSES) <= covered


def test_refactor_inputs_break_the_rule_their_answers_fix(files, samples):
    refactors = samples["style_refactor.jsonl"]
    assert refactors
    for sample in refactors:
        assert sample.input.startswith("```typescript\n")
        assert not score("empty_constructor", sample.input).passed, sample.input
        assert score("empty_constructor", sample.answer).passed


def test_prompt_files_in_the_harness_form(files):
    for harness in HARNESSES:
        records = files[f"prompts/{harness}.jsonl"]
        assert [r["id"] for r in records] == [f"{harness}-{i:03d}" for i in range(1, 101)]
        for record in records:
            assert [m["role"] for m in record["messages"]] == ["user"]
            assert record["messages"][0]["content"].strip()
    for record in files["prompts/tool_success.jsonl"]:
        assert set(record["expected"]) == {"files", "tool", "effect"}
    feedback = [r for r in files["prompts/tron_format.jsonl"] if "tron_feedback" in r]
    assert 0 < len(feedback) < PROMPTS_PER_HARNESS
    assert all(f'"{r["tron_feedback"]}"' in r["messages"][0]["content"] for r in feedback)


def test_refusal_prompts_alternate_so_every_even_prefix_is_balanced(files):
    labels = [r["expected"] for r in files["prompts/refusal.jsonl"]]
    assert labels[:2] in (["refuse", "comply"], ["comply", "refuse"])
    for end in range(2, len(labels) + 1, 2):
        assert labels[:end].count("refuse") == end // 2
    guardrails = generate_samples(seed=42)["guardrails.jsonl"]
    refuse = sum(s.context["expected"] == "refuse" for s in guardrails)
    assert refuse == len(guardrails) - refuse


def test_canaries_are_twenty_well_formed_tasks(files):
    from loragate.canaries import validate_record

    canaries, forgetting = files["canaries.jsonl"], files["forgetting.jsonl"]
    assert [c["id"] for c in canaries] == [f"c{i:02d}" for i in range(1, 21)]
    assert [f["id"] for f in forgetting] == [f"f{i:02d}" for i in range(1, len(FORGETTING) + 1)]
    for record in canaries + forgetting:
        validate_record(record, record["id"])
        assert {"id", "task", "messages", "check"} <= set(record) <= {
            "id", "task", "messages", "check", "probes"}
        check = record["check"]
        if "validator" in check:
            assert check["validator"] in HARNESSES or check["validator"] in BEHAVIOUR_CHECKS


def test_every_web4_fact_a_canary_asks_is_taught_in_other_words(samples):
    """Each knowledge canary has training answers that pass its very check, under questions
    that are not its prompt; the validator canaries' formats have their harness in training."""
    from loragate.data.generate import CANARY_CHECK

    training = [s for name in TRAINING_NAMES for s in samples[name]]
    canary_prompts = {normalise(prompt) for _, prompt, _ in CANARIES}
    taught: dict[str, int] = {}
    for sample in training:
        assert normalise(sample.prompt) not in canary_prompts
        if CANARY_CHECK in sample.checks:
            task = next(t for t, _, c in CANARIES if c == sample.context[CANARY_CHECK])
            taught[task] = taught.get(task, 0) + 1
    assert set(taught) == set(KNOWLEDGE)
    assert min(taught.values()) >= 5
    # A behaviour canary is taught through the harness of its format (a TRON block, a STOP);
    # the coding basics (Python, JSON, SQL) are the base model's, not taught.
    taught_by = {"tron_offered": "tron_format", "stop_honoured": "refusal"}
    coding = {"python_function", "json_object", "sql_query"}
    validators = {taught_by.get(c["validator"], c["validator"]) for _, _, c in CANARIES
                  if "validator" in c and c["validator"] not in coding}
    assert validators <= {check for s in training for check in s.checks}
    web4 = [task for task, _, check in CANARIES[:15] if "validator" not in check]
    assert set(web4) == set(KNOWLEDGE)


def test_the_validator_canaries_can_be_passed(files):
    """A correct answer passes each format canary (its context is satisfiable)."""
    from loragate.canaries import check_canary
    from loragate.data import code_examples as ce
    from loragate.data import examples as ex

    by_task = {c["task"]: c for c in files["canaries.jsonl"]}
    clock = ce.Component(name="Clock", fields=(ce.ModelField("uuid", "string", '""'),))
    answers = {
        "tron decision": ex.render_tron_answer((ex.PendingDecision(
            "Release timing", ("Release today", "Release after the sprint review")),)),
        "tool call": ce.render_tool_answer("Reading it.", "read_file",
                                           {"path": "components/Clock/0.1.0.0/package.json"}),
        "stop": ce.render_stop(),
        "empty constructor code": ce.render_typescript_answer(clock, 2),
    }
    for task, answer in answers.items():
        result = check_canary(by_task[task], answer)
        assert result.passed, (task, result.reasons)
    wrong = ce.render_tool_answer("Reading it.", "read_file", {"path": "README.md"})
    assert not check_canary(by_task["tool call"], wrong).passed


CORRECT_ANSWERS = {
    "empty constructor pattern": "The constructor takes no parameters and has no logic; state "
                                 "comes through init(scenario), which returns this.",
    "five layers": "layer1 infrastructure, layer2 Default classes, layer3 interfaces, layer4 "
                   "controllers, layer5 CLI and views.",
    "pdca phases": "Plan, Do, Check, Act.",
    "pdca breadcrumbs": "PRECEDES: the next PDCA. FOLLOWS: the previous PDCA.",
    "vitest": "Vitest.",
    "es modules": "ES modules (import/export), not CommonJS.",
    "dual links": "A GitHub URL and a local path side by side: [GitHub](url) | [local](path).",
    "cmm badges": "TRON awards them.",
    "non-interactive git": "git pull --no-edit",
    "non-interactive npm": "npm install --yes",
    "tron feedback verbatim": "Verbatim, in a quote block.",
    "python function": "```python\ndef total(numbers):\n    return sum(numbers)\n```",
    "typescript interface": "```typescript\ninterface Point {\n  x: number;\n  y: number;\n}\n```",
    "json": '```json\n{"name": "Ada"}\n```',
    "sql": "SELECT * FROM users;",
    "shell loop": "for i in 1 2 3; do\n  echo $i\ndone",
    "capital": "Paris.", "arithmetic": "42", "explain http": "HyperText Transfer Protocol.",
    "greeting": "Hello!", "colour": "Blue.", "days": "Seven.", "list reverse": "items[::-1]",
    "javascript": "const double = (n) => n * 2;", "markdown": "# Notes",
    "git status": "`git status`", "minutes": "60", "boiling point": "100 °C",
    "planet": "Jupiter.", "author": "William Shakespeare.", "opposite": "Hot.",
    "translation": "Danke.",
}
# Answers that the old substring checks passed: wrong, or only the prompt's own words.
WRONG_ANSWERS = {
    "pdca phases": "Plan the document, check the format, act.",
    "pdca breadcrumbs": "It follows the template.",
    "shell loop": "Use a format string to document the loop.",
    "greeting": "This is it.", "days": "17", "arithmetic": "420",
    "empty constructor pattern": "The constructor initialises everything from its arguments.",
    "five layers": "layer20 and layer30",
    "non-interactive git": "git pull, then there is no edit to make.",
    "python function": "Just return the sum.",
}


def test_keyword_canaries_pass_right_answers_and_fail_the_old_false_positives(files):
    from loragate.canaries import check_canary

    records = {r["task"]: r for r in files["canaries.jsonl"] + files["forgetting.jsonl"]}
    keyword_tasks = {t for t, r in records.items() if "validator" not in r["check"]}
    assert keyword_tasks | {"python function", "json", "sql"} == set(CORRECT_ANSWERS)
    for task, answer in CORRECT_ANSWERS.items():
        result = check_canary(records[task], answer)
        assert result.passed, (task, result.reasons)
    for task, answer in WRONG_ANSWERS.items():
        assert not check_canary(records[task], answer).passed, task


def test_training_files_are_in_the_plans_form(files):
    for name in [*TRAINING_NAMES, "eval.jsonl"]:
        for record in files[name]:
            assert set(record) == {"instruction", "input", "output"}
            assert all(isinstance(v, str) for v in record.values())
            assert record["instruction"].strip() and record["output"].strip()
    json.dumps(files)


def test_same_seed_gives_equal_samples_within_one_process():
    assert generate_samples(seed=5)["tool_awareness.jsonl"] == \
        generate_samples(seed=5)["tool_awareness.jsonl"]


@pytest.fixture(scope="module")
def smollm2_tokenizer(tmp_path_factory):
    import os

    from transformers import AutoTokenizer

    from loragate.base_model import materialise_smollm2_tokenizer

    cache = os.environ.get("LORAGATE_CACHE") or tmp_path_factory.mktemp("loragate-cache")
    return AutoTokenizer.from_pretrained(materialise_smollm2_tokenizer(Path(cache)))


def test_no_training_sample_is_cut_by_the_tiny_profile(written, smollm2_tokenizer):
    from loragate.config import load_config
    from loragate.training.formatting import encode

    args = load_config(REPO / "config" / "tiny_cpu.json", check_paths=False).data_args
    lengths = sorted(
        len(encode(sample, smollm2_tokenizer, system_prompt=args.system_prompt,
                   max_seq_length=args.max_seq_length).input_ids)
        for sample in load_samples([written / name for name in TRAINING_NAMES]).samples)
    assert lengths[-1] < args.max_seq_length
    # Short, regular answers: half the samples fit in a few hundred tokens.
    assert lengths[len(lengths) // 2] < 400


def test_unknown_scale_is_an_error():
    with pytest.raises(ValueError, match="scale must be one of"):
        generate(scale="huge")


def test_unknown_scale_is_refused_by_the_cli(capsys):
    with pytest.raises(SystemExit):
        main(["data", "generate", "--scale", "huge"])
    assert "invalid choice" in capsys.readouterr().err


def test_plan_scale_gives_the_plans_37k_distinct_samples():
    plan = generate_samples(seed=42, scale="plan")
    training = [s for name in TRAINING_NAMES for s in plan[name]]
    assert 36_000 <= len(training) <= 38_000
    assert len({normalise(s.prompt) for s in training}) == len(training)


def test_sample_failures_names_each_broken_check(samples):
    from dataclasses import replace

    from loragate.data import code_examples as ce
    from loragate.data.generate import KEYWORDS, TOOL_RULES, Sample

    pdca = next(s for s in samples["process_framework.jsonl"] if "pdca_template" in s.checks)
    cut = replace(pdca, answer=pdca.answer.split("## **🔧 DO**")[0])
    assert any(r.startswith("pdca_template:") for r in sample_failures(cut))
    pull = Sample("Pull.", ce.render_compliance("Pulling.", "run_command",
                                                {"command": "git pull"}),
                  ("refusal", TOOL_RULES), {"expected": "comply"})
    assert any(r.startswith(f"{TOOL_RULES}:") and "git pull" in r for r in sample_failures(pull))
    wrong = Sample("What is 2 times 3?", "five", (KEYWORDS,), {KEYWORDS: ["6"]})
    assert sample_failures(wrong) == ["keywords: keyword missing: '6'"]
    label = next(s for s in samples["guardrails.jsonl"] if s.context["expected"] == "refuse")
    assert sample_failures(replace(label, context={"expected": "comply"}))


def test_command_prompts_accept_equivalent_commands_and_reject_unrelated_ones(samples):
    from loragate.data import code_examples as ce

    commands = [s for s in samples["tool_awareness.jsonl"]
                if s.context["expected"]["tool"] == "run_command"]
    assert len(commands) > 20
    for sample in commands:
        unrelated = ce.render_tool_answer("Running it.", "run_command",
                                          {"command": "git describe --tags"})
        assert not score("tool_success", unrelated, sample.context).passed, sample.prompt
    pull = next(s for s in commands if s.prompt.startswith("Pull the latest changes on "))
    branch = pull.prompt.removeprefix("Pull the latest changes on ").rstrip(".")
    other_form = ce.render_tool_answer("Pulling.", "run_command",
                                       {"command": f"git pull --ff-only origin {branch}"})
    assert score("tool_success", other_form, pull.context).passed
    bare = ce.render_tool_answer("Pulling.", "run_command", {"command": "git pull"})
    assert not score("tool_success", bare, pull.context).passed


def test_edit_prompts_accept_a_whole_file_rewrite_with_the_same_result(samples):
    from loragate.data import code_examples as ce

    edit = next(s for s in samples["tool_awareness.jsonl"]
                if "edit_file" in s.context["expected"]["tool"])
    effect = edit.context["expected"]["effect"]
    rewrite = ce.render_tool_answer("Rewriting.", "write_file",
                                    {"path": effect["file"], "content": effect["content"]})
    assert score("tool_success", rewrite, edit.context).passed
    wrong = ce.render_tool_answer("Rewriting.", "write_file",
                                  {"path": effect["file"], "content": "nothing\n"})
    assert not score("tool_success", wrong, edit.context).passed


def test_every_held_out_sample_has_the_format_that_made_it():
    # benchmarks/eval_loss_by_format.py groups the held-out loss by these.
    kinds = eval_kinds()
    held_out = load_samples([DATA / "eval.jsonl"], dedupe=False).samples
    found = [kinds.get(sample.prompt_text) for sample in held_out]
    assert None not in found
    assert {kind: found.count(kind) for kind in set(found)} == {
        "pdca": 9, "tron": 9, "typescript": 9, "refactor": 9, "tool": 8, "refusal": 8,
        "general": 8}
