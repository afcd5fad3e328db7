"""A gate run tells the truth from any project: a failed ordinary test is never "cleared",
no Web4 default reaches another project, "nothing to gate" says so, validators return a
strict result, and every command shares one table of exit statuses."""

from __future__ import annotations

import json

import pytest

from loragate.config import LoragateConfig
from loragate.exit_codes import ExitCode
from loragate.gating.verdict import EXIT_STATUS
from loragate.harnesses.base import HarnessResult
from loragate.harnesses.registry import run_validator
from tests.test_gating_project import HARNESS, user_project, verdict_of

pytest_plugins = ["tests.test_gating_project"]


def test_a_failed_ordinary_test_beside_the_gates_blocks_the_verdict(pytester, ollama_model):
    project = user_project(pytester, validator="return True")
    pytester.makepyfile(test_broken="def test_arithmetic():\n    assert 1 + 1 == 3\n")
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == ExitCode.BLOCKED
    document = verdict_of(project)
    assert document["verdict"] == "blocked"
    assert any("test_arithmetic" in reason for reason in document["blocking_reasons"])
    assert "VERDICT: CLEARED" not in result.stdout.str()


def test_an_erroring_fixture_in_an_ordinary_test_blocks_too(pytester, ollama_model):
    project = user_project(pytester, validator="return True")
    pytester.makepyfile(test_broken=(
        "import pytest\n\n@pytest.fixture\ndef broken():\n    raise RuntimeError('no')\n\n"
        "def test_uses(broken):\n    pass\n"))
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == ExitCode.BLOCKED
    assert verdict_of(project)["verdict"] == "blocked"


def test_passing_ordinary_tests_leave_the_verdict_alone(pytester, ollama_model):
    project = user_project(pytester, validator="return True")
    pytester.makepyfile(test_fine="def test_ok():\n    assert True\n")
    assert pytester.runpytest("--model", "ollama:echo").ret == ExitCode.CLEARED
    assert verdict_of(project)["checks"] == []


def test_defaults_are_neutral_no_web4_system_prompt_or_harness():
    config = LoragateConfig()
    assert config.data_args.system_prompt is None
    assert config.gates.harnesses == {}


def test_the_web4_configs_name_their_own_system_prompt_and_harnesses():
    from pathlib import Path

    from loragate.config import load_config

    root = Path(__file__).resolve().parents[1]
    for path in sorted((root / "config").glob("*.json")):
        config = load_config(path, check_paths=False)
        assert (config.data_args.system_prompt or "").startswith("You are a Web4"), path
        assert len(config.gates.harnesses) == 6, path


def test_no_config_and_a_model_is_nothing_to_gate_with_a_hint(pytester, ollama_model):
    pytester.makepyfile(test_plain="def test_ok():\n    assert True\n")
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == ExitCode.NOTHING_TO_GATE
    result.stdout.fnmatch_lines(["*nothing to gate*loragate init*"])


def test_prompts_go_as_written_without_a_system_prompt(pytester, ollama_model):
    user_project(pytester, validator="return True")
    assert pytester.runpytest("--model", "ollama:echo").ret == 0
    sent = [prompt for prompt in ollama_model.seen if not isinstance(prompt, str)]
    assert sent and all(prompt[0].role == "user" for prompt in sent)


def test_each_sample_records_the_messages_as_the_model_got_them(pytester, ollama_model):
    project = user_project(pytester, validator="return True")
    config = json.loads((project / "loragate.json").read_text())
    config["data_args"] = {"system_prompt": "You answer in one word."}
    (project / "loragate.json").write_text(json.dumps(config))
    assert pytester.runpytest("--model", "ollama:echo").ret == 0
    document = json.loads((project / "reports" / "verdict.json").read_text())
    sample = next(s for s in document["samples"] if s["sample_id"] == "p1")
    assert sample["messages"] == [{"role": "system", "content": "You answer in one word."},
                                  {"role": "user", "content": "say word1"}]
    page = (project / "reports" / "report.html").read_text()
    assert "You answer in one word." in page and "as the model got them" in page


@pytest.mark.parametrize("bad", ["'false'", "1", "None"])
def test_a_validator_result_that_is_not_a_bool_is_an_error_not_a_pass(bad):
    with pytest.raises(TypeError, match="passed"):
        run_validator(lambda text, record: HarnessResult(passed=eval(bad)), "x", {})


def test_every_verdict_maps_to_the_one_exit_table():
    assert EXIT_STATUS == {"cleared": ExitCode.CLEARED, "blocked": ExitCode.BLOCKED,
                           "error": ExitCode.GATE_ERROR}
    from loragate.gating import report_cli
    from loragate.harnesses import cli as check_cli

    assert report_cli.EXIT_USAGE == check_cli.EXIT_USAGE == ExitCode.USAGE


