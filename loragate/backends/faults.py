"""What goes wrong talking to a model, and what loragate does about it.

* A server that is down or refuses the connection is not a property of one sample: it raises
  :class:`BackendUnavailable`, whose message names the host and what to start.
* A timeout (or a server that says it is busy) is retried with exponential backoff, a bounded
  number of times; then the sample becomes a Response with ``finish_reason="error"`` so it is
  counted as a failure, never as a pass and never silently dropped.
* A request the model cannot take (prompt longer than the context, ...) raises
  :class:`SampleError` inside a backend and is recorded as an error Response at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

# What an attempt returns (a backend's Response): generic, so this module needs nothing from
# backends.base, which imports it.
R = TypeVar("R")


class SpecError(ValueError):
    """A model spec (or what it names: a file, a host, a key) that cannot be used as given;
    the message quotes it. A usage error, raised before any answer is generated."""


class BackendError(RuntimeError):
    """A backend cannot be used as configured; the message says why and what to do."""


class BackendUnavailable(BackendError):
    """The model server cannot be reached."""

    def __init__(self, host: str, hint: str, cause: object | None = None) -> None:
        self.host = host
        self.hint = hint
        detail = f" ({cause})" if cause else ""
        super().__init__(f"model server at {host} is not reachable{detail}; {hint}")


class TransientError(BackendError):
    """A failure worth retrying: a timeout, a busy or briefly failing server."""


class SampleError(BackendError):
    """This one request cannot be answered; other samples may still be fine."""


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` extra attempts after the first, waiting backoff_s, 2*backoff_s, ... between."""

    retries: int = 2
    backoff_s: float = 1.0
    max_backoff_s: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0 or self.backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError(f"RetryPolicy values must be >= 0: {self}")

    def delays(self) -> Iterator[float]:
        for attempt in range(self.retries):
            yield min(self.backoff_s * (2**attempt), self.max_backoff_s)


def run_with_retries(
    attempt: Callable[[], R],
    *,
    policy: RetryPolicy,
    transient: tuple[type[BaseException], ...],
    on_give_up: Callable[[str, int, float], R],
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> R:
    """Call ``attempt`` until it returns, retrying transient errors per ``policy``.

    When every attempt failed, or a :class:`SampleError` was raised, the result is
    ``on_give_up(message, attempts, elapsed_s)``: an error Response, not an exception.
    """
    retryable = (TransientError, *transient)
    start = time.perf_counter()
    delays = policy.delays()
    attempts = 0
    while True:
        attempts += 1
        try:
            response = attempt()
        except SampleError as exc:
            return on_give_up(f"{what}: {exc}", attempts, time.perf_counter() - start)
        except retryable as exc:
            delay = next(delays, None)
            if delay is None:
                message = (f"{what}: gave up after {attempts} attempt(s): "
                           f"{type(exc).__name__}: {exc}")
                return on_give_up(message, attempts, time.perf_counter() - start)
            sleep(delay)
            continue
        return response if attempts == 1 else response.replace(attempts=attempts)
