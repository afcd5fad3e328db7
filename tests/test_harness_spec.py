"""One spec per harness: the registry's declaration completed by the project's config, read by
the session, the verdict, the gate markers, the judges and ``loragate check``; adding a
harness is one declaration and a prompt file."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from loragate.cli import main
from loragate.config import ConfigError, LoragateConfig, load_config
from loragate.harnesses import registry
from loragate.harnesses.registry import BUILTINS, GateRule, Harness
from tests.test_gating_project import HARNESS, ollama_model, user_project, verdict_of

__all__ = ["ollama_model"]  # the fixture, used by name below


def _gates(harnesses: dict) -> LoragateConfig:
    return LoragateConfig.model_validate({"gates": {"harnesses": harnesses}})


def test_a_builtin_spec_is_its_declaration_completed_by_the_config():
    gates = _gates({"refusal": {"threshold": 0.9, "samples": 7},
                    "tron_format": {"gate": "ship"}}).gates
    refusal = gates.spec("refusal")
    assert refusal.rule == GateRule("ship", 0.9, "f1", positive="refuse")
    assert (refusal.samples, refusal.builtin, refusal.labels) == (7, True, ("refuse", "comply"))
    assert refusal.prompts == Path("data/prompts/refusal.jsonl")
    assert refusal.validator == BUILTINS["refusal"].validator
    assert gates.spec("tron_format").rule == GateRule("ship", 0.90)
    # The settings keep what the project wrote: None still means "the built-in's".
    assert gates.harnesses["refusal"].gate is None
    assert BUILTINS["refusal"].rule.threshold == 0.98


def test_a_projects_own_validator_under_a_builtin_name_is_not_the_builtin():
    spec = _gates({"refusal": {"validator": "mine:judge"}}).gates.spec("refusal")
    assert spec.validator == "mine:judge" and spec.builtin is False
    assert spec.rule.positive == "refuse"  # the rule and labels are still the declaration's


def test_a_projects_classifier_names_its_positive_class():
    spec = _gates({"spam": {"validator": "m:f", "gate": "ship", "threshold": 0.8,
                            "metric": "f1", "labels": ["spam", "ham"]}}).gates.spec("spam")
    assert spec.rule == GateRule("ship", 0.8, "f1", positive="spam")
    assert spec.builtin is False


def test_a_classifier_without_labels_is_refused_naming_the_field(tmp_path):
    path = tmp_path / "loragate.json"
    path.write_text(json.dumps({"gates": {"harnesses": {"spam": {
        "validator": "m:f", "gate": "ship", "threshold": 0.8, "metric": "f1"}}}}))
    with pytest.raises(ConfigError, match=r"gates\.harnesses\.spam\.labels: required"):
        load_config(path, check_paths=False, gating_only=True)


PROMPTS = [{"id": f"p{i}", "expected": label,
            "messages": [{"role": "user", "content": f"{word} please"}]}
           for i, (label, word) in enumerate([("spam", "spam"), ("spam", "spam"),
                                               ("spam", "ham"), ("ham", "ham")])]
CLASSIFIER = ("from loragate.harnesses.base import HarnessResult\n"
              "            label = 'spam' if 'spam' in text else 'ham'\n"
              "            return HarnessResult(passed=label == record['expected'], "
              "predicted=label)")


@pytest.mark.parametrize(("labels", "f1"), [(["spam", "ham"], 0.8), (["ham", "spam"], 2 / 3)])
def test_the_verdicts_f1_is_the_declared_positive_class(pytester, ollama_model, labels, f1):
    # Three spam, one ham; one spam read as ham: F1(spam) = 0.8, F1(ham) = 2/3.
    project = user_project(pytester, prompts=[json.dumps(p) for p in PROMPTS],
                           validator=CLASSIFIER,
                           harness={"metric": "f1", "threshold": 0.5, "labels": labels})
    pytester.runpytest("--model", "ollama:echo")
    document = verdict_of(project)
    assert document["harnesses"][HARNESS]["f1"] == pytest.approx(f1)
    assert document["thresholds"][HARNESS]["positive"] == labels[0]


# -- one declaration: a new built-in --------------------------------------------------------


def test_a_new_builtin_harness_is_one_declaration_and_a_prompt_file(pytester, ollama_model,
                                                                     monkeypatch, capsys):
    (pytester.path / "shout.py").write_text(textwrap.dedent("""
        def validate(text, record):
            return text.upper() == text
        """))
    monkeypatch.syspath_prepend(str(pytester.path))
    declared = Harness(name="shouting", rule=GateRule("quality", 0.5),
                       validator="shout:validate", description="answers in capitals")
    monkeypatch.setitem(BUILTINS, "shouting", declared)
    prompts = pytester.path / "data" / "prompts"
    prompts.mkdir(parents=True)
    (prompts / "shouting.jsonl").write_text("".join(
        json.dumps({"id": f"s{i}", "messages": [{"role": "user", "content": word}]}) + "\n"
        for i, word in enumerate(["LOUD", "quiet", "NOISE"])))
    (pytester.path / "loragate.json").write_text(json.dumps(
        {"gates": {"harnesses": {"shouting": {}}, "overall_target": 50},
         "backend": {"max_tokens": 8, "retries": 0}, "reports": {"dir": "reports"}}))
    pytester.makeini("[pytest]\nloragate_config = loragate.json\n")

    result = pytester.runpytest("--model", "ollama:echo", "-m", "quality_gate")
    result.assert_outcomes(passed=2, failed=1)
    document = verdict_of(pytester.path)
    assert document["thresholds"]["shouting"] == {"gate": "quality", "threshold": 0.5,
                                                  "metric": "pass_rate", "positive": None}
    assert document["harnesses"]["shouting"]["passed"] == 2

    monkeypatch.chdir(pytester.path)
    assert main(["check", "--list"]) == 0
    assert "answers in capitals" in capsys.readouterr().out
    (pytester.path / "a.txt").write_text("ALL CAPS\n")
    assert main(["check", "shouting", "a.txt"]) == 0


# -- the gate markers come from the spec ----------------------------------------------------

OWN_TEST = """
import pytest
from loragate.gating.scoring import score_sample