def test_an_error_verdict_prints_its_reason_in_the_terminal():
    from loragate.gating.report import render_text

    document = {"harnesses": {}, "overall": {"score": 0.0, "target": 90.0, "passed": False},
                "verdict": "error", "blocking_reasons": [],
                "undecided_reasons": ["gate 'x' undecided: 3 errors"],
                "gate_errors": ["model server http://127.0.0.1:9 did not answer"]}
    text = render_text(document)
    assert "undecided: 3 errors" in text and "did not answer" in text


def test_a_canary_validator_of_the_project_is_checked_at_load(tmp_path):
    from loragate.canaries import CanaryError, load_canaries

    path = tmp_path / "canaries.jsonl"
    path.write_text(json.dumps({"id": "k1", "task": "t", "messages": [
        {"role": "user", "content": "q"}], "check": {"validator": "no_such_name"}}) + "\n")
    with pytest.raises(CanaryError, match=r"canaries.jsonl:1.*unknown validator"):
        load_canaries(path)


def test_user_harness_name_is_what_the_item_is_called(pytester, ollama_model):
    user_project(pytester, validator="return True")
    result = pytester.runpytest("--model", "ollama:echo", "-v")
    result.stdout.fnmatch_lines([f"*{HARNESS}[[]p0[]]*PASSED*"])


def test_a_path_option_written_as_two_words_outside_the_project_is_refused(
        pytester, ollama_model, tmp_path_factory):
    user_project(pytester, validator="return True")
    elsewhere = tmp_path_factory.mktemp("elsewhere") / "v.json"
    elsewhere.write_text("{}")
    result = pytester.runpytest("--model", "ollama:echo", "--verdict-json", str(elsewhere))
    assert result.ret == ExitCode.USAGE
    assert f"--verdict-json={elsewhere}" in result.stderr.str()
    # The '=' form keeps the project (its pytest.ini and loragate.json) and writes there.
    result = pytester.runpytest("--model", "ollama:echo", f"--verdict-json={elsewhere}")
    assert result.ret == ExitCode.CLEARED
    assert json.loads(elsewhere.read_text())["verdict"] == "cleared"


def test_spaced_path_options_inside_the_project_are_fine(tmp_path):
    from loragate.gating.plugin import spaced_path_options

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "v.json").write_text("{}")
    assert spaced_path_options(["--verdict-json", "reports/v.json"], tmp_path) == []
    assert spaced_path_options(["--model", "gguf:/x.gguf"], tmp_path) == []
    assert spaced_path_options(["--model", str(tmp_path.parent)], tmp_path) == [
        f"--model {tmp_path.parent}"]


@pytest.mark.parametrize(("verdict", "status", "expected"), [
    ("cleared", 0, ExitCode.CLEARED), ("blocked", 1, ExitCode.BLOCKED),
    ("error", 1, ExitCode.GATE_ERROR), (None, 4, ExitCode.USAGE),
    (None, 5, ExitCode.NOTHING_TO_GATE), (None, 3, ExitCode.GATE_ERROR),
    (None, 0, ExitCode.GATE_ERROR),
])
def test_the_pipeline_status_is_the_verdicts_or_why_none_was_written(verdict, status, expected):
    from loragate.pipeline import verdict_exit_status
    from tests.verdicts import document

    tuned = document(verdict=verdict) if verdict else None
    assert verdict_exit_status(tuned, status) == expected


def test_a_recording_is_made_only_on_purpose_into_its_own_folder(tmp_path):
    from loragate.pipeline import record_run

    reports = tmp_path / "reports"
    reports.mkdir()
    for name in ("verdict-tuned.json", "verdict-base.json", "comparison.md", "timings.json"):
        (reports / name).write_text(name)
    stats = tmp_path / "training_stats.json"
    stats.write_text("{}")
    target = record_run(reports, "cpu-full", stats)
    assert target == reports / "recorded" / "cpu-full"
    assert sorted(p.name for p in target.iterdir()) == [
        "comparison.md", "timings.json", "training_stats.json", "verdict-base.json",
        "verdict-tuned.json"]


def test_a_verdict_that_cannot_be_written_is_a_gate_error_in_one_line(pytester, ollama_model):
    user_project(pytester, validator="return True")
    (pytester.path / "blocker").write_text("a file where the folder should be")
    result = pytester.runpytest("--model", "ollama:echo",
                                "--verdict-json=blocker/verdict.json")
    assert result.ret == ExitCode.GATE_ERROR
    assert "loragate: cannot write" in result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_a_validator_that_never_returns_is_an_error_not_a_hang(pytester, ollama_model):
    project = user_project(pytester, validator="import time; time.sleep(30); return True",
                           n_prompts=2)
    config = json.loads((project / "loragate.json").read_text())
    config["gates"]["validator_timeout_s"] = 0.5
    (project / "loragate.json").write_text(json.dumps(config))
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == ExitCode.GATE_ERROR
    document = verdict_of(project)
    assert document["verdict"] == "error"
    assert all(s["error"] and "did not return within 0.5 s" in s["reason"]
               for s in document["samples"])


