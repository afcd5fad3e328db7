"""Serve a GGUF on an OpenAI-compatible endpoint with llama-cpp-python's own server.

:func:`serve_gguf` is a context manager (used by tests, smoke runs and ``loragate serve``): it
starts ``python -m llama_cpp.server`` on loopback as a subprocess, waits until ``/v1/models``
answers, yields the base URL, and stops the server on exit. ``loragate serve`` without a
GGUF uses Ollama instead when ``OLLAMA_HOST`` (or Ollama's default port) answers.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from loragate.backends.faults import BackendError
from loragate.exit_codes import ExitCode

READY_TIMEOUT_S = 120.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUse` when something listens on ``host:port`` already: the readiness
    check would otherwise reach that other server and call this one ready."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise PortInUse(f"{host}:{port} is in use ({exc.strerror}); choose another "
                            "--port, or 0 for any free one") from None


class PortInUse(BackendError):
    """The port asked for is taken."""


def server_environment() -> dict[str, str]:
    """This process's environment without the variables llama-cpp-python's server reads its
    settings from (pydantic-settings, no prefix: ``PORT``, ``HOST``, ``MODEL``, ``N_CTX`` …),
    which would override the command line (a ``PORT`` set for another program made it listen
    where loragate was not waiting)."""
    try:
        from llama_cpp.server.settings import ModelSettings, ServerSettings
    except ImportError:  # the command itself will fail and say why
        return dict(os.environ)
    taken = {name.upper() for model in (ModelSettings, ServerSettings)
             for name in model.model_fields}
    return {key: value for key, value in os.environ.items() if key.upper() not in taken}


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks Linux to send the server SIGTERM when loragate dies (even
    by kill -9), so a server never outlives the command that started it; None elsewhere.
    libc is loaded here, in the parent: the child between fork and exec must not import."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM))

    return set_death_signal


def server_command(path: Path, host: str, port: int, *, n_ctx: int | None = None,
                   n_threads: int | None = None, model_alias: str | None = None,
                   lora_path: Path | None = None) -> list[str]:
    # The server's default is to cut off a streaming answer when another request arrives;
    # a batch keeps k requests in flight, so each must run to its end (queued, not cut).
    command = [sys.executable, "-m", "llama_cpp.server", "--model", str(path),
               "--host", host, "--port", str(port), "--interrupt_requests", "false"]
    if n_ctx:
        command += ["--n_ctx", str(n_ctx)]
    if n_threads:
        command += ["--n_threads", str(n_threads), "--n_threads_batch", str(n_threads)]
    if model_alias:
        command += ["--model_alias", model_alias]
    if lora_path:
        command += ["--lora_path", str(lora_path)]
    return command


class StopSignal(BaseException):
    """A stop signal (SIGTERM, SIGINT, SIGHUP) reached the serving process.

    A BaseException, like KeyboardInterrupt, so no ``except Exception`` on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@contextlib.contextmanager
def serve_gguf(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    model_alias: str | None = None,
    lora_path: str | Path | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[str]:
    """Run llama.cpp's OpenAI-compatible server for ``path``; yields ``http://HOST:PORT``."""
    with running_server(path, host, port, n_ctx=n_ctx, n_threads=n_threads,
                        model_alias=model_alias, lora_path=lora_path,
                        ready_timeout_s=ready_timeout_s) as (url, _):
        yield url


@contextlib.contextmanager
def running_server(
    path: str | Path,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    n_ctx: int | None = None,
    n_threads: int | None = None,
    model_alias: str | None = None,
    lora_path: str | Path | None = None,
    ready_timeout_s: float = READY_TIMEOUT_S,
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """:func:`serve_gguf` that also yields the server process. The server is stopped on exit;
    when a :class:`StopSignal` ends the block, the server gets that same signal."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF model not found: {path}")
    if port:
        check_port_free(host, port)
    port = port or free_port(host)
    command = server_command(path, host, port, n_ctx=n_ctx, n_threads=n_threads,
                             model_alias=model_alias,
                             lora_path=Path(lora_path) if lora_path else None)
    url = f"http://{host}:{port}"
    with tempfile.TemporaryFile(mode="w+b") as log:
        process: subprocess.Popen[bytes] | None = None
        stop_with = signal.SIGINT  # uvicorn shuts down cleanly on SIGINT
        try:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env=server_environment(),
                preexec_fn=die_with_parent())
            _wait_until_ready(url, process, log, ready_timeout_s)
            yield url, process
        except StopSignal as stop:
            stop_with = signal.Signals(stop.signum)
            raise
        finally:
            if process is not None:
                _stop(process, stop_with)


def _log_tail(log: object, limit: int = 2000) -> str:
    log.seek(0)  # type: ignore[attr-defined]
    return log.read().decode("utf-8", "replace")[-limit:]  # type: ignore[attr-defined]


def _wait_until_ready(url: str, process: subprocess.Popen[bytes], log: object,
                      timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackendError(f"llama.cpp server exited with code {process.returncode} "
                               f"before answering at {url}:\n{_log_tail(log)}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/v1/models", timeout=2.0).status_code == 200:
                return
        time.sleep(0.2)
    _stop(process)
    raise BackendError(f"llama.cpp server did not answer at {url} within {timeout_s:.0f} s:\n"
                       f"{_log_tail(log)}")


def _stop(process: subprocess.Popen[bytes], stop_with: int = signal.SIGINT) -> None:
    if process.poll() is not None:
        return
    process.send_signal(stop_with)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def ollama_answers(host: str | None = None, timeout_s: float = 2.0) -> str | None:
    """The Ollama base URL when a server answers there, else None."""
    from ollama._client import _parse_host  # the client's own reading of OLLAMA_HOST

    base = _parse_host(host or os.environ.get("OLLAMA_HOST"))
    try:
        response = httpx.get(f"{base}/api/tags", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    return base if response.status_code == 200 else None


# -- `loragate serve` --------------------------------------------------------------------------
def port_number(text: str) -> int:
    """argparse type of ``--port``: a TCP port (a bigger number was once taken modulo 65536)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port (0-65535)")
    return port


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", nargs="?", type=Path, metavar="MODEL.gguf",
                        help="GGUF to serve; without it, an Ollama server that answers is used")
    parser.add_argument("--lora", type=Path, metavar="ADAPTER.gguf",
                        help="LoRA adapter GGUF applied on top of the model")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=port_number, default=8080,
                        help="port, 0-65535 (0: any free port)")
    parser.add_argument("--alias", default=None,
                        help="model name clients use (default: the file's stem)")


