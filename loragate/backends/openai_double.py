"""Test support, not used by loragate itself: a loopback OpenAI-compatible server double.

It answers ``/v1/chat/completions`` and ``/v1/completions`` as server-sent events the way
llama.cpp's server and vLLM stream them (content deltas, a finish reason, a usage record,
``[DONE]``) and lists its one model at ``/v1/models``, so the openai backend is exercised over
real HTTP without a model. Like a server started with N parallel slots, at most ``slots``
requests are answered at once and each takes ``delay_s`` before its first token; the others
wait for a slot. ``requests`` counts the generation requests, ``max_active`` the most that
were being answered at the same time.

The answer is a pure function of the prompt and the options (:func:`scripted_answer`): the
last message's words, then the seed, cut by ``max_tokens`` and the stop strings. A request
whose last message contains ``fail_marker`` is answered with HTTP ``fail_status`` instead.

Shared by tests/test_backends_batch.py and benchmarks/gate_throughput.py, which runs as a
script and cannot import from tests/.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def scripted_answer(text: str, max_tokens: int, seed: int, stop: list[str]
                    ) -> tuple[list[str], str]:
    """The pieces (one per "token") answering ``text``, and the finish reason."""
    pieces = [f"{word} " for word in text.split()] + [f"seed={seed}"]
    finish = "stop"
    if len(pieces) > max_tokens:
        pieces, finish = pieces[:max_tokens], "length"
    joined = "".join(pieces)
    cuts = [joined.find(s) for s in stop if s and s in joined]
    if cuts:
        cut = min(cuts)
        kept: list[str] = []
        length = 0
        for piece in pieces:
            if length + len(piece) > cut:
                kept.append(piece[: cut - length])
                break
            kept.append(piece)
            length += len(piece)
        pieces, finish = [p for p in kept if p], "stop"
    return pieces, finish


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Python's default backlog of 5 would make the 6th simultaneous client wait for a SYN retry.
    request_queue_size = 128


class OpenAIDouble:
    """``with OpenAIDouble(delay_s=0.2, slots=8) as url:`` serves ``url`` (ending in /v1)."""

    def __init__(self, *, model: str = "double", delay_s: float = 0.0, slots: int = 8,
                 fail_marker: str | None = None, fail_status: int = 400,
                 timings: bool = False) -> None:
        if slots < 1:
            raise ValueError(f"OpenAIDouble needs at least one slot, got {slots}")
        self.model = model
        self.delay_s = delay_s
        self.slots = slots
        self.fail_marker = fail_marker
        self.fail_status = fail_status
        self.timings = timings  # send llama.cpp's `timings`: the slot's own time on a request
        self.requests = 0
        self.active = 0
        self.max_active = 0
        self._slots = threading.BoundedSemaphore(slots)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> str:
        self._thread.start()
        return self.url

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    # -- what a request gets ----------------------------------------------------------------
    def _enter_slot(self) -> None:
        self._slots.acquire()
        with self._lock:
            self.requests += 1
            self.active += 1
            self.max_active = max(self.max_active, self.active)

    def _leave_slot(self) -> None:
        with self._lock:
            self.active -= 1
        self._slots.release()

    def events(self, body: dict[str, Any], chat: bool, started: float | None = None,
               done: Callable[[], None] | None = None) -> Iterator[dict[str, Any]]:
        """The JSON events streamed for one request (after the slot's delay); ``started``:
        when its slot began work on it (for ``timings``); ``done``: called when the last
        token is out, before the finish is sent, as a server frees its slot (a client that
        reads the finish may ask again at once)."""
        text = _prompt_text(body, chat)
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else list(stop)
        pieces, finish = scripted_answer(text, int(body.get("max_tokens") or 16),
                                         int(body.get("seed") or 0), stop)
        base = {"id": "cmpl-double", "created": int(time.time()), "model": self.model,
                "object": "chat.completion.chunk" if chat else "text_completion"}
        for piece in pieces:
            choice = ({"index": 0, "delta": {"content": piece}, "finish_reason": None} if chat
                      else {"index": 0, "text": piece, "finish_reason": None})
            yield {**base, "choices": [choice]}
        if done is not None:
            done()
        last = ({"index": 0, "delta": {}, "finish_reason": finish} if chat
                else {"index": 0, "text": "", "finish_reason": finish})
        yield {**base, "choices": [last]}
        usage = {"prompt_tokens": len(text.split()), "completion_tokens": len(pieces),
                 "total_tokens": len(text.split()) + len(pieces)}
        extra = {}
        if self.timings and started is not None:
            extra["timings"] = {"prompt_ms": 0.0,
                                "predicted_ms": (time.perf_counter() - started) * 1000}
        yield {**base, "choices": [], "usage": usage, **extra}

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test and benchmark output quiet

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/v1/models":
                    self._json(200, {"object": "list", "data": [
                        {"id": double.model, "object": "model", "owned_by": "double"}]})
                else:
                    self._json(404, {"error": "not found"})

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as exc:
                    self._json(400, {"error": f"invalid JSON: {exc}"})
                    return
                if self.path not in ("/v1/chat/completions", "/v1/completions"):
                    self._json(404, {"error": "not found"})
                    return
                chat = self.path == "/v1/chat/completions"
                double._enter_slot()
                started = time.perf_counter()
                held = True

                def leave() -> None:  # once: at the last token, or on any way out
                    nonlocal held
                    if held:
                        held = False
                        double._leave_slot()

                try:
                    if double.delay_s:
                        time.sleep(double.delay_s)
                    marker = double.fail_marker
                    if marker and marker in _prompt_text(body, chat):
                        self._json(double.fail_status, {"error": "injected failure"})
                        return
                    self._stream(double.events(body, chat, started, leave))
                finally:
                    leave()

            def _stream(self, events: Iterator[dict[str, Any]]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for event in events:
                        self.wfile.write(b"data: " + json.dumps(event).encode() + b"\n\n")
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: nothing left to tell it
                self.close_connection = True

        return Handler


def _prompt_text(body: dict[str, Any], chat: bool) -> str:
    if chat:
        messages = body.get("messages") or [{"content": ""}]
        return str(messages[-1].get("content", ""))
    return str(body.get("prompt", ""))
