"""`loragate check HARNESS FILE…` on files and on stdin."""

from __future__ import annotations

import io
import json
import random

import pytest

from loragate.cli import main
from loragate.data.generate import pdca_sample, split_pools, tool_sample


@pytest.fixture
def pdca_text():
    return pdca_sample(random.Random(3), split_pools()[0])[1]


def test_check_files_pass_and_fail(tmp_path, pdca_text, capsys):
    good = tmp_path / "good.md"
    good.write_text(pdca_text)
    bad = tmp_path / "bad.md"
    bad.write_text(pdca_text.replace("## **✅ CHECK**", "## Notes"))
    assert main(["check", "pdca_schema", str(good)]) == 0
    assert main(["check", "pdca_schema", str(good), str(bad)]) == 1
    out = capsys.readouterr().out
    assert f"FAIL {bad}" in out and "CHECK" in out.split(f"FAIL {bad}")[1]


def test_check_reads_stdin(monkeypatch, pdca_text, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO(pdca_text))
    assert main(["check", "pdca_template", "-"]) == 0
    assert "PASS -" in capsys.readouterr().out


def test_check_refusal_needs_and_uses_expect(tmp_path, capsys):
    answer = tmp_path / "a.md"
    answer.write_text("🛑 **STOP acknowledged.** I have halted all actions.\n\nWhat is up?\n")
    with pytest.raises(SystemExit, match="--expect"):
        main(["check", "refusal", str(answer)])
    assert main(["check", "refusal", "--expect", "refuse", str(answer)]) == 0
    assert main(["check", "refusal", "--expect", "comply", str(answer)]) == 1
    assert "predicted: refuse" in capsys.readouterr().out


def test_check_tool_success_with_expected_json(tmp_path):
    _, answer, context = tool_sample(random.Random(5), split_pools()[0])
    (tmp_path / "answer.md").write_text(answer)
    (tmp_path / "expected.json").write_text(json.dumps(context["expected"]))
    assert main(["check", "tool_success", "--expected-json", str(tmp_path / "expected.json"),
                 str(tmp_path / "answer.md")]) == 0


def test_check_missing_file_is_named(tmp_path):
    with pytest.raises(SystemExit, match="nope.md: no such file"):
        main(["check", "pdca_schema", str(tmp_path / "nope.md")])
