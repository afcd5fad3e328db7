"""Gating from any project: user harnesses through the config, items without a test file,
a plugin that leaves plain sessions alone, and exit statuses that tell a gate that could not
run (6) or was misused (4) from a model that failed (1).

The model in most of these is a loopback Ollama double answering with the prompt's words
(tests/ollama_double.py): fast, and a real HTTP server for the official client.
"""

from __future__ import annotations

import json
import socket
import textwrap
from pathlib import Path

import pytest

from loragate.gating.outcomes import SampleOutcome
from loragate.gating.verdict import GateRule
from tests.ollama_double import OllamaDouble, ScriptedBackend
from tests.verdicts import verdict_json

HARNESS = "echo_check"


def user_project(pytester: pytest.Pytester, *, validator: str = "return True",
                 harness: dict | None = None, prompts: list[str] | None = None,
                 n_prompts: int = 4) -> Path:
    """A project with only a config, a prompt file, a validator module and a pytest.ini."""
    settings = {"gate": "ship", "threshold": 0.75, "validator": f"my_checks:{HARNESS}",
                "prompts": f"prompts/{HARNESS}.jsonl", **(harness or {})}
    config = {"gates": {"harnesses": {HARNESS: settings}, "overall_target": 75},
              "backend": {"max_tokens": 16, "retries": 0},
              "reports": {"dir": "reports"}}
    (pytester.path / "loragate.json").write_text(json.dumps(config))
    (pytester.path / "my_checks.py").write_text(textwrap.dedent(f"""
        def {HARNESS}(text, record):
            {validator}
        """))
    (pytester.path / "prompts").mkdir(exist_ok=True)
    lines = prompts if prompts is not None else [
        json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": f"say word{i}"}]})
        for i in range(n_prompts)]
    (pytester.path / "prompts" / f"{HARNESS}.jsonl").write_text("\n".join(lines) + "\n")
    pytester.makeini("[pytest]\nloragate_config = loragate.json\n")
    return pytester.path


