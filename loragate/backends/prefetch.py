"""Generate the gate's answers ahead of the gate items, several at a time, into the cache.

Each gate item asks for its answer when its test runs, one after another, which leaves a
server with parallel slots idle and llama.cpp decoding one sequence where it could decode
several for little more. :func:`prefetch` takes every (messages, options) pair the items will
ask for, skips what the response cache already holds, and generates the rest with up to
``concurrency`` requests in flight: threads against a server, one llama.cpp batch in process.
Each answer is stored as it finishes, under exactly the key one-at-a-time
:meth:`CachedBackend.generate` looks up, so the items then read their answers from the cache
(and a run stopped half-way, or a later run, reuses whatever was finished).

Error answers are not stored: the item that asks for one generates it again and records
that attempt's outcome.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from loragate.backends.base import GenerationOptions, Prompt, Request, Response

logger = logging.getLogger(__name__)

ProgressCallback = Callable[["PrefetchStats"], None]

@dataclass(frozen=True)
class PrefetchStats:
    """What a prefetch did. ``generated_keys`` are the cache keys answered in this call."""

    requested: int
    unique: int
    already_cached: int
    generated: int = 0
    errors: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    stopped: bool = False
    generated_keys: frozenset[str] = field(default=frozenset(), repr=False)

    @property
    def to_generate(self) -> int:
        return self.unique - self.already_cached

    @property
    def remaining(self) -> int:
        """Requests neither cached nor answered (left over by a stop)."""
        return self.to_generate - self.generated - self.errors

    @property
    def tokens_per_s(self) -> float | None:
        return self.completion_tokens / self.wall_s if self.wall_s > 0 else None

    @property
    def items_per_s(self) -> float | None:
        done = self.generated + self.errors
        return done / self.wall_s if self.wall_s > 0 else None

    def summary(self) -> str:
        rate = ""
        if self.tokens_per_s is not None and self.items_per_s is not None:
            rate = f", {self.tokens_per_s:.1f} tokens/s, {self.items_per_s:.2f} answers/s"
        stopped = f", stopped with {self.remaining} left" if self.stopped else ""
        return (f"prefetch: {self.generated} generated, {self.already_cached} already cached, "
                f"{self.errors} errors in {self.wall_s:.1f} s{rate}{stopped}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "requested": self.requested, "unique": self.unique,
            "already_cached": self.already_cached, "generated": self.generated,
            "errors": self.errors, "completion_tokens": self.completion_tokens,
            "wall_s": round(self.wall_s, 3), "stopped": self.stopped,
            "tokens_per_s": self.tokens_per_s, "items_per_s": self.items_per_s,
        }


def prefetch(
    backend: Any,
    requests: Sequence[tuple[Prompt, GenerationOptions | None]],
    *,
    concurrency: int,
    progress: bool | ProgressCallback = False,
    stop: threading.Event | None = None,
) -> PrefetchStats:
    """Generate every request ``backend``'s cache does not hold yet, into the cache and into
    the backend's answers-held-for-their-items (so it works with the cache disabled too).

    ``backend`` is a :class:`~loragate.backends.cache.CachedBackend`. At most
    ``concurrency`` requests are in flight (an in-process backend that cannot batch runs them
    one at a time). Setting ``stop`` starts nothing new; an interrupt (Ctrl-C) or a backend
    exception propagates. Either way every answer finished before is already in the cache.
    ``progress=True`` shows a tqdm bar with answers/s and tokens/s; a callable gets the
    running :class:`PrefetchStats` after each answer instead.
    """
    if concurrency < 1:
        raise ValueError(f"prefetch concurrency must be >= 1, got {concurrency}")
    if not (hasattr(backend, "cache") and hasattr(backend, "key")):
        raise TypeError(f"prefetch needs a CachedBackend (one with a response cache), "
                        f"got {type(backend).__name__}")
    start = time.perf_counter()
    todo, already = _missing(backend, requests)
    stats = PrefetchStats(requested=len(requests), unique=len(todo) + already,
                          already_cached=already)
    if not todo:
        return stats
    keys = list(todo)
    report = _reporter(progress, len(keys), backend.spec)
    generated: set[str] = set()
    try:
        with contextlib.closing(_answers(backend.inner, [todo[k] for k in keys],
                                         concurrency, stop)) as answers:
            for index, response in answers:
                stats = _count(stats, backend, keys[index], response, generated)
                stats = replace(stats, wall_s=time.perf_counter() - start)
                report.update(stats)
    finally:
        report.close()
    finished = stats.generated + stats.errors
    return replace(stats, wall_s=time.perf_counter() - start,
                   stopped=finished < len(keys) and stop is not None and stop.is_set(),
                   generated_keys=frozenset(generated))


def _missing(backend: Any, requests: Sequence[tuple[Prompt, GenerationOptions | None]]
             ) -> tuple[dict[str, Request], int]:
    """The requests to generate, by cache key (a repeated request once), and how many of the
    distinct ones the cache already answers."""
    todo: dict[str, Request] = {}
    cached: set[str] = set()
    for prompt, options in requests:
        key = backend.key(prompt, options)
        if key in todo or key in cached:
            continue
        if backend.cache.get(key) is not None:
            cached.add(key)
        else:
            todo[key] = (prompt, options)
    return todo, len(cached)


def _answers(inner: Any, requests: list[Request], concurrency: int,
             stop: threading.Event | None) -> Iterator[tuple[int, Response]]:
    each = getattr(inner, "generate_each", None)
    if each is not None:
        yield from each(requests, concurrency, stop=stop)
        return
    # A backend outside loragate's BaseBackend: one request at a time.
    for index, (prompt, options) in enumerate(requests):
        if stop is not None and stop.is_set():
            return
        yield index, inner.generate(prompt, options)


def _count(stats: PrefetchStats, backend: Any, key: str, response: Response,
           generated: set[str]) -> PrefetchStats:
    # Held by the backend for the item that asks (a disabled or full cache stores nothing).
    backend.store_generated(key, response)
    if not response.ok:
        return replace(stats, errors=stats.errors + 1)
    generated.add(key)
    return replace(stats, generated=stats.generated + 1,
                   completion_tokens=stats.completion_tokens + (response.completion_tokens or 0))


class _Reporter:
    """Progress to nowhere, to a callback, or to a tqdm bar on stderr."""

    def __init__(self, callback: ProgressCallback | None = None, bar: Any = None) -> None:
        self.callback = callback
        self.bar = bar

    def update(self, stats: PrefetchStats) -> None:
        if self.callback is not None:
            self.callback(stats)
        if self.bar is not None:
            self.bar.update(stats.generated + stats.errors - self.bar.n)
            rate = stats.tokens_per_s
            postfix = f"{rate:.0f} tok/s" if rate is not None else ""
            if stats.errors:
                postfix += f", {stats.errors} errors"
            self.bar.set_postfix_str(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _reporter(progress: bool | ProgressCallback, total: int, spec: str) -> _Reporter:
    if callable(progress):
        return _Reporter(callback=progress)
    if not progress:
        return _Reporter()
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"generating ahead ({spec})", unit="answer", file=sys.stderr,
               dynamic_ncols=True, smoothing=0.1)
    return _Reporter(bar=bar)
