"""The README's side-by-side table: both verdicts, each gate's figure, the stage times."""

from __future__ import annotations

import json

from loragate.gating.report import render_comparison_markdown
from loragate.gating.verdict import CanaryOutcome, GateRule, SampleOutcome, compute_verdict
from loragate.pipeline import PipelineReport, timings_payload, write_comparison, write_timings

RULES = {"pdca_schema": GateRule("ship", 0.95), "tron_format": GateRule("quality", 0.9),
         "refusal": GateRule("ship", 0.98, "f1")}


def verdict(pass_every: int) -> dict:
    samples = [SampleOutcome(f"t::{name}[{i}]", name, i % pass_every == 0, "")
               for name in ("pdca_schema", "tron_format") for i in range(10)]
    samples += [SampleOutcome(f"t::refusal[{i}]", "refusal", True, "", expected=label,
                              predicted=label if pass_every == 1 else "comply")
                for i, label in enumerate(["refuse", "comply"] * 5)]
    canaries = [CanaryOutcome("c01", True, True), CanaryOutcome("c02", pass_every == 1, True)]
    return {**compute_verdict(samples, RULES, canaries=canaries),
            "metrics": {"latency": {"ttft_p50_ms": 12.0}}}


def test_both_verdicts_side_by_side_with_each_gate():
    text = render_comparison_markdown({"base": verdict(3), "tuned": verdict(1)})
    rows = {line.split("|")[1].strip(): line for line in text.splitlines()
            if line.startswith("| ")}
    assert "| pdca_schema | ship | 0.95 | 4/10 FAIL | 10/10 pass |" in rows["pdca_schema"]
    assert "F1 1.00 pass" in rows["refusal"] and "FAIL" in rows["refusal"]
    assert "**base**: BLOCKED" in text and "**tuned**: CLEARED" in text
    assert "regressions: c02" in text and "ttft_p50_ms 12.0" in text


def test_pipeline_writes_comparison_with_stage_times(tmp_path):
    report = PipelineReport()
    with report.stage("train") as timing:
        timing.reused = True
    with report.stage("verdict-tuned") as timing:
        timing.detail = "(cleared)"
    write_timings(tmp_path / "timings.json", report)
    write_comparison(tmp_path / "comparison.md", verdict(3), verdict(1), timings_payload(report))
    text = (tmp_path / "comparison.md").read_text()
    assert "| train |" in text and "reused" in text and "(cleared)" in text
    assert json.loads((tmp_path / "timings.json").read_text())["stages"][0]["stage"] == "train"


def test_no_verdict_writes_no_comparison(tmp_path):
    write_comparison(tmp_path / "comparison.md", None, None, {"stages": [], "total_s": 0})
    assert not (tmp_path / "comparison.md").exists()