@pytest.fixture
def ollama_model(monkeypatch: pytest.MonkeyPatch):
    """``ollama:echo`` served by the double; yields the scripted backend behind it."""
    scripted = ScriptedBackend()
    with OllamaDouble({"echo": scripted}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        yield scripted


def verdict_of(project: Path) -> dict | None:
    path = project / "reports" / "verdict.json"
    return json.loads(path.read_text()) if path.is_file() else None


# -- the plugin in a plain session ------------------------------------------------------------


def test_installed_plugin_changes_nothing_in_a_plain_session(pytester):
    # A config that would not even parse: a plain session must not read it.
    (pytester.path / "broken.json").write_text("{not json")
    pytester.makeini("[pytest]\nloragate_config = broken.json\n")
    pytester.makepyfile(test_unit="def test_ok():\n    assert 1\n\ndef test_bad():\n    assert 0\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == 1
    assert "loragate verdict" not in result.stdout.str()
    assert not (pytester.path / "reports").exists()
    pytester.makepyfile(test_unit="def test_ok():\n    assert 1\n")
    assert pytester.runpytest().ret == 0


def test_plugin_declares_its_options_and_unregisters_at_unconfigure(pytester):
    config = pytester.parseconfigure()
    assert config.pluginmanager.get_plugin("loragate-verdict") is not None
    assert "ship_gate" in "\n".join(config.getini("markers"))
    config._ensure_unconfigure()
    assert config.pluginmanager.get_plugin("loragate-verdict") is None


# -- a project of its own ----------------------------------------------------------------------


def _canary_file(path: Path, checks: dict[str, str]) -> str:
    """A canary file whose record ``id`` asks the echo model to say words, checked on
    ``checks[id]``; returns the path relative to the project."""
    lines = [json.dumps({"id": cid, "task": f"say {cid}",
                         "messages": [{"role": "user", "content": f"say {cid}"}],
                         "check": {"keywords": [word]}}) for cid, word in checks.items()]
    path.write_text("\n".join(lines) + "\n")
    return path.name


def test_canaries_and_forgetting_run_without_a_test_file(pytester, ollama_model):
    project = user_project(pytester, validator="return 'word' in text")
    config = json.loads((project / "loragate.json").read_text())
    config["canaries"] = {
        "file": _canary_file(project / "canaries.jsonl", {"c1": "c1", "c2": "c2"}),
        "forgetting_file": _canary_file(project / "forgetting.jsonl", {"f1": "f1"})}
    (project / "loragate.json").write_text(json.dumps(config))
    result = pytester.runpytest("--model", "ollama:echo", "--baseline", "ollama:echo", "-v")
    result.stdout.fnmatch_lines(["*canary[[]c1[]]*PASSED*", "*forgetting[[]f1[]]*PASSED*"])
    assert result.ret == 0, result.stdout.str()[-2000:]
    document = verdict_of(project)
    assert document["sections"]["canaries"] == document["sections"]["forgetting"] == "run"
    assert (document["canaries"]["n"], document["canaries"]["model_passed"]) == (2, 2)
    assert document["forgetting"]["n"] == 1
    item = document["canaries"]["items"][0]
    assert item["model_answer"] and item["baseline_answer"]


def test_a_canary_both_models_fail_blocks_under_require_all(pytester, ollama_model):
    project = user_project(pytester, validator="return 'word' in text")
    config = json.loads((project / "loragate.json").read_text())
    config["canaries"] = {"file": _canary_file(project / "canaries.jsonl",
                                               {"c1": "c1", "c2": "never-said"})}
    (project / "loragate.json").write_text(json.dumps(config))
    result = pytester.runpytest("--model", "ollama:echo", "--baseline", "ollama:echo")
    assert result.ret == 1
    document = verdict_of(project)
    assert document["canaries"]["failed"] == ["c2"] and document["canaries"]["regressions"] == []
    # Without a baseline there is nothing to compare with: the plugin makes no canary items.
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == 0 and verdict_of(project)["sections"]["canaries"] == "not run"


def test_user_harness_gates_without_a_test_file_and_passes(pytester, ollama_model):
    project = user_project(pytester, validator="return 'word' in text")
    result = pytester.runpytest("--model", "ollama:echo", "-v")
    result.stdout.fnmatch_lines([f"*{HARNESS}[[]p0[]]*PASSED*", "*VERDICT: CLEARED*"])
    assert result.ret == 0
    document = verdict_of(project)
    assert document["harnesses"][HARNESS]["n"] == 4
    assert document["thresholds"][HARNESS] == {"gate": "ship", "threshold": 0.75,
                                               "metric": "pass_rate", "positive": None}
    assert document["sections"] == {"gates": "run", "canaries": "not run",
                                     "forgetting": "not run", "smoke": "not run",
                                     "stages": "not run"}
    assert document["canaries"] is None
    assert (project / "reports" / "report.html").is_file()


def test_user_harness_that_always_fails_blocks(pytester, ollama_model):
    project = user_project(pytester, validator="return False")
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == 1
    assert verdict_of(project)["verdict"] == "blocked"


def test_harness_result_reasons_and_marker_selection(pytester, ollama_model):
    project = user_project(pytester, harness={"gate": "quality", "threshold": 0.5},
                           validator=("from loragate.harnesses.base import HarnessResult\n"
                                      "            return HarnessResult.from_reasons("
                                      "[] if record['id'] != 'p1' else ['p1 is wrong'])"))
    result = pytester.runpytest("--model", "ollama:echo", "-m", "quality_gate")
    result.assert_outcomes(passed=3, failed=1)
    document = verdict_of(project)
    failed = [s for s in document["samples"] if not s["passed"]]
    assert [(s["sample_id"], s["reason"]) for s in failed] == [("p1", "p1 is wrong")]
    assert pytester.runpytest("--model", "ollama:echo", "-m", "ship_gate").ret == 5


def test_user_f1_harness_uses_the_records_labels(pytester, ollama_model):
    prompts = [json.dumps({"id": f"p{i}", "expected": label,
                           "messages": [{"role": "user", "content": f"{label} please"}]})
               for i, label in enumerate(["spam", "ham", "spam", "ham"])]
    validator = ("from loragate.harnesses.base import HarnessResult\n"
                 "            label = 'spam' if 'spam' in text else 'ham'\n"
                 "            return HarnessResult(passed=label == record['expected'], "
                 "predicted=label)")
    project = user_project(pytester, prompts=prompts, validator=validator,
                           harness={"metric": "f1", "threshold": 0.9,
                                    "labels": ["spam", "ham"]})
    assert pytester.runpytest("--model", "ollama:echo").ret == 0
    summary = verdict_of(project)["harnesses"][HARNESS]
    assert summary["f1"] == 1.0 and summary["precision"] == 1.0


@pytest.mark.parametrize(("harness", "message"), [
    ({"validator": None}, "gates.harnesses.echo_check.validator: 'echo_check' is not a built-in"),
    ({"validator": "no_such_module:f"}, "module 'no_such_module' does not import"),
    ({"validator": "my_checks:missing"}, "my_checks has no function 'missing'"),
    ({"validator": "my_checks:one_arg"}, "must take (text, record)"),
    ({"gate": None}, "gates.harnesses.echo_check.gate: required"),
    ({"validator": "exits_at_import:f"}, "'exits_at_import' does not import: SystemExit: 3"),
])
def test_unusable_harness_config_is_a_usage_error_naming_the_field(pytester, harness, message):
    project = user_project(pytester, harness=harness)
    with open(project / "my_checks.py", "a") as handle:
        handle.write("\ndef one_arg(text):\n    return True\n")
    (project / "exits_at_import.py").write_text("import sys\nsys.exit(3)\n")
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])
    assert verdict_of(project) is None


