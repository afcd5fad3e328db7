"""Any OpenAI-compatible server (llama.cpp's server, vLLM, Ollama's /v1, ...), over httpx.

Chat messages go to ``/v1/chat/completions``, a raw prompt to ``/v1/completions``, both
streamed as server-sent events so time to first token is real. ``top_k`` and ``seed`` are
sent as the extensions llama.cpp and vLLM accept, and the repetition penalty and min_p are
turned off (llama.cpp's server defaults them on), so the options mean what they mean in the
other backends. Token counts come from the stream's
``usage`` when the server sends it (``stream_options.include_usage``); otherwise the
completion count is the number of streamed content chunks (one per token on llama.cpp's
server) and the prompt count is unknown.

The OpenAI API has no model digest: the digest here hashes the URL, the model name and the
server's ``/v1/models`` entry for it. Re-served with another file under the same name, a model
keeps its digest, so clear the response cache (or use ``--no-cache``) in that case.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import os
import re
import time
from collections.abc import Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from loragate.backends.base import (
    BaseBackend,
    GenerationOptions,
    Message,
    StreamEnd,
    StreamItem,
    answer_limit_s,
    check_answer_limit,
    sampling_parameters,
)
from loragate.backends.faults import (
    BackendError,
    BackendUnavailable,
    RetryPolicy,
    SampleError,
    SpecError,
    TransientError,
)

START_HINT = ("start one with `loragate serve MODEL.gguf` "
              "(or `python -m llama_cpp.server --model MODEL.gguf --port PORT`)")
_RETRY_STATUS = (429, 500, 502, 503, 504)
_SSE_BREAK = re.compile(r"\r\n|\r|\n")


def header_safe_key(key: str) -> str:
    """The API key as an HTTP header can carry it: surrounding whitespace (a newline pasted
    from a file) dropped; anything else that is not printable ASCII is a SpecError."""
    key = key.strip()
    if not key.isascii() or not key.isprintable():
        raise SpecError("the API key (OPENAI_API_KEY or the spec's key_env) holds characters "
                        "an HTTP header cannot carry (not printable ASCII); check the value")
    return key


def api_root(url: str) -> str:
    """The server root: a trailing ``/v1`` (as OpenAI base URLs are usually written) is dropped."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIBackend(BaseBackend):
    kind: ClassVar[str] = "openai"
    in_process: ClassVar[bool] = False
    # A timeout, a connection reset or cut mid-answer (NetworkError: ReadError, WriteError;
    # ConnectError is turned into BackendUnavailable before this applies).
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        httpx.TimeoutException, httpx.RemoteProtocolError, httpx.NetworkError,
    )

    def __init__(
        self,
        url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
        min_tokens_per_s: float = 0.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        api_key: str | None = None,
        spec: str | None = None,
    ) -> None:
        super().__init__(spec or f"openai:{url}#{model}", retry=retry, concurrency=concurrency)
        self.root = api_root(url)
        self.host = urlsplit(self.root).netloc
        self.model = model
        self.timeout_s = timeout_s
        self.min_tokens_per_s = min_tokens_per_s
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {header_safe_key(key)}"} if key else {}
        self._client = httpx.Client(
            base_url=self.root,
            timeout=httpx.Timeout(timeout_s, connect=min(10.0, timeout_s)),
            headers=headers,
            # No cap on connections: generate_each bounds the requests in flight, and a pool
            # sized for the configured concurrency would queue a prefetch that asks for more
            # (and time it out waiting for a connection).
            limits=httpx.Limits(max_connections=None,
                                max_keepalive_connections=max(concurrency, 8) * 2),
        )
        self._digest: str | None = None

    # -- model identity ----------------------------------------------------------------------
    @property
    def digest(self) -> str:
        if self._digest is None:
            entry = self._model_entry()
            payload = json.dumps({"root": self.root, "model": self.model, "entry": entry},
                                 sort_keys=True)
            self._digest = hashlib.sha256(payload.encode()).hexdigest()
        return self._digest

    def _model_entry(self) -> dict[str, Any] | None:
        response = self._request("GET", "/v1/models")
        if response.status_code != 200:
            return None  # some servers do not list models; the name alone identifies it
        try:
            listing = response.json()
        except ValueError:
            raise BackendError(f"{self.root}/v1/models answered with something that is not "
                               f"JSON: {response.text[:100]!r} (is this an OpenAI-compatible "
                               "server?)") from None
        models = listing.get("data", []) if isinstance(listing, dict) else []
        if not isinstance(models, list) or not all(isinstance(e, dict) for e in models):
            raise BackendError(f"{self.root}/v1/models: 'data' is not a list of model objects: "
                               f"{response.text[:100]!r} (is this an OpenAI-compatible "
                               "server?)")
        for entry in models:
            if entry.get("id") == self.model:
                return entry
        if len(models) == 1:
            # llama.cpp's server answers any model name with the one model it serves.
            return models[0]
        raise BackendError(f"model {self.model!r} is not served at {self.root} "
                           f"(it serves {sorted(str(e.get('id')) for e in models)})")

    def _describe_extra(self) -> dict[str, Any]:
        return {"url": self.root, "model": self.model, "timeout_s": self.timeout_s}

    # -- requests ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise BackendUnavailable(self.host, START_HINT, exc) from exc
        except httpx.HTTPError as exc:
            raise BackendError(f"{self.root}{path}: {type(exc).__name__}: {exc or 'no answer'} "
                               "(is this an OpenAI-compatible server?)") from exc

    def _body(self, prompt: str | tuple[Message, ...], options: GenerationOptions
              ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {
            "model": self.model,
            "stream": True,
            "stream_options": {"include_usage": True},
            **sampling_parameters(options),
            "max_tokens": options.max_tokens,
        }
        if options.stop:
            body["stop"] = list(options.stop)
        if isinstance(prompt, str):
            return "/v1/completions", {**body, "prompt": prompt}
        return "/v1/chat/completions", {**body, "messages": [m.to_dict() for m in prompt]}

    def _answer_limit_s(self, options: GenerationOptions) -> float | None:
        return answer_limit_s(self.timeout_s, options.max_tokens, self.min_tokens_per_s)

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        path, body = self._body(prompt, options)
        try:
            with self._client.stream("POST", path, json=body) as response:
                self._check_status(response)
                yield from self._read_events(response, options.max_tokens,
                                             self._answer_limit_s(options))
        except httpx.ConnectError as exc:
            raise BackendUnavailable(self.host, START_HINT, exc) from exc
        except httpx.DecodingError as exc:
            raise SampleError(f"{self.root}: the answer's body cannot be decoded: {exc}"
                              ) from exc

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code == 200:
            kind = response.headers.get("content-type", "")
            if "text/event-stream" not in kind:
                # A proxy's or a login page's 200 is not the model's answer.
                page = response.read().decode("utf-8", "replace")[:200]
                raise TransientError(f"{self.root}: HTTP 200 with {kind or 'no content type'}, "
                                     f"not an event stream: {page!r}")
            return
        detail = response.read().decode("utf-8", "replace")[:500]
        message = f"{self.root}: HTTP {response.status_code}: {detail}"
        if response.status_code in _RETRY_STATUS:
            raise TransientError(message)
        if response.status_code == 404:
            raise BackendError(f"{message} (is this an OpenAI-compatible server?)")
        raise SampleError(message)

    def _read_events(self, response: httpx.Response, max_tokens: int,
                     limit_s: float | None = None) -> Iterator[StreamItem]:
        answer = _Answer()
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}  # llama.cpp's server: its own prompt and decode times
        done = False  # "[DONE]": the server says the stream is over
        event_type = ""
        pending: list[str] = []  # data lines of an event not complete yet
        # timeout_s bounds each read, but a server that sends keep-alive comments (or empty
        # events) forever never lets a read time out: the same limit also bounds the time
        # between two pieces of the answer.
        last_progress = started = time.monotonic()
        for line in sse_lines(response):
            # Thinking keeps the stream alive without a piece of the answer: the whole-answer
            # limit is checked on every line, not only when text comes.
            check_answer_limit(limit_s, started, answer.chunks)
            if time.monotonic() - last_progress > self.timeout_s:
                raise TransientError(f"{self.root}: nothing of the answer for more than "
                                     f"{self.timeout_s:g} s (no content, reasoning or tool "
                                     "call; only keep-alive lines or empty events)")
            if not line:
                event_type = ""  # a blank line ends an event
                if pending:  # its data lines never made one JSON value
                    raise self._never_completed(pending)
                continue
            if line.startswith("event:"):
                event_type = line[len("event:"):].strip()
                continue
            if line.startswith("error:"):
                raise SampleError(f"{self.root}: the server sent an error: "
                                  f"{line[len('error:'):].strip()[:300]}")
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if event_type == "error":
                raise SampleError(f"{self.root}: the server sent an error event: {data[:300]}")
            if data == "[DONE]" and not pending:
                done = True
                break
            # An event's data may span several data lines (joined by newlines, as SSE says);
            # servers write one line per event, so a line that is JSON alone is one event.
            pending.append(data)
            event = self._complete_event(pending)
            if event is None:
                continue
            if event.get("error"):
                raise SampleError(f"{self.root}: {event['error']}")
            usage = _mapping(event.get("usage")) or usage
            timings = _mapping(event.get("timings")) or timings
            for choice in self._choices(event, data):
                text = answer.take(choice, self.root, data)
                if text or answer.moved:
                    last_progress = time.monotonic()
                if text:
                    yield text
            if answer.chunks >= max_tokens and answer.finish is None:
                # One streamed chunk is at least one token, so the server is not keeping to
                # max_tokens; stop reading rather than let a runaway answer stall the gate.
                answer.finish = "length"
                break
        if pending:  # the last event never completed
            raise self._never_completed(pending)
        if answer.finish is None and not done:
            # The connection closed mid-answer: what arrived is not the model's whole answer.
            raise TransientError(f"{self.root}: the stream ended after {answer.chunks} chunk(s) "
                                 "without a finish reason or [DONE]")
        if answer.index is None:
            # An empty answer still comes as a choice; a stream with none carries no answer.
            raise SampleError(f"{self.root}: the stream ended without any choice (no answer "
                              "from the model; is this an OpenAI-compatible server?)")
        if answer.finish == "content_filter":
            raise SampleError(f"{self.root}: the server's content filter stopped the answer "
                              f"after {answer.chunks} chunk(s); what the model said is unknown")
        calls = answer.rendered_tool_calls()
        if calls:
            yield calls
        yield StreamEnd(
            finish_reason="length" if answer.finish == "length" else "stop",
            prompt_tokens=_count(usage.get("prompt_tokens")),
            completion_tokens=_count(usage.get("completion_tokens")) or answer.chunks,
            server_s=server_seconds(timings),
        )

    def _complete_event(self, pending: list[str]) -> dict[str, Any] | None:
        """The event the pending data lines make, once they make one JSON value (then
        ``pending`` is cleared); None while they do not yet."""
        data = "\n".join(pending)
        try:
            event = json.loads(data)
        except json.JSONDecodeError:
            return None
        except RecursionError:
            raise SampleError(f"{self.root}: an event nested too deeply to read") from None
        pending.clear()
        if not isinstance(event, dict):
            raise SampleError(f"{self.root}: an event that is not a JSON object: {data[:100]!r}")
        return event

    def _never_completed(self, pending: list[str]) -> TransientError:
        """The error for data lines that ended (a blank line, the stream's end) without
        making one JSON value."""
        data = "\n".join(pending)
        return TransientError(f"{self.root}: an event that is not JSON: {data[:100]!r}")

    def _choices(self, event: dict[str, Any], data: str) -> list[dict[str, Any]]:
        choices = event.get("choices")
        if choices is None:
            return []
        if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
            raise SampleError(f"{self.root}: an event whose 'choices' is not a list of objects: "
                              f"{data[:100]!r}")
        return choices

    def close(self) -> None:
        self._client.close()


