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
    assert main(["check", "refusal", str(answer)]) == 4
    assert "refusal needs --expect" in capsys.readouterr().err
    assert main(["check", "refusal", "--expect", "refuse", str(answer)]) == 0
    assert main(["check", "refusal", "--expect", "comply", str(answer)]) == 1
    assert "predicted: refuse" in capsys.readouterr().out


def test_check_tool_success_with_expected_json(tmp_path):
    _, answer, context = tool_sample(random.Random(5), split_pools()[0])
    (tmp_path / "answer.md").write_text(answer)
    (tmp_path / "expected.json").write_text(json.dumps(context["expected"]))
    assert main(["check", "tool_success", "--expected-json", str(tmp_path / "expected.json"),
                 str(tmp_path / "answer.md")]) == 0


def _usage_error(argv: list[str], capsys) -> str:
    """Run ``loragate check``; it must stop with the usage status (4) and one line on stderr."""
    assert main(["check", *argv]) == 4
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("loragate check: ")
    return lines[0]


def test_check_missing_file_is_named(tmp_path, capsys):
    assert "nope.md: no such file" in _usage_error(
        ["pdca_schema", str(tmp_path / "nope.md")], capsys)


def test_a_bad_last_file_stops_before_any_verdict_is_printed(tmp_path, pdca_text, capsys):
    good = tmp_path / "good.md"
    good.write_text(pdca_text)
    assert "nope.md: no such file" in _usage_error(
        ["pdca_schema", str(good), str(tmp_path / "nope.md")], capsys)


def test_check_folder_given_as_input(tmp_path, capsys):
    assert f"{tmp_path}: is a folder" in _usage_error(["pdca_schema", str(tmp_path)], capsys)


def test_check_undecodable_input_names_file_line_and_byte(tmp_path, capsys):
    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes("# Plan\n\ncafé\n".encode("latin-1"))
    line = _usage_error(["pdca_schema", str(latin1)], capsys)
    assert f"{latin1}: not UTF-8 text: byte 0xe9 at offset 11 (line 3)" in line


def test_check_undecodable_stdin(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"ok\n\xff\xfe")))
    assert "<stdin>: not UTF-8 text: byte 0xff at offset 3 (line 2)" in _usage_error(
        ["pdca_template", "-"], capsys)


@pytest.mark.parametrize("content,fragment", [
    (None, "expected.json: no such file"),
    (b"\x80{}", "expected.json: not UTF-8 text: byte 0x80 at offset 0"),
    (b'{"tool": "read_file",\n "effect": }', "expected.json:2:12: invalid JSON: Expecting value"),
    (b"[1, 2]", "expected.json: tool_success expected: field '(top level)'"),
    (b'{"tool": "fly", "effect": {"read": "a"}}', "expected.json: tool_success expected: "
                                                  "field 'tool'"),
])
def test_check_bad_expected_json(tmp_path, capsys, content, fragment):
    answer = tmp_path / "answer.md"
    answer.write_text("no call")
    expected = tmp_path / "expected.json"
    if content is not None:
        expected.write_bytes(content)
    line = _usage_error(["tool_success", "--expected-json", str(expected), str(answer)], capsys)
    assert fragment in line


def test_check_tool_success_without_expected_json(tmp_path, capsys):
    answer = tmp_path / "answer.md"
    answer.write_text("no call")
    assert "tool_success needs --expected-json FILE" in _usage_error(
        ["tool_success", str(answer)], capsys)


@pytest.mark.parametrize("content,fragment", [
    (None, "feedback.txt: no such file"),
    (b"TRON says \xc3(", "feedback.txt: not UTF-8 text: byte 0xc3 at offset 10"),
])
def test_check_bad_tron_feedback(tmp_path, capsys, content, fragment):
    answer = tmp_path / "answer.md"
    answer.write_text("an answer")
    feedback = tmp_path / "feedback.txt"
    if content is not None:
        feedback.write_bytes(content)
    line = _usage_error(["tron_format", "--tron-feedback", str(feedback), str(answer)], capsys)
    assert fragment in line


def test_check_through_the_installed_command_has_no_traceback(tmp_path):
    import subprocess
    import sys

    latin1 = tmp_path / "latin1.md"
    latin1.write_bytes(b"caf\xe9")
    done = subprocess.run([sys.executable, "-m", "loragate.cli", "check", "pdca_schema",
                           str(latin1)], capture_output=True, text=True, check=False)
    assert done.returncode == 4
    assert "Traceback" not in done.stderr
    assert "latin1.md: not UTF-8 text" in done.stderr


def test_a_plugin_option_given_to_loragate_gate_before_the_separator_says_where_it_goes(capsys):
    from loragate.cli import main
    from loragate.exit_codes import ExitCode

    with pytest.raises(SystemExit) as stopped:
        main(["gate", "--model", "openai:http://127.0.0.1:1/v1#m", "--samples", "3"])
    assert stopped.value.code == ExitCode.USAGE
    assert "go after --: loragate gate ... -- --samples 3" in capsys.readouterr().err