def test_the_starter_validator_reads_each_json_object_on_its_own(tmp_path, monkeypatch):
    import importlib
    import sys

    from loragate.cli import main

    assert main(["init", str(tmp_path / "proj")]) == 0
    monkeypatch.syspath_prepend(str(tmp_path / "proj"))
    sys.modules.pop("my_harnesses", None)
    starter = importlib.import_module("my_harnesses")
    two_blocks = ('First a sketch: {"name": "Ada"}\n\nThe answer:\n```json\n'
                  '{"name": "Ada", "email": "ada@example.org"}\n```')
    assert starter.json_keys(two_blocks, {"expected_keys": ["name", "email"]}).passed
    assert not starter.json_keys('{"name": "Ada"}', {"expected_keys": ["email"]}).passed
    assert not starter.json_keys("{not json}", {"expected_keys": []}).passed


@pytest.mark.parametrize(("options", "message"), [
    (["--seed=-1"], "--seed: must be between 0 and 4294967294"),
    (["--seed=4294967295"], "--seed: must be between 0"),
    (["--seed=4294967294", "--repeats=2"], "--seed plus --repeats goes past"),
    (["--temperature=-1"], "--temperature: must be between 0 and 100"),
    (["--temperature=nan"], "--temperature: must be between 0 and 100"),
])
def test_a_seed_or_temperature_no_backend_can_apply_is_a_usage_error(pytester, ollama_model,
                                                                     options, message):
    # llama.cpp reads seed -1 as "random": recorded as reproducible, each run would differ.
    user_project(pytester, validator="return True")
    result = pytester.runpytest("--model=ollama:echo", *options)
    assert result.ret == ExitCode.USAGE
    assert message in result.stderr.str()


def test_generation_options_refuse_a_seed_out_of_the_unsigned_range():
    from loragate.backends.base import GenerationOptions

    for seed in (-1, 2**32 - 1, 2**40):
        with pytest.raises(ValueError, match="seed"):
            GenerationOptions(seed=seed)


def test_a_validator_that_edits_its_record_changes_neither_the_ids_nor_the_next_prompt(
        pytester, ollama_model):
    project = user_project(pytester, n_prompts=2, validator=(
        "record['messages'][-1]['content'] += ' [EDITED]'; record['id'] += '-EDITED'; "
        "return True"))
    result = pytester.runpytest("--model=ollama:echo", "--repeats=2", "--concurrency=1")
    assert result.ret == ExitCode.CLEARED
    samples = verdict_of(project)["samples"]
    assert sorted(s["sample_id"] for s in samples) == ["p0", "p0", "p1", "p1"]
    assert not any("EDITED" in json.dumps(s["messages"]) for s in samples)
    asked = [str(prompt) for prompt in ollama_model.seen]
    assert asked and not any("EDITED" in prompt for prompt in asked)


def test_a_numpy_truth_value_is_a_bool_and_other_types_are_named_in_full():
    import numpy as np

    assert run_validator(lambda text, record: np.float64(0.9) > 0.5, "x", {}).passed is True
    assert run_validator(lambda text, record: np.float64(0.1) > 0.5, "x", {}).passed is False
    with pytest.raises(TypeError, match="returned numpy.float64; expected HarnessResult"):
        run_validator(lambda text, record: np.float64(0.9), "x", {})


def test_the_plugin_loads_without_an_assert_rewrite_warning(pytester):
    # Every project's every run printed "Module already imported so cannot be rewritten".
    user_project(pytester)
    result = pytester.runpytest_subprocess("-W", "error::pytest.PytestAssertRewriteWarning",
                                           "-p", "no:cacheprovider")
    assert "PytestAssertRewriteWarning" not in result.stdout.str() + result.stderr.str()
    assert result.ret == ExitCode.NOTHING_TO_GATE


def test_an_answer_that_failed_ahead_is_not_asked_for_again_one_at_a_time(
        pytester, ollama_model):
    # The retry policy already ran; a second round per item doubled a failing server's time.
    from loragate.backends.faults import TransientError

    ollama_model.fail_times = 10**6
    ollama_model.error = TransientError
    user_project(pytester, n_prompts=4)
    result = pytester.runpytest("--model=ollama:echo", "--concurrency=4")
    assert result.ret == ExitCode.GATE_ERROR
    assert ollama_model.calls == 4  # retries 0 in the project's config: one attempt each


