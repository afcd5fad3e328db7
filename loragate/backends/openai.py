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

import hashlib
import json
import os
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
    sampling_parameters,
)
from loragate.backends.faults import (
    BackendError,
    BackendUnavailable,
    RetryPolicy,
    SampleError,
    TransientError,
)

START_HINT = ("start one with `loragate serve MODEL.gguf` "
              "(or `python -m llama_cpp.server --model MODEL.gguf --port PORT`)")
_RETRY_STATUS = (429, 500, 502, 503, 504)


def api_root(url: str) -> str:
    """The server root: a trailing ``/v1`` (as OpenAI base URLs are usually written) is dropped."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


class OpenAIBackend(BaseBackend):
    kind: ClassVar[str] = "openai"
    in_process: ClassVar[bool] = False
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (
        httpx.TimeoutException, httpx.RemoteProtocolError,
    )

    def __init__(
        self,
        url: str,
        model: str,
        *,
        timeout_s: float = 120.0,
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
        key = api_key if api_key is not None else os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
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
        for entry in models:
            if entry.get("id") == self.model:
                return entry
        if len(models) == 1:
            # llama.cpp's server answers any model name with the one model it serves.
            return models[0]
        raise BackendError(f"model {self.model!r} is not served at {self.root} "
                           f"(it serves {sorted(e.get('id') for e in models)})")

    def _describe_extra(self) -> dict[str, Any]:
        return {"url": self.root, "model": self.model, "timeout_s": self.timeout_s}

    # -- requests ----------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._client.request(method, path, **kwargs)
        except httpx.ConnectError as exc:
            raise BackendUnavailable(self.host, START_HINT, exc) from exc

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

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        path, body = self._body(prompt, options)
        try:
            with self._client.stream("POST", path, json=body) as response:
                self._check_status(response)
                yield from self._read_events(response)
        except httpx.ConnectError as exc:
            raise BackendUnavailable(self.host, START_HINT, exc) from exc

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

    def _read_events(self, response: httpx.Response) -> Iterator[StreamItem]:
        finish = "stop"
        chunks = 0
        usage: dict[str, Any] = {}
        timings: dict[str, Any] = {}  # llama.cpp's server: its own prompt and decode times
        finished = False  # "[DONE]" or a finish reason: the server says the answer is whole
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue
            data = line[len("data:"):].strip()
            if data == "[DONE]":
                finished = True
                break
            try:
                event = json.loads(data)
            except json.JSONDecodeError:
                raise TransientError(f"{self.root}: an event that is not JSON: "
                                     f"{data[:100]!r}") from None
            if event.get("error"):
                raise SampleError(f"{self.root}: {event['error']}")
            usage = event.get("usage") or usage
            timings = event.get("timings") or timings
            for choice in event.get("choices") or []:
                delta = choice.get("delta", {}).get("content") if "delta" in choice else None
                text = delta if delta is not None else choice.get("text")
                if text:
                    chunks += 1
                    yield text
                if choice.get("finish_reason"):
                    finish = choice["finish_reason"]
                    finished = True
        if not finished:
            # The connection closed mid-answer: what arrived is not the model's whole answer.
            raise TransientError(f"{self.root}: the stream ended after {chunks} chunk(s) "
                                 "without a finish reason or [DONE]")
        yield StreamEnd(
            finish_reason="length" if finish == "length" else "stop",
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens", chunks),
            server_s=server_seconds(timings),
        )

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
