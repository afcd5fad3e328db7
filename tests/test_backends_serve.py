"""`loragate serve` argument handling and its Ollama fallback (no model needed)."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

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
    assert serve.run(_parse()) == 2
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