def test_a_validator_that_raises_is_an_error_in_one_line_naming_where(pytester, ollama_model):
    project = user_project(pytester, n_prompts=3, validator="return {}['missing']")
    result = pytester.runpytest("--model=ollama:echo")
    assert result.ret == ExitCode.GATE_ERROR
    output = result.stdout.str()
    assert "Traceback" not in output and output.count("\n") < 80
    assert "During handling" not in output
    assert "could not be judged: could not be judged" not in output
    reasons = {s["reason"] for s in verdict_of(project)["samples"]}
    assert len(reasons) == 1
    assert reasons.pop().startswith("could not be judged: the validator raised KeyError: "
                                    "'missing' (at ")


@pytest.mark.parametrize("concurrency", [1, 4])  # each item alone; answers generated ahead
def test_a_server_error_that_escapes_generation_is_one_line_per_sample(pytester, concurrency):
    # A 404 on the chat route while /v1/models answers: a BackendError, not a model answer.
    from loragate.backends.openai_double import OpenAIDouble

    project = user_project(pytester, n_prompts=3)
    with OpenAIDouble(fail_marker="say", fail_status=404) as url:
        result = pytester.runpytest(f"--model=openai:{url}#double",
                                    f"--concurrency={concurrency}")
    assert result.ret == ExitCode.GATE_ERROR
    assert "Traceback" not in result.stdout.str() and "ERROR at setup" not in result.stdout.str()
    samples = verdict_of(project)["samples"]
    assert len(samples) == 3 and all(s["error"] and "generation error" in s["reason"]
                                     and "HTTP 404" in s["reason"] for s in samples)


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_verdict_path_that_is_a_folder_or_a_pipe_is_a_usage_error_before_any_answer(
        pytester, ollama_model, kind):
    import os

    user_project(pytester)
    target = pytester.path / "out"
    target.mkdir() if kind == "folder" else os.mkfifo(target)
    result = pytester.runpytest("--model=ollama:echo", "--verdict-json=out")
    assert result.ret == ExitCode.USAGE
    assert "cannot write the verdict to out" in result.stderr.str()
    assert ollama_model.calls == 0


def test_a_verdict_path_that_is_a_symlink_writes_its_target_and_keeps_the_link(
        pytester, ollama_model):
    project = user_project(pytester)
    (project / "kept").mkdir()
    link = project / "v.json"
    link.symlink_to(project / "kept" / "verdict.json")
    result = pytester.runpytest("--model=ollama:echo", "--verdict-json=v.json")
    assert result.ret == ExitCode.CLEARED
    assert link.is_symlink()
    assert json.loads((project / "kept" / "verdict.json").read_text())["verdict"] == "cleared"


def test_a_run_that_ends_without_a_verdict_leaves_no_earlier_one_behind(pytester, ollama_model):
    project = user_project(pytester)
    assert pytester.runpytest("--model=ollama:echo").ret == ExitCode.CLEARED
    assert verdict_of(project)["verdict"] == "cleared"
    prompts = project / "prompts" / f"{HARNESS}.jsonl"
    prompts.write_text(prompts.read_text() + "{broken\n")
    result = pytester.runpytest("--model=ollama:echo")
    assert result.ret == ExitCode.USAGE
    assert verdict_of(project) is None
    assert not (project / "reports" / "report.html").exists()
    prompts.write_text(prompts.read_text().replace("{broken\n", ""))
    assert pytester.runpytest("--model=ollama:echo").ret == ExitCode.CLEARED
    # A spec refused before collection: the earlier verdict goes too.
    assert pytester.runpytest("--model=nosuch:spec").ret == ExitCode.USAGE
    assert verdict_of(project) is None


def test_a_one_model_run_keeps_an_earlier_candidates_runs_files(pytester, ollama_model):
    # Not this run's paths, never read as its verdict; `report --history` may want them.
    project = user_project(pytester)
    reports = project / "reports"
    assert pytester.runpytest("--model=a=ollama:echo", "--model=b=ollama:echo").ret == 0
    assert pytester.runpytest("--model=ollama:echo").ret == ExitCode.CLEARED
    assert {"verdict-a.json", "verdict-candidates.json", "verdict.json"} <= {
        p.name for p in reports.iterdir()}


def test_a_configured_harness_with_an_empty_prompt_file_is_a_usage_error(pytester, ollama_model):
    project = user_project(pytester)
    config = json.loads((project / "loragate.json").read_text())
    config["gates"]["harnesses"]["strict"] = {
        **config["gates"]["harnesses"][HARNESS], "prompts": "prompts/empty.jsonl"}
    (project / "loragate.json").write_text(json.dumps(config))
    (project / "prompts" / "empty.jsonl").write_text("\n\n")
    result = pytester.runpytest("--model=ollama:echo")
    assert result.ret == ExitCode.USAGE
    assert "harness 'strict': " in result.stderr.str()
    assert "empty.jsonl: no prompt records" in result.stderr.str()
