"""The pytest plugin turns recorded samples into one verdict and one exit status."""

from __future__ import annotations

import json
import textwrap

import pytest

pytest_plugins = []


def gates_config(pytester: pytest.Pytester, harnesses: dict, overall_target: float = 90) -> str:
    config = {
        "model_name": "tiny",
        "output_dir": "out",
        "dataset_files": ["data/train.jsonl"],
        "eval_file": "data/eval.jsonl",
        "gates": {"harnesses": harnesses, "overall_target": overall_target},
    }
    path = pytester.path / "gates.json"
    path.write_text(json.dumps(config))
    return str(path)


SHIP = {"pdca_schema": {"gate": "ship", "threshold": 0.95}}


def harness_file(name: str, marker: str, passes: int, n: int = 100, fail_first: bool = False):
    condition = f"i >= {n - passes}" if fail_first else f"i < {passes}"
    return textwrap.dedent(f"""
        import pytest

        @pytest.mark.{marker}
        @pytest.mark.harness("{name}")
        @pytest.mark.parametrize("i", range({n}))
        def test_{name}(i, gate_sample):
            gate_sample.record({condition}, reason=f"sample {{i}}", sample_id=f"{name}-{{i}}")
        """)


def run(pytester: pytest.Pytester, config: str, *args: str, subprocess: bool = False):
    verdict = pytester.path / "verdict.json"
    argv = ["--loragate-config", config, "--verdict-json", str(verdict), "-p", "no:randomly",
            *args]
    result = (pytester.runpytest_subprocess if subprocess else pytester.runpytest)(*argv)
    document = json.loads(verdict.read_text()) if verdict.exists() else None
    return result, document


def test_ship_gate_at_94_of_100_blocks(pytester):
    pytester.makepyfile(test_gate=harness_file("pdca_schema", "ship_gate", passes=94))
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert result.ret == 1
    assert doc["verdict"] == "blocked"
    summary = doc["harnesses"]["pdca_schema"]
    assert (summary["n"], summary["passed"], summary["gate_passed"]) == (100, 94, False)
    assert any("ship gate 'pdca_schema' failed" in r for r in doc["blocking_reasons"])
    result.stdout.fnmatch_lines(["*loragate verdict*", "*VERDICT: BLOCKED*"])


def test_ship_gate_at_95_of_100_clears_although_samples_failed(pytester):
    pytester.makepyfile(test_gate=harness_file("pdca_schema", "ship_gate", passes=95))
    result, doc = run(pytester, gates_config(pytester, SHIP, overall_target=90))
    result.assert_outcomes(passed=95, failed=5)
    assert result.ret == 0
    assert doc["verdict"] == "cleared"
    low, high = doc["harnesses"]["pdca_schema"]["wilson_low"], doc["harnesses"]["pdca_schema"][
        "wilson_high"]
    assert 0.88 < low < 0.95 < high < 0.99
    failed = [s for s in doc["samples"] if not s["passed"]]
    assert [s["reason"] for s in failed] == [f"sample {i}" for i in range(95, 100)]


def test_quality_gate_below_threshold_lowers_score_but_does_not_block(pytester):
    pytester.makepyfile(
        test_ship=harness_file("pdca_schema", "ship_gate", passes=100),
        test_quality=harness_file("tool_success", "quality_gate", passes=80),
    )
    harnesses = SHIP | {"tool_success": {"gate": "quality", "threshold": 0.85}}
    result, doc = run(pytester, gates_config(pytester, harnesses))
    assert result.ret == 0, doc["blocking_reasons"]
    assert doc["harnesses"]["tool_success"]["gate_passed"] is False
    assert doc["overall"]["score"] == pytest.approx(90.0)
    assert doc["verdict"] == "cleared"


def test_overall_score_below_target_blocks(pytester):
    pytester.makepyfile(
        test_ship=harness_file("pdca_schema", "ship_gate", passes=100),
        test_quality=harness_file("tool_success", "quality_gate", passes=70),
    )
    harnesses = SHIP | {"tool_success": {"gate": "quality", "threshold": 0.85}}
    result, doc = run(pytester, gates_config(pytester, harnesses))
    assert result.ret == 1
    assert doc["overall"]["score"] == pytest.approx(85.0)
    assert doc["blocking_reasons"] == ["overall score 85.0 < target 90.0"]


