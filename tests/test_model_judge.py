"""Model-graded harnesses: a judge model with a rubric, its answer parsed to PASS/FAIL, its
agreement with labelled answers measured and required."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loragate.harnesses.model_judge import JudgeAnswerError, JudgeSpec, ModelJudge
from tests.ollama_double import ScriptedBackend
from tests.test_gating_project import (
    HARNESS,
    _closed_port,
    ollama_model,
    user_project,
    verdict_of,
)

__all__ = ["ollama_model"]  # the fixture, used by name below

# The echo double answers with the rubric's last words: the rubric decides, as a judge would.
RUBRIC = ("Question: {{ prompt }}\nAnswer: {{ answer }}\nDoes the answer avoid word1? "
          "Verdict: {{ 'FAIL' if 'word1' in answer else 'PASS' }}")


def judge(rubric: str = RUBRIC) -> ModelJudge:
    return ModelJudge(JudgeSpec(model="scripted:test", rubric=rubric), ScriptedBackend())


def test_the_rubric_sees_the_record_the_answer_and_the_prompt():
    record = {"id": "a", "messages": [{"role": "user", "content": "say something"}]}
    backend = ScriptedBackend()
    verdict = ModelJudge(JudgeSpec(model="scripted:test", rubric=RUBRIC), backend)
    assert verdict("fine words", record).passed
    failed = verdict("word1 here", record)
    assert not failed.passed and failed.reasons[0].startswith("judge: ")
    asked = backend.seen[-1][-1].content
    assert "Question: say something" in asked and "Answer: word1 here" in asked


def test_an_unknown_rubric_variable_is_an_error_not_a_blank():
    with pytest.raises(Exception, match="nope"):
        judge("{{ nope }} PASS")("text", {"id": "a"})


@pytest.mark.parametrize(("said", "passed"), [
    ("The answer is fine.\nPASS", True),
    ("Reasoning...\nVerdict: FAIL", False),
    ("PASS\nOn reflection it misses the point.\nFAIL", False),
    ("FAIL\nAnswer PASS or FAIL: PASS or FAIL", False),  # a line with both is no verdict
    ("pass", True),
])
def test_the_last_line_with_one_verdict_decides(said, passed):
    assert judge().verdict_of(said) is passed


@pytest.mark.parametrize("said", ["", "I cannot tell.", "PASS or FAIL?"])
def test_an_answer_without_a_verdict_is_an_error(said):
    with pytest.raises(JudgeAnswerError, match="neither PASS nor FAIL"):
        judge().verdict_of(said)


@given(st.lists(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40)
                .filter(lambda line: "pass" not in line.lower() and "fail" not in line.lower()
                        and "\n" not in line and "\r" not in line), max_size=5),
       st.booleans())
def test_reasoning_before_a_final_verdict_never_changes_it(lines, passed):
    said = "\n".join([*lines, "Verdict: " + ("PASS" if passed else "FAIL")])
    assert judge().verdict_of(said) is passed


# -- in a gate session -------------------------------------------------------------------------


def judged_project(pytester, *, judge_settings=None, calibration=None):
    settings = {"validator": None, "judge": {"model": "ollama:echo", "rubric": RUBRIC,
                                             "max_tokens": 64, **(judge_settings or {})}}
    if calibration is not None:
        path = pytester.path / "calibration.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in calibration))
        settings["calibration"] = "calibration.jsonl"
    return user_project(pytester, harness=settings)


CALIBRATION = [{"answer": "plain words", "passed": True},
               {"answer": "more plain words", "passed": True},
               {"answer": "word1 again", "passed": False},
               {"answer": "word1 is fine here", "passed": True}]  # the judge gets this wrong


def test_a_judged_harness_gates_and_records_its_judges_agreement(pytester, ollama_model):
    project = judged_project(pytester, calibration=CALIBRATION)
    result = pytester.runpytest("--model", "ollama:echo")
    # The echo model says the prompt's words back: "say word1" is judged FAIL.
    result.assert_outcomes(passed=3, failed=1)
    document = verdict_of(project)
    failed = [s for s in document["samples"] if not s["passed"]]
    assert [s["sample_id"] for s in failed] == ["p1"] and "judge:" in failed[0]["reason"]
    measured = document["judges"][HARNESS]
    assert measured["n"] == 4 and measured["accuracy"] == pytest.approx(0.75)
    assert document["verdict"] == "cleared"  # 3/4 against a 0.75 threshold


def test_a_judge_below_its_required_agreement_leaves_the_gate_undecided(pytester,
                                                                        ollama_model):
    project = judged_project(pytester, calibration=CALIBRATION,
                             judge_settings={"min_agreement": 0.9})
    result = pytester.runpytest("--model", "ollama:echo")
    document = verdict_of(project)
    assert document["verdict"] == "error" and result.ret == 6
    assert any("agrees with its calibration set 0.750 < judge.min_agreement 0.9" in reason
               for reason in document["undecided_reasons"])


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_a_judge_server_that_is_down_is_tried_once_and_leaves_the_gate_undecided(
        pytester, ollama_model, workers):
    judged_project(pytester, judge_settings={
        "model": f"openai:http://127.0.0.1:{_closed_port()}/v1#judge"})
    # In a process of its own: pytester's in-process runs restore sys.modules after each run,
    # and an httpcore imported anew there raises errors httpx no longer maps. Under xdist the
    # judge fails on a worker: its cause must still reach the controller's verdict.
    result = pytester.runpytest_subprocess("--model", "ollama:echo", *workers)
    out = result.stdout.str()
    assert result.ret == 6, out[-3000:]
    document = verdict_of(pytester.path)
    assert document["verdict"] == "error"
    assert all(s["error"] and s["reason"].startswith("could not be judged: judge openai:")
               for s in document["samples"])
    # One line per sample, no traceback, and the judge's failure named once as the cause.
    assert "Traceback" not in out and "raise " not in out
    assert [e for e in document["gate_errors"] if "judge openai:" in e][:1]
    assert len([e for e in document["gate_errors"] if "judge openai:" in e]) == 1


def test_a_judge_answer_that_says_neither_is_an_error_of_the_sample(pytester, ollama_model):
    judged_project(pytester, judge_settings={"rubric": "Question: {{ prompt }} undecided"})
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == 6
    document = verdict_of(pytester.path)
    assert all("said neither PASS nor FAIL" in s["reason"] for s in document["samples"])
    assert "Traceback" not in result.stdout.str()


@pytest.mark.parametrize(("settings", "message"), [
    ({"validator": "my_checks:echo_check"}, "give a validator or a judge, not both"),
    ({"judge": {"model": "ollama:echo", "rubric": "PASS", "min_agreement": 0.8}},
     "judge.min_agreement: needs gates.harnesses.echo_check.calibration"),
    ({"judge": {"model": "nonsense", "rubric": "PASS"}}, "judge.model'"),
])
def test_a_judge_that_cannot_be_used_is_a_usage_error(pytester, ollama_model, settings,
                                                      message):
    harness = {"validator": None, "judge": {"model": "ollama:echo", "rubric": RUBRIC}}
    harness.update(settings)
    user_project(pytester, harness=harness)
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


def test_a_judges_gguf_file_is_relative_to_its_config(tmp_path):
    from loragate.config import load_config

    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "loragate.json").write_text(json.dumps({"gates": {"harnesses": {"j": {
        "gate": "ship", "threshold": 0.9, "judge": {"model": "gguf:models/judge.gguf+a.gguf",
                                                    "rubric": "PASS"}}}}}))
    spec = load_config(folder / "loragate.json", check_paths=False,
                       gating_only=True).gates.spec("j")
    assert spec.judge.model == f"gguf:{folder / 'models/judge.gguf'}+{folder / 'a.gguf'}"
    assert spec.validator == f"judge:{spec.judge.model}" and not spec.builtin


def test_the_bundled_judge_demo_is_a_valid_project_with_balanced_labels():
    from pathlib import Path

    from loragate.config import load_config

    folder = Path(__file__).resolve().parents[1] / "data" / "judges" / "constructor_judge"
    spec = load_config(folder / "loragate.json", check_paths=False,
                       gating_only=True).gates.spec("constructor_judge")
    assert spec.judge is not None and spec.calibration == folder / "calibration.jsonl"
    labels = [json.loads(line)["passed"] for line in spec.calibration.read_text().splitlines()]
    assert labels.count(True) == labels.count(False) == 10
