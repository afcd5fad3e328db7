"""Start and stop a real ``redis-server`` on a free loopback port, as a child process.

Used by the test fixtures and by anyone who wants the cache without a system Redis. The server
keeps nothing on disk (no RDB snapshots, no append-only file) and listens on 127.0.0.1 only.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

INSTALL_HINT = "install it with `apt-get install -y redis-server`, or set REDIS_URL"


class RedisServerError(RuntimeError):
    pass


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RedisServerError(f"redis-server is not on PATH: {INSTALL_HINT}")
    return path


def _answers_ping(port: int, timeout_s: float = 0.2) -> bool:
    # A raw RESP PING keeps this module free of redis-py, so it can start a server anywhere.
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as sock:
            sock.sendall(b"*1\r\n$4\r\nPING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One ``redis-server`` child process. Use as a context manager or call start/stop."""

    def __init__(self, port: int | None = None, startup_timeout_s: float = 10.0) -> None:
        self.port = port
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("the server has not been started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, attempts: int = 3) -> RedisServer:
        binary = redis_server_binary()
        last_error = ""
        for _ in range(attempts):
            port = self.port or free_loopback_port()
            try:
                self._launch(binary, port)
                return self
            except RedisServerError as exc:
                # Another process may have taken the port between choosing and binding it.
                last_error = str(exc)
                self._terminate()
        raise RedisServerError(f"could not start redis-server: {last_error}")

    def _launch(self, binary: str, port: int) -> None:
        self._workdir = tempfile.TemporaryDirectory(prefix="loragate-redis-")
        log = Path(self._workdir.name) / "redis.log"
        self._process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self._workdir.name, "--logfile", str(log),
             "--daemonize", "no", "--protected-mode", "yes"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + self.startup_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = log.read_text(errors="replace")[-500:] if log.exists() else ""
                raise RedisServerError(f"redis-server exited with {self._process.returncode} "
                                       f"on port {port}: {tail.strip()}")
            if _answers_ping(port):
                self.port = port
                return
            time.sleep(0.05)
        raise RedisServerError(f"redis-server did not answer PING on port {port} "
                               f"within {self.startup_timeout_s} s")

    def kill(self) -> None:
        """Kill the server abruptly (SIGKILL), as a crash would."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(timeout=10)

    def stop(self) -> None:
        self._terminate()

    def _terminate(self) -> None:
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait(timeout=10)
            if self._process.stderr is not None:
                self._process.stderr.close()
            self._process = None
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
