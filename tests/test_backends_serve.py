"""`loragate serve`: arguments, the Ollama fallback, and stopping on a signal (tiny GGUF)."""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from loragate.backends import serve
from tests.ollama_double import OllamaDouble, ScriptedBackend


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="config/tiny_cpu.json")
    serve.add_arguments(parser)
    return parser.parse_args(list(argv))


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_without_a_model_uses_ollama_when_it_answers(monkeypatch, capsys) -> None:
    with OllamaDouble({"web4": ScriptedBackend()}) as host:
        monkeypatch.setenv("OLLAMA_HOST", host)
        assert serve.run(_parse()) == 0
    assert host in capsys.readouterr().out


def test_without_a_model_or_ollama_says_what_to_do(monkeypatch, capsys) -> None:
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{_closed_port()}")
    assert serve.run(_parse()) == 4  # usage: nothing to serve
    assert "ollama serve" in capsys.readouterr().err


def test_serving_a_missing_gguf_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nothere.gguf"), \
            serve.serve_gguf(tmp_path / "nothere.gguf"):
        pass


def test_server_command_queues_requests_instead_of_interrupting(tmp_path: Path) -> None:
    command = serve.server_command(tmp_path / "m.gguf", "127.0.0.1", 8080, n_ctx=512,
                                   model_alias="m")
    assert command[command.index("--interrupt_requests") + 1] == "false"
    assert command[command.index("--n_ctx") + 1] == "512"
    assert command[command.index("--port") + 1] == "8080"


def _start_serving(gguf: Path) -> subprocess.Popen[str]:
    config = Path(__file__).resolve().parents[1] / "config" / "tiny_cpu.json"
    return subprocess.Popen(
        [sys.executable, "-m", "loragate.cli", "serve", str(gguf), "--port", "0",
         "--config", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _server_child(parent: subprocess.Popen[str], timeout_s: float = 60.0) -> psutil.Process:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = psutil.Process(parent.pid).children(recursive=True)
        if children:
            return children[0]
        assert parent.poll() is None, parent.stderr.read()
        time.sleep(0.05)
    raise AssertionError("loragate serve started no server process")


def _gone(process: psutil.Process, timeout_s: float = 20.0) -> bool:
    try:
        process.wait(timeout=timeout_s)
    except psutil.TimeoutExpired:
        return False
    return True


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP],
                         ids=["SIGTERM", "SIGINT", "SIGHUP"])
def test_a_stop_signal_stops_the_server_child_and_frees_the_port(tiny_gguf: Path,
                                                                 signum: int) -> None:
    parent = _start_serving(tiny_gguf)
    child = _server_child(parent)
    try:
        line = parent.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)/v1", line).group(1))
        assert not _port_is_free(port)
        parent.send_signal(signum)
        assert parent.wait(timeout=30) == 0
        assert _gone(child), "the llama.cpp server outlived loragate serve"
        assert _port_is_free(port)
        assert f"stopped by {signal.Signals(signum).name}" in parent.stderr.read()
    finally:
        for process in (child, parent):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()


def test_sigterm_while_the_model_is_still_loading_stops_the_child_too(tiny_gguf: Path) -> None:
    parent = _start_serving(tiny_gguf)
    child = _server_child(parent)
    try:
        parent.send_signal(signal.SIGTERM)  # before the server answers, most likely
        assert parent.wait(timeout=30) == 0
        assert _gone(child)
    finally:
        for process in (child, parent):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()


def test_a_server_that_dies_ends_loragate_serve_with_status_1(tiny_gguf: Path) -> None:
    parent = _start_serving(tiny_gguf)
    child = _server_child(parent)
    try:
        parent.stdout.readline()  # serving
        child.kill()
        assert parent.wait(timeout=30) == 1
        assert "the llama.cpp server exited with code" in parent.stderr.read()
    finally:
        with contextlib.suppress(ProcessLookupError):
            parent.kill()


def test_kill_9_of_loragate_serve_takes_the_server_down_too(tiny_gguf: Path) -> None:
    parent = _start_serving(tiny_gguf)
    child = _server_child(parent)
    try:
        parent.stdout.readline()  # serving
        parent.kill()  # SIGKILL: no clean-up of ours runs
        parent.wait(timeout=10)
        assert _gone(child), "the llama.cpp server outlived a killed loragate serve"
    finally:
        for process in (child, parent):
            with contextlib.suppress(psutil.NoSuchProcess, ProcessLookupError):
                process.kill()


def test_a_port_already_in_use_is_a_usage_error_naming_it(tiny_gguf: Path, capsys) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert serve.run(_parse(str(tiny_gguf), "--port", str(port))) == 4
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is in use" in err and "serving" not in err


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_a_port_out_of_range_is_refused(port: str, capsys) -> None:
    from loragate.cli import main

    with pytest.raises(SystemExit) as exited:
        main(["serve", "model.gguf", f"--port={port}"])
    assert exited.value.code == 4
    assert "--port" in capsys.readouterr().err


def test_a_file_that_is_not_a_gguf_is_one_line(tmp_path: Path, capsys) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model at all\n")
    assert serve.run(_parse(str(fake), "--port", "0")) == 4
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"loragate serve: model {fake}") and "\n" not in err


def test_the_servers_settings_in_the_environment_do_not_move_it(tiny_gguf: Path,
                                                                 monkeypatch) -> None:
    """llama-cpp-python's server reads PORT (and its other settings) from the environment over
    its command line; a PORT set for another program once made it listen elsewhere."""
    monkeypatch.setenv("PORT", str(_closed_port()))
    monkeypatch.setenv("N_CTX", "64")
    assert "PORT" not in serve.server_environment()
    assert "N_CTX" not in serve.server_environment()
    import httpx

    with serve.serve_gguf(tiny_gguf, n_ctx=256) as url:
        assert httpx.get(f"{url}/v1/models", timeout=10).status_code == 200
