"""An Ollama server, through the official ``ollama`` client; host from ``OLLAMA_HOST``.

The model's digest is the one the server reports for it in ``/api/tags`` (the manifest
digest Ollama computes over the model's blobs), so re-creating the model with another GGUF
changes it.
"""

from __future__ import annotations

import os
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
    TransientError,
)

DEFAULT_HOST = "127.0.0.1:11434"
START_HINT = "start it with `ollama serve` (or set OLLAMA_HOST to where it listens)"


def ollama_host(host: str | None = None) -> str:
    """The host the client will talk to, as the user would write it."""
    return host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST


def _split_host(host: str) -> Any:
    """``host`` as Ollama reads it (``host``, ``host:port`` or a URL), split; ``.port`` raises
    ValueError for a port that is not a number or out of range."""
    return urlsplit(host if "://" in host else f"http://{host}")


def base_url(host: str) -> str:
    """``scheme://host:port`` of an Ollama host (port 11434 unless given)."""
    split = _split_host(host)
    port = split.port or 11434
    hostname = split.hostname or "127.0.0.1"
    if ":" in hostname:
        hostname = f"[{hostname}]"
    return f"{split.scheme}://{hostname}:{port}"


def check_ollama_host(host: str | None = None) -> str | None:
    """Why the Ollama host (``host``, else ``OLLAMA_HOST``) cannot be used, or None. Checked
    before the client is made: the client raises a bare ValueError for a port that is not a
    number, naming neither the variable nor its value."""
    value = ollama_host(host)
    where = "OLLAMA_HOST" if host is None and os.environ.get("OLLAMA_HOST") else "the host"
    try:
        split = _split_host(value)
        split.port  # noqa: B018 - raises for a port that is not a number or out of range
    except ValueError as exc:
        return f"{where} {value!r} is not a host[:port] or URL: {exc}"
    if not split.hostname and not value.startswith(":"):
        return f"{where} {value!r} names no host"
    return None


class OllamaBackend(BaseBackend):
    kind: ClassVar[str] = "ollama"
    in_process: ClassVar[bool] = False
    transient_errors: ClassVar[tuple[type[BaseException], ...]] = (httpx.TimeoutException,)

    def __init__(
        self,
        name: str,
        *,
        host: str | None = None,
        timeout_s: float = 120.0,
        min_tokens_per_s: float = 0.0,
        retry: RetryPolicy | None = None,
        concurrency: int = 4,
        spec: str | None = None,
    ) -> None:
        super().__init__(spec or f"ollama:{name}", retry=retry, concurrency=concurrency)
        try:
            import ollama
        except ImportError as exc:
            raise BackendError("the ollama backend needs the ollama client: "
                               "pip install 'loragate[serve]'") from exc
        self.name = name
        self.host = ollama_host(host)
        self.timeout_s = timeout_s
        self.min_tokens_per_s = min_tokens_per_s
        self._client = ollama.Client(host=self.host, timeout=timeout_s)
        self._digest: str | None = None

    @property
    def digest(self) -> str:
        if self._digest is None:
            self._digest = self._find_digest()
        return self._digest

    def _find_digest(self) -> str:
        listing = self._call(self._client.list)
        wanted = {self.name, f"{self.name}:latest"} if ":" not in self.name else {self.name}
        for model in listing.models:
            if model.model in wanted and model.digest:
                return model.digest.removeprefix("sha256:")
        known = sorted(m.model or "?" for m in listing.models)
        raise BackendError(
            f"model {self.name!r} is not on the Ollama server at {self.host} (it has {known}); "
            f"create it with `ollama create {self.name} -f Modelfile` or `ollama pull {self.name}`"
        )

    def show(self) -> dict[str, Any]:
        """The server's model info (``/api/show``): template, parameters, details."""
        return self._call(self._client.show, self.name).model_dump(mode="json", by_alias=True)

    def _describe_extra(self) -> dict[str, Any]:
        return {"host": self.host, "model": self.name, "timeout_s": self.timeout_s}

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def _translate(self, exc: Exception) -> Exception:
        import ollama

        if isinstance(exc, ConnectionError | httpx.ConnectError):
            return BackendUnavailable(self.host, START_HINT, "connection refused")
        if isinstance(exc, ollama.ResponseError):
            if exc.status_code in (429, 500, 502, 503, 504):
                return TransientError(f"Ollama at {self.host}: HTTP {exc.status_code}: {exc.error}")
            if exc.status_code == 404:
                if not self._speaks_ollama():
                    return BackendError(
                        f"{self.host} is not an Ollama server (it has no /api/version; "
                        f"HTTP 404: {exc.error}); point OLLAMA_HOST at Ollama, or gate an "
                        "OpenAI-compatible server as openai:URL#MODEL")
                return BackendError(f"Ollama at {self.host}: {exc.error}; create the model with "
                                    f"`ollama create {self.name} -f Modelfile`")
            return SampleError(f"Ollama at {self.host}: HTTP {exc.status_code}: {exc.error}")
        return exc

    def _speaks_ollama(self) -> bool:
        """Whether the server answers Ollama's ``/api/version`` (a 404 from another server
        must not be read as "the model is missing")."""
        try:
            response = httpx.get(f"{base_url(self.host)}/api/version",
                                 timeout=min(10.0, self.timeout_s))
        except httpx.HTTPError:  # cannot tell: keep Ollama's own message
            return True
        try:
            return response.status_code == 200 and "version" in response.json()
        except ValueError:
            return False

    def _answer_limit_s(self, options: GenerationOptions) -> float | None:
        return answer_limit_s(self.timeout_s, options.max_tokens, self.min_tokens_per_s)

    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        ollama_options: dict[str, Any] = {**sampling_parameters(options),
                                          "num_predict": options.max_tokens}
        if options.stop:
            ollama_options["stop"] = list(options.stop)
        if isinstance(prompt, str):
            # raw: the prompt is sent as is, without the model's template.
            parts = self._call(self._client.generate, model=self.name, prompt=prompt, raw=True,
                               stream=True, options=ollama_options)
        else:
            parts = self._call(self._client.chat, model=self.name,
                               messages=[m.to_dict() for m in prompt], stream=True,
                               options=ollama_options)
        limit = self._answer_limit_s(options)
        started = time.monotonic()
        pieces = 0
        try:
            for part in parts:
                check_answer_limit(limit, started, pieces)
                text = part.response if isinstance(prompt, str) else part.message.content
                pieces += bool(text)
                if text:
                    yield text
                if part.done:
                    yield StreamEnd(
                        finish_reason="length" if part.done_reason == "length" else "stop",
                        prompt_tokens=part.prompt_eval_count,
                        completion_tokens=part.eval_count,
                        server_s=_seconds(part.total_duration),
                    )
                    return
        except Exception as exc:
            translated = self._translate(exc)
            if translated is exc:
                raise
            raise translated from exc

    def close(self) -> None:
        self._client.close()


def _seconds(nanoseconds: int | None) -> float | None:
    """Ollama's durations (nanoseconds) in seconds; None where the server sent none."""
    return nanoseconds / 1e9 if isinstance(nanoseconds, int) and nanoseconds > 0 else None
