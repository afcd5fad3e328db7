"""Answers generated ahead of the gate items, a window at a time, through the backend's batch
path (a llama.cpp batch in process, concurrent requests against a server).

Before a gate or canary item runs, if its answer is not in the response cache yet, the plugin
collects the requests of that item and of the items after it, up to a window of
``2 × concurrency`` items, and generates them together into the cache; each item then reads
its answer from the cache. The requests are exactly those the items make (same messages, same
options and seed), so they have the same cache keys as one-at-a-time generation and a later
run reuses them either way. Work in flight is one window: ``-x``, ``--fail-fast-gates`` and
Ctrl-C stop after it. Latency (the smoke tests) is never generated ahead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from loragate.gating.fixtures import (
    PluginItem,
    generation_options,
    repeat_of,
    session_of,
    with_system_prompt,
)

RECORD_PARAMS = ("prompt_record", "canary_record", "forgetting_record")


@dataclass
class AheadState:
    concurrency: int
    total: int = 0  # items that ask for an answer
    index: dict[str, int] = field(default_factory=dict)  # nodeid -> position in the session
    done: set[str] = field(default_factory=set)  # nodeids whose requests were generated
    generated: int = 0
    completion_tokens: int = 0
    wall_s: float = 0.0
    bar: Any = None

    def summary(self) -> dict[str, Any]:
        return {"concurrency": self.concurrency, "items": len(self.done),
                "answers_generated": self.generated,
                "completion_tokens": self.completion_tokens, "wall_s": round(self.wall_s, 3),
                "tokens_per_s": round(self.completion_tokens / self.wall_s, 2)
                if self.wall_s else None}

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def plan(items: Sequence[pytest.Item], concurrency: int) -> AheadState:
    ahead = AheadState(concurrency=concurrency)
    for position, item in enumerate(items):
        if item_requests(item):
            ahead.index[item.nodeid] = position
    ahead.total = len(ahead.index)
    return ahead


def concurrency_for(config: pytest.Config, backend: Any) -> int:
    from loragate.backends.prefetch import default_concurrency

    given = config.getoption("concurrency")
    if given:
        return given
    configured = session_of(config).settings.backend.concurrency
    return configured if configured is not None else default_concurrency(backend.kind)


def item_requests(item: pytest.Item) -> dict[str, list[tuple[list[dict[str, str]], Any]]]:
    """The (messages, options) an item will ask each role ("model", "baseline") for."""
    state = session_of(item.config)
    settings = state.settings
    record = item.record if isinstance(item, PluginItem) else None
    uses = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    if record is None and callspec is not None:
        record = next((callspec.params[name] for name in RECORD_PARAMS
                       if name in callspec.params), None)
    if not isinstance(record, dict):
        return {}
    messages = with_system_prompt(record["messages"], settings.data_args.system_prompt)
    options = generation_options(item.config, settings, repeat_of(item))
    requests: dict[str, list] = {}
    if "generate_answer" in uses:
        requests["model"] = [(messages, options)]
    if "generate_baseline" in uses:
        requests["baseline"] = [(messages, generation_options(item.config, settings))]
    return requests


def generate_window(item: pytest.Item, items: Sequence[pytest.Item], ahead: AheadState
                    ) -> None:
    """Generate the requests of ``item`` and of the next items (one window) not yet done."""
    from loragate.backends.prefetch import prefetch

    if item.nodeid in ahead.done:
        return
    start = ahead.index.get(item.nodeid)
    if start is None:
        return
    window = [i for i in items[start:start + 2 * ahead.concurrency]
              if i.nodeid not in ahead.done]
    by_role: dict[str, list] = {}
    for member in window:
        for role, requests in item_requests(member).items():
            by_role.setdefault(role, []).extend(requests)
        ahead.done.add(member.nodeid)
    state = session_of(item.config)
    with _terminal(item.config):
        if ahead.bar is None:
            from tqdm import tqdm

            ahead.bar = tqdm(total=ahead.total, unit="item", desc="answers ahead",
                             dynamic_ncols=True, leave=False)
        for role, requests in by_role.items():
            backend = state.backends.get(role)
            if backend is None or not hasattr(backend, "cache"):
                continue  # no such role, or --no-cache: the items generate themselves
            stats = prefetch(backend, requests, concurrency=ahead.concurrency, progress=False)
            ahead.generated += stats.generated
            ahead.completion_tokens += stats.completion_tokens
            ahead.wall_s += stats.wall_s
        ahead.bar.update(len(window))
        rate = ahead.completion_tokens / ahead.wall_s if ahead.wall_s else 0.0
        ahead.bar.set_postfix_str(f"{rate:.0f} tokens/s")


def _terminal(config: pytest.Config) -> Any:
    """Output capture suspended, so the progress bar reaches the terminal."""
    import contextlib

    capture = config.pluginmanager.getplugin("capturemanager")
    return capture.global_and_fixture_disabled() if capture else contextlib.nullcontext()