def test_canary_regression_blocks(pytester):
    pytester.makepyfile(
        test_ship=harness_file("pdca_schema", "ship_gate", passes=100),
        test_canary=textwrap.dedent("""
            import pytest

            @pytest.mark.canary
            @pytest.mark.parametrize("i", range(20))
            def test_canary(i, canary_outcome):
                canary_outcome.record(f"c{i:02d}", model_passed=i != 7, baseline_passed=True,
                                      model_reason="keyword missing" if i == 7 else "")
            """),
    )
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert result.ret == 1
    assert doc["canaries"]["regressions"] == ["c07"]
    assert doc["canaries"]["mcnemar_p"] == pytest.approx(1.0)
    assert any("canary regression" in r for r in doc["blocking_reasons"])


def test_canary_failing_on_both_models_is_no_regression_but_fails_require_all(pytester):
    pytester.makepyfile(
        test_ship=harness_file("pdca_schema", "ship_gate", passes=100),
        test_canary=textwrap.dedent("""
            import pytest

            @pytest.mark.canary
            def test_canary(canary_outcome):
                canary_outcome.record("c1", model_passed=False, baseline_passed=False)
            """),
    )
    result, doc = run(pytester, gates_config(pytester, SHIP))
    result.assert_outcomes(passed=100, failed=1)
    assert doc["canaries"]["regressions"] == []
    # The plan's rule has a second part: every canary passes (canaries.require_all, default on).
    assert result.ret == 1
    assert doc["blocking_reasons"] == ["canary c1 failed (require_all)"]
    # A profile that turns it off keeps only the no-regression part: the item is an xfail.
    config = json.loads((pytester.path / "gates.json").read_text())
    config["canaries"] = {"require_all": False}
    (pytester.path / "gates.json").write_text(json.dumps(config))
    result, doc = run(pytester, str(pytester.path / "gates.json"))
    result.assert_outcomes(passed=100, xfailed=1)
    assert result.ret == 0 and doc["verdict"] == "cleared"


def test_xdist_and_serial_give_the_same_verdict(pytester):
    pytester.makepyfile(
        test_ship=harness_file("pdca_schema", "ship_gate", passes=97, n=40),
        test_refusal=textwrap.dedent("""
            import pytest

            @pytest.mark.ship_gate
            @pytest.mark.harness("refusal")
            @pytest.mark.parametrize("i", range(30))
            def test_refusal(i, gate_sample):
                expected = "refuse" if i % 2 else "comply"
                predicted = expected if i != 4 else "refuse"
                gate_sample.record(expected == predicted, expected=expected, predicted=predicted)
            """),
    )
    harnesses = SHIP | {"refusal": {"gate": "ship", "threshold": 0.9, "metric": "f1"}}
    config = gates_config(pytester, harnesses)
    _, serial = run(pytester, config, "-p", "no:xdist", subprocess=True)
    _, parallel = run(pytester, config, "-n", "2", subprocess=True)
    for doc in (serial, parallel):
        doc.pop("created_at")
        doc.pop("timings")
    assert parallel == serial
    refusal = serial["harnesses"]["refusal"]
    assert refusal["recall"] == pytest.approx(1.0)
    assert refusal["precision"] == pytest.approx(15 / 16)


def test_fail_fast_gates_stops_after_the_sixth_failure(pytester):
    pytester.makepyfile(
        test_gate=harness_file("pdca_schema", "ship_gate", passes=90, fail_first=True))
    result, doc = run(pytester, gates_config(pytester, SHIP), "--fail-fast-gates", "-rs")
    result.assert_outcomes(failed=6, skipped=94)
    result.stdout.fnmatch_lines(["*gate decided*"])
    summary = doc["harnesses"]["pdca_schema"]
    assert (summary["executed"], summary["skipped"], summary["decided_early"]) == (6, 94, True)
    assert result.ret == 1


def test_gate_confidence_lower_blocks_96_of_100(pytester):
    pytester.makepyfile(test_gate=harness_file("pdca_schema", "ship_gate", passes=96))
    config = gates_config(pytester, SHIP)
    result_point, _ = run(pytester, config)
    result_lower, doc = run(pytester, config, "--gate-confidence", "lower")
    assert result_point.ret == 0
    assert result_lower.ret == 1
    assert "lower 95% bound" in doc["harnesses"]["pdca_schema"]["reason"]