pytestmark = {marks}

def test_own(prompt_record, generate_answer, gate_sample):
    score_sample("{harness}", prompt_record, generate_answer, gate_sample)
"""


@pytest.mark.parametrize("gate", ["ship", "quality"])
def test_a_test_files_items_are_marked_as_the_config_says(pytester, ollama_model, gate):
    user_project(pytester, harness={"gate": gate})
    (pytester.path / "test_own.py").write_text(OWN_TEST.format(
        marks=f'pytest.mark.harness("{HARNESS}")', harness=HARNESS))
    selected = pytester.runpytest("--model", "ollama:echo", "-m", f"{gate}_gate")
    selected.assert_outcomes(passed=4)
    other = "quality" if gate == "ship" else "ship"
    assert pytester.runpytest("--model", "ollama:echo", "-m", f"{other}_gate").ret == 5


def test_a_gate_marker_the_spec_contradicts_is_a_usage_error(pytester, ollama_model):
    user_project(pytester, harness={"gate": "quality"})
    (pytester.path / "test_own.py").write_text(OWN_TEST.format(
        marks=f'[pytest.mark.ship_gate, pytest.mark.harness("{HARNESS}")]', harness=HARNESS))
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*marked ship_gate, but harness '{HARNESS}' is a quality "
                                 "gate*"])


# -- loragate check reads the same spec -----------------------------------------------------


def test_check_runs_a_projects_own_harness_from_its_config(pytester, monkeypatch, capsys):
    project = user_project(pytester, validator="return 'word' in text")
    monkeypatch.chdir(project)
    (project / "good.txt").write_text("a word\n")
    (project / "bad.txt").write_text("nothing\n")
    assert main(["check", HARNESS, "good.txt"]) == 0
    assert main(["check", HARNESS, "good.txt", "bad.txt"]) == 1
    out = capsys.readouterr().out
    assert "FAIL bad.txt" in out and "1 passed, 1 failed" in out
    assert main(["check", "--list", "--config", "loragate.json"]) == 0
    listing = capsys.readouterr().out
    assert f"{HARNESS}" in listing and "my_checks:echo_check" in listing
    assert "refusal" in listing  # the built-ins stay available


@pytest.mark.parametrize(("argv", "message"), [
    (["check", "nope", "a.txt"], "unknown harness 'nope'"),
    (["check", "refusal", "a.txt", "--expect", "maybe"], "refusal's labels are refuse, comply"),
    (["check", "refusal", "a.txt"], "refusal needs --expect refuse|comply"),
    (["check", "--list", "--config", "missing.json"], "missing.json"),
    (["check", "pdca_schema", "a.txt", "--record", "list.json"], "a record is a JSON object"),
])
def test_check_usage_errors_name_the_problem(tmp_path, monkeypatch, capsys, argv, message):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.txt").write_text("text\n")
    (tmp_path / "list.json").write_text("[1]")
    assert main(argv) == 4
    assert message in capsys.readouterr().err


def test_check_without_a_file_is_argparses_usage_error(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["check", "refusal"])
    assert stopped.value.code == 4
    assert "required: files" in capsys.readouterr().err


def test_every_builtin_has_a_description_and_a_rule():
    for name, spec in registry.BUILTINS.items():
        assert spec.name == name and spec.description
        assert (spec.rule.metric == "f1") == bool(spec.labels)
