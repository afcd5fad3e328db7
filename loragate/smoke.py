"""Latency figures for the smoke tests: percentiles over repeated calls, and target checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class LatencySeries:
    """Latencies of repeated calls; the first (``cold``: the server has nothing of the prompt
    yet, the system prompt included) is kept apart from the rest (warm: llama.cpp reuses the
    prompt prefix it holds from the call before, as a deployed server does), so one cold call
    does not pass for the p95 of a warm server, nor hide in it. The percentiles are the warm
    calls'; a series of one call has only the cold figure."""

    ttft_s: list[float] = field(default_factory=list)
    total_s: list[float] = field(default_factory=list)
    cold_ttft_s: float | None = None
    cold_total_s: float | None = None

    def add(self, ttft_s: float | None, total_s: float) -> None:
        ttft = total_s if ttft_s is None else ttft_s
        if self.cold_total_s is None:
            self.cold_ttft_s, self.cold_total_s = ttft, total_s
            return
        self.ttft_s.append(ttft)
        self.total_s.append(total_s)

    def _ms(self, values: list[float], q: float) -> float:
        if not values:  # one call in all: its cold figure is all there is
            cold = self.cold_ttft_s if values is self.ttft_s else self.cold_total_s
            return float("nan") if cold is None else round(cold * 1000, 1)
        return round(float(np.percentile(values, q)) * 1000, 1)

    @property
    def ttft_p50_ms(self) -> float:
        return self._ms(self.ttft_s, 50)

    @property
    def ttft_p95_ms(self) -> float:
        return self._ms(self.ttft_s, 95)

    @property
    def total_p50_ms(self) -> float:
        return self._ms(self.total_s, 50)

    @property
    def total_p95_ms(self) -> float:
        return self._ms(self.total_s, 95)

    def as_dict(self) -> dict[str, float | int | None]:
        def ms(value: float | None) -> float | None:
            return None if value is None else round(value * 1000, 1)

        return {"n": len(self.total_s), "ttft_p50_ms": self.ttft_p50_ms,
                "ttft_p95_ms": self.ttft_p95_ms, "total_p50_ms": self.total_p50_ms,
                "total_p95_ms": self.total_p95_ms, "cold_ttft_ms": ms(self.cold_ttft_s),
                "cold_total_ms": ms(self.cold_total_s)}

    def record(self, verdict_metrics: Any, name: str) -> None:
        for key, value in self.as_dict().items():
            verdict_metrics.add("latency", f"{name}_{key}", value)


def target_message(what: str, measured_ms: float, target_ms: float) -> str | None:
    """None when the target is met, else how much it was missed by."""
    if measured_ms <= target_ms:
        return None
    over = measured_ms - target_ms
    return (f"{what} {measured_ms:.0f} ms misses the {target_ms:.0f} ms target by "
            f"{over:.0f} ms ({100 * over / target_ms:.0f}%)")


def check_target(what: str, measured_ms: float, target_ms: float, verdict_metrics: Any) -> None:
    message = target_message(what, measured_ms, target_ms)
    verdict_metrics.add("latency_targets", what, {
        "measured_ms": measured_ms, "target_ms": target_ms, "met": message is None})
    assert message is None, message