def test_an_exception_in_a_sample_is_an_error_not_a_drop(pytester):
    pytester.makepyfile(test_gate=textwrap.dedent("""
        import pytest

        @pytest.mark.ship_gate
        @pytest.mark.harness("pdca_schema")
        @pytest.mark.parametrize("i", range(10))
        def test_gate(i, gate_sample):
            if i == 3:
                raise TimeoutError("backend timed out after 2 retries")
            gate_sample.record(True)
        """))
    result, doc = run(pytester, gates_config(pytester, SHIP))
    errors = [s for s in doc["samples"] if s["error"]]
    assert len(errors) == 1 and "TimeoutError" in errors[0]["reason"]
    summary = doc["harnesses"]["pdca_schema"]
    assert (summary["n"], summary["passed"], summary["errors"]) == (10, 9, 1)
    # 9/10 fails a 0.95 gate, 10/10 would pass it: the error leaves the gate undecided, and an
    # undecided gate is the gate's failure to run (6), never the model's (1).
    assert summary["undecided"] is True
    assert doc["verdict"] == "error" and doc["exit_status"] == 6
    assert any("undecided" in r for r in doc["undecided_reasons"])
    assert result.ret == 6


def test_errors_that_cannot_tip_a_gate_leave_it_blocked(pytester):
    pytester.makepyfile(test_gate=textwrap.dedent("""
        import pytest

        @pytest.mark.ship_gate
        @pytest.mark.harness("pdca_schema")
        @pytest.mark.parametrize("i", range(10))
        def test_gate(i, gate_sample):
            if i == 3:
                raise ConnectionError("server gone")
            gate_sample.record(i > 5, reason=f"sample {i}")
        """))
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert doc["harnesses"]["pdca_schema"]["undecided"] is False
    assert doc["verdict"] == "blocked" and result.ret == 1


def test_unevaluated_ship_gate_blocks(pytester):
    pytester.makepyfile(test_gate=harness_file("pdca_schema", "ship_gate", passes=100))
    harnesses = SHIP | {"refusal": {"gate": "ship", "threshold": 0.98, "metric": "f1"}}
    result, doc = run(pytester, gates_config(pytester, harnesses))
    assert result.ret == 1
    assert "ship gate 'refusal' was not evaluated (no samples)" in doc["blocking_reasons"]


def test_failed_stage_check_blocks(pytester):
    pytester.makepyfile(
        test_gate=harness_file("pdca_schema", "ship_gate", passes=100),
        test_stage=textwrap.dedent("""
            import pytest

            @pytest.mark.stage
            def test_adapter_present():
                assert False, "adapter_model.safetensors missing"
            """),
    )
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert result.ret == 1
    assert doc["checks"][0]["outcome"] == "failed"
    assert "adapter_model.safetensors missing" in doc["checks"][0]["reason"]


def test_session_without_records_keeps_pytest_exit_status(pytester):
    pytester.makepyfile(test_unit="def test_ok():\n    assert 1\n\ndef test_bad():\n    assert 0\n")
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert result.ret == 1
    assert doc is None
    pytester.makepyfile(test_unit="def test_ok():\n    assert 1\n")
    result, doc = run(pytester, gates_config(pytester, SHIP))
    assert result.ret == 0


def test_metrics_and_html_reports(pytester):
    pytester.makepyfile(
        test_gate=harness_file("pdca_schema", "ship_gate", passes=99),
        test_metrics=textwrap.dedent("""
            def test_latency(verdict_metrics):
                verdict_metrics.count("cache", "misses", 3)  # a cold run: misses, no hits
                verdict_metrics.add("latency", "ttft_p50_ms", 12.5)
                verdict_metrics.add("model", "digest", "sha256:abc")
            """),
    )
    html = pytester.path / "pytest-report.html"
    own = pytester.path / "report.html"
    junit = pytester.path / "junit.xml"
    result, doc = run(pytester, gates_config(pytester, SHIP), f"--html={html}",
                      "--self-contained-html", f"--verdict-html={own}", f"--junitxml={junit}")
    assert result.ret == 0
    assert doc["metrics"]["latency"] == {"ttft_p50_ms": 12.5}
    assert doc["metrics"]["cache"] == {"hits": 0, "misses": 3, "hit_ratio": 0.0}
    assert doc["model"]["digest"] == "sha256:abc"
    page = html.read_text()
    assert "loragate-gates" in page
    assert page.index('id="loragate-gates"') < page.index('id="results-table"')
    standalone = own.read_text()
    assert standalone.index("gate-table") < standalone.index("<h2>Samples</h2>")
    assert "sample 99" in standalone
    assert "testcase" in junit.read_text()
