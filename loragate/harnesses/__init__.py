"""The six Web4 harnesses: pure, deterministic validators (text -> HarnessResult).

Rules: ../shared/spec/web4.md. Each module exposes ``validate(text, **context) -> HarnessResult``.
"""

from loragate.harnesses.base import HARNESS_NAMES, HarnessResult

__all__ = ["HARNESS_NAMES", "HarnessResult"]
