"""The backend protocol: (messages or prompt, options) -> Response with its timings.

Every backend streams where it can: it yields text deltas and then one :class:`StreamEnd`
with the finish reason and token counts. :class:`BaseBackend` turns that stream into a
:class:`Response`, timing the first non-empty delta (TTFT) and the whole call, applying the
retry policy, and recording a sample that could not be generated as a Response with
``finish_reason="error"`` rather than dropping it.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol, TypeVar, runtime_checkable

from loragate.backends.faults import RetryPolicy, SampleError, run_with_retries

T = TypeVar("T")

logger = logging.getLogger(__name__)

Role = Literal["system", "user", "assistant", "tool"]
FinishReason = Literal["stop", "length", "error"]
_ROLES: tuple[str, ...] = ("system", "user", "assistant", "tool")
# llama.cpp's seed is unsigned 32-bit and 0xFFFFFFFF means "pick one at random".
MAX_SEED = 0xFFFFFFFF - 1


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def __post_init__(self) -> None:
        if self.role not in _ROLES:
            raise ValueError(f"message role must be one of {list(_ROLES)}, got {self.role!r}")
        if not isinstance(self.content, str):
            raise TypeError(f"message content must be a string, got {type(self.content).__name__}")

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


Prompt = str | Sequence[Message | Mapping[str, str]]
"""A raw completion prompt (no chat template) or a list of chat messages."""


def normalize_prompt(prompt: Prompt) -> str | tuple[Message, ...]:
    """A raw prompt stays a string; messages (dicts or :class:`Message`) become Messages."""
    if isinstance(prompt, str):
        return prompt
    messages: list[Message] = []
    for index, item in enumerate(prompt):
        if isinstance(item, Message):
            messages.append(item)
        elif isinstance(item, Mapping):
            try:
                messages.append(Message(role=item["role"], content=item["content"]))
            except KeyError as exc:
                raise ValueError(f"message {index} has no {exc.args[0]!r} key") from None
        else:
            raise TypeError(f"message {index} must be a Message or a dict, got {type(item)!r}")
    if not messages:
        raise ValueError("a chat prompt needs at least one message")
    return tuple(messages)


def prompt_payload(prompt: str | Sequence[Message]) -> dict[str, Any]:
    """The JSON-able form of a normalized prompt (for cache keys and logs)."""
    if isinstance(prompt, str):
        return {"prompt": prompt}
    return {"messages": [m.to_dict() for m in prompt]}


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling settings. The defaults are deterministic: greedy with a fixed seed.

    Every backend samples with these and nothing else (:func:`sampling_parameters`).
    """

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 40
    max_tokens: int = 256
    seed: int = 0
    stop: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # A list given for stop is frozen into a tuple so options stay hashable.
        if isinstance(self.stop, str):
            object.__setattr__(self, "stop", (self.stop,))
        else:
            object.__setattr__(self, "stop", tuple(self.stop))
        checks = {
            "temperature": self.temperature >= 0,
            "top_p": 0 < self.top_p <= 1,
            "top_k": self.top_k >= 0,
            "max_tokens": self.max_tokens >= 1,
            "seed": 0 <= self.seed <= MAX_SEED,
        }
        for name, ok in checks.items():
            if not ok:
                raise ValueError(f"GenerationOptions.{name} out of range: {getattr(self, name)!r}")
        if any(not isinstance(s, str) or not s for s in self.stop):
            raise ValueError(f"GenerationOptions.stop must hold non-empty strings: {self.stop!r}")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["stop"] = list(self.stop)
        return data

    def replace(self, **changes: Any) -> GenerationOptions:
        return dataclasses.replace(self, **changes)


def sampling_parameters(options: GenerationOptions) -> dict[str, float | int]:
    """What every backend sends to its sampler for ``options``, under the names llama.cpp,
    Ollama and OpenAI-compatible servers share.

    loragate samples with temperature, top-k and top-p alone, whatever the server's defaults:
    llama.cpp (its server and llama-cpp-python) defaults to a repetition penalty of 1.1 and
    min_p 0.05, Ollama to a repetition penalty of 1.1. Both are switched off, so one model
    answers alike through every backend, as with transformers' defaults.
    """
    return {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "seed": options.seed,
        "min_p": 0.0,
        "repeat_penalty": 1.0,
    }


