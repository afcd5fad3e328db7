"""Re-judging and re-verdicting recorded verdicts: no model, the truth kept (exit status,
aborted sessions, what was overridden), and outputs written whole."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loragate.cli import main
from loragate.config import load_config
from loragate.exit_codes import ExitCode
from loragate.gating.document import VerdictDocument, reverdict
from loragate.gating.rejudge import rejudge

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "config" / "tiny_cpu.json"
RECORDED = ROOT / "reports" / "recorded" / "cpu-tiny" / "verdict-tuned.json"


def recorded() -> VerdictDocument:
    return VerdictDocument.read(RECORDED)


def test_rejudging_a_recorded_verdict_judges_every_whole_answer_again():
    document = recorded()
    settings = load_config(CONFIG, check_paths=False, gating_only=True)
    updated, report = rejudge(document, settings)
    whole = [s for s in document.samples if s.answer and "[… cut:" not in s.answer
             and not s.error]
    assert report.judged >= len(whole)
    assert updated.reverdicted_from == document.inputs_hash
    assert updated.exit_status == {"cleared": 0, "blocked": 1, "error": 6}[updated.verdict]
    VerdictDocument.from_dict(updated.to_dict())  # still a valid verdict


def test_a_changed_judge_shows_as_a_flip(monkeypatch):
    document = recorded()
    settings = load_config(CONFIG, check_paths=False, gating_only=True)
    from loragate.harnesses import registry

    monkeypatch.setattr(registry, "empty_constructor", lambda text, record: False)
    updated, report = rejudge(document, settings)
    passed_before = [s for s in document.samples
                     if s.harness == "empty_constructor" and s.passed]
    flips = [f for f in report.flips if f.startswith("empty_constructor")]
    assert len(flips) == len(passed_before) and all(f.endswith("pass -> fail") for f in flips)
    assert updated.harnesses["empty_constructor"].passed == 0


def test_a_reverdict_states_its_own_exit_status():
    document = recorded()
    lenient = reverdict(document, thresholds={name: 0.0 for name in document.thresholds},
                        overall_target=0.0)
    assert lenient.exit_status == {"cleared": 0, "blocked": 1, "error": 6}[lenient.verdict]


def test_an_aborted_session_stays_an_error_under_a_reverdict():
    document = recorded().model_copy(update=dict(
        samples=[], verdict="error", gate_errors=["server did not answer"], canaries=None,
        forgetting=None, checks=[], exit_status=None)).revalidated()
    again = reverdict(document, overall_target=0.0)
    assert again.verdict == "error" and again.exit_status == ExitCode.GATE_ERROR
    assert again.undecided_reasons == ["server did not answer"]


def test_report_rejudge_writes_a_new_file_and_never_the_input(tmp_path, capsys):
    source = tmp_path / "v.json"
    source.write_bytes(RECORDED.read_bytes())
    out = tmp_path / "rejudged.json"
    status = main(["report", str(source), "--rejudge", "--config", str(CONFIG),
                   "--output", str(out), "--html", str(tmp_path / "r.html")])
    assert status in (ExitCode.CLEARED, ExitCode.BLOCKED)
    assert source.read_bytes() == RECORDED.read_bytes()
    printed = capsys.readouterr().out
    assert "re-judged" in printed and "recomputed from the recorded verdict" in printed
    assert json.loads(out.read_text())["reverdicted_from"]


@pytest.mark.parametrize(("extra", "message"), [
    (["--threshold", "refusal=1.5"], "between 0 and 1"),
    (["--output", "SAME"], "never overwritten"),
    (["--html", "/nonexistent-dir/r.html"], "does not exist"),
])
def test_report_misuse_is_a_usage_error(tmp_path, capsys, extra, message):
    source = tmp_path / "v.json"
    source.write_bytes(RECORDED.read_bytes())
    extra = [str(source) if e == "SAME" else e for e in extra]
    with pytest.raises(SystemExit) as exited:
        main(["report", str(source), *extra])
    assert exited.value.code == ExitCode.USAGE
    assert message in capsys.readouterr().err


def test_a_rejudged_verdict_carries_todays_judges_figures(monkeypatch):
    # The recorded figures measured the judges the answers were judged with then; the new
    # verdict states how far today's judges can be trusted.
    document = recorded()
    stale = {"refusal": document.judges["refusal"].model_copy(update={"n": 1})} \
        if "refusal" in document.judges else {}
    document = document.model_copy(update={"judges": stale}).revalidated()
    settings = load_config(CONFIG, check_paths=False, gating_only=True)
    updated, _ = rejudge(document, settings)
    from loragate.judges import calibrate_refusal

    assert updated.judges["refusal"].n == calibrate_refusal().n
    assert updated.judges["refusal"].f1 == pytest.approx(calibrate_refusal().f1)


def test_a_rejudged_verdicts_page_goes_beside_the_new_verdict(tmp_path):
    recorded_dir = tmp_path / "recorded"
    recorded_dir.mkdir()
    source = recorded_dir / "v.json"
    source.write_bytes(RECORDED.read_bytes())
    out = tmp_path / "new" / "rejudged.json"
    out.parent.mkdir()
    main(["report", str(source), "--rejudge", "--config", str(CONFIG), "--output", str(out)])
    assert (out.parent / "rejudged.html").is_file()
    assert sorted(p.name for p in recorded_dir.iterdir()) == ["v.json"]


def test_a_judge_that_cannot_run_is_a_gate_error_not_a_traceback(tmp_path, monkeypatch, capsys):
    from loragate.harnesses import refusal_model

    def missing() -> None:
        raise refusal_model.JudgeUnavailable("the refusal judge needs `pip install "
                                             "loragate[judges]`")

    monkeypatch.setattr(refusal_model, "_imports", missing)
    refusal_model.default_classifier.cache_clear()
    try:
        source = tmp_path / "v.json"
        source.write_bytes(RECORDED.read_bytes())
        out = tmp_path / "rejudged.json"
        with pytest.raises(SystemExit) as exited:
            main(["report", str(source), "--rejudge", "--config", str(CONFIG),
                  "--output", str(out)])
    finally:
        refusal_model.default_classifier.cache_clear()
    assert exited.value.code == ExitCode.GATE_ERROR
    assert "a judge cannot run" in capsys.readouterr().err
    assert not out.exists() and source.read_bytes() == RECORDED.read_bytes()