def run(args: argparse.Namespace) -> int:
    from loragate.config import ConfigError, load_config

    if args.model is None:
        base = ollama_answers()
        if base is None:
            print("loragate serve: give a GGUF to serve, or start Ollama (`ollama serve`, "
                  "OLLAMA_HOST) to use it", file=sys.stderr)
            return ExitCode.USAGE
        print(f"Ollama answers at {base}; use --model ollama:NAME "
              f"(or openai:{base}/v1#NAME)")
        return 0
    from loragate.config import DEFAULT_CONFIG, BackendSettings

    try:
        if args.config == str(DEFAULT_CONFIG) and not Path(args.config).is_file():
            # Serving needs no project: outside a checkout the backend defaults serve.
            settings = BackendSettings()
        else:
            settings = load_config(args.config, check_paths=False, gating_only=True).backend
    except ConfigError as exc:
        print(f"loragate serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    model = Path(str(args.model).removeprefix("gguf:"))
    if not model.is_file():
        print(f"loragate serve: {model}: GGUF model not found", file=sys.stderr)
        return ExitCode.USAGE
    from loragate.backends.gguf_file import GgufFileError, check_gguf_file

    for what, path in (("model", model), ("adapter", args.lora)):
        if path is None:
            continue
        try:
            check_gguf_file(Path(path))
        except (GgufFileError, OSError) as exc:
            print(f"loragate serve: {what} {path}: {exc}", file=sys.stderr)
            return ExitCode.USAGE
    args.model = model
    alias = args.alias or args.model.stem
    try:
        with _stop_signals_raise(), running_server(
            args.model, args.host, args.port, n_ctx=settings.n_ctx,
            n_threads=settings.n_threads, model_alias=alias, lora_path=args.lora,
        ) as (url, process):
            print(f"serving {args.model} at {url}/v1 - model spec: openai:{url}/v1#{alias}")
            # llama-cpp-python's server answers under one global lock: more requests in flight
            # only queue. Said here so nobody reads a concurrency figure as parallel decoding.
            print("one slot: requests are answered one at a time (for parallel slots serve "
                  "the GGUF with llama.cpp's llama-server --parallel N, or Ollama)")
            print("press Ctrl-C to stop", flush=True)
            code = process.wait()
            print(f"loragate serve: the llama.cpp server exited with code {code}",
                  file=sys.stderr)
            return ExitCode.BLOCKED
    except StopSignal as stop:
        print(f"loragate serve: stopped by {stop}", file=sys.stderr)
        return 0
    except PortInUse as exc:
        print(f"loragate serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    except (BackendError, FileNotFoundError) as exc:
        print(f"loragate serve: {exc}", file=sys.stderr)
        return ExitCode.GATE_ERROR


STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGINT", "SIGHUP")
                     if hasattr(signal, name))


@contextlib.contextmanager
def _stop_signals_raise() -> Iterator[None]:
    """While serving, a stop signal raises :class:`StopSignal` in the main thread.

    Python's default for SIGTERM and SIGHUP ends the process at once, skipping every
    ``finally``: the llama.cpp server child was orphaned and kept the port. Raising instead
    runs the server's clean-up, which passes the same signal on and waits for the child. A
    second signal during that clean-up is ignored (the first is being handled).
    """
    received: list[int] = []

    def handler(signum: int, frame: object) -> None:
        del frame
        if not received:
            received.append(signum)
            raise StopSignal(signum)

    previous = {signum: signal.signal(signum, handler) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, old_handler in previous.items():
            signal.signal(signum, old_handler)
