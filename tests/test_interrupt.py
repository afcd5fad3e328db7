"""Ctrl-C during a gate whose model server hangs: the run stops at once with pytest's
"interrupted" status, instead of waiting for every request in flight to time out."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

RELEASE = threading.Event()


class Hanging(BaseHTTPRequestHandler):
    """Answers the model list; never answers a completion (until the test ends)."""

    posts = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        body = json.dumps({"object": "list", "data": [{"id": "m", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        type(self).posts += 1
        RELEASE.wait(600)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hanging_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hanging)
    server.daemon_threads = True
    Hanging.posts = 0
    RELEASE.clear()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    RELEASE.set()
    server.shutdown()


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
         f"--model=openai:{hanging_server}#m", f"--concurrency={concurrency}"],
        cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while Hanging.posts < int(concurrency) and time.monotonic() < deadline:
            assert process.poll() is None, process.communicate()[0][-3000:]
            time.sleep(0.1)
        assert Hanging.posts >= int(concurrency), "the gate never reached the server"
        process.send_signal(signal.SIGINT)
        # The requests would take 300 s to time out; an interrupted gate returns long before.
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == pytest.ExitCode.INTERRUPTED, output[-3000:]
    assert "VERDICT: CLEARED" not in output and "VERDICT: BLOCKED" not in output
    assert not (cwd / "reports" / "verdict.json").exists() or \
        json.loads((cwd / "reports" / "verdict.json").read_text())["verdict"] == "error"
