"""Several candidates in one gate session (``--model`` given more than once): every item that
needs a model runs once per candidate, each candidate gets its own verdict, and a table holds
them with pairwise McNemar tests; the session's status follows the rule in docs/verdict.md.

Two models on one loopback Ollama double: ``echo`` answers with the prompt's words (passes the
project's validator), ``mute`` always answers the same unrelated words (fails it).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.exit_codes import ExitCode
from loragate.gating.candidates import CandidatesDocument, session_exit_status
from loragate.gating.session import MODEL_ROLE, candidate_name, candidates_of
from tests.ollama_double import OllamaDouble, ScriptedBackend
from tests.test_gating_project import HARNESS, _canary_file, _closed_port, user_project
from tests.verdicts import document


@pytest.fixture
def two_models(monkeypatch: pytest.MonkeyPatch):
    models = {"echo": ScriptedBackend(),
              "mute": ScriptedBackend(reply="nothing to see", digest="d2")}
    with OllamaDouble(models) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        yield models


def project_with_canaries(pytester: pytest.Pytester) -> Path:
    project = user_project(pytester, validator="return 'word' in text")
    config = json.loads((project / "loragate.json").read_text())
    config["canaries"] = {"file": _canary_file(project / "canaries.jsonl",
                                               {"c1": "c1", "c2": "c2"})}
    (project / "loragate.json").write_text(json.dumps(config))
    return project


def read(project: Path, name: str) -> dict:
    return json.loads((project / "reports" / name).read_text())


def test_each_candidate_is_judged_on_every_item_and_gets_its_own_verdict(pytester, two_models):
    project = project_with_canaries(pytester)
    result = pytester.runpytest("--model=ollama:echo", "--model=ollama:mute",
                                "--baseline=ollama:echo", "-v")
    out = result.stdout.str()
    result.stdout.fnmatch_lines([f"*{HARNESS}[[]p0-echo[]]*PASSED*",
                                 f"*{HARNESS}[[]p0-mute[]]*FAILED*",
                                 "*canary[[]c1-mute[]]*FAILED*"])
    # One candidate cleared: the rule's 0, named with the best one.
    assert result.ret == ExitCode.CLEARED, out[-3000:]
    echo, mute = read(project, "verdict-echo.json"), read(project, "verdict-mute.json")
    assert (echo["verdict"], mute["verdict"]) == ("cleared", "blocked")
    assert echo["model"]["spec"] == "ollama:echo" and mute["model"]["spec"] == "ollama:mute"
    assert echo["harnesses"][HARNESS]["n"] == mute["harnesses"][HARNESS]["n"] == 4
    assert mute["canaries"]["regressions"] == ["c1", "c2"]
    assert not (project / "reports" / "verdict.json").exists()
    assert (project / "reports" / "report-echo.html").is_file()
    table = CandidatesDocument.read(project / "reports" / "verdict-candidates.json")
    assert (table.cleared, table.best, table.exit_status) == (["echo"], "echo", 0)
    gates = next(p for p in table.pairs if p.section == "gates")
    assert (gates.compared, gates.only_a_passed, gates.only_b_passed) == (4, 4, 0)
    assert gates.mcnemar_p == pytest.approx(0.125)
    canaries = next(p for p in table.pairs if p.section == "canaries")
    assert (canaries.compared, canaries.only_a_passed) == (2, 2)
    assert "loragate candidates" in out and "echo vs mute [gates]" in out
    page = (project / "reports" / "report-candidates.html").read_text()
    assert 'href="report-echo.html"' in page and 'href="report-mute.html"' in page
    assert "best overall: <strong>echo</strong>" in page and "0.125" in page
    assert "loragate verdict: mute" in out
    # The baseline is the candidate echo here: one answer serves both through the response
    # cache, and the baseline answers each canary once, not once per candidate.
    assert len([p for p in two_models["echo"].seen if "c1" in str(p)]) == 1


def test_no_candidate_cleared_is_blocked_and_names_are_made_unique(pytester, two_models):
    project = user_project(pytester, validator="return 'word' in text")
    result = pytester.runpytest("--model=ollama:mute", "--model=ollama:mute")
    assert result.ret == ExitCode.BLOCKED, result.stdout.str()[-2000:]
    table = read(project, "verdict-candidates.json")
    assert [row["name"] for row in table["candidates"]] == ["mute", "mute-2"]
    assert table["cleared"] == [] and table["best"] is None


def test_named_candidates_and_test_file_items_run_per_candidate(pytester, two_models):
    project = user_project(pytester, validator="return 'word' in text")
    pytester.makepyfile(test_own="""
        import pytest

        @pytest.mark.harness("echo_check")
        def test_own(prompt_record, generate_answer, gate_sample):
            answer = generate_answer(prompt_record["messages"]).text
            gate_sample.record("word" in answer, "no word")

        def test_plain():
            assert True
    """)
    result = pytester.runpytest("--model=new=ollama:echo", "--model=old=ollama:mute", "-v")
    result.stdout.fnmatch_lines(["*test_own[[]p0-new[]]*", "*test_own[[]p0-old[]]*"])
    # 4 prompts x 2 candidates (old fails each) + one plain test, run once.
    result.assert_outcomes(passed=5, failed=4)
    assert result.ret == 0
    table = read(project, "verdict-candidates.json")
    assert table["pairs"][0]["compared"] == 4  # paired by the prompt's id
    assert read(project, "verdict-new.json")["verdict"] == "cleared"
    assert read(project, "verdict-old.json")["verdict"] == "blocked"


def test_a_failed_ordinary_test_is_in_every_candidates_verdict(pytester, two_models):
    project = user_project(pytester, validator="return 'word' in text")
    pytester.makepyfile(test_broken="def test_broken():\n    assert 1 + 1 == 3\n")
    result = pytester.runpytest("--model=ollama:echo", "--model=b=ollama:echo")
    assert result.ret == ExitCode.BLOCKED
    for name in ("echo", "b"):
        assert read(project, f"verdict-{name}.json")["verdict"] == "blocked"


def test_a_candidate_that_cannot_be_reached_makes_the_session_an_error(pytester, two_models):
    user_project(pytester, validator="return 'word' in text")
    port = _closed_port()
    # In a process of its own (see test_model_judge's judge-down test).
    result = pytester.runpytest_subprocess("--model=ollama:echo",
                                           f"--model=gone=openai:http://127.0.0.1:{port}/v1#m")
    assert result.ret == ExitCode.GATE_ERROR
    assert f"127.0.0.1:{port}" in result.stdout.str() + result.stderr.str()


def test_one_model_keeps_the_one_verdict_layout(pytester, two_models):
    project = user_project(pytester, validator="return 'word' in text")
    result = pytester.runpytest("--model=ollama:echo", "-v")
    result.stdout.fnmatch_lines([f"*{HARNESS}[[]p0[]]*PASSED*"])
    assert result.ret == 0
    assert (project / "reports" / "verdict.json").is_file()
    assert not (project / "reports" / "verdict-candidates.json").exists()


# -- the rule and the names, as functions -----------------------------------------------------


@pytest.mark.parametrize(("spec", "name"), [
    ("gguf:/models/web4-agent.Q4_K_M.gguf", "web4-agent.Q4_K_M"),
    ("gguf:/m/base.gguf@/m/adapter.gguf", "base"),
    ("ollama:web4-agent:latest", "web4-agent-latest"),
    ("openai:http://127.0.0.1:8000/v1#tuned", "tuned"),
    ("hf:outputs/merged", "merged"),
])
def test_a_candidate_is_named_after_its_spec(spec, name):
    assert candidate_name(spec) == name


def test_one_candidate_keeps_the_model_role_and_several_get_their_own():
    assert candidates_of(["ollama:a"])[0].role == MODEL_ROLE
    several = candidates_of(["x=ollama:a", "ollama:a", "ollama:a"])
    assert [(c.name, c.role) for c in several] == [
        ("x", "model[x]"), ("a", "model[a]"), ("a-2", "model[a-2]")]
    # A spec with '=' after its kind is a spec, not a name.
    assert candidates_of(["gguf:/m/a=b.gguf"])[0].spec == "gguf:/m/a=b.gguf"


def test_a_name_the_user_gave_twice_is_refused_and_never_renumbered():
    with pytest.raises(ValueError, match=r"the name\(s\) \['a'\] are given to more than one"):
        candidates_of(["a=ollama:x", "a=ollama:y"])
    # A derived name gives way to a given one, wherever it comes in the list.
    mixed = candidates_of(["ollama:a", "a=ollama:b"])
    assert [(c.name, c.spec) for c in mixed] == [("a-2", "ollama:a"), ("a", "ollama:b")]


def test_a_name_given_twice_is_a_usage_error_before_any_answer(pytester, two_models):
    user_project(pytester)
    result = pytester.runpytest("--model=a=ollama:good", "--model=a=ollama:bad")
    assert result.ret == ExitCode.USAGE
    assert "given to more than one model" in result.stderr.str()


@pytest.mark.parametrize(("statuses", "expected"), [
    ((0, 1), 0), ((1, 1), 1), ((0, 6), 6), ((1, 6), 6), ((0, 0), 0)])
def test_the_session_status_rule(statuses, expected):
    verdicts = {0: "cleared", 1: "blocked", 6: "error"}
    documents = {f"m{i}": document(verdict=verdicts[s]) for i, s in enumerate(statuses)}
    assert session_exit_status(documents) == expected


@pytest.mark.parametrize("down", ["model", "baseline"])
def test_a_canary_whose_server_failed_is_not_judged(pytester, monkeypatch, down):
    # Found by an outside probe: a baseline server answering 500 made every canary an
    # "improvement" and the run cleared; a model server answering 500 made them regressions.
    models = {"up": ScriptedBackend(),
              "down": ScriptedBackend(fail_times=10**6, digest="d-down")}
    with OllamaDouble(models) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = project_with_canaries(pytester)
        model, baseline = ("down", "up") if down == "model" else ("up", "down")
        result = pytester.runpytest(f"--model=ollama:{model}", f"--baseline=ollama:{baseline}")
    out = result.stdout.str()
    assert result.ret == ExitCode.GATE_ERROR, out[-3000:]
    verdict = read(project, "verdict.json")
    assert verdict["verdict"] == "error"
    canaries = verdict["canaries"] or {}  # none judged: no section at all
    assert not canaries.get("regressions") and not canaries.get("improvements")
    assert any(f"the {down}'s answer failed" in e for e in verdict["gate_errors"]), \
        verdict["gate_errors"]