@dataclass(frozen=True)
class Response:
    text: str
    finish_reason: FinishReason
    truncated: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    ttft_s: float | None = None
    total_s: float = 0.0
    model_digest: str = ""
    cached: bool = False
    error: str | None = None
    attempts: int = 1
    # Waiting apart from working: the requests this client had open when this one was sent
    # (itself included), and the time it waited for the server (wall time minus the time the
    # server says it worked on it; None where the server does not say). With one slot and
    # several in flight, ttft_s is mostly this wait.
    in_flight: int | None = None
    queue_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.finish_reason != "error"

    @property
    def tokens_per_s(self) -> float | None:
        """Decode speed: completion tokens after the first, over the time after the first."""
        if not self.completion_tokens or self.ttft_s is None:
            return None
        decode_s = self.total_s - self.ttft_s
        if self.completion_tokens < 2 or decode_s <= 0:
            return None
        return (self.completion_tokens - 1) / decode_s

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Response:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})

    def replace(self, **changes: Any) -> Response:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class StreamEnd:
    """The last item of a backend's stream."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # The server's own time on the request (prompt + decode), where it reports it (llama.cpp's
    # `timings`, Ollama's `total_duration`): the rest of the wall time is waiting.
    server_s: float | None = None


StreamItem = str | StreamEnd

Request = tuple[Prompt, GenerationOptions | None]
"""One generation request: the prompt and its options (None: the defaults)."""


def answer_limit_s(timeout_s: float, max_tokens: int, min_tokens_per_s: float
                   ) -> float | None:
    """How long one answer from a server may take in all: its first piece may be as late as
    ``timeout_s``, then ``max_tokens`` at the slowest pace allowed. None: no limit."""
    if min_tokens_per_s <= 0:
        return None
    return timeout_s + max_tokens / min_tokens_per_s


def check_answer_limit(limit_s: float | None, started: float, pieces: int) -> None:
    """Raise when an answer begun at ``started`` (``time.monotonic()``) is still coming past
    its whole-answer limit. A server reader calls it on everything the server sends, not only
    on text: a model that thinks without end sends no text. The retry loop puts the spec
    before the message."""
    if limit_s is None or time.monotonic() - started <= limit_s:
        return
    shown = f"{limit_s:.0f}" if limit_s >= 10 else f"{limit_s:.1f}"
    raise SampleError(f"the answer took more than {shown} s and was cut after {pieces} pieces "
                      "(timeout_s plus max_tokens at the slowest pace allowed, "
                      "min_tokens_per_s)")


def in_daemon_thread(function: Callable[..., T], *args: Any, name: str) -> Future[T]:
    """``function(*args)`` in a daemon thread, as a future. Not a ThreadPoolExecutor: its
    workers are joined at interpreter exit, so Ctrl-C while requests hang at a server waited
    for each to time out (120 s by default); a daemon thread is left behind instead."""
    future: Future[T] = Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(function(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting caller
            future.set_exception(exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    return future


@runtime_checkable
class Backend(Protocol):
    """What gates, canaries and smoke tests talk to."""

    spec: str

    @property
    def digest(self) -> str: ...

    @property
    def kind(self) -> str: ...

    def generate(self, prompt: Prompt, options: GenerationOptions | None = None) -> Response: ...

    def generate_batch(
        self,
        items: Sequence[Prompt],
        options: GenerationOptions | None = None,
        concurrency: int | None = None,
    ) -> list[Response]: ...

    def describe(self) -> dict[str, Any]: ...

    def close(self) -> None: ...


class BaseBackend(abc.ABC):
    """Shared timing, retries and batching; subclasses implement :meth:`_stream`."""

    kind: ClassVar[str] = "base"
    # In-process backends hold one model in this process and generate one request at a time,
    # unless they decode several sequences in one batch (llama.cpp does).
    in_process: ClassVar[bool] = False
    batches_in_process: ClassVar[bool] = False

    def __init__(self, spec: str, *, retry: RetryPolicy | None = None, concurrency: int = 1):
        self.spec = spec
        self.retry = retry or RetryPolicy()
        self.concurrency = max(1, concurrency)
        self._flights = 0  # requests open now (Response.in_flight)
        self._flight_lock = threading.Lock()

    # -- what subclasses provide -------------------------------------------------------------
    @property
    @abc.abstractmethod
    def digest(self) -> str:
        """A content hash of the model: a different model file gives a different digest."""

    @abc.abstractmethod
    def _stream(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                ) -> Iterator[StreamItem]:
        """Yield text deltas, then one StreamEnd. Raise a transient error to be retried."""

    transient_errors: ClassVar[tuple[type[BaseException], ...]] = ()

    def _describe_extra(self) -> dict[str, Any]:
        return {}

    # -- the protocol ------------------------------------------------------------------------
    def stream(self, prompt: Prompt, options: GenerationOptions | None = None
               ) -> Iterator[StreamItem]:
        """The raw stream (text deltas, then a StreamEnd), without timing or retries."""
        return self._stream(normalize_prompt(prompt), options or GenerationOptions())

    def generate(self, prompt: Prompt, options: GenerationOptions | None = None) -> Response:
        normalized = normalize_prompt(prompt)
        opts = options or GenerationOptions()
        return run_with_retries(
            lambda: self._collect(normalized, opts),
            policy=self.retry,
            transient=self.transient_errors,
            on_give_up=self._error_response,
            what=f"{self.spec}",
        )

    def generate_batch(
        self,
        items: Sequence[Prompt],
        options: GenerationOptions | None = None,
        concurrency: int | None = None,
    ) -> list[Response]:
        """Answers in the order of ``items``; k requests in flight for server backends."""
        results: list[Response | None] = [None] * len(items)
        for index, response in self.generate_each([(item, options) for item in items],
                                                  concurrency):
            results[index] = response
        answered = [r for r in results if r is not None]
        if len(answered) != len(items):
            raise RuntimeError(f"{self.spec}: {len(items) - len(answered)} of {len(items)} "
                               "batch items got no answer")
        return answered

    def generate_each(
        self,
        requests: Sequence[Request],
        concurrency: int | None = None,
        *,
        stop: threading.Event | None = None,
    ) -> Iterator[tuple[int, Response]]:
        """``(index into requests, response)`` as each answer is finished, in finishing order.

        At most :meth:`effective_concurrency` requests are in flight. Once ``stop`` is set no
        further request is started; the ones already started are still answered. Each request
        carries its own options, so repeats with different seeds go in one call.
        """
        k = min(self.effective_concurrency(concurrency), max(1, len(requests)))
        if k == 1:
            for index, (prompt, options) in enumerate(requests):
                if stop is not None and stop.is_set():
                    return
                yield index, self.generate(prompt, options)
            return
        yield from self._threaded_each(requests, k, stop)

    def _threaded_each(self, requests: Sequence[Request], k: int, stop: threading.Event | None
                       ) -> Iterator[tuple[int, Response]]:
        # Requests are submitted one per finished one (never all up front), so a stop or an
        # interrupt leaves nothing queued behind the k in flight; those already sent run to
        # their end in their daemon threads (see in_daemon_thread).
        pending: dict[Future[Response], int] = {}
        next_index = 0
        while True:
            while (len(pending) < k and next_index < len(requests)
                   and not (stop is not None and stop.is_set())):
                prompt, options = requests[next_index]
                pending[in_daemon_thread(self.generate, prompt, options,
                                         name=f"loragate-{self.kind}")] = next_index
                next_index += 1
            if not pending:
                return
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            failure: BaseException | None = None
            for future in sorted(done, key=pending.__getitem__):
                index = pending.pop(future)
                error = future.exception()
                if error is not None:
                    failure = failure or error
                    continue
                yield index, future.result()
            if failure is not None:
                # The answers finished alongside it were handed out first.
                raise failure

    def effective_concurrency(self, requested: int | None = None) -> int:
        wanted = max(1, requested if requested is not None else self.concurrency)
        if self.in_process and not self.batches_in_process and wanted > 1:
            logger.info("%s runs in process: %d requests asked in flight, running 1 at a time",
                        self.spec, wanted)
            return 1
        return wanted

    def _applied_concurrency(self) -> int:
        """The configured concurrency as it will be applied, without logging."""
        if self.in_process and not self.batches_in_process:
            return 1
        return self.concurrency

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "spec": self.spec,
            "kind": self.kind,
            "in_process": self.in_process,
            "concurrency": self._applied_concurrency(),
            "retries": self.retry.retries,
        }
        if self.in_process and self.batches_in_process:
            info["concurrency_note"] = ("in-process backend: up to concurrency sequences "
                                        "decoded together in one batch")
        elif self.in_process:
            info["concurrency_note"] = "in-process backend: one request at a time"
        info.update(self._describe_extra())
        return info

    def close(self) -> None:  # noqa: B027 - a no-op default; servers' clients override it
        pass

    def __enter__(self) -> BaseBackend:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------------------
    def _collect(self, prompt: str | tuple[Message, ...], options: GenerationOptions
                 ) -> Response:
        with self._flight_lock:
            self._flights += 1
            in_flight = self._flights
        try:
            return self._collect_one(prompt, options, in_flight)
        finally:
            with self._flight_lock:
                self._flights -= 1

    def _collect_one(self, prompt: str | tuple[Message, ...], options: GenerationOptions,
                     in_flight: int) -> Response:
        start = time.perf_counter()
        first: float | None = None
        parts: list[str] = []
        end: StreamEnd | None = None
        for item in self._stream(prompt, options):
            if isinstance(item, StreamEnd):
                end = item
                continue
            if item and first is None:
                first = time.perf_counter() - start
            parts.append(item)
        total = time.perf_counter() - start
        if end is None:
            raise SampleError(f"{self.spec}: the stream ended without a finish reason")
        return Response(
            text="".join(parts),
            finish_reason=end.finish_reason,
            truncated=end.finish_reason == "length",
            prompt_tokens=end.prompt_tokens,
            completion_tokens=end.completion_tokens,
            ttft_s=first,
            total_s=total,
            model_digest=self.digest,
            in_flight=in_flight,
            queue_s=None if end.server_s is None else round(max(0.0, total - end.server_s), 4),
        )

    def _error_response(self, message: str, attempts: int, elapsed_s: float) -> Response:
        try:
            digest = self.digest
        except Exception:  # noqa: BLE001 - the server that failed the sample may fail this too
            digest = ""
        return Response(
            text="",
            finish_reason="error",
            total_s=elapsed_s,
            model_digest=digest,
            error=message,
            attempts=attempts,
        )