def server_seconds(timings: dict[str, Any]) -> float | None:
    """The server's own time on a request from llama.cpp's ``timings`` (prompt + decode, in
    ms); None when the server sent none (vLLM, hosted APIs)."""
    try:
        spent = float(timings["prompt_ms"]) + float(timings["predicted_ms"])
    except (KeyError, TypeError, ValueError):
        return None
    return spent / 1000 if spent >= 0 else None


class _Answer:
    """The one answer a stream carries: the first choice index seen (a request asks for one;
    a server that sends others does not get them woven in), its text until its finish reason
    (text after it is not part of the answer), and its tool calls, streamed as
    ``delta.tool_calls`` fragments by servers that parse them out of the model's text."""

    def __init__(self) -> None:
        self.index: Any = None
        self.finish: str | None = None
        self.chunks = 0
        # Whether the last choice taken carried anything of the answer's making beside its
        # text: a reasoning model's thinking (reasoning_content) or tool-call fragments keep
        # the stream alive as much as content does.
        self.moved = False
        self._calls: dict[Any, dict[str, str]] = {}

    def take(self, choice: dict[str, Any], root: str, data: str) -> str:
        index = choice.get("index", 0)
        if self.index is None:
            self.index = index
        if index != self.index or self.finish is not None:
            return ""
        delta = choice.get("delta")
        delta = delta if isinstance(delta, dict) else {}
        self.moved = any(delta.get(key) for key in ("reasoning_content", "reasoning",
                                                     "tool_calls"))
        text = delta.get("content")
        if text is None:
            text = choice.get("text")
        if text is not None and not isinstance(text, str):
            raise SampleError(f"{root}: a choice whose text is not a string: {data[:100]!r}")
        self._add_tool_calls(delta.get("tool_calls"))
        if choice.get("finish_reason"):
            self.finish = str(choice["finish_reason"])
        if text:
            self.chunks += 1
        return text or ""

    def _add_tool_calls(self, calls: Any) -> None:
        for position, call in enumerate(calls if isinstance(calls, list) else []):
            if not isinstance(call, dict):
                continue
            function = call.get("function") if isinstance(call.get("function"), dict) else {}
            entry = self._calls.setdefault(call.get("index", position),
                                           {"name": "", "arguments": ""})
            for key in ("name", "arguments"):
                if isinstance(function.get(key), str):
                    entry[key] += function[key]

    def rendered_tool_calls(self) -> str:
        """The tool calls as the model wrote them in Hermes/Qwen form, ``<tool_call>{"name":
        ..., "arguments": {...}}</tool_call>``, which the tool-call harness reads."""
        rendered = []
        for call in self._calls.values():
            try:
                arguments: Any = json.loads(call["arguments"]) if call["arguments"] else {}
            except ValueError:
                arguments = call["arguments"]  # as sent: the harness judges it
            body = json.dumps({"name": call["name"], "arguments": arguments},
                              ensure_ascii=False)
            rendered.append(f"<tool_call>{body}</tool_call>")
        return "\n".join(rendered)


def sse_lines(response: httpx.Response) -> Iterator[str]:
    """The lines of an event stream, split at CR, LF or CRLF only, as the SSE format says.

    Not ``response.iter_lines()``: it splits at U+2028, U+2029 and U+0085 too, which a server
    writing JSON without escaping them (llama.cpp's server, vLLM) puts raw inside an event."""
    buffer = ""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for raw in response.iter_bytes():
        buffer += decoder.decode(raw)
        # A CRLF cut between two reads yields one extra empty line: an event separator,
        # which the reader skips anyway.
        *complete, buffer = _SSE_BREAK.split(buffer)
        yield from complete
    buffer += decoder.decode(b"", final=True)
    if buffer:
        yield buffer


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


# More tokens than any context holds: a count past it is the server's mistake, not a figure.
_MAX_COUNT = 10**8


def _count(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT:
        return value
    return None