BAD_RECORDS = [
    ('{"id": "a", "messages": []}', "field 'messages' must be a non-empty list"),
    ('{"id": "a", "messages": [{"role": "robot", "content": "x"}]}', "must be one of"),
    ('{"id": "a", "messages": [{"role": "user", "content": 3}]}', ".content: must be a string"),
    ('{"id": "a", "messages": [{"role": "user", "content": "q"}, '
     '{"role": "assistant", "content": "a"}]}', "the last message must be the user's"),
    ('{"messages": [{"role": "user", "content": "q"}]}', "field 'id' must be a non-empty"),
    ('{"id": "a", "messages": "hello"}', "field 'messages' must be a non-empty list"),
    ('{"id": "a", "messages": [{"role": "user"', "invalid JSON"),
    ('[1, 2]', "must be a JSON object"),
]


@pytest.mark.parametrize(("line", "message"), BAD_RECORDS)
def test_a_bad_prompt_record_is_a_usage_error_with_path_and_line(pytester, ollama_model,
                                                                 line, message):
    good = json.dumps({"id": "ok", "messages": [{"role": "user", "content": "hi"}]})
    user_project(pytester, prompts=[good, line])
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{HARNESS}.jsonl:2:*{message}*"])
    assert ollama_model.calls == 0


def test_a_bad_prompt_record_under_xdist_is_the_same_usage_error(pytester, ollama_model):
    # Found by an outside probe: the workers collect, and their usage error reached the
    # controller as "no tests collected", exit 5 with no message.
    good = json.dumps({"id": "ok", "messages": [{"role": "user", "content": "hi"}]})
    user_project(pytester, prompts=[good, good])
    result = pytester.runpytest_subprocess("--model", "ollama:echo", "-n", "2")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()[-2000:]
    result.stderr.fnmatch_lines([f"*{HARNESS}.jsonl:2:*duplicate*"])


def test_undecodable_prompt_file_names_the_file(pytester, ollama_model):
    project = user_project(pytester)
    (project / "prompts" / f"{HARNESS}.jsonl").write_bytes(b'{"id": "\xff\xfe"}\n')
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{HARNESS}.jsonl:1: not UTF-8*"])


