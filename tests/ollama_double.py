"""A loopback HTTP server speaking Ollama's documented REST API: a test double, not shipped.

It answers ``/api/chat`` and ``/api/generate`` (streamed NDJSON or one JSON object),
``/api/show`` and ``/api/tags`` from in-process loragate backends (the gguf backend in the
tests), so the ollama backend and the official client are exercised over real HTTP. Faults
are injected per instance: ``delay_s`` before answering (timeouts), ``fail_status`` (a busy
or broken server). ``requests`` counts the generation requests received.

:class:`ScriptedBackend` is an in-memory backend for tests that need no model: it answers with
the prompt's words, and can fail, sleep and record how many requests were in flight.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Generator, Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from loragate.backends.base import BaseBackend, GenerationOptions, Message, StreamEnd
from loragate.backends.faults import RetryPolicy, TransientError

_MAX_PREDICT = 4096


class ScriptedBackend(BaseBackend):
    """Answers with the prompt's last words; can fail, sleep, and records concurrency."""

    kind = "scripted"

    def __init__(self, *, in_process: bool = False, fail_times: int = 0,
                 error: type[Exception] = TransientError, delay_s: float = 0.0,
                 digest: str = "d1", retry: RetryPolicy | None = None,
                 reply: str | None = None) -> None:
        super().__init__("scripted:test", retry=retry or RetryPolicy(retries=2, backoff_s=0),
                         concurrency=4)
        self.in_process = in_process  # type: ignore[misc]
        self.fail_times = fail_times
        self.error = error
        self.delay_s = delay_s
        self._digest = digest
        self.reply = reply  # answer this instead of the prompt's words
        self.calls = 0
        self.seen: list[str | tuple[Message, ...]] = []  # every prompt, as the server got it
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    @property
    def digest(self) -> str:
        return self._digest

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[str | StreamEnd]:
        with self._lock:
            self.calls += 1
            self.seen.append(prompt)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            failing = self.calls <= self.fail_times
        try:
            if failing:
                raise self.error("scripted failure")
            time.sleep(self.delay_s)
            text = prompt if isinstance(prompt, str) else prompt[-1].content
            text = self.reply if self.reply is not None else text
            words = text.split()[: options.max_tokens]
            for word in words:
                yield word + " "
            cut = len(text.split()) > options.max_tokens
        finally:
            # Before the end is sent: a client that reads it may ask again at once, and a busy
            # machine could resume this generator only after that next call counted itself.
            with self._lock:
                self.active -= 1
        yield StreamEnd("length" if cut else "stop", prompt_tokens=len(text.split()),
                        completion_tokens=len(words))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def options_from_ollama(options: dict[str, Any] | None) -> GenerationOptions:
    options = options or {}
    num_predict = int(options.get("num_predict", 128))
    stop = options.get("stop") or ()
    return GenerationOptions(
        temperature=float(options.get("temperature", 0.8)),
        top_p=float(options.get("top_p", 0.9)),
        top_k=int(options.get("top_k", 40)),
        max_tokens=_MAX_PREDICT if num_predict < 0 else num_predict,
        seed=int(options.get("seed", 0)),
        stop=tuple(stop),
    )


