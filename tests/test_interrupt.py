"""Ctrl-C during a gate whose model server hangs: the run stops at once with pytest's
"interrupted" status, instead of waiting for every request in flight to time out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from loragate.backends.openai_double import OpenAIDouble


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def hanging_server():
    """The OpenAI double, answering /v1/models at once and each completion only after ten
    minutes: a server whose requests hang."""
    double = OpenAIDouble(model="m", delay_s=600)
    with double:
        yield double


def project(tmp_path: Path) -> Path:
    (tmp_path / "checks.py").write_text("def ok(text, record):\n    return True\n")
    (tmp_path / "prompts.jsonl").write_text("".join(
        json.dumps({"id": f"p{i}", "messages": [{"role": "user", "content": f"q{i}"}]}) + "\n"
        for i in range(6)))
    (tmp_path / "loragate.json").write_text(json.dumps({
        "gates": {"harnesses": {"h": {"gate": "ship", "threshold": 0.5, "validator": "checks:ok",
                                      "prompts": "prompts.jsonl"}}},
        "backend": {"timeout_s": 300, "retries": 0, "cache_path": "cache.sqlite"},
        "reports": {"dir": "reports"}}))
    (tmp_path / "pytest.ini").write_text(textwrap.dedent("""
        [pytest]
        loragate_config = loragate.json
        """))
    return tmp_path


@pytest.mark.parametrize("concurrency", ["1", "3"])
def test_ctrl_c_while_requests_hang_stops_the_gate_at_once(tmp_path, hanging_server,
                                                             concurrency):
    cwd = project(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         f"--model=openai:{hanging_server.url}#m", f"--concurrency={concurrency}"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A test run started in the background by a non-interactive shell (`cmd &`, as CI
        # runners and nohup jobs do) inherits SIGINT ignored, and so would the gate: Python
        # then installs no KeyboardInterrupt handler. The gate gets Ctrl-C as a terminal would.
        preexec_fn=_default_sigint, env={**os.environ, "PYTHONFAULTHANDLER": "1"})
    try:
        deadline = time.monotonic() + 120
        while hanging_server.requests < int(concurrency) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0][-3000:]
            time.sleep(0.1)
        assert hanging_server.requests >= int(concurrency), "the gate never reached the server"
        process.send_signal(signal.SIGINT)
        # The requests would take 300 s to time out; an interrupted gate returns long before.
        try:
            output, _ = process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            # Where it hangs: faulthandler dumps every thread's stack on SIGABRT.
            process.send_signal(signal.SIGABRT)
            pytest.fail("the gate did not stop 60 s after Ctrl-C:\n"
                        + process.communicate()[0][-6000:])
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "VERDICT: CLEARED" not in output and "VERDICT: BLOCKED" not in output
    assert not (cwd / "reports" / "verdict.json").exists() or \
        json.loads((cwd / "reports" / "verdict.json").read_text())["verdict"] == "error"