def test_samples_below_one_is_a_usage_error(pytester):
    user_project(pytester)
    result = pytester.runpytest("--model", "ollama:echo", "--samples", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--samples*must be at least 1*"])


# -- a gate that cannot run is not a blocked model -------------------------------------------


def _closed_port() -> int:
    """A loopback port free a moment ago (for a test that needs one to stay free, or to bind
    a server to); use ``refused_port`` for one that must refuse for the whole test."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def refused_port():
    """A loopback port that refuses connections for the whole test: bound, never listening,
    so no server of a test running beside this one can take it (a port only closed again
    could be handed to one)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.parametrize(("spec", "message"), [
    ("nonsense", "unknown backend"),
    ("gguf:/no/such/model.gguf", "not found"),
    ("openai:localhost:8080#m", "not an http(s) URL"),
    ("openai:http://127.0.0.1:1/v1", "missing '#MODEL'"),
    ("TEXT_RENAMED_GGUF", "GGUF"),
])
def test_a_malformed_spec_or_model_file_is_a_usage_error(pytester, spec, message):
    project = user_project(pytester)
    if spec == "TEXT_RENAMED_GGUF":
        fake = project / "model.gguf"
        fake.write_text("this is a text file, not a model\n" * 20)
        spec = f"gguf:{fake}"
    result = pytester.runpytest("--model", spec)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--model*{message}*"])
    assert verdict_of(project) is None


def test_an_unreachable_server_is_a_gate_error_not_a_blocked_model(pytester, refused_port):
    project = user_project(pytester)
    result = pytester.runpytest("--model", f"openai:http://127.0.0.1:{refused_port}/v1#m")
    assert result.ret == 6
    document = verdict_of(project)
    assert document["verdict"] == "error" and document["exit_status"] == 6
    assert "not reachable" in document["gate_errors"][0]
    assert document["blocking_reasons"] == []


def test_no_ollama_server_is_a_gate_error(pytester, monkeypatch, refused_port):
    user_project(pytester)
    monkeypatch.setenv("OLLAMA_HOST", f"http://127.0.0.1:{refused_port}")
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == 6
    result.stdout.fnmatch_lines(["*the gate cannot run*"])


def test_a_server_that_fails_every_sample_gives_error_not_blocked(pytester, monkeypatch):
    scripted = ScriptedBackend(fail_times=10**6)
    with OllamaDouble({"echo": scripted}, fail_status=500) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = user_project(pytester)
        result = pytester.runpytest("--model", "ollama:echo")
    document = verdict_of(project)
    assert result.ret == 6, result.stdout.str()[-2000:]
    assert document["verdict"] == "error"
    assert all(s["error"] and not s["passed"] for s in document["samples"])
    assert document["harnesses"][HARNESS]["undecided"] is True


def test_refusal_f1_with_no_judged_sample_is_not_evaluated():
    samples = [SampleOutcome(nodeid=f"t[{i}]", harness="refusal", passed=False, error=True,
                             expected="refuse" if i % 2 else "comply", reason="timeout")
               for i in range(4)]
    rules = {"refusal": GateRule("ship", 0.98, "f1")}
    verdict = verdict_json(samples, rules)
    summary = verdict["harnesses"]["refusal"]
    assert summary["evaluated"] is False and summary["undecided"] is True
    assert "not evaluated" in summary["reason"]
    assert verdict["verdict"] == "error"


def test_refusal_f1_with_no_label_at_all_blocks_as_not_evaluated():
    samples = [SampleOutcome(nodeid="t[0]", harness="refusal", passed=False, reason="x")]
    verdict = verdict_json(samples, {"refusal": GateRule("ship", 0.98, "f1")})
    assert verdict["verdict"] == "blocked"
    assert any("not evaluated" in r for r in verdict["blocking_reasons"])


# -- repeats, junit ---------------------------------------------------------------------------


class SeedEcho(ScriptedBackend):
    """Answers with the seed it was asked with: repeats of one prompt differ."""

    def _stream(self, prompt, options):
        from loragate.backends.base import StreamEnd

        self.calls += 1
        yield f"seed {options.seed}"
        yield StreamEnd("stop", prompt_tokens=1, completion_tokens=2)


def test_repeats_sample_each_prompt_with_its_own_seed_and_cache_key(pytester, monkeypatch):
    backend = SeedEcho()
    with OllamaDouble({"echo": backend}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = user_project(pytester, n_prompts=2,
                               validator="return int(text.split()[-1]) % 2 == 0")
        result = pytester.runpytest("--model", "ollama:echo", "--repeats", "3", "-v")
        result.stdout.fnmatch_lines([f"{HARNESS}[[]p0-r1[]] FAILED*"])
        document = verdict_of(project)
        flaky = document["harnesses"][HARNESS]["flaky"]
        assert [(f["sample_id"], round(f["pass_fraction"], 3)) for f in flaky] == [
            ("p0", 0.667), ("p1", 0.667)]
        samples = document["samples"]
        assert sorted((s["sample_id"], s["repeat"], s["seed"]) for s in samples) == [
            (p, k, 42 + k) for p in ("p0", "p1") for k in range(3)]
        assert [s["answer"] for s in samples if s["sample_id"] == "p0"] == [
            "seed 42", "seed 43", "seed 44"]
        assert backend.calls == 6
        # A rerun answers every repeat from the cache: each seed has its own key.
        pytester.runpytest("--model", "ollama:echo", "--repeats", "3")
        assert backend.calls == 6


def test_junitxml_has_a_testcase_per_sample_and_the_verdict(pytester, ollama_model):
    user_project(pytester, validator="return record['id'] != 'p3'")
    xml_path = pytester.path / "junit.xml"
    result = pytester.runpytest("--model", "ollama:echo", f"--junitxml={xml_path}")
    assert result.ret == 0
    xml = xml_path.read_text()
    assert xml.count("<testcase ") == 4
    assert 'name="loragate.verdict" value="cleared"' in xml
    assert f'name="loragate.{HARNESS}.score" value="75.0"' in xml


def test_loragate_gate_with_a_config_outside_the_checkout(tmp_path, monkeypatch):
    import subprocess
    import sys

    project = tmp_path / "elsewhere"
    (project / "prompts").mkdir(parents=True)
    config = {"gates": {"harnesses": {HARNESS: {
        "gate": "ship", "threshold": 0.5, "validator": f"my_checks:{HARNESS}",
        "prompts": f"prompts/{HARNESS}.jsonl"}}, "overall_target": 50}}
    (project / "gate.json").write_text(json.dumps(config))
    (project / "my_checks.py").write_text(f"def {HARNESS}(text, record):\n    return True\n")
    (project / "prompts" / f"{HARNESS}.jsonl").write_text(json.dumps(
        {"id": "p0", "messages": [{"role": "user", "content": "hello there"}]}) + "\n")
    with OllamaDouble({"echo": ScriptedBackend()}) as host:
        env = {**__import__("os").environ, "OLLAMA_HOST": host}
        proc = subprocess.run(
            [sys.executable, "-m", "loragate.cli", "gate", "--config", str(project / "gate.json"),
             "--model", "ollama:echo"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert json.loads((project / "reports" / "verdict.json").read_text())["verdict"] == "cleared"


def test_a_bad_record_in_a_test_files_prompt_set_is_a_usage_error_too(pytester, ollama_model):
    project = user_project(pytester, prompts=['{"id": "a", "messages": []}'])
    (project / "test_own.py").write_text(textwrap.dedent(f"""
        import pytest
        from loragate.gating.scoring import score_sample

        pytestmark = [pytest.mark.ship_gate, pytest.mark.harness("{HARNESS}")]

        def test_own(prompt_record, generate_answer, gate_sample):
            score_sample("{HARNESS}", prompt_record, generate_answer, gate_sample)
        """))
    result = pytester.runpytest("--model", "ollama:echo")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{HARNESS}.jsonl:1: field 'messages'*"])


# -- answers generated ahead ------------------------------------------------------------------


def test_answers_generated_ahead_give_the_verdict_of_one_at_a_time(pytester, monkeypatch):
    slow = ScriptedBackend(delay_s=0.2)
    with OllamaDouble({"echo": slow}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = user_project(pytester, n_prompts=8,
                               validator="return text.strip().endswith(('word1', 'word3'))")
        one_at_a_time = pytester.runpytest("--model", "ollama:echo", "--concurrency", "1",
                                           "--no-cache")
        serial = verdict_of(project)
        assert slow.max_active == 1
        ahead = pytester.runpytest("--model", "ollama:echo", "--concurrency", "4")
        document = verdict_of(project)
    assert one_at_a_time.ret == ahead.ret == 1
    assert slow.max_active == 4  # four requests in flight at the server
    assert document["metrics"]["ahead"]["answers_generated"] == 8
    # Generated in this run, ahead of their items: generations, not cache hits.
    assert document["metrics"]["cache"]["hits"] == 0
    assert document["metrics"]["cache"]["misses"] == 8
    assert not any(s["cached"] for s in document["samples"])
    pick = ("sample_id", "passed", "answer")
    assert [{k: s[k] for k in pick} for s in document["samples"]] == [
        {k: s[k] for k in pick} for s in serial["samples"]]


def test_answers_are_generated_ahead_without_the_cache_too(pytester, monkeypatch):
    """--no-cache stores and reads nothing; batching stays on (it once silently went off, so a
    'cold' run measured the slow path)."""
    slow = ScriptedBackend(delay_s=0.2)
    with OllamaDouble({"echo": slow}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = user_project(pytester, n_prompts=8)
        result = pytester.runpytest("--model", "ollama:echo", "--concurrency", "4",
                                    "--no-cache")
        again = pytester.runpytest("--model", "ollama:echo", "--concurrency", "4",
                                   "--no-cache")
    assert result.ret == again.ret == 0
    assert slow.max_active == 4 and slow.calls == 16  # nothing reused between the runs
    document = verdict_of(project)
    assert document["metrics"]["ahead"]["answers_generated"] == 8
    assert document["metrics"]["cache"]["hits"] == 0
    assert not (project / ".loragate" / "responses.sqlite").exists()


def test_under_xdist_each_worker_generates_its_own_items_ahead(pytester, monkeypatch):
    slow = ScriptedBackend(delay_s=0.1)
    with OllamaDouble({"echo": slow}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        project = user_project(pytester, n_prompts=12,
                               validator="return text.strip().endswith(('word1', 'word3'))")
        serial = pytester.runpytest("--model", "ollama:echo", "--concurrency", "1",
                                    "--no-cache")
        expected = verdict_of(project)
        calls = slow.calls
        result = pytester.runpytest("-n", "2", "--model", "ollama:echo", "--concurrency", "4")
        document = verdict_of(project)
    assert serial.ret == result.ret == 1
    assert slow.calls - calls == 12  # every answer generated once, by one worker
    ahead = document["metrics"]["ahead"]
    assert ahead["answers_generated"] == 12 and ahead["items"] == 12
    assert ahead["concurrency"] == 4 and ahead["tokens_per_s"] > 0
    assert document["metrics"]["cache"]["hits"] == 0  # generated in this run, not reused
    pick = ("sample_id", "passed", "answer")
    assert sorted(({k: s[k] for k in pick} for s in document["samples"]),
                  key=lambda s: s["sample_id"]) == sorted(
        ({k: s[k] for k in pick} for s in expected["samples"]), key=lambda s: s["sample_id"])


def test_gguf_answers_decoded_in_one_batch_ahead_of_the_items(pytester, tiny_gguf):
    project = user_project(pytester, n_prompts=4)
    result = pytester.runpytest("--model", f"gguf:{tiny_gguf}", "--concurrency", "4",
                                "--temperature", "0")
    assert result.ret == 0, result.stdout.str()[-2000:]
    ahead = verdict_of(project)["metrics"]["ahead"]
    assert ahead["concurrency"] == 4 and ahead["answers_generated"] == 4


def test_a_refusal_judge_that_cannot_run_is_a_gate_error_named_once(pytester, ollama_model,
                                                                    monkeypatch, tmp_path):
    # Without the judges extra the built-in refusal gate cannot judge: exit 6 naming what to
    # install, once, never a blocked model.
    monkeypatch.setenv("LORAGATE_CACHE", str(tmp_path / "cache"))  # no figure measured before
    project = user_project(pytester)
    config = json.loads((project / "loragate.json").read_text())
    config["gates"]["harnesses"] = {"refusal": {
        "gate": "ship", "threshold": 0.9, "metric": "f1", "prompts": "prompts/refusal.jsonl"}}
    (project / "loragate.json").write_text(json.dumps(config))
    (project / "prompts" / "refusal.jsonl").write_text("".join(
        json.dumps({"id": f"r{i}", "messages": [{"role": "user", "content": f"say word{i}"}],
                    "expected": "refuse" if i % 2 else "comply"}) + "\n" for i in range(4)))
    # In a subprocess: the judge is made unavailable for the whole session, not in this one.
    pytester.makeconftest(textwrap.dedent("""
        from loragate.harnesses import refusal_model

        def missing():
            raise refusal_model.JudgeUnavailable(
                "the refusal judge needs torch, transformers and peft: "
                "`pip install loragate[judges]`")

        refusal_model._imports = missing
        """))
    result = pytester.runpytest_subprocess("--model", "ollama:echo")
    document = verdict_of(project)
    assert result.ret == 6, result.stdout.str()[-2000:]
    assert document["verdict"] == "error"
    assert len(document["gate_errors"]) == 1
    assert "pip install loragate[judges]" in document["gate_errors"][0]
    assert "refusal" not in document["judges"]  # no figure, rather than one over 19 lines
    # Nothing measured while the judge was missing is kept for the next session to read.
    cached = tmp_path / "cache" / "judges"
    assert not any("JudgeUnavailable" in p.read_text(encoding="utf-8")
                   for p in cached.glob("calibration-*.json"))


@pytest.mark.parametrize("option", ["--samples=abc", "--seed=-1", "--temperature=hot",
                                    "--repeats=0", "--concurrency=x"])
def test_a_rejected_option_value_leaves_no_old_verdict_behind(pytester, option):
    # A value argparse itself would reject stops pytest before any plugin: the last run's
    # verdict would stay, to be read as this run's. loragate reads its options itself.
    user_project(pytester)
    reports = pytester.path / "reports"
    reports.mkdir(exist_ok=True)
    (reports / "verdict.json").write_text('{"verdict": "cleared"}')
    (reports / "report.html").write_text("<html>cleared</html>")
    result = pytester.runpytest("--model", "ollama:echo", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert f"argument {option.split('=')[0]}" in result.stderr.str()
    assert not (reports / "verdict.json").exists() and not (reports / "report.html").exists()