class OllamaDouble:
    """``with OllamaDouble({"tiny": backend}) as host:`` serves on 127.0.0.1 at ``host``."""

    def __init__(self, models: dict[str, Any], *, delay_s: float = 0.0,
                 fail_status: int | None = None, drop_system: bool = False) -> None:
        # Ollama names carry a tag; a bare name means ":latest".
        self.models = {self._full(name): backend for name, backend in models.items()}
        self.delay_s = delay_s
        self.fail_status = fail_status
        # `ollama create`: uploaded blobs by digest, created models by name. drop_system is a
        # fault: the server forgets the SYSTEM line it was given.
        self.blobs: dict[str, bytes] = {}
        self.created: dict[str, dict[str, Any]] = {}
        self.drop_system = drop_system
        self.requests = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @staticmethod
    def _full(name: str) -> str:
        return name if ":" in name else f"{name}:latest"

    @property
    def host(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self) -> str:
        self._thread.start()
        return self.host

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)

    def count_request(self) -> None:
        with self._lock:
            self.requests += 1

    def backend(self, name: str | None) -> Any | None:
        return self.models.get(self._full(name or ""))

    # -- the API ---------------------------------------------------------------------------
    def tags(self) -> dict[str, Any]:
        return {"models": [self._tag(name, backend) for name, backend in self.models.items()]}

    def _tag(self, name: str, backend: Any) -> dict[str, Any]:
        size = backend.path.stat().st_size if hasattr(backend, "path") else 0
        return {
            "name": name, "model": name, "modified_at": _now(), "size": size,
            "digest": backend.digest, "details": self._details(),
        }

    @staticmethod
    def _details() -> dict[str, Any]:
        return {"parent_model": "", "format": "gguf", "family": "llama", "families": ["llama"],
                "parameter_size": "tiny", "quantization_level": "F16"}

    def create(self, body: dict[str, Any]) -> str | None:
        """Record a created model; the error Ollama would give, or None."""
        missing = [d for d in [*(body.get("files") or {}).values(),
                               *(body.get("adapters") or {}).values()] if d not in self.blobs]
        if missing or not body.get("files"):
            return f"blob(s) not uploaded: {missing or 'no FROM file'}"
        self.created[self._full(body.get("model", ""))] = body
        return None

    def created_modelfile(self, name: str) -> str:
        body = self.created[self._full(name)]
        lines = [f"FROM {digest}" for digest in body["files"].values()]
        lines += [f"ADAPTER {digest}" for digest in (body.get("adapters") or {}).values()]
        if body.get("template"):
            lines.append(f'TEMPLATE """{body["template"]}"""')
        if body.get("system") and not self.drop_system:
            lines.append(f'SYSTEM """{body["system"]}"""')
        lines += [f"PARAMETER {key} {value}" for key, value in
                  (body.get("parameters") or {}).items()]
        return "\n".join(lines) + "\n"

    def show(self, name: str, backend: Any) -> dict[str, Any]:
        return {
            "modelfile": f"# Modelfile generated by the loragate test double\nFROM {name}\n",
            "parameters": "temperature 0",
            "template": "{{ .Prompt }}",
            "details": self._details(),
            "model_info": {"general.architecture": "llama", "general.digest": backend.digest},
            "capabilities": ["completion"],
            "modified_at": _now(),
        }

    def answer(self, name: str, backend: Any, prompt: Any, options: GenerationOptions,
               chat: bool) -> Iterator[dict[str, Any]]:
        """The NDJSON objects Ollama streams: content pieces, then the done record."""
        start = time.perf_counter_ns()
        for item in backend.stream(prompt, options):
            if isinstance(item, StreamEnd):
                total = time.perf_counter_ns() - start
                final = {
                    "model": name, "created_at": _now(), "done": True,
                    "done_reason": item.finish_reason, "total_duration": total,
                    "load_duration": 0, "prompt_eval_count": item.prompt_tokens,
                    "prompt_eval_duration": 0, "eval_count": item.completion_tokens,
                    "eval_duration": total,
                }
                if chat:
                    final["message"] = {"role": "assistant", "content": ""}
                else:
                    final["response"] = ""
                    final["context"] = []
                yield final
                return
            piece: dict[str, Any] = {"model": name, "created_at": _now(), "done": False}
            if chat:
                piece["message"] = {"role": "assistant", "content": item}
            else:
                piece["response"] = item
            yield piece

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        double = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass  # keep test output quiet

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _read_body(self) -> dict[str, Any] | None:
                length = int(self.headers.get("Content-Length") or 0)
                try:
                    body = json.loads(self.rfile.read(length) or b"{}")
                except json.JSONDecodeError as exc:
                    self._json(400, {"error": f"invalid JSON: {exc}"})
                    return None
                return body

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                if self.path == "/api/tags":
                    self._json(200, double.tags())
                elif self.path == "/api/version":
                    self._json(200, {"version": "0.0.0-double"})
                elif self.path in ("/", ""):
                    data = b"Ollama is running"
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                else:
                    self._json(404, {"error": "not found"})

            def _read_raw(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() != "chunked":
                    return self.rfile.read(int(self.headers.get("Content-Length") or 0))
                data = b""
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                    if size == 0:
                        self.rfile.readline()
                        return data
                    data += self.rfile.read(size)
                    self.rfile.readline()

            def _upload(self) -> None:
                digest = self.path.removeprefix("/api/blobs/")
                data = self._read_raw()
                if f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
                    self._json(400, {"error": "digest mismatch"})
                    return
                double.blobs[digest] = data
                self.send_response(201)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _create(self, body: dict[str, Any]) -> None:
                error = double.create(body)
                if error:
                    self._json(400, {"error": error})
                    return
                updates = [{"status": "parsing modelfile"}, {"status": "writing manifest"},
                           {"status": "success"}]
                if body.get("stream", True):
                    self._stream(update for update in updates)
                else:
                    self._json(200, updates[-1])

            def do_POST(self) -> None:  # noqa: N802
                if self.path.startswith("/api/blobs/"):
                    self._upload()
                    return
                body = self._read_body()
                if body is None:
                    return
                if self.path == "/api/create":
                    self._create(body)
                    return
                if self.path == "/api/show" and \
                        double._full(body.get("model") or "") in double.created:
                    show = double.show(body["model"], ScriptedBackend())
                    self._json(200, {**show, "modelfile": double.created_modelfile(
                        body["model"])})
                    return
                if self.path == "/api/show":
                    name = body.get("model") or body.get("name")
                    backend = double.backend(name)
                    if backend is None:
                        self._json(404, {"error": f"model '{name}' not found"})
                    else:
                        self._json(200, double.show(name, backend))
                elif self.path in ("/api/chat", "/api/generate"):
                    self._generate(body, chat=self.path == "/api/chat")
                else:
                    self._json(404, {"error": "not found"})

            def _generate(self, body: dict[str, Any], chat: bool) -> None:
                double.count_request()
                if double.delay_s:
                    time.sleep(double.delay_s)
                if double.fail_status:
                    self._json(double.fail_status, {"error": "injected failure"})
                    return
                name = body.get("model", "")
                backend = double.backend(name)
                if backend is None:
                    self._json(404, {"error": f"model \"{name}\" not found, try pulling it first"})
                    return
                try:
                    options = options_from_ollama(body.get("options"))
                except (TypeError, ValueError) as exc:
                    self._json(400, {"error": f"invalid options: {exc}"})
                    return
                if chat:
                    prompt: Any = body.get("messages") or []
                elif body.get("raw"):
                    prompt = body.get("prompt", "")
                else:
                    system = body.get("system")
                    prompt = ([{"role": "system", "content": system}] if system else []) + [
                        {"role": "user", "content": body.get("prompt", "")}]
                records = double.answer(double._full(name), backend, prompt, options, chat)
                if body.get("stream", True):
                    self._stream(records)
                else:
                    self._json(200, _merge(list(records), chat))

            def _stream(self, records: Generator[dict[str, Any], None, None]) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/x-ndjson")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for record in records:
                        self.wfile.write(json.dumps(record).encode() + b"\n")
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test): nothing left to tell it
                finally:
                    records.close()
                self.close_connection = True

        return Handler


def _merge(records: list[dict[str, Any]], chat: bool) -> dict[str, Any]:
    """A non-streamed answer: the done record with all the content pieces joined."""
    final = dict(records[-1])
    field = "message" if chat else "response"
    if chat:
        text = "".join(r["message"]["content"] for r in records)
        final[field] = {"role": "assistant", "content": text}
    else:
        final[field] = "".join(r["response"] for r in records)
    return final
