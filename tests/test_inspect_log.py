"""A verdict as Inspect eval logs that inspect_ai's own reader loads."""

from __future__ import annotations

import builtins
from pathlib import Path

import pytest
from inspect_ai.log import read_eval_log

from loragate.cli import main
from loragate.gating.inspect_log import write_inspect_logs
from loragate.gating.outcomes import SampleOutcome
from loragate.gating.verdict import GateRule
from tests.test_gating_project import HARNESS, ollama_model, user_project
from tests.verdicts import document, verdict_json

__all__ = ["ollama_model"]  # the fixture, used by name below

RULES = {"pdca_schema": GateRule("ship", 0.95),
         "refusal": GateRule("ship", 0.9, "f1", positive="refuse")}


def messages(text: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": "be brief"}, {"role": "user", "content": text}]


def verdict():
    samples = [SampleOutcome(f"t::pdca_schema[{i}]", "pdca_schema", i != 2,
                             "ok" if i != 2 else "no CHECK section",
                             sample_id=f"pdca_schema-{i:03d}", answer=f"# PDCA {i}",
                             messages=messages(f"write PDCA {i}"),
                             reasons=("no CHECK section",) if i == 2 else ())
               for i in range(4)]
    samples += [SampleOutcome(f"t::refusal[{i}]", "refusal", label == said, "",
                              sample_id=f"refusal-{i:03d}", expected=label, predicted=said,
                              answer="I won't." if said == "refuse" else "Done.",
                              messages=messages(f"request {i}"))
                for i, (label, said) in enumerate([("refuse", "refuse"), ("comply", "comply"),
                                                   ("refuse", "comply")])]
    return document(**verdict_json(samples, RULES), thresholds=RULES, samples=samples,
                    model={"spec": "gguf:tiny.gguf"}, created_at="2026-12-06T12:00:00+00:00")


def test_each_harness_is_a_log_inspect_reads_back(tmp_path: Path):
    recorded = verdict()
    paths = write_inspect_logs(recorded, tmp_path)
    assert [p.name for p in paths] == ["pdca_schema.json", "refusal.json"]
    pdca = read_eval_log(str(paths[0]))
    assert pdca.eval.task == "loragate/pdca_schema" and pdca.eval.model == "gguf:tiny.gguf"
    assert pdca.results.scores[0].metrics["accuracy"].value == pytest.approx(0.75)
    assert pdca.eval.metadata["gate_passed"] is False and pdca.eval.metadata["threshold"] == 0.95
    failed = next(s for s in pdca.samples if s.id == "pdca_schema-002")
    assert failed.scores["pdca_schema"].value == "I"
    assert failed.scores["pdca_schema"].explanation == "no CHECK section"
    assert [m.role for m in failed.input] == ["system", "user"]
    assert failed.output.completion == "# PDCA 2"
    refusal = read_eval_log(str(paths[1]))
    assert refusal.results.scores[0].metrics["f1"].value == pytest.approx(
        recorded.harnesses["refusal"].f1)
    missed = next(s for s in refusal.samples if s.id == "refusal-002")
    assert (missed.target, missed.scores["refusal"].answer) == ("refuse", "comply")


def test_report_writes_the_logs_and_keeps_the_verdicts_status(tmp_path: Path, capsys):
    source = tmp_path / "verdict.json"
    source.write_text(verdict().to_json(), encoding="utf-8")
    logs = tmp_path / "inspect"
    assert main(["report", str(source), "--inspect-log", str(logs)]) == 1  # blocked
    assert sorted(p.name for p in logs.iterdir()) == ["pdca_schema.json", "refusal.json"]
    assert f"Inspect logs: 2 in {logs}" in capsys.readouterr().out


def test_without_inspect_ai_the_report_says_what_to_install(tmp_path, monkeypatch, capsys):
    source = tmp_path / "verdict.json"
    source.write_text(verdict().to_json(), encoding="utf-8")
    real_import = builtins.__import__

    def no_inspect(name, *args, **kwargs):
        if name.startswith("inspect_ai"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_inspect)
    with pytest.raises(SystemExit) as stopped:
        main(["report", str(source), "--inspect-log", str(tmp_path / "logs")])
    assert stopped.value.code == 4
    assert "pip install 'loragate[inspect]'" in capsys.readouterr().err


def test_a_gate_session_writes_the_logs_itself(pytester, ollama_model):
    project = user_project(pytester, validator="return 'word1' not in text")
    logs = project / "inspect"
    result = pytester.runpytest("--model", "ollama:echo", f"--inspect-log={logs}")
    assert result.ret == 0
    log = read_eval_log(str(logs / f"{HARNESS}.json"))
    assert log.eval.model == "ollama:echo" and len(log.samples) == 4
    assert sorted(s.scores[HARNESS].value for s in log.samples) == ["C", "C", "C", "I"]


def test_a_gate_session_without_inspect_ai_stops_before_generating(pytester, ollama_model,
                                                                     monkeypatch):
    from loragate.gating import inspect_log
    from loragate.gating.inspect_log import InspectUnavailable
    def unavailable():
        raise InspectUnavailable("writing Inspect logs needs inspect_ai: pip install "
                                 "'loragate[inspect]'")

    monkeypatch.setattr(inspect_log, "inspect_log_module", unavailable)
    user_project(pytester)
    result = pytester.runpytest("--model", "ollama:echo", "--inspect-log=logs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--inspect-log: writing Inspect logs needs inspect_ai*"])
    assert ollama_model.calls == 0
