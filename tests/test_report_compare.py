"""The README's side-by-side table: both verdicts, each gate's figure, the stage times."""

from __future__ import annotations

import json

import pytest

from loragate.gating.outcomes import CanaryOutcome, SampleOutcome
from loragate.gating.report import render_comparison_markdown
from loragate.gating.verdict import GateRule
from loragate.pipeline import PipelineReport, timings_payload, write_comparison, write_timings
from tests.verdicts import document, verdict_json

RULES = {"pdca_schema": GateRule("ship", 0.95), "tron_format": GateRule("quality", 0.9),
         "refusal": GateRule("ship", 0.98, "f1")}


def verdict(pass_every: int) -> dict:
    samples = [SampleOutcome(f"t::{name}[{i}]", name, i % pass_every == 0, "")
               for name in ("pdca_schema", "tron_format") for i in range(10)]
    samples += [SampleOutcome(f"t::refusal[{i}]", "refusal", True, "", expected=label,
                              predicted=label if pass_every == 1 else "comply")
                for i, label in enumerate(["refuse", "comply"] * 5)]
    canaries = [CanaryOutcome("c01", True, True), CanaryOutcome("c02", pass_every == 1, True)]
    return {**verdict_json(samples, RULES, canaries=canaries),
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
    write_comparison(tmp_path / "comparison.md", document(**verdict(3)), document(**verdict(1)),
                     timings_payload(report))
    text = (tmp_path / "comparison.md").read_text()
    assert "| train |" in text and "reused" in text and "(cleared)" in text
    assert json.loads((tmp_path / "timings.json").read_text())["stages"][0]["stage"] == "train"


def test_no_verdict_writes_no_comparison(tmp_path):
    write_comparison(tmp_path / "comparison.md", None, None, {"stages": [], "total_s": 0})
    assert not (tmp_path / "comparison.md").exists()


# -- prompt by prompt (loragate.gating.compare) ----------------------------------------------

def run(outcomes: dict[str, list[bool]], canaries: dict[str, bool] | None = None,
        prefix: str = "t", skipped: set[str] = frozenset(), errors: set[str] = frozenset()
        ) -> dict:
    """A verdict document from per-prompt outcomes (one bool per repeat)."""
    samples = []
    for sample_id, runs in outcomes.items():
        for r, ok in enumerate(runs):
            harness = sample_id.rsplit("-", 1)[0]
            samples.append(SampleOutcome(
                f"{prefix}::{harness}[{sample_id}-r{r}]", harness, ok and sample_id not in errors,
                "" if ok else f"{sample_id} failed", sample_id=sample_id, repeat=r,
                skipped=sample_id in skipped, error=sample_id in errors))
    canary_items = [CanaryOutcome(c, ok, True) for c, ok in (canaries or {}).items()]
    rules = {"pdca_schema": GateRule("ship", 0.95), "tron_format": GateRule("quality", 0.9)}
    verdict = verdict_json(samples, rules, canaries=canary_items or None)
    return {"schema": "loragate.verdict/1", "loragate_version": "0.1.0",
            "created_at": "2026-12-02T00:00:00+00:00", "inputs_hash": "h", "data_hash": "d",
            "generation": {"temperature": 0.0, "seed": 0},
            "thresholds": {name: rule.__dict__ for name, rule in rules.items()},
            "gate_confidence": "point", "model": {"spec": f"gguf:{prefix}.gguf"}, **verdict,
            "samples": [s.__dict__ for s in samples]}


OLD = {f"pdca_schema-{i}": [i < 6] for i in range(10)}
NEW = {f"pdca_schema-{i}": [i < 4 or i >= 6] for i in range(10)}


def test_compare_finds_the_flips_and_the_exact_mcnemar_p():
    from loragate.gating.compare import compare_verdicts

    comparison = compare_verdicts(run(OLD), run(NEW, prefix="renamed"))
    (pdca,) = comparison["harnesses"]
    assert [f["sample_id"] for f in pdca["pass_to_fail"]] == ["pdca_schema-4", "pdca_schema-5"]
    assert [f["sample_id"] for f in pdca["fail_to_pass"]] == [f"pdca_schema-{i}"
                                                            for i in range(6, 10)]
    assert pdca["both_pass"] == 4 and pdca["both_fail"] == 0 and pdca["compared"] == 10
    # Under H0 the 6 flips split 50/50: P(X <= 2) = (1 + 6 + 15) / 64, two-sided 44/64.
    assert pdca["mcnemar_p"] == pytest.approx(44 / 64)
    assert pdca["delta"] == pytest.approx(80.0 - 60.0)
    assert pdca["pass_to_fail"][0]["reason"] == "pdca_schema-4 failed"


def test_mcnemar_known_values():
    from loragate.gating.statistics import mcnemar_exact

    assert mcnemar_exact(0, 5) == pytest.approx(2 / 32)
    assert mcnemar_exact(1, 7) == pytest.approx(2 * 9 / 256)
    assert mcnemar_exact(3, 3) == pytest.approx(1.0)
    assert mcnemar_exact(0, 0) is None


def test_skipped_and_errored_prompts_are_not_compared():
    from loragate.gating.compare import compare_verdicts

    old = run(OLD, skipped={"pdca_schema-8", "pdca_schema-9"})
    new = run(NEW, errors={"pdca_schema-4"})
    (pdca,) = compare_verdicts(old, new)["harnesses"]
    assert pdca["not_compared"] == 3 and pdca["compared"] == 7
    assert [f["sample_id"] for f in pdca["pass_to_fail"]] == ["pdca_schema-5"]
    assert len(pdca["fail_to_pass"]) == 2


def test_skipped_samples_without_sample_id_match_through_the_node_id():
    from loragate.gating.compare import compare_verdicts

    old, new = run(OLD), run(NEW)
    for sample in old["samples"]:
        sample["sample_id"], sample["skipped"] = None, True
    (pdca,) = compare_verdicts(old, new)["harnesses"]
    assert pdca["not_compared"] == 10 and pdca["compared"] == 0


def test_repeats_compare_by_majority_with_fractions():
    from loragate.gating.compare import compare_verdicts

    old = {"pdca_schema-a": [True, True, False], "pdca_schema-b": [True, False],
           "pdca_schema-c": [False, False, True]}
    new = {"pdca_schema-a": [False, True, False], "pdca_schema-b": [True, True],
           "pdca_schema-c": [True, True, False]}
    (pdca,) = compare_verdicts(run(old), run(new))["harnesses"]
    flips = {f["sample_id"]: f for f in pdca["pass_to_fail"] + pdca["fail_to_pass"]}
    assert [f["sample_id"] for f in pdca["pass_to_fail"]] == ["pdca_schema-a"]
    assert flips["pdca_schema-a"]["old_pass_fraction"] == pytest.approx(2 / 3)
    assert flips["pdca_schema-a"]["new_pass_fraction"] == pytest.approx(1 / 3)
    # A tie (1 of 2) is a fail, so b flips to pass.
    assert sorted(f["sample_id"] for f in pdca["fail_to_pass"]) == ["pdca_schema-b",
                                                                    "pdca_schema-c"]


def test_canary_flips_by_canary_id():
    from loragate.gating.compare import compare_verdicts

    old = run(OLD, {"c01": True, "c02": True, "c03": False, "c04": False})
    new = run(NEW, {"c01": True, "c02": False, "c03": True, "c04": True, "c05": True})
    canaries = compare_verdicts(old, new)["canaries"]
    assert canaries["regressions"] == ["c02"] and canaries["improvements"] == ["c03", "c04"]
    assert canaries["shared"] == 4 and canaries["only_new"] == ["c05"]
    assert canaries["mcnemar_p"] == pytest.approx(1.0)  # 1 vs 2: P(X<=1 of 3) = 4/8, twice


def test_markdown_and_harness_missing_from_one_run():
    from loragate.gating.compare import compare_verdicts, render_markdown

    old = run(OLD)
    new = run({**NEW, "tron_format-1": [True]})
    text = render_markdown(compare_verdicts(old, new, old_label="base", new_label="tuned"))
    assert ("| pdca_schema | ship | 0.95 | 6/10 FAIL | 8/10 FAIL | +20.0 | 2 | 4 | 4 | 0 "
            "| 0.688 |") in text
    assert "| tron_format | quality | 0.90 | — | 1/1 pass | — | 0 | 0 | 0 | 1 | — |" in text
    assert "pass→fail `pdca_schema-4`, `pdca_schema-5`" in text
    assert "**base**: BLOCKED" in text


def test_recorded_base_and_tuned_verdicts():
    from pathlib import Path

    from loragate.gating.compare import compare_verdicts

    reports = Path(__file__).parent.parent / "reports" / "recorded" / "cpu-tiny"
    base = json.loads((reports / "verdict-base.json").read_text())
    tuned = json.loads((reports / "verdict-tuned.json").read_text())
    comparison = compare_verdicts(base, tuned, old_label="base", new_label="tuned")
    # The run recorded in the README (reports/recorded/cpu-tiny, 2026-12-06).
    harnesses = {h["harness"]: h for h in comparison["harnesses"]}
    empty = harnesses["empty_constructor"]
    assert (len(empty["pass_to_fail"]), len(empty["fail_to_pass"])) == (0, 8)
    assert empty["mcnemar_p"] == pytest.approx(2 / 2**8)
    refusal = harnesses["refusal"]
    assert (len(refusal["pass_to_fail"]), len(refusal["fail_to_pass"])) == (3, 5)
    assert comparison["canaries"]["regressions"] == []
    assert comparison["canaries"]["improvements"] == ["c01", "c05", "c10", "c15", "c19"]
    assert comparison["canaries"]["mcnemar_p"] == pytest.approx(2 / 2**5)
    assert tuned["canaries"]["probes"]["model_right"] == 9
    assert tuned["canaries"]["probes"]["baseline_right"] == 6


def test_report_compare_cli(tmp_path, capsys):
    from loragate.cli import main

    old_path, new_path = tmp_path / "verdict-base.json", tmp_path / "verdict-tuned.json"
    old_path.write_text(json.dumps(run(OLD)))
    new_path.write_text(json.dumps(run(NEW)))
    assert main(["report", "--compare", str(old_path), str(new_path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| harness | gate | threshold | base | tuned |")
    md, html = tmp_path / "c.md", tmp_path / "c.html"
    assert main(["report", "--compare", str(old_path), str(new_path), "--markdown", str(md),
                 "--html", str(html)]) == 0
    assert "| pdca_schema |" in md.read_text()
    assert "pdca_schema-4" in html.read_text() and "<details" in html.read_text()
    with pytest.raises(SystemExit, match="not both"):
        main(["report", str(old_path), "--compare", str(old_path), str(new_path)])
    with pytest.raises(SystemExit, match="--threshold cannot go with --compare"):
        main(["report", "--compare", str(old_path), str(new_path), "--threshold", "x=1"])
    with pytest.raises(SystemExit, match="nope.json: no such file"):
        main(["report", "--compare", str(old_path), str(tmp_path / "nope.json")])
    with pytest.raises(SystemExit, match="--compare OLD NEW"):
        main(["report"])


def test_pipeline_comparison_uses_the_prompt_comparison(tmp_path):
    report = PipelineReport()
    with report.stage("train") as timing:
        timing.reused = True
    write_comparison(tmp_path / "comparison.md", document(**run(OLD)), document(**run(NEW)),
                     timings_payload(report))
    text = (tmp_path / "comparison.md").read_text()
    assert text.startswith("| stage | wall time | |")
    assert "| pdca_schema | ship | 0.95 | 6/10 FAIL | 8/10 FAIL | +20.0 | 2 | 4 |" in text
    assert "McNemar" in text
    assert "pdca_schema-4" in (tmp_path / "comparison.html").read_text()
