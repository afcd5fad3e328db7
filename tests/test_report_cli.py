"""`loragate report` re-renders and re-verdicts a verdict JSON without loading any model."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from loragate.cli import main

GATE_TEST = textwrap.dedent("""
    import pytest

    @pytest.mark.ship_gate
    @pytest.mark.harness("pdca_schema")
    @pytest.mark.parametrize("i", range(100))
    def test_pdca(i, gate_sample):
        gate_sample.record(i < 97, reason=f"sample {i}")

    @pytest.mark.quality_gate
    @pytest.mark.harness("tron_format")
    @pytest.mark.parametrize("i", range(50))
    def test_tron(i, gate_sample):
        gate_sample.record(i < 46, reason=f"tron {i}")
    """)


@pytest.fixture
def verdict_file(pytester):
    config = pytester.path / "gates.json"
    config.write_text(json.dumps({
        "model_name": "m", "output_dir": "o", "dataset_files": ["d.jsonl"], "eval_file": "e",
        "gates": {"harnesses": {"pdca_schema": {"gate": "ship", "threshold": 0.95},
                                "tron_format": {"gate": "quality", "threshold": 0.9}}},
    }))
    pytester.makepyfile(test_gates=GATE_TEST)
    path = pytester.path / "verdict.json"
    result = pytester.runpytest("--loragate-config", str(config), "--verdict-json", str(path))
    assert result.ret == 0
    return path


def test_report_rerenders_html(verdict_file, capsys):
    assert main(["report", str(verdict_file)]) == 0
    html = verdict_file.with_suffix(".html").read_text()
    assert "CLEARED" in html and "pdca_schema" in html
    assert "VERDICT: CLEARED" in capsys.readouterr().out


def test_report_reverdicts_with_a_changed_threshold(verdict_file, tmp_path):
    out = tmp_path / "reverdict.json"
    code = main(["report", str(verdict_file), "--threshold", "pdca_schema=0.98",
                 "--output", str(out)])
    assert code == 1
    document = json.loads(out.read_text())
    assert document["verdict"] == "blocked"
    assert document["harnesses"]["pdca_schema"]["threshold"] == 0.98
    assert document["reverdicted_from"] == json.loads(verdict_file.read_text())["inputs_hash"]
    assert document["inputs_hash"] != document["reverdicted_from"]
    # The original is untouched.
    assert json.loads(verdict_file.read_text())["verdict"] == "cleared"


def test_report_lower_confidence_and_target(verdict_file, tmp_path):
    assert main(["report", str(verdict_file), "--gate-confidence", "lower"]) == 1
    assert main(["report", str(verdict_file), "--overall-target", "94"]) == 0
    assert main(["report", str(verdict_file), "--overall-target", "95"]) == 1


def test_report_loads_no_model_library(verdict_file):
    script = (
        "import sys; from loragate.cli import main; "
        f"code = main(['report', {str(verdict_file)!r}, '--threshold', 'tron_format=0.5']); "
        "heavy = [m for m in ('torch', 'transformers', 'llama_cpp') if m in sys.modules]; "
        "print('HEAVY', heavy); sys.exit(code)"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "HEAVY []" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--threshold", "pdca_schema"], "HARNESS=VALUE"),
        (["--threshold", "nope=0.5"], "no harness 'nope'"),
    ],
)
def test_report_bad_arguments(verdict_file, argv, message):
    with pytest.raises(SystemExit, match=message):
        main(["report", str(verdict_file), *argv])


def test_report_rejects_a_file_that_is_not_a_verdict(tmp_path):
    path = tmp_path / "x.json"
    path.write_text('{"schema": "other"}')
    with pytest.raises(SystemExit, match="field 'schema'"):
        main(["report", str(path)])
    path.write_text("{oops")
    with pytest.raises(SystemExit, match=r"x.json:1:\d+: invalid JSON"):
        main(["report", str(path)])


def test_unbuilt_stage_says_so(capsys, monkeypatch):
    from loragate import cli

    monkeypatch.setitem(cli.STAGES, "data", ("loragate.not_a_module", "x"))
    assert main(["data"]) == 4
    assert "not built yet" in capsys.readouterr().err


def test_unusable_verdict_files_are_a_usage_error_with_one_line(tmp_path):
    import subprocess
    import sys

    broken = tmp_path / "v.json"
    broken.write_text("{broken")
    for args in (["report", str(broken)], ["report", "--compare", "/nope1.json", "/nope2.json"]):
        proc = subprocess.run([sys.executable, "-m", "loragate.cli", *args], capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 4, proc.stderr
        assert proc.stderr.count("\n") == 1 and "loragate report:" in proc.stderr
        assert "Traceback" not in proc.stderr
